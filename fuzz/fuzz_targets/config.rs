//! Arbitrary bytes as the plugin configuration.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tef_core::config::parse(data);
});
