"""Remote JWKS in a real Envoy: rotation, outages, timeouts, and one fetch per period for the
whole Envoy (2 workers + the main thread all run on_tick)."""
import json
import time

import pytest

import jwt_tool
from conftest import start_envoy, stop_all
from harness import Envoy, bootstrap, static_cluster, wait_for
from servers import Echo, IdP, free_port

ISS = "https://idp.test"


def plugin(**jwks) -> dict:
    j = {"cluster": "idp", "authority": "idp.test", "path": "/jwks", "refresh_seconds": 300, "timeout_ms": 500,
         "min_refetch_seconds": 1, "retry_ms": 300}
    j.update(jwks)
    return {"providers": [{"name": "corp", "issuer": ISS, "audiences": ["api"], "jwks": j}],
            "forward": {"claims_to_headers": {"sub": "x-user-sub"}}}


class Stack:
    def __init__(self, cfg: dict, idp_up: bool = True, name: str = "jwks"):
        self.idp = IdP(ISS, port=free_port())
        if idp_up:
            self.idp.start()
        self.echo = Echo().start()
        self.envoy = start_envoy(Envoy(bootstrap(cfg, [static_cluster("idp", self.idp.port, 0.25),
                                                       static_cluster("upstream", self.echo.port)]), name=name))

    def token(self, alg="ES256", **kw) -> str:
        return jwt_tool.encode(self.idp.key(alg), jwt_tool.claims(ISS, "api", **kw))

    def get(self, tok):
        return self.envoy.get("/", {"authorization": f"Bearer {tok}"})

    def close(self):
        stop_all(self.envoy, self.idp, self.echo)


@pytest.fixture
def stack(request):
    s = Stack(*request.param) if hasattr(request, "param") else Stack(plugin())
    yield s
    s.close()


def test_key_rotation_is_picked_up_without_restart(stack):
    assert stack.get(stack.token()).status == 200
    fetched = stack.idp.jwks_requests
    time.sleep(1.1)  # past min_refetch_seconds
    new = stack.idp.add_key("EdDSA", kid="rotated-1")
    r = stack.get(jwt_tool.encode(new, jwt_tool.claims(ISS, "api", sub="after-rotation")))
    assert r.status == 200, r
    assert r.upstream_headers["x-user-sub"] == ["after-rotation"]
    assert stack.idp.jwks_requests == fetched + 1, "exactly one refetch for the unknown kid"
    # A kid the IdP does not have is refused without another fetch (rate limit).
    stranger = jwt_tool.Key("ES256", kid="never-published")
    r = stack.get(jwt_tool.encode(stranger, jwt_tool.claims(ISS, "api")))
    assert r.status == 401, r
    assert stack.idp.jwks_requests == fetched + 1
    # A key removed at the IdP stops being accepted after the next refresh (not tested by time here),
    # but a token signed by it is never accepted under another kid.
    assert stack.envoy.stats()["denied.unknown_kid"] >= 1


@pytest.mark.parametrize("stack", [(plugin(), False, "idp-down")], indirect=True)
def test_idp_down_at_start_503_then_recovery(stack):
    before = stack.echo.requests
    r = stack.get(stack.token())
    assert r.status == 503, r
    assert r.header("www-authenticate") is None
    assert stack.echo.requests == before, "no request may pass without verified keys"
    s = stack.envoy.stats()
    assert s["jwks_fetch_failed"] >= 1 and s["denied.jwks_unavailable"] >= 1, s
    stack.idp.start()
    r = wait_for(lambda: (lambda r: r if r.status == 200 else None)(stack.get(stack.token())), timeout=10,
                 what="recovery after the IdP starts")
    assert r.upstream_headers["x-user-sub"] == ["alice"]
    assert stack.envoy.stats()["jwks_fetch_ok"] >= 1


@pytest.mark.parametrize("stack", [(plugin(timeout_ms=300), True, "idp-slow")], indirect=True)
def test_jwks_slower_than_timeout_is_503(stack):
    stack.idp.jwks_delay = 1.5
    t0 = time.time()
    r = stack.get(stack.token())
    elapsed = time.time() - t0
    assert r.status == 503, r
    assert elapsed < 1.4, f"the request waited {elapsed:.2f}s, past the fetch timeout"
    stack.idp.jwks_delay = 0
    wait_for(lambda: stack.get(stack.token()).status == 200, timeout=10, what="recovery")


