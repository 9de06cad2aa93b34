//! The request's header map as one proxy-wasm host call returns it (`proxy_get_header_map_pairs`):
//! a little-endian `u32` count, each pair's name and value lengths (`u32` each), then each name
//! and each value followed by a NUL.
//!
//! In Envoy's V8 one call for the whole map costs about what a single-header read does (each read
//! has the host call back into the module to allocate its answer: ≈ 10 500 instructions for one
//! header, 11 800 for a whole map of eight, bench/callgrind.sh `lab_hdr` / `lab_pairs`), so the
//! filter reads the map once and picks what it needs here, into entries kept from request to
//! request (no allocation once they have grown to the requests' sizes). Knowing every header for
//! the price of one read also tells which stripped headers are there: absent ones are not removed.

/// Copies the pairs of `map` whose names are in `wanted` (every pair, for `None`) into `out`, in
/// their order, reusing its entries' allocations; returns how many it wrote (`out[..n]`).
/// Repeated names stay separate entries. A name that is not UTF-8 is skipped (no header the
/// filter reads has one). A truncated or inconsistent map ends the walk at the last whole pair.
pub fn select(map: &[u8], wanted: Option<&[String]>, out: &mut Vec<(String, Vec<u8>)>) -> usize {
    let word = |i: usize| map.get(i..i.checked_add(4)?).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let Some(count) = word(0) else { return 0 };
    // Each pair takes at least 8 bytes of lengths and 2 NULs: a count the map cannot hold is a
    // map that is not one.
    if count > map.len() / 10 {
        return 0;
    }
    // The wanted names' lengths (below 64) as bits: most headers are passed over on their length
    // alone (this runs for every header of every request).
    let lengths = wanted.map_or(u64::MAX, |w| w.iter().fold(0u64, |m, x| m | 1u64.checked_shl(x.len() as u32).unwrap_or(0)));
    let mut at = 4 + count * 8;
    let mut n = 0;
    for i in 0..count {
        let (Some(kl), Some(vl)) = (word(4 + i * 8), word(8 + i * 8)) else { break };
        let name_at = at;
        let Some(v_at) = at.checked_add(kl).and_then(|x| x.checked_add(1)) else { break };
        let Some(end) = v_at.checked_add(vl).filter(|e| *e <= map.len()) else { break };
        at = end + 1;
        if kl < 64 && lengths & (1 << kl) == 0 {
            continue;
        }
        let (Some(name), Some(value)) = (map.get(name_at..name_at + kl), map.get(v_at..end)) else { break };
        let name = match wanted {
            Some(w) => match w.iter().find(|x| crate::bytes::eq(x.as_bytes(), name)) {
                Some(x) => x.as_str(),
                None => continue,
            },
            None => match std::str::from_utf8(name) {
                Ok(s) => s,
                Err(_) => continue,
            },
        };
        match out.get_mut(n) {
            Some((k, v)) => {
                if !crate::bytes::eq(k.as_bytes(), name.as_bytes()) {
                    k.clear();
                    k.push_str(name);
                }
                v.clear();
                v.extend_from_slice(value);
            }
            None => out.push((name.to_owned(), value.to_vec())),
        }
        n += 1;
    }
    n
}

