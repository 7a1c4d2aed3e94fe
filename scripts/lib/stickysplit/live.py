"""Live reconfiguration helpers: load generators that keep sending requests
while the plugin config is changed (tests/test_istio.py pushes it through
ECDS, tests/test_envoy_gateway.py as a listener update), on new connections
or on keep-alive ones, and an extra sample pool for a gateway config."""

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


class _Threads:
    """Threads that run `_run(i)` until the context ends (subclasses set
    `self.threads` and `self.stop_flag`)."""

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=10)


class Load(_Threads):
    """Threads sending requests on new connections until stopped: a mix of
    new users and users pinned to given pools. Every result is kept with its
    start time, so a test can look at the requests of one config phase."""

    def __init__(self, port, cookie, pinned=("pool1", "pool2"), threads=3, debug_header=DEBUG_HEADER, values=None):
        self.port, self.cookie, self.pinned, self.debug = port, cookie, list(pinned), debug_header
        # the cookie value a pinned user sends, by pool (default: the pool's
        # name; a signed cookie needs the value the gateway issued)
        self.values = dict(values or {})
        self.results = []  # (start, kind, status, served_by, reason, error)
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, i):
        n = i
        while not self.stop_flag.is_set():
            kind = "new" if n % 2 == 0 else self.pinned[(n // 2) % len(self.pinned)]
            n += 1
            headers = [] if kind == "new" else [("Cookie", f"{self.cookie}={self.values.get(kind, kind)}")]
            start = time.monotonic()
            try:
                r = Client(self.port, keepalive=False, timeout=5).get("/", headers)
                reason = (r.header(self.debug) or "").rpartition("reason=")[2]
                item = (start, kind, r.status, r.served_by, reason, None)
            except Exception as e:  # noqa: BLE001 - every failure is counted
                item = (start, kind, None, None, None, repr(e))
            with self.lock:
                self.results.append(item)

    def between(self, t0, t1):
        with self.lock:
            return [r for r in self.results if t0 <= r[0] < t1]


class KeepAliveLoad(_Threads):
    """Threads that each keep one HTTP/1.1 connection alive and send on it
    back to back (a returning user's browser), opening a new connection only
    when the gateway closes theirs. Every request is kept as (start,
    thread, connection serial, status, Connection header, error), so a test
    can see what a config change did to connections opened before it."""

    def __init__(self, port, headers=(), threads=4, pause=0.02):
        self.port, self.headers, self.pause = port, list(headers), pause
        self.results = []
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, i):
        client, serial = Client(self.port, keepalive=True, timeout=5), 0
        while not self.stop_flag.is_set():
            if client.conn is None:
                serial += 1
            start = time.monotonic()
            try:
                r = client.get("/", self.headers)
                item = (start, i, serial, r.status, r.header("connection"), None)
            except Exception as e:  # noqa: BLE001 - every failure is counted
                client.close()
                item = (start, i, serial, None, None, repr(e))
            with self.lock:
                self.results.append(item)
            time.sleep(self.pause)
        client.close()

