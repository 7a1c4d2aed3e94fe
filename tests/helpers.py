"""What the integration tests share: the filter's request counters once they
have landed, what Envoy says about its Wasm VMs, and checking its log."""

import socket
import threading

from stickysplit import envoy
from stickysplit.metrics import total_at_least, until

RUNTIME_FAILURE_MARKS = ("panicked", "Function: proxy_on", "wasm trap", "RuntimeError")
LOAD_FAILURE_MARKS = ("Failed to load Wasm", "VM failed")


def requests_counted(gw, total=None):
    """{(reason, pool): n} of sticky_split_requests_total as scraped; with
    `total`, polled until the counts add up to at least that many requests
    (the filter hands them to Envoy once a second)."""
    def read():
        return gw.metric("sticky_split_requests_total", "reason", "pool")

    return read() if total is None else until(read, total_at_least(total), what="sticky_split_requests_total")


def assert_vm_healthy(gw, load_failures_expected=False):
    """No panic, trap or failed callback in Envoy's log (nor a VM that failed
    to load, unless the test pushed a bad config or module on purpose)."""
    text = gw.log_text()
    marks = RUNTIME_FAILURE_MARKS + (() if load_failures_expected else LOAD_FAILURE_MARKS)
    bad = [line for line in text.splitlines() if any(m in line for m in marks)]
    assert not bad, "\n".join(bad[:10])


def vm_stats(gw):
    """Envoy's counters about wasm VMs: {'created': n, ...} for the V8 runtime."""
    stats = gw.stats(r"^wasm\.envoy\.wasm\.runtime\.v8\.")
    return {name.rsplit(".", 1)[1]: value for name, value in stats.items()}


backend = envoy.sample_backend_envoy


def failed_until_moved(visit, users, dead="pool2", alive="pool1", attempts=3):
    """Users pinned to the `dead` pool each make up to `attempts` requests
    with `visit(user, cookie_value)`, taking any cookie they are given; every
    answer is a 503 or the `alive` pool's, and each user ends on `alive`.
    Returns the failed responses per user."""
    from stickysplit.testbed import COOKIE

    failed = []
    for user in range(users):
        cookie, n = dead, 0
        for _ in range(attempts):
            r = visit(user, cookie)
            if r.status == 503:
                n += 1
            else:
                assert (r.status, r.served_by) == (200, alive)
            cookie = r.issued(COOKIE) or cookie
        assert cookie == alive
        failed.append(n)
    return failed


class Hanging:
    """A pool that accepts connections and reads requests but never answers,
    on an abstract Unix socket (a pipe() name), until kill() closes the
    listener and every connection it holds: the requests in flight are cut
    (Envoy answers them 503, flag UC) and later connections are refused
    (UF)."""

    def __init__(self, at):
        self.at = at
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind("\0" + at.lstrip("@"))
        self.listener.listen(64)
        self.conns, self.requests = [], 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        try:
            if conn.recv(65536):
                with self.lock:
                    self.requests += 1
        except OSError:
            pass

    def kill(self):
        # shutdown first: a close alone leaves the socket listening while
        # the accept thread is blocked in it
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for conn in self.conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
