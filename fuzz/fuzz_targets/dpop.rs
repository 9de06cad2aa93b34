//! DPoP proofs (`dpop::check`) against a fixed request: no input panics, both key paths decide
//! alike, an accepted proof is within its window; and the URL normalisation on any input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tef_core::dpop::fuzz_proof(data);
});
