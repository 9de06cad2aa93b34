//! Arbitrary bytes as a remote JWKS document.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tef_core::jose::jwk::parse_jwks(data);
});
