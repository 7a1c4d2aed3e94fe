"""Counters per pool and reason, read back from Envoy's Prometheus endpoint,
and the debug header."""

import time

from helpers import assert_vm_healthy, requests_counted
from stickysplit import envoy, testbed
from stickysplit.http import Client
from stickysplit.metrics import total_at_least, until
from stickysplit.testbed import COOKIE, DEBUG_HEADER

REASONS = ["rule", "sticky", "drained-pinned", "hash", "ramp", "resigned", "new", "reassigned", "expired", "evicted", "forged",
           "failover"]
CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx", "gateway"]


def responses_counted(gw, total=None):
    """{(class, pool): n}, polled until they add up to `total` when given."""
    def read():
        return gw.metric("sticky_split_responses_total", "class", "pool")

    return read() if total is None else until(read, total_at_least(total), what="sticky_split_responses_total")


def per_pool_counted(gw):
    """{(ejections|failovers, pool): n}."""
    return {(kind, pool): n for kind in ("ejections", "failovers")
            for pool, n in gw.metric(f"sticky_split_{kind}_total", "pool").items()}


def test_counts_match_the_traffic_sent(workdir, base_config):
    with envoy.Envoy(base=base_config, workdir=workdir) as g, Client(g.gateway) as c:
        before = requests_counted(g)
        assert set(before) == {(r, p) for r in REASONS for p in ("pool1", "pool2")}, "all defined up front"
        assert set(before.values()) == {0}
        served = {"pool1": 0, "pool2": 0}
        for _ in range(300):
            served[c.get("/").served_by] += 1
        for _ in range(100):
            c.get("/", [("Cookie", f"{COOKIE}=pool1")])
        for _ in range(50):
            c.get("/", [("Cookie", f"x=1; {COOKIE}=pool2")])
        reassigned = {"pool1": 0, "pool2": 0}
        for _ in range(20):
            reassigned[c.get("/", [("Cookie", f"{COOKIE}=gone")]).served_by] += 1
        got = requests_counted(g, 300 + 100 + 50 + 20)
        want = {k: 0 for k in before}
        want.update({
            ("new", "pool1"): served["pool1"], ("new", "pool2"): served["pool2"],
            ("sticky", "pool1"): 100, ("sticky", "pool2"): 50,
            ("reassigned", "pool1"): reassigned["pool1"], ("reassigned", "pool2"): reassigned["pool2"],
        })
        assert got == want
        # every response is counted once, by the pool that served it (a
        # response can land a tick after its request)
        responses, per_pool = responses_counted(g, 300 + 100 + 50 + 20), per_pool_counted(g)
        assert set(responses) == {(k, p) for k in CLASSES for p in ("pool1", "pool2")}
        pool_totals = {p: sum(n for (r, q), n in got.items() if q == p) for p in ("pool1", "pool2")}
        assert responses == {(k, p): (pool_totals[p] if k == "2xx" else 0) for k in CLASSES for p in ("pool1", "pool2")}
        assert per_pool == {(k, p): 0 for k in ("ejections", "failovers") for p in ("pool1", "pool2")}
        assert_vm_healthy(g)


def test_every_reason_is_counted_and_shown_in_the_debug_header(workdir, base_config):
    """Three pools behind the cluster-header route (names with . and _ as
    labels): a drained one, a live one, an evicted one; a rule, hashOn and
    signed cookies, so that each reason happens a known number of times."""
    plugin = envoy.plugin_config(base_config)
    plugin.update({
        "pools": [
            {"name": "blue.v1_2", "weight": 0, "cluster": "pool1"},
            {"name": "green", "weight": 1, "cluster": "pool2-cluster"},
            {"name": "old", "weight": 0, "cluster": "pool1", "evict": True},
        ],
        "rules": [{"match": {"headers": [{"name": "x-beta", "present": True}]}, "pool": "blue.v1_2"}],
        "hashOn": {"header": "x-user"},
        "cookie": dict(plugin["cookie"], signingKeyEnv="K"),
        "debugHeader": DEBUG_HEADER,
    })
    with envoy.Envoy(base=base_config, plugin=plugin, workdir=workdir, vm_env={"K": "0123456789abcdef"}) as g:
        path = "/via-cluster-header/"
        with Client(g.gateway) as c:
            def debug(headers=()):
                r = c.get(path, list(headers))
                # the cluster header routed it (these pool names are not the
                # backends' own, so they answer 421 after saying who they are)
                want = {"pool1": "pool1", "pool2-cluster": "pool2"}[r.header("x-seen-cluster")]
                assert r.served_by == want
                return r, r.header(DEBUG_HEADER)

            r, d = debug()
            assert d == "pool=green; reason=new"
            green = r.issued(COOKIE)
            # the genuine (signed) cookie pins; an unsigned one is a forgery
            for _ in range(4):
                assert debug([("Cookie", f"{COOKIE}={green}")])[1] == "pool=green; reason=sticky"
            for _ in range(3):
                assert debug([("x-beta", "1")])[1] == "pool=blue.v1_2; reason=rule"
            for _ in range(5):
                assert debug([("x-user", "u-42")])[1] == "pool=green; reason=hash"
            for _ in range(2):
                assert debug([("Cookie", f"{COOKIE}=old")])[1] == "pool=green; reason=forged"
        got = requests_counted(g, 15)
    assert got[("new", "green")] == 1
    assert got[("sticky", "green")] == 4
    assert got[("rule", "blue.v1_2")] == 3
    assert got[("hash", "green")] == 5
    assert got[("forged", "green")] == 2
    assert sum(got.values()) == 15
    assert {p for _, p in got} == {"blue.v1_2", "green", "old"}


