//! The exchange part of the state machine, natively: leaders and followers on one VM and across
//! VMs, leaders that vanish, the checks on issued tokens, expiry.

use super::support::{bearer, claims, EsKey};
use crate::config;
use crate::flow::{CallResult, ExchangeCall, Filter, Outcome, Pending};
use crate::metrics::{Deny, Metric};
use crate::sts::Failure;
use crate::route::RouteInput;
use crate::testing::FakeHost;
use serde_json::{json, Value};
use std::rc::Rc;

const NOW: u64 = 1_800_000_000_000;
const ISS: &str = "https://idp.example.com";
const STS: &str = "https://sts.example.com";
const ORDERS: &str = "https://orders.ecomm.com";

struct Env {
    host: FakeHost,
    idp: EsKey,
    sts: EsKey,
    cfg: Rc<config::Config>,
}

fn env() -> Env {
    env_with(|_| {})
}

fn env_with(edit: impl FnOnce(&mut Value)) -> Env {
    let idp = EsKey::new("i1");
    let sts = EsKey::new("s1");
    let v = json!({
        "providers": [{"name": "corp", "issuer": ISS, "audiences": ["api"], "jwks": {"inline": {"keys": [idp.jwk()]}}}],
        "sts": {"cluster": "sts", "path": "/token", "timeout_ms": 1000, "issuer": STS,
                "client_auth": {"method": "client_secret_basic", "client_id": "gw", "client_secret": "s"},
                "jwks": {"inline": {"keys": [sts.jwk()]}}, "expiry_margin_seconds": 30},
        "routes": [{"match": {"path_prefix": "/orders"}, "exchange": {"audience": ORDERS, "scopes": ["orders:read"]}}],
        "forward": {"claims_to_headers": {"sub": "x-sub"}}
    });
    let mut v = v;
    edit(&mut v);
    Env { host: FakeHost::new(NOW), idp, sts, cfg: Rc::new(config::parse(v.to_string().as_bytes()).unwrap()) }
}

impl Env {
    fn vm(&self) -> Filter {
        let mut f = Filter::new(self.cfg.clone());
        f.init(&self.host);
        f
    }
    fn subject(&self, sub: &str) -> String {
        let mut c = claims(ISS, "api", sub, self.host.now.get());
        c["scope"] = json!("orders:read orders:write");
        self.idp.token(&c)
    }
    fn issued(&self, edit: impl FnOnce(&mut Value)) -> String {
        let now = self.host.now.get() / 1000;
        let mut c = json!({"iss": STS, "aud": ORDERS, "sub": "alice", "exp": now + 300, "scope": "orders:read"});
        edit(&mut c);
        self.sts.token(&c)
    }
}

fn ok_body(token: &str, expires_in: u64) -> Vec<u8> {
    json!({"access_token": token, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
           "token_type": "Bearer", "expires_in": expires_in}).to_string().into_bytes()
}

fn req(tok: &str) -> (RouteInput<'static>, Vec<(String, Vec<u8>)>) {
    (RouteInput { method: "GET", path: "/orders/1", authority: "a", route_name: None, cluster: None }, bearer(tok))
}

fn ask(f: &mut Filter, host: &FakeHost, tok: &str) -> Outcome {
    let (r, h) = req(tok);
    f.on_request(&r, &h, host)
}

fn call(o: Outcome) -> (ExchangeCall, Pending) {
    match o {
        Outcome::Call(c, p) => (c, p),
        other => panic!("expected Call, got {other:?}"),
    }
}

fn forwarded(o: &Outcome) -> String {
    match o {
        Outcome::Allow(plan) => {
            assert!(!plan.remove.contains(&"authorization".to_string()), "the set replaces the client's one value");
            plan.set.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.clone()).expect("authorization set")
        }
        other => panic!("expected Allow, got {other:?}"),
    }
}

