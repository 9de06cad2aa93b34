"""Issue 13 in a real Envoy: per-route authorization (`require` with scopes and claims, methods
in `match`), ID tokens refused while the same IdP's access tokens pass, a JWKS key without a
`kid`, fifty issuers side by side, and OpenID discovery of the JWKS."""
import pytest

import jwt_tool
from conftest import start_envoy, stop_all
from harness import Envoy, bootstrap, static_cluster, www_authenticate_error
from servers import Echo, IdP, free_port

ISS = "https://idp.ecomm.com"
API = "https://api.ecomm.com"


@pytest.fixture(scope="module")
def stack():
    idp = IdP(ISS, algs=("ES256",)).start()
    kidless = jwt_tool.Key("ES256")
    jwk = kidless.public_jwk()
    del jwk["kid"]
    idp.extra_jwks.append(jwk)
    echo = Echo().start()
    plugin = {
        "providers": [{"name": "idp", "issuer": ISS, "audiences": [API], "client_ids": ["web-app"],
                       "jwks": {"cluster": "idp", "path": "/jwks"}}],
        "routes": [
            {"match": {"path_prefix": "/admin", "methods": ["POST", "DELETE"]},
             "require": {"scopes_all": ["admin"], "scopes_any": ["ops", "sre"], "claims": {"groups": ["ops"]}}},
            {"match": {"path_prefix": "/admin"}, "require": {"scopes_any": ["read", "admin"]}},
            {"match": {"path_prefix": "/reports"},
             "require": {"claims": {"realm_access.roles": ["auditor"], "email_verified": True}}},
            {"match": {"path_prefix": "/"}},
        ],
        "forward": {"principal_header": "x-principal", "strip_headers": ["groups", "x-scope"]},
    }
    envoy = start_envoy(Envoy(bootstrap(plugin, [static_cluster("idp", idp.port), static_cluster("upstream", echo.port)]),
                              name="authorization"))
    yield idp, echo, envoy, kidless
    stop_all(envoy, idp, echo)


def tok(idp, **extra):
    c = jwt_tool.claims(ISS, API, sub="alice", **extra)
    return jwt_tool.encode(idp.key("ES256"), c)


