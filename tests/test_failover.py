"""Failure bounds of failover in Envoy, at the edges a hostile probe found
(issue 26): a pool dying under requests in flight, how long an ejection
lasts, a half-open pool beside a dead pinned pool, and a push that removes
a dead pool while the configuration before it still serves draining
keep-alive connections. One worker each, so that counts are exact."""

import json
import threading
import time

from helpers import Hanging, assert_vm_healthy, backend
from stickysplit import envoy, testbed
from stickysplit.envoy_gateway.proxy import listener_from_file, write_resources
from stickysplit.http import Client
from stickysplit.live import add_pool_backend
from stickysplit.metrics import until
from stickysplit.testbed import COOKIE, DEBUG_HEADER as DEBUG


def gateway(workdir, base, pools, failover, clusters=(), edit=None):
    """The test gateway (one worker) with these pools and failover, clusters
    {name: address} added or replaced, and a further `edit`."""
    plugin = envoy.plugin_config(base)
    plugin.update({"pools": pools, "failover": failover, "debugHeader": DEBUG})

    def change(config):
        res = config["static_resources"]
        res["clusters"] = [c for c in res["clusters"] if c["name"] not in dict(clusters)]
        for name, at in dict(clusters).items():
            res["clusters"].append(envoy.static_cluster(name, at))
            if name not in ("pool1", "pool2-cluster"):
                testbed.add_pool_route(config, name, name)
        if edit:
            edit(config)

    return envoy.Envoy(base=base, plugin=plugin, workdir=workdir, edit=change, concurrency=1)


def pinned(port, pool):
    return Client(port, keepalive=False).get("/", [("Cookie", f"{COOKIE}={pool}")])


def test_a_pool_dying_under_requests_costs_one_user_two_failures_at_most(workdir, base_config):
    """Three users pinned to a pool that accepts and never answers, their
    requests in flight when it is killed: each request is cut (503, UC).
    The first cut moves nobody (one cut connection is routine); the other
    two follow a failure of the pool and move their users on that response.
    The first user's next request is refused (UF) and moves them: two
    failed responses for that user, one for the others. (ejectAfter 10, so
    no ejection helps.)"""
    at = envoy.pipe("hanging")
    dead = Hanging(at)
    pools = [{"name": "pool1", "weight": 50}, {"name": "pool2", "weight": 50, "cluster": "pool2-cluster"}]
    with gateway(workdir, base_config, pools, {"ejectAfter": 10, "ejectSeconds": 30},
                 clusters={"pool2-cluster": at}) as gw:
        users = range(3)
        first = {}

        def visit(user):
            first[user] = pinned(gw.gateway, "pool2")

        threads = [threading.Thread(target=visit, args=(u,)) for u in users]
        for t in threads:
            t.start()
        until(lambda: dead.requests, lambda n: n == 3, 10, what="requests held by the hanging pool")
        dead.kill()
        for t in threads:
            t.join(timeout=10)
        failed, moved_at_once = [], 0
        for user in users:
            r = first[user]
            assert r.status == 503, (r.status, r.body)
            n, cookie = 1, r.issued(COOKIE)
            if cookie is not None:
                assert cookie == "pool1"
                assert r.header(DEBUG) == "pool=pool2; reason=sticky; failover=pool1"
                moved_at_once += 1
            r = pinned(gw.gateway, cookie or "pool2")
            if r.status == 503:
                n += 1
                assert (cookie, r.issued(COOKIE)) == (None, "pool1"), "refused: moved on that response"
            else:
                assert (r.status, r.served_by) == (200, "pool1")
            failed.append(n)
        assert sorted(failed) == [1, 1, 2], failed
        assert moved_at_once == 2
        assert_vm_healthy(gw)


def test_an_ejection_lasts_at_least_eject_seconds(workdir, base_config):
    """ejectSeconds 1: the ejecting response comes early, then late in a
    second (Envoy's clock is the wall clock, read in whole seconds), then new
    users every 20 ms; the first one routed to the dead pool is the probe.
    It comes at least one second after the ejecting response, and less than
    two."""
    pool2_at = envoy.pipe("pool2")
    pools = [{"name": "pool1", "weight": 1}, {"name": "pool2", "weight": 99, "cluster": "pool2-cluster"}]
    eject_seconds = 1
    with gateway(workdir, base_config, pools, {"ejectAfter": 1, "ejectSeconds": eject_seconds},
                 clusters={"pool2-cluster": pool2_at}) as gw:
        for phase in (0.2, 0.8):
            time.sleep(2.1)  # the last probe's ejection is over
            time.sleep((1 + phase - time.time() % 1.0) % 1.0)
            r = pinned(gw.gateway, "pool2")
            ejected_at = time.monotonic()
            assert r.status == 503 and r.issued(COOKIE) == "pool1"
            while True:
                sent = time.monotonic()
                r = Client(gw.gateway, keepalive=False).get("/")
                if r.header(DEBUG).startswith("pool=pool2; reason=new"):
                    break
                assert r.served_by == "pool1"
                assert sent - ejected_at < eject_seconds + 1.5, "no probe"
                time.sleep(0.02)
            lasted = sent - ejected_at
            assert r.status == 503, "the probe finds pool2 still dead"
            assert eject_seconds <= lasted < eject_seconds + 1.2, f"the ejection lasted {lasted:.3f} s"
        assert_vm_healthy(gw)


