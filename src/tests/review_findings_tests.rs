//! The security review's findings (issue 11), one test each, through the whole request path with
//! real signatures and the fake host. Every test here failed on the code before its fix.

use super::support::{bearer, claims, jwks, EsKey};
use crate::config;
use crate::sts::TYPE_JWT;
use crate::flow::{CallResult, ExchangeCall, Filter, HeaderPlan, Outcome, Pending};
use crate::metrics::{Deny, Metric};
use crate::route::RouteInput;
use crate::testing::FakeHost;
use serde_json::{json, Value};
use std::rc::Rc;

const NOW: u64 = 1_800_000_000_000;
const ISS: &str = "https://idp.example.com";
const STS: &str = "https://sts.example.com";
const ORDERS: &str = "https://orders.ecomm.com";

type Headers = Vec<(String, Vec<u8>)>;

struct Env {
    host: FakeHost,
    idp: EsKey,
    sts: EsKey,
    cfg: Rc<config::Config>,
}

/// Providers `corp` (inline IdP keys) and `partner`; an exchange route on `/orders`, an
/// authority-restricted route for `admin.example.com`, a forwarding route for the rest.
fn env(edit: impl FnOnce(&mut Value)) -> Env {
    let idp = EsKey::new("i1");
    let sts = EsKey::new("s1");
    let partner = EsKey::new("p1");
    let mut v = json!({
        "providers": [
            {"name": "corp", "issuer": ISS, "audiences": ["api"], "jwks": {"inline": {"keys": [idp.jwk()]}}},
            {"name": "partner", "issuer": "https://partner.example.com", "audiences": ["api"],
             "jwks": {"inline": {"keys": [partner.jwk()]}}}
        ],
        "from": [{"header": "authorization", "prefix": "Bearer "}, {"cookie": "access_token"}, {"query": "access_token"}],
        "sts": {"cluster": "sts", "path": "/token", "timeout_ms": 1000, "issuer": STS,
                "client_auth": {"method": "client_secret_basic", "client_id": "gw", "client_secret": "s"},
                "jwks": {"inline": {"keys": [sts.jwk()]}}, "expiry_margin_seconds": 30},
        "routes": [
            {"match": {"authority": "admin.example.com"}, "providers": ["partner"]},
            {"match": {"path_prefix": "/orders"}, "exchange": {"audience": ORDERS}},
            {"match": {"path_prefix": "/"}}
        ],
        "forward": {"claims_to_headers": {"sub": "x-user-sub"}}
    });
    edit(&mut v);
    let cfg = Rc::new(config::parse(v.to_string().as_bytes()).unwrap());
    Env { host: FakeHost::new(NOW), idp, sts, cfg }
}

impl Env {
    fn vm(&self) -> Filter {
        let mut f = Filter::new(self.cfg.clone());
        f.init(&self.host);
        f
    }
    fn subject(&self, edit: impl FnOnce(&mut Value)) -> String {
        let mut c = claims(ISS, "api", "alice", self.host.now.get());
        edit(&mut c);
        self.idp.token(&c)
    }
    fn issued(&self) -> String {
        let now = self.host.now.get() / 1000;
        self.sts.token(&json!({"iss": STS, "aud": ORDERS, "sub": "alice", "exp": now + 300}))
    }
}

fn at<'a>(path: &'a str, authority: &'a str) -> RouteInput<'a> {
    RouteInput { method: "GET", path, authority, route_name: None, cluster: None }
}

fn h(pairs: &[(&str, &str)]) -> Headers {
    pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
}

fn allowed(o: &Outcome) -> &HeaderPlan {
    match o {
        Outcome::Allow(p) => p,
        other => panic!("expected Allow, got {other:?}"),
    }
}

fn status(o: &Outcome) -> u32 {
    match o {
        Outcome::Deny(r) => r.status,
        other => panic!("expected Deny, got {other:?}"),
    }
}

