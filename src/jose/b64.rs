//! Strict base64url (RFC 4648 §5, RFC 7515 §2): no padding, no `+`/`/`, no whitespace,
//! and the unused trailing bits of the last character must be zero (one encoding per value).

fn val(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some((c - b'A') as u32),
        b'a'..=b'z' => Some((c - b'a') as u32 + 26),
        b'0'..=b'9' => Some((c - b'0') as u32 + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

/// Decodes strict unpadded base64url. `None` for any deviation.
pub fn decode(input: &[u8]) -> Option<Vec<u8>> {
    if input.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut chunks = input.chunks_exact(4);
    for c in &mut chunks {
        let n = (val(c[0])? << 18) | (val(c[1])? << 12) | (val(c[2])? << 6) | val(c[3])?;
        out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    let rest = chunks.remainder();
    match rest.len() {
        0 => {}
        2 => {
            let n = (val(rest[0])? << 18) | (val(rest[1])? << 12);
            if n & 0xffff != 0 {
                return None;
            }
            out.push((n >> 16) as u8);
        }
        3 => {
            let n = (val(rest[0])? << 18) | (val(rest[1])? << 12) | (val(rest[2])? << 6);
            if n & 0xff != 0 {
                return None;
            }
            out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8]);
        }
        _ => return None,
    }
    Some(out)
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Encodes unpadded base64url.
pub fn encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for c in input.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        let chars = c.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let enc = encode(&data);
            assert!(!enc.contains('='));
            assert_eq!(decode(enc.as_bytes()), Some(data));
        }
    }

    #[test]
    fn rfc4648_vectors() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, enc) in cases {
            assert_eq!(encode(plain.as_bytes()), *enc);
            assert_eq!(decode(enc.as_bytes()).as_deref(), Some(plain.as_bytes()));
        }
    }

    #[test]
    fn rejects_non_strict_input() {
        for bad in [
            "Zg==", "Zm8=", "Zg=", // padding
            "+/8", "ab+c", "ab/c", // standard alphabet
            "Zm 9v", "Zm9v\n", " Zm9v", // whitespace
            "Z",    // impossible length
            "Zh",   // non-zero trailing bits (Zg is canonical)
            "Zm9",  // non-zero trailing bits (Zm8 is canonical)
            "Zm9v.", "é",
        ] {
            assert_eq!(decode(bad.as_bytes()), None, "{bad:?} must be rejected");
        }
    }
}
