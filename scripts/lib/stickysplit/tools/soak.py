"""A bounded soak on loopback: new, returning and odd clients against one
gateway for a fixed time; reports 5xx, Envoy's RSS and the VMs' memory at
the start and the end, and VM restarts."""

import argparse
import socket
import sys
import threading
import time

from .. import envoy
from ..http import Client, h2c_get
from ..testbed import COOKIE, ROUTE_HEADER


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


def main(argv=None):
    ap = argparse.ArgumentParser(prog="soak", description=__doc__)
    ap.add_argument("--minutes", type=float, default=5.0)
    a = ap.parse_args(argv)
    (envoy.REPO / ".run").mkdir(exist_ok=True)
    r = run(a.minutes * 60, workdir=envoy.REPO / ".run")
    ok = (r["5xx"] == 0 and r["errors"] == 0 and r["panics_in_log"] == 0
          and r["vm_memory_end"] == r["vm_memory_start"] and r["vms_created_end"] == r["vms_created_start"])
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
