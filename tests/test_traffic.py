"""What a real gateway carries, in Envoy: WebSocket upgrades counted; a busy
pool (Envoy's circuit breaker shedding load, UO) and a routine connection
reset (UC) keep their users; a dead pool over HTTP/2 as over HTTP/1.1; and
a browser's first page load over one HTTP/2 connection, measured."""

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from helpers import assert_vm_healthy, failed_until_moved, requests_counted
from stickysplit import envoy, testbed
from stickysplit.http import Client, h2c_get, h2c_requests
from stickysplit.metrics import total_at_least, until
from stickysplit.stats import ALPHA, split_verdict
from stickysplit.testbed import COOKIE, DEBUG_HEADER as DEBUG


class Backend:
    """An HTTP/1.1 backend on 127.0.0.1 (port 0) in a thread: `answer(handler)`
    decides each request; `close_first` connections are closed unanswered."""

    def __init__(self, name, delay=0.0, close_first=0, status=200):
        outer = self
        self.name, self.delay, self.status = name, delay, status
        self.closed, self.close_first = 0, close_first
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with outer.lock:
                    close = outer.closed < outer.close_first
                    outer.closed += close
                if close:
                    # gone before any answer: Envoy sees the connection end (UC)
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                time.sleep(outer.delay)
                body = f"{outer.name}\n".encode()
                self.send_response(outer.status)
                self.send_header("x-served-by", outer.name)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def gateway(workdir, base, pool2_cluster=None, failover=None, edit=None, concurrency=1):
    """The test gateway, 50:50, debug header on; `pool2_cluster` replaces
    pool2's cluster; one worker unless told, so ejection counts are exact."""
    plugin = envoy.plugin_config(base)
    plugin["pools"][0]["weight"] = plugin["pools"][1]["weight"] = 50
    plugin["debugHeader"] = DEBUG
    if failover:
        plugin["failover"] = failover

    def edit_all(config):
        if pool2_cluster:
            res = config["static_resources"]
            res["clusters"] = [pool2_cluster if c["name"] == "pool2-cluster" else c for c in res["clusters"]]
        if edit:
            edit(config)

    return envoy.Envoy(base=base, plugin=plugin, workdir=workdir, edit=edit_all, concurrency=concurrency)


def responses_counted(gw, total):
    return until(lambda: gw.metric("sticky_split_responses_total", "class", "pool"), total_at_least(total),
                 what="sticky_split_responses_total")


def read_head(conn):
    """Bytes from `conn` up to the end of an HTTP head (or until it closes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def websocket_backend():
    """A listener that answers every request with 101 Switching Protocols."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(32)

    def serve():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                read_head(conn)
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nx-served-by: ws\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    return sock


