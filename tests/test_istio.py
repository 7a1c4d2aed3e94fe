"""The filter delivered as Istio delivers it: each shipped WasmPlugin and
TrafficExtension translated into what istiod and istio-agent hand the
gateway's Envoy (ECDS resource and plugin names per Istio version, the
pluginConfig printed as jsonpb prints it, env INLINE and HOST, failure
policy, the module fetched and checked against spec.sha256), loaded through
extension config discovery into a placeholder filter, then pushed again
under load."""

import copy
import time

import pytest

from helpers import assert_vm_healthy, backend, failed_until_moved
from stickysplit import envoy, istio, testbed
from stickysplit.http import Client
from stickysplit.live import Load, add_pool_backend
from stickysplit.metrics import total_at_least, until
from stickysplit.oci import build_layout
from stickysplit.stats import ALPHA, split_verdict
from stickysplit.testbed import COOKIE, DEBUG_HEADER
from stickysplit.tools import manifests

SETS = manifests.manifest_sets()


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    """istio-agent's view of the registry: scripts/package-oci's image."""
    d = tmp_path_factory.mktemp("agent")
    layout, digest = build_layout(d)
    a = istio.Agent(layout, d / "cache")
    a.digest = digest
    return a


def shipped(name, agent):
    """The set's plugin manifest, pinned to the built image (as
    `scripts/package-oci --pin` does)."""
    [doc] = [d for _, d in manifests.load_docs(SETS[name]) if d["kind"] in ("WasmPlugin", "TrafficExtension")]
    doc = copy.deepcopy(doc)
    istio.wasm_spec(doc)["sha256"] = agent.digest
    return doc


def new_users(port, n, cookie=COOKIE):
    counts, values = {}, []
    for _ in range(n):
        r = Client(port, keepalive=False).get("/")
        assert r.status == 200, r.body
        counts[r.served_by] = counts.get(r.served_by, 0) + 1
        assert r.issued(cookie) == r.served_by
        values.append(r.issued(cookie))
    return counts, values


@pytest.mark.parametrize("name,version", [
    ("kubernetes", "1.29"), ("vm", "1.29"), ("gateway-api", "1.29"), ("gateway-api", "1.30"),
    ("gateway-api/trafficextension", "1.30"),
])
def test_shipped_plugins_load_split_and_pin(name, version, workdir, agent):
    doc = shipped(name, agent)
    weights = {p["name"]: p["weight"] for p in manifests.plugin_config(doc)["pools"]}
    cookie = manifests.plugin_config(doc)["cookie"]["name"]
    with istio.IstioGateway(workdir, doc, istio=version, agent=agent) as gw:
        assert gw.counts()["update_success"] == 1
        counts, values = new_users(gw.gateway, 1000, cookie)
        ok, stat, df, p = split_verdict([counts.get(n, 0) for n in weights], list(weights.values()), ALPHA)
        assert ok, f"{counts} vs {weights}: p={p:.3g}"
        with Client(gw.gateway) as c:
            for value in values[:50]:
                r = c.get("/", [("Cookie", f"a=1; {cookie}={value}")])
                assert (r.served_by, r.issued(cookie)) == (value, None)
        # Envoy holds the config under the resource and plugin names istiod gives
        dump = gw.envoy.admin("/config_dump?resource=ecds_filters")
        assert f'"name": "{gw.resource}"' in dump and f'"name": "{gw.plugin_name}"' in dump
        assert "configured 2 pools" in gw.envoy.log_text()
        assert_vm_healthy(gw.envoy)