fn call(o: Outcome) -> (ExchangeCall, Pending) {
    match o {
        Outcome::Call(c, p) => (c, p),
        other => panic!("expected Call, got {other:?}"),
    }
}

fn ok_body(token: &str, expires_in: u64, issued_type: &str) -> Vec<u8> {
    json!({"access_token": token, "issued_token_type": issued_type, "token_type": "Bearer", "expires_in": expires_in})
        .to_string()
        .into_bytes()
}

const AT: &str = "urn:ietf:params:oauth:token-type:access_token";

/// F3: a route's `authority` rule holds whatever port, case or trailing dot the client writes.
#[test]
fn f3_authority_rule_is_not_skipped_by_port_or_trailing_dot() {
    let e = env(|_| {});
    let mut f = e.vm();
    let tok = e.subject(|_| {});
    for host in ["admin.example.com", "admin.example.com:443", "admin.example.com.", "ADMIN.example.com.:8443"] {
        let o = f.on_request(&at("/x", host), &bearer(&tok), &e.host);
        assert_eq!(status(&o), 401, "{host}: corp tokens are refused on the admin host");
    }
    assert_eq!(e.host.counter(Metric::Denied(Deny::ProviderNotAllowed)), 4);
    allowed(&f.on_request(&at("/x", "api.example.com:443"), &bearer(&tok), &e.host));
    // A dot segment cannot carry an /orders request past its exchange either.
    let o = f.on_request(&at("/public/%2e%2e/orders/1", "api.example.com"), &bearer(&tok), &e.host);
    assert!(matches!(o, Outcome::Call(..)), "the exchange route holds for the normalised path: {o:?}");
}

/// F1: a token read from `?access%5Ftoken=` leaves the `:path` when it is exchanged.
#[test]
fn f1_query_token_found_by_decoded_name_is_removed_from_the_path() {
    let e = env(|_| {});
    let mut f = e.vm();
    let tok = e.subject(|_| {});
    let path = format!("/orders/1?a=1&access%5Ftoken={tok}&b=2");
    let (c, p) = call(f.on_request(&at(&path, "api.example.com"), &[], &e.host));
    f.call_done(&c.key, CallResult::Response { status: "200", body: &ok_body(&e.issued(), 300, AT), content_type: None, cache_control: None }, &e.host);
    let o = f.resume(&p, &e.host).unwrap();
    let plan = allowed(&o);
    let new_path = plan.set.iter().find(|(k, _)| k == ":path").map(|(_, v)| v.as_str());
    assert_eq!(new_path, Some("/orders/1?a=1&b=2"));
    assert!(!plan.set.iter().any(|(_, v)| v.contains(&tok)), "the client's token goes nowhere upstream");
}

/// F2: two different tokens are a 400; one token in two places leaves both on an exchange.
#[test]
fn f2_a_token_in_two_sources_is_one_token_or_a_400() {
    let e = env(|_| {});
    let mut f = e.vm();
    let a = e.subject(|_| {});
    let b = e.subject(|c| c["sub"] = json!("bob"));
    let two = h(&[("authorization", &format!("Bearer {a}")), ("cookie", &format!("access_token={b}"))]);
    for path in ["/orders/1", "/x"] {
        assert_eq!(status(&f.on_request(&at(path, "api.example.com"), &two, &e.host)), 400, "{path}");
    }
    let q = format!("/x?access_token={b}");
    assert_eq!(status(&f.on_request(&at(&q, "api.example.com"), &bearer(&a), &e.host)), 400);
    assert_eq!(e.host.counter(Metric::Denied(Deny::BadRequest)), 3);

    let same = h(&[("authorization", &format!("Bearer {a}")), ("cookie", &format!("s=1; access_token={a}"))]);
    let (c, p) = call(f.on_request(&at("/orders/1", "api.example.com"), &same, &e.host));
    f.call_done(&c.key, CallResult::Response { status: "200", body: &ok_body(&e.issued(), 300, AT), content_type: None, cache_control: None }, &e.host);
    let o = f.resume(&p, &e.host).unwrap();
    let plan = allowed(&o);
    assert!(plan.set.iter().any(|(k, _)| k == "authorization") && plan.remove.contains(&"cookie".to_string()), "{plan:?}");
    assert!(plan.set.contains(&("cookie".to_string(), "s=1".to_string())), "{plan:?}");
    assert!(!plan.set.iter().any(|(_, v)| v.contains(&a)), "the client's token goes nowhere upstream");
}

