"""The security review's findings (issue 11) in a real Envoy: each of these passed an attack
before its fix. F3 (route rules by host and path), F1 (query token removed by its decoded name),
F2 (one token across sources, or 400), F4 (an exchange result that expires at once: one STS call
per request), and header names with underscores."""
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import jwt_tool
from conftest import start_envoy, stop_all
from harness import Envoy, bootstrap, static_cluster, www_authenticate_error
from servers import STS, Echo, IdP, free_port

ISS, AUD = "https://idp.example.com", "https://api.example.com"
PARTNER = "https://partner.example.com"
STS_ISS = "https://sts.example.com"
ORDERS = "https://orders.ecomm.com"


def plugin(partner_key: jwt_tool.Key) -> dict:
    return {
        "providers": [
            {"name": "corp", "issuer": ISS, "audiences": [AUD],
             "jwks": {"cluster": "idp", "authority": "idp.example.com", "path": "/jwks"}},
            {"name": "partner", "issuer": PARTNER, "audiences": [AUD],
             "jwks": {"inline": {"keys": [partner_key.public_jwk()]}}},
        ],
        "from": [{"header": "authorization", "prefix": "Bearer "}, {"cookie": "access_token"},
                 {"query": "access_token"}],
        "sts": {"cluster": "sts", "authority": "sts.example.com", "path": "/token", "timeout_ms": 1000,
                "client_auth": {"method": "client_secret_basic", "client_id": "gateway", "client_secret": "s3cr3t"},
                "issuer": STS_ISS, "jwks": {"cluster": "sts", "authority": "sts.example.com", "path": "/jwks"},
                "expiry_margin_seconds": 30},
        "routes": [
            {"match": {"authority": "admin.example.com"}, "providers": ["partner"]},
            {"match": {"path_prefix": "/orders"}, "exchange": {"audience": ORDERS}},
            {"match": {"path_prefix": "/"}},
        ],
        "forward": {"header": "x-access-token", "claims_to_headers": {"sub": "x-user-sub"}},
    }


class Stack:
    def __init__(self, normalize_path=True, name="review"):
        self.partner = jwt_tool.Key("ES256", kid="partner-1")
        self.idp = IdP(ISS).start()
        self.sts = STS(STS_ISS, self.idp, [ORDERS], port=free_port()).start()
        self.echo = Echo().start()
        clusters = [static_cluster("idp", self.idp.port), static_cluster("sts", self.sts.port, 0.25),
                    static_cluster("upstream", self.echo.port)]
        cfg = bootstrap(plugin(self.partner), clusters)
        hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        if not normalize_path:
            # What the filter decides when Envoy does not normalise paths (its own normalisation).
            for k in ("normalize_path", "merge_slashes", "path_with_escaped_slashes_action"):
                hcm.pop(k)
        self.envoy = start_envoy(Envoy(cfg, name=name))

    def token(self, sub="alice", **extra) -> str:
        return jwt_tool.encode(self.idp.key("ES256"), jwt_tool.claims(ISS, AUD, sub=sub, scope="read", **extra))

    def close(self):
        stop_all(self.envoy, self.idp, self.sts, self.echo)


@pytest.fixture(scope="module")
def stack():
    s = Stack()
    yield s
    s.close()


def exchanged(r) -> dict:
    v = r.upstream_headers["x-access-token"]
    assert len(v) == 1, v
    return jwt_tool.decode_unverified(v[0])[1]


def upstream_text(r) -> str:
    seen = r.json()
    return seen["path"] + "\n" + "\n".join(f"{k}: {v}" for k, vs in seen["headers"].items() for v in vs)


@pytest.mark.parametrize("host", ["admin.example.com:443", "admin.example.com.", "ADMIN.Example.com.:8443",
                                  "admin.example.com"])
def test_f3_authority_rule_holds_whatever_port_or_trailing_dot(stack, host):
    n = stack.echo.requests
    r = stack.envoy.get("/anything", [("host", host), ("authorization", f"Bearer {stack.token()}")])
    assert r.status == 401, r
    assert www_authenticate_error(r) == "invalid_token"
    assert stack.echo.requests == n, "a corp token reached the partner-only host"
    partner = jwt_tool.encode(stack.partner, jwt_tool.claims(PARTNER, AUD, sub="p"))
    assert stack.envoy.get("/anything", [("host", host), ("authorization", f"Bearer {partner}")]).status == 200


