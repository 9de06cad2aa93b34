"""Token exchange (RFC 8693) in a real Envoy: audience-specific tokens from a local STS, cached,
one STS call for concurrent first requests, and fail-closed on every STS fault."""
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import jwt_tool
from conftest import start_envoy, stop_all
from harness import Envoy, bootstrap, request, static_cluster, www_authenticate_error
from servers import STS, Echo, IdP, free_port

ISS, AUD = "https://idp.example.com", "https://api.example.com"
STS_ISS = "https://sts.example.com"
ORDERS, INVENTORY = "https://orders.ecomm.com", "https://inventory.ecomm.com"
WEIRD = "https://weird.ecomm.com/a+b&c=d/é"


def plugin(method="client_secret_basic", timeout_ms=1000) -> dict:
    return {
        "providers": [{"name": "corp", "issuer": ISS, "audiences": [AUD],
                       "jwks": {"cluster": "idp", "authority": "idp.example.com", "path": "/jwks"}}],
        "from": [{"header": "authorization", "prefix": "Bearer "}, {"cookie": "access_token"}],
        "sts": {"cluster": "sts", "authority": "sts.example.com", "path": "/token", "timeout_ms": timeout_ms,
                "client_auth": {"method": method, "client_id": "gateway", "client_secret": "s3cr3t"},
                "issuer": STS_ISS, "jwks": {"cluster": "sts", "authority": "sts.example.com", "path": "/jwks"},
                "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "expiry_margin_seconds": 30},
        "routes": [
            {"match": {"path_prefix": "/orders"}, "providers": ["corp"],
             "exchange": {"audience": ORDERS, "scopes": ["orders:read"]}},
            {"match": {"cluster": "inventory"}, "exchange": {"resource": INVENTORY}},
            {"match": {"path_prefix": "/weird"}, "exchange": {"audience": WEIRD}},
            {"match": {"path_prefix": "/shared"}},
            {"match": {"route_name": "named-public"}, "allow_anonymous": True},
        ],
        "forward": {"header": "authorization", "claims_to_headers": {"sub": "x-user-sub"}},
    }


class Stack:
    def __init__(self, cfg, sts_up=True, name="exchange"):
        self.idp = IdP(ISS).start()
        self.sts = STS(STS_ISS, self.idp, [ORDERS, INVENTORY, WEIRD], port=free_port())
        if sts_up:
            self.sts.start()
        self.echo = Echo().start()
        routes = [{"name": "inventory", "match": {"prefix": "/inventory"}, "route": {"cluster": "inventory"}},
                  {"name": "named-public", "match": {"prefix": "/public-by-name"}, "route": {"cluster": "upstream"}},
                  {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]
        clusters = [static_cluster("idp", self.idp.port), static_cluster("sts", self.sts.port, 0.25),
                    static_cluster("upstream", self.echo.port), static_cluster("inventory", self.echo.port)]
        self.envoy = start_envoy(Envoy(bootstrap(cfg, clusters, routes), name=name))

    def token(self, sub="alice", scope="orders:read profile", alg="ES256") -> str:
        return jwt_tool.encode(self.idp.key(alg), jwt_tool.claims(ISS, AUD, sub=sub, scope=scope))

    def get(self, path, tok, extra=()):
        return self.envoy.get(path, [("authorization", f"Bearer {tok}"), *extra])

    def close(self):
        stop_all(self.envoy, self.idp, self.sts, self.echo)


@pytest.fixture(scope="module")
def stack():
    s = Stack(plugin())
    yield s
    s.close()


def forwarded(r) -> tuple[dict, dict]:
    auth = r.upstream_headers["authorization"]
    assert len(auth) == 1 and auth[0].startswith("Bearer "), auth
    return jwt_tool.decode_unverified(auth[0][7:])


def assert_original_absent(r, tok):
    for name, values in r.upstream_headers.items():
        for v in values:
            assert tok not in v, f"the client's token reached the upstream in {name}"


def test_two_routes_two_audiences(stack):
    tok = stack.token(sub="alice")
    r = stack.get("/orders/1", tok)
    assert r.status == 200, r
    header, claims = forwarded(r)
    assert claims["aud"] == ORDERS and claims["iss"] == STS_ISS and claims["sub"] == "alice"
    assert claims["scope"] == "orders:read", "the requested scope, not the subject's wider one"
    assert claims["act"] == {"sub": "gateway"}
    assert r.upstream_headers["x-user-sub"] == ["alice"]
    assert_original_absent(r, tok)
    form = stack.sts.last_form
    assert form["audience"] == [ORDERS] and form["scope"] == ["orders:read"]
    assert form["subject_token"] == [tok]
    assert form["subject_token_type"] == ["urn:ietf:params:oauth:token-type:access_token"]
    assert stack.sts.last_headers["authorization"].startswith("Basic ")
    r = stack.get("/inventory/7", tok)
    assert r.status == 200, r
    _, claims = forwarded(r)
    assert claims["aud"] == INVENTORY
    assert stack.sts.last_form["resource"] == [INVENTORY] and "audience" not in stack.sts.last_form
    assert_original_absent(r, tok)


def test_shared_route_forwards_the_original_token(stack):
    tok = stack.token(sub="shared")
    n = stack.sts.token_requests
    r = stack.get("/shared/x", tok)
    assert r.status == 200, r
    assert r.upstream_headers["authorization"] == [f"Bearer {tok}"]
    assert stack.sts.token_requests == n


def test_route_name_match(stack):
    """Envoy's ["xds","route_name"]: the Envoy route named "named-public" is anonymous in the filter."""
    r = stack.envoy.get("/public-by-name/x")
    assert r.status == 200, r
    assert stack.envoy.get("/not-public").status == 401


def test_form_values_are_encoded(stack):
    r = stack.get("/weird", stack.token(sub="weird"))
    assert r.status == 200, r
    assert stack.sts.last_form["audience"] == [WEIRD], stack.sts.last_raw
    assert forwarded(r)[1]["aud"] == WEIRD


def test_cached_second_request_makes_no_sts_call(stack):
    tok = stack.token(sub="cached")
    assert stack.get("/orders/1", tok).status == 200
    n = stack.sts.token_requests
    before = stack.envoy.stats()
    first = None
    for _ in range(5):
        r = stack.get("/orders/2", tok)
        assert r.status == 200
        first = first or r.upstream_headers["authorization"]
        assert r.upstream_headers["authorization"] == first
    assert stack.sts.token_requests == n
    assert stack.envoy.stats()["exchange_cache_hit"] - before.get("exchange_cache_hit", 0) == 5


def test_exchange_cache_is_shared_by_workers(stack):
    tok = stack.token(sub="workers")
    n = stack.sts.token_requests
    before = stack.envoy.worker_connections()
    for _ in range(40):
        assert stack.get("/orders/1", tok).status == 200  # a new connection each time
    served = [a - b for a, b in zip(stack.envoy.worker_connections(), before)]
    assert len(served) == 2 and all(k > 0 for k in served), f"connections per worker: {served}"
    assert stack.sts.token_requests == n + 1


def test_cookie_token_is_removed_and_exchanged(stack):
    tok = stack.token(sub="cookie")
    r = stack.envoy.get("/orders/1", {"cookie": f"theme=dark; access_token={tok}; lang=en"})
    assert r.status == 200, r
    assert forwarded(r)[1]["sub"] == "cookie"
    assert r.upstream_headers["cookie"] == ["theme=dark; lang=en"]
    assert_original_absent(r, tok)


def test_missing_scope_is_403_without_calling_the_sts(stack):
    n = stack.sts.token_requests
    r = stack.get("/orders/1", stack.token(sub="noscope", scope="profile"))
    assert r.status == 403, r
    assert www_authenticate_error(r) == "insufficient_scope"
    assert 'scope="orders:read"' in r.header("www-authenticate")
    assert stack.sts.token_requests == n


def test_concurrent_first_requests_make_one_sts_call(stack):
    stack.sts.delay = 0.3  # keep the first exchange in flight while the others arrive
    try:
        tok = stack.token(sub="herd")
        n = stack.sts.token_requests
        before = stack.envoy.stats()
        barrier = threading.Barrier(64)

        def one(_):
            barrier.wait()
            return request(stack.envoy.port, "/orders/herd", {"authorization": f"Bearer {tok}"})

        with ThreadPoolExecutor(64) as pool:
            results = list(pool.map(one, range(64)))
        calls = stack.sts.token_requests - n
        after = stack.envoy.stats()
        waits = after.get("exchange_wait", 0) - before.get("exchange_wait", 0)
        print(f"\n64 concurrent first requests → {calls} STS call(s), {waits} waited on an in-flight exchange")
        assert all(r.status == 200 for r in results), [r.status for r in results]
        assert len({r.upstream_headers["authorization"][0] for r in results}) <= calls
        # One call across both workers: the in-flight marker is taken by compare-and-swap.
        assert calls == 1, f"{calls} STS calls for one (token, audience) on 2 workers"
    finally:
        stack.sts.delay = 0


FAULTS = [
    ("500", 503, "server_error", None),
    ("garbage", 503, "bad_response", None),
    ("huge", 503, "bad_response", None),
    ("close", 503, None, None),
    ("wrong_aud", 503, None, "exchange_rejected"),
    ("bad_sig", 503, None, "exchange_rejected"),
    ("wider_scope", 503, None, "exchange_rejected"),
    ("invalid_grant", 401, "refused", None),
    ("invalid_target", 403, "refused", None),
]


@pytest.mark.parametrize("mode,status,failure,counter", FAULTS, ids=[f[0] for f in FAULTS])
def test_sts_faults_fail_closed(stack, mode, status, failure, counter):
    stack.sts.mode = mode
    try:
        before_up = stack.echo.requests
        before = stack.envoy.stats()
        r = stack.get("/orders/1", stack.token(sub=f"fault-{mode}"))
        assert r.status == status, r
        assert stack.echo.requests == before_up, "a request without a verified exchanged token reached the upstream"
        after = stack.envoy.stats()
        if failure:
            k = f"exchange_failed.{failure}"
            assert after[k] - before.get(k, 0) == 1, after
        if counter:
            assert after[counter] - before.get(counter, 0) == 1, after
        if status == 401:
            assert www_authenticate_error(r) == "invalid_token"
        if status == 403:
            assert www_authenticate_error(r) == "insufficient_scope"
    finally:
        stack.sts.mode = "ok"
    # Recovery, with a fresh token.
    assert stack.get("/orders/1", stack.token(sub=f"after-{mode}")).status == 200


def test_sts_slower_than_timeout_is_503(stack):
    stack.sts.delay = 1.5
    try:
        before = stack.envoy.stats()
        t0 = time.time()
        r = stack.get("/orders/1", stack.token(sub="slow"))
        assert r.status == 503, r
        assert time.time() - t0 < 1.45
        assert stack.envoy.stats()["exchange_failed.timeout"] - before.get("exchange_failed.timeout", 0) == 1
    finally:
        stack.sts.delay = 0


def test_short_ttl_is_honoured(stack):
    stack.sts.ttl = 32  # cached for 32 - 30 (margin) = 2 s
    try:
        tok = stack.token(sub="ttl")
        n = stack.sts.token_requests
        assert stack.get("/orders/1", tok).status == 200
        assert stack.get("/orders/1", tok).status == 200
        assert stack.sts.token_requests == n + 1
        time.sleep(2.3)
        r = stack.get("/orders/1", tok)
        assert r.status == 200
        assert stack.sts.token_requests == n + 2, "a new exchange after the cached token's expiry"
    finally:
        stack.sts.ttl = 300


def test_sts_down_fails_closed_and_counts():
    s = Stack(plugin(), sts_up=False, name="sts-down")
    try:
        r = s.get("/orders/1", s.token())
        assert r.status == 503, r
        assert s.echo.requests == 0
        assert s.envoy.stats()["exchange_failed.unreachable"] == 1
        # The shared-JWT route does not depend on the STS.
        assert s.get("/shared", s.token()).status == 200
    finally:
        s.close()


def test_client_secret_post():
    s = Stack(plugin(method="client_secret_post"), name="secret-post")
    try:
        r = s.get("/orders/1", s.token())
        assert r.status == 200, r
        assert s.sts.last_form["client_id"] == ["gateway"] and s.sts.last_form["client_secret"] == ["s3cr3t"]
        assert "authorization" not in s.sts.last_headers
    finally:
        s.close()


def test_leader_stream_reset_hands_over_to_a_waiter(stack):
    """The request leading an exchange disconnects while the STS is slow; a request waiting on the
    same exchange still ends (a new leader takes over), and nothing hangs."""
    import socket

    stack.sts.delay = 0.6
    try:
        tok = stack.token(sub="reset")
        n = stack.sts.token_requests
        s = socket.create_connection(("127.0.0.1", stack.envoy.port))
        s.sendall(f"GET /orders/1 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {tok}\r\n\r\n".encode())
        time.sleep(0.15)  # the leader's STS call is in flight
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("r", stack.get("/orders/2", tok)))
        t.start()
        time.sleep(0.1)
        s.close()  # reset the leader's stream
        t.join(10)
        assert not t.is_alive(), "the waiting request never ended"
        r = result["r"]
        assert r.status == 200, r
        assert forwarded(r)[1]["aud"] == ORDERS
        calls = stack.sts.token_requests - n
        print(f"\nleader reset mid-exchange: {calls} STS call(s); the waiter got 200")
        assert calls <= 2
    finally:
        stack.sts.delay = 0
    # The worker is healthy afterwards.
    assert stack.get("/orders/3", stack.token(sub="after-reset")).status == 200
