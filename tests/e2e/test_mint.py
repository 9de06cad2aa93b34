"""Self-issued tokens in a real Envoy: the signing key from the host environment
(`vm_config.environment_variables.host_env_keys`), minted tokens verified against the JWKS the
filter serves, cached (one signature per worker at most), and bad keys refused at load."""
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import jwt_tool
from conftest import start_envoy, stop_all
from harness import Envoy, bootstrap, request, static_cluster, validate
from servers import Echo, IdP

ISS, AUD = "https://idp.example.com", "https://api.example.com"
EDGE = "https://edge.ecomm.com"
INVENTORY = "https://inventory.ecomm.com"
JWKS_PATH = "/.well-known/edge-jwks.json"
ENV = "TEF_EDGE_SIGNING_JWK"


def plugin(signing: dict) -> dict:
    return {
        "providers": [{"name": "corp", "issuer": ISS, "audiences": [AUD],
                       "jwks": {"cluster": "idp", "authority": "idp.example.com", "path": "/jwks"}}],
        "signing": signing,
        "routes": [{"match": {"path_prefix": "/inventory"},
                    "mint": {"audience": INVENTORY, "copy_claims": ["email"], "scopes": ["inventory:read"]}}],
        "forward": {"claims_to_headers": {"sub": "x-user-sub"}},
    }


class Stack:
    def __init__(self):
        self.current = jwt_tool.Key("EdDSA", kid="edge-2026-12")
        self.retired = jwt_tool.Key("ES256", kid="edge-2026-11")
        signing = {"issuer": EDGE, "ttl_seconds": 60, "jwks_path": JWKS_PATH,
                   "keys": [{"kid": self.current.kid, "alg": "EdDSA", "private_jwk_env": ENV},
                            {"kid": self.retired.kid, "alg": "ES256", "public_jwk": self.retired.public_jwk(),
                             "retired": True}]}
        self.idp = IdP(ISS).start()
        self.echo = Echo().start()
        clusters = [static_cluster("idp", self.idp.port), static_cluster("upstream", self.echo.port)]
        self.env = {ENV: json.dumps(self.current.private_jwk())}
        self.config = bootstrap(plugin(signing), clusters, env_keys=[ENV])
        self.envoy = start_envoy(Envoy(self.config, name="mint", env=self.env))

    def token(self, sub="alice", scope="inventory:read profile", **extra) -> str:
        return jwt_tool.encode(self.idp.key("ES256"), jwt_tool.claims(ISS, AUD, sub=sub, scope=scope, **extra))

    def close(self):
        stop_all(self.envoy, self.idp, self.echo)


@pytest.fixture(scope="module")
def stack():
    s = Stack()
    yield s
    s.close()


def served_keys(stack) -> dict:
    r = stack.envoy.get(JWKS_PATH)
    assert r.status == 200, r
    return jwt_tool.keys_from_jwks(r.json())


def test_the_filter_serves_its_jwks_current_and_retired(stack):
    r = stack.envoy.get(JWKS_PATH)
    assert r.status == 200
    assert r.header("content-type") == "application/jwk-set+json"
    assert r.header("cache-control") == "public, max-age=300"
    assert [k["kid"] for k in r.json()["keys"]] == ["edge-2026-12", "edge-2026-11"]
    assert all("d" not in k for k in r.json()["keys"])
    assert stack.envoy.get(JWKS_PATH, method="HEAD").status == 200
    r = stack.envoy.get(JWKS_PATH, method="POST", body=b"{}")
    assert r.status == 405 and r.header("allow") == "GET, HEAD"
    assert stack.echo.requests == 0, "answered by the filter, never forwarded"


