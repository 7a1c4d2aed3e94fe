"""Side-by-side gateway benchmark (see docs/performance.md).

One backend Envoy; one gateway Envoy per variant (--concurrency 1), all
gateways pinned to CPU 0, the backend and the load generators (wrk) to CPU 1.
Each round loads a variant and the `native` reference at the same time, with
the same wrk settings, and takes the ratio of their CPU time per request in
that window (utime+stime from /proc/PID/stat over requests counted by Envoy).
"""

import argparse
import base64
import json
import os
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

from .. import envoy, paths
from ..proc import run
from ..testbed import COOKIE

BENCH = paths.BENCH
EMPTY_WASM = envoy.REPO / "target/bench/wasm32-wasip1/release/empty_wasm.wasm"
FLOOR_WASM = envoy.REPO / "target/bench/wasm32-wasip1/release/floor.wasm"
HZ = os.sysconf("SC_CLK_TCK")


# Signing keys of the signed bench variants (the VM's environment).
KEYS = {"BENCH_KEY": "the current bench signing key...", "BENCH_OLD_KEY": "a previous bench signing key....."}


def wasm_filter(module, plugin_json, env=None):
    config = {
        "name": "sticky-split", "root_id": "sticky-split",
        "vm_config": {"vm_id": "bench", "runtime": "envoy.wasm.runtime.v8", "code": {"local": {"filename": str(module)}},
                      **({"environment_variables": {"key_values": env}} if env else {})},
    }
    if plugin_json is not None:
        config["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": plugin_json}
    return {"name": "sticky-split", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", "config": config}}


CLUSTER_ROUTE = [{"match": {"prefix": "/"}, "route": {"cluster_header": "x-sticky-split-cluster"}}]
PLAIN_ROUTE = [{"match": {"prefix": "/"}, "route": {"cluster": "pool1"}}]


def header_route(pool, cluster):
    """A route on the routing header, as an Istio VirtualService writes it;
    `x-route` tells the backend which route matched (the pre-flight check)."""
    match = {"prefix": "/"}
    if pool:
        match["headers"] = [{"name": "x-sticky-split-pool", "string_match": {"exact": pool}}]
    return {"match": match, "route": {"cluster": cluster},
            "request_headers_to_add": [{"header": {"key": "x-route", "value": pool or "default"}}]}


HEADER_ROUTE = [header_route("pool1", "pool1"), header_route("pool2", "pool2"), header_route(None, "pool1")]
BACKEND_ROUTE = [{"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}},
                  "response_headers_to_add": [{"header": {"key": "x-route", "value": "%REQ(x-route)%"}}]}]


def large_plugin():
    """The large config (100 pools, 50 rules, hashOn), shared with the native
    `decide_cost` example. Every pool's cluster is pool1: the gateway then has
    the same upstream connection pool as the 80:20 variant, and the comparison
    measures the filter, not Envoy spreading connections over 100 clusters."""
    return json.loads((BENCH / "large-config.json").read_text())


def variants(backend_port):
    two = [envoy.static_cluster("pool1", backend_port), envoy.static_cluster("pool2", backend_port)]
    plugin = {"pools": [{"name": "pool1", "weight": 80}, {"name": "pool2", "weight": 20}],
              "cookie": {"name": COOKIE}}
    # the large config routes by its cluster header; its 80:20 counterpart too
    plugin_cluster = dict(plugin, clusterHeader="x-sticky-split-cluster")
    set_cookie = lambda p: [{"header": {"key": "set-cookie", "value": f"{COOKIE}={p}; Max-Age=2592000"},
                             "append_action": "APPEND_IF_EXISTS_OR_ADD"}]
    native_routes = [
        {"match": {"prefix": "/", "headers": [{"name": "cookie", "string_match": {"safe_regex": {"regex": f"(^|.*; ){COOKIE}={p}($|;.*)"}}}]},
         "route": {"cluster": p}} for p in ("pool1", "pool2")
    ] + [{"match": {"prefix": "/"}, "route": {"weighted_clusters": {"clusters": [
        {"name": "pool1", "weight": 80, "response_headers_to_add": set_cookie("pool1")},
        {"name": "pool2", "weight": 20, "response_headers_to_add": set_cookie("pool2")}]}}}]
    lua = {"name": "envoy.filters.http.lua", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
        "default_source_code": {"inline_string": (BENCH / "sticky_split.lua").read_text()}}}
    large = large_plugin()
    timed = dict(plugin, cookie={"name": COOKIE, "absoluteTimeout": 31_536_000, "idleTimeout": 31_536_000})
    lean = dict(plugin, cookie={"name": COOKIE, "secure": True}, failover={"enabled": False}, responseCounters=False)
    signed = dict(plugin, cookie={"name": COOKIE, "signingKeyEnv": "BENCH_KEY"})
    rotating = dict(plugin, cookie={"name": COOKIE, "signingKeyEnv": "BENCH_KEY",
                                    "previousSigningKeyEnvs": ["BENCH_OLD_KEY"]})
    return {
        "native": (native_routes, [], two),
        "passthrough": (PLAIN_ROUTE, [], two),
        "lua": (HEADER_ROUTE, [lua], two),
        "floor": (HEADER_ROUTE, [wasm_filter(FLOOR_WASM, None)], two),
        "empty-wasm": (PLAIN_ROUTE, [wasm_filter(EMPTY_WASM, None)], two),
        "sticky-split": (HEADER_ROUTE, [wasm_filter(envoy.WASM, json.dumps(plugin))], two),
        "sticky-split-cluster": (CLUSTER_ROUTE, [wasm_filter(envoy.WASM, json.dumps(plugin_cluster))], two),
        "sticky-split-large": (CLUSTER_ROUTE, [wasm_filter(envoy.WASM, json.dumps(large))], two),
        # what the features that read more than the floor cost: no response
        # counters, no failover (no :status read), Secure fixed (no :scheme read)
        "sticky-split-lean": (HEADER_ROUTE, [wasm_filter(envoy.WASM, json.dumps(lean))], two),
        # each decision exported as filter state: two set_property calls per request
        "sticky-split-export": (HEADER_ROUTE, [wasm_filter(envoy.WASM, json.dumps(dict(plugin, exportDecision=True)))],
                                two),
        # server-side timeouts: a clock read per request, stamped values
        "sticky-split-timeouts": (HEADER_ROUTE, [wasm_filter(envoy.WASM, json.dumps(timed))], two),
        # signed cookies, and the same with a previous key beside the current
        # one: returning users carry values of the current key, so the
        # previous key is never tried (its cost is for values not re-signed yet)
        "sticky-split-signed": (HEADER_ROUTE, [wasm_filter(envoy.WASM, json.dumps(signed), KEYS)], two),
        "sticky-split-rotating": (HEADER_ROUTE, [wasm_filter(envoy.WASM, json.dumps(rotating), KEYS)], two),
        # a second, identical sticky-split gateway: for pairs of sticky-split with itself
        "sticky-split-2": (HEADER_ROUTE, [wasm_filter(envoy.WASM, json.dumps(plugin))], two),
        "empty-wasm-2": (PLAIN_ROUTE, [wasm_filter(EMPTY_WASM, None)], two),
    }