def test_names_and_printing_follow_istio():
    doc = {"kind": "WasmPlugin", "metadata": {"name": "sticky-split", "namespace": "istio-ingress"}}
    assert istio.names(doc, "1.25") == ("extenstions.istio.io/wasmplugin/istio-ingress.sticky-split",
                                        "istio-ingress.sticky-split")
    assert istio.names(doc, "1.29")[0] == "extensions.istio.io/wasmplugin/istio-ingress.sticky-split"
    assert istio.names(doc, "1.30")[1] == "istio-ingress.sticky-split~istio-translated-wasmplugin"
    te = dict(doc, kind="TrafficExtension")
    assert istio.names(te, "1.30")[0] == "extensions.istio.io/trafficextension/istio-ingress.sticky-split"
    printed = istio.jsonpb({"z": [80, 2592000, 0.5, 1e21, 1e-7, 1e-6], "a": "<a&b>\u2028é", "m": {"b": True, "a": None}})
    assert printed == ('{"a":"\\u003ca\\u0026b\\u003e\\u2028é","m":{"a":null,"b":true},'
                       '"z":[80,2592000,0.5,1e+21,1e-07,0.000001]}')


def pools(**weights):
    return [{"name": n, "weight": w} for n, w in weights.items()]


def with_plugin(doc, **changes):
    doc = copy.deepcopy(doc)
    istio.wasm_spec(doc)["pluginConfig"].update(changes)
    return doc


def test_plugin_config_pushes_under_load(workdir, agent):
    """Editing the WasmPlugin's pluginConfig while clients keep coming: the
    weights change, a pool is added and removed, an identical push is not a
    reload, a refused config and a module that is not Wasm keep the last good
    config serving; no request fails, each phase's new users follow its weights."""
    doc = shipped("kubernetes", agent)
    doc = with_plugin(doc, debugHeader=DEBUG_HEADER, pools=pools(pool1=80, pool2=20))

    def edit(config):
        add_pool_backend(config, "pool3")
        testbed.add_pool_route(config, "pool3", "pool3")

    phases = []
    with istio.IstioGateway(workdir, doc, agent=agent, edit=edit) as gw:
        with Load(gw.gateway, COOKIE, pinned=("pool1", "pool2", "pool3")) as load:
            def hold(name, weights, expect_pinned):
                t0 = time.monotonic() + 0.3
                time.sleep(2.8)
                phases.append((name, load.between(t0, time.monotonic()), weights, expect_pinned))

            def push(name, weights, expect_pinned, expect="reloaded", change=None):
                new = change if change is not None else with_plugin(doc, pools=pools(**weights))
                assert gw.apply(new) == expect, name
                hold(name, weights, expect_pinned)

            sticky = {"pool1": ("pool1", "sticky"), "pool2": ("pool2", "sticky")}
            hold("80:20", {"pool1": 80, "pool2": 20}, dict(sticky, pool3=(None, "reassigned")))
            push("50:50", {"pool1": 50, "pool2": 50}, dict(sticky, pool3=(None, "reassigned")))
            push("pool3 added", {"pool1": 50, "pool2": 25, "pool3": 25},
                 dict(sticky, pool3=("pool3", "sticky")))
            after = dict(sticky, pool3=(None, "reassigned"))
            push("pool3 removed", {"pool1": 50, "pool2": 50}, after)
            # the same pluginConfig again: istiod sends it, Envoy keeps the running config
            before = gw.counts()
            gw.push(with_plugin(doc, pools=pools(pool1=50, pool2=50)))
            hold("identical push", {"pool1": 50, "pool2": 50}, after)
            now = gw.counts()
            assert now["update_attempt"] > before["update_attempt"], "the push did not arrive"
            assert now["config_reload"] == before["config_reload"], "an identical push reloaded the filter"
            bad = with_plugin(doc, pools=pools(pool1=50) + [{"name": "pool2", "weight": 1, "wieght": 5}])
            push("refused config", {"pool1": 50, "pool2": 50}, after, expect="refused", change=bad)
            not_wasm = copy.deepcopy(doc)
            not_wasm["spec"]["url"] = f"file://{envoy.REPO / 'README.md'}"
            not_wasm["spec"].pop("sha256")
            push("module not Wasm", {"pool1": 50, "pool2": 50}, after, expect="refused", change=not_wasm)
        results = list(load.results)
        answered = sum(1 for r in results if r[2] is not None)
        counted = until(lambda: gw.envoy.metric("sticky_split_requests_total", "reason", "pool"),
                        total_at_least(answered), what="sticky_split_requests_total")
        log = gw.envoy.log_text()
    assert_vm_healthy(gw.envoy, load_failures_expected=True)
    assert "configuration refused: pools[1].wieght: unknown field" in log
    failures = [r for r in results if r[2] != 200 or r[5]]
    assert not failures, f"{len(failures)} of {len(results)} requests failed, e.g. {failures[:3]}"
    # every request is counted once across the configurations: counts held in
    # a VM when its configuration is replaced are handed to Envoy, not dropped
    sent = {}
    for r in results:
        sent[(r[4], r[3])] = sent.get((r[4], r[3]), 0) + 1
    assert {k: n for k, n in counted.items() if n} == sent
    print(f"\n{len(results)} requests, {len(failures)} failed")
    for name, got, weights, expect_pinned in phases:
        new = [r for r in got if r[1] == "new"]
        names = list(weights)
        counts = [sum(1 for r in new if r[3] == p) for p in names]
        print(f"  {name:<16} new users {len(new):>5} {dict(zip(names, counts))}  pinned {len(got) - len(new)}")
        assert len(new) >= 150 and sum(counts) == len(new), name
        ok, stat, df, p = split_verdict(counts, [weights[n] for n in names], ALPHA)
        assert ok, f"{name}: {dict(zip(names, counts))} vs {weights}: p={p:.3g}"
        for pinned, (pool, reason) in expect_pinned.items():
            rows = [r for r in got if r[1] == pinned]
            assert rows and {r[4] for r in rows} == {reason}, f"{name}: {pinned} {({r[4] for r in rows})}"
            if pool:
                assert {r[3] for r in rows} == {pool}, name


