"""Transaction Tokens through four real Envoys on 127.0.0.1:

    client → edge (validates the IdP token; one Txn-Token per request from the Txn-Token
             service; Authorization removed) → A's sidecar inbound (validates the Txn-Token:
             signature, typ, trust domain, txn, req_wl) → service A (calls B with the Txn-Token
             it got) → B's sidecar inbound (the same checks, and refuses a txn seen before) → B

Beside the chain: an edge that also exchanges the client's token for A, and A's sidecar outbound
replacing the Txn-Token with one that names A (the same transaction). The same Txn-Token arrives
at A and at B; the outside access token reaches neither; forged,
expired, replayed and misdirected ones are refused, each with its counter."""
import json

import pytest

import jwt_tool
from conftest import start_envoy, stop_envoy
from harness import Envoy, bootstrap, request, static_cluster
from servers import STS, TXN_TOKEN_TYPE, Echo, IdP, Service, free_port

ISS, API = "https://idp.example.com", "https://api.ecomm.com"
TTS = "https://tts.ecomm.com"
TD = "trust.ecomm.com"
A = "https://a.ecomm.com"
FORWARD = {"claims_to_headers": {"sub": "x-user-sub", "txn": "x-txn", "rctx": "x-request-context", "scope": "x-scope"},
           "strip_headers": ["x-caller"]}


def jwks_remote(cluster):
    return {"cluster": cluster, "path": "/jwks", "refresh_seconds": 300, "timeout_ms": 1000}


def txn_provider(**extra):
    return {"name": "tts", "issuer": TTS, "audiences": [TD], "jwks": jwks_remote("tts"),
            "txn_token": {"workloads": ["gateway"], **extra}}


class Stack:
    def __init__(self):
        self.idp = IdP(ISS).start()
        self.tts = STS(TTS, self.idp, [TD, A], port=free_port(), clients={"service-a": "a-s3cr3t"}).start()
        self.b = Echo().start()
        ports = {n: free_port() for n in ("edge", "edge_x", "a_in", "a_out", "b_in")}
        self.service_a = Service(ports["b_in"], "b.svc").start()
        edge = {"providers": [{"name": "corp", "issuer": ISS, "audiences": [API], "jwks": jwks_remote("idp")}],
                "sts": {"cluster": "tts", "path": "/token", "timeout_ms": 1000, "issuer": TTS,
                        "client_auth": {"method": "client_secret_basic", "client_id": "gateway", "client_secret": "s3cr3t"},
                        "jwks": jwks_remote("tts")},
                "routes": [{"match": {"path_prefix": "/"},
                            "exchange": {"txn_token": True, "audience": TD, "scopes": ["read"], "max_lifetime_seconds": 120}}],
                "forward": {"claims_to_headers": {"sub": "x-user-sub"}}}
        # Another edge: the client's token exchanged for A's audience, and a Txn-Token beside it.
        edge_x = json.loads(json.dumps(edge))
        edge_x["routes"][0]["exchange"]["authorization"] = {"exchange": {"audience": A}}
        a_in = {"providers": [txn_provider()], "from": [{"header": "txn-token"}], "forward": FORWARD}
        b_in = {"providers": [{**txn_provider(refuse_replay=True), "txn_token": {"workloads": ["gateway", "service-a"], "refuse_replay": True}}],
                "from": [{"header": "txn-token"}], "forward": FORWARD}
        # A's sidecar outbound: the Txn-Token A got, replaced by one that names A as a requester.
        a_out = {"providers": [txn_provider()], "from": [{"header": "txn-token"}],
                 "sts": {**edge["sts"], "client_auth": {"method": "client_secret_basic", "client_id": "service-a", "client_secret": "a-s3cr3t"},
                         "subject_token_type": TXN_TOKEN_TYPE},
                 "routes": [{"match": {"path_prefix": "/"}, "exchange": {"txn_token": True, "audience": TD}}],
                 "forward": FORWARD}
        common = [static_cluster("idp", self.idp.port), static_cluster("tts", self.tts.port)]
        plan = [("b_in", b_in, self.b.port), ("a_in", a_in, self.service_a.port), ("edge", edge, ports["a_in"]),
                ("edge_x", edge_x, ports["a_in"]), ("a_out", a_out, ports["b_in"])]
        self.envoys = {}
        for name, plugin, upstream in plan:
            cfg = bootstrap(plugin, common + [static_cluster("svc", upstream)],
                            [{"name": name, "match": {"prefix": "/"}, "route": {"cluster": "svc"}}])
            cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = ports[name]
            self.envoys[name] = start_envoy(Envoy(cfg, concurrency=2, name=f"txn-{name}"))

    def token(self, sub="alice", scope="read write") -> str:
        return jwt_tool.encode(self.idp.key("ES256"), jwt_tool.claims(ISS, API, sub=sub, scope=scope))

    def call(self, tok, extra=()):
        return self.envoys["edge"].get("/a/call?q=secret", [("authorization", f"Bearer {tok}"), *extra])

    def close(self):
        for e in self.envoys.values():
            stop_envoy(e)
        for s in (self.idp, self.tts, self.b, self.service_a):
            s.stop()


