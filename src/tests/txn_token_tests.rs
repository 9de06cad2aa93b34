//! Transaction Tokens natively: the edge's call per request (never shared, never cached), the
//! request's shape, every check on the answer, where the token goes and what happens to the
//! client's; and a sidecar's provider (`typ`, `txn`, `req_wl`, replay refusal).

use super::support::{bearer, claims, EsKey};
use crate::config;
use crate::flow::{CallResult, Connection, ExchangeCall, Filter, Outcome, Pending};
use crate::metrics::{Deny, Metric};
use crate::route::RouteInput;
use crate::sts::Failure;
use crate::testing::FakeHost;
use serde_json::{json, Value};
use std::rc::Rc;

const NOW: u64 = 1_800_000_000_000;
const ISS: &str = "https://idp.example.com";
const TTS: &str = "https://tts.ecomm.com";
const TD: &str = "trust.ecomm.com";

struct Env {
    host: FakeHost,
    idp: EsKey,
    tts: EsKey,
    cfg: Rc<config::Config>,
}

fn env_with(edit: impl FnOnce(&mut Value)) -> Env {
    let idp = EsKey::new("i1");
    let tts = EsKey::new("t1");
    let mut v = json!({
        "providers": [{"name": "corp", "issuer": ISS, "audiences": ["api"], "jwks": {"inline": {"keys": [idp.jwk()]}}}],
        "sts": {"cluster": "tts", "path": "/token", "timeout_ms": 1000, "issuer": TTS,
                "client_auth": {"method": "client_secret_basic", "client_id": "edge", "client_secret": "s"},
                "jwks": {"inline": {"keys": [tts.jwk()]}}},
        "routes": [{"match": {"path_prefix": "/"}, "exchange": {"txn_token": true, "audience": TD, "scopes": ["orders:read"], "max_lifetime_seconds": 60}}],
        "forward": {"claims_to_headers": {"sub": "x-sub"}}
    });
    edit(&mut v);
    Env { host: FakeHost::new(NOW), idp, tts, cfg: Rc::new(config::parse(v.to_string().as_bytes()).unwrap()) }
}

impl Env {
    fn vm(&self) -> Filter {
        let mut f = Filter::new(self.cfg.clone());
        f.init(&self.host);
        f
    }
    fn subject(&self) -> String {
        let mut c = claims(ISS, "api", "alice", self.host.now.get());
        c["scope"] = json!("orders:read orders:write");
        self.idp.token(&c)
    }
    fn txn_token(&self, edit: impl FnOnce(&mut Value)) -> String {
        let now = self.host.now.get() / 1000;
        let mut c = json!({"iss": TTS, "aud": TD, "sub": "alice", "txn": "97053963-771d-49cc-a4e3-20aad399c312",
                           "iat": now, "exp": now + 60, "scope": "orders:read", "req_wl": "edge"});
        edit(&mut c);
        self.tts.token_with_header(&json!({"alg": "ES256", "kid": "t1", "typ": "txntoken+jwt"}), &c)
    }
}

fn answer(token: &str) -> Vec<u8> {
    json!({"access_token": token, "issued_token_type": "urn:ietf:params:oauth:token-type:txn_token", "token_type": "N_A"}).to_string().into_bytes()
}

fn ask(f: &mut Filter, host: &FakeHost, tok: &str) -> Outcome {
    let r = RouteInput { method: "POST", path: "/orders/7?card=4111", authority: "api.ecomm.com", route_name: None, cluster: None };
    let mut h = bearer(tok);
    h.push((":method".into(), b"POST".to_vec()));
    h.push((":path".into(), b"/orders/7?card=4111".to_vec()));
    f.on_request_with(&r, &h, Connection { peer_cert_sha256: None, source_address: Some("203.0.113.9:50123") }, host)
}

fn call(o: Outcome) -> (ExchangeCall, Pending) {
    match o {
        Outcome::Call(c, p) => (c, p),
        other => panic!("expected Call, got {other:?}"),
    }
}

fn form(c: &ExchangeCall) -> Vec<(String, String)> {
    url_decode(&String::from_utf8(c.body.clone()).unwrap())
}