@pytest.mark.parametrize("strategy", ["FAIL_OPEN", "FAIL_CLOSE"])
def test_fetch_failure_stand_ins(strategy, workdir, agent):
    """A module istio-agent cannot fetch (here: spec.sha256 is not the image's
    digest) is replaced by an RBAC filter of the same name: FAIL_OPEN lets
    requests through without the plugin, to the default route; otherwise 403."""
    doc = shipped("kubernetes", agent)
    doc["spec"]["sha256"] = "0" * 64
    doc["spec"]["failStrategy"] = strategy
    with istio.IstioGateway(workdir, doc, agent=agent, default_pool="pool1") as gw:
        assert gw.counts()["update_success"] == 1
        for headers in ([], [("Cookie", f"{COOKIE}=pool2")]):
            r = Client(gw.gateway).get("/", headers)
            assert r.issued(COOKIE) is None
            if strategy == "FAIL_OPEN":
                # the default route's pool, reached with no route header: the
                # plugin did not run (the sample backend calls that misrouted)
                assert (r.served_by, r.header("x-seen-pool"), r.status) == ("pool1", None, 421)
            else:
                assert r.status == 403
        stand_in = "wasm-default-allow" if strategy == "FAIL_OPEN" else "wasm-default-deny"
        assert stand_in in gw.envoy.admin("/config_dump?resource=ecds_filters")


@pytest.mark.parametrize("value_from", ["INLINE", "HOST"])
def test_signing_key_from_vm_env(value_from, workdir, agent):
    key = "a signing key of thirty-two bytes"
    doc = with_plugin(shipped("kubernetes", agent), cookie={"name": COOKIE, "signingKeyEnv": "STICKY_SPLIT_KEY"})
    entry = {"name": "STICKY_SPLIT_KEY", "valueFrom": value_from}
    if value_from == "INLINE":
        entry["value"] = key
    doc["spec"]["vmConfig"] = {"env": [entry]}
    host_env = {"STICKY_SPLIT_KEY": key} if value_from == "HOST" else None
    with istio.IstioGateway(workdir, doc, agent=agent, host_env=host_env) as gw, Client(gw.gateway) as c:
        value = c.get("/").issued(COOKIE)
        pool, _, mac = value.rpartition(".")
        assert len(mac) == 22
        assert c.get("/", [("Cookie", f"{COOKIE}={value}")]).issued(COOKIE) is None
        assert c.get("/", [("Cookie", f"{COOKIE}={pool}")]).issued(COOKIE) is not None, "unsigned is forged"
        assert key not in gw.envoy.log_text()


