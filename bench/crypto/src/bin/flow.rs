//! Where a cold request's time goes, per algorithm: the whole `Filter::on_request` with the cache
//! off (a fake host: shared data is a map here, so host-call costs are not in these numbers),
//! against its parts (JWS parse, signature verification). Natively and in V8 like `main.rs`.
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
    let mk = |ttl: u64| {
        let conf = serde_json::json!({
            "providers": [{"name": "corp", "issuer": "https://idp.bench", "audiences": ["https://api.bench"], "jwks": {"inline": fx["jwks"]}}],
            "forward": {"claims_to_headers": {"sub": "x-user-sub"}},
            "cache": {"max_entries": 1000, "max_ttl_seconds": ttl}});
        let cfg = Rc::new(config::parse(conf.to_string().as_bytes()).unwrap());
        let host = testing::FakeHost::new(1_800_000_000_000);
        let mut f = flow::Filter::new(cfg);
        f.init(&host);
        (f, host)
    };
    let (mut cold, cold_host) = mk(0);
    let (mut hot, hot_host) = mk(300);
    let keys = jose::jwk::parse_jwks(fx["jwks"].to_string().as_bytes()).unwrap().0;
    let ri = route::RouteInput { path: "/orders", authority: "api.bench", route_name: None, cluster: None };
    println!("{:<8} {:>10} {:>10} {:>10} {:>10} {:>10}", "alg", "cold", "parse", "verify", "rest", "hot");
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
        println!("{alg:<8} {c:>8.1}µs {p:>8.1}µs {v:>8.1}µs {:>8.1}µs {h:>8.1}µs", c - p - v);
    }
}