def test_drained_evicted_and_ramp_reasons(workdir, base_config):
    plugin = envoy.plugin_config(base_config)
    plugin["pools"][0].update(weight=0)
    plugin["pools"][1].update(weight=1)
    plugin["debugHeader"] = DEBUG_HEADER
    with envoy.Envoy(base=base_config, plugin=plugin, workdir=workdir) as g, Client(g.gateway) as c:
        for _ in range(7):
            r = c.get("/", [("Cookie", f"{COOKIE}=pool1")])
            assert r.header(DEBUG_HEADER) == "pool=pool1; reason=drained-pinned"
        assert requests_counted(g, 7)[("drained-pinned", "pool1")] == 7
    plugin["pools"][0]["evict"] = True
    plugin["affinity"] = "ramp"
    with envoy.Envoy(base=base_config, plugin=plugin, workdir=workdir) as g, Client(g.gateway) as c:
        for _ in range(6):
            r = c.get("/", [("Cookie", f"{COOKIE}=pool1")])
            assert r.header(DEBUG_HEADER) == "pool=pool2; reason=evicted"
        key = r.issued(COOKIE)
        assert key.startswith("@")
        for _ in range(4):
            assert c.get("/", [("Cookie", f"{COOKIE}={key}")]).header(DEBUG_HEADER) == "pool=pool2; reason=ramp"
        got = requests_counted(g, 6 + 4)
        assert (got[("evicted", "pool2")], got[("ramp", "pool2")]) == (6, 4)
        assert_vm_healthy(g)


def test_no_debug_header_unless_configured(workdir, base_config):
    with envoy.Envoy(base=base_config, workdir=workdir) as g:
        r = Client(g.gateway).get("/")
        assert r.header(DEBUG_HEADER) is None


def test_vm_memory_gauge_is_the_sum_over_vms_and_steady(workdir, base_config):
    # Envoy keeps one gauge for all VMs (main thread and each worker); each VM
    # adds its own share, so the reading is their sum and does not flip with
    # whichever VM reported last.
    with envoy.Envoy(base=base_config, workdir=workdir, concurrency=2) as g, Client(g.gateway) as c:
        for i in range(200):
            c.get("/", [("Cookie", f"a={i}; {COOKIE}=pool{1 + i % 2}")] if i % 2 else [])
        # the workers' VMs have reported since the traffic once its counts are in
        requests_counted(g, 200)
        page, one_vm_at_least = 65536, 16 * 65536  # the module's 1 MiB stack alone is 16 pages
        # the main thread's VM and two workers' VMs: three shares, polled
        # because the main thread's VM reports on its own tick (a reading that
        # never gets there fails the test with the last value)
        first = until(lambda: g.metric("sticky_split_vm_memory_bytes"), lambda v: v >= 3 * one_vm_at_least,
                      what="sticky_split_vm_memory_bytes")
        readings = [first]
        for _ in range(3):
            time.sleep(1.1)
            readings.append(g.metric("sticky_split_vm_memory_bytes"))
        assert len(set(readings)) == 1, readings
        assert readings[0] % page == 0, readings
        assert_vm_healthy(g)


def test_response_counters_can_be_switched_off(workdir, base_config):
    """With responseCounters off and failover off the filter does not look at
    responses: no response is counted, requests and cookies are as before."""
    plugin = dict(envoy.plugin_config(base_config), responseCounters=False, failover={"enabled": False})
    with envoy.Envoy(base=base_config, plugin=plugin, workdir=workdir) as g, Client(g.gateway) as c:
        served = [c.get("/") for _ in range(50)]
        assert all(r.status == 200 and r.issued(COOKIE) == r.served_by for r in served)
        assert c.get("/", [("Cookie", f"{COOKIE}=pool2")]).served_by == "pool2"
        got = requests_counted(g, 51)
        responses = responses_counted(g)
        assert sum(got.values()) == 51
        assert set(responses.values()) == {0}
        assert_vm_healthy(g)


def test_export_decision_puts_pool_and_reason_in_the_access_log(workdir, base_config):
    """With exportDecision, each request's pool and reason are filter state
    that an access log reads (%FILTER_STATE(wasm.sticky_split.pool:PLAIN)%);
    without it, there is none."""
    fmt = ("%REQ(x-id)% %FILTER_STATE(wasm.sticky_split.pool:PLAIN)% "
           "%FILTER_STATE(wasm.sticky_split.reason:PLAIN)%\n")
    for export in (True, False):
        log = workdir / f"access-{export}-{time.monotonic_ns()}.log"

        def edit(config):
            testbed.connection_manager(config)["access_log"] = [{
                "name": "envoy.access_loggers.file", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": str(log), "log_format": {"text_format_source": {"inline_string": fmt}}}}]

        plugin = dict(envoy.plugin_config(base_config), exportDecision=export)
        # Envoy writes access-log files every 10 s by default: at once here
        with envoy.Envoy(base=base_config, plugin=plugin, workdir=workdir, edit=edit,
                         args=["--file-flush-interval-msec", "50"]) as g:
            expected = {}
            for i in range(60):
                cookie = [("Cookie", f"{COOKIE}=pool2")] if i % 3 == 0 else []
                r = Client(g.gateway, keepalive=False).get("/", [("x-id", f"r{i}"), *cookie])
                expected[f"r{i}"] = (r.served_by, "sticky" if cookie else "new")
            lines = until(lambda: [l.split() for l in log.read_text().splitlines()] if log.exists() else [],
                          lambda ls: len(ls) >= len(expected), what="access log lines")
        got = {rid: (pool, reason) for rid, pool, reason in lines}
        if export:
            assert got == expected
        else:
            assert set(got.values()) == {("-", "-")}
