//! Opaque tokens by introspection (RFC 7662, RFC 9701) in the core: one call per token, the
//! answer's checks, the caches (positive, negative, `Cache-Control`), every fault closed, and
//! the phantom-token flow (opaque in, a minted JWT out).

use super::support::{bearer, claims, EsKey};
use crate::config;
use crate::flow::{CallResult, ExchangeCall, Filter, Outcome, Pending};
use crate::jose::{b64, jws};
use crate::metrics::{Deny, Metric};
use crate::route::RouteInput;
use crate::testing::FakeHost;
use serde_json::{json, Value};

const NOW: u64 = 1_800_000_000_000;
const ISS: &str = "https://idp.example.com";
const API: &str = "https://api.example.com";
const OPAQUE: &str = "2YotnFZFEjr1zCsicMWpAA";

fn provider(extra: Value) -> Value {
    let mut p = json!({"name": "opaque-idp", "issuer": ISS, "audiences": [API],
        "introspection": {"cluster": "idp", "authority": "idp.example.com", "path": "/token/introspection",
                          "client_auth": {"method": "client_secret_basic", "client_id": "gw", "client_secret": "s3cr3t"},
                          "timeout_ms": 1500, "max_cache_seconds": 300, "negative_cache_seconds": 10}});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

fn filter(v: Value) -> (FakeHost, Filter) {
    super::support::filter_at(&v, NOW)
}

fn plain() -> (FakeHost, Filter) {
    filter(json!({"providers": [provider(json!({}))], "forward": {"principal_header": "x-principal",
        "claims_to_headers": {"client_id": "x-client", "username": "x-username"}, "payload_header": "x-payload"}}))
}

fn at(path: &str) -> RouteInput<'_> {
    RouteInput { method: "GET", path, authority: "a", route_name: None, cluster: None }
}

fn ask(f: &mut Filter, host: &FakeHost, token: &str) -> Outcome {
    f.on_request(&at("/orders"), &bearer(token), host)
}

fn call(o: Outcome) -> (ExchangeCall, Pending) {
    match o {
        Outcome::Call(c, p) => (c, p),
        o => panic!("expected a call, got {o:?}"),
    }
}

fn json_answer(f: &mut Filter, host: &FakeHost, c: &ExchangeCall, status: &str, body: &Value, cache_control: Option<&str>) {
    let b = body.to_string();
    f.call_done(&c.key, CallResult::Response { status, body: b.as_bytes(), content_type: Some("application/json"), cache_control }, host);
}

fn status(o: &Outcome) -> u32 {
    match o {
        Outcome::Allow(_) => 200,
        Outcome::Deny(r) => r.status,
        o => panic!("unexpected {o:?}"),
    }
}

fn header(o: &Outcome, name: &str) -> Option<String> {
    match o {
        Outcome::Allow(plan) => plan.set.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
        o => panic!("expected Allow, got {o:?}"),
    }
}

fn active() -> Value {
    json!({"active": true, "sub": "alice", "client_id": "web-app", "username": "alice@example.com",
           "scope": "orders:read orders:write", "exp": NOW / 1000 + 600, "aud": API})
}

#[test]
fn an_opaque_token_is_introspected_once_then_served_from_the_cache() {
    let (host, mut f) = plain();
    let (c, leader) = call(ask(&mut f, &host, OPAQUE));
    assert_eq!(c.cluster, "idp");
    let h = |n: &str| c.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap();
    assert_eq!((h(":method"), h(":path"), h(":authority")), ("POST".into(), "/token/introspection".into(), "idp.example.com".into()));
    assert_eq!(h("authorization"), "Basic Z3c6czNjcjN0");
    assert_eq!(String::from_utf8(c.body.clone()).unwrap(), format!("token={OPAQUE}&token_type_hint=access_token"));
    // 63 more requests with the same token wait for that one call.
    let waiters: Vec<Pending> = (0..63)
        .map(|_| match ask(&mut f, &host, OPAQUE) {
            Outcome::Wait(p) => p,
            o => panic!("{o:?}"),
        })
        .collect();
    assert_eq!(host.counter(Metric::IntrospectionWait), 63);
    json_answer(&mut f, &host, &c, "200", &active(), None);
    let o = f.resume(&leader, &host).unwrap();
    assert_eq!(header(&o, "x-principal").unwrap(), format!("[\"{ISS}\",\"alice\"]"));
    assert_eq!(header(&o, "x-client").unwrap(), "web-app");
    assert_eq!(header(&o, "x-username").unwrap(), "alice@example.com");
    let payload: Value = serde_json::from_slice(&b64::decode(header(&o, "x-payload").unwrap().as_bytes()).unwrap()).unwrap();
    assert_eq!(payload["sub"], "alice");
    for w in waiters {
        assert_eq!(status(&f.resume(&w, &host).unwrap()), 200);
    }
    host.advance(5000);
    assert_eq!(status(&ask(&mut f, &host, OPAQUE)), 200, "from the cache");
    assert_eq!(host.counter(Metric::IntrospectionOk), 1);
    assert_eq!(host.counter(Metric::IntrospectionCacheHit), 1);
    // Another VM (worker) finds it in shared data.
    let mut other = Filter::new(f.cfg.clone());
    other.init(&host);
    assert_eq!(status(&ask(&mut other, &host, OPAQUE)), 200);
    assert_eq!(host.counter(Metric::IntrospectionOk), 1, "still one call");
}