fn status(o: &Outcome) -> u32 {
    match o {
        Outcome::Deny(r) => r.status,
        other => panic!("expected Deny, got {other:?}"),
    }
}

#[test]
fn leader_and_followers_on_one_vm_then_cache() {
    let e = env();
    let mut f = e.vm();
    let tok = e.subject("alice");
    let (c, leader) = call(ask(&mut f, &e.host, &tok));
    let body = String::from_utf8(c.body.clone()).unwrap();
    assert!(body.contains("audience=https%3A%2F%2Forders.ecomm.com") && body.contains("scope=orders%3Aread"), "{body}");
    assert!(!body.contains("orders%3Awrite"), "never ask for more than the route needs");
    let follower = match ask(&mut f, &e.host, &tok) {
        Outcome::Wait(p) => p,
        o => panic!("{o:?}"),
    };
    assert_eq!(e.host.counter(Metric::ExchangeWait), 1);
    assert!(f.resume(&follower, &e.host).is_none());
    let issued = e.issued(|_| {});
    f.call_done(&c.key, CallResult::Response { status: "200", body: &ok_body(&issued, 300), content_type: None, cache_control: None }, &e.host);
    assert_eq!(forwarded(&f.resume(&leader, &e.host).unwrap()), format!("Bearer {issued}"));
    assert_eq!(forwarded(&f.resume(&follower, &e.host).unwrap()), format!("Bearer {issued}"));
    assert_eq!(forwarded(&ask(&mut f, &e.host, &tok)), format!("Bearer {issued}"));
    assert_eq!(e.host.counter(Metric::ExchangeOk), 1);
    assert_eq!(e.host.counter(Metric::ExchangeCacheMiss), 1);
    assert_eq!(e.host.counter(Metric::ExchangeCacheHit), 1);
    assert_eq!(e.host.observed.borrow().iter().filter(|(h, _)| *h == crate::metrics::Histogram::ExchangeCallMs).count(), 1, "one exchange timed");
    // From then on this worker answers from its own front: no shared-data read, no STS call.
    let reads = e.host.reads.get();
    assert_eq!(forwarded(&ask(&mut f, &e.host, &tok)), format!("Bearer {issued}"));
    assert_eq!(e.host.reads.get(), reads);
    assert_eq!(e.host.counter(Metric::ExchangeCacheHit), 2);
    // And with the plan that replaced the client's token a moment ago (`LocalCache::replaced_in`),
    // counted as the whole decision counts.
    let plan = |o: Outcome| match o {
        Outcome::Allow(p) => p,
        o => panic!("expected Allow, got {o:?}"),
    };
    let kept = plan(ask(&mut f, &e.host, &tok));
    let allowed = e.host.counter(Metric::Allowed);
    assert!(std::rc::Rc::ptr_eq(&kept, &plan(ask(&mut f, &e.host, &tok))), "the kept plan itself");
    assert_eq!((e.host.counter(Metric::ExchangeCacheHit), e.host.counter(Metric::Allowed)), (4, allowed + 1));
    assert_eq!(e.host.counter(Metric::ExchangeOk), 1);
}

#[test]
fn other_vms_wait_on_the_shared_marker_then_read_the_cache() {
    let e = env();
    let (mut a, mut b) = (e.vm(), e.vm());
    let tok = e.subject("alice");
    let (c, _) = call(ask(&mut a, &e.host, &tok));
    let Outcome::Wait(pb) = ask(&mut b, &e.host, &tok) else { panic!("b must wait for a's exchange") };
    let issued = e.issued(|_| {});
    a.call_done(&c.key, CallResult::Response { status: "200", body: &ok_body(&issued, 300), content_type: None, cache_control: None }, &e.host);
    assert_eq!(forwarded(&b.resume(&pb, &e.host).unwrap()), format!("Bearer {issued}"));
}

