//! Where a cold request's time goes, per algorithm: the whole `Filter::on_request` with the cache
//! off (a fake host: shared data is a map here, so host-call costs are not in these numbers),
//! against its parts (JWS parse, signature verification); the hot path (this worker's front), a
//! shared-data hit (front off) and SHA-256 of the token alone; then config load, JWKS parse and a
//! cache entry's encode/decode. Natively and in V8 like `main.rs`.
#[path = "../core.rs"]
mod core;
use core::*;
use std::rc::Rc;
use std::time::Instant;

fn best(iters: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 + 1 {
        f();
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e6 / iters as f64);
    }
    best
}

fn main() {
    let fx: serde_json::Value = serde_json::from_str(include_str!("../../fixtures.json")).unwrap();
    let it: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let mk = |ttl: u64, local: u32| {
        let conf = serde_json::json!({
            "providers": [{"name": "corp", "issuer": "https://idp.bench", "audiences": ["https://api.bench"], "jwks": {"inline": fx["jwks"]}}],
            "forward": {"claims_to_headers": {"sub": "x-user-sub"}},
            "cache": {"max_entries": 1000, "max_ttl_seconds": ttl, "local_entries": local}});
        let cfg = Rc::new(config::parse(conf.to_string().as_bytes()).unwrap());
        let host = testing::FakeHost::new(1_800_000_000_000);
        let mut f = flow::Filter::new(cfg);
        f.init(&host);
        (f, host)
    };
    let (mut cold, cold_host) = mk(0, 0);
    let (mut hot, hot_host) = mk(300, 1024);
    // The worker's front off: every hit is a shared-data hit (what a large population sees).
    let (mut shared, shared_host) = mk(300, 0);
    let keys = jose::jwk::parse_jwks(fx["jwks"].to_string().as_bytes()).unwrap().0;
    let ri = route::RouteInput { method: "GET", path: "/orders", authority: "api.bench", route_name: None, cluster: None };
    println!("{:<8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}", "alg", "cold", "parse", "verify", "rest", "hot", "shared", "sha256");
    for alg in ["RS256", "ES256", "EdDSA"] {
        let tok = fx["tokens"][alg].as_str().unwrap().to_owned();
        let headers = vec![("authorization".to_owned(), format!("Bearer {tok}").into_bytes())];
        let c = best(it, || assert!(matches!(cold.on_request(&ri, &headers, &cold_host), flow::Outcome::Allow(_))));
        let p = best(it, || assert!(jose::jws::parse(&tok, 16384).is_ok()));
        let jws = jose::jws::parse(&tok, 16384).unwrap();
        let v = best(it, || {
            assert!(jose::verify::verify_with_keys(&keys, jws.alg, jws.kid.as_deref(), jws.signing_input, &jws.signature).is_ok())
        });
        let h = best(it * 10, || assert!(matches!(hot.on_request(&ri, &headers, &hot_host), flow::Outcome::Allow(_))));
        let s = best(it * 10, || assert!(matches!(shared.on_request(&ri, &headers, &shared_host), flow::Outcome::Allow(_))));
        let d = best(it * 10, || {
            use sha2::Digest;
            std::hint::black_box(sha2::Sha256::digest(std::hint::black_box(tok.as_bytes())));
        });
        println!("{alg:<8} {c:>8.1}µs {p:>8.1}µs {v:>8.1}µs {:>8.1}µs {h:>8.1}µs {s:>8.1}µs {d:>8.1}µs", c - p - v);
    }

    // The rest of the core, per call: loading a configuration (with its inline JWKS), parsing a
    // JWKS document, and a claims cache entry's round trip (encode for shared data, decode).
    let conf = serde_json::json!({
        "providers": [{"name": "corp", "issuer": "https://idp.bench", "audiences": ["https://api.bench"], "jwks": {"inline": fx["jwks"]}}],
        "forward": {"claims_to_headers": {"sub": "x-user-sub"}},
        "cache": {"max_entries": 1000, "max_ttl_seconds": 300}})
    .to_string();
    let jwks = fx["jwks"].to_string();
    let v = flow::Verified {
        provider: 0,
        key_fp: 0,
        inner_key: None,
        exp_ms: 1_800_000_300_000,
        scopes: vec!["orders:read".to_string(), "profile".to_string()].into(),
        set: vec![("x-user-sub".into(), "bench-user-0001".into())].into(),
        carry: "".into(),
        cnf: None,
    };
    let hash = [7u8; 32];
    let entry = cache::encode(&[cache::Entry { hash: &hash[..16], expiry_ms: v.exp_ms, payload: &flow::encode_entry(&v) }]);
    let cl = best(it, || assert!(config::parse(conf.as_bytes()).is_ok()));
    let jw = best(it, || assert!(jose::jwk::parse_jwks(jwks.as_bytes()).is_ok()));
    let en = best(it * 10, || assert!(!cache::encode(&[cache::Entry { hash: &hash[..16], expiry_ms: v.exp_ms, payload: &flow::encode_entry(&v) }]).is_empty()));
    let de = best(it * 10, || assert!(cache::decode(&entry).and_then(|es| flow::decode_entry(es.first()?.payload)).is_some()));
    println!("config load {cl:.1}µs, JWKS parse (3 keys) {jw:.1}µs, cache entry encode {en:.2}µs, decode {de:.2}µs ({} bytes)", entry.len());
}
