//! The hot path's decision alone, N times (for callgrind: instruction counts per function).
//! `hot N shared`: the worker's front off, every request a shared-data hit (`tef_hot_shared`).
#[path = "../core.rs"]
mod core;
use core::*;
use std::rc::Rc;

fn main() {
    let fx: serde_json::Value = serde_json::from_str(include_str!("../../fixtures.json")).unwrap();
    let n: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let conf = serde_json::json!({
        "providers": [{"name": "corp", "issuer": "https://idp.bench", "audiences": ["https://api.bench"], "jwks": {"inline": fx["jwks"]}}],
        "forward": {"claims_to_headers": {"sub": "x-user-sub"}},
        "cache": {"max_entries": 1000, "max_ttl_seconds": 300, "local_entries": if std::env::args().nth(2).as_deref() == Some("shared") { 0 } else { 1024 }}});
    let cfg = Rc::new(config::parse(conf.to_string().as_bytes()).unwrap());
    let host = testing::FakeHost::new(1_800_000_000_000);
    // As in Envoy after the worker's first clock reading (`clock::RecentClock`).
    host.bound_ahead_ms.set(Some(1_000));
    let mut f = flow::Filter::new(cfg);
    f.init(&host);
    let ri = route::RouteInput { method: "", path: "", authority: "", route_name: None, cluster: None };
    let tok = fx["tokens"]["ES256"].as_str().unwrap().to_owned();
    let headers = vec![("authorization".to_owned(), format!("Bearer {tok}").into_bytes())];
    for _ in 0..n {
        let o = f.on_request(std::hint::black_box(&ri), &headers, &host);
        assert!(matches!(o, flow::Outcome::Allow(_)));
        std::hint::black_box(o);
    }
}
