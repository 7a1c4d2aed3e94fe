"""A bounded soak on loopback: new, returning and odd clients against one
gateway for a fixed time; reports 5xx, Envoy's RSS and the VMs' memory at
the start and the end, and VM restarts. With --failover, the stress run of
issue 26 instead: keep-alive users while pools die and come back and the
listener is pushed again every 2 s; reports failed responses per user and
per pool death."""

import argparse
import copy
import json
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from .. import envoy, testbed
from ..envoy_gateway.proxy import listener_from_file, write_resources
from ..http import Client, h2c_get
from ..testbed import COOKIE, DEBUG_HEADER, ROUTE_HEADER


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def gauges(gw):
    """The VMs' memory (the filter's gauge) and Envoy's count of VMs created."""
    return {"vm_memory": gw.metric("sticky_split_vm_memory_bytes"),
            "vms_created": gw.stats(r"^wasm\.envoy\.wasm\.runtime\.v8\.created$").get("wasm.envoy.wasm.runtime.v8.created")}


ODD = [
    [("Cookie", b"\xff\xfe=\x80; " + COOKIE.encode() + b"=pool2")],
    [("Cookie", "; ".join(f"c{i}=v{i}" for i in range(500)))],
    [("Cookie", f"{COOKIE}=nope; {COOKIE}=pool1; {COOKIE}=\"\"")],
    [(ROUTE_HEADER, "pool2"), (ROUTE_HEADER, "evil"), ("Cookie", f"{COOKIE}=pool1")],
    [("Cookie", "x" * 20000)],
]


def client(kind, port, stop, tally, lock):
    n = 0
    while not stop.is_set():
        n += 1
        try:
            if kind == "new":
                status = Client(port, keepalive=False).get("/").status
            elif kind == "returning":
                # a keep-alive connection of 20 requests; each is tallied
                with Client(port) as c:
                    for _ in range(19):
                        status = c.get("/", [("Cookie", f"a=1; {COOKIE}=pool{1 + n % 2}")]).status
                        with lock:
                            tally[kind, status] = tally.get((kind, status), 0) + 1
                    status = c.get("/", [("Cookie", f"a=1; {COOKIE}=pool{1 + n % 2}")]).status
            elif kind == "h2c":
                status = h2c_get(port, "/", [("cookie", "a=1"), ("cookie", f"{COOKIE}=pool2")]).status
            elif kind == "http10":
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    data = b""
                    while chunk := s.recv(65536):
                        data += chunk
                status = int(data.split(b" ", 2)[1])
            else:
                status = Client(port, keepalive=False).get("/", ODD[n % len(ODD)]).status
        except Exception:  # noqa: BLE001 - counted as an error
            status = None
        with lock:
            tally[kind, status] = tally.get((kind, status), 0) + 1


def run(seconds, workdir=None, out=sys.stdout):
    kinds = ["new", "returning", "odd", "h2c", "http10"]
    with envoy.Envoy(workdir=workdir) as gw:
        pid = gw.proc.pid
        stop, lock, tally = threading.Event(), threading.Lock(), {}
        threads = [threading.Thread(target=client, args=(k, gw.gateway, stop, tally, lock), daemon=True) for k in kinds]
        for t in threads:
            t.start()
        warmup = min(5.0, seconds / 4)
        time.sleep(warmup)
        start = {"rss_kib": rss_kib(pid), **gauges(gw)}
        time.sleep(max(0.0, seconds - warmup))
        stop.set()
        for t in threads:
            t.join(timeout=10)
        # the memory each VM reports on its first tick after the last request
        gw.wait_all_counted()
        end = {"rss_kib": rss_kib(pid), **gauges(gw)}
        log = gw.log_text()
    total = sum(tally.values())
    errors = sum(v for (k, s), v in tally.items() if s is None)
    fivexx = sum(v for (k, s), v in tally.items() if s is not None and s >= 500)
    report = {
        "seconds": seconds, "requests": total, "errors": errors, "5xx": fivexx,
        "rss_start_kib": start["rss_kib"], "rss_end_kib": end["rss_kib"],
        "vm_memory_start": start["vm_memory"],
        "vm_memory_end": end["vm_memory"],
        "vms_created_start": start["vms_created"],
        "vms_created_end": end["vms_created"],
        "by_kind": {k: sum(v for (kk, _), v in tally.items() if kk == k) for k in kinds},
        "statuses": sorted({s for (_, s) in tally if s is not None}),
        "panics_in_log": sum(1 for line in log.splitlines() if "panicked" in line or "RuntimeError" in line),
    }
    print(f"soak: {seconds:.0f} s, {total} requests ({report['by_kind']}), statuses {report['statuses']}", file=out)
    print(f"  5xx: {fivexx}   client errors: {errors}   panics in log: {report['panics_in_log']}", file=out)
    print(f"  Envoy RSS: {report['rss_start_kib']} KiB after warm-up -> {report['rss_end_kib']} KiB at the end", file=out)
    print(f"  VM memory: {report['vm_memory_start']} -> {report['vm_memory_end']} bytes", file=out)
    print(f"  VMs created: {report['vms_created_start']} -> {report['vms_created_end']}", file=out)
    return report