def test_failover_never_moves_a_user_onto_a_half_open_pool(workdir, base_config):
    """pool2 (98% of the weight) is dead and was ejected; its ejection is
    over and no request has probed it yet (half-open). A user pinned to
    pool3, dead too, fails there and is moved to pool1, not to pool2: their
    next request is answered, where a move to pool2 would have made it the
    probe of a dead pool (a second 503 milliseconds later)."""
    pool2_at, pool3_at = envoy.pipe("pool2"), envoy.pipe("pool3")
    pools = [{"name": "pool1", "weight": 1}, {"name": "pool2", "weight": 98, "cluster": "pool2-cluster"},
             {"name": "pool3", "weight": 1}]
    with gateway(workdir, base_config, pools, {"ejectAfter": 2, "ejectSeconds": 1},
                 clusters={"pool2-cluster": pool2_at, "pool3": pool3_at}) as gw:
        for _ in range(2):
            assert pinned(gw.gateway, "pool2").status == 503
        time.sleep(2.2)  # over (ejectSeconds 1, up to a second more), nothing probed
        r = pinned(gw.gateway, "pool3")
        assert (r.status, r.header(DEBUG)) == (503, "pool=pool3; reason=sticky; failover=pool1")
        r = pinned(gw.gateway, r.issued(COOKIE))
        assert (r.status, r.served_by) == (200, "pool1")
        assert_vm_healthy(gw)


def test_a_push_without_the_dead_pool_keeps_it_ejected_for_draining_connections(workdir, base_config):
    """The gateway listener comes over LDS from a file. pool2 is dead and
    ejected (ejectSeconds 20); a push replaces the listener with a config
    without pool2 (pool1 and pool3), so Envoy drains the old listener and
    its keep-alive connections go on with the old configuration. On such a
    connection new users keep away from pool2 (all to pool1, the old
    configuration's other pool): the push did not undo the ejection."""
    lds = workdir / f"lds-{time.monotonic_ns()}.json"
    plugin = envoy.plugin_config(base_config)
    failover = {"ejectAfter": 1, "ejectSeconds": 20}
    pool2_at = envoy.pipe("pool2")
    b2 = backend(workdir, "pool2", pool2_at).start()
    state = {}

    def listener_with(pools):
        listener = json.loads(json.dumps(state["listener"]))
        for f in envoy.wasm_filters(listener):
            f["configuration"]["value"] = json.dumps({**plugin, "pools": pools, "failover": failover,
                                                      "debugHeader": DEBUG})
        return listener

    def edit(config):
        res = config["static_resources"]
        res["clusters"] = [envoy.static_cluster("pool2-cluster", pool2_at) if c["name"] == "pool2-cluster" else c
                           for c in res["clusters"]]
        add_pool_backend(config, "pool3")
        testbed.add_pool_route(config, "pool3", "pool3")
        state["listener"] = listener_from_file(config, lds)
        write_resources(lds, [listener_with([{"name": "pool1", "weight": 50},
                                             {"name": "pool2", "weight": 50, "cluster": "pool2-cluster"}])], 1)

    try:
        with envoy.Envoy(base=base_config, workdir=workdir, edit=edit, concurrency=1) as gw:
            with Client(gw.gateway) as draining:
                assert draining.get("/").status == 200
                b2.stop()
                r = pinned(gw.gateway, "pool2")
                assert (r.status, r.issued(COOKIE)) == (503, "pool1"), "pool2 ejected"

                def counts():
                    return gw.stats(r"^listener_manager\.")

                before = counts().get("listener_manager.lds.update_success", 0)
                write_resources(lds, [listener_with([{"name": "pool1", "weight": 50},
                                                     {"name": "pool3", "weight": 50}])], 2)
                until(counts, lambda c: c.get("listener_manager.lds.update_success", 0) > before
                      and c.get("listener_manager.total_listeners_draining", 0)
                      + c.get("listener_manager.total_filter_chains_draining", 0) >= 1, 20,
                      what="the pushed listener, the old one draining")
                # the new configuration's pools, on a new connection
                seen = {Client(gw.gateway, keepalive=False).get("/").served_by for _ in range(30)}
                assert seen == {"pool1", "pool3"}, seen
                time.sleep(0.5)  # the old configuration's timer brings in the board
                for i in range(40):
                    r = draining.get("/")
                    assert (r.status, r.header(DEBUG)) == (200, "pool=pool1; reason=new"), (i, r.status,
                                                                                              r.header(DEBUG))
                    # Envoy may end a draining connection early (1.36 does, with
                    # Connection: close on the next response): what came over it
                    # counts, and nothing after is on the old configuration
                    if draining.conn is None:
                        break
            assert_vm_healthy(gw)
    finally:
        b2.stop()
