"""Sessions that survive failure and expire on the server, in Envoy:
failover of pinned users when their pool's backend is gone, ejection and the
probe that brings a pool back, an application's own 503, server-side
timeouts read on Envoy's clock, the session header, Partitioned."""

import math
import time

from helpers import assert_vm_healthy, backend, requests_counted
from stickysplit import envoy, testbed
from stickysplit.http import Client
from stickysplit.metrics import total_at_least, until
from stickysplit.stats import ALPHA, split_verdict
from stickysplit.testbed import COOKIE, DEBUG_HEADER as DEBUG

EJECT_AFTER, EJECT_SECONDS = 3, 4


def failover_gateway(workdir, base, pool2_at, pool3_at):
    """The test gateway with pool2 behind `pool2_at` and a pool3 whose
    backend answers every request with the application's own 503."""
    plugin = envoy.plugin_config(base)
    plugin.update({
        "pools": [{"name": "pool1", "weight": 50}, {"name": "pool2", "weight": 50, "cluster": "pool2-cluster"},
                  {"name": "pool3", "weight": 0}],
        "failover": {"ejectAfter": EJECT_AFTER, "ejectSeconds": EJECT_SECONDS},
        "debugHeader": DEBUG,
    })

    def edit(config):
        res = config["static_resources"]
        res["clusters"] = [envoy.static_cluster("pool2-cluster", pool2_at) if c["name"] == "pool2-cluster" else c
                           for c in res["clusters"]]
        res["clusters"].append(envoy.static_cluster("pool3", pool3_at))
        testbed.add_pool_route(config, "pool3", "pool3")

    # one worker: its VM sees every failure, so ejection counts are exact
    return envoy.Envoy(base=base, plugin=plugin, workdir=workdir, edit=edit, concurrency=1)


def outcome(gw, requests):
    """{(metric, label, pool): n} of the outcome and request counters, once
    the counts of `requests` requests and their responses have landed."""
    out = {}
    for (reason, pool), n in requests_counted(gw, requests).items():
        out[("requests", reason, pool)] = n
    responses = until(lambda: gw.metric("sticky_split_responses_total", "class", "pool"), total_at_least(requests),
                      what="sticky_split_responses_total")
    for (cls, pool), n in responses.items():
        out[("responses", cls, pool)] = n
    for kind in ("ejections", "failovers"):
        for pool, n in gw.metric(f"sticky_split_{kind}_total", "pool").items():
            out[(kind, "", pool)] = n
    return out


def test_failover_ejection_and_return(workdir, base_config):
    pool2_at, pool3_at = envoy.pipe("pool2"), envoy.pipe("pool3")
    b2 = backend(workdir, "pool2", pool2_at).start()
    b3 = backend(workdir, "pool3", pool3_at, status=503).start()
    try:
        with failover_gateway(workdir, base_config, pool2_at, pool3_at) as gw:
            sent = []

            def one(headers=()):
                sent.append(headers)
                return Client(gw.gateway, keepalive=False).get("/", list(headers))

            assert one([("Cookie", f"{COOKIE}=pool2")]).served_by == "pool2"

            # the application's own 503 moves nobody
            for _ in range(20):
                r = one([("Cookie", f"{COOKIE}=pool3")])
                assert (r.status, r.served_by, r.issued(COOKIE)) == (503, "pool3", None)
                assert r.header(DEBUG) == "pool=pool3; reason=drained-pinned"

            # pool2's backend goes away: each pinned user sees at most one
            # failed response, which already moves them; then they stay
            b2.stop()
            failed_per_user, moved_on_request = [], 0
            for user in range(30):
                cookie, failed = f"{COOKIE}=pool2", 0
                for attempt in range(4):
                    r = one([("Cookie", f"a={user}; {cookie}")])
                    if r.status == 503:
                        failed += 1
                        assert r.header(DEBUG) == "pool=pool2; reason=sticky; failover=pool1", r.header(DEBUG)
                    else:
                        assert (r.status, r.served_by) == (200, "pool1")
                        if attempt == 0:
                            assert r.header(DEBUG) == "pool=pool1; reason=failover"
                            moved_on_request += 1
                    if r.issued(COOKIE) is not None:
                        cookie = f"{COOKIE}={r.issued(COOKIE)}"
                        assert r.issued(COOKIE) == "pool1"
                        assert attempt == 0, "a cookie is rewritten once"
                failed_per_user.append(failed)
            ejected_at = time.monotonic()
            assert max(failed_per_user) == 1
            # the pool is ejected after EJECT_AFTER failures: later users move
            # on their request, with no failed response at all
            assert sum(failed_per_user) == EJECT_AFTER
            assert moved_on_request == 30 - EJECT_AFTER

            # while ejected, new users avoid pool2
            served = [one().served_by for _ in range(200)]
            assert served.count("pool1") == 200
            assert time.monotonic() - ejected_at < EJECT_SECONDS, "too slow for the ejection window"

            # pool2 comes back; after ejectSeconds one probe restores it, and
            # new users split by the weights again
            b2 = backend(workdir, "pool2", pool2_at).start()
            time.sleep(max(0.0, EJECT_SECONDS + 1.1 - (time.monotonic() - ejected_at)))
            counts = {"pool1": 0, "pool2": 0}
            for _ in range(1000):
                r = one()
                assert r.status == 200
                counts[r.served_by] += 1
            ok, stat, df, p = split_verdict([counts["pool1"], counts["pool2"]], [50, 50], ALPHA)
            assert ok, f"{counts}: chi-square {stat:.2f}, df {df}, p {p:.2e}"

            got = outcome(gw, len(sent))
            assert got[("ejections", "", "pool2")] == 1
            assert got[("failovers", "", "pool2")] == EJECT_AFTER
            assert got[("responses", "gateway", "pool2")] == EJECT_AFTER
            assert got[("responses", "5xx", "pool3")] == 20
            assert got[("responses", "5xx", "pool2")] == 0
            assert got[("requests", "failover", "pool1")] == moved_on_request
            assert got[("responses", "2xx", "pool2")] == counts["pool2"] + 1
            assert_vm_healthy(gw)
    finally:
        b2.stop()
        b3.stop()