/// Two workers with the same first request: the second waits for the first's call (its marker
/// in shared data) and takes the answer from the shared cache, without a call of its own.
#[test]
fn a_second_vm_waits_for_the_first_vms_call() {
    let (host, mut f) = plain();
    let mut other = Filter::new(f.cfg.clone());
    other.init(&host);
    let (c, leader) = call(ask(&mut f, &host, OPAQUE));
    let waiter = match ask(&mut other, &host, OPAQUE) {
        Outcome::Wait(p) => p,
        o => panic!("the other VM must wait, got {o:?}"),
    };
    // Until the answer comes, the other VM keeps waiting.
    assert!(other.resume(&waiter, &host).is_none());
    json_answer(&mut f, &host, &c, "200", &active(), None);
    assert_eq!(status(&f.resume(&leader, &host).unwrap()), 200);
    assert_eq!(status(&other.resume(&waiter, &host).unwrap()), 200);
    assert_eq!(host.counter(Metric::IntrospectionOk), 1, "one call for both VMs");
}

/// Extraction leaves a new token's characters to be checked after the caches (which hold only
/// tokens that passed): one that is not an RFC 6750 b64token is still refused before it is
/// sent anywhere, and counted as malformed, not as a cache miss.
#[test]
fn a_token_that_is_not_a_b64token_is_never_introspected() {
    let (host, mut f) = plain();
    let bad = ["2YotnFZF\"Ejr1zC", "2Yot%nFZ", "2Yot;nFZ", "2Yo=tnFZ", "2Yot\u{e9}nFZ", "2Yot nFZ"];
    for t in bad {
        let o = ask(&mut f, &host, t);
        assert_eq!(status(&o), 401, "{t}");
        let Outcome::Deny(r) = &o else { unreachable!() };
        let www = r.headers.iter().find(|(k, _)| k == "www-authenticate").map(|(_, v)| v.as_str()).unwrap_or_default();
        assert!(www.contains("invalid_token") && www.contains("token malformed"), "{t}: {www}");
    }
    assert_eq!(host.counter(Metric::Denied(Deny::Malformed)), bad.len() as u64);
    assert_eq!(host.counter(Metric::CacheMiss), 0);
    // The same characters' token, well formed, is introspected.
    call(ask(&mut f, &host, OPAQUE));
    assert_eq!(host.counter(Metric::CacheMiss), 1);
}

#[test]
fn the_cache_never_outlives_exp_max_cache_or_cache_control() {
    // exp in 20 s: a new call after 20 s (the token would be expired: the server is asked again).
    for (answer_exp, cc, expires_after_ms) in [
        (NOW / 1000 + 20, None, 20_000),
        (NOW / 1000 + 3600, None, 300_000),
        (NOW / 1000 + 3600, Some("max-age=30"), 30_000),
        (NOW / 1000 + 3600, Some("no-store"), 0),
    ] {
        let (host, mut f) = plain();
        let (c, leader) = call(ask(&mut f, &host, OPAQUE));
        let mut a = active();
        a["exp"] = json!(answer_exp);
        json_answer(&mut f, &host, &c, "200", &a, cc);
        assert_eq!(status(&f.resume(&leader, &host).unwrap()), 200, "the leader is answered even with no-store");
        if expires_after_ms > 0 {
            host.advance(expires_after_ms - 1000);
            assert_eq!(status(&ask(&mut f, &host, OPAQUE)), 200, "{cc:?}: still cached");
            host.advance(1000);
        } else {
            host.advance(1);
        }
        assert!(matches!(ask(&mut f, &host, OPAQUE), Outcome::Call(..)), "{cc:?} exp {answer_exp}: asked again");
    }
}