def preflight(g, variant):
    """A variant that routes on the header must route a returning pool2 user
    by the pool2 route: Envoy matched the route again after the filter set
    the header (without a clear_route_cache call, in sticky-split's case)."""
    if variant not in ("lua", "floor", "sticky-split", "sticky-split-2", "sticky-split-timeouts", "sticky-split-lean",
                       "sticky-split-export", "sticky-split-signed", "sticky-split-rotating"):
        return
    from ..http import Client

    values = RETURNING_VALUES.get(variant)
    value = values()[1] if values else "pool2"
    r = Client(g.gateway).get("/", [("Cookie", f"_ga=1; {COOKIE}={value}")])
    if (r.status, r.header("x-route"), r.issued(COOKIE)) != (200, "pool2", None):
        raise RuntimeError(f"{variant}: a pool2 user was routed by {r.header('x-route')!r} ({r.status}),"
                           f" new cookie {r.issued(COOKIE)!r}")
    r = Client(g.gateway).get("/")
    if r.header("x-route") not in ("pool1", "pool2") or not r.issued(COOKIE):
        raise RuntimeError(f"{variant}: a new user got route {r.header('x-route')!r}, cookie {r.issued(COOKIE)!r}")


def start(name, config, cpu, workdir, wrapper=(), ready_seconds=60):
    """One gateway (or backend) Envoy with --concurrency 1 pinned to `cpu`,
    ready when this returns."""
    return envoy.Envoy(config=config, name=name, workdir=workdir, cpu=cpu, wrapper=wrapper,
                       concurrency=1, log_level="warning").start(ready_seconds)


