//! The per-request state machine, driven natively with a fake host: real signatures, shared data
//! with the host's CAS semantics, a clock, counters.

use super::support::{bearer, claims, jwks, EdKey, EsKey};
use crate::config;
use crate::flow::{Filter, HeaderPlan, Outcome};
use crate::metrics::{Deny, Metric};
use crate::route::RouteInput;
use crate::testing::FakeHost;
use serde_json::{json, Value};
use std::rc::Rc;

const NOW: u64 = 1_800_000_000_000;
const ISS: &str = "https://idp.example.com";

fn config(local: &EsKey, extra: impl FnOnce(&mut Value)) -> Rc<config::Config> {
    let mut v = json!({
        "providers": [
            {"name": "remote", "issuer": ISS, "audiences": ["api", "*.ecomm.com"],
             "jwks": {"cluster": "idp", "authority": "idp.example.com", "path": "/jwks", "refresh_seconds": 60,
                      "timeout_ms": 1000, "min_refetch_seconds": 30, "retry_ms": 500}},
            {"name": "local", "issuer": "https://local.test", "audiences": ["api"],
             "jwks": {"inline": {"keys": [local.jwk()]}}}
        ],
        "routes": [
            {"match": {"path_prefix": "/public"}, "allow_anonymous": true},
            {"match": {"path_prefix": "/local-only"}, "providers": ["local"]}
        ],
        "forward": {"claims_to_headers": {"sub": "x-sub", "scope": "x-scope"}, "principal_header": "x-principal",
                    "strip_headers": ["x-internal"]},
        "cache": {"max_entries": 100}
    });
    extra(&mut v);
    Rc::new(config::parse(v.to_string().as_bytes()).unwrap())
}

fn req<'a>(path: &'a str) -> RouteInput<'a> {
    RouteInput { method: "GET", path, authority: "api.example.com", route_name: None, cluster: None }
}

fn allowed(o: &Outcome) -> &HeaderPlan {
    match o {
        Outcome::Allow(p) => p,
        other => panic!("expected Allow, got {other:?}"),
    }
}

fn denied(o: &Outcome) -> (u32, String) {
    match o {
        Outcome::Deny(r) => {
            let www = r.headers.iter().find(|(k, _)| k == "www-authenticate").map(|(_, v)| v.clone()).unwrap_or_default();
            (r.status, www)
        }
        other => panic!("expected Deny, got {other:?}"),
    }
}

/// A filter whose remote provider already has `keys` (fetched through the real protocol).
fn ready(host: &FakeHost, cfg: Rc<config::Config>, keys: &[Value]) -> Filter {
    let mut f = Filter::new(cfg);
    f.init(host);
    let fetches = f.tick(host);
    assert_eq!(fetches.len(), 1);
    f.fetch_done(0, Ok(jwks(keys)), host);
    f
}