#[test]
fn inactive_answers_are_401_and_kept_in_the_negative_cache() {
    let (host, mut f) = plain();
    let (c, leader) = call(ask(&mut f, &host, OPAQUE));
    json_answer(&mut f, &host, &c, "200", &json!({"active": false}), None);
    let o = f.resume(&leader, &host).unwrap();
    assert_eq!(status(&o), 401);
    host.advance(2000);
    assert_eq!(status(&ask(&mut f, &host, OPAQUE)), 401, "no call: the negative cache");
    assert_eq!(host.counter(Metric::IntrospectionNegativeHit), 1);
    assert_eq!(host.counter(Metric::Denied(Deny::Inactive)), 2);
    host.advance(9000);
    assert!(matches!(ask(&mut f, &host, OPAQUE), Outcome::Call(..)), "negative_cache_seconds passed");
}

#[test]
fn unusable_answers_are_401_and_no_answer_is_503() {
    let now = NOW / 1000;
    let cases: Vec<(&str, Value, Option<&str>, u32, Deny)> = vec![
        ("200", json!({"active": "yes"}), Some("application/json"), 401, Deny::IntrospectionInvalid),
        ("200", json!({"sub": "alice"}), Some("application/json"), 401, Deny::IntrospectionInvalid),
        ("200", json!({"active": true, "exp": now - 10_000}), Some("application/json"), 401, Deny::IntrospectionInvalid),
        ("200", json!({"active": true, "iss": "https://evil.example"}), Some("application/json"), 401, Deny::IntrospectionInvalid),
        ("200", json!({"active": true, "aud": "https://other.example.com"}), Some("application/json"), 401, Deny::IntrospectionInvalid),
        ("200", json!([1, 2]), Some("application/json"), 401, Deny::IntrospectionInvalid),
        ("200", json!({"active": true}), Some("application/token-introspection+jwt"), 401, Deny::IntrospectionInvalid),
        ("503", json!({}), None, 503, Deny::IntrospectionUnavailable),
        ("504", json!({}), None, 503, Deny::IntrospectionUnavailable),
        ("500", json!({"active": true}), None, 503, Deny::IntrospectionUnavailable),
        ("401", json!({"error": "invalid_client"}), None, 503, Deny::IntrospectionUnavailable),
    ];
    for (st, body, ct, want, deny) in cases {
        let (host, mut f) = plain();
        let (c, leader) = call(ask(&mut f, &host, OPAQUE));
        let b = body.to_string();
        f.call_done(&c.key, CallResult::Response { status: st, body: b.as_bytes(), content_type: ct, cache_control: None }, &host);
        let o = f.resume(&leader, &host).unwrap();
        assert_eq!(status(&o), want, "{st} {body}");
        assert_eq!(host.counter(Metric::Denied(deny)), 1, "{st} {body}");
        // A failure is not cached: the next request asks again.
        assert!(matches!(ask(&mut f, &host, OPAQUE), Outcome::Call(..) | Outcome::Deny(_)), "{st}");
    }
    let (host, mut f) = plain();
    let (c, leader) = call(ask(&mut f, &host, OPAQUE));
    f.call_done(&c.key, CallResult::DispatchFailed, &host);
    assert_eq!(status(&f.resume(&leader, &host).unwrap()), 503);
    // A request that led one call never leads a second one.
    host.advance(1500);
    assert_eq!(status(&f.resume(&leader, &host).unwrap()), 503);
}

#[test]
fn a_timeout_is_a_503_for_the_leader_and_its_waiters() {
    let (host, mut f) = plain();
    let (_c, leader) = call(ask(&mut f, &host, OPAQUE));
    let w = match ask(&mut f, &host, OPAQUE) {
        Outcome::Wait(p) => p,
        o => panic!("{o:?}"),
    };
    host.advance(2100);
    f.tick(&host);
    assert_eq!(status(&f.resume(&leader, &host).unwrap()), 503);
    assert_eq!(status(&f.resume(&w, &host).unwrap()), 503);
}