def requests(g):
    """Requests the gateway listener has taken so far."""
    return g.stats("^http.ingress.downstream_rq_total$").get("http.ingress.downstream_rq_total", 0)


def gauge(g, name):
    return g.metric(name)


def stamped_values():
    """Affinity values of pool1 and pool2 issued now, as a gateway with
    server-side timeouts writes them (unsigned, no generation): the stamp is
    base64url of two big-endian 32-bit times, assigned and issued."""
    now = int(time.time())
    stamp = base64.urlsafe_b64encode(struct.pack(">II", now, now)).rstrip(b"=").decode()
    return [f"{stamp}.pool1", f"{stamp}.pool2"]


# Variants whose returning users carry other values than the plain pool names.
def signed_values():
    """Affinity values of pool1 and pool2 signed with the current bench key,
    as the signed variants write them: HMAC-SHA256 over cookie name, NUL, the
    (empty) generation, NUL and the pool name, truncated to 128 bits,
    base64url."""
    import hashlib
    import hmac

    def sign(pool):
        mac = hmac.new(KEYS["BENCH_KEY"].encode(), f"{COOKIE}\0\0{pool}".encode(), hashlib.sha256).digest()[:16]
        return f"{pool}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    return [sign("pool1"), sign("pool2")]


RETURNING_VALUES = {"sticky-split-timeouts": stamped_values, "sticky-split-signed": signed_values,
                    "sticky-split-rotating": signed_values}


def wrk_args(variant, mode):
    """The request script's arguments for `variant` in `mode`."""
    values = RETURNING_VALUES.get(variant)
    return [mode, *(values() if values else [])]


def wrk(g, seconds, mode, connections):
    return subprocess.Popen(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "-s", str(BENCH / "requests.lua"),
         f"http://127.0.0.1:{g.gateway}/", "--", *wrk_args(g.name, mode)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def paired(a, b, seconds, mode, connections, mode_b=None):
    """Loads gateways a and b at once; returns CPU seconds per request of each."""
    wa, wb = wrk(a, seconds, mode, connections), wrk(b, seconds, mode_b or mode, connections)
    time.sleep(0.5)
    start = [(g.cpu_ticks(), requests(g)) for g in (a, b)]
    time.sleep(seconds - 1.0)
    end = [(g.cpu_ticks(), requests(g)) for g in (a, b)]
    for w in (wa, wb):
        out, _ = w.communicate()
        if w.returncode != 0:
            raise RuntimeError(out)
    per = []
    for (c0, r0), (c1, r1) in zip(start, end):
        if r1 <= r0:
            raise RuntimeError("no requests in the window")
        per.append((c1 - c0) / HZ / (r1 - r0))
    return per[0], per[1], end[0][1] - start[0][1]


def quartiles(xs):
    if len(xs) < 2:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], statistics.median(xs), q[2]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench", description=__doc__)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--million", type=int, default=1_000_000, help="requests for the VM memory check (0: skip)")
    ap.add_argument("--quick", action="store_true", help="only the direct pairs behind the targets")
    ap.add_argument("--scaling", action="store_true",
                    help="only the --concurrency 1 vs 2 check of sticky-split (one VM per worker)")
    a = ap.parse_args(argv)
    if os.cpu_count() < 2:
        print("needs 2 CPUs", file=sys.stderr)
        return 1
    if a.scaling:
        return scaling(a)
    workdir = envoy.REPO / ".run/bench"
    workdir.mkdir(parents=True, exist_ok=True)
    procs = {}
    try:
        procs["backend"] = start("backend", envoy.bootstrap(BACKEND_ROUTE, [], []), 1, workdir)
        for name, (routes, filters, clusters) in variants(procs["backend"].gateway).items():
            procs[name] = start(name, envoy.bootstrap(routes, filters, clusters), 0, workdir)
            preflight(procs[name], name)
        native = procs["native"]
        plan = [] if a.quick else [(v, "mix") for v in
                                   ("passthrough", "lua", "floor", "empty-wasm", "sticky-split", "sticky-split-large")]
        # direct pairs: the two sides loaded at the same time
        direct = [("sticky-split", "new", "floor", "new"), ("sticky-split", "new", "lua", "new"),
                  ("sticky-split", "returning", "floor", "returning"), ("sticky-split", "returning", "lua", "returning"),
                  ("floor", "new", "lua", "new"), ("floor", "returning", "lua", "returning"),
                  ("sticky-split", "mix", "empty-wasm", "mix"), ("sticky-split-large", "mix", "sticky-split-cluster", "mix"),
                  ("sticky-split", "big", "sticky-split-2", "short"), ("empty-wasm", "big", "empty-wasm-2", "short")]
        ratios = {key: [] for key in plan}
        throughput = {key: [] for key in plan}
        pairs = {key: [] for key in direct}
        native_cost = []
        for rnd in range(a.rounds):
            for key in plan:
                v, mode = key
                pv, pn, n = paired(procs[v], native, a.seconds, mode, a.connections)
                ratios[key].append(pv / pn)
                native_cost.append(pn)
                throughput[key].append(n / (a.seconds - 1.0))
            for key in direct:
                x, mx, y, my = key
                px, py, _ = paired(procs[x], procs[y], a.seconds, mx, a.connections, my)
                pairs[key].append(px / py)
            print(f"round {rnd + 1}/{a.rounds} done", file=sys.stderr)
        report(a, ratios, throughput, pairs, procs)
        if native_cost:
            print(f"native's own CPU time per request (median, while sharing CPU 0): {statistics.median(native_cost) * 1e6:.1f} us")
    finally:
        for p in procs.values():
            p.stop()
    return 0


