"""Live reconfiguration helpers: a load generator that keeps sending requests
while the plugin config is changed (tests/test_istio.py pushes it through
ECDS), and an extra sample pool for a gateway config."""

import threading
import time

from . import envoy
from .http import Client
from .testbed import DEBUG_HEADER


def add_pool_backend(config, name):
    """A sample backend listener for pool `name` on a pipe of its own, and its
    cluster, also called `name`."""
    at = envoy.pipe(name)
    res = config["static_resources"]
    res["listeners"].append(envoy.sample_backend(name, at))
    res["clusters"].append(envoy.static_cluster(name, at))


class Load:
    """Threads sending requests on new connections until stopped: a mix of
    new users and users pinned to given pools. Every result is kept with its
    start time, so a test can look at the requests of one config phase."""

    def __init__(self, port, cookie, pinned=("pool1", "pool2"), threads=3, debug_header=DEBUG_HEADER):
        self.port, self.cookie, self.pinned, self.debug = port, cookie, list(pinned), debug_header
        self.results = []  # (start, kind, status, served_by, reason, error)
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, i):
        n = i
        while not self.stop_flag.is_set():
            kind = "new" if n % 2 == 0 else self.pinned[(n // 2) % len(self.pinned)]
            n += 1
            headers = [] if kind == "new" else [("Cookie", f"{self.cookie}={kind}")]
            start = time.monotonic()
            try:
                r = Client(self.port, keepalive=False, timeout=5).get("/", headers)
                reason = (r.header(self.debug) or "").rpartition("reason=")[2]
                item = (start, kind, r.status, r.served_by, reason, None)
            except Exception as e:  # noqa: BLE001 - every failure is counted
                item = (start, kind, None, None, None, repr(e))
            with self.lock:
                self.results.append(item)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=10)

    def between(self, t0, t1):
        with self.lock:
            return [r for r in self.results if t0 <= r[0] < t1]