FAILOVER = {"ejectAfter": 3, "ejectSeconds": 2}
DYING = ("pool2", "pool3")


def _user(i, port, stop, results, lock, pause, rnd):
    """A client on a keep-alive connection (a new one when Envoy closes it):
    a user keeping the affinity cookie it is given, replaced by a new user
    every 1 to 3 s (so that pools whose users failed over fill again); every
    answer is kept as (time, (client, user), status, debug header)."""
    cookie, client, user, renew = None, Client(port, timeout=15), (i, 0), time.monotonic() + rnd.uniform(1, 3)
    while not stop.is_set():
        if time.monotonic() >= renew:
            cookie, user, renew = None, (i, user[1] + 1), time.monotonic() + rnd.uniform(1, 3)
        headers = [("Cookie", f"{COOKIE}={cookie}")] if cookie else []
        try:
            r = client.get("/", headers)
            status, debug = r.status, r.header(DEBUG_HEADER) or ""
            cookie = r.issued(COOKIE) or cookie
        except Exception:  # noqa: BLE001 - a client error, kept as status None
            client.close()
            status, debug = None, ""
        with lock:
            results.append((time.monotonic(), user, status, debug))
        time.sleep(pause)
    client.close()


def run_failover(seconds, workdir=None, concurrency=4, users=64, out=sys.stdout, seed=None):
    """`users` clients on keep-alive connections, each a user pinned by cookie
    replaced by a new one every 1 to 3 s, to a gateway (pools
    pool1, pool2, pool3; ejectAfter 3, ejectSeconds 2) whose pool2 and pool3
    are stopped in turn (2 to 4 s dead, their requests in flight cut) while
    the gateway listener is pushed again every 2 s (LDS from a file: Envoy
    drains the old listener's connections, which keep the old config); a
    push while a pool is dead leaves it out half the time. Each failed
    response is put down to the last death of the pool its debug header
    names."""
    rnd = random.Random(seed)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="sticky-split-stress-"))
    lds = workdir / f"stress-lds-{time.monotonic_ns()}.json"
    at = {pool: envoy.pipe(pool) for pool in DYING}
    base = envoy.load()
    plugin = envoy.plugin_config(base)
    state = {}

    def listener_with(pools, version):
        listener = copy.deepcopy(state["listener"])
        for f in envoy.wasm_filters(listener):
            f["configuration"]["value"] = json.dumps({**plugin, "pools": pools, "failover": FAILOVER,
                                                      "debugHeader": DEBUG_HEADER})
        # a listener Envoy sees as changed on every push: its connections drain
        listener["filter_chains"][0]["filters"][0]["typed_config"]["stat_prefix"] = f"gateway_{version % 2}"
        return listener

    def pools_for(dead, version):
        weights = {"pool1": 34, "pool2": 33, "pool3": 33}
        if dead and version % 2 == 0:
            weights.pop(dead)
        return [{"name": name, "weight": w, **({"cluster": "pool2-cluster"} if name == "pool2" else {})}
                for name, w in weights.items()]

    def edit(config):
        res = config["static_resources"]
        res["clusters"] = [c for c in res["clusters"] if c["name"] != "pool2-cluster"]
        res["clusters"] += [envoy.static_cluster("pool2-cluster", at["pool2"]),
                            envoy.static_cluster("pool3", at["pool3"])]
        res["listeners"] = [l for l in res["listeners"] if l["name"] not in ("backend-pool2",)]
        testbed.add_pool_route(config, "pool3", "pool3")
        state["listener"] = listener_from_file(config, lds)
        write_resources(lds, [listener_with(pools_for(None, 1), 1)], 1)

    backends = {pool: envoy.sample_backend_envoy(workdir, pool, at[pool]).start() for pool in DYING}
    deaths, results, lock, stop = [], [], threading.Lock(), threading.Event()
    gw = envoy.Envoy(base=base, workdir=workdir, edit=edit, concurrency=concurrency)
    try:
        gw.start()
        port = gw.gateway
        threads = [threading.Thread(target=_user, args=(i, port, stop, results, lock, 0.01,
                                                        random.Random(rnd.random())), daemon=True)
                   for i in range(users)]
        for t in threads:
            t.start()
        start = time.monotonic()
        version, dead, next_push, next_kill = 2, None, start + 2, start + 2 + rnd.uniform(0, 2)
        revive_at = None
        while time.monotonic() - start < seconds:
            now = time.monotonic()
            if now >= next_push:
                write_resources(lds, [listener_with(pools_for(dead, version), version)], version)
                version += 1
                next_push += 2
            if dead is None and now >= next_kill:
                dead = DYING[len(deaths) % 2]
                deaths.append((dead, time.monotonic()))
                backends[dead].stop()
                revive_at = time.monotonic() + rnd.uniform(2, 4)
            if dead is not None and now >= revive_at:
                backends[dead] = envoy.sample_backend_envoy(workdir, dead, at[dead]).start()
                dead, next_kill = None, time.monotonic() + rnd.uniform(1, 3)
            time.sleep(0.02)
        stop.set()
        for t in threads:
            t.join(timeout=20)
        log = gw.log_text()
    finally:
        stop.set()
        gw.stop()
        for b in backends.values():
            b.stop()
    return _failover_report(seconds, users, concurrency, deaths, results, log, out)


