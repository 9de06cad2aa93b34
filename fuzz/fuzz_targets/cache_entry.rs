//! Arbitrary bytes where shared data holds cache entries, JWKS records and markers (another
//! plugin version, or corruption, may have written anything there).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tef_core::host::Host;
use tef_core::{filter, route::RouteInput, testing::FakeHost, NOW_MS};

fuzz_target!(|data: &[u8]| {
    let _ = tef_core::cache::decode(data);
    let _ = tef_core::flow::decode_entry(data);
    let _ = tef_core::keys::decode_record(data);
    // The same bytes in every slot a request reads.
    let host = FakeHost::new(NOW_MS);
    let mut f = filter(&host);
    for i in 0..16 {
        let _ = host.shared_set(&format!("tef1/claims/{i}"), data, None);
        let _ = host.shared_set(&format!("tef1/xchg/{i}"), data, None);
        let _ = host.shared_set(&format!("tef1/xinf/{i}"), data, None);
    }
    let _ = f.tick(&host);
    let tok = std::str::from_utf8(data).unwrap_or("a.b.c");
    let headers = vec![("authorization".to_string(), format!("Bearer {tok}").into_bytes())];
    let r = RouteInput { method: "GET", path: "/x", authority: "a", route_name: None, cluster: None };
    let _ = f.on_request(&r, &headers, &host);
});
