"""Opaque tokens by introspection (RFC 7662) in a real Envoy, against the test IdP's
introspection endpoint: active, inactive (and the negative cache), revoked after first use (the
cache bound), slow, down, garbage, 5xx, signed answers (RFC 9701) and a forged one, 64
concurrent first requests making one call, and the phantom-token flow (opaque in, JWT out)."""
import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import jwt_tool
from conftest import start_envoy, stop_all
from harness import Envoy, bootstrap, static_cluster, www_authenticate_error
from servers import Echo, IdP, free_port

ISS = "https://idp.example.com"
ISS2 = "https://signed-idp.example.com"
API = "https://api.ecomm.com"
ORDERS = "https://orders.ecomm.com"
EDGE = "https://edge.ecomm.com"


def introspection(cluster, **extra):
    return {"cluster": cluster, "authority": "idp.example.com", "path": "/token/introspection",
            "client_auth": {"method": "client_secret_basic", "client_id": "gw", "client_secret": "s3cr3t"},
            "timeout_ms": 500, "max_cache_seconds": 2, "negative_cache_seconds": 2, **extra}


@pytest.fixture(scope="module")
def stack():
    idp = IdP(ISS, algs=("ES256",)).start()
    idp2 = IdP(ISS2, algs=("ES256",)).start()
    idp2.introspection_mode = "signed"
    echo = Echo().start()
    edge_key = jwt_tool.Key("EdDSA", kid="edge-1")
    plugin = {
        "providers": [
            {"name": "opaque-idp", "issuer": ISS, "audiences": [API], "introspection": introspection("idp")},
            {"name": "signed-idp", "issuer": ISS2, "audiences": [API], "jwks": {"cluster": "idp2", "path": "/jwks"},
             "introspection": introspection("idp2", signed_answers=True)},
            {"name": "down-idp", "issuer": "https://down.example.com", "audiences": [API], "introspection": introspection("down")},
        ],
        "signing": {"issuer": EDGE, "ttl_seconds": 60, "kid": edge_key.kid, "alg": "EdDSA", "private_jwk": edge_key.private_jwk()},
        "routes": [
            {"match": {"path_prefix": "/signed"}, "providers": ["signed-idp"]},
            {"match": {"path_prefix": "/down"}, "providers": ["down-idp"]},
            {"match": {"path_prefix": "/phantom"}, "providers": ["opaque-idp"],
             "mint": {"audience": ORDERS, "copy_claims": ["username"]}},
            {"match": {"path_prefix": "/admin"}, "providers": ["opaque-idp"], "require": {"scopes_all": ["admin"]}},
            {"match": {"path_prefix": "/"}, "providers": ["opaque-idp"]},
        ],
        "forward": {"principal_header": "x-principal", "claims_to_headers": {"client_id": "x-client-id", "username": "x-username"}},
    }
    clusters = [static_cluster("idp", idp.port), static_cluster("idp2", idp2.port), static_cluster("down", free_port()),
                static_cluster("upstream", echo.port)]
    envoy = start_envoy(Envoy(bootstrap(plugin, clusters), name="introspection"))
    yield idp, idp2, echo, envoy, edge_key
    stop_all(envoy, idp, idp2, echo)


def opaque(idp, sub="alice", **claims):
    tok = secrets.token_urlsafe(24)
    jwt_tool.SECRETS.add(tok)
    with idp.lock:
        idp.opaque[tok] = {"sub": sub, "client_id": "web-app", "username": f"{sub}@example.com", "scope": "orders:read",
                           "exp": int(time.time()) + 600, **claims}
    return tok


def get(envoy, path, tok, extra=()):
    return envoy.get(path, [("authorization", f"Bearer {tok}"), *extra])


def calls(idp):
    with idp.lock:
        return idp.introspection_requests


def test_an_active_opaque_token_passes_with_its_claims(stack):
    idp, _, echo, envoy, _ = stack
    tok = opaque(idp)
    n = calls(idp)
    r = get(envoy, "/orders", tok, [("x-principal", "forged"), ("x-username", "root")])
    assert r.status == 200, r
    h = r.upstream_headers
    assert h["x-principal"] == [f'["{ISS}","alice"]']
    assert h["x-username"] == ["alice@example.com"] and h["x-client-id"] == ["web-app"]
    assert get(envoy, "/orders", tok).status == 200
    assert calls(idp) == n + 1, "the second request is served from the cache"
    assert idp.introspection_auth[-1] == idp.introspection_basic
    stats = envoy.stats()
    assert stats["introspection_ok"] >= 1 and stats["introspection_cache_hit"] >= 1


def test_64_concurrent_first_requests_make_one_call(stack):
    idp, _, _, envoy, _ = stack
    tok = opaque(idp, sub="concurrent")
    idp.introspection_delay = 0.3
    try:
        n = calls(idp)
        with ThreadPoolExecutor(64) as pool:
            statuses = list(pool.map(lambda _: get(envoy, "/orders", tok).status, range(64)))
    finally:
        idp.introspection_delay = 0.0
    assert statuses == [200] * 64, statuses
    assert calls(idp) == n + 1