#[test]
fn jwts_of_an_introspecting_provider_are_still_verified_locally() {
    let k = EsKey::new("k1");
    let (host, mut f) = filter(json!({"providers": [provider(json!({"jwks": {"inline": {"keys": [k.jwk()]}}}))]}));
    let t = k.token(&claims(ISS, API, "alice", NOW));
    assert_eq!(status(&ask(&mut f, &host, &t)), 200);
    assert_eq!(status(&ask(&mut f, &host, &EsKey::new("k1").token(&claims(ISS, API, "alice", NOW)))), 401);
    // A provider without introspection: an opaque token is malformed, no call.
    let (host, mut f) = filter(json!({"providers": [{"name": "jwt", "issuer": ISS, "audiences": [API], "jwks": {"inline": {"keys": [k.jwk()]}}}]}));
    let o = ask(&mut f, &host, OPAQUE);
    assert_eq!(status(&o), 401);
    assert_eq!(host.counter(Metric::Denied(Deny::Malformed)), 1);
}

#[test]
fn the_route_picks_the_introspecting_provider() {
    let k = EsKey::new("k1");
    let mut second = provider(json!({"name": "other", "issuer": "https://other.example.com"}));
    second["introspection"]["cluster"] = json!("other-idp");
    let (host, mut f) = filter(json!({
        "providers": [provider(json!({})), second, {"name": "jwt", "issuer": "https://jwt.example.com", "audiences": [API], "jwks": {"inline": {"keys": [k.jwk()]}}}],
        "routes": [{"match": {"path_prefix": "/other"}, "providers": ["jwt", "other"]},
                   {"match": {"path_prefix": "/jwt-only"}, "providers": ["jwt"]}]
    }));
    let (c, _) = call(f.on_request(&at("/other/x"), &bearer(OPAQUE), &host));
    assert_eq!(c.cluster, "other-idp");
    let (c, _) = call(f.on_request(&at("/orders"), &bearer(OPAQUE), &host));
    assert_eq!(c.cluster, "idp");
    assert_eq!(status(&f.on_request(&at("/jwt-only"), &bearer(OPAQUE), &host)), 401, "no introspecting provider on the route");
}

#[test]
fn phantom_token_opaque_in_minted_jwt_out() {
    let d = [9u8; 32];
    let x = ed25519_dalek::SigningKey::from_bytes(&d).verifying_key().to_bytes();
    let (host, mut f) = filter(json!({
        "providers": [provider(json!({}))],
        "signing": {"issuer": "https://edge.ecomm.com", "ttl_seconds": 60, "kid": "edge", "alg": "EdDSA",
                    "private_jwk": {"kty": "OKP", "crv": "Ed25519", "d": b64::encode(&d), "x": b64::encode(&x)}},
        "routes": [{"match": {"path_prefix": "/"}, "mint": {"audience": "https://orders.ecomm.com", "copy_claims": ["username"]},
                    "require": {"scopes_all": ["orders:read"]}}]
    }));
    let (c, leader) = call(ask(&mut f, &host, OPAQUE));
    json_answer(&mut f, &host, &c, "200", &active(), None);
    let o = f.resume(&leader, &host).unwrap();
    let auth = header(&o, "authorization").unwrap();
    let jwt = auth.strip_prefix("Bearer ").unwrap();
    let j = jws::parse(jwt, 8192).unwrap();
    assert_eq!(j.payload["aud"], "https://orders.ecomm.com");
    assert_eq!(j.payload["sub"], "alice");
    assert_eq!(j.payload["username"], "alice@example.com");
    assert_eq!(j.payload["scope"], "orders:read orders:write");
    assert!(!jwt.contains(OPAQUE));
    // The required scope is checked on the introspected claims.
    let (c, leader) = call(ask(&mut f, &host, "another-opaque-token"));
    let mut a = active();
    a["scope"] = json!("profile");
    json_answer(&mut f, &host, &c, "200", &a, None);
    assert_eq!(status(&f.resume(&leader, &host).unwrap()), 403);
}

fn signed_answer(k: &EsKey, typ: &str, iss: &str, aud: &str, ti: Value) -> String {
    let now = NOW / 1000;
    k.token_with_header(&json!({"alg": "ES256", "kid": k.kid, "typ": typ}), &json!({"iss": iss, "aud": aud, "iat": now, "token_introspection": ti}))
}

