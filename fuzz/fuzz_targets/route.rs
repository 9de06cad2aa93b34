//! Arbitrary `:path` and `:authority` (split at the first newline) through route matching's
//! normalisation, and through the whole request path with a token in three sources at once
//! (header, cookie, query: one token, or refused), on the fuzz configuration's routes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tef_core::{filter, route, route::RouteInput, testing::FakeHost, NOW_MS};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let (path, authority) = s.split_once('\n').unwrap_or((s, ""));
    let n = route::normalize_path(path);
    assert!(n.starts_with('/'), "{path:?} -> {n:?}");
    assert!(!n.contains("//"), "{path:?} -> {n:?}");
    assert!(!n.split('/').any(|seg| seg == "." || seg == ".."), "{path:?} -> {n:?}");
    let h = route::host_of(authority);
    assert!(!h.bytes().any(|c| c.is_ascii_uppercase()));
    let host = FakeHost::new(NOW_MS);
    let mut f = filter(&host);
    let token = path.rsplit('=').next().unwrap_or("");
    let headers = vec![
        ("authorization".to_string(), format!("Bearer {token}").into_bytes()),
        ("cookie".to_string(), format!("a=1; access_token={token}").into_bytes()),
    ];
    let r = RouteInput { method: "GET", path, authority, route_name: None, cluster: None };
    let _ = f.on_request(&r, &headers, &host);
});
