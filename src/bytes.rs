//! Equality of short public byte strings (header names, an authorization scheme) on the hot
//! path. In wasm, `==` on slices calls `memcmp`, a loop over one byte at a time behind a call;
//! this reads eight at a time, in place. Secret-dependent comparisons (a token against a kept
//! one) use `local::same`, which does not stop at the first difference.

/// `a == b`.
#[inline]
pub fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    if n < 8 {
        // Four to seven bytes (an authorization scheme): the first four and the last four,
        // overlapping, instead of a loop of one byte at a time.
        let half = |s: &[u8], i: usize| s.get(i..i + 4).map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
        if n >= 4 {
            return half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4);
        }
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let word = |s: &[u8], i: usize| s.get(i..i + 8).map(|c| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
    // Whole words, then the last eight bytes (overlapping the last word where `n` is not a
    // multiple of eight).
    (0..n / 8).all(|k| word(a, 8 * k) == word(b, 8 * k)) && word(a, n - 8) == word(b, n - 8)
}

#[cfg(test)]
mod tests {
    use super::eq;

    #[test]
    fn equal_exactly_when_the_bytes_are() {
        let names: [&[u8]; 9] = [b"", b"a", b"Bearer ", b"bearer ", b"authorizatio", b"authorization", b"authorizatioN", b"x-user-sub", b"0123456789abcdef"];
        for a in names {
            for b in names {
                assert_eq!(eq(a, b), a == b, "{:?} {:?}", String::from_utf8_lossy(a), String::from_utf8_lossy(b));
            }
        }
        // A difference in every position of every length up to 40 is seen.
        for n in 0..40usize {
            let a: Vec<u8> = (0..n as u8).collect();
            assert!(eq(&a, &a.clone()));
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x20;
                assert!(!eq(&a, &b), "length {n}, byte {i}");
            }
        }
    }
}
