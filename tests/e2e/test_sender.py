"""Issue 15 in a real Envoy: sender-constrained tokens. DPoP (RFC 9449): proofs made by client
keys here, replay across Envoy's workers, every attack of the issue refused with its own counter,
server nonces. Certificate binding (RFC 8705): a TLS listener with client certificates this test
makes; the token's `cnf["x5t#S256"]` against the certificate Envoy saw."""
import copy
import hashlib
import http.client
import json
import ssl
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

import jwt_tool
from conftest import start_envoy, stop_all
from harness import Envoy, Response, bootstrap, request, static_cluster
from pki import Pki
from servers import Echo

ISS = "https://idp.ecomm.com"
API = "https://api.ecomm.com"


def thumbprint(jwk: dict) -> str:
    members = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}[jwk["kty"]]
    canon = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return jwt_tool.b64u(hashlib.sha256(canon.encode()).digest())


class DpopClient:
    """A client key pair and the proofs it signs (RFC 9449 §4.2)."""

    def __init__(self, alg="ES256"):
        self.key = jwt_tool.Key(alg)
        self.jwk = {k: v for k, v in self.key.public_jwk().items() if k not in ("kid", "use")}
        self.jkt = thumbprint(self.jwk)

    def proof(self, method, url, token, iat=None, jti=None, header=None, claims=None, key=None):
        h = {"typ": "dpop+jwt", "jwk": self.jwk}
        h.update(header or {})
        c = {"htm": method, "htu": url, "iat": int(time.time()) if iat is None else iat, "jti": jti or uuid.uuid4().hex,
             "ath": jwt_tool.b64u(hashlib.sha256(token.encode()).digest())}
        c.update(claims or {})
        return jwt_tool.encode(key or self.key, c, header=h, kid=False)


@pytest.fixture(scope="module")
def dpop_stack():
    idp = jwt_tool.Key("ES256")
    echo = Echo().start()
    prov = {"name": "idp", "issuer": ISS, "audiences": [API], "jwks": {"inline": {"keys": [idp.public_jwk()]}}}
    plugin = {
        "providers": [
            dict(prov, dpop={"required": True, "max_age_seconds": 60}),
            {"name": "edge", "issuer": "https://edge.ecomm.com", "audiences": [API],
             "jwks": {"inline": {"keys": [idp.public_jwk()]}},
             "dpop": {"required": True, "htu_origin": "https://api.ecomm.com", "nonce": {"lifetime_seconds": 60},
                      "algorithms": ["EdDSA", "ES256"]}},
        ],
        "forward": {"principal_header": "x-principal"},
    }
    envoy = start_envoy(Envoy(bootstrap(plugin, [static_cluster("upstream", echo.port)]), name="dpop"))
    yield idp, echo, envoy
    stop_all(envoy, echo)


def bound(idp, jkt, iss=ISS, **extra):
    return jwt_tool.encode(idp, jwt_tool.claims(iss, API, sub="alice", cnf={"jkt": jkt}, **extra))


def url(envoy, path):
    return f"http://127.0.0.1:{envoy.port}{path}"