@pytest.fixture(scope="module")
def stack():
    s = Stack()
    yield s
    s.close()


def through(stack, tok, extra=()):
    """One request through the chain: (what A saw, what B saw)."""
    r = stack.call(tok, extra)
    assert r.status == 200, r
    a = r.json()
    assert a["next_status"] == 200, a
    return a["saw"], json.loads(a["next_body"])["headers"]


def test_one_txn_token_travels_the_whole_chain_and_the_outside_token_never_does(stack):
    tok = stack.token()
    n = stack.tts.txn_requests
    a_saw, b_saw = through(stack, tok, [("x-user-sub", "admin")])
    assert stack.tts.txn_requests == n + 1
    form = stack.tts.last_form
    assert form["requested_token_type"] == [TXN_TOKEN_TYPE] and form["audience"] == [TD]
    assert form["scope"] == ["read"], "never more than the route needs"
    assert json.loads(form["request_details"][0]) == {"method": "GET", "path": "/a/call"}, "no query string"
    assert json.loads(form["request_context"][0]) == {"req_ip": "127.0.0.1", "authn": "urn:ietf:rfc:6750"}
    txn_token = a_saw["txn-token"]
    header, claims = jwt_tool.decode_unverified(txn_token)
    assert header["typ"] == "txntoken+jwt"
    assert claims["aud"] == TD and claims["sub"] == "alice" and claims["txn"] == stack.tts.txns[-1]
    assert claims["scope"] == "read" and claims["req_wl"] == "gateway"
    jwt_tool.verify(txn_token, stack.tts.keys)
    # A and B got the very same Txn-Token, and the verified claims from it.
    assert b_saw["txn-token"] == [txn_token]
    for saw in (a_saw, {k: v[0] for k, v in b_saw.items()}):
        assert saw["x-txn"] == claims["txn"] and saw["x-user-sub"] == "alice" and saw["x-scope"] == "read"
        assert json.loads(saw["x-request-context"]) == {"req_ip": "127.0.0.1", "authn": "urn:ietf:rfc:6750"}
    # The outside access token was taken out at the edge: nothing inside carries it.
    assert "authorization" not in a_saw and "authorization" not in b_saw
    assert not any(tok in json.dumps(v) for v in (a_saw, b_saw))
    for name in ("a_in", "b_in"):
        assert stack.envoys[name].stats()["allowed"] >= 1
    assert stack.envoys["edge"].stats()["txn_token_ok"] >= 1


def test_every_request_gets_its_own_txn(stack):
    tok = stack.token("bob")
    n = stack.tts.txn_requests
    txns = {through(stack, tok)[0]["x-txn"] for _ in range(3)}
    assert len(txns) == 3, "a Txn-Token is never served to another request"
    assert stack.tts.txn_requests == n + 3


