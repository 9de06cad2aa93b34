"""Every hop its own token, through five real Envoys on 127.0.0.1:

    client → edge (validates the IdP token, exchanges it for service A's audience)
           → A's sidecar inbound (validates aud = A) → service A (calls B with the token it got)
           → A's sidecar outbound (picks the target by Envoy's cluster; exchanges at the STS, or
             mints, for B's audience) → B's sidecar inbound (validates aud = B) → B (echo)
    and C's sidecar inbound (aud = C), for replays.

Run for the exchange variant (B trusts the STS), the mint variant (B trusts A's sidecar, whose
JWKS it fetches over HTTP from A's sidecar itself) and the nested variant (A's sidecar mints a
token carrying the one A received; B verifies both, and names the caller in its own header)."""
import json

import pytest

import jwt_tool
from conftest import start_envoy, stop_envoy
from harness import Envoy, bootstrap, request, static_cluster
from servers import STS, Echo, IdP, Service, free_port

ISS, API = "https://idp.example.com", "https://api.ecomm.com"
STS_ISS = "https://sts.ecomm.com"
A, B, C = "https://a.ecomm.com", "https://b.ecomm.com", "https://c.ecomm.com"
A_SIDECAR = "https://a.sidecar.ecomm.com"
SIDECAR_JWKS = "/.well-known/jwks.json"


def jwks_remote(cluster):
    return {"cluster": cluster, "path": "/jwks", "refresh_seconds": 300, "timeout_ms": 1000}


def sts_conf(client_id, secret):
    return {"cluster": "sts", "path": "/token", "timeout_ms": 1000, "issuer": STS_ISS,
            "client_auth": {"method": "client_secret_basic", "client_id": client_id, "client_secret": secret},
            "jwks": jwks_remote("sts"), "expiry_margin_seconds": 30}


FORWARD = {"claims_to_headers": {"sub": "x-user-sub"}, "strip_headers": ["x-caller"]}


def inbound(provider: dict) -> dict:
    """A sidecar's inbound filter: only tokens meant for this service pass."""
    return {"providers": [provider], "forward": FORWARD}


class Chain:
    def __init__(self, variant: str):
        self.variant = variant
        self.idp = IdP(ISS).start()
        self.sts = STS(STS_ISS, self.idp, [A, B, C], port=free_port(), clients={"service-a": "a-s3cr3t"}).start()
        self.b, self.c = Echo().start(), Echo().start()
        ports = {n: free_port() for n in ("edge", "a_in", "a_out", "b_in", "c_in")}
        self.service_a = Service(ports["a_out"], "b.svc").start()
        sts_provider = {"name": "sts", "issuer": STS_ISS, "audiences": [A], "jwks": jwks_remote("sts")}
        # Edge: the IdP's token in, an exchanged token for A out.
        edge = {"providers": [{"name": "corp", "issuer": ISS, "audiences": [API], "jwks": jwks_remote("idp")}],
                "sts": sts_conf("gateway", "s3cr3t"),
                "routes": [{"match": {"path_prefix": "/"}, "exchange": {"audience": A}}], "forward": FORWARD}
        # A's outbound: A's own token in; a token for B out, chosen by Envoy's upstream cluster.
        if variant == "exchange":
            a_out = {"providers": [sts_provider], "sts": sts_conf("service-a", "a-s3cr3t"),
                     "routes": [{"match": {"cluster": "b"}, "exchange": {"audience": B}}], "forward": FORWARD,
                     # A new exchange on every call, so that the STS-down case is decided here.
                     "cache": {"max_ttl_seconds": 0}}
            b_provider = {"name": "sts", "issuer": STS_ISS, "jwks": jwks_remote("sts")}
        else:
            self.sidecar_key = jwt_tool.Key("EdDSA", kid="a-sidecar-1")
            mint = {"audience": B, "nest": variant == "nested"}
            a_out = {"providers": [sts_provider],
                     "signing": {"issuer": A_SIDECAR, "kid": self.sidecar_key.kid, "alg": "EdDSA",
                                 "private_jwk": self.sidecar_key.private_jwk(), "ttl_seconds": 60,
                                 "jwks_path": SIDECAR_JWKS},
                     "routes": [{"match": {"cluster": "b"}, "mint": mint}], "forward": FORWARD}
            # B trusts A's sidecar through the JWKS A's sidecar serves.
            b_provider = {"name": "a-sidecar", "issuer": A_SIDECAR,
                          "jwks": {"cluster": "a_out", "path": SIDECAR_JWKS, "refresh_seconds": 300, "timeout_ms": 1000}}
            if variant == "nested":
                # The inner token is the one A received (from the STS, for A): trusted only inside.
                b_provider["nested"] = {"inner_providers": ["sts"], "caller_header": "x-caller"}
        common = [static_cluster("idp", self.idp.port), static_cluster("sts", self.sts.port),
                  static_cluster("a_out", ports["a_out"])]
        self.envoys = {}
        def inbound_for(aud):
            conf = inbound({**b_provider, "audiences": [aud]})
            if variant == "nested":
                conf["providers"].insert(0, sts_provider)
            return conf
        plan = [
            ("a_out", a_out, static_cluster("b", ports["b_in"]), "b"),
            ("b_in", inbound_for(B), static_cluster("svc", self.b.port), "svc"),
            ("c_in", inbound_for(C), static_cluster("svc", self.c.port), "svc"),
            ("a_in", inbound(sts_provider), static_cluster("svc", self.service_a.port), "svc"),
            ("edge", edge, static_cluster("svc", ports["a_in"]), "svc"),
        ]
        for name, plugin, upstream, cluster in plan:
            cfg = bootstrap(plugin, common + [upstream],
                            [{"name": name, "match": {"prefix": "/"}, "route": {"cluster": cluster}}])
            cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = ports[name]
            self.envoys[name] = start_envoy(Envoy(cfg, concurrency=1, name=f"chain-{variant}-{name}"))

    def token(self, sub="alice") -> str:
        return jwt_tool.encode(self.idp.key("ES256"), jwt_tool.claims(ISS, API, sub=sub, scope="read"))

    def call(self, tok, extra=()):
        return self.envoys["edge"].get("/a/call", [("authorization", f"Bearer {tok}"), *extra])

    def close(self):
        for e in self.envoys.values():
            stop_envoy(e)
        for s in (self.idp, self.sts, self.b, self.c, self.service_a):
            s.stop()


