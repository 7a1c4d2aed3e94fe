"""A small HTTP/1.1 client that sends headers exactly as given: repeated
headers, raw bytes that are not UTF-8, no cookie jar, nothing added."""

import http.client
from dataclasses import dataclass


class Repeated(ValueError):
    """A header, or a cookie in Set-Cookie, that should appear at most once appears more often."""


@dataclass
class Response:
    status: int
    headers: list  # [(lowercase name, value)], repeated names kept
    body: bytes

    def header(self, name):
        """The one value of header `name`: None if absent, Repeated if it
        appears more than once."""
        values = self.all(name)
        if len(values) > 1:
            raise Repeated(f"{name} repeated: {values}")
        return values[0] if values else None

    def all(self, name):
        return [v for k, v in self.headers if k == name.lower()]

    def cookies_set(self, cookie_name):
        """The Set-Cookie values that set `cookie_name`."""
        return [v for v in self.all("set-cookie") if set_cookie_pair(v)[0] == cookie_name]

    def issued(self, cookie_name):
        """The value this response gives cookie `cookie_name`: None when it
        sets none; Repeated when it sets it more than once."""
        values = self.cookies_set(cookie_name)
        if len(values) > 1:
            raise Repeated(f"{cookie_name} set {len(values)} times: {values}")
        return set_cookie_pair(values[0])[1] if values else None

    @property
    def served_by(self):
        return self.header("x-served-by")


def set_cookie_pair(header):
    """(name, value) of a Set-Cookie header value, attributes left off."""
    name, _, value = header.split(";", 1)[0].partition("=")
    return name.strip(), value.strip()


class Client:
    """One keep-alive connection (or a new one per request with keepalive=False)."""

    def __init__(self, port, host="127.0.0.1", keepalive=True, timeout=10):
        self.host, self.port, self.keepalive, self.timeout = host, port, keepalive, timeout
        self.conn = None

    def _connection(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self.conn

    def get(self, path="/", headers=(), method="GET", version=None):
        """Sends one request; `headers` is a list of (name, str-or-bytes)."""
        conn = self._connection()
        if version == "HTTP/1.0":
            conn._http_vsn, conn._http_vsn_str = 10, "HTTP/1.0"
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if not self.keepalive:
            conn.putheader("Connection", "close")
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        result = Response(resp.status, [(k.lower(), v) for k, v in resp.getheaders()], body)
        if not self.keepalive or resp.will_close:
            self.close()
        return result

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def h2c_get(port, path="/", headers=(), host="127.0.0.1", timeout=10):
    """One HTTP/2 request over cleartext with prior knowledge (h2c), with the
    header fields exactly as given (e.g. cookies split into several fields)."""
    return h2c_requests(port, [(path, headers)], host=host, timeout=timeout)[0]


def h2c_requests(port, requests, host="127.0.0.1", timeout=10):
    """Several GET requests multiplexed on one h2c connection, as a browser
    sends a page and its assets: every stream is opened before any answer is
    read. `requests` is a list of (path, headers); the Responses come back
    in the same order."""
    import socket

    import h2.config
    import h2.connection
    import h2.events

    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding=None, validate_outbound_headers=False)
        )
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        streams = {}
        for path, headers in requests:
            sid = conn.get_next_available_stream_id()
            fields = [(b":method", b"GET"), (b":path", path.encode()), (b":scheme", b"http"),
                      (b":authority", b"localhost")]
            fields += [(n.encode() if isinstance(n, str) else n, v.encode() if isinstance(v, str) else v)
                       for n, v in headers]
            conn.send_headers(sid, fields, end_stream=True)
            streams[sid] = {"status": None, "headers": [], "body": b""}
        sock.sendall(conn.data_to_send())
        open_streams = set(streams)
        while open_streams:
            data = sock.recv(65535)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    got = [(k.decode().lower(), v.decode(errors="replace")) for k, v in ev.headers]
                    streams[ev.stream_id]["headers"] = got
                    streams[ev.stream_id]["status"] = int(dict(got)[":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    streams[ev.stream_id]["body"] += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    open_streams.discard(ev.stream_id)
            sock.sendall(conn.data_to_send())
        return [Response(r["status"], [(k, v) for k, v in r["headers"] if not k.startswith(":")], r["body"])
                for r in streams.values()]
    finally:
        sock.close()