#[test]
fn a_vanished_leader_is_replaced() {
    let e = env();
    let (mut a, mut b) = (e.vm(), e.vm());
    let tok = e.subject("alice");
    let (c, _) = call(ask(&mut a, &e.host, &tok));
    let Outcome::Wait(pb) = ask(&mut b, &e.host, &tok) else { panic!() };
    // Past the marker's deadline with no answer: the waiter leads.
    e.host.advance(1_600);
    call(b.resume(&pb, &e.host).expect("b takes over"));
    // Abandoning (the leader's stream was reset) frees the key at once.
    let mut c2 = e.vm();
    let tok2 = e.subject("bob");
    let (k2, _) = call(ask(&mut c2, &e.host, &tok2));
    let Outcome::Wait(p) = ask(&mut c2, &e.host, &tok2) else { panic!() };
    c2.abandon(&k2.key, &e.host);
    call(c2.resume(&p, &e.host).expect("takes over at once"));
    // The first leader's answer after its deadline (swept by its tick) is ignored.
    a.tick(&e.host);
    a.call_done(&c.key, CallResult::Response { status: "500", body: b"", content_type: None, cache_control: None }, &e.host);
    assert_eq!(e.host.counter(Metric::ExchangeFailed(Failure::ServerError)), 0);
}

#[test]
fn issued_tokens_are_checked_before_forwarding() {
    type Body = Box<dyn Fn(&Env) -> Vec<u8>>;
    let cases: Vec<(&str, Body, u32, Metric)> = vec![
        ("wrong aud", Box::new(|e: &Env| ok_body(&e.issued(|c| c["aud"] = json!("https://payments.ecomm.com")), 300)), 503, Metric::ExchangeRejected),
        ("extra aud", Box::new(|e: &Env| ok_body(&e.issued(|c| c["aud"] = json!([ORDERS, "https://payments.ecomm.com"])), 300)), 503, Metric::ExchangeRejected),
        ("wider scope", Box::new(|e: &Env| ok_body(&e.issued(|c| c["scope"] = json!("orders:read orders:write")), 300)), 503, Metric::ExchangeRejected),
        ("wrong iss", Box::new(|e: &Env| ok_body(&e.issued(|c| c["iss"] = json!(ISS)), 300)), 503, Metric::ExchangeRejected),
        ("no exp", Box::new(|e: &Env| ok_body(&e.issued(|c| { c.as_object_mut().unwrap().remove("exp"); }), 300)), 503, Metric::ExchangeRejected),
        ("bad signature", Box::new(|e: &Env| {
            let t = e.issued(|_| {});
            let forged = EsKey::new("s1").token(&jwt_payload(&t));
            ok_body(&forged, 300)
        }), 503, Metric::ExchangeRejected),
        ("garbage", Box::new(|_: &Env| b"<html>".to_vec()), 503, Metric::ExchangeFailed(Failure::BadResponse)),
    ];
    for (name, body, want, metric) in cases {
        let e = env();
        let mut f = e.vm();
        let tok = e.subject("alice");
        let (c, p) = call(ask(&mut f, &e.host, &tok));
        f.call_done(&c.key, CallResult::Response { status: "200", body: &body(&e), content_type: None, cache_control: None }, &e.host);
        assert_eq!(status(&f.resume(&p, &e.host).unwrap()), want, "{name}");
        assert_eq!(e.host.counter(metric), 1, "{name}");
        assert_eq!(e.host.counter(Metric::Allowed), 0, "{name}");
    }
}

fn jwt_payload(t: &str) -> Value {
    let p = t.split('.').nth(1).unwrap();
    serde_json::from_slice(&crate::jose::b64::decode(p.as_bytes()).unwrap()).unwrap()
}