/// F4: an exchange whose result expires at once answers its own request and its waiters, with
/// one STS call; it is never a loop.
#[test]
fn f4_an_uncacheable_exchange_result_answers_its_requests_with_one_call() {
    for case in ["subject inside its clock skew", "expires_in 0"] {
        let e = env(|_| {});
        let mut f = e.vm();
        let tok = e.subject(|c| {
            if case.starts_with("subject") {
                c["exp"] = json!(NOW / 1000 - 10);
            }
        });
        let r = at("/orders/1", "api.example.com");
        let (c, leader) = call(f.on_request(&r, &bearer(&tok), &e.host));
        let waiter = match f.on_request(&r, &bearer(&tok), &e.host) {
            Outcome::Wait(p) => p,
            o => panic!("{case}: {o:?}"),
        };
        let expires_in = if case == "expires_in 0" { 0 } else { 300 };
        let issued = e.issued();
        f.call_done(&c.key, CallResult::Response { status: "200", body: &ok_body(&issued, expires_in, AT), content_type: None, cache_control: None }, &e.host);
        for p in [&leader, &waiter] {
            let o = f.resume(p, &e.host).unwrap_or_else(|| panic!("{case}: still waiting"));
            assert!(allowed(&o).set.contains(&("authorization".into(), format!("Bearer {issued}"))), "{case}: {o:?}");
        }
        assert_eq!(e.host.counter(Metric::ExchangeCacheMiss), 1, "{case}: one STS call");
        // A new request is not served the uncacheable token: it makes its own (single) call.
        assert!(matches!(f.on_request(&r, &bearer(&tok), &e.host), Outcome::Call(..)), "{case}");
    }
}

/// F4, defence in depth: a request that led an exchange never leads a second one.
#[test]
fn f4_a_request_never_makes_a_second_sts_call() {
    let e = env(|_| {});
    let mut f = e.vm();
    let tok = e.subject(|_| {});
    let (_c, leader) = call(f.on_request(&at("/orders/1", "api.example.com"), &bearer(&tok), &e.host));
    // Its exchange is forgotten without an answer (past its deadline).
    e.host.advance(5_000);
    f.tick(&e.host);
    let o = f.resume(&leader, &e.host).unwrap();
    assert_eq!(status(&o), 503);
    assert_eq!(e.host.counter(Metric::ExchangeCacheMiss), 1);
}

/// F7: with `sts.jwks` set (or a JWT asked for, or announced), an opaque answer is refused.
#[test]
fn f7_an_issued_token_that_is_not_a_jwt_is_refused_where_jwts_are_expected() {
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: [(&str, Edit, &str); 3] = [
        ("sts.jwks set", Box::new(|_| {}), AT),
        ("issued_token_type jwt", Box::new(|v| {
            v["sts"].as_object_mut().unwrap().remove("jwks");
        }), TYPE_JWT),
        ("two dots, not a JWS", Box::new(|_| {}), AT),
    ];
    for (case, edit, issued_type) in cases {
        let e = env(edit);
        let mut f = e.vm();
        let tok = e.subject(|_| {});
        let (c, p) = call(f.on_request(&at("/orders/1", "api.example.com"), &bearer(&tok), &e.host));
        let opaque = if case.starts_with("two") { "not.a.jws" } else { "opaque-reference-token" };
        f.call_done(&c.key, CallResult::Response { status: "200", body: &ok_body(opaque, 300, issued_type), content_type: None, cache_control: None }, &e.host);
        assert_eq!(status(&f.resume(&p, &e.host).unwrap()), 503, "{case}");
        assert_eq!(e.host.counter(Metric::ExchangeRejected), 1, "{case}");
    }
    let err = config::parse(
        json!({"providers": [{"name": "a", "issuer": "i", "audiences": ["x"], "jwks": {"cluster": "idp", "path": "/k"}}],
               "sts": {"cluster": "sts", "path": "/t", "issuer": "s", "requested_token_type": "jwt",
                       "client_auth": {"method": "none"}}})
        .to_string()
        .as_bytes(),
    )
    .err()
    .unwrap();
    assert_eq!(err.field, "sts.jwks");
}

