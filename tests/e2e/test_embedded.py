"""Embedded tokens in a real Envoy: a payments token from the authorization server carries a
token for accounts; the accounts route forwards exactly that one, verified, and refuses when it
is missing, forged or for another audience. Also: claims by path and the payload header."""
import base64
import json

import pytest

import jwt_tool
from conftest import start_envoy, stop_all
from harness import Envoy, bootstrap, static_cluster, www_authenticate_error
from servers import Echo, IdP

AS = "https://as.ecomm.com"
PAYMENTS, ACCOUNTS = "https://payments.ecomm.com", "https://accounts.ecomm.com"


@pytest.fixture(scope="module")
def stack():
    idp = IdP(AS).start()
    echo = Echo().start()
    plugin = {
        "providers": [{"name": "as", "issuer": AS, "audiences": [PAYMENTS],
                       "jwks": {"cluster": "idp", "path": "/jwks"}}],
        "routes": [{"match": {"path_prefix": "/accounts"}, "embedded": {"claim": "tokens", "audience": ACCOUNTS}},
                   {"match": {"path_prefix": "/"}}],
        "forward": {"claims_to_headers": {"sub": "x-user-sub", "realm_access.roles": "x-roles"},
                    "payload_header": "x-jwt-payload"},
    }
    envoy = start_envoy(Envoy(bootstrap(plugin, [static_cluster("idp", idp.port), static_cluster("upstream", echo.port)]),
                              name="embedded"))
    yield idp, echo, envoy
    stop_all(envoy, idp, echo)


def token(idp, aud, **extra):
    return jwt_tool.encode(idp.key("ES256"), jwt_tool.claims(AS, aud, sub="alice", **extra))


def test_the_embedded_token_for_the_route_is_forwarded(stack):
    idp, _, envoy = stack
    accounts = token(idp, ACCOUNTS)
    outer = token(idp, PAYMENTS, tokens={ACCOUNTS: accounts, "https://other.ecomm.com": token(idp, "https://other.ecomm.com")})
    r = envoy.get("/accounts/1", [("authorization", f"Bearer {outer}")])
    assert r.status == 200, r
    assert r.upstream_headers["authorization"] == [f"Bearer {accounts}"]
    assert outer not in json.dumps(r.upstream_headers)


@pytest.mark.parametrize("case", ["missing", "another audience", "forged", "opaque"])
def test_no_valid_embedded_token_is_403(stack, case):
    idp, echo, envoy = stack
    tokens = {
        "missing": None,
        "another audience": [token(idp, "https://other.ecomm.com")],
        "forged": [jwt_tool.encode(jwt_tool.Key("ES256", kid=idp.key("ES256").kid), jwt_tool.claims(AS, ACCOUNTS))],
        "opaque": {ACCOUNTS: "opaque-reference"},
    }[case]
    outer = token(idp, PAYMENTS, **({} if tokens is None else {"tokens": tokens}))
    n, before = echo.requests, envoy.stats().get("denied.embedded", 0)
    r = envoy.get("/accounts/1", [("authorization", f"Bearer {outer}")])
    assert r.status == 403, r
    assert www_authenticate_error(r) == "insufficient_scope"
    assert echo.requests == n
    assert envoy.stats()["denied.embedded"] - before == 1


def test_claims_by_path_and_the_verified_payload_as_a_header(stack):
    idp, _, envoy = stack
    tok = token(idp, PAYMENTS, realm_access={"roles": ["admin", "ops"]})
    r = envoy.get("/shared", [("authorization", f"Bearer {tok}"), ("x-jwt-payload", "forged"), ("x-roles", "root")])
    assert r.status == 200, r
    h = r.upstream_headers
    assert h["x-roles"] == ["admin ops"]
    assert h["x-jwt-payload"] == [tok.split(".")[1]]
    payload = json.loads(base64.urlsafe_b64decode(h["x-jwt-payload"][0] + "=="))
    assert payload["sub"] == "alice"
