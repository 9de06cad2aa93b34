//! Differential: the filter's own P-256 field/scalar arithmetic and RSA Montgomery exponentiation
//! against num-bigint, on fuzzer-chosen values.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tef_core::jose::es256::fuzz_arith(data);
    // The RSA reference (num-bigint's modpow) is ~1000× slower: one input in 16 goes there.
    if data.first().is_some_and(|b| b & 0xf0 == 0) {
        tef_core::jose::rs256::fuzz_public_op(data);
    }
});
