//! Arbitrary bytes as the bearer token, the cookie and the query: extraction, strict JWS parsing,
//! key selection, signature verification, claims, cache, and the exchange step.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tef_core::{filter, route::RouteInput, testing::FakeHost, NOW_MS};

fuzz_target!(|data: &[u8]| {
    let host = FakeHost::new(NOW_MS);
    let mut f = filter(&host);
    let mut bearer = b"Bearer ".to_vec();
    bearer.extend_from_slice(data);
    let mut cookie = b"access_token=".to_vec();
    cookie.extend_from_slice(data);
    for headers in [vec![("authorization".to_string(), bearer)], vec![("cookie".to_string(), cookie)]] {
        for path in ["/", "/x"] {
            let r = RouteInput { method: "GET", path, authority: "a", route_name: None, cluster: None };
            let _ = f.on_request(&r, &headers, &host);
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let path = format!("/x?access_token={s}");
        let r = RouteInput { method: "GET", path: &path, authority: "a", route_name: None, cluster: None };
        let _ = f.on_request(&r, &[], &host);
        let _ = tef_core::jose::jws::parse_compact(s, 65_536);
    }
});