#[test]
fn sts_errors_map_to_client_answers() {
    let cases: &[(&str, &[u8], u32, Deny)] = &[
        ("400", br#"{"error":"invalid_grant"}"#, 401, Deny::ExchangeRefused),
        ("400", br#"{"error":"invalid_target"}"#, 403, Deny::ExchangeRefused),
        ("400", br#"{"error":"invalid_client"}"#, 503, Deny::ExchangeUnavailable),
        ("503", b"upstream connect error", 503, Deny::ExchangeUnavailable),
        ("504", b"upstream request timeout", 503, Deny::ExchangeUnavailable),
        ("500", b"", 503, Deny::ExchangeUnavailable),
    ];
    for (st, body, want, deny) in cases {
        let e = env();
        let mut f = e.vm();
        let (c, p) = call(ask(&mut f, &e.host, &e.subject("alice")));
        f.call_done(&c.key, CallResult::Response { status: st, body, content_type: None, cache_control: None }, &e.host);
        assert_eq!(status(&f.resume(&p, &e.host).unwrap()), *want, "{st}");
        assert_eq!(e.host.counter(Metric::Denied(*deny)), 1);
    }
    let e = env();
    let mut f = e.vm();
    let (c, p) = call(ask(&mut f, &e.host, &e.subject("alice")));
    f.call_done(&c.key, CallResult::DispatchFailed, &e.host);
    assert_eq!(status(&f.resume(&p, &e.host).unwrap()), 503);
    assert_eq!(e.host.counter(Metric::ExchangeFailed(Failure::Dispatch)), 1);
}

#[test]
fn cache_expiry_uses_the_earliest_of_exp_expires_in_and_subject_minus_margin() {
    let e = env();
    let mut f = e.vm();
    let tok = e.subject("alice");
    let (c, _) = call(ask(&mut f, &e.host, &tok));
    let issued = e.issued(|_| {});
    // expires_in 40 → cached 40 - 30 = 10 s.
    f.call_done(&c.key, CallResult::Response { status: "200", body: &ok_body(&issued, 40), content_type: None, cache_control: None }, &e.host);
    e.host.advance(3_000);
    forwarded(&ask(&mut f, &e.host, &tok));
    e.host.advance(7_500);
    f.tick(&e.host);
    call(ask(&mut f, &e.host, &tok));
}

#[test]
fn insufficient_scope_never_calls_the_sts() {
    let e = env();
    let mut f = e.vm();
    let mut c = claims(ISS, "api", "alice", NOW);
    c["scope"] = json!("profile");
    let o = ask(&mut f, &e.host, &e.idp.token(&c));
    assert_eq!(status(&o), 403);
    if let Outcome::Deny(r) = o {
        let www = &r.headers.iter().find(|(k, _)| k == "www-authenticate").unwrap().1;
        assert!(www.contains("error=\"insufficient_scope\"") && www.contains("scope=\"orders:read\""), "{www}");
    }
    assert_eq!(e.host.counter(Metric::ExchangeCacheMiss), 0);
}

#[test]
fn opaque_issued_tokens_are_forwarded_and_cached_no_longer_than_the_subject() {
    // Only where the STS is not expected to issue JWTs (no `sts.jwks`): see the F7 test.
    let e = env_with(|v| {
        v["sts"].as_object_mut().unwrap().remove("jwks");
    });
    let mut f = e.vm();
    let mut c = claims(ISS, "api", "alice", NOW);
    c["scope"] = json!("orders:read");
    c["exp"] = json!(NOW / 1000 + 60);
    let tok = e.idp.token(&c);
    let (call1, p) = call(ask(&mut f, &e.host, &tok));
    f.call_done(&call1.key, CallResult::Response { status: "200", body: &ok_body("opaque-abc", 3600), content_type: None, cache_control: None }, &e.host);
    assert_eq!(forwarded(&f.resume(&p, &e.host).unwrap()), "Bearer opaque-abc");
    // Subject exp 60 s, margin 30 s → cached 30 s.
    e.host.advance(31_000);
    f.tick(&e.host);
    call(ask(&mut f, &e.host, &tok));
}