def test_dpop_request_allowed_and_replay_refused_across_workers(dpop_stack):
    idp, echo, envoy = dpop_stack
    c = DpopClient()
    tok = bound(idp, c.jkt)
    before = envoy.stats()
    proof = c.proof("GET", url(envoy, "/orders/1"), tok)
    r = envoy.get("/orders/1?page=2", [("authorization", f"DPoP {tok}"), ("dpop", proof)])
    assert r.status == 200, r
    assert r.upstream_headers["x-principal"] == [f'["{ISS}","alice"]'], r
    # The proof goes upstream with the token it belongs to (the token is forwarded as is).
    assert r.upstream_headers["dpop"] == [proof]
    # The same proof again, on new connections (Envoy spreads them over its two workers).
    for _ in range(4):
        r = envoy.get("/orders/1", [("authorization", f"DPoP {tok}"), ("dpop", proof)])
        assert r.status == 401, r
        www = r.header("www-authenticate")
        assert www.startswith("DPoP ") and 'error="invalid_dpop_proof"' in www and 'algs="ES256 EdDSA"' in www, www
    s = envoy.stats()
    assert s.get("denied.dpop_replay", 0) - before.get("denied.dpop_replay", 0) == 4
    assert s.get("dpop_ok", 0) - before.get("dpop_ok", 0) == 1
    # Fresh proofs with the cached token.
    for i in range(3):
        r = envoy.get("/orders/1", [("authorization", f"DPoP {tok}"), ("dpop", c.proof("GET", url(envoy, "/orders/1"), tok))])
        assert r.status == 200, r
    assert envoy.stats().get("cache_hit", 0) >= before.get("cache_hit", 0) + 3


ATTACKS = [
    # (name, how to make the request from (client, other client, token, url) → (headers), counter)
    ("replay of another request's proof", None, "dpop_replay"),
    ("proof for another method", lambda c, o, t, u: [("dpop", c.proof("POST", u, t))], "dpop_method"),
    ("proof for another URL", lambda c, o, t, u: [("dpop", c.proof("GET", u.replace("/orders/1", "/orders/2"), t))], "dpop_url"),
    ("proof signed by a key other than cnf.jkt", lambda c, o, t, u: [("dpop", o.proof("GET", u, t))], "dpop_binding"),
    ("alg none", lambda c, o, t, u: [("dpop", jwt_tool.encode(None, {"htm": "GET", "htu": u, "iat": int(time.time()), "jti": "x"},
                                                               header={"typ": "dpop+jwt", "jwk": c.jwk}, kid=False))], "dpop_algorithm"),
    ("HS256", lambda c, o, t, u: [("dpop", jwt_tool.encode(None, {"htm": "GET", "htu": u, "iat": int(time.time()), "jti": "y"},
                                                            header={"typ": "dpop+jwt", "jwk": {"kty": "oct", "k": "c2VjcmV0"}},
                                                            alg="HS256", kid=False, signature=b"\x01" * 32))], "dpop_algorithm"),
    ("proof carrying a private key", lambda c, o, t, u: [("dpop", c.proof("GET", u, t, header={"jwk": dict(c.jwk, **{"d": c.key.private_jwk()["d"]})}))],
     "dpop_key"),
    ("proof from the future", lambda c, o, t, u: [("dpop", c.proof("GET", u, t, iat=int(time.time()) + 600))], "dpop_iat"),
    ("stale proof", lambda c, o, t, u: [("dpop", c.proof("GET", u, t, iat=int(time.time()) - 600))], "dpop_iat"),
    ("two DPoP headers", lambda c, o, t, u: [("dpop", c.proof("GET", u, t)), ("dpop", c.proof("GET", u, t))], "dpop_multiple"),
    ("ath of another token", lambda c, o, t, u: [("dpop", c.proof("GET", u, t + "x"))], "dpop_ath"),
    ("typ JWT", lambda c, o, t, u: [("dpop", c.proof("GET", u, t, header={"typ": "JWT"}))], "dpop_type"),
    ("no proof", lambda c, o, t, u: [], "dpop_missing"),
]


def test_one_proof_sent_at_once_on_many_connections_passes_once(dpop_stack):
    """Each proof sent 8 times at the same moment (Envoy spreads the connections over its two
    workers, which record what they saw in shared data by compare-and-swap): one passes."""
    idp, _, envoy = dpop_stack
    c = DpopClient()
    tok = bound(idp, c.jkt)
    before = envoy.stats()
    barrier = threading.Barrier(8)

    def one(proof):
        barrier.wait()
        return envoy.get("/orders/1", [("authorization", f"DPoP {tok}"), ("dpop", proof)]).status

    rounds = 12
    with ThreadPoolExecutor(8) as pool:
        for _ in range(rounds):
            proof = c.proof("GET", url(envoy, "/orders/1"), tok)
            statuses = sorted(pool.map(one, [proof] * 8))
            assert statuses == [200] + [401] * 7, statuses
    s = envoy.stats()
    assert s.get("dpop_ok", 0) - before.get("dpop_ok", 0) == rounds
    assert s.get("denied.dpop_replay", 0) - before.get("denied.dpop_replay", 0) == 7 * rounds