ADMIN = {"scope": "admin ops", "groups": ["dev", "ops"]}
CASES = [
    # (name, method, path, claims, status, expected WWW-Authenticate scope attribute or None)
    ("admin POST allowed", "POST", "/admin/users", ADMIN, 200, None),
    ("admin DELETE allowed", "DELETE", "/admin/users/1", ADMIN, 200, None),
    ("admin POST without admin scope", "POST", "/admin/users", {"scope": "ops", "groups": ["ops"]}, 403, "admin"),
    ("admin POST with none of ops/sre", "POST", "/admin/users", {"scope": "admin", "groups": ["ops"]}, 403, "ops sre"),
    ("admin POST outside the ops group", "POST", "/admin/users", {"scope": "admin sre", "groups": ["dev"]}, 403, ""),
    ("admin GET needs read or admin only", "GET", "/admin/users", {"scope": "read"}, 200, None),
    ("admin GET without either", "GET", "/admin/users", {"scope": "write"}, 403, "admin read"),
    ("reports with the role", "GET", "/reports/q1", {"realm_access": {"roles": ["auditor"]}, "email_verified": True}, 200, None),
    ("reports unverified email", "GET", "/reports/q1", {"realm_access": {"roles": ["auditor"]}, "email_verified": False}, 403, ""),
    ("reports without the role", "GET", "/reports/q1", {"realm_access": {"roles": ["viewer"]}, "email_verified": True}, 403, ""),
    ("other paths need no rule", "PUT", "/orders/1", {"scope": "write"}, 200, None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_per_route_and_method_authorization(stack, case):
    idp, echo, envoy, _ = stack
    _, method, path, claims, status, scope = case
    n, before = echo.requests, envoy.stats().get("denied.forbidden", 0)
    r = envoy.get(path, [("authorization", f"Bearer {tok(idp, **claims)}")], method=method)
    assert r.status == status, r
    if status == 200:
        assert echo.requests == n + 1
        return
    assert echo.requests == n, "a refused request never reaches the upstream"
    assert www_authenticate_error(r) == "insufficient_scope"
    www = r.header("www-authenticate")
    if scope:
        assert f'scope="{scope}"' in www, www
    else:
        assert "scope=" not in www.replace("insufficient_scope", ""), www
    assert envoy.stats()["denied.forbidden"] - before == 1


def test_client_headers_never_decide(stack):
    idp, echo, envoy, _ = stack
    t = tok(idp, scope="admin sre", groups=["dev"])
    r = envoy.get("/admin/users", [("authorization", f"Bearer {t}"), ("groups", "ops"), ("x-scope", "admin ops")], method="POST")
    assert r.status == 403, r


def test_id_tokens_are_refused_and_access_tokens_pass(stack):
    idp, _, envoy, _ = stack
    before = envoy.stats().get("denied.id_token", 0)
    # An ID token whose audience the operator (wrongly) also accepts still fails: nonce, at_hash.
    for t in [idp.id_token(), idp.id_token(client_id=API), idp.id_token(client_id=API, typ="ID")]:
        r = envoy.get("/orders", [("authorization", f"Bearer {t}")])
        assert r.status in (401,), r
        assert www_authenticate_error(r) == "invalid_token"
    # The first is for the client only (aud web-app, a configured client id): refused as an ID token too.
    assert envoy.stats()["denied.id_token"] - before == 3
    for t in [idp.access_token(API), idp.access_token(API, rfc9068=True)]:
        r = envoy.get("/orders", [("authorization", f"Bearer {t}")])
        assert r.status == 200, r
        assert r.upstream_headers["x-principal"] == [f'["{ISS}","alice"]']


def test_a_key_without_kid_is_a_candidate(stack):
    idp, _, envoy, kidless = stack
    c = jwt_tool.claims(ISS, API, sub="bob")
    r = envoy.get("/orders", [("authorization", f"Bearer {jwt_tool.encode(kidless, c, kid='rotated-2026')}")])
    assert r.status == 200, r
    assert r.upstream_headers["x-principal"] == [f'["{ISS}","bob"]']
    forged = jwt_tool.encode(jwt_tool.Key("ES256"), c, kid="rotated-2026")
    assert envoy.get("/orders", [("authorization", f"Bearer {forged}")]).status == 401


def test_fifty_issuers_keep_their_subjects_apart():
    keys = [jwt_tool.Key("ES256", kid=f"k{i}") for i in range(50)]
    echo = Echo().start()
    plugin = {
        "providers": [{"name": f"idp{i}", "issuer": f"https://idp{i}.ecomm.com", "audiences": [API],
                       "jwks": {"inline": {"keys": [k.public_jwk()]}}} for i, k in enumerate(keys)],
        "forward": {"principal_header": "x-principal"},
    }
    envoy = start_envoy(Envoy(bootstrap(plugin, [static_cluster("upstream", echo.port)]), name="issuers50"))
    try:
        seen = set()
        for i in (0, 1, 17, 48, 49):
            iss = f"https://idp{i}.ecomm.com"
            t = jwt_tool.encode(keys[i], jwt_tool.claims(iss, API, sub="alice"))
            r = envoy.get("/", [("authorization", f"Bearer {t}")])
            assert r.status == 200, r
            principal = r.upstream_headers["x-principal"][0]
            assert principal == f'["{iss}","alice"]'
            seen.add(principal)
            # Another issuer's key cannot speak for this one.
            wrong = jwt_tool.encode(keys[(i + 1) % 50], jwt_tool.claims(iss, API, sub="alice"), kid=f"k{i}")
            assert envoy.get("/", [("authorization", f"Bearer {wrong}")]).status == 401
        assert len(seen) == 5
        stats = envoy.stats()
        assert not any("alice" in k for k in stats), "metrics never carry a subject"
    finally:
        stop_all(envoy, echo)


def test_discovery_finds_the_jwks_and_refuses_a_document_for_another_issuer():
    good, evil = IdP(ISS, algs=("ES256",)).start(), IdP("https://evil.ecomm.com", algs=("ES256",)).start()
    evil.discovery_issuer = "https://someone-else.example"
    echo = Echo().start()
    plugin = {
        "providers": [{"name": "idp", "issuer": ISS, "audiences": [API], "discovery": {"cluster": "idp", "authority": "idp.test"}},
                      {"name": "evil", "issuer": "https://evil.ecomm.com", "audiences": [API], "discovery": {"cluster": "evil"}}],
    }
    envoy = start_envoy(Envoy(bootstrap(plugin, [static_cluster("idp", good.port), static_cluster("evil", evil.port),
                                                 static_cluster("upstream", echo.port)]), name="discovery"))
    try:
        t = jwt_tool.encode(good.key("ES256"), jwt_tool.claims(ISS, API))
        for _ in range(3):
            assert envoy.get("/", [("authorization", f"Bearer {t}")]).status == 200
        assert good.discovery_requests == 1, "once per refresh period for every worker"
        assert good.jwks_paths == [("keys.idp.test", "/jwks?via=discovery")], "the JWKS where the document says"
        t = jwt_tool.encode(evil.key("ES256"), jwt_tool.claims("https://evil.ecomm.com", API))
        r = envoy.get("/", [("authorization", f"Bearer {t}")])
        assert r.status == 503, r
        assert evil.discovery_requests >= 1 and evil.jwks_requests == 0
        assert "discovery document names another issuer" in envoy.log()
    finally:
        stop_all(envoy, good, evil, echo)


@pytest.mark.parametrize("fault", ["down", "slow", "503", "garbage"])
def test_a_discovery_fault_fails_closed(fault):
    """The discovery document unreachable, slower than timeout_ms, 5xx or garbage: no keys, so 503
    (never a pass, never a 401 for a good token), and no JWKS fetch from a document never read."""
    idp = IdP(ISS, algs=("ES256",)).start()
    echo = Echo().start()
    if fault == "slow":
        idp.discovery_delay = 1.5
    elif fault in ("503", "garbage"):
        idp.discovery_mode = fault
    port = free_port() if fault == "down" else idp.port
    plugin = {"providers": [{"name": "idp", "issuer": ISS, "audiences": [API],
                             "discovery": {"cluster": "idp", "timeout_ms": 500, "retry_ms": 5000}}]}
    envoy = start_envoy(Envoy(bootstrap(plugin, [static_cluster("idp", port), static_cluster("upstream", echo.port)]), name=f"discovery-{fault}"))
    try:
        t = jwt_tool.encode(idp.key("ES256"), jwt_tool.claims(ISS, API))
        n = echo.requests
        r = envoy.get("/", [("authorization", f"Bearer {t}")])
        assert r.status == 503, r
        assert echo.requests == n and idp.jwks_requests == 0
        assert envoy.stats()["jwks_fetch_failed"] >= 1
        assert "[jwks_fetch_failed]" in envoy.log()
    finally:
        stop_all(envoy, idp, echo)