def test_absent_plugin_config_is_refused_with_a_clear_message(workdir, agent):
    doc = shipped("kubernetes", agent)
    del doc["spec"]["pluginConfig"]
    with istio.IstioGateway(workdir, doc, agent=agent) as gw:
        assert gw.counts()["update_rejected"] >= 1
        log = gw.envoy.log_text()
        assert "configuration refused: configuration: is empty; sticky-split needs a JSON object with at least \"pools\"" in log
        # a filter that never got a config answers 500
        assert Client(gw.gateway).get("/").status == 500


def test_pool_health_spans_the_workers_and_outlives_a_push(workdir, agent):
    """Four workers, ejectAfter 3, delivered through ECDS: a dead pool costs
    at most 3 + (4 - 1) failed responses in all, one per user at most; after a
    push that keeps the pool (weights 50:50 -> 60:40) its users move with no
    failed response while it stays ejected; once it is back, every worker
    takes it back (the split of new users over new connections, spread over
    the workers, follows 60:40 by chi-square)."""
    workers, eject_after, eject_seconds = 4, 3, 8
    pool2_at = envoy.pipe("pool2")

    def edit(config):
        res = config["static_resources"]
        res["clusters"] = [envoy.static_cluster("pool2-cluster", pool2_at) if c["name"] == "pool2-cluster" else c
                           for c in res["clusters"]]

    failover = {"ejectAfter": eject_after, "ejectSeconds": eject_seconds}
    doc = with_plugin(shipped("kubernetes", agent), pools=pools(pool1=50, pool2=50), failover=failover,
                      debugHeader=DEBUG_HEADER)
    b2 = backend(workdir, "pool2", pool2_at).start()
    try:
        with istio.IstioGateway(workdir, doc, agent=agent, edit=edit, concurrency=workers) as gw:
            def visit(cookie=None):
                headers = [("Cookie", f"{COOKIE}={cookie}")] if cookie else []
                return Client(gw.gateway, keepalive=False).get("/", headers)

            assert visit("pool2").served_by == "pool2"
            b2.stop()
            failed = failed_until_moved(lambda _, cookie: visit(cookie), 40)
            ejected_at = time.monotonic()
            assert max(failed) == 1, failed
            assert eject_after <= sum(failed) <= eject_after + workers - 1, failed

            # a push that keeps pool2: it stays ejected, its users move with
            # no failed response
            assert gw.apply(with_plugin(doc, pools=pools(pool1=60, pool2=40))) == "reloaded"
            for _ in range(100):
                r = visit("pool2")
                assert (r.status, r.served_by, r.header(DEBUG_HEADER)) == (200, "pool1", "pool=pool1; reason=failover")
            assert time.monotonic() - ejected_at < eject_seconds, "too slow for the ejection window"

            # pool2 is back: after the ejection one probe restores it for
            # every worker
            b2 = backend(workdir, "pool2", pool2_at).start()
            # an ejection lasts more than eject_seconds and at most one second
            # more (it ends once the clock reads a later second)
            time.sleep(max(0.0, eject_seconds + 1.1 - (time.monotonic() - ejected_at)))
            cx_before = worker_connections(gw.envoy)
            counts = {"pool1": 0, "pool2": 0}
            for _ in range(1000):
                r = visit()
                assert r.status == 200
                counts[r.served_by] += 1
            spread = [after - before for after, before in zip(worker_connections(gw.envoy), cx_before)]
            assert len(spread) == workers and min(spread) >= 100, f"connections per worker: {spread}"
            ok, stat, df, p = split_verdict([counts["pool1"], counts["pool2"]], [60, 40], ALPHA)
            assert ok, f"{counts}: chi-square {stat:.2f}, p {p:.2e}"
            assert_vm_healthy(gw.envoy)
    finally:
        b2.stop()


def worker_connections(gw_envoy):
    """Connections each worker of the gateway listener accepted so far (its
    stats carry the configured address: port 0, the only TCP listener)."""
    stats = gw_envoy.stats(r"^listener\.127\.0\.0\.1_0\.worker_[0-9]+\.downstream_cx_total$")
    return [v for _, v in sorted(stats.items())]
