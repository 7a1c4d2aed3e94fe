"""Envoy Gateway's Wasm HTTP server, where its proxies fetch the modules
its cache pulled: here a thread serving them to the test's Envoy."""

import base64
import hashlib
import http.server
import threading

from .. import envoy

WASM_CLUSTER = "wasm_cluster"
# Envoy Gateway's own namespace and the port of its Wasm HTTP server
EG_NAMESPACE = "envoy-gateway-system"
EG_WASM_PORT = 18002


class ModuleServer:
    """Envoy Gateway's Wasm HTTP server: serves the modules it cached, at
    `/<p>.wasm` with p the padded base64url of sha256(original URL + salt).
    Runs in a thread on a port of its own (read back, never chosen); counts
    the fetches; `broken` makes it answer 404 (a module it cannot serve)."""

    def __init__(self, salt="sticky-split-test-salt"):
        self.salt = salt
        self.modules = {}  # path -> bytes
        self.fetches = []  # paths fetched, in order
        self.broken = False
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                body = None if server.broken else server.modules.get(self.path)
                server.fetches.append(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass  # Envoy's fetches are counted, not printed

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def path_for(self, original_url):
        digest = hashlib.sha256((original_url + self.salt).encode()).digest()
        return "/" + base64.urlsafe_b64encode(digest).decode() + ".wasm"

    def publish(self, original_url, module):
        """Caches `module` for `original_url`; (serving URI, sha256)."""
        path = self.path_for(original_url)
        self.modules[path] = module
        uri = f"http://envoy-gateway.{EG_NAMESPACE}.svc.cluster.local:{EG_WASM_PORT}{path}"
        return uri, hashlib.sha256(module).hexdigest()

    def cluster(self):
        """Envoy Gateway's `wasm_cluster`, pointing here (in Envoy Gateway:
        DNS to its Service, HTTP/2 and mTLS; plain HTTP/1.1 here)."""
        return envoy.static_cluster(WASM_CLUSTER, self.port)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