@pytest.mark.parametrize("case", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_dpop_attacks_refused_with_their_reason(dpop_stack, case):
    idp, echo, envoy = dpop_stack
    name, make, counter = case
    c, other = DpopClient(), DpopClient()
    tok = bound(idp, c.jkt)
    u = url(envoy, "/orders/1")
    if make is None:
        used = c.proof("GET", u, tok)
        assert envoy.get("/orders/1", [("authorization", f"DPoP {tok}"), ("dpop", used)]).status == 200
        extra = [("dpop", used)]
    else:
        extra = make(c, other, tok, u)
    n, before = echo.requests, envoy.stats().get(f"denied.{counter}", 0)
    r = envoy.get("/orders/1", [("authorization", f"DPoP {tok}")] + extra)
    assert r.status == 401, r
    assert r.header("www-authenticate").startswith("DPoP "), r
    assert echo.requests == n, "a refused request never reaches the upstream"
    assert envoy.stats().get(f"denied.{counter}", 0) == before + 1, name


def test_bound_token_as_bearer_and_unbound_as_dpop(dpop_stack):
    idp, echo, envoy = dpop_stack
    c = DpopClient()
    tok = bound(idp, c.jkt)
    r = envoy.get("/orders/1", [("authorization", f"Bearer {tok}")])
    assert r.status == 401 and 'error="invalid_token"' in r.header("www-authenticate"), r
    plain = jwt_tool.encode(idp, jwt_tool.claims(ISS, API, sub="bob"))
    r = envoy.get("/orders/1", [("authorization", f"Bearer {plain}")])
    assert r.status == 401, "this provider requires DPoP"
    r = envoy.get("/orders/1", [("authorization", f"DPoP {plain}"), ("dpop", c.proof("GET", url(envoy, "/orders/1"), plain))])
    assert r.status == 401
    s = envoy.stats()
    assert s.get("denied.dpop_bearer", 0) >= 2 and s.get("denied.dpop_unbound", 0) >= 1


def test_server_nonce_and_public_origin(dpop_stack):
    """The `edge` provider names the URL clients use behind a load balancer (`htu_origin`) and
    wants server nonces: the first proof gets `use_dpop_nonce` and a `DPoP-Nonce`, the retry
    with it passes."""
    idp, echo, envoy = dpop_stack
    c = DpopClient("EdDSA")
    tok = bound(idp, c.jkt, iss="https://edge.ecomm.com")
    public = "https://api.ecomm.com/orders/1"
    r = envoy.get("/orders/1", [("authorization", f"DPoP {tok}"), ("dpop", c.proof("GET", public, tok))])
    assert r.status == 401 and 'error="use_dpop_nonce"' in r.header("www-authenticate"), r
    nonce = r.header("dpop-nonce")
    assert nonce
    r = envoy.get("/orders/1", [("authorization", f"DPoP {tok}"), ("dpop", c.proof("GET", public, tok, claims={"nonce": nonce}))])
    assert r.status == 200, r
    # Any worker accepts the nonce (the secret is shared data).
    for _ in range(3):
        r = envoy.get("/orders/1", [("authorization", f"DPoP {tok}"), ("dpop", c.proof("GET", public, tok, claims={"nonce": nonce}))])
        assert r.status == 200, r
    # The request's own address is not the public URL.
    r = envoy.get("/orders/1", [("authorization", f"DPoP {tok}"),
                                ("dpop", c.proof("GET", url(envoy, "/orders/1"), tok, claims={"nonce": nonce}))])
    assert r.status == 401 and envoy.stats().get("denied.dpop_url", 0) >= 1


# ---------- certificate-bound tokens (RFC 8705) ----------

def https(port, pki, path, headers, client=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(pki.d / "ca.pem"))
    if client:
        ctx.load_cert_chain(client[0], client[1])
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        c.request("GET", path, headers=dict(headers))
        r = c.getresponse()
        return Response(r.status, r.getheaders(), r.read())
    finally:
        c.close()


@pytest.fixture(scope="module")
def mtls_stack(tmp_path_factory):
    pki = Pki(tmp_path_factory.mktemp("pki"))
    idp = jwt_tool.Key("ES256")
    echo = Echo().start()
    plugin = {"providers": [{"name": "idp", "issuer": ISS, "audiences": [API], "jwks": {"inline": {"keys": [idp.public_jwk()]}},
                             "certificate_binding": {"required": True}}],
              "forward": {"principal_header": "x-principal"}}
    cfg = bootstrap(plugin, [static_cluster("upstream", echo.port)])
    tls_chain = copy.deepcopy(cfg["static_resources"]["listeners"][0])
    tls_chain["name"] = "tls"
    tls_chain["filter_chains"][0]["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        # Optional client certificates (validated against the test CA when presented), so the
        # test can also show a bound token on a TLS connection without one.
        "require_client_certificate": False,
        "common_tls_context": {
            "tls_certificates": [{"certificate_chain": {"filename": str(pki.d / "server.pem")},
                                  "private_key": {"filename": str(pki.d / "server.key")}}],
            "validation_context": {"trusted_ca": {"filename": str(pki.d / "ca.pem")}}}}}
    cfg["static_resources"]["listeners"].insert(0, tls_chain)
    envoy = start_envoy(Envoy(cfg, name="mtls"))
    listeners = json.loads(envoy.admin("/listeners?format=json").body)["listener_statuses"]
    ports = {l["name"]: l["local_address"]["socket_address"]["port_value"] for l in listeners}
    yield pki, idp, echo, envoy, ports
    stop_all(envoy, echo)