@pytest.fixture(scope="module", params=["exchange", "mint", "nested"])
def chain(request):
    c = Chain(request.param)
    yield c
    c.close()


def bearer_of(headers: dict) -> str:
    v = headers["authorization"]
    assert len(v) == 1 and v[0].startswith("Bearer "), v
    return v[0][7:]


def through(chain, sub="alice"):
    """One request through the whole chain: (what A saw, what B saw)."""
    r = chain.call(chain.token(sub), [("x-user-sub", "admin")])
    assert r.status == 200, r
    a = r.json()
    assert a["next_status"] == 200, a
    return a["saw"], json.loads(a["next_body"])["headers"]


def test_b_receives_a_token_meant_for_b_carrying_the_end_user_and_the_chain(chain):
    a_saw, b_saw = through(chain)
    _, a_claims = jwt_tool.decode_unverified(a_saw["authorization"][7:])
    assert a_claims["aud"] == A and a_claims["sub"] == "alice"
    _, b_claims = jwt_tool.decode_unverified(bearer_of(b_saw))
    assert b_claims["aud"] == B and b_claims["sub"] == "alice"
    if chain.variant == "exchange":
        assert b_claims["iss"] == STS_ISS
        assert b_claims["act"] == {"sub": "service-a", "act": {"sub": "gateway"}}
    else:
        assert b_claims["iss"] == A_SIDECAR
        assert b_claims["act"] == {"sub": A_SIDECAR, "act": {"sub": "gateway"}}
        assert b_claims["sub_id"] == {"format": "iss_sub", "iss": STS_ISS, "sub": "alice"}
        jwt_tool.verify(bearer_of(b_saw), {chain.sidecar_key.kid: chain.sidecar_key})
    # The identity headers each hop sets are the verified ones; forged ones never arrive.
    assert a_saw["x-user-sub"] == "alice"
    assert b_saw["x-user-sub"] == ["alice"], "A's forged x-user-sub: admin was stripped"
    if chain.variant == "nested":
        assert b_claims["subject_token"] == a_saw["authorization"][7:], "A's own token travels inside"
        assert b_saw["x-caller"] == [json.dumps([A_SIDECAR, "alice"], separators=(",", ":"))], "not A's forged one"
    else:
        assert "x-caller" not in b_saw


def test_a_token_for_a_replayed_straight_to_b_is_refused(chain):
    a_saw, _ = through(chain, sub="replay-a")
    n = chain.b.requests
    r = request(chain.envoys["b_in"].port, "/b/echo", [("authorization", a_saw["authorization"])])
    assert r.status == 401, r
    assert chain.b.requests == n
    expect = {"exchange": "denied.audience", "mint": "denied.issuer", "nested": "denied.provider_not_allowed"}
    assert chain.envoys["b_in"].stats()[expect[chain.variant]] >= 1


def test_a_token_for_b_replayed_to_c_is_refused(chain):
    _, b_saw = through(chain, sub="replay-b")
    n = chain.c.requests
    r = request(chain.envoys["c_in"].port, "/c/echo", [("authorization", f"Bearer {bearer_of(b_saw)}")])
    assert r.status == 401, r
    assert chain.c.requests == n
    assert chain.envoys["c_in"].stats()["denied.audience"] >= 1


def test_the_clients_own_token_is_refused_by_every_sidecar(chain):
    tok = chain.token("direct")
    for name in ("a_in", "b_in", "c_in"):
        assert request(chain.envoys[name].port, "/x", [("authorization", f"Bearer {tok}")]).status == 401, name


def test_with_the_sts_down_the_chain_fails_closed_at_a_outbound(chain):
    if chain.variant != "exchange":
        pytest.skip("the mint variant makes no STS call at A's outbound")
    tok = chain.token("sts-down")
    assert chain.call(tok).status == 200  # the edge caches its exchanged token for A
    n = chain.b.requests
    # Down: no new connections, and Envoy's pooled keep-alive connection is closed on its next use.
    chain.sts.mode = "close"
    chain.sts.stop()
    try:
        r = chain.call(tok)
        assert r.status == 200, r  # A answers; its call to B failed
        assert r.json()["next_status"] == 503
        assert chain.b.requests == n, "nothing reached B without a token for B"
        assert chain.envoys["a_out"].stats()["exchange_failed.unreachable"] >= 1
    finally:
        chain.sts.mode = "ok"
        chain.sts.start()