def test_a_client_cannot_bring_its_own_txn_token(stack):
    forged = jwt_tool.encode(jwt_tool.Key("ES256", kid="sts-1"),
                             {"iss": TTS, "aud": TD, "sub": "admin", "txn": "x", "exp": 2**31}, header={"typ": "txntoken+jwt"})
    a_saw, _ = through(stack, stack.token("carol"), [("txn-token", forged)])
    assert a_saw["txn-token"] != forged and jwt_tool.decode_unverified(a_saw["txn-token"])[1]["sub"] == "carol"


def test_forged_expired_misdirected_and_replayed_txn_tokens_are_refused(stack):
    _, b_saw = through(stack, stack.token("dave"))
    good = b_saw["txn-token"][0]
    key = next(iter(stack.tts.keys.values()))
    base = jwt_tool.decode_unverified(good)[1]
    forged_key = jwt_tool.Key("ES256", kid=key.kid)
    cases = [
        ("signature", jwt_tool.encode(forged_key, base, header={"typ": "txntoken+jwt"})),
        ("expired", jwt_tool.encode(key, {**base, "exp": base["iat"] - 300}, header={"typ": "txntoken+jwt"})),
        ("audience", jwt_tool.encode(key, {**base, "aud": "elsewhere.example"}, header={"typ": "txntoken+jwt"})),
        ("token_type", jwt_tool.encode(key, base, header={"typ": "at+jwt"})),
        ("txn_workload", jwt_tool.encode(key, {**base, "req_wl": "evil-workload"}, header={"typ": "txntoken+jwt"})),
        ("claims", jwt_tool.encode(key, {k: v for k, v in base.items() if k != "txn"}, header={"typ": "txntoken+jwt"})),
        # The IdP's access token is no Txn-Token.
        ("issuer", stack.token("eve")),
    ]
    a = stack.envoys["a_in"]
    for reason, tok in cases:
        n = stack.service_a.requests
        r = request(a.port, "/a/call", [("txn-token", tok)])
        assert r.status == 401, (reason, r)
        assert stack.service_a.requests == n, reason
        assert a.stats()[f"denied.{reason}"] >= 1, reason
    # B refuses a txn it has seen (its `refuse_replay`); A (default) takes a repeat.
    n = stack.b.requests
    r = request(stack.envoys["b_in"].port, "/b/echo", [("txn-token", good)])
    assert r.status == 401 and stack.b.requests == n
    assert stack.envoys["b_in"].stats()["denied.txn_replay"] >= 1
    assert request(a.port, "/a/call", [("txn-token", good)]).status == 200


@pytest.mark.parametrize("mode", ["wrong_typ", "bad_sig", "long_lived", "wrong_aud", "no_txn", "wider_scope"])
def test_a_bad_answer_from_the_service_is_never_forwarded(stack, mode):
    edge = stack.envoys["edge"]
    before = edge.stats().get("txn_token_rejected", 0)
    n = stack.service_a.requests
    stack.tts.mode = mode
    try:
        r = stack.call(stack.token("frank"))
    finally:
        stack.tts.mode = "ok"
    assert r.status == 503, r
    assert stack.service_a.requests == n
    assert edge.stats()["txn_token_rejected"] == before + 1


def test_with_the_service_down_or_refusing_the_edge_fails_closed(stack):
    edge = stack.envoys["edge"]
    n = stack.service_a.requests
    r = stack.call(stack.token("gina", scope="write"))
    assert r.status == 403, "the route needs `read`: no call at all"
    stack.tts.mode = "invalid_grant"
    try:
        assert stack.call(stack.token("gina")).status == 401
    finally:
        stack.tts.mode = "ok"
    assert edge.stats()["denied.txn_token_refused"] >= 1
    stack.tts.mode = "close"
    stack.tts.stop()
    try:
        assert stack.call(stack.token("gina")).status == 503
        assert edge.stats()["txn_token_failed.unreachable"] >= 1
    finally:
        stack.tts.mode = "ok"
        stack.tts.start()
    assert stack.service_a.requests == n


