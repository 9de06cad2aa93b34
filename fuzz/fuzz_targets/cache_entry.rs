//! Arbitrary bytes where shared data holds cache entries, JWKS records and markers (another
//! plugin version, or corruption, may have written anything there).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tef_core::host::Host;
use tef_core::{filter, route::RouteInput, testing::FakeHost, NOW_MS};

fuzz_target!(|data: &[u8]| {
    let _ = tef_core::cache::decode(data);
    // Puts and claims over a bucket holding these bytes: no panic, the bound kept.
    let c = tef_core::cache::SlotCache::new("f", 4);
    let h = FakeHost::new(NOW_MS);
    let _ = h.shared_set("f/0", data, None);
    let key = [data.first().copied().unwrap_or(0); 32];
    let _ = c.get(&h, &key, NOW_MS);
    c.put(&h, &key, NOW_MS + 1_000, data, NOW_MS);
    let _ = c.claim(&h, &[1; 32], NOW_MS + 1_000, NOW_MS, 7);
    let held: usize = h.shared_values().iter().map(|v| tef_core::cache::decode(v).map_or(0, |e| e.len())).sum();
    assert!(held <= 4);
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
