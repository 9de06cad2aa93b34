"""The issue's example configuration, as written, in a real Envoy with a local IdP and an echo upstream."""
import json
import time
from pathlib import Path

import pytest

import jwt_tool
from conftest import start_envoy, stop_envoy
from harness import ROOT, Envoy, bootstrap, static_cluster, www_authenticate_error
from servers import Echo, IdP

ISS = "https://idp.example.com"
AUD = "https://api.example.com"
# RFC 8037 A.1: the private half of the example config's inline "local-1" key.
LOCAL = jwt_tool.Key.ed25519_from_seed("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A", "local-1")


def example_config() -> dict:
    return json.loads((ROOT / "envoy" / "plugin-config.example.json").read_text())


@pytest.fixture(scope="module")
def env():
    idp = IdP(ISS).start()
    echo = Echo().start()
    e = start_envoy(Envoy(bootstrap(example_config(), [static_cluster("idp", idp.port), static_cluster("upstream", echo.port)]),
                          name="validate"))
    yield e, idp, echo
    stop_envoy(e)
    idp.stop()
    echo.stop()


def bearer(t: str) -> dict:
    return {"authorization": f"Bearer {t}"}


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_valid_token_per_algorithm_reaches_upstream_with_identity(env, alg):
    e, idp, _ = env
    tok = jwt_tool.encode(idp.key(alg), jwt_tool.claims(ISS, AUD, sub=f"user-{alg}", scope="orders:read profile"))
    r = e.get("/api/x", bearer(tok))
    assert r.status == 200, r
    h = r.upstream_headers
    assert h["x-user-sub"] == [f"user-{alg}"]
    assert h["x-user-scope"] == ["orders:read profile"]
    assert json.loads(h["x-principal"][0]) == [ISS, f"user-{alg}"]
    # The incoming Authorization is forwarded unchanged in this release.
    assert h["authorization"] == [f"Bearer {tok}"]


def test_inline_provider_and_array_claims(env):
    e, _, _ = env
    tok = jwt_tool.encode(LOCAL, jwt_tool.claims("https://local.test", ["other", "api"], sub="svc", scope=["a", "b"]))
    r = e.get("/x", bearer(tok))
    assert r.status == 200, r
    assert r.upstream_headers["x-user-scope"] == ["a b"]
    assert json.loads(r.upstream_headers["x-principal"][0]) == ["https://local.test", "svc"]


def test_wildcard_audience(env):
    e, idp, _ = env
    k = idp.key("ES256")
    assert e.get("/", bearer(jwt_tool.encode(k, jwt_tool.claims(ISS, "orders.ecomm.com")))).status == 200
    for aud in ["ecomm.com", "evil.com", "orders.ecomm.com.evil.com", "a/b.ecomm.com", "https://orders.ecomm.com"]:
        r = e.get("/", bearer(jwt_tool.encode(k, jwt_tool.claims(ISS, aud))))
        assert r.status == 401 and www_authenticate_error(r) == "invalid_token", (aud, r)


def test_cookie_source(env):
    e, idp, _ = env
    tok = jwt_tool.encode(idp.key("EdDSA"), jwt_tool.claims(ISS, AUD, sub="cookie-user"))
    r = e.get("/", {"cookie": f"theme=dark; access_token={tok}"})
    assert r.status == 200, r
    assert r.upstream_headers["x-user-sub"] == ["cookie-user"]


def test_missing_token_gets_bearer_challenge(env):
    e, _, echo = env
    before = echo.requests
    r = e.get("/api")
    assert r.status == 401
    assert r.header("www-authenticate") == 'Bearer realm="api"'
    assert echo.requests == before


def _bad_tokens(idp):
    k = idp.key("ES256")
    other = jwt_tool.Key("ES256", kid=k.kid)  # same kid, different key
    good = jwt_tool.encode(k, jwt_tool.claims(ISS, AUD))
    h, p, s = good.split(".")
    return {
        "expired": jwt_tool.encode(k, jwt_tool.claims(ISS, AUD, ttl=-120)),
        "wrong_aud": jwt_tool.encode(k, jwt_tool.claims(ISS, "https://other.example.com")),
        "wrong_iss": jwt_tool.encode(k, jwt_tool.claims("https://evil.example.com", AUD)),
        "bad_signature": jwt_tool.encode(other, jwt_tool.claims(ISS, AUD)),
        "alg_none": jwt_tool.encode(None, jwt_tool.claims(ISS, AUD), alg="none", kid=False),
        "alg_none_with_kid": f"{jwt_tool.b64u(json.dumps({'alg': 'none', 'kid': k.kid}).encode())}.{p}.",
        "hs256": jwt_tool.encode(None, jwt_tool.claims(ISS, AUD), alg="HS256", kid=k.kid, signature=b"x" * 32),
        "stripped_signature": f"{h}.{p}.",
        "not_before": jwt_tool.encode(k, jwt_tool.claims(ISS, AUD, nbf=int(time.time()) + 3600)),
        "no_exp": jwt_tool.encode(k, {"iss": ISS, "aud": AUD, "sub": "a"}),
        "no_sub": jwt_tool.encode(k, {"iss": ISS, "aud": AUD, "exp": int(time.time()) + 300}),
        "garbage": "not-a-jwt",
    }