def test_certificate_bound_token(mtls_stack):
    pki, idp, echo, envoy, ports = mtls_stack
    alice = pki.client("alice")
    mallory = pki.client("mallory")
    tok = jwt_tool.encode(idp, jwt_tool.claims(ISS, API, sub="alice", cnf={"x5t#S256": alice[2]}))
    auth = [("authorization", f"Bearer {tok}")]
    before = envoy.stats()
    r = https(ports["tls"], pki, "/orders/1", auth, client=alice)
    assert r.status == 200, r
    r = https(ports["tls"], pki, "/orders/1", auth, client=alice)
    assert r.status == 200, "cached token, same certificate"
    n = echo.requests
    r = https(ports["tls"], pki, "/orders/1", auth, client=mallory)
    assert r.status == 401 and 'error="invalid_token"' in r.header("www-authenticate"), r
    r = https(ports["tls"], pki, "/orders/1", auth)
    assert r.status == 401, "TLS without a client certificate"
    r = request(ports["edge"], "/orders/1", auth)
    assert r.status == 401, "a certificate-bound token over plain HTTP"
    plain = jwt_tool.encode(idp, jwt_tool.claims(ISS, API, sub="bob"))
    r = https(ports["tls"], pki, "/orders/1", [("authorization", f"Bearer {plain}")], client=alice)
    assert r.status == 401, "the provider requires bound tokens"
    assert echo.requests == n
    s = envoy.stats()
    d = lambda k: s.get(k, 0) - before.get(k, 0)
    assert d("certificate_bound") == 2
    assert d("denied.certificate_mismatch") == 1
    assert d("denied.certificate_missing") == 2
    assert d("denied.certificate_unbound") == 1