def test_inactive_is_401_and_the_negative_cache_spares_the_server(stack):
    idp, _, echo, envoy, _ = stack
    junk = secrets.token_urlsafe(24)
    n, seen = calls(idp), echo.requests
    for _ in range(3):
        r = get(envoy, "/orders", junk)
        assert r.status == 401, r
        assert www_authenticate_error(r) == "invalid_token"
    assert calls(idp) == n + 1, "one call, then the negative cache"
    assert echo.requests == seen
    stats = envoy.stats()
    assert stats["introspection_inactive"] >= 1 and stats["introspection_negative_hit"] >= 2 and stats["denied.inactive"] >= 3


def test_a_revoked_token_passes_only_until_the_cache_bound(stack):
    idp, _, _, envoy, _ = stack
    tok = opaque(idp, sub="revoked")
    assert get(envoy, "/orders", tok).status == 200
    with idp.lock:
        del idp.opaque[tok]  # revoked at the authorization server
    assert get(envoy, "/orders", tok).status == 200, "cached: max_cache_seconds is the revocation latency"
    time.sleep(2.3)
    assert get(envoy, "/orders", tok).status == 401


@pytest.mark.parametrize("mode,status,counter", [
    ("slow", 503, "introspection_failed.timeout"),
    ("503", 503, "introspection_failed.unreachable"),
    ("garbage", 401, "introspection_failed.bad_answer"),
    ("bad-client", 503, "introspection_failed.status"),
])
def test_faults_fail_closed(stack, mode, status, counter):
    idp, _, echo, envoy, _ = stack
    tok = opaque(idp, sub=f"fault-{mode}")
    before, seen = envoy.stats().get(counter, 0), echo.requests
    basic = idp.introspection_basic
    if mode == "slow":
        idp.introspection_delay = 1.0
    elif mode == "bad-client":
        idp.introspection_basic = "Basic bm9ib2R5Om5vcGU="
    else:
        idp.introspection_mode = mode
    try:
        r = get(envoy, "/orders", tok)
    finally:
        idp.introspection_delay, idp.introspection_mode, idp.introspection_basic = 0.0, "ok", basic
    assert r.status == status, r
    assert echo.requests == seen, "never a pass"
    assert envoy.stats()[counter] - before == 1
    # A failure is not remembered as an answer: once the server is back, the token passes.
    time.sleep(1.1)
    assert get(envoy, "/orders", tok).status == 200


def test_an_unreachable_server_is_503(stack):
    _, _, _, envoy, _ = stack
    r = get(envoy, "/down", secrets.token_urlsafe(16))
    assert r.status == 503, r


def test_signed_answers_are_verified_and_a_forged_one_refused(stack):
    _, idp2, _, envoy, _ = stack
    tok = opaque(idp2, sub="signed")
    r = get(envoy, "/signed", tok)
    assert r.status == 200, r
    assert r.upstream_headers["x-principal"] == [f'["{ISS2}","signed"]']
    forged = opaque(idp2, sub="forged")
    idp2.introspection_mode = "signed-forged"
    try:
        r = get(envoy, "/signed", forged)
    finally:
        idp2.introspection_mode = "signed"
    assert r.status == 401, r
    assert envoy.stats()["introspection_failed.signature"] >= 1


def test_phantom_token_opaque_in_minted_jwt_out(stack):
    idp, _, echo, envoy, edge_key = stack
    tok = opaque(idp, sub="phantom")
    r = get(envoy, "/phantom/orders/1", tok)
    assert r.status == 200, r
    auth = r.upstream_headers["authorization"]
    assert len(auth) == 1 and auth[0].startswith("Bearer ")
    jwt = auth[0][7:]
    claims = jwt_tool.verify(jwt, {edge_key.kid: edge_key})
    assert claims["aud"] == ORDERS and claims["sub"] == "phantom" and claims["iss"] == EDGE
    assert claims["username"] == "phantom@example.com"
    assert tok not in json.dumps(r.upstream_headers), "the opaque token never goes inside"


def test_authorization_on_introspected_claims(stack):
    idp, _, _, envoy, _ = stack
    assert get(envoy, "/admin/x", opaque(idp, sub="reader")).status == 403
    assert get(envoy, "/admin/x", opaque(idp, sub="admin", scope="admin orders:read")).status == 200


def test_the_introspection_endpoint_from_discovery():
    """No `introspection.path`: the discovery document's introspection_endpoint is used."""
    idp = IdP(ISS, algs=("ES256",)).start()
    echo = Echo().start()
    intro = introspection("idp")
    del intro["path"]
    plugin = {"providers": [{"name": "disc", "issuer": ISS, "audiences": [API], "discovery": {"cluster": "idp"}, "introspection": intro}],
              "forward": {"principal_header": "x-principal"}}
    envoy = start_envoy(Envoy(bootstrap(plugin, [static_cluster("idp", idp.port), static_cluster("upstream", echo.port)]), name="intro-discovery"))
    try:
        tok = opaque(idp, sub="discovered")
        r = get(envoy, "/x", tok)
        assert r.status == 200, r
        assert r.upstream_headers["x-principal"] == [f'["{ISS}","discovered"]']
        assert idp.discovery_requests == 1 and calls(idp) == 1
    finally:
        stop_all(envoy, idp, echo)
