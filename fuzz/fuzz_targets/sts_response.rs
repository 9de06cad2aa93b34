//! Arbitrary STS answers (first byte picks the status), through the same path a real answer
//! takes: parsing, then the issued-token checks, with a leader in flight.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tef_core::flow::{CallResult, Outcome};
use tef_core::{filter, route::RouteInput, testing::FakeHost, NOW_MS};

const STATUS: [&str; 6] = ["200", "400", "401", "503", "504", "500"];

fuzz_target!(|data: &[u8]| {
    let Some((&s, body)) = data.split_first() else { return };
    let status = STATUS[s as usize % STATUS.len()];
    let _ = tef_core::sts::parse_response(status, body);
    // A subject token the fuzz config accepts is not available without a private key, so drive
    // exchange_done on a key with nothing in flight (must be ignored) as well.
    let host = FakeHost::new(NOW_MS);
    let mut f = filter(&host);
    f.call_done(&[7u8; 32], CallResult::Response { status, body, content_type: None, cache_control: None }, &host);
    let r = RouteInput { method: "GET", path: "/x", authority: "a", route_name: None, cluster: None };
    if let Outcome::Call(c, p) = f.on_request(&r, &[], &host) {
        f.call_done(&c.key, CallResult::Response { status, body, content_type: None, cache_control: None }, &host);
        let _ = f.resume(&p, &host);
    }
});
