"""Instructions per request, counted by callgrind: a figure that does not
move with the machine's load (see docs/performance.md).

Each variant's gateway runs under `valgrind --tool=callgrind`; after a warm-up
(so V8 has compiled the module's hot code) the counters are zeroed, wrk sends
load for a while, and the instructions the whole gateway process executed are
divided by the requests Envoy counted in that window. Slow (valgrind runs
Envoy some 50x slower), but the same binary, module and request mix give the
same count to within a fraction of a percent.
"""

import argparse
import glob
import os
import sys
import time

from .. import envoy
from ..proc import run
from . import bench


def count(name, routes, filters, clusters, mode, seconds, workdir, load_with=None):
    """(instructions per request, requests counted) for one variant and mode;
    `load_with(port, seconds)` sends the load (default: wrk with the mode's
    request mix)."""
    out = workdir / f"callgrind.{name}-{mode}.out"
    for old in glob.glob(f"{out}*"):
        os.remove(old)
    g = bench.start(f"{name}-{mode}", envoy.bootstrap(routes, filters, clusters), 0, workdir,
                   wrapper=["valgrind", "--tool=callgrind", "--smc-check=all", f"--callgrind-out-file={out}"],
                   ready_seconds=900)
    try:
        def load(secs):
            if load_with is not None:
                return load_with(g.gateway, secs)
            run(["wrk", "-t1", "-c4", f"-d{secs}s", "-s", str(bench.BENCH / "requests.lua"),
                 f"http://127.0.0.1:{g.gateway}/", "--", *bench.wrk_args(name, mode)], timeout=secs + 60, check=True)

        load(20)  # warm-up: V8 tiers the hot functions up
        run(["callgrind_control", "-z", str(g.proc.pid)], timeout=120, check=True)
        r0 = bench.requests(g)
        load(seconds)
        r1 = bench.requests(g)
        run(["callgrind_control", "-d", str(g.proc.pid)], timeout=120, check=True)
        time.sleep(2)
        dump = max(glob.glob(f"{out}*"), key=os.path.getmtime)
        with open(dump) as f:
            total = next(int(line.split()[1]) for line in f if line.startswith(("summary:", "totals:")))
        return total / (r1 - r0), r1 - r0
    finally:
        g.stop(timeout=120)


def grpc_load(method):
    """A load of unary gRPC calls of `method` by returning pool1 users
    (grpcio, four threads on one channel), for count()'s `load_with`."""
    def load(port, secs):
        import threading

        import grpc

        from ..grpc_backend import SERVICE

        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_retries", 0)])
        stub = channel.unary_unary(SERVICE + method, request_serializer=None, response_deserializer=None)
        deadline = time.monotonic() + secs

        def worker():
            while time.monotonic() < deadline:
                try:
                    stub(b"ping", metadata=[("cookie", f"{bench.COOKIE}=pool1")], timeout=30)
                except grpc.RpcError:
                    pass  # NotFound answers with an error status on purpose

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        channel.close()
    return load


def grpc_table(a, workdir):
    """Instructions per gRPC call: calls answered with trailers (the filter
    reads them) and trailers-only answers (it does not), per variant."""
    from ..grpc_backend import GrpcBackend

    modes = {"grpc-trailers": "Ok", "grpc-trailers-only": "NotFound"}
    table = {}
    with GrpcBackend("pool1") as backend:
        variants = bench.variants(backend.port)
        for name in a.variants.split(","):
            routes, filters, clusters = variants[name]
            for c in clusters:
                c["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}}}}
            for mode, method in modes.items():
                per, n = count(name, routes, filters, clusters, mode, a.seconds, workdir, load_with=grpc_load(method))
                table[(name, mode)] = per
                print(f"  {name:<24}{mode:<20}{per:>10.0f} instructions/call ({n} calls)", file=sys.stderr)
    print(f"Instructions per gRPC call of the gateway process (callgrind, Envoy {envoy.envoy_exe()})")
    print(f"{'variant':<22}" + "".join(f"{m:>22}" for m in modes))
    for name in a.variants.split(","):
        print(f"{name:<22}" + "".join(f"{table[(name, m)]:>22.0f}" for m in modes))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench-instructions", description=__doc__)
    ap.add_argument("--variants", default="native,empty-wasm,lua,sticky-split,sticky-split-large")
    ap.add_argument("--modes", default="mix,short,big")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--grpc", action="store_true",
                    help="gRPC calls (with trailers, and trailers-only) to an h2c backend instead of wrk's HTTP/1.1 mixes")
    a = ap.parse_args(argv)
    workdir = envoy.REPO / ".run/instructions"
    workdir.mkdir(parents=True, exist_ok=True)
    if a.grpc:
        return grpc_table(a, workdir)
    backend = bench.start("backend", envoy.bootstrap([{"match": {"prefix": "/"}, "direct_response": {
        "status": 200, "body": {"inline_string": "ok\n"}}}], [], []), 1, workdir)
    table = {}
    try:
        variants = bench.variants(backend.gateway)
        for mode in a.modes.split(","):
            for name in a.variants.split(","):
                per, n = count(name, *variants[name], mode, a.seconds, workdir)
                table[(name, mode)] = per
                print(f"  {name:<24}{mode:<7}{per:>10.0f} instructions/request ({n} requests)", file=sys.stderr)
    finally:
        backend.stop()
    modes = a.modes.split(",")
    print(f"Instructions per request of the gateway process (callgrind, Envoy {envoy.envoy_exe()})")
    print(f"{'variant':<22}" + "".join(f"{m:>12}" for m in modes) + "".join(f"{m + ' x empty':>14}" for m in modes))
    for name in a.variants.split(","):
        row = f"{name:<22}" + "".join(f"{table[(name, m)]:>12.0f}" for m in modes)
        if ("empty-wasm", modes[0]) in table:
            row += "".join(f"{table[(name, m)] / table[('empty-wasm', m)]:>14.3f}" for m in modes)
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
