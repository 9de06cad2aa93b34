//! Native timing of the core's request path (no V8, no hostcalls): `cargo run --release --example hotpath`.
use std::time::Instant;
use tef_core::route::RouteInput;
use tef_core::testing::FakeHost;

fn main() {
    let host = FakeHost::new(tef_core::NOW_MS);
    let mut f = tef_core::filter(&host);
    // The RFC 8037 EdDSA example key's token is not valid for this config, so time a refused
    // request (parse + verify + claims) and, separately, the hashing a cached request does.
    let tok = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    let headers = vec![("authorization".to_string(), format!("Bearer {tok}").into_bytes())];
    let r = RouteInput { path: "/", authority: "a", route_name: None, cluster: None };
    let n = 20_000;
    let t = Instant::now();
    for _ in 0..n {
        let _ = f.on_request(&r, &headers, &host);
    }
    println!("refused EdDSA-signed request (full parse + verify): {:.2} µs", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    use sha2::Digest;
    let big = "x".repeat(800);
    let t = Instant::now();
    for _ in 0..200_000 {
        std::hint::black_box(sha2::Sha256::digest(big.as_bytes()));
    }
    println!("sha256 of 800 bytes: {:.2} µs", t.elapsed().as_secs_f64() * 1e6 / 200_000.0);
}