#[test]
fn signed_answers_are_verified_against_the_providers_keys() {
    let k = EsKey::new("as-1");
    let cfg = || {
        let mut p = provider(json!({"jwks": {"inline": {"keys": [k.jwk()]}}}));
        p["introspection"]["signed_answers"] = json!(true);
        json!({"providers": [p]})
    };
    let typ = "token-introspection+jwt";
    let cases = [
        (signed_answer(&k, typ, ISS, "gw", active()), 200),
        (signed_answer(&k, "JWT", ISS, "gw", active()), 401),
        (signed_answer(&k, typ, ISS, "someone-else", active()), 401),
        (signed_answer(&k, typ, "https://evil.example", "gw", active()), 401),
        (signed_answer(&EsKey::new("as-1"), typ, ISS, "gw", active()), 401),
        (signed_answer(&k, typ, ISS, "gw", json!({"active": false})), 401),
    ];
    for (i, (body, want)) in cases.iter().enumerate() {
        let (host, mut f) = filter(cfg());
        let (c, leader) = call(ask(&mut f, &host, OPAQUE));
        let accept = c.headers.iter().find(|(k, _)| k == "accept").unwrap().1.clone();
        assert_eq!(accept, "application/token-introspection+jwt");
        f.call_done(&c.key, CallResult::Response { status: "200", body: body.as_bytes(), content_type: Some("application/token-introspection+jwt"), cache_control: None }, &host);
        assert_eq!(status(&f.resume(&leader, &host).unwrap()), *want, "case {i}");
    }
    // A plain JSON answer where a signed one is required: refused (no downgrade).
    let (host, mut f) = filter(cfg());
    let (c, leader) = call(ask(&mut f, &host, OPAQUE));
    json_answer(&mut f, &host, &c, "200", &active(), None);
    assert_eq!(status(&f.resume(&leader, &host).unwrap()), 401);
}

#[test]
fn introspection_is_checked_on_config() {
    let bad = [
        (json!({"introspection": {"cluster": "", "path": "/i", "client_auth": {"method": "none"}}}), "providers[0].introspection.cluster"),
        (json!({"introspection": {"cluster": "c", "path": "i", "client_auth": {"method": "none"}}}), "providers[0].introspection.path"),
        (json!({"introspection": {"cluster": "c", "path": "/i", "client_auth": {"method": "client_secret_basic", "client_id": "gw"}}}), "providers[0].introspection.client_auth.client_secret"),
        (json!({"introspection": {"cluster": "c", "path": "/i", "client_auth": {"method": "none"}, "signed_answers": true}}), "providers[0].introspection.signed_answers"),
        (json!({"introspection": {"cluster": "c", "path": "/i", "client_auth": {"method": "none"}, "max_cache_seconds": 90000}}), "providers[0].introspection.max_cache_seconds"),
        (json!({"introspection": null}), "providers[0].jwks"),
    ];
    for (extra, field) in bad {
        let mut p = provider(json!({}));
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                p.as_object_mut().unwrap().remove(k);
            } else {
                p[k] = v.clone();
            }
        }
        let e = config::parse(json!({"providers": [p]}).to_string().as_bytes()).err().unwrap_or_else(|| panic!("accepted {extra}"));
        assert_eq!(e.field, field, "{e}");
    }
}

#[test]
fn introspect_jwts_checks_a_verified_jwt_for_revocation() {
    let k = EsKey::new("k1");
    let mut p = provider(json!({"jwks": {"inline": {"keys": [k.jwk()]}}}));
    p["introspection"]["introspect_jwts"] = json!(true);
    let (host, mut f) = filter(json!({"providers": [p], "forward": {"principal_header": "x-principal"}}));
    let t = k.token(&claims(ISS, API, "alice", NOW));
    // A forged JWT never reaches the server.
    assert_eq!(status(&ask(&mut f, &host, &EsKey::new("k1").token(&claims(ISS, API, "alice", NOW)))), 401);
    let (c, leader) = call(ask(&mut f, &host, &t));
    assert!(String::from_utf8(c.body.clone()).unwrap().starts_with("token=eyJ"));
    // The answer's claims do not replace the verified JWT's.
    json_answer(&mut f, &host, &c, "200", &json!({"active": true, "sub": "mallory"}), None);
    let o = f.resume(&leader, &host).unwrap();
    assert_eq!(header(&o, "x-principal").unwrap(), format!("[\"{ISS}\",\"alice\"]"));
    assert_eq!(status(&ask(&mut f, &host, &t)), 200, "cached");
    // Revoked: once the cache bound passes, the server's `active: false` refuses it.
    host.advance(300_000);
    let (c, leader) = call(ask(&mut f, &host, &k.token(&claims(ISS, API, "alice", NOW + 300_000))));
    json_answer(&mut f, &host, &c, "200", &json!({"active": false}), None);
    assert_eq!(status(&f.resume(&leader, &host).unwrap()), 401);
    // Without jwks the option is refused.
    let mut p = provider(json!({}));
    p["introspection"]["introspect_jwts"] = json!(true);
    let e = config::parse(json!({"providers": [p]}).to_string().as_bytes()).err().unwrap();
    assert_eq!(e.field, "providers[0].introspection.introspect_jwts");
}