fn url_decode(body: &str) -> Vec<(String, String)> {
    let dec = |s: &str| {
        let b = s.replace('+', " ");
        let bytes = b.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&b[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    body.split('&').map(|kv| kv.split_once('=').unwrap()).map(|(k, v)| (dec(k), dec(v))).collect()
}

fn done(f: &mut Filter, e: &Env, c: &ExchangeCall, p: &Pending, body: &[u8]) -> Outcome {
    f.call_done(&c.key, CallResult::Response { status: "200", body, content_type: None, cache_control: None }, &e.host);
    f.resume(p, &e.host).expect("decided after its own call")
}

#[test]
fn one_call_per_request_with_the_drafts_request_and_the_token_in_its_header() {
    let e = env_with(|_| {});
    let mut f = e.vm();
    let tok = e.subject();
    let (c1, p1) = call(ask(&mut f, &e.host, &tok));
    // The same token again at once: its own call (a Txn-Token names one call chain).
    let (c2, p2) = call(ask(&mut f, &e.host, &tok));
    assert_ne!(c1.key, c2.key);
    let got = form(&c1);
    let get = |k: &str| got.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("grant_type").as_deref(), Some("urn:ietf:params:oauth:grant-type:token-exchange"));
    assert_eq!(get("requested_token_type").as_deref(), Some("urn:ietf:params:oauth:token-type:txn_token"));
    assert_eq!(get("audience").as_deref(), Some(TD));
    assert_eq!(get("scope").as_deref(), Some("orders:read"), "never more than the route needs");
    assert_eq!(get("subject_token").as_deref(), Some(tok.as_str()));
    let ctx: Value = serde_json::from_str(&get("request_context").unwrap()).unwrap();
    assert_eq!(ctx, json!({"req_ip": "203.0.113.9", "authn": "urn:ietf:rfc:6750"}));
    let details: Value = serde_json::from_str(&get("request_details").unwrap()).unwrap();
    assert_eq!(details, json!({"method": "POST", "path": "/orders/7"}), "no query string");
    let t1 = e.txn_token(|_| {});
    let t2 = e.txn_token(|c| c["txn"] = json!("another-chain"));
    // Answers come back in the other order: each goes to its own request.
    let o2 = done(&mut f, &e, &c2, &p2, &answer(&t2));
    let o1 = done(&mut f, &e, &c1, &p1, &answer(&t1));
    for (o, t) in [(o1, t1), (o2, t2)] {
        match o {
            Outcome::Allow(plan) => {
                assert!(plan.set.contains(&("txn-token".into(), t)));
                assert!(plan.set.contains(&("x-sub".into(), "alice".into())));
                assert!(plan.remove.contains(&"authorization".to_string()), "the outside token never travels inside");
                assert!(!plan.set.iter().any(|(k, _)| k == "authorization"));
            }
            o => panic!("{o:?}"),
        }
    }
    assert_eq!(e.host.counter(Metric::TxnTokenOk), 2);
    // Nothing was cached: a third request calls again.
    call(ask(&mut f, &e.host, &tok));
}

#[test]
fn forwarding_authorization_and_a_client_txn_token_header_is_replaced() {
    let e = env_with(|v| v["routes"][0]["exchange"]["authorization"] = json!("forward"));
    assert!(e.cfg.forward.strip_headers.contains(&"txn-token".to_string()), "stripped on every route");
    let mut f = e.vm();
    let (c, p) = call(ask(&mut f, &e.host, &e.subject()));
    match done(&mut f, &e, &c, &p, &answer(&e.txn_token(|_| {}))) {
        Outcome::Allow(plan) => {
            assert!(!plan.remove.contains(&"authorization".to_string()));
            assert_eq!(plan.set.iter().filter(|(k, _)| k == "txn-token").count(), 1);
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn every_bad_answer_is_refused_and_never_forwarded() {
    let e = env_with(|_| {});
    let other = EsKey::new("t1");
    let now = NOW / 1000;
    let header = |typ: &str| json!({"alg": "ES256", "kid": "t1", "typ": typ});
    let good_claims = json!({"iss": TTS, "aud": TD, "sub": "alice", "txn": "t", "iat": now, "exp": now + 60, "scope": "orders:read"});
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("typ at+jwt", answer(&e.tts.token_with_header(&header("at+jwt"), &good_claims))),
        ("forged signature", answer(&other.token_with_header(&header("txntoken+jwt"), &good_claims))),
        ("another trust domain", answer(&e.txn_token(|c| c["aud"] = json!("other.domain")))),
        ("no txn", answer(&e.txn_token(|c| { c.as_object_mut().unwrap().remove("txn"); }))),
        ("no sub", answer(&e.txn_token(|c| { c.as_object_mut().unwrap().remove("sub"); }))),
        ("expired", answer(&e.txn_token(|c| c["exp"] = json!(now - 1)))),
        ("too long-lived", answer(&e.txn_token(|c| c["exp"] = json!(now + 3600)))),
        ("wider scope", answer(&e.txn_token(|c| c["scope"] = json!("orders:read orders:write")))),
        ("wrong issuer", answer(&e.txn_token(|c| c["iss"] = json!("https://evil")))),
        ("an access token type", json!({"access_token": e.txn_token(|_| {}), "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer"}).to_string().into_bytes()),
        ("opaque", answer("opaque-token")),
    ];
    for (why, body) in cases {
        let mut f = e.vm();
        let (c, p) = call(ask(&mut f, &e.host, &e.subject()));
        match done(&mut f, &e, &c, &p, &body) {
            Outcome::Deny(r) => assert_eq!(r.status, 503, "{why}"),
            o => panic!("{why}: {o:?}"),
        }
    }
    assert_eq!(e.host.counter(Metric::TxnTokenRejected), 11);
    assert_eq!(e.host.counter(Metric::Denied(Deny::TxnTokenUnavailable)), 11);
}

#[test]
fn service_faults_fail_closed_and_one_request_makes_one_call() {
    let e = env_with(|_| {});
    let mut f = e.vm();
    let (c, p) = call(ask(&mut f, &e.host, &e.subject()));
    f.call_done(&c.key, CallResult::Response { status: "504", body: b"", content_type: None, cache_control: None }, &e.host);
    match f.resume(&p, &e.host) {
        Some(Outcome::Deny(r)) => assert_eq!(r.status, 503),
        o => panic!("{o:?}"),
    }
    assert_eq!(e.host.counter(Metric::TxnTokenFailed(Failure::Timeout)), 1);
    // Refused (invalid_grant) → 401, invalid_scope → 403.
    for (err, st) in [("invalid_grant", 401), ("invalid_scope", 403)] {
        let (c, p) = call(ask(&mut f, &e.host, &e.subject()));
        let body = json!({"error": err}).to_string().into_bytes();
        f.call_done(&c.key, CallResult::Response { status: "400", body: &body, content_type: None, cache_control: None }, &e.host);
        match f.resume(&p, &e.host) {
            Some(Outcome::Deny(r)) => assert_eq!(r.status, st, "{err}"),
            o => panic!("{o:?}"),
        }
    }
    assert_eq!(e.host.counter(Metric::Denied(Deny::TxnTokenRefused)), 2);
    // A resumed request whose answer is gone never calls again.
    let (c, p) = call(ask(&mut f, &e.host, &e.subject()));
    f.abandon(&c.key, &e.host);
    match f.resume(&p, &e.host) {
        Some(Outcome::Deny(r)) => assert_eq!(r.status, 503),
        o => panic!("{o:?}"),
    }
    // A subject without the route's scope never reaches the service.
    let mut low = claims(ISS, "api", "bob", NOW);
    low["scope"] = json!("orders:write");
    match ask(&mut f, &e.host, &e.idp.token(&low)) {
        Outcome::Deny(r) => assert_eq!(r.status, 403),
        o => panic!("{o:?}"),
    }
}

#[test]
fn config_errors_name_the_field() {
    let bad = |edit: &dyn Fn(&mut Value), field: &str| {
        let idp = EsKey::new("i1");
        let mut v = json!({
            "providers": [{"name": "corp", "issuer": ISS, "audiences": ["api"], "jwks": {"inline": {"keys": [idp.jwk()]}}}],
            "sts": {"cluster": "tts", "path": "/token", "issuer": TTS, "client_auth": {"method": "none"},
                    "jwks": {"inline": {"keys": [idp.jwk()]}}},
            "routes": [{"exchange": {"txn_token": true, "audience": TD}}]
        });
        edit(&mut v);
        let e = config::parse(v.to_string().as_bytes()).err().unwrap_or_else(|| panic!("accepted: {v}"));
        assert_eq!(e.field, field, "{e}");
    };
    bad(&|v| { v["sts"].as_object_mut().unwrap().remove("jwks"); }, "routes[0].exchange.txn_token");
    bad(&|v| v["routes"][0]["exchange"]["audience"] = json!(["a", "b"]), "routes[0].exchange.audience");
    bad(&|v| v["routes"][0]["exchange"]["authorization"] = json!("exchange"), "routes[0].exchange.authorization");
    bad(&|v| v["routes"][0]["exchange"]["authorization"] = json!({"exchange": {"audience": "*.ecomm.com"}}), "routes[0].exchange.authorization.exchange.audience");
    bad(&|v| v["routes"][0]["exchange"]["authorization"] = json!({"exchange": {}}), "routes[0].exchange.authorization.exchange");
    bad(&|v| v["routes"][0]["exchange"]["header"] = json!("authorization"), "routes[0].exchange.header");
    bad(&|v| v["routes"][0]["exchange"]["max_lifetime_seconds"] = json!(86400), "routes[0].exchange.max_lifetime_seconds");
    bad(&|v| v["routes"][0]["exchange"] = json!({"audience": TD, "header": "x"}), "routes[0].exchange.header");
    bad(&|v| v["forward"] = json!({"claims_to_headers": {"sub": "txn-token"}}), "routes[0].exchange.header");
    bad(&|v| v["providers"][0]["txn_token"] = json!({"workloads": [""]}), "providers[0].txn_token.workloads[0]");
    bad(&|v| v["providers"][0]["txn_token"] = json!({"replay_cache_entries": 100}), "providers[0].txn_token.replay_cache_entries");
}

/// A sidecar's inbound filter taking Txn-Tokens from the `txn-token` header.
fn sidecar(tts: &EsKey, txn: Value) -> (FakeHost, Filter) {
    let v = json!({
        "providers": [{"name": "tts", "issuer": TTS, "audiences": [TD], "jwks": {"inline": {"keys": [tts.jwk()]}}, "txn_token": txn}],
        "from": [{"header": "txn-token"}],
        "forward": {"claims_to_headers": {"sub": "x-sub", "txn": "x-txn", "rctx": "x-request-context"}}
    });
    super::support::filter_at(&v, NOW)
}

fn on(f: &mut Filter, host: &FakeHost, tok: &str) -> Outcome {
    let r = RouteInput { method: "GET", path: "/", authority: "a", route_name: None, cluster: None };
    f.on_request(&r, &[("txn-token".into(), tok.as_bytes().to_vec())], host)
}

#[test]
fn a_sidecar_checks_typ_txn_workload_and_exposes_the_context() {
    let e = env_with(|_| {});
    let (host, mut f) = sidecar(&e.tts, json!({"workloads": ["edge", "a.ecomm.com"]}));
    let tok = e.txn_token(|c| c["rctx"] = json!({"req_ip": "203.0.113.9", "authn": "urn:ietf:rfc:6750"}));
    match on(&mut f, &host, &tok) {
        Outcome::Allow(plan) => {
            assert!(plan.set.contains(&("x-txn".into(), "97053963-771d-49cc-a4e3-20aad399c312".into())));
            assert!(plan.set.contains(&("x-sub".into(), "alice".into())));
            assert!(plan.set.contains(&("x-request-context".into(), r#"{"authn":"urn:ietf:rfc:6750","req_ip":"203.0.113.9"}"#.into())));
        }
        o => panic!("{o:?}"),
    }
    // The same token again: fan-out and retries repeat a `txn`, allowed by default.
    assert!(matches!(on(&mut f, &host, &tok), Outcome::Allow(_)));
    let now = NOW / 1000;
    let cases = [
        (e.txn_token(|c| c["req_wl"] = json!("evil.ecomm.com")), Deny::TxnWorkload),
        (e.txn_token(|c| { c.as_object_mut().unwrap().remove("req_wl"); }), Deny::TxnWorkload),
        (e.txn_token(|c| { c.as_object_mut().unwrap().remove("txn"); }), Deny::Claims),
        (e.txn_token(|c| c["exp"] = json!(now - 120)), Deny::Expired),
        (e.txn_token(|c| c["aud"] = json!("other.domain")), Deny::Audience),
        // An access token of the same issuer is not a Txn-Token.
        (e.tts.token(&json!({"iss": TTS, "aud": TD, "sub": "alice", "txn": "t", "exp": now + 60})), Deny::TokenType),
    ];
    for (tok, d) in cases {
        match on(&mut f, &host, &tok) {
            Outcome::Deny(r) => assert_eq!(r.status, 401, "{d:?}"),
            o => panic!("{d:?}: {o:?}"),
        }
        assert!(host.counter(Metric::Denied(d)) >= 1, "{d:?}");
    }
}

#[test]
fn replay_refusal_is_per_txn_across_vms_when_asked_for() {
    let e = env_with(|_| {});
    let (host, mut f) = sidecar(&e.tts, json!({"refuse_replay": true}));
    let mut other = Filter::new(f.cfg.clone());
    other.init(&host);
    let tok = e.txn_token(|_| {});
    assert!(matches!(on(&mut f, &host, &tok), Outcome::Allow(_)));
    // Another worker, and another token of the same chain: both refused.
    for (vm, t) in [(&mut other, tok.clone()), (&mut f, e.txn_token(|c| c["scope"] = json!("")))] {
        match on(vm, &host, &t) {
            Outcome::Deny(r) => assert_eq!(r.status, 401),
            o => panic!("{o:?}"),
        }
    }
    assert_eq!(host.counter(Metric::Denied(Deny::TxnReplay)), 2);
    assert!(matches!(on(&mut other, &host, &e.txn_token(|c| c["txn"] = json!("next"))), Outcome::Allow(_)));
}

#[test]
fn a_route_may_exchange_authorization_for_the_upstream_and_add_a_txn_token() {
    const ORDERS: &str = "https://orders.ecomm.com";
    let e = env_with(|v| v["routes"][0]["exchange"]["authorization"] = json!({"exchange": {"audience": ORDERS}}));
    let mut f = e.vm();
    let tok = e.subject();
    // First the exchange (as on an exchange route), then the Txn-Token call: one request, two calls.
    let (c1, p1) = call(ask(&mut f, &e.host, &tok));
    assert!(form(&c1).iter().any(|(k, v)| k == "audience" && v == ORDERS));
    assert!(form(&c1).iter().any(|(k, v)| k == "requested_token_type" && v == "urn:ietf:params:oauth:token-type:access_token"));
    let now = NOW / 1000;
    let exchanged = e.tts.token(&json!({"iss": TTS, "aud": ORDERS, "sub": "alice", "exp": now + 300, "scope": "orders:read orders:write"}));
    let body = json!({"access_token": exchanged, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer"}).to_string();
    f.call_done(&c1.key, CallResult::Response { status: "200", body: body.as_bytes(), content_type: None, cache_control: None }, &e.host);
    let (c2, p2) = call(f.resume(&p1, &e.host).expect("on to the Txn-Token call"));
    let got = form(&c2);
    assert!(got.iter().any(|(k, v)| k == "requested_token_type" && v == "urn:ietf:params:oauth:token-type:txn_token"));
    assert!(got.iter().any(|(k, v)| k == "subject_token" && *v == tok), "the Txn-Token's subject is the client's verified token");
    let txn = e.txn_token(|_| {});
    match done(&mut f, &e, &c2, &p2, &answer(&txn)) {
        Outcome::Allow(plan) => {
            assert!(plan.set.contains(&("authorization".into(), format!("Bearer {exchanged}"))));
            assert!(plan.set.contains(&("txn-token".into(), txn)));
        }
        o => panic!("{o:?}"),
    }
    // The next request: the exchanged token from the cache, a new Txn-Token call.
    let (c3, _) = call(ask(&mut f, &e.host, &tok));
    assert!(form(&c3).iter().any(|(k, v)| k == "requested_token_type" && v == "urn:ietf:params:oauth:token-type:txn_token"));
    assert_eq!(e.host.counter(Metric::ExchangeCacheHit), 1);
}
