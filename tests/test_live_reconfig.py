"""Changing the plugin config while a load generator runs: weights
80:20 -> 50:50 -> 0:100, a pool added and removed, a bad config and a bad
module pushed. File-based LDS stands in for a control plane (see README:
it maps to editing a WasmPlugin in Istio)."""

import time

from helpers import FLUSH_SECONDS, assert_vm_healthy
from stickysplit import envoy
from stickysplit.live import Load, LiveGateway
from stickysplit.stats import split_verdict

COOKIE = "nginx-app-subset"
ALPHA = 1e-6
SETTLE = 0.3  # seconds after Envoy took an update before its requests are judged
HOLD = 2.5
COUNTERS = "wasmcustom.sticky_split_requests_total"


def pools(**weights):
    return [{"name": name, "weight": w} for name, w in weights.items()]


def test_live_reconfiguration_under_load(workdir, base_config):
    plugin = envoy.plugin_config(base_config)
    plugin["debugHeader"] = "x-sticky-split-debug"
    plugin.pop("clusterHeader", None)
    plugin["pools"] = pools(pool1=80, pool2=20)
    phases = []
    with LiveGateway(workdir, plugin) as gw:
        with Load(gw.gateway, COOKIE, pinned=("pool1", "pool2", "pool3")) as load:

            def hold(name, weights, expect_pinned):
                t0 = time.monotonic() + SETTLE
                time.sleep(SETTLE + HOLD)
                phases.append((name, load.between(t0, time.monotonic()), weights, expect_pinned))

            def push(name, weights, expect_pinned, expect="success", **kw):
                if "plugin" not in kw and "plugin_raw" not in kw and "module" not in kw:
                    kw["plugin"] = dict(plugin, pools=pools(**weights))
                assert gw.push(**kw) == expect, name
                hold(name, weights, expect_pinned)

            sticky = {"pool1": ("pool1", "sticky"), "pool2": ("pool2", "sticky")}
            hold("80:20", {"pool1": 80, "pool2": 20}, dict(sticky, pool3=(None, "reassigned")))
            push("50:50", {"pool1": 50, "pool2": 50}, dict(sticky, pool3=(None, "reassigned")))
            push("0:100", {"pool1": 0, "pool2": 100},
                 {"pool1": ("pool1", "drained-pinned"), "pool2": ("pool2", "sticky"), "pool3": ("pool2", "reassigned")})
            push("pool3 added", {"pool1": 0, "pool2": 50, "pool3": 50},
                 {"pool1": ("pool1", "drained-pinned"), "pool2": ("pool2", "sticky"), "pool3": ("pool3", "sticky")})
            after_removal = {"pool1": ("pool1", "drained-pinned"), "pool2": ("pool2", "sticky"),
                             "pool3": ("pool2", "reassigned")}
            push("pool3 removed", {"pool1": 0, "pool2": 100}, after_removal)
            bad = dict(plugin, pools=pools(pool1=50, pool1_=50) + [{"name": "pool2", "weight": 1, "wieght": 5}])
            push("bad config rejected", {"pool1": 0, "pool2": 100}, after_removal, expect="rejected", plugin=bad)
            push("bad module rejected", {"pool1": 0, "pool2": 100}, after_removal, expect="rejected",
                 module=envoy.REPO / "README.md")
        time.sleep(FLUSH_SECONDS)
        counted = {name: n for name, n in gw.envoy.stats(COUNTERS).items() if n}
        log = gw.envoy.log_text()
        all_results = list(load.results)
    assert_vm_healthy(gw.envoy, load_failures_expected=True)
    assert "configuration refused: pools[2].wieght: unknown field" in log

    failures = [r for r in all_results if r[2] != 200 or r[5]]
    assert not failures, f"{len(failures)} of {len(all_results)} requests failed, e.g. {failures[:3]}"
    # Every request is counted once across five configurations: counts held in
    # the VM when a configuration is replaced are handed to Envoy, not dropped
    # (Envoy gives each accepted configuration a new root context in the same
    # VM; the old one keeps flushing on its tick until it ends).
    sent = {}
    for r in all_results:
        name = f"{COUNTERS}_reason={r[4]}_pool={r[3]}"
        sent[name] = sent.get(name, 0) + 1
    assert counted == sent
    print(f"\n{len(all_results)} requests, {len(failures)} failed")
    for name, results, weights, expect_pinned in phases:
        new = [r for r in results if r[1] == "new"]
        split = {p: sum(1 for r in new if r[3] == p) for p in weights}
        print(f"  {name:<20} new users {len(new):>5} {split}  pinned {len(results) - len(new)}")
        assert len(new) >= 200, f"{name}: only {len(new)} new users"
        names = list(weights)
        counts = [sum(1 for r in new if r[3] == p) for p in names]
        assert sum(counts) == len(new), f"{name}: new users outside the configured pools"
        ok, stat, df, p = split_verdict(counts, [weights[n] for n in names], ALPHA)
        assert ok, f"{name}: new users {dict(zip(names, counts))} vs {weights}: p={p:.3g}"
        assert {r[4] for r in new} == {"new"}, name
        for pinned, (pool, reason) in expect_pinned.items():
            got = [r for r in results if r[1] == pinned]
            assert got, f"{name}: no {pinned} users"
            assert {r[4] for r in got} == {reason}, f"{name}: {pinned} reasons {({r[4] for r in got})}"
            if pool:
                assert {r[3] for r in got} == {pool}, f"{name}: {pinned} users went to {({r[3] for r in got})}"