def scaling(a):
    """sticky-split with --concurrency 1 and 2 under the same load (backend,
    gateway and wrk unpinned on the two cores): requests per second, CPU time
    per request, the VMs Envoy created and how the workers shared the load."""
    workdir = envoy.REPO / ".run/bench"
    workdir.mkdir(parents=True, exist_ok=True)
    plugin = json.dumps({"pools": [{"name": "pool1", "weight": 80}, {"name": "pool2", "weight": 20}],
                         "cookie": {"name": COOKIE}})
    backend = envoy.Envoy(config=envoy.bootstrap(BACKEND_ROUTE, [], []), name="backend",
                          workdir=workdir, concurrency=2, log_level="warning").start()
    two = [envoy.static_cluster("pool1", backend.gateway), envoy.static_cluster("pool2", backend.gateway)]
    print(f"sticky-split, --concurrency 1 vs 2, wrk -t2 -c16 {a.seconds} s, mix; nothing pinned (2 cores shared)")
    try:
        rows = []
        for concurrency in (1, 2):
            config = envoy.bootstrap(HEADER_ROUTE, [wasm_filter(envoy.WASM, plugin)], two)
            g = envoy.Envoy(config=config, name=f"scaling-{concurrency}", workdir=workdir,
                            concurrency=concurrency, log_level="warning").start()
            try:
                n0, c0 = requests(g), g.cpu_ticks()
                run(["wrk", "-t2", "-c16", f"-d{a.seconds}s", "-s", str(BENCH / "requests.lua"),
                     f"http://127.0.0.1:{g.gateway}/", "--", "mix"], timeout=a.seconds + 60, check=True)
                n, cpu = requests(g) - n0, (g.cpu_ticks() - c0) / HZ
                workers = g.stats(r"^listener\.127\.0\.0\.1_[0-9]+\.worker_[0-9]+\.downstream_cx_total$")
                vms = g.stats(r"^wasm\.envoy\.wasm\.runtime\.v8\.created$")
                rows.append((concurrency, n / a.seconds, cpu / n * 1e6, sorted(workers.values()),
                             sum(vms.values())))
            finally:
                g.stop()
        for concurrency, rps, us, workers, vms in rows:
            print(f"  --concurrency {concurrency}: {rps:8.0f} req/s, {us:6.1f} us CPU/request, "
                  f"connections per worker {workers}, VMs created {vms}")
        print(f"  throughput x{rows[1][1] / rows[0][1]:.2f}, CPU per request x{rows[1][2] / rows[0][2]:.2f}")
    finally:
        backend.stop()
    return 0