def test_f3_without_envoy_path_normalisation_the_filter_matches_the_resolved_path():
    s = Stack(normalize_path=False, name="review-raw-path")
    try:
        for path in ["/public/../orders/1", "/public/%2e%2e/orders/1", "//orders/1"]:
            r = s.envoy.get(path, [("authorization", f"Bearer {s.token()}")])
            assert r.status == 200, (path, r)
            assert exchanged(r)["aud"] == ORDERS, f"{path}: the /orders exchange route was skipped"
    finally:
        s.close()


def test_f1_query_token_found_by_its_decoded_name_never_reaches_the_upstream(stack):
    tok = stack.token(sub="query")
    r = stack.envoy.get(f"/orders/1?keep=1&access%5Ftoken={tok}&also=2")
    assert r.status == 200, r
    assert r.json()["path"] == "/orders/1?keep=1&also=2"
    assert exchanged(r)["aud"] == ORDERS
    assert tok not in upstream_text(r)


def test_f2_two_different_tokens_are_a_400(stack):
    a, b = stack.token(sub="a"), stack.token(sub="b")
    n = stack.echo.requests
    before = stack.envoy.stats().get("denied.bad_request", 0)
    for path, headers in [
        ("/orders/1", [("authorization", f"Bearer {a}"), ("cookie", f"access_token={b}")]),
        ("/shared", [("authorization", f"Bearer {a}"), ("cookie", f"access_token={b}")]),
        (f"/shared?access_token={b}", [("authorization", f"Bearer {a}")]),
    ]:
        r = stack.envoy.get(path, headers)
        assert r.status == 400, (path, r)
        assert www_authenticate_error(r) == "invalid_request"
    assert stack.echo.requests == n
    assert stack.envoy.stats()["denied.bad_request"] - before == 3


def test_f2_the_same_token_in_two_sources_leaves_both_on_an_exchange(stack):
    tok = stack.token(sub="twice")
    r = stack.envoy.get(f"/orders/1?access_token={tok}",
                        [("authorization", f"Bearer {tok}"), ("cookie", f"theme=dark; access_token={tok}")])
    assert r.status == 200, r
    assert exchanged(r)["sub"] == "twice"
    assert r.upstream_headers["cookie"] == ["theme=dark"]
    assert "authorization" not in r.upstream_headers
    assert r.json()["path"] == "/orders/1"
    assert tok not in upstream_text(r)


@pytest.mark.parametrize("case", ["subject inside its clock skew", "expires_in 0"])
def test_f4_an_exchange_that_expires_at_once_makes_one_sts_call_per_request(stack, case):
    extra = {"exp": int(time.time()) - 10} if case.startswith("subject") else {}
    tok = stack.token(sub=f"f4-{case[:7]}", **extra)
    if case == "expires_in 0":
        stack.sts.expires_in = 0
    try:
        n = stack.sts.token_requests
        r = stack.envoy.get("/orders/1", [("authorization", f"Bearer {tok}")])
        assert r.status == 200, r
        assert stack.sts.token_requests - n == 1, "one request, one STS call (50 before the fix)"
        # Concurrent requests: each answered, never more calls than requests.
        n = stack.sts.token_requests
        with ThreadPoolExecutor(8) as ex:
            rs = list(ex.map(lambda _: stack.envoy.get("/orders/1", [("authorization", f"Bearer {tok}")]), range(8)))
        assert [x.status for x in rs] == [200] * 8
        calls = stack.sts.token_requests - n
        print(f"\n{case}: 8 concurrent requests, {calls} STS calls")
        assert 1 <= calls <= 8
    finally:
        stack.sts.expires_in = None


def test_underscore_spellings_and_the_forward_header_never_reach_the_upstream(stack):
    r = stack.envoy.get("/shared", [("authorization", f"Bearer {stack.token(sub='bob')}"),
                                    ("x_user_sub", "admin"), ("x-user-sub", "admin"),
                                    ("x-access-token", "forged"), ("x_access_token", "forged")])
    assert r.status == 200, r
    h = r.upstream_headers
    assert h["x-user-sub"] == ["bob"]
    for name in ("x_user_sub", "x-access-token", "x_access_token"):
        assert name not in h, f"{name} reached the upstream: {h.get(name)}"


def test_two_spoofed_copies_of_a_set_header_never_reach_the_upstream(stack):
    """The filter sets such a header without removing it first: proxy-wasm's replace drops every
    client copy, in every supported Envoy (this suite also runs on 1.36.2), so no spoofed copy
    survives: two, and a differently cased third."""
    r = stack.envoy.get("/shared", [("authorization", f"Bearer {stack.token(sub='bob')}"),
                                    ("x-user-sub", "admin"), ("x-user-sub", "root"), ("X-User-Sub", "ops")])
    assert r.status == 200, r
    assert r.upstream_headers["x-user-sub"] == ["bob"]
