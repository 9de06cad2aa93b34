"""Local test servers, bound to 127.0.0.1: a small IdP (JWKS with fault knobs and a request
counter) and an upstream that echoes the request headers it received."""
import base64
import json
import os
import socket
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt_tool
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

        # 127.0.0.1 always, except in the compose demo's container (TEF_BIND=0.0.0.0).
        self._httpd = ThreadingHTTPServer((os.environ.get("TEF_BIND", "127.0.0.1"), self.port), H)
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
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle + delayed ACK stall every
    # keep-alive response by ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes, ctype="application/json", headers=None):
        try:
            self.send_response(status)
            self.send_header("content-type", ctype)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client (Envoy) gave up first, e.g. past its timeout


class _IdPHandler(_Quiet):
    def do_GET(self):
        idp = self.server_owner
        if self.path.split("?")[0] == "/demo-token" and idp.demo_audience:
            # The demo's --serve mode only: a fresh client token (five minutes), as text.
            tok = jwt_tool.encode(idp.key("ES256"), jwt_tool.claims(idp.issuer, idp.demo_audience, sub="alice", scope="orders:read profile"))
            return self._send(200, tok.encode(), ctype="text/plain")
        if self.path.split("?")[0] == "/.well-known/openid-configuration":
            with idp.lock:
                idp.discovery_requests += 1
                mode, delay = idp.discovery_mode, idp.discovery_delay
            if delay:
                time.sleep(delay)
            if mode == "503":
                return self._send(503, b'{"error":"unavailable"}')
            if mode == "garbage":
                return self._send(200, b"<html>not json")
            doc = {"issuer": idp.discovery_issuer or idp.issuer, "jwks_uri": f"http://keys.idp.test/jwks?via=discovery",
                   "introspection_endpoint": "http://idp.test/token/introspection"}
            return self._send(200, json.dumps(doc).encode())
        if self.path.split("?")[0] != "/jwks":
            return self._send(404, b"{}")
        with idp.lock:
            idp.jwks_requests += 1
            idp.jwks_paths.append((self.headers.get("host"), self.path))
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
        if mode == "huge":
            pad = [{"kty": "oct", "kid": f"pad-{i}", "k": "A" * 64} for i in range(20000)]
            return self._send(200, json.dumps({"keys": idp.jwks()["keys"] + pad}).encode())
        self._send(200, json.dumps(idp.jwks()).encode())


    def do_POST(self):
        idp = self.server_owner
        if self.path.split("?")[0] != "/token/introspection":
            return self._send(404, b"{}")
        n = int(self.headers.get("content-length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(n).decode())
        with idp.lock:
            idp.introspection_requests += 1
            mode, delay, cc = idp.introspection_mode, idp.introspection_delay, idp.introspection_cache_control
            idp.introspection_auth.append(self.headers.get("authorization"))
        if delay:
            time.sleep(delay)
        if self.headers.get("authorization") != idp.introspection_basic:
            return self._send(401, b'{"error":"invalid_client"}')
        if mode == "503":
            return self._send(503, b'{"error":"temporarily_unavailable"}')
        if mode == "garbage":
            return self._send(200, b"<html>not json")
        token = (form.get("token") or [""])[0]
        with idp.lock:
            claims = idp.opaque.get(token)
        answer = {"active": False} if claims is None else {"active": True, **claims}
        headers = {"cache-control": cc} if cc else {}
        if mode == "signed" or mode == "signed-forged":
            key = idp.key("ES256") if mode == "signed" else Key("ES256", kid=idp.key("ES256").kid)
            payload = {"iss": idp.issuer, "aud": idp.introspection_client, "iat": int(time.time()), "token_introspection": answer}
            body = jwt_tool.encode(key, payload, header={"typ": "token-introspection+jwt"}).encode()
            return self._send(200, body, ctype="application/token-introspection+jwt", headers=headers)
        self._send(200, json.dumps(answer).encode(), headers=headers)


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
        # RFC 7662 introspection at /token/introspection (HTTP Basic gw:s3cr3t): `opaque` maps
        # active tokens to their claims (anything else is inactive). Knobs: `introspection_mode`
        # ("ok", "503", "garbage", "signed", "signed-forged"), `introspection_delay` seconds,
        # `introspection_cache_control`; `introspection_requests` counts the calls.
        self.opaque = {}
        # OpenID discovery at /.well-known/openid-configuration (`discovery_issuer` overrides the
        # issuer it names); `discovery_requests` counts them, `jwks_paths` the JWKS paths asked.
        self.discovery_issuer = None
        self.discovery_mode, self.discovery_delay = "ok", 0.0  # "ok", "503", "garbage"; seconds
        self.demo_audience = None
        self.discovery_requests = 0
        self.jwks_paths = []
        self.introspection_client = "gw"
        self.introspection_basic = "Basic " + base64.b64encode(b"gw:s3cr3t").decode()
        self.introspection_mode = "ok"
        self.introspection_delay = 0.0
        self.introspection_cache_control = None
        self.introspection_requests = 0
        self.introspection_auth = []
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

    def access_token(self, api: str, client_id: str = "web-app", sub: str = "alice", rfc9068: bool = False,
                     alg: str = "ES256", **extra) -> str:
        """An access token as OIDC IdPs issue them: `aud` the API, `azp` the client (RFC 9068's
        `typ: at+jwt` and `client_id` with `rfc9068`)."""
        c = jwt_tool.claims(self.issuer, api, sub=sub, azp=client_id, scope="openid read", **extra)
        header = None
        if rfc9068:
            c["client_id"] = client_id
            header = {"typ": "at+jwt"}
        return jwt_tool.encode(self.key(alg), c, header=header)

    def id_token(self, client_id: str = "web-app", sub: str = "alice", alg: str = "ES256", **extra) -> str:
        """An OpenID Connect ID token (OIDC Core §2): `aud` and `azp` the client, `nonce`,
        `at_hash`, `auth_time`."""
        c = jwt_tool.claims(self.issuer, client_id, sub=sub, azp=client_id, nonce=uuid.uuid4().hex,
                            at_hash=jwt_tool.b64u(os.urandom(16)), auth_time=int(time.time()), **extra)
        return jwt_tool.encode(self.key(alg), c)


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


ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
TXN_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:txn_token"


class _STSHandler(_Quiet):
    def do_GET(self):
        sts = self.server_owner
        if self.path.split("?")[0] != "/jwks":
            return self._send(404, b"{}")
        with sts.lock:
            sts.jwks_requests += 1
        self._send(200, json.dumps({"keys": [k.public_jwk() for k in sts.keys.values()]}).encode())

    def _error(self, status, error):
        self._send(status, json.dumps({"error": error, "error_description": error}).encode())

    def do_POST(self):
        from urllib.parse import parse_qs, unquote

        sts = self.server_owner
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n).decode()
        with sts.lock:
            sts.token_requests += 1
            mode, delay, ttl = sts.mode, sts.delay, sts.ttl
            expires_in = ttl if sts.expires_in is None else sts.expires_in
        form = parse_qs(raw, keep_blank_values=True, strict_parsing=True)
        sts.last_form, sts.last_raw, sts.last_headers = form, raw, {k.lower(): v for k, v in self.headers.items()}
        if delay:
            time.sleep(delay)
        if mode == "close":
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if mode == "500":
            return self._send(500, b"internal error")
        if mode == "garbage":
            return self._send(200, b"<html>surprise</html>")
        if mode == "huge":
            return self._send(200, json.dumps({"access_token": "x" * 100_000, "issued_token_type": ACCESS_TOKEN_TYPE,
                                               "token_type": "Bearer"}).encode())
        # Client authentication (RFC 6749 2.3.1): Basic with form-encoded parts, or body fields.
        auth = self.headers.get("authorization", "")
        if auth.startswith("Basic "):
            cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            cid, secret = unquote(cid.replace("+", " ")), unquote(secret.replace("+", " "))
        else:
            cid, secret = form.get("client_id", [""])[0], form.get("client_secret", [""])[0]
        if sts.clients.get(cid) != secret:
            return self._error(401, "invalid_client")
        if form.get("grant_type") != [TOKEN_EXCHANGE]:
            return self._error(400, "unsupported_grant_type")
        if mode in ("invalid_grant", "invalid_target"):
            return self._error(400, mode)
        try:
            # 60 s of clock skew, as the filter's providers allow by default.
            keys = {**sts.idp.keys, **(sts.keys if sts.subject_keys is None else sts.subject_keys)}
            subject = jwt_tool.verify(form["subject_token"][0], keys, leeway=60)
        except (KeyError, ValueError):
            return self._error(400, "invalid_grant")
        targets = form.get("audience", []) + form.get("resource", [])
        if not targets or any(t not in sts.targets for t in targets):
            return self._error(400, "invalid_target")
        held = set(subject.get("scope", "").split())
        asked = set(form.get("scope", [""])[0].split())
        if not asked <= held:
            return self._error(400, "invalid_scope")
        scope = asked or held
        if mode == "wider_scope":
            scope = held | {"admin:all"}
        if form.get("requested_token_type") == [TXN_TOKEN_TYPE]:
            return self._txn_token(sts, mode, cid, subject, targets, scope, form)
        aud = targets[0] if len(targets) == 1 else targets
        if mode == "wrong_aud":
            aud = "https://elsewhere.ecomm.com"
        now = int(time.time())
        act = {"sub": cid}
        if isinstance(subject.get("act"), dict):
            act["act"] = subject["act"]  # RFC 8693 4.1: the chain, newest actor outermost
        claims = {"iss": sts.issuer, "sub": subject["sub"], "aud": aud, "iat": now, "exp": now + ttl,
                  "scope": " ".join(sorted(scope)), "act": act,
                  "orig_iss": subject.get("orig_iss", subject["iss"])}
        key = next(iter(sts.keys.values()))
        if mode == "bad_sig":
            key = Key("ES256", kid=key.kid)
        token = jwt_tool.encode(key, claims, header={"typ": "at+jwt"})
        if mode == "opaque":
            token = "opaque-" + jwt_tool.b64u(token.encode()[:24])
        self._send(200, json.dumps({"access_token": token, "issued_token_type": ACCESS_TOKEN_TYPE,
                                    "token_type": "Bearer", "expires_in": expires_in, "scope": claims["scope"]}).encode())


    def _txn_token(self, sts, mode, cid, subject, targets, scope, form):
        """The Txn-Token mode (draft-ietf-oauth-transaction-tokens-10 §7): one trust domain as
        the audience, `request_context` / `request_details` JSON objects, a `txntoken+jwt` for
        the call chain with a fresh `txn`; answered with `token_type: N_A`."""
        try:
            rctx = json.loads(form["request_context"][0])
            details = json.loads(form["request_details"][0])
            assert isinstance(rctx, dict) and isinstance(details, dict)
        except (KeyError, ValueError, AssertionError):
            return self._error(400, "invalid_request")
        if len(targets) != 1:
            return self._error(400, "invalid_target")
        now = int(time.time())
        txn = str(uuid.uuid4())
        req_wl = cid
        # A replacement (§7.3 of the draft): the subject is a Txn-Token; the transaction, its
        # subject and its context stay, the requesting workload is appended.
        replacing = jwt_tool.decode_unverified(form["subject_token"][0])[0].get("typ") == "txntoken+jwt"
        if replacing:
            if subject.get("aud") != targets[0]:
                return self._error(400, "invalid_target")
            txn, rctx, details = subject["txn"], subject.get("rctx", rctx), subject.get("tctx", details)
            prev = subject.get("req_wl", [])
            req_wl = (prev if isinstance(prev, list) else [prev]) + [cid]
        with sts.lock:
            sts.txn_requests += 1
            sts.txns.append(txn)
        claims = {"iss": sts.issuer, "aud": targets[0], "iat": now, "exp": now + (3600 if mode == "long_lived" else 60),
                  "txn": txn, "sub": subject["sub"], "scope": " ".join(sorted(scope)), "req_wl": req_wl,
                  "rctx": rctx, "tctx": details}
        if mode == "wrong_aud":
            claims["aud"] = "elsewhere.example"
        if mode == "no_txn":
            del claims["txn"]
        key = next(iter(sts.keys.values()))
        if mode == "bad_sig":
            key = Key("ES256", kid=key.kid)
        token = jwt_tool.encode(key, claims, header={"typ": "at+jwt" if mode == "wrong_typ" else "txntoken+jwt"})
        self._send(200, json.dumps({"access_token": token, "issued_token_type": TXN_TOKEN_TYPE,
                                    "token_type": "N_A", "expires_in": 60}).encode())


class STS(_Server):
    """A small RFC 8693 STS: client authentication (Basic or post), subject tokens verified with
    the IdP's keys, audience/resource allow-list, scope down-scoping, ES256 JWTs for the requested
    audience, its own `/jwks`. Knobs: `mode` ("ok", "500", "garbage", "close", "wrong_aud",
    "bad_sig", "wider_scope", "invalid_grant", "invalid_target", "opaque"; for Txn-Tokens also
    "wrong_typ", "long_lived", "no_txn"), `delay` seconds, `ttl`,
    `expires_in` (what the answer says, when not `ttl`);
    `token_requests` counts token calls; `last_form` holds the last decoded form."""

    def __init__(self, issuer: str, idp: IdP, targets, client_id="gateway", client_secret="s3cr3t", port=None,
                 clients: dict | None = None, subject_keys: dict | None = None):
        super().__init__(_STSHandler, port)
        self.issuer, self.idp, self.targets = issuer, idp, set(targets)
        self.client_id, self.client_secret = client_id, client_secret
        # Further clients (id → secret), e.g. a sidecar exchanging a token for the next hop.
        self.clients = {client_id: client_secret, **(clients or {})}
        # Keys subject tokens may be signed with besides the IdP's (kid → key): its own, so
        # that a token it issued can be exchanged again on the next hop.
        self.subject_keys = subject_keys
        for secret in self.clients.values():
            jwt_tool.SECRETS.add(secret)
        k = Key("ES256", kid="sts-1")
        self.keys = {k.kid: k}
        self.lock = threading.Lock()
        self.token_requests = self.jwks_requests = self.txn_requests = 0
        self.txns = []
        self.mode, self.delay, self.ttl = "ok", 0.0, 300
        self.expires_in = None
        self.last_form = self.last_raw = self.last_headers = None


class _ServiceHandler(_Quiet):
    def do_GET(self):
        """Calls the next service through its outbound proxy with the token it received (and a
        forged identity header, which must never arrive), then reports both sides."""
        import http.client

        svc = self.server_owner
        with svc.lock:
            svc.requests += 1
        seen = {k.lower(): v for k, v in self.headers.items()}
        c = http.client.HTTPConnection("127.0.0.1", svc.next_port, timeout=10)
        try:
            c.putrequest("GET", svc.next_path, skip_host=True, skip_accept_encoding=True)
            c.putheader("host", svc.next_host)
            for h in ("authorization", "txn-token"):
                if h in seen:
                    c.putheader(h, seen[h])
            c.putheader("x-user-sub", "admin")
            c.putheader("x-caller", "forged")
            c.endheaders()
            r = c.getresponse()
            body = r.read()
            status = r.status
        except OSError as e:
            status, body = 599, str(e).encode()
        finally:
            c.close()
        self._send(200, json.dumps({"saw": seen, "next_status": status,
                                    "next_body": body.decode(errors="replace")}).encode())


class Service(_Server):
    """A service in a call chain: on every request it calls `next_path` on `next_host` through
    the proxy at `next_port` (its sidecar's outbound listener) with the token it got."""

    def __init__(self, next_port: int, next_host: str, next_path: str = "/b/echo"):
        super().__init__(_ServiceHandler)
        self.lock = threading.Lock()
        self.requests = 0
        self.next_port, self.next_host, self.next_path = next_port, next_host, next_path
