"""Local test servers, bound to 127.0.0.1: a small IdP (JWKS with fault knobs and a request
counter) and an upstream that echoes the request headers it received."""
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from jwt_tool import Key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    def __init__(self, handler_cls, port: int | None = None):
        self.port = port or free_port()
        self._handler_cls = handler_cls
        self._httpd = None

    def start(self):
        handler = self._handler_cls
        owner = self

        class H(handler):
            server_owner = owner

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes, ctype="application/json"):
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _IdPHandler(_Quiet):
    def do_GET(self):
        idp = self.server_owner
        if self.path.split("?")[0] != "/jwks":
            return self._send(404, b"{}")
        with idp.lock:
            idp.jwks_requests += 1
            mode, delay = idp.jwks_mode, idp.jwks_delay
        if delay:
            time.sleep(delay)
        if mode == "503":
            return self._send(503, b'{"error":"unavailable"}')
        if mode == "garbage":
            return self._send(200, b"<html>not json")
        if mode == "reset":
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(200, json.dumps(idp.jwks()).encode())


class IdP(_Server):
    """Serves `/jwks` for its keys. Knobs: `jwks_mode` ("ok", "503", "garbage", "reset"),
    `jwks_delay` seconds; `jwks_requests` counts every JWKS request."""

    def __init__(self, issuer: str, algs=("RS256", "ES256", "EdDSA"), port: int | None = None):
        super().__init__(_IdPHandler, port)
        self.issuer = issuer
        self.keys = {}
        self.extra_jwks = []
        self.lock = threading.Lock()
        self.jwks_requests = 0
        self.jwks_mode = "ok"
        self.jwks_delay = 0.0
        for a in algs:
            self.add_key(a)

    def add_key(self, alg: str, kid: str | None = None) -> Key:
        k = Key(alg, kid)
        self.keys[k.kid] = k
        return k

    def key(self, alg: str) -> Key:
        return next(k for k in reversed(list(self.keys.values())) if k.alg == alg)

    def jwks(self) -> dict:
        return {"keys": [k.public_jwk() for k in self.keys.values()] + list(self.extra_jwks)}


class _EchoHandler(_Quiet):
    def _echo(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        headers = {}
        for k, v in self.headers.items():
            headers.setdefault(k.lower(), []).append(v)
        with self.server_owner.lock:
            self.server_owner.requests += 1
        self._send(200, json.dumps({"method": self.command, "path": self.path, "headers": headers,
                                    "body": body.decode(errors="replace")}).encode())

    do_GET = do_POST = do_PUT = do_DELETE = _echo


class Echo(_Server):
    def __init__(self):
        super().__init__(_EchoHandler)
        self.lock = threading.Lock()
        self.requests = 0