def report(a, ratios, throughput, pairs, procs):
    print(f"sticky-split benchmark: {a.rounds} rounds x {a.seconds} s per pair, wrk -t1 -c{a.connections},"
          f" gateways --concurrency 1 on CPU 0, backend and wrk on CPU 1; {envoy.envoy_bin()}")
    if ratios:
        print("CPU time per request relative to `native` loaded at the same time (median [q1, q3]), request mix;")
        print("the `x empty-wasm` column divides each round's ratio by empty-wasm's ratio of the same round")
        print(f"{'variant':<22}{'x native':>24}{'x empty-wasm':>26}{'req/s':>9}")
        empty = ratios[("empty-wasm", "mix")]
        for (v, mode), rs in ratios.items():
            q1, med, q3 = quartiles(rs)
            e1, em, e3 = quartiles([r / e for r, e in zip(rs, empty)])
            print(f"{v:<22}{med:>8.3f} [{q1:.3f}, {q3:.3f}]{em:>10.3f} [{e1:.3f}, {e3:.3f}]"
                  f"{statistics.median(throughput[(v, mode)]):>9.0f}")
    print("\nTargets: CPU time per request of the two sides loaded at the same time (median [q1, q3])")
    rows = [
        ("all new users: sticky-split / floor", pairs[("sticky-split", "new", "floor", "new")], "<=", 1.03),
        ("all new users: sticky-split / lean Lua", pairs[("sticky-split", "new", "lua", "new")], "<=", 0.95),
        ("all returning: sticky-split / floor", pairs[("sticky-split", "returning", "floor", "returning")], "<=", 1.02),
        ("all returning: sticky-split / lean Lua", pairs[("sticky-split", "returning", "lua", "returning")], "<=", 1.02),
        ("large config / 80:20 config", pairs[("sticky-split-large", "mix", "sticky-split-cluster", "mix")], "<=", 1.05),
    ]
    for name, rs, op, limit in rows:
        q1, med, q3 = quartiles(rs)
        ok = med < limit if op == "<" else med <= limit
        print(f"  {name:<48}{med:>7.3f} [{q1:.3f}, {q3:.3f}]  target {op} {limit:.2f}: {'met' if ok else 'NOT met'}")
    print("Context (no targets):")
    for name, key in [("all new users: floor / lean Lua", ("floor", "new", "lua", "new")),
                      ("all returning: floor / lean Lua", ("floor", "returning", "lua", "returning")),
                      ("mix: sticky-split / empty-wasm", ("sticky-split", "mix", "empty-wasm", "mix")),
                      ("4 KiB cookie / short cookie (returning users)", ("sticky-split", "big", "sticky-split-2", "short"))]:
        q1, med, q3 = quartiles(pairs[key])
        print(f"  {name:<48}{med:>7.3f} [{q1:.3f}, {q3:.3f}]")
    q1, med, q3 = quartiles(pairs[("empty-wasm", "big", "empty-wasm-2", "short")])
    print(f"  {'the same 4 KiB / short pair through empty-wasm':<48}{med:>7.3f} [{q1:.3f}, {q3:.3f}]")
    sizes = {"sticky-split": envoy.WASM.stat().st_size, "empty-wasm": EMPTY_WASM.stat().st_size}
    print(f"\nModule size: sticky-split {sizes['sticky-split']} bytes ({sizes['sticky-split'] / 1024:.0f} KiB, limit <= 512 KiB: "
          f"{'met' if sizes['sticky-split'] <= 512 * 1024 else 'NOT met'}); empty-wasm {sizes['empty-wasm']} bytes")
    g = procs["sticky-split"]
    before = gauge(g, "sticky_split_vm_memory_bytes")
    if a.million:
        n0 = requests(g)
        w = subprocess.Popen(["taskset", "-c", "1", "wrk", "-t1", "-c16", "-d600s", "-s", str(BENCH / "requests.lua"),
                              f"http://127.0.0.1:{g.gateway}/", "--", "mix"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while requests(g) - n0 < a.million and w.poll() is None:
            time.sleep(0.5)
        w.terminate()
        w.wait()
        g.wait_all_counted("ingress")
        after = gauge(g, "sticky_split_vm_memory_bytes")
        print(f"VM memory (sticky-split): {before} bytes before, {after} bytes after {requests(g) - n0} more requests: "
              f"{'flat' if after == before else 'GREW'}")


if __name__ == "__main__":
    sys.exit(main())
