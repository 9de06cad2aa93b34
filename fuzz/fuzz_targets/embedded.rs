//! Arbitrary bytes as the claims a verified token carries: embedded-token selection (object by
//! audience, arrays, anything else) and the strict JWS parse of every candidate.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tef_core::config::EmbeddedSpec;
use tef_core::credential::embedded::{candidates, MAX_CANDIDATES};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let spec = EmbeddedSpec { claim: "tokens".into(), audience: "https://accounts".into() };
    let c = candidates(s, &spec);
    assert!(c.len() <= MAX_CANDIDATES);
    for t in &c {
        let _ = tef_core::jose::jws::parse(t, 8192);
    }
});