#[test]
fn callout_times_go_to_their_histograms() {
    use crate::metrics::Histogram;
    let (host, mut f) = plain();
    let (c, _) = call(ask(&mut f, &host, OPAQUE));
    host.advance(137);
    json_answer(&mut f, &host, &c, "200", &active(), None);
    assert_eq!(*host.observed.borrow(), vec![(Histogram::IntrospectionCallMs, 137)]);
    // A JWKS fetch: dispatch at a tick, the answer 42 ms later.
    let k = EsKey::new("k1");
    let (host, mut f) = filter(json!({"providers": [{"name": "r", "issuer": ISS, "audiences": [API], "jwks": {"cluster": "idp", "path": "/jwks"}}]}));
    assert_eq!(f.tick(&host).len(), 1);
    host.advance(42);
    f.fetch_done(0, Ok(super::support::jwks(&[k.jwk()])), &host);
    assert_eq!(*host.observed.borrow(), vec![(Histogram::JwksFetchMs, 42)]);
}

#[test]
fn the_introspection_endpoint_can_come_from_discovery() {
    let mut p = provider(json!({"discovery": {"cluster": "idp", "authority": "idp.example.com"}}));
    p["introspection"].as_object_mut().unwrap().remove("path");
    let (host, mut f) = filter(json!({"providers": [p]}));
    let waiting = match ask(&mut f, &host, OPAQUE) {
        Outcome::Wait(p) => p,
        o => panic!("{o:?}"),
    };
    assert_eq!(f.tick(&host).len(), 1, "the discovery document");
    let doc = json!({"issuer": ISS, "jwks_uri": "https://idp.example.com/jwks",
                     "introspection_endpoint": "https://as.example.com:8443/oauth2/introspect"});
    f.fetch_done(0, Ok(doc.to_string().into_bytes()), &host);
    host.advance(100);
    assert_eq!(f.tick(&host).len(), 1, "then the JWKS");
    f.fetch_done(0, Ok(super::support::jwks(&[EsKey::new("k").jwk()])), &host);
    let (c, _) = call(f.resume(&waiting, &host).unwrap());
    let h = |n: &str| c.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap();
    assert_eq!((h(":authority"), h(":path")), ("as.example.com:8443".into(), "/oauth2/introspect".into()));
    // Another worker finds the endpoint in shared data.
    let mut other = Filter::new(f.cfg.clone());
    other.init(&host);
    let (c, _) = call(other.on_request(&at("/x"), &bearer("another-opaque"), &host));
    assert!(c.headers.contains(&(":path".to_string(), "/oauth2/introspect".to_string())));
    // Without discovery the path is required.
    let mut p = provider(json!({}));
    p["introspection"].as_object_mut().unwrap().remove("path");
    let e = config::parse(json!({"providers": [p]}).to_string().as_bytes()).err().unwrap();
    assert_eq!(e.field, "providers[0].introspection.path");
}

#[test]
fn a_request_waiting_for_keys_or_the_document_ends_at_its_deadline() {
    // Signed answers need the provider's keys first; they never come.
    let mut p = provider(json!({"jwks": {"cluster": "idp", "path": "/jwks", "timeout_ms": 500}}));
    p["introspection"]["signed_answers"] = json!(true);
    let mut d = provider(json!({"discovery": {"cluster": "idp", "timeout_ms": 500}}));
    d["introspection"].as_object_mut().unwrap().remove("path");
    for conf in [p, d] {
        let (host, mut f) = filter(json!({"providers": [conf]}));
        let w = match ask(&mut f, &host, OPAQUE) {
            Outcome::Wait(p) => p,
            o => panic!("{o:?}"),
        };
        host.advance(200);
        assert!(f.resume(&w, &host).is_none(), "still waiting");
        host.advance(5000);
        assert_eq!(status(&f.resume(&w, &host).unwrap()), 503);
    }
}