def test_an_edge_may_exchange_authorization_for_the_upstream_and_add_the_txn_token(stack):
    tok = stack.token("hana")
    calls, txns = stack.tts.token_requests, stack.tts.txn_requests
    r = stack.envoys["edge_x"].get("/a/call", [("authorization", f"Bearer {tok}")])
    assert r.status == 200, r
    a_saw = r.json()["saw"]
    assert stack.tts.token_requests == calls + 2 and stack.tts.txn_requests == txns + 1, "an exchange and a Txn-Token call"
    _, x = jwt_tool.decode_unverified(a_saw["authorization"][7:])
    assert x["aud"] == A and x["iss"] == TTS and x["sub"] == "hana", "A gets a token meant for A"
    _, t = jwt_tool.decode_unverified(a_saw["txn-token"])
    assert t["aud"] == TD and t["sub"] == "hana"
    assert tok not in json.dumps(a_saw)
    # The exchanged token is cached; the Txn-Token is new for every request.
    r = stack.envoys["edge_x"].get("/a/call", [("authorization", f"Bearer {tok}")])
    assert r.status == 200 and stack.tts.token_requests == calls + 3
    assert r.json()["saw"]["authorization"] == a_saw["authorization"]
    assert r.json()["saw"]["txn-token"] != a_saw["txn-token"]


def txn_token_from_the_service(stack, sub):
    """A Txn-Token straight from the service (as the edge would get one), not yet seen by anyone."""
    import base64
    import urllib.parse
    import urllib.request
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "requested_token_type": TXN_TOKEN_TYPE,
            "audience": TD, "subject_token": stack.token(sub), "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "request_context": json.dumps({"req_ip": "192.0.2.1", "authn": "urn:ietf:rfc:6750"}),
            "request_details": json.dumps({"method": "GET", "path": "/x"})}
    req = urllib.request.Request(f"http://127.0.0.1:{stack.tts.port}/token", data=urllib.parse.urlencode(form).encode(),
                                 headers={"authorization": "Basic " + base64.b64encode(b"gateway:s3cr3t").decode()})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["access_token"]


def test_a_sidecar_outbound_replaces_the_txn_token_keeping_the_transaction(stack):
    original = txn_token_from_the_service(stack, "ivan")
    _, o = jwt_tool.decode_unverified(original)
    r = request(stack.envoys["a_out"].port, "/b/echo", [("txn-token", original)])
    assert r.status == 200, r
    got = r.upstream_headers["txn-token"]
    assert len(got) == 1 and got[0] != original
    _, c = jwt_tool.decode_unverified(got[0])
    assert c["txn"] == o["txn"] and c["sub"] == "ivan" and c["rctx"] == o["rctx"], "the transaction and its context stay"
    assert c["req_wl"] == ["gateway", "service-a"], "A's sidecar is named as the next requester"
    assert stack.tts.last_form["subject_token_type"] == [TXN_TOKEN_TYPE]
    assert r.upstream_headers["x-txn"] == [o["txn"]], "B verified the replacement"


@pytest.mark.parametrize("fault,why", [("500", "server_error"), ("garbage", "bad_response"), ("slow", "timeout")])
def test_a_failing_service_fails_closed_with_its_reason(stack, fault, why):
    """The Txn-Token callout's faults besides down (above): 5xx, garbage, slower than timeout_ms."""
    edge = stack.envoys["edge"]
    before = edge.stats().get(f"txn_token_failed.{why}", 0)
    n = stack.service_a.requests
    if fault == "slow":
        stack.tts.delay = 1.5  # the edge's timeout_ms is 1000
    else:
        stack.tts.mode = fault
    try:
        r = stack.call(stack.token("jon"))
    finally:
        stack.tts.mode, stack.tts.delay = "ok", 0.0
    assert r.status == 503, r
    assert stack.service_a.requests == n, "nothing reached A without a Txn-Token"
    assert edge.stats()[f"txn_token_failed.{why}"] == before + 1