/// F6: an issued token whose `aud` holds a non-string member is refused.
#[test]
fn f6_issued_audience_with_non_string_members_is_refused() {
    for aud in [json!([1]), json!([null]), json!([ORDERS, 7])] {
        let e = env(|_| {});
        let mut f = e.vm();
        let tok = e.subject(|_| {});
        let (c, p) = call(f.on_request(&at("/orders/1", "api.example.com"), &bearer(&tok), &e.host));
        let now = NOW / 1000;
        let issued = e.sts.token(&json!({"iss": STS, "aud": aud, "sub": "alice", "exp": now + 300}));
        f.call_done(&c.key, CallResult::Response { status: "200", body: &ok_body(&issued, 300, AT), content_type: None, cache_control: None }, &e.host);
        assert_eq!(status(&f.resume(&p, &e.host).unwrap()), 503, "{aud}");
    }
}

/// F8: `cache.max_ttl_seconds: 0` disables the exchange cache too.
#[test]
fn f8_max_ttl_zero_disables_the_exchange_cache() {
    let e = env(|v| v["cache"] = json!({"max_ttl_seconds": 0}));
    let mut f = e.vm();
    let tok = e.subject(|_| {});
    let r = at("/orders/1", "api.example.com");
    for n in 1..=2 {
        let (c, p) = call(f.on_request(&r, &bearer(&tok), &e.host));
        f.call_done(&c.key, CallResult::Response { status: "200", body: &ok_body(&e.issued(), 300, AT), content_type: None, cache_control: None }, &e.host);
        allowed(&f.resume(&p, &e.host).unwrap());
        e.host.advance(2_500); // past the waiters' window
        f.tick(&e.host);
        assert_eq!(e.host.counter(Metric::ExchangeCacheMiss), n);
    }
    assert_eq!(e.host.shared_len(), 1, "nothing but the exchange marker in shared data");
}

/// Remote-JWKS findings (F5, F8) on a provider with `retry_ms` 10 s.
fn remote_env() -> (FakeHost, EsKey, Rc<config::Config>) {
    let idp = EsKey::new("k1");
    let v = json!({
        "providers": [{"name": "corp", "issuer": ISS, "audiences": ["api"],
            "jwks": {"cluster": "idp", "path": "/jwks", "refresh_seconds": 60, "timeout_ms": 1000,
                     "min_refetch_seconds": 1, "retry_ms": 10000}}],
        "forward": {"claims_to_headers": {"sub": "x-user-sub"}}
    });
    (FakeHost::new(NOW), idp, Rc::new(config::parse(v.to_string().as_bytes()).unwrap()))
}