/// Overwrites and empties the values (a token among them) so nothing of a request stays in the
/// entries kept for the next one; their allocations stay.
pub fn wipe(entries: &mut [(String, Vec<u8>)]) {
    for (_, v) in entries {
        v.fill(0);
        v.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Envoy writes (proxy-wasm ABI `proxy_get_header_map_pairs`).
    pub fn serialize(pairs: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = (pairs.len() as u32).to_le_bytes().to_vec();
        for (k, v) in pairs {
            b.extend((k.len() as u32).to_le_bytes());
            b.extend((v.len() as u32).to_le_bytes());
        }
        for (k, v) in pairs {
            b.extend(k.as_bytes());
            b.push(0);
            b.extend(*v);
            b.push(0);
        }
        b
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn picks_the_wanted_headers_in_order_repeats_kept_apart() {
        let map = serialize(&[(":path", b"/a"), ("authorization", b"Bearer t"), ("x-sub", b"\xff\x00"), ("accept", b"*/*"), ("x-sub", b"")]);
        let mut out = Vec::new();
        let n = select(&map, Some(&names(&["authorization", "x-sub", ":method"])), &mut out);
        assert_eq!(&out[..n], [("authorization".to_string(), b"Bearer t".to_vec()), ("x-sub".into(), b"\xff\x00".to_vec()), ("x-sub".into(), vec![])]);
        let long = "x-".to_string() + &"l".repeat(70);
        let with_long = serialize(&[("accept", b"*/*"), (&long, b"v"), (&long[..63], b"w")]);
        let n = select(&with_long, Some(&[long.clone(), "accept".into()]), &mut out);
        assert_eq!(&out[..n], [("accept".to_string(), b"*/*".to_vec()), (long.clone(), b"v".to_vec())], "names of any length");
        let n = select(&map, None, &mut out);
        assert_eq!(n, 5);
        assert_eq!(out[0], (":path".to_string(), b"/a".to_vec()));
        assert_eq!(out[3], ("accept".to_string(), b"*/*".to_vec()));
    }

    #[test]
    fn entries_are_reused_and_wiped() {
        let mut out = Vec::new();
        select(&serialize(&[("authorization", b"Bearer first-token"), ("cookie", b"a=1")]), None, &mut out);
        let kept = out[0].1.as_ptr();
        let n = select(&serialize(&[("authorization", b"Bearer second")]), None, &mut out);
        assert_eq!(&out[..n], [("authorization".to_string(), b"Bearer second".to_vec())]);
        assert_eq!(out[0].1.as_ptr(), kept, "no allocation for a value that fits");
        // A different order renames the entry in place.
        let n = select(&serialize(&[("cookie", b"b=2"), ("authorization", b"Bearer x")]), None, &mut out);
        assert_eq!(&out[..n], [("cookie".to_string(), b"b=2".to_vec()), ("authorization".into(), b"Bearer x".to_vec())]);
        wipe(&mut out);
        assert!(out.iter().all(|(_, v)| v.is_empty() && v.capacity() > 0));
        assert_eq!(select(&serialize(&[]), None, &mut out), 0);
    }

    #[test]
    fn truncated_or_lying_maps_end_at_the_last_whole_pair() {
        let map = serialize(&[("a", b"1"), ("authorization", b"Bearer t")]);
        let mut out = Vec::new();
        for cut in 0..map.len() - 1 {
            let n = select(&map[..cut], None, &mut out);
            assert!(n <= 1, "cut {cut}: only whole pairs ({n}; the last NUL may go)");
            if n == 1 {
                assert_eq!(out[0], ("a".to_string(), b"1".to_vec()));
            }
        }
        assert_eq!(select(&map, None, &mut out), 2);
        let mut lying = map.clone();
        lying[0] = 200; // more pairs than the map holds
        assert_eq!(select(&lying, None, &mut out), 0);
        lying[0] = 1; // fewer: the lengths table is shorter than the map says, nothing lines up
        assert!(select(&lying, None, &mut out) <= 1);
        let mut huge = map;
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes()); // a value longer than the map
        assert_eq!(select(&huge, None, &mut out), 0);
        assert_eq!(select(b"", None, &mut out), 0);
        assert_eq!(select(&[0xff; 3], None, &mut out), 0);
    }

    #[test]
    fn a_name_that_is_not_utf8_is_skipped() {
        let mut map = serialize(&[("x\u{e9}", b"1"), ("authorization", b"Bearer t")]);
        let at = 4 + 16;
        map[at + 1] = 0xff; // the first name's second byte
        let mut out = Vec::new();
        let n = select(&map, None, &mut out);
        assert_eq!(&out[..n], [("authorization".to_string(), b"Bearer t".to_vec())]);
    }
}
