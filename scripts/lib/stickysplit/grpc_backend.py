"""A gRPC backend over cleartext HTTP/2 (h2c) whose every outcome is chosen
by the method called, so that tests see exactly what Envoy forwards:

- `/test.Pools/Ok`: headers, one message naming the pool, trailers with
  grpc-status 0;
- `/test.Pools/Unavailable`: headers, one message, trailers with
  grpc-status 14 (the application's own UNAVAILABLE);
- `/test.Pools/NotFound`: a trailers-only response, grpc-status 5;
- `/test.Pools/Reset`: headers, then RST_STREAM: a call with no status.

Any real gRPC client (grpcio) can call it with raw bytes as messages. Every
response carries `x-served-by: <name>`."""

import socket
import threading

import h2.config
import h2.connection
import h2.errors
import h2.events

SERVICE = "/test.Pools/"
METHODS = ("Ok", "Unavailable", "NotFound", "Reset")


def frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message, uncompressed."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


class GrpcBackend:
    """Serves on 127.0.0.1 (port 0: the OS picks; `.port` tells) in a thread."""

    def __init__(self, name, port=0):
        self.name = name
        self.calls = 0
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        """Stops listening at once: later connections are refused (shutdown
        first, since close() alone leaves a socket that a thread blocked in
        accept() holds still listening)."""
        self._stop.set()
        for end in (lambda: self._sock.shutdown(socket.SHUT_RDWR), self._sock.close):
            try:
                end()
            except OSError:
                pass

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, sock):
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        paths = {}
        try:
            sock.sendall(conn.data_to_send())
            while not self._stop.is_set():
                data = sock.recv(65535)
                if not data:
                    return
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        paths[ev.stream_id] = dict(ev.headers).get(":path", "")
                    elif isinstance(ev, h2.events.DataReceived):
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        self._answer(conn, ev.stream_id, paths.pop(ev.stream_id, ""))
                sock.sendall(conn.data_to_send())
        except OSError:
            return
        finally:
            sock.close()

    def _answer(self, conn, sid, path):
        with self._lock:
            self.calls += 1
        method = path[len(SERVICE):] if path.startswith(SERVICE) else ""
        headers = [(":status", "200"), ("content-type", "application/grpc"), ("x-served-by", self.name)]
        if method == "NotFound":
            conn.send_headers(sid, headers + [("grpc-status", "5"), ("grpc-message", "no such thing")], end_stream=True)
            return
        if method not in METHODS:
            conn.send_headers(sid, headers + [("grpc-status", "12"), ("grpc-message", f"unknown method {path}")],
                              end_stream=True)
            return
        conn.send_headers(sid, headers)
        if method == "Reset":
            conn.reset_stream(sid, error_code=h2.errors.ErrorCodes.INTERNAL_ERROR)
            return
        conn.send_data(sid, frame(self.name.encode()))
        status = "0" if method == "Ok" else "14"
        conn.send_headers(sid, [("grpc-status", status), ("grpc-message", "" if status == "0" else "overloaded")],
                          end_stream=True)