def _failover_report(seconds, users, concurrency, deaths, results, log, out):
    per_death = Counter()
    per_user_death = Counter()
    unattributed, new_failed, errors = 0, 0, 0
    for t, user, status, debug in results:
        if status is None:
            errors += 1
            continue
        if status < 500:
            continue
        fields = dict(p.split("=", 1) for p in debug.split("; ") if "=" in p)
        pool = fields.get("pool")
        if fields.get("reason") == "new":
            new_failed += 1
        death = max((i for i, (p, at) in enumerate(deaths) if p == pool and at <= t), default=None)
        if death is None:
            unattributed += 1
            continue
        per_death[death] += 1
        per_user_death[user, death] += 1
    counts = [per_death[i] for i in range(len(deaths))]
    users_by_failures = Counter(per_user_death.values())
    report = {
        "seconds": seconds, "requests": len(results), "deaths": len(deaths), "failures_per_death": counts,
        "users_by_failures_per_death": dict(sorted(users_by_failures.items())),
        "max_per_user_per_death": max(per_user_death.values(), default=0),
        "users": len({user for _, user, _, _ in results}),
        "failed_new_users": new_failed, "unattributed_5xx": unattributed, "errors": errors,
        "panics_in_log": sum(1 for line in log.splitlines() if "panicked" in line or "RuntimeError" in line),
        "give_ups_logged": sum(1 for line in log.splitlines() if "gave up after" in line),
    }
    print(f"failover stress: {seconds:.0f} s, --concurrency {concurrency}, {users} keep-alive clients, "
          f"ejectAfter {FAILOVER['ejectAfter']}, ejectSeconds {FAILOVER['ejectSeconds']}, "
          f"{report['requests']} requests from {report['users']} users, {len(deaths)} pool deaths", file=out)
    if counts:
        print(f"  failed responses per pool death: min {min(counts)}, median {statistics.median(counts):g}, "
              f"max {max(counts)}: {counts}", file=out)
    print(f"  (user, death) pairs by failed responses: {report['users_by_failures_per_death']}", file=out)
    print(f"  failed new users: {new_failed}   5xx not after a death: {unattributed}   client errors: {errors}",
          file=out)
    print(f"  panics in log: {report['panics_in_log']}   board give-ups logged: {report['give_ups_logged']}",
          file=out)
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(prog="soak", description=__doc__)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--failover", action="store_true",
                    help="the failover stress run (pools dying, listener pushes every 2 s)")
    ap.add_argument("--concurrency", type=int, default=4, help="the gateway's workers (--failover)")
    a = ap.parse_args(argv)
    (envoy.REPO / ".run").mkdir(exist_ok=True)
    if a.failover:
        r = run_failover(a.minutes * 60, workdir=envoy.REPO / ".run", concurrency=a.concurrency)
        ok = r["max_per_user_per_death"] <= 2 and r["panics_in_log"] == 0 and r["unattributed_5xx"] == 0
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    r = run(a.minutes * 60, workdir=envoy.REPO / ".run")
    ok = (r["5xx"] == 0 and r["errors"] == 0 and r["panics_in_log"] == 0
          and r["vm_memory_end"] == r["vm_memory_start"] and r["vms_created_end"] == r["vms_created_start"])
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