@pytest.mark.parametrize("stack", [(plugin(refresh_seconds=1), True, "refresh")], indirect=True)
def test_garbage_or_5xx_refresh_keeps_last_good_keys(stack):
    tok = stack.token(sub="kept")
    assert stack.get(tok).status == 200
    for mode in ("garbage", "503", "reset", "huge"):
        stack.idp.jwks_mode = mode
        n = stack.idp.jwks_requests
        wait_for(lambda: stack.idp.jwks_requests > n, timeout=5, what=f"a refresh attempt ({mode})")
        time.sleep(0.2)
        # Fresh tokens (not cached) still verify with the last good keys.
        r = stack.get(stack.token(sub=f"during-{mode}"))
        assert r.status == 200, (mode, r)
    assert stack.envoy.stats()["jwks_fetch_failed"] >= 4


@pytest.mark.parametrize("stack", [(plugin(refresh_seconds=1), True, "lease")], indirect=True)
def test_one_fetch_per_period_across_workers(stack):
    assert stack.envoy.concurrency == 2
    assert stack.get(stack.token()).status == 200
    start = stack.idp.jwks_requests
    t0 = time.time()
    time.sleep(6)
    n = stack.idp.jwks_requests - start
    elapsed = time.time() - t0
    # One fetch per second for the whole Envoy; per-VM fetching would be ~3 per second.
    assert elapsed - 1.5 <= n <= elapsed + 1.5, f"{n} JWKS fetches in {elapsed:.1f}s with refresh_seconds=1"
    # Envoy 1.40 counts VMs in `wasm_vm_count`; 1.36 in `wasm.envoy.wasm.runtime.v8.active`.
    body = stack.envoy.admin("/stats?filter=wasm_vm_count|runtime.v8.active").body.decode()
    vms = max(int(line.split(":")[1]) for line in body.splitlines() if ":" in line)
    assert vms >= 3, body


@pytest.mark.parametrize("stack", [(plugin(), True, "mixed-keys")], indirect=True)
def test_bad_keys_mixed_with_good_ones(stack):
    small = jwt_tool.Key("RS256", kid="weak-1024", bits=1024).public_jwk()
    stack.idp.extra_jwks = [
        small,
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0c2VjcmV0c2VjcmV0"},
        {"kty": "EC", "crv": "P-256", "kid": "off-curve", "x": "AAAA", "y": "AAAA"},
        {"kty": "RSA", "kid": "e-one", "n": small["n"], "e": "AQ"},
        {"kty": "OKP", "crv": "X25519", "kid": "ecdh", "x": jwt_tool.b64u(b"\x09" * 32)},
        {"kty": "EC", "crv": "P-256", "kid": "enc-use", "use": "enc", **{k: v for k, v in stack.idp.key("ES256").public_jwk().items() if k in ("x", "y")}},
        "not an object",
    ]
    r = stack.get(stack.token("ES256"))
    assert r.status == 200, r
    assert stack.get(stack.token("EdDSA")).status == 200
    assert stack.envoy.stats()["jwks_keys_rejected"] >= 7
    # A token "signed" with HS256 under the symmetric key's kid is refused.
    forged = jwt_tool.encode(None, jwt_tool.claims(ISS, "api"), alg="HS256", kid="hmac", signature=b"x" * 32)
    assert stack.get(forged).status == 401
    lines = [l for l in stack.envoy.wasm_log_lines() if "JWKS key" in l and "ignored" in l]
    assert len(lines) >= 7, lines


def test_authorization_only_config_reads_headers_one_by_one_safely(stack):
    """Default sources (Authorization only): the filter reads just the headers it needs; the
    rules still hold: repeats refused, spoofed headers stripped, non-UTF-8 survives."""
    tok = stack.token(sub="targeted")
    r = stack.envoy.get("/", [("authorization", f"Bearer {tok}"), ("x-user-sub", "admin"), ("x-user-sub", "root")])
    assert r.status == 200, r
    assert r.upstream_headers["x-user-sub"] == ["targeted"]
    r = stack.envoy.get("/", [("authorization", f"Bearer {tok}"), ("authorization", f"Bearer {tok}")])
    assert r.status == 400, r
    r = stack.envoy.get("/", [("authorization", "Bearer \udcff".encode("utf-8", "surrogateescape").decode("latin-1"))])
    assert r.status in (400, 401), r
    assert stack.get(tok).status == 200
