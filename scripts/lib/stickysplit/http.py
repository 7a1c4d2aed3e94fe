"""A small HTTP/1.1 client that sends headers exactly as given: repeated
headers, raw bytes that are not UTF-8, no cookie jar, nothing added."""

import http.client
from dataclasses import dataclass


@dataclass
class Response:
    status: int
    headers: list  # [(lowercase name, value)], repeated names kept
    body: bytes

    def header(self, name):
        """The one value of header `name` (None if absent; error if repeated)."""
        values = self.all(name)
        assert len(values) <= 1, f"{name} repeated: {values}"
        return values[0] if values else None

    def all(self, name):
        return [v for k, v in self.headers if k == name.lower()]

    def cookies_set(self, cookie_name):
        """The Set-Cookie values that set `cookie_name`."""
        return [v for v in self.all("set-cookie") if v.split("=", 1)[0].strip() == cookie_name]

    @property
    def served_by(self):
        return self.header("x-served-by")


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
