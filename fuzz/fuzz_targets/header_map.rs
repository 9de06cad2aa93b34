//! The request's header map as the host serializes it (`header_map::select`), from arbitrary
//! bytes: against a plain reference reading of the same layout, for every header and for a
//! wanted few, into entries reused from the call before (as the filter's per-VM buffer is).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tef_core::header_map;

/// The whole pairs, in order, as the ABI lays them out (a count, the lengths, NUL-ended data).
fn reference(map: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let word = |i: usize| -> Option<usize> { Some(u32::from_le_bytes(map.get(i..i + 4)?.try_into().ok()?) as usize) };
    let Some(count) = word(0) else { return vec![] };
    if count > map.len() / 10 {
        return vec![];
    }
    let mut at = 4 + count * 8;
    let mut out = vec![];
    for i in 0..count {
        let (Some(k), Some(v)) = (word(4 + i * 8), word(8 + i * 8)) else { break };
        let (Some(name), Some(value)) = (map.get(at..at + k), map.get(at + k + 1..at + k + 1 + v)) else { break };
        out.push((name.to_vec(), value.to_vec()));
        at += k + v + 2;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let wanted: Vec<String> = ["authorization", "x-user-sub", ":path", "a", ""].iter().map(|s| s.to_string()).collect();
    let all = reference(data);
    let mut out = vec![("stale".to_string(), b"left from before".to_vec())];
    for pick in [None, Some(&wanted[..])] {
        let n = header_map::select(data, pick, &mut out);
        let expected: Vec<(Vec<u8>, Vec<u8>)> = all
            .iter()
            .filter(|(k, _)| std::str::from_utf8(k).is_ok_and(|k| pick.is_none_or(|w| w.iter().any(|x| x == k))))
            .cloned()
            .collect();
        let got: Vec<(Vec<u8>, Vec<u8>)> = out[..n].iter().map(|(k, v)| (k.as_bytes().to_vec(), v.clone())).collect();
        assert_eq!(got, expected);
        header_map::wipe(&mut out);
        assert!(out.iter().all(|(_, v)| v.is_empty()));
    }
});