#[test]
fn valid_token_is_allowed_with_identity_headers_and_cached() {
    let host = FakeHost::new(NOW);
    let local = EsKey::new("l1");
    let mut f = ready(&host, config(&local, |_| {}), &[]);
    let t = local.token(&claims("https://local.test", "api", "alice", NOW));
    let plan = allowed(&f.on_request(&req("/x"), &bearer(&t), &host)).clone();
    // A header that is set is not removed first: the set replaces every client copy.
    assert_eq!(*plan.remove, ["x-internal", "x_internal", "x_principal", "x_scope", "x_sub"]);
    assert_eq!(
        plan.set.to_vec(),
        vec![
            ("x-scope".to_string(), "read write".to_string()),
            ("x-sub".to_string(), "alice".to_string()),
            ("x-principal".to_string(), r#"["https://local.test","alice"]"#.to_string()),
        ]
    );
    assert_eq!(host.counter(Metric::CacheMiss), 1);
    let again = f.on_request(&req("/x"), &bearer(&t), &host);
    assert_eq!(allowed(&again), &plan);
    assert_eq!(host.counter(Metric::CacheHit), 1);
    assert_eq!(host.counter(Metric::Allowed), 2);
}

#[test]
fn a_hot_token_gets_the_plan_built_for_it_and_never_another_tokens() {
    let host = FakeHost::new(NOW);
    let local = EsKey::new("l1");
    let mut f = ready(&host, config(&local, |_| {}), &[]);
    let tok = |sub: &str| local.token(&claims("https://local.test", "api", sub, NOW));
    let sub_of = |o: &Outcome| allowed(o).set.iter().find(|(k, _)| k == "x-sub").map(|(_, v)| v.clone());
    let alice = tok("alice");
    let (first, hot) = (f.on_request(&req("/x"), &bearer(&alice), &host), f.on_request(&req("/x"), &bearer(&alice), &host));
    match (&first, &hot) {
        (Outcome::Allow(p), Outcome::Allow(q)) => assert!(Rc::ptr_eq(p, q), "a hot request builds no plan"),
        other => panic!("{other:?}"),
    }
    // Many other tokens through the same plans (64 slots): each gets its own claims, and alice
    // hers again, whatever slot her plan was evicted from.
    for i in 0..100 {
        let sub = format!("u{i}");
        assert_eq!(sub_of(&f.on_request(&req("/x"), &bearer(&tok(&sub)), &host)).as_deref(), Some(sub.as_str()));
    }
    let again = f.on_request(&req("/x"), &bearer(&alice), &host);
    assert_eq!(sub_of(&again).as_deref(), Some("alice"));
    assert_eq!(allowed(&again), allowed(&first));
    assert_eq!(host.counter(Metric::Allowed), 103);
}

/// A filter and a token of its local provider that expires 10 s from `NOW`.
fn expiring_in_10s() -> (FakeHost, Filter, String) {
    let host = FakeHost::new(NOW);
    let local = EsKey::new("l1");
    let f = ready(&host, config(&local, |_| {}), &[]);
    let mut c = claims("https://local.test", "api", "alice", NOW);
    c["exp"] = json!(NOW / 1000 + 10);
    let t = local.token(&c);
    (host, f, t)
}

#[test]
fn cached_entries_never_outlive_the_token() {
    let (host, mut f, t) = expiring_in_10s();
    allowed(&f.on_request(&req("/"), &bearer(&t), &host));
    host.advance(10_000 + 60_000); // past exp + skew
    let (status, www) = denied(&f.on_request(&req("/"), &bearer(&t), &host));
    assert_eq!(status, 401);
    assert!(www.contains("token expired"), "{www}");
    assert_eq!(host.counter(Metric::CacheHit), 0);
}

#[test]
fn a_hot_token_well_before_its_expiry_is_decided_without_reading_the_clock() {
    let host = FakeHost::new(NOW);
    let local = EsKey::new("l1");
    let mut f = ready(&host, config(&local, |_| {}), &[]);
    let t = local.token(&claims("https://local.test", "api", "alice", NOW));
    let first = f.on_request(&req("/x"), &bearer(&t), &host);
    host.bound_ahead_ms.set(Some(crate::clock::SLACK_MS));
    host.clock_reads.set(0);
    let hot = f.on_request(&req("/x"), &bearer(&t), &host);
    assert_eq!(allowed(&hot), allowed(&first));
    assert_eq!(host.clock_reads.get(), 0, "a kept token valid at the bound needs no clock");
    // Without a bound (before the worker's first reading, or past its uses) the clock is read.
    host.bound_ahead_ms.set(None);
    allowed(&f.on_request(&req("/x"), &bearer(&t), &host));
    assert_eq!(host.clock_reads.get(), 1);
}

#[test]
fn within_the_slack_of_its_expiry_a_kept_token_is_decided_by_the_clock() {
    let (host, mut f, t) = expiring_in_10s();
    let first = f.on_request(&req("/x"), &bearer(&t), &host);
    allowed(&first);
    host.bound_ahead_ms.set(Some(crate::clock::SLACK_MS));
    // 0.4 s before exp the bound is past it: not decided from the bound, but the token is valid
    // now, so the clock says so (from the worker's front: no shared-data read, no verification).
    host.advance(10_000 - 400);
    host.clock_reads.set(0);
    let reads = host.reads.get();
    assert_eq!(allowed(&f.on_request(&req("/x"), &bearer(&t), &host)), allowed(&first));
    assert_eq!(host.clock_reads.get(), 1);
    assert_eq!(host.reads.get(), reads, "still the worker's kept entry");
    // From exp on, nothing kept serves it (the full verification allows the clock skew, 60 s).
    host.advance(400);
    allowed(&f.on_request(&req("/x"), &bearer(&t), &host));
    assert!(host.reads.get() > reads, "past exp the kept entries are not used");
    host.advance(60_001);
    let (status, www) = denied(&f.on_request(&req("/x"), &bearer(&t), &host));
    assert_eq!(status, 401);
    assert!(www.contains("token expired"), "{www}");
}

#[test]
fn a_token_found_once_in_shared_data_does_not_evict_one_in_use() {
    let host = FakeHost::new(NOW);
    let local = EsKey::new("l1");
    // One slot: every token is kept in the same place.
    let cfg = config(&local, |v| v["cache"]["local_entries"] = json!(1));
    let mut a = ready(&host, cfg.clone(), &[]);
    let mut b = Filter::new(cfg);
    b.init(&host);
    assert!(b.tick(&host).is_empty());
    let tok = |sub: &str| local.token(&claims("https://local.test", "api", sub, NOW));
    let (hot, x, y) = (tok("hot"), tok("x"), tok("y"));
    allowed(&b.on_request(&req("/"), &bearer(&hot), &host));
    for t in [&x, &y] {
        allowed(&a.on_request(&req("/"), &bearer(t), &host));
    }
    let on_b = |b: &mut Filter, t: &str| {
        let reads = host.reads.get();
        allowed(&b.on_request(&req("/"), &bearer(t), &host));
        host.reads.get() > reads
    };
    assert!(!on_b(&mut b, &hot), "kept where b verified it");
    // Found in shared data once: answered, not kept (the slot holds a token in use).
    assert!(on_b(&mut b, &x));
    assert!(!on_b(&mut b, &hot), "still kept");
    // Another such token in between: neither is kept.
    assert!(on_b(&mut b, &y));
    assert!(on_b(&mut b, &x));
    assert!(!on_b(&mut b, &hot));
    // Twice in a row: the second keeps it.
    assert!(on_b(&mut b, &x));
    assert!(!on_b(&mut b, &x), "kept from its second sighting");
    assert!(on_b(&mut b, &hot), "which took the slot");
    assert_eq!(host.counter(Metric::CacheMiss), 3, "nothing verified twice");
    // A slot whose entry expired takes a token at once.
    let mut c = claims("https://local.test", "api", "short", NOW);
    c["exp"] = json!(NOW / 1000 + 10);
    let short = local.token(&c);
    allowed(&b.on_request(&req("/"), &bearer(&short), &host));
    assert!(!on_b(&mut b, &short));
    host.advance(11_000);
    assert!(on_b(&mut b, &y));
    assert!(!on_b(&mut b, &y), "kept at its first sighting");
}

#[test]
fn a_worker_answers_hot_tokens_without_reading_shared_data() {
    let host = FakeHost::new(NOW);
    let local = EsKey::new("l1");
    let cfg = config(&local, |v| v["cache"]["max_ttl_seconds"] = json!(60));
    let mut a = ready(&host, cfg.clone(), &[]);
    let mut b = Filter::new(cfg);
    b.init(&host);
    assert!(b.tick(&host).is_empty(), "b takes the keys a fetched");
    let t = local.token(&claims("https://local.test", "api", "alice", NOW));
    let first = allowed(&a.on_request(&req("/"), &bearer(&t), &host)).clone();
    let reads = host.reads.get();
    assert_eq!(allowed(&a.on_request(&req("/"), &bearer(&t), &host)), &first);
    assert_eq!(host.reads.get(), reads, "a hit on the verifying worker reads no shared data");
    // Another worker finds it in shared data once, then keeps it too.
    assert_eq!(allowed(&b.on_request(&req("/"), &bearer(&t), &host)), &first);
    assert!(host.reads.get() > reads);
    let reads = host.reads.get();
    assert_eq!(allowed(&b.on_request(&req("/"), &bearer(&t), &host)), &first);
    assert_eq!(host.reads.get(), reads);
    assert_eq!((host.counter(Metric::CacheMiss), host.counter(Metric::CacheHit)), (1, 3));
    // Nothing is served past max_ttl: both workers verify again.
    host.advance(60_000);
    allowed(&a.on_request(&req("/"), &bearer(&t), &host));
    allowed(&b.on_request(&req("/"), &bearer(&t), &host));
    assert_eq!(host.counter(Metric::CacheMiss), 2, "a verified again; b then hit a's fresh shared entry");
    // A token differing in one byte is never answered from the front.
    let mut forged = t.clone().into_bytes();
    let n = forged.len() - 2;
    forged[n] = if forged[n] == b'A' { b'B' } else { b'A' };
    let (status, _) = denied(&a.on_request(&req("/"), &bearer(&String::from_utf8(forged).unwrap()), &host));
    assert_eq!(status, 401);
}

#[test]
fn cache_is_bounded_by_max_entries() {
    let host = FakeHost::new(NOW);
    let local = EsKey::new("l1");
    let mut f = ready(&host, config(&local, |_| {}), &[]);
    let before = host.shared_len();
    for i in 0..1000 {
        let t = local.token(&claims("https://local.test", "api", &format!("u{i}"), NOW));
        allowed(&f.on_request(&req("/"), &bearer(&t), &host));
    }
    assert!(host.shared_len() - before <= 100, "{} cache keys for max_entries 100", host.shared_len() - before);
}

#[test]
fn missing_anonymous_ambiguous_and_route_rules() {
    let host = FakeHost::new(NOW);
    let local = EsKey::new("l1");
    let mut f = ready(&host, config(&local, |_| {}), &[]);
    assert_eq!(denied(&f.on_request(&req("/x"), &[], &host)), (401, "Bearer realm=\"api\"".into()));
    let plan = allowed(&f.on_request(&req("/public/x"), &[("x-sub".into(), b"spoof".to_vec())], &host)).clone();
    assert!(plan.remove.contains(&"x-sub".to_string()) && plan.set.is_empty());
    let t = local.token(&claims("https://local.test", "api", "a", NOW));
    let two = vec![("authorization".into(), format!("Bearer {t}").into_bytes()), ("authorization".into(), format!("Bearer {t}").into_bytes())];
    let (s, www) = denied(&f.on_request(&req("/x"), &two, &host));
    assert_eq!(s, 400);
    assert!(www.contains("invalid_request"));
    // Repeated headers as Envoy joins them (','): two tokens too, also where the first is
    // cached (the caches hold no joined value, so it is refused once neither has it), never
    // counted as a cache miss.
    allowed(&f.on_request(&req("/x"), &bearer(&t), &host));
    let misses = host.counter(Metric::CacheMiss);
    for joined in [format!("Bearer {t},Bearer {t}"), format!("Bearer {t}, Bearer x.y.z"), format!("Bearer {t},")] {
        let (s, www) = denied(&f.on_request(&req("/x"), &[("authorization".into(), joined.clone().into_bytes())], &host));
        assert_eq!(s, 400, "{joined}");
        assert!(www.contains("invalid_request") && www.contains("more than one token"), "{www}");
    }
    assert_eq!(host.counter(Metric::CacheMiss), misses);
    assert_eq!(host.counter(Metric::Denied(Deny::BadRequest)), 4);
    allowed(&f.on_request(&req("/x"), &bearer(&t), &host));
    // A remote-issuer token on a local-only route (a fresh Envoy: shared data starts empty).
    let host = FakeHost::new(NOW);
    let remote = EsKey::new("r1");
    let mut f = ready(&host, config(&local, |_| {}), &[remote.jwk()]);
    let t = remote.token(&claims(ISS, "api", "a", NOW));
    allowed(&f.on_request(&req("/x"), &bearer(&t), &host));
    let (s, www) = denied(&f.on_request(&req("/local-only/x"), &bearer(&t), &host));
    assert_eq!(s, 401, "{www}");
    assert_eq!(host.counter(Metric::Denied(Deny::ProviderNotAllowed)), 1, "also on a cache hit");
}

#[test]
fn token_rules_table() {
    let host = FakeHost::new(NOW);
    let local = EsKey::new("l1");
    let ed = EdKey::new("e1");
    let remote = EsKey::new("r1");
    let attacker = EsKey::new("r1");
    let mut f = ready(&host, config(&local, |_| {}), &[remote.jwk(), ed.jwk()]);
    let ok = claims(ISS, "api", "a", NOW);
    let with = |k: &str, v: Value| {
        let mut c = ok.clone();
        c[k] = v;
        c
    };
    let cases: Vec<(String, Deny)> = vec![
        (remote.token(&with("aud", json!("other"))), Deny::Audience),
        (remote.token(&with("aud", json!([]))), Deny::Audience),
        (remote.token(&with("aud", json!(["x", 5]))), Deny::Audience),
        (remote.token(&with("aud", json!("ecomm.com"))), Deny::Audience),
        (remote.token(&with("iss", json!("https://idp.example.com/"))), Deny::Issuer),
        (remote.token(&with("iss", json!("HTTPS://IDP.EXAMPLE.COM"))), Deny::Issuer),
        (remote.token(&with("exp", json!(NOW / 1000 - 61))), Deny::Expired),
        (remote.token(&with("exp", json!("9999999999"))), Deny::Claims),
        (remote.token(&with("exp", json!(-1))), Deny::Claims),
        (remote.token(&with("exp", json!(true))), Deny::Claims),
        (remote.token(&with("exp", Value::Null)), Deny::Claims),
        (remote.token(&with("nbf", json!(NOW / 1000 + 120))), Deny::NotYetValid),
        (remote.token(&with("iat", json!(NOW / 1000 + 120))), Deny::NotYetValid),
        (remote.token(&with("sub", json!("a\r\nx-evil: 1"))), Deny::HeaderValue),
        (remote.token(&with("scope", json!("a\u{0}b"))), Deny::HeaderValue),
        (remote.token_with_header(&json!({"alg": "ES256", "kid": "r1", "typ": "dpop+jwt"}), &ok), Deny::TokenType),
        (remote.token_with_header(&json!({"alg": "ES256", "kid": "e1"}), &ok), Deny::Algorithm),
        // An attacker's key with the same kid, shipped in the header (`jwk`) and by URL (`jku`).
        (attacker.token_with_header(&json!({"alg": "ES256", "kid": "r1", "jku": "https://evil/jwks", "jwk": attacker.jwk()}), &ok), Deny::Signature),
        (ed.token(&ok).replacen('.', ".e30", 0) + "x", Deny::Malformed),
        (remote.token(&ok).rsplit_once('.').unwrap().0.to_string() + ".", Deny::Signature),
        ("e30.e30.e30.e30.e30".to_string(), Deny::Malformed),
    ];
    for (i, (t, want)) in cases.iter().enumerate() {
        let before = host.counter(Metric::Denied(*want));
        let out = f.on_request(&req("/x"), &bearer(t), &host);
        let (status, www) = denied(&out);
        assert_eq!(status, 401, "case {i}");
        assert!(www.contains("error=\"invalid_token\""), "case {i}: {www}");
        assert_eq!(host.counter(Metric::Denied(*want)), before + 1, "case {i}: want {want:?}, {www}");
    }
    // jwk/jku in the header are ignored, not trusted: a correctly signed token with them passes.
    let t = remote.token_with_header(&json!({"alg": "ES256", "kid": "r1", "jku": "https://evil/jwks"}), &ok);
    allowed(&f.on_request(&req("/x"), &bearer(&t), &host));
    // A token with no kid tries the keys of its algorithm.
    let t = remote.token_with_header(&json!({"alg": "ES256"}), &ok);
    allowed(&f.on_request(&req("/x"), &bearer(&t), &host));
    allowed(&f.on_request(&req("/x"), &bearer(&ed.token(&with("aud", json!("orders.ecomm.com")))), &host));
}

#[test]
fn first_request_waits_for_keys_then_resumes() {
    let host = FakeHost::new(NOW);
    let local = EsKey::new("l1");
    let remote = EsKey::new("r1");
    let mut f = Filter::new(config(&local, |_| {}));
    f.init(&host);
    let t = remote.token(&claims(ISS, "api", "bob", NOW));
    let pending = match f.on_request(&req("/x"), &bearer(&t), &host) {
        Outcome::Wait(p) => p,
        o => panic!("{o:?}"),
    };
    assert_eq!(f.resume(&pending, &host), None, "still waiting");
    let fetch = f.tick(&host);
    assert_eq!(fetch.len(), 1);
    let h: Vec<(&str, &str)> = fetch[0].headers.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert!(h.contains(&(":method", "GET")) && h.contains(&(":path", "/jwks")) && h.contains(&(":authority", "idp.example.com")));
    assert_eq!(fetch[0].cluster, "idp");
    assert!(f.tick(&host).is_empty(), "no second fetch while one is in flight");
    host.advance(50);
    f.fetch_done(0, Ok(jwks(&[remote.jwk()])), &host);
    let out = f.resume(&pending, &host).expect("decided");
    assert_eq!(allowed(&out).set[1], ("x-sub".to_string(), "bob".to_string()));
    assert_eq!(host.counter(Metric::JwksFetchOk), 1);
}

#[test]
fn keys_unavailable_is_503_never_401_never_pass() {
    let host = FakeHost::new(NOW);
    let local = EsKey::new("l1");
    let remote = EsKey::new("r1");
    let mut f = Filter::new(config(&local, |_| {}));
    f.init(&host);
    let t = remote.token(&claims(ISS, "api", "bob", NOW));
    let Outcome::Wait(p) = f.on_request(&req("/x"), &bearer(&t), &host) else { panic!() };
    assert_eq!(f.tick(&host).len(), 1);
    f.fetch_done(0, Err("JWKS endpoint answered :status 503".into()), &host);
    let (status, www) = denied(&f.resume(&p, &host).unwrap());
    assert_eq!((status, www.as_str()), (503, ""));
    // While the retry back-off runs, new requests fail fast with 503.
    assert_eq!(denied(&f.on_request(&req("/x"), &bearer(&t), &host)).0, 503);
    // A waiting request whose fetch never answers ends at its deadline with 503.
    host.advance(600);
    let Outcome::Wait(p) = f.on_request(&req("/x"), &bearer(&t), &host) else { panic!() };
    assert_eq!(f.tick(&host).len(), 1, "retry after retry_ms");
    host.advance(1_600);
    assert_eq!(denied(&f.resume(&p, &host).unwrap()).0, 503);
    // Recovery.
    f.fetch_done(0, Ok(jwks(&[remote.jwk()])), &host);
    allowed(&f.on_request(&req("/x"), &bearer(&t), &host));
    assert_eq!(host.counter(Metric::Denied(Deny::JwksUnavailable)), 3);
}

#[test]
fn failed_refresh_keeps_the_last_good_keys() {
    let host = FakeHost::new(NOW);
    let local = EsKey::new("l1");
    let remote = EsKey::new("r1");
    let mut f = ready(&host, config(&local, |_| {}), &[remote.jwk()]);
    host.advance(61_000);
    assert_eq!(f.tick(&host).len(), 1, "refresh due");
    f.fetch_done(0, Ok(b"<html>".to_vec()), &host);
    f.fetch_done(0, Ok(jwks(&[json!({"kty": "oct", "k": "AAAA"})])), &host);
    assert_eq!(host.counter(Metric::JwksFetchFailed), 2);
    let t = remote.token(&claims(ISS, "api", "bob", host.now.get()));
    allowed(&f.on_request(&req("/x"), &bearer(&t), &host));
    // A second VM that starts now still gets those keys from shared data.
    let mut g = Filter::new(f.cfg.clone());
    g.init(&host);
    allowed(&g.on_request(&req("/x"), &bearer(&t), &host));
}

#[test]
fn bad_keys_mixed_with_good_ones_are_skipped_and_counted() {
    let host = FakeHost::new(NOW);
    let local = EsKey::new("l1");
    let remote = EsKey::new("r1");
    let small_rsa = json!({"kty": "RSA", "kid": "weak", "n": crate::jose::b64::encode(&[0xc5u8; 128]), "e": "AQAB"});
    let f = &mut ready(&host, config(&local, |_| {}), &[small_rsa, json!({"kty": "oct", "k": "AAAA"}), remote.jwk()]);
    assert_eq!(host.counter(Metric::JwksKeysRejected), 2);
    allowed(&f.on_request(&req("/x"), &bearer(&remote.token(&claims(ISS, "api", "a", NOW))), &host));
}

#[test]
fn one_fetch_per_period_across_vms() {
    let host = FakeHost::new(NOW);
    let local = EsKey::new("l1");
    let remote = EsKey::new("r1");
    let cfg = config(&local, |_| {});
    let mut vms: Vec<Filter> = (0..3).map(|_| Filter::new(cfg.clone())).collect();
    for vm in &mut vms {
        vm.init(&host);
    }
    let mut fetches = 0;
    for _ in 0..(5 * 60 * 10) {
        // 5 minutes of 100 ms ticks on every VM; refresh_seconds is 60.
        for vm in vms.iter_mut() {
            for fr in vm.tick(&host) {
                fetches += 1;
                vm.fetch_done(fr.provider, Ok(jwks(&[remote.jwk()])), &host);
            }
        }
        host.advance(100);
    }
    assert!((5..=6).contains(&fetches), "{fetches} fetches in 5 minutes for 3 VMs at refresh 60 s");
    // Every VM has the keys without fetching them itself.
    let t = remote.token(&claims(ISS, "api", "a", host.now.get()));
    for vm in &mut vms {
        allowed(&vm.on_request(&req("/x"), &bearer(&t), &host));
    }
}

#[test]
fn unknown_kid_refetches_once_then_is_rate_limited() {
    let host = FakeHost::new(NOW);
    let local = EsKey::new("l1");
    let old = EsKey::new("old");
    let new = EsKey::new("new");
    let mut f = ready(&host, config(&local, |_| {}), &[old.jwk()]);
    host.advance(31_000); // past min_refetch_seconds
    let t = new.token(&claims(ISS, "api", "a", host.now.get()));
    let Outcome::Wait(p) = f.on_request(&req("/x"), &bearer(&t), &host) else { panic!("should wait for a refetch") };
    assert_eq!(f.tick(&host).len(), 1);
    f.fetch_done(0, Ok(jwks(&[old.jwk(), new.jwk()])), &host);
    allowed(&f.resume(&p, &host).unwrap());
    // Right after, another unknown kid is refused at once (no refetch storm).
    let stranger = EsKey::new("stranger");
    let (s, www) = denied(&f.on_request(&req("/x"), &bearer(&stranger.token(&claims(ISS, "api", "a", host.now.get()))), &host));
    assert_eq!(s, 401);
    assert!(www.contains("unknown"), "{www}");
    assert!(f.tick(&host).is_empty());
    // An unknown kid still unknown after the refetch is a 401.
    host.advance(31_000);
    let t = stranger.token(&claims(ISS, "api", "a", host.now.get()));
    let Outcome::Wait(p) = f.on_request(&req("/x"), &bearer(&t), &host) else { panic!() };
    assert_eq!(f.tick(&host).len(), 1);
    f.fetch_done(0, Ok(jwks(&[old.jwk(), new.jwk()])), &host);
    assert_eq!(denied(&f.resume(&p, &host).unwrap()).0, 401);
}

#[test]
fn keys_fetched_by_another_vm_are_used_without_waiting() {
    let host = FakeHost::new(NOW);
    let local = EsKey::new("l1");
    let remote = EsKey::new("r1");
    let cfg = config(&local, |_| {});
    let mut a = Filter::new(cfg.clone());
    let mut b = Filter::new(cfg);
    a.init(&host);
    b.init(&host);
    let fr = a.tick(&host);
    assert!(b.tick(&host).is_empty(), "b lost the lease");
    a.fetch_done(fr[0].provider, Ok(jwks(&[remote.jwk()])), &host);
    // b has not ticked since: the request path re-reads shared data on a miss.
    allowed(&b.on_request(&req("/x"), &bearer(&remote.token(&claims(ISS, "api", "a", NOW))), &host));
}

/// A worker configured late, which read the fetch lease missing before another worker made and
/// took it, does not reset that lease: one fetch for both.
#[test]
fn a_late_vm_never_resets_a_taken_lease() {
    let host = FakeHost::new(NOW);
    let local = EsKey::new("l1");
    let cfg = config(&local, |_| {});
    let mut a = Filter::new(cfg.clone());
    let mut b = Filter::new(cfg);
    a.init(&host);
    assert_eq!(a.tick(&host).len(), 1, "a takes the lease and fetches");
    *host.stale.borrow_mut() = Some("/lease".into());
    b.init(&host);
    *host.stale.borrow_mut() = None;
    assert!(b.tick(&host).is_empty(), "the lease a took still holds");
}

/// A refresh that brings the same JWKS body keeps the keys already prepared (an ES256 key's table
/// costs milliseconds per VM); a changed body replaces them, on every VM.
#[test]
fn unchanged_jwks_refresh_keeps_prepared_keys() {
    use crate::keys::KeyState;
    let host = FakeHost::new(NOW);
    let local = EsKey::new("l1");
    let remote = EsKey::new("r1");
    let mut f = ready(&host, config(&local, |_| {}), &[remote.jwk()]);
    let mut g = Filter::new(f.cfg.clone());
    g.init(&host);
    let held = |vm: &mut Filter| match vm.keys_mut().state(0, Some("r1"), &host) {
        KeyState::Ready(s) => s,
        _ => panic!("keys not ready"),
    };
    let (before_f, before_g) = (held(&mut f), held(&mut g));
    host.advance(61_000);
    assert_eq!(f.tick(&host).len(), 1, "refresh due");
    f.fetch_done(0, Ok(jwks(&[remote.jwk()])), &host);
    g.tick(&host);
    assert!(std::rc::Rc::ptr_eq(&before_f, &held(&mut f)), "fetching VM re-prepared an unchanged JWKS");
    assert!(std::rc::Rc::ptr_eq(&before_g, &held(&mut g)), "other VM re-prepared an unchanged JWKS");
    assert_eq!(host.counter(Metric::JwksFetchOk), 2);
    // A changed body is parsed again, on both VMs.
    let rotated = EsKey::new("r2");
    host.advance(61_000);
    assert_eq!(f.tick(&host).len(), 1);
    f.fetch_done(0, Ok(jwks(&[remote.jwk(), rotated.jwk()])), &host);
    g.tick(&host);
    for vm in [&mut f, &mut g] {
        assert!(matches!(vm.keys_mut().state(0, Some("r2"), &host), KeyState::Ready(_)));
    }
    allowed(&g.on_request(&req("/x"), &bearer(&rotated.token(&claims(ISS, "api", "c", host.now.get()))), &host));
}

/// Claims by path (`realm_access.roles`), a namespaced claim with dots taken by its exact name,
/// and the verified payload as one header, exactly as signed.
#[test]
fn nested_claims_and_the_payload_header() {
    let host = FakeHost::new(NOW);
    let local = EsKey::new("l1");
    let cfg = config(&local, |v| {
        v["forward"] = json!({"claims_to_headers": {"realm_access.roles": "x-roles", "https://ns.example/team.name": "x-team",
                                                    "realm_access.missing": "x-missing"},
                              "payload_header": "x-jwt-payload"});
    });
    let mut f = ready(&host, cfg, &[]);
    let mut c = claims("https://local.test", "api", "alice", NOW);
    c["realm_access"] = json!({"roles": ["admin", "ops"]});
    c["https://ns.example/team.name"] = json!("blue");
    let t = local.token(&c);
    let plan = allowed(&f.on_request(&req("/x"), &bearer(&t), &host)).clone();
    let get = |h: &str| plan.set.iter().find(|(k, _)| k == h).map(|(_, v)| v.clone());
    assert_eq!(get("x-roles").as_deref(), Some("admin ops"));
    assert_eq!(get("x-team").as_deref(), Some("blue"));
    assert_eq!(get("x-missing"), None);
    assert_eq!(get("x-jwt-payload").as_deref(), t.split('.').nth(1));
    for h in ["x-roles", "x-team", "x-jwt-payload", "x_jwt_payload", "x-missing"] {
        let set = plan.set.iter().any(|(k, _)| k == h);
        assert!(plan.remove.contains(&h.to_string()) != set, "{h} is either replaced by the set or stripped");
    }
    // Served again from the cache with the same headers.
    assert_eq!(allowed(&f.on_request(&req("/x"), &bearer(&t), &host)), &plan);
}