def plain_gateway(workdir, base, vm_env=None, **changes):
    plugin = envoy.plugin_config(base)
    plugin.update(changes)
    plugin["debugHeader"] = DEBUG
    return envoy.Envoy(base=base, plugin=plugin, workdir=workdir, vm_env=vm_env)


def test_envoys_clock_stamps_and_expires_a_value(workdir, base_config):
    # Renewal, idle and absolute timeouts and unstamped values are decided on
    # an injected clock natively (filter/core/tests/native/sessions.rs and
    # session_expiry.rs); what only Envoy shows is that its
    # clock reaches them, in seconds of wall-clock time: a value reads back as
    # fresh at once, and as expired once the clock is past a 1 s timeout.
    cookie = dict(envoy.plugin_config(base_config)["cookie"], absoluteTimeout=1, partitioned=True)
    with plain_gateway(workdir, base_config, cookie=cookie) as gw, Client(gw.gateway) as c:
        r = c.get("/")
        stamped_by = time.time()  # the stamp is this second or an earlier one
        assert r.cookies_set(COOKIE)[0].endswith("; SameSite=Lax; Partitioned")
        value, pool = r.issued(COOKIE), r.served_by
        r = c.get("/", [("Cookie", f"{COOKIE}={value}")])
        assert (r.served_by, r.header(DEBUG), r.issued(COOKIE)) == (pool, f"pool={pool}; reason=sticky", None)
        # the timeout counts whole seconds: 2 past the stamp's is past 1 s
        # (at most 2 s from here; the margin is for Envoy's cached time)
        time.sleep(max(0.0, math.floor(stamped_by) + 2.05 - time.time()))
        r = c.get("/", [("Cookie", f"{COOKIE}={value}")])
        assert r.header(DEBUG).endswith("reason=expired") and r.issued(COOKIE) not in (None, value)
        # a plain pool name (no stamp) has expired too
        assert c.get("/", [("Cookie", f"{COOKIE}=pool1")]).header(DEBUG).endswith("reason=expired")
        assert_vm_healthy(gw)


def test_session_header_round_trip_and_forgery(workdir, base_config):
    cookie = dict(envoy.plugin_config(base_config)["cookie"], signingKeyEnv="K")
    with plain_gateway(workdir, base_config, vm_env={"K": "0123456789abcdef0123"}, cookie=cookie,
                       sessionHeader="x-sticky-split-session") as gw, Client(gw.gateway) as c:
        r = c.get("/")
        value = r.header("x-sticky-split-session")
        assert value is not None and value == r.issued(COOKIE)
        pool = r.served_by
        for _ in range(20):
            r = c.get("/", [("X-Sticky-Split-Session", value)])
            assert (r.served_by, r.header(DEBUG)) == (pool, f"pool={pool}; reason=sticky")
            assert r.header("x-sticky-split-session") is None and r.issued(COOKIE) is None
        # the header twice (Envoy hands the filter both copies), or joined by
        # a proxy on the way: the first valid value wins, as among cookies
        for twice in ([("X-Sticky-Split-Session", value)] * 2,
                      [("X-Sticky-Split-Session", "forged-first"), ("X-Sticky-Split-Session", value)],
                      [("X-Sticky-Split-Session", f"{value}, {value}")]):
            r = c.get("/", twice)
            assert (r.served_by, r.header(DEBUG), r.issued(COOKIE)) == (pool, f"pool={pool}; reason=sticky", None), twice
        other = "pool2" if pool == "pool1" else "pool1"
        for forged in (other, f"{other}.AAAAAAAAAAAAAAAAAAAAAA", value[:-1] + ("A" if value[-1] != "A" else "B")):
            r = c.get("/", [("X-Sticky-Split-Session", forged)])
            assert r.header(DEBUG).endswith("reason=forged"), forged
            assert r.header("x-sticky-split-session") not in (None, forged)
        assert_vm_healthy(gw)