def test_a_minted_token_reaches_the_upstream_verified_by_the_served_jwks(stack):
    r = stack.envoy.get("/inventory/1", [("authorization", f"Bearer {stack.token(email='alice@example.com')}")])
    assert r.status == 200, r
    auth = r.upstream_headers["authorization"]
    assert len(auth) == 1 and auth[0].startswith("Bearer ")
    minted = auth[0][7:]
    header, _ = jwt_tool.decode_unverified(minted)
    assert header == {"typ": "JWT", "alg": "EdDSA", "kid": "edge-2026-12"}
    c = jwt_tool.verify(minted, served_keys(stack))
    assert c["iss"] == EDGE and c["aud"] == INVENTORY and c["sub"] == "alice"
    assert c["sub_id"] == {"format": "iss_sub", "iss": ISS, "sub": "alice"}
    assert c["act"] == {"sub": EDGE}
    assert c["scope"] == "inventory:read", "never wider than the route asks"
    assert c["email"] == "alice@example.com"
    assert c["exp"] - c["iat"] == 60 and abs(c["iat"] - time.time()) < 5
    assert r.upstream_headers["x-user-sub"] == ["alice"]


def test_a_token_lacking_the_route_scope_is_403_and_nothing_is_signed(stack):
    before = stack.envoy.stats().get("mint_ok", 0)
    r = stack.envoy.get("/inventory/1", [("authorization", f"Bearer {stack.token(sub='bob', scope='profile')}")])
    assert r.status == 403, r
    assert 'scope="inventory:read"' in r.header("www-authenticate")
    assert stack.envoy.stats().get("mint_ok", 0) == before


def test_concurrent_first_requests_sign_at_most_once_per_worker(stack):
    tok = stack.token(sub="carol")
    before = stack.envoy.stats().get("mint_ok", 0)
    with ThreadPoolExecutor(16) as ex:
        rs = list(ex.map(lambda _: stack.envoy.get("/inventory/1", [("authorization", f"Bearer {tok}")]), range(64)))
    assert [r.status for r in rs] == [200] * 64
    minted = {r.upstream_headers["authorization"][0] for r in rs}
    signed = stack.envoy.stats()["mint_ok"] - before
    print(f"\n64 concurrent first requests: {signed} signature(s), {len(minted)} distinct token(s), 2 workers")
    assert 1 <= signed <= 2 and len(minted) == signed


def test_the_private_key_is_in_no_answer_and_no_log(stack):
    d = json.loads(stack.env[ENV])["d"]
    assert d not in stack.envoy.get(JWKS_PATH).body.decode()
    stack.envoy.get("/inventory/1", [("authorization", f"Bearer {stack.token(sub='dave')}")])
    assert d not in stack.envoy.log()


def test_bad_signing_keys_are_refused_at_load_with_the_field_named():
    k = jwt_tool.Key("EdDSA", kid="k")
    good = k.private_jwk()
    wrong_curve = dict(good, crv="X25519")
    cases = [
        ({"issuer": EDGE, "kid": "k", "alg": "EdDSA", "private_jwk": wrong_curve}, {}, "signing.private_jwk.crv"),
        ({"issuer": EDGE, "kid": "k", "alg": "EdDSA", "private_jwk": k.public_jwk()}, {}, "signing.private_jwk.d"),
        ({"issuer": EDGE, "kid": "k", "alg": "EdDSA", "private_jwk_env": "TEF_UNSET_VAR"}, {}, "signing.private_jwk_env"),
        ({"issuer": EDGE, "kid": "k", "alg": "EdDSA", "private_jwk_env": ENV}, {ENV: "not json"}, "signing.private_jwk_env"),
        ({"issuer": EDGE, "keys": [{"kid": "a", "alg": "EdDSA", "private_jwk": good},
                                   {"kid": "a", "alg": "EdDSA", "public_jwk": k.public_jwk(), "retired": True}]}, {},
         "signing.keys[1].kid"),
    ]
    for signing, env, field in cases:
        cfg = bootstrap(plugin(signing), [static_cluster("idp", 9), static_cluster("upstream", 9)], env_keys=[ENV])
        rc, out = validate(cfg, env=env)
        assert rc != 0, out
        assert f"invalid plugin configuration: {field}:" in out, out[-2000:]
        assert good["d"] not in out, "the private key in an error text"