def upgrade(port, cookie=None):
    """A WebSocket upgrade request; the response's status line and headers."""
    lines = ["GET /chat HTTP/1.1", "Host: localhost", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    if cookie:
        lines.append(f"Cookie: {COOKIE}={cookie}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = read_head(s)
    head = data.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    headers = [tuple(x.strip() for x in line.split(":", 1)) for line in head[1:]]
    return int(head[0].split()[1]), [(k.lower(), v) for k, v in headers]


def test_websocket_upgrades_are_counted_as_1xx(workdir, base_config):
    ws = websocket_backend()
    try:
        def edit(config):
            testbed.connection_manager(config)["upgrade_configs"] = [{"upgrade_type": "websocket"}]
            res = config["static_resources"]
            res["clusters"] = [envoy.static_cluster(c["name"], ws.getsockname()[1]) for c in res["clusters"]]

        with gateway(workdir, base_config, edit=edit) as gw:
            users = 40
            for _ in range(users):
                status, headers = upgrade(gw.gateway)
                assert status == 101
                # the 101 carries the new user's cookie
                assert any(k == "set-cookie" and v.startswith(f"{COOKIE}=") for k, v in headers), headers
            pinned_status, headers = upgrade(gw.gateway, cookie="pool2")
            assert pinned_status == 101
            assert dict(headers)[DEBUG] == "pool=pool2; reason=sticky"
            responses = responses_counted(gw, users + 1)
            counted = {k: v for k, v in responses.items() if v}
            assert sum(counted.values()) == users + 1
            assert {cls for cls, _ in counted} == {"1xx"}, counted
            assert sum(requests_counted(gw, users + 1).values()) == users + 1
            assert_vm_healthy(gw)
    finally:
        ws.close()


def test_a_busy_pool_keeps_its_users(workdir, base_config):
    """Envoy's circuit breaker (2 requests at once) sheds the load on a slow,
    healthy pool2 with 503 UO: nobody's cookie is rewritten, nothing is
    ejected, and every user is still on pool2 afterwards."""
    with Backend("pool2", delay=0.5) as slow:
        cluster = envoy.static_cluster("pool2-cluster", slow.port)
        cluster["circuit_breakers"] = {"thresholds": [{"max_connections": 2, "max_pending_requests": 1,
                                                       "max_requests": 2}]}
        with gateway(workdir, base_config, pool2_cluster=cluster, failover={"ejectAfter": 2}) as gw:
            users = [f"u{i}" for i in range(12)]

            def visit(user):
                return Client(gw.gateway, keepalive=False).get("/", [("Cookie", f"id={user}; {COOKIE}=pool2")])

            with ThreadPoolExecutor(len(users)) as pool:
                burst = list(pool.map(visit, users))
            shed = [r for r in burst if r.status == 503]
            assert shed, "the circuit breaker shed nothing: the test did not overload pool2"
            assert all(r.served_by == "pool2" for r in burst if r.status == 200)
            assert [r.issued(COOKIE) for r in burst] == [None] * len(users), "a cookie was rewritten"
            assert all(r.header(DEBUG) == "pool=pool2; reason=sticky" for r in burst)
            # afterwards, one at a time: everyone is still on pool2
            after = [visit(u) for u in users]
            assert [(r.status, r.served_by, r.header(DEBUG)) for r in after] == \
                [(200, "pool2", "pool=pool2; reason=sticky")] * len(users)
            responses = responses_counted(gw, 2 * len(users))
            assert responses[("gateway", "pool2")] == len(shed)
            assert gw.metric("sticky_split_ejections_total", "pool")["pool2"] == 0
            assert gw.metric("sticky_split_failovers_total", "pool")["pool2"] == 0
            assert_vm_healthy(gw)


def test_a_single_connection_reset_keeps_the_user(workdir, base_config):
    with Backend("pool2", close_first=1) as flaky:
        cluster = envoy.static_cluster("pool2-cluster", flaky.port)
        with gateway(workdir, base_config, pool2_cluster=cluster, failover={"ejectAfter": 3}) as gw:
            c = Client(gw.gateway, keepalive=False)
            first = c.get("/", [("Cookie", f"{COOKIE}=pool2")])
            # the backend closed the connection under the request: Envoy's 503 (UC)
            assert (first.status, first.issued(COOKIE)) == (503, None)
            assert first.header(DEBUG) == "pool=pool2; reason=sticky"
            again = c.get("/", [("Cookie", f"{COOKIE}=pool2")])
            assert (again.status, again.served_by, again.issued(COOKIE)) == (200, "pool2", None)
            responses = responses_counted(gw, 2)
            assert (responses[("gateway", "pool2")], responses[("2xx", "pool2")]) == (1, 1)
            assert gw.metric("sticky_split_failovers_total", "pool")["pool2"] == 0
            assert flaky.closed == 1


def test_a_dead_pool_over_http2_costs_each_user_one_failed_response(workdir, base_config):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there: connection refused (UF)
    with gateway(workdir, base_config, pool2_cluster=envoy.static_cluster("pool2-cluster", port),
                 failover={"ejectAfter": 3}) as gw:
        failed = failed_until_moved(
            lambda user, cookie: h2c_get(gw.gateway, "/", [("cookie", f"u={user}"), ("cookie", f"{COOKIE}={cookie}")]),
            12)
        assert max(failed) == 1 and sum(failed) == 3, failed
        until(lambda: gw.metric("sticky_split_ejections_total", "pool")["pool2"], 1, what="pool2's ejections")
        responses = responses_counted(gw, 12 * 3)
        assert (responses[("gateway", "pool2")], responses[("2xx", "pool1")]) == (3, 12 * 3 - 3)


def test_a_first_page_load_over_http2_is_split_per_request(workdir, base_config):
    """Six cookie-less requests multiplexed on one HTTP/2 connection (a page
    and its assets) are six new users: each is placed on its own, so a load
    lands on both pools with probability 1 - 0.8^6 - 0.2^6 at 80:20. The
    share of such loads is checked against that (chi-square at ALPHA)."""
    loads, per_load = 200, 6
    p_both = 1 - 0.8 ** per_load - 0.2 ** per_load
    with envoy.Envoy(base=base_config, workdir=workdir) as gw:
        both = 0
        for _ in range(loads):
            page = h2c_requests(gw.gateway, [(f"/asset/{i}", []) for i in range(per_load)])
            assert all(r.status == 200 for r in page)
            pools = {r.served_by for r in page}
            assert {r.issued(COOKIE) for r in page} == pools, "each response sets its own pool's cookie"
            both += len(pools) == 2
        ok, stat, df, p = split_verdict([both, loads - both], [p_both, 1 - p_both], ALPHA)
        print(f"first page loads over one HTTP/2 connection: {both}/{loads} reached both pools "
              f"(expected {p_both:.3f} of them; chi-square {stat:.2f}, p {p:.3f})")
        assert ok, f"{both}/{loads} loads on both pools vs {p_both:.3f}: p {p:.2e}"