@pytest.mark.parametrize("case", list(_bad_tokens(IdP(ISS, algs=("ES256",))).keys()))
def test_invalid_tokens_get_401_invalid_token(env, case):
    e, idp, echo = env
    tok = _bad_tokens(idp)[case]
    before = echo.requests
    r = e.get("/api", bearer(tok))
    assert r.status == 401, (case, r)
    www = r.header("www-authenticate")
    assert www.startswith('Bearer realm="api", error="invalid_token", error_description="'), www
    assert tok.split(".")[-1] not in r.body.decode() or tok.split(".")[-1] == ""
    assert echo.requests == before, "a refused request reached the upstream"


def test_envoy_routes_on_verified_claim_headers_never_on_spoofed_ones():
    """Envoy 1.40 matches the route again after the filter changes request headers, so an Envoy
    route that matches a claim header sees the verified value, and a client's own copy of that
    header (stripped by the filter) never chooses the route."""
    idp = IdP(ISS, algs=("ES256",)).start()
    echo = Echo().start()
    routes = [{"name": "admin", "match": {"prefix": "/", "headers": [{"name": "x-user-sub", "string_match": {"exact": "admin"}}]},
               "direct_response": {"status": 203, "body": {"inline_string": "admin route"}}},
              {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]
    e = start_envoy(Envoy(bootstrap(example_config(), [static_cluster("idp", idp.port), static_cluster("upstream", echo.port)], routes),
                          name="claim-routing"))
    try:
        k = idp.key("ES256")
        r = e.get("/api", bearer(jwt_tool.encode(k, jwt_tool.claims(ISS, AUD, sub="admin"))))
        assert (r.status, r.body) == (203, b"admin route"), r
        before = echo.requests
        r = e.get("/api", {**bearer(jwt_tool.encode(k, jwt_tool.claims(ISS, AUD, sub="bob"))), "x-user-sub": "admin"})
        assert r.status == 200 and r.upstream_headers["x-user-sub"] == ["bob"], r
        # An anonymous route: the spoofed header is removed and the default route serves it.
        r = e.get("/healthz", {"x-user-sub": "admin"})
        assert r.status == 200 and "x-user-sub" not in r.upstream_headers, r
        assert echo.requests == before + 2
        # No token on a protected path: the filter's 401, not the admin route's answer.
        r = e.get("/api", {"x-user-sub": "admin"})
        assert r.status == 401, r
    finally:
        stop_envoy(e)
        idp.stop()
        echo.stop()


def test_anonymous_route_and_spoofed_headers_are_stripped(env):
    e, idp, _ = env
    spoof = {"x-user-sub": "admin", "x-principal": '["x","admin"]', "x-user-scope": "admin:all"}
    r = e.get("/healthz", spoof)
    assert r.status == 200, r
    for h in spoof:
        assert h not in r.upstream_headers, r.upstream_headers
    # With a token lacking `scope`, a spoofed scope header must not survive either.
    tok = jwt_tool.encode(idp.key("RS256"), jwt_tool.claims(ISS, AUD, sub="bob"))
    r = e.get("/api", {**spoof, **bearer(tok)})
    assert r.status == 200, r
    assert r.upstream_headers["x-user-sub"] == ["bob"]
    assert "x-user-scope" not in r.upstream_headers


def test_duplicate_authorization_is_invalid_request(env):
    e, idp, _ = env
    tok = jwt_tool.encode(idp.key("ES256"), jwt_tool.claims(ISS, AUD))
    r = e.get("/", [("authorization", f"Bearer {tok}"), ("authorization", f"Bearer {tok}")])
    assert r.status == 400 and www_authenticate_error(r) == "invalid_request", r


def test_claim_with_control_bytes_never_becomes_a_header(env):
    e, idp, echo = env
    tok = jwt_tool.encode(idp.key("ES256"), jwt_tool.claims(ISS, AUD, sub="eve\r\nx-injected: 1"))
    before = echo.requests
    r = e.get("/", bearer(tok))
    assert r.status == 401, r
    assert echo.requests == before


def test_non_utf8_header_value_does_not_crash_the_vm(env):
    e, idp, _ = env
    r = e.get("/", [("authorization", "Bearer \udcff".encode("utf-8", "surrogateescape").decode("latin-1"))])
    assert r.status in (400, 401), r
    tok = jwt_tool.encode(idp.key("ES256"), jwt_tool.claims(ISS, AUD))
    assert e.get("/", bearer(tok)).status == 200


def test_stats_counters_move(env):
    e, idp, _ = env
    before = e.stats()
    tok = jwt_tool.encode(idp.key("ES256"), jwt_tool.claims(ISS, AUD, sub="stats"))
    assert e.get("/", bearer(tok)).status == 200
    assert e.get("/", bearer(tok)).status == 200
    assert e.get("/").status == 401
    after = e.stats()
    assert after["allowed"] - before.get("allowed", 0) == 2
    assert after["cache_hit"] - before.get("cache_hit", 0) >= 1
    assert after["denied.missing"] - before.get("denied.missing", 0) == 1
    assert after["jwks_fetch_ok"] >= 1
    prom = e.admin("/stats/prometheus").body.decode()
    assert "token_exchange_filter_allowed" in prom or "token_exchange_filter.allowed" in prom, prom[:2000]


def test_token_size_cap_and_envoy_header_limit(env):
    e, idp, echo = env
    before = echo.requests
    big = jwt_tool.encode(idp.key("ES256"), jwt_tool.claims(ISS, AUD, pad="x" * 9000))
    r = e.get("/", bearer(big))
    assert r.status == 401 and "token too large" in r.header("www-authenticate"), r
    # Past Envoy's own max_request_headers_kb (60 KiB default) Envoy answers before the filter.
    huge = jwt_tool.encode(idp.key("ES256"), jwt_tool.claims(ISS, AUD, pad="x" * 70_000))
    try:
        r = e.get("/", bearer(huge))
        assert r.status == 431, r
    except (ConnectionError, OSError):
        pass  # Envoy may also close the connection
    assert echo.requests == before


def test_verified_token_cache_is_shared_by_workers(env):
    """Many connections with one new token: both workers serve, one verification in total."""
    e, idp, _ = env
    tok = jwt_tool.encode(idp.key("RS256"), jwt_tool.claims(ISS, AUD, sub="shared-cache"))
    before_cx, before = e.worker_connections(), e.stats()
    for _ in range(40):
        assert e.get("/", bearer(tok)).status == 200  # a new connection each time
    after_cx, after = e.worker_connections(), e.stats()
    served = [a - b for a, b in zip(after_cx, before_cx)]
    assert len(served) == 2 and all(n > 0 for n in served), f"connections per worker: {served}"
    assert after["cache_miss"] - before.get("cache_miss", 0) == 1, (before, after)
    assert after["cache_hit"] - before.get("cache_hit", 0) == 39


def test_a_kept_token_is_served_up_to_its_expiry_and_refused_right_after():
    """The hot path checks a kept token against this worker's last clock reading plus a slack
    (src/clock.rs), never reading the clock: near its expiry the clock decides, so a token is
    served until its `exp` and refused from then on, to the tenth of a second, with no skew."""
    cfg = example_config()
    cfg["providers"][0]["clock_skew_seconds"] = 0
    idp, echo = IdP(ISS).start(), Echo().start()
    e = start_envoy(Envoy(bootstrap(cfg, [static_cluster("idp", idp.port), static_cluster("upstream", echo.port)]),
                          name="expiry-edge"))
    try:
        exp = int(time.time()) + 3
        tok = jwt_tool.encode(idp.key("ES256"), {"iss": ISS, "aud": AUD, "sub": "edge-of-time", "exp": exp})
        for _ in range(6):  # verified once, then kept: decided without the clock
            assert e.get("/x", bearer(tok)).status == 200
        before = e.stats()
        time.sleep(max(0.0, exp - 0.5 - time.time()))
        # Within the slack of its expiry: the bound (a reading + 1 s) is past `exp`, the clock is not.
        r = e.get("/x", bearer(tok))
        assert r.status == 200, (r, time.time() - exp)
        assert r.upstream_headers["x-user-sub"] == ["edge-of-time"]
        assert e.stats().get("cache_miss", 0) == before.get("cache_miss", 0), "the clock's answer is still a cache hit"
        time.sleep(max(0.0, exp + 0.1 - time.time()))
        for _ in range(4):  # on every worker's connections
            r = e.get("/x", bearer(tok))
            assert r.status == 401 and www_authenticate_error(r) == "invalid_token", (r, time.time() - exp)
    finally:
        stop_envoy(e)
        idp.stop()
        echo.stop()
