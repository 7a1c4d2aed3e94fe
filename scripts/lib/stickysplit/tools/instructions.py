"""Instructions per request, counted by callgrind: a figure that does not
move with the machine's load (see README, Performance).

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
import subprocess
import sys
import time

from .. import envoy
from . import bench


def count(name, routes, filters, clusters, mode, seconds, workdir):
    """(instructions per request, requests counted) for one variant and mode."""
    out = workdir / f"callgrind.{name}-{mode}.out"
    for old in glob.glob(f"{out}*"):
        os.remove(old)
    g = bench.start(f"{name}-{mode}", envoy.bootstrap(routes, filters, clusters), 0, workdir,
                   wrapper=["valgrind", "--tool=callgrind", "--smc-check=all", f"--callgrind-out-file={out}"],
                   ready_seconds=900)
    try:
        def load(secs):
            subprocess.run(["wrk", "-t1", "-c4", f"-d{secs}s", "-s", str(bench.BENCH / "requests.lua"),
                            f"http://127.0.0.1:{g.gateway}/", "--", *bench.wrk_args(name, mode)], capture_output=True,
                           check=True)

        load(20)  # warm-up: V8 tiers the hot functions up
        subprocess.run(["callgrind_control", "-z", str(g.proc.pid)], capture_output=True, check=True)
        r0 = bench.requests(g)
        load(seconds)
        r1 = bench.requests(g)
        subprocess.run(["callgrind_control", "-d", str(g.proc.pid)], capture_output=True, check=True)
        time.sleep(2)
        dump = max(glob.glob(f"{out}*"), key=os.path.getmtime)
        with open(dump) as f:
            total = next(int(line.split()[1]) for line in f if line.startswith(("summary:", "totals:")))
        return total / (r1 - r0), r1 - r0
    finally:
        g.stop(timeout=120)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench-instructions", description=__doc__)
    ap.add_argument("--variants", default="native,empty-wasm,lua,sticky-split,sticky-split-large")
    ap.add_argument("--modes", default="mix,short,big")
    ap.add_argument("--seconds", type=int, default=10)
    a = ap.parse_args(argv)
    workdir = envoy.REPO / ".run/instructions"
    workdir.mkdir(parents=True, exist_ok=True)
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