/// F5: while the IdP fails, tokens naming unknown `kid`s trigger no fetch before `retry_ms`.
#[test]
fn f5_unknown_kid_refetches_respect_the_failure_back_off() {
    let (host, idp, cfg) = remote_env();
    let mut f = Filter::new(cfg);
    f.init(&host);
    assert_eq!(f.tick(&host).len(), 1);
    f.fetch_done(0, Ok(jwks(&[idp.jwk()])), &host);
    // The periodic refresh fails.
    host.advance(61_000);
    assert_eq!(f.tick(&host).len(), 1);
    f.fetch_done(0, Err("IdP down".into()), &host);
    let mut fetches = 0;
    for i in 0..20 {
        let k = EsKey::new(&format!("random-{i}"));
        let tok = k.token(&claims(ISS, "api", "eve", host.now.get()));
        let o = f.on_request(&at("/", "a"), &bearer(&tok), &host);
        assert_eq!(status(&o), 503, "the IdP is failing: the key may be one it could not deliver");
        host.advance(100);
        fetches += f.tick(&host).len();
    }
    assert_eq!(fetches, 0, "2 s of unknown kids inside a 10 s back-off: no fetch");
    host.advance(8_100);
    assert_eq!(f.tick(&host).len(), 1, "the retry after the back-off");
}

/// F8: a cached verification is not served once a refresh drops the key that verified it.
#[test]
fn f8_cached_verifications_end_when_their_key_leaves_the_jwks() {
    let (host, idp, cfg) = remote_env();
    let other = EsKey::new("k2");
    let mut f = Filter::new(cfg.clone());
    f.init(&host);
    f.tick(&host);
    f.fetch_done(0, Ok(jwks(&[idp.jwk(), other.jwk()])), &host);
    let tok = idp.token(&claims(ISS, "api", "alice", host.now.get()));
    allowed(&f.on_request(&at("/", "a"), &bearer(&tok), &host));
    allowed(&f.on_request(&at("/", "a"), &bearer(&tok), &host));
    assert_eq!(host.counter(Metric::CacheHit), 1);
    // A second VM caches nothing of its own yet: it reads the shared entry.
    let mut vm2 = Filter::new(cfg);
    vm2.init(&host);
    allowed(&vm2.on_request(&at("/", "a"), &bearer(&tok), &host));
    assert_eq!(host.counter(Metric::CacheHit), 2);
    // The IdP rotates k1 out.
    host.advance(61_000);
    assert_eq!(f.tick(&host).len(), 1);
    f.fetch_done(0, Ok(jwks(&[other.jwk()])), &host);
    vm2.tick(&host);
    for vm in [&mut f, &mut vm2] {
        let o = vm.on_request(&at("/", "a"), &bearer(&tok), &host);
        assert_eq!(status(&o), 401, "neither the worker's front nor the shared entry serves it");
    }
    assert_eq!(host.counter(Metric::Denied(Deny::UnknownKid)), 2);
    let tok2 = other.token(&claims(ISS, "api", "bob", host.now.get()));
    allowed(&f.on_request(&at("/", "a"), &bearer(&tok2), &host));
}

/// Underscore spellings and a custom `forward.header` are stripped on every request.
#[test]
fn underscore_spellings_and_the_forward_header_are_stripped() {
    let e = env(|v| v["forward"]["header"] = json!("x-access-token"));
    let mut f = e.vm();
    let tok = e.subject(|_| {});
    let o = f.on_request(&at("/x", "api.example.com"), &bearer(&tok), &e.host);
    let plan = allowed(&o);
    for name in ["x-user-sub", "x_user_sub", "x-access-token", "x_access_token"] {
        // Stripped, or set (which replaces every client copy).
        assert!(plan.remove.contains(&name.to_string()) || plan.set.iter().any(|(k, _)| k == name), "{name} in {plan:?}");
    }
    // Where the forward header is also a token source, it carries the (verified) token: kept.
    let e = env(|v| {
        v["forward"]["header"] = json!("x-access-token");
        v["from"] = json!([{"header": "x-access-token"}]);
    });
    assert!(!e.cfg.forward.strip_headers.contains(&"x-access-token".to_string()));
    // Where Envoy refuses or drops underscore headers itself, the spellings can be left alone.
    let e = env(|v| v["forward"]["strip_underscore_spellings"] = json!(false));
    assert_eq!(e.cfg.forward.strip_headers, vec!["x-user-sub".to_string()]);
}
