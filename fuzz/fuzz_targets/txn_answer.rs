//! A Txn-Token service's answer (`txn_token::fuzz_answer`): the token-endpoint answer parser,
//! the JWS parser and the Txn-Token claim checks on any body; nothing panics, and nothing is
//! accepted without a future `exp`, a `txn` and a `sub`. The first byte picks the status.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&s, body)) = data.split_first() else { return };
    let status = ["200", "400", "401", "503", "504"][s as usize % 5];
    tef_core::txn_token::fuzz_answer(status, body, 1_800_000_000_000);
});
