//! RS256 verification (RSASSA-PKCS1-v1_5 with SHA-256, RFC 8017 §8.2.2) with Montgomery arithmetic
//! on 32-bit limbs and per-key precomputation.
//!
//! Why not the `rsa` crate's verify: inside Envoy's V8, `num-bigint-dig` on 64-bit limbs pays for
//! emulated 64×64→128 multiplications (wasm has none), and every call recomputes what depends only
//! on the key. Here a key is prepared once when it is loaded (`-n⁻¹ mod 2³²`, `R² mod n`); a
//! verification is then `e`'s square-and-multiply in Montgomery form, each step one fused
//! multiply-reduce over u32 limbs with u64 products, which V8 compiles to native multiplies.
//! Everything here is public (key, signature, message): no constant-time requirement.
//! The `rsa` crate still parses and checks the key (size, exponent); this module only verifies.

use rsa::BigUint;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};

/// DER of DigestInfo for SHA-256 up to the hash (RFC 8017 §9.2, note 1).
const SHA256_PREFIX: [u8; 19] = [0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];

/// A public key prepared for fast verification.
pub struct Rs256Key {
    /// Modulus, little-endian 32-bit limbs.
    n: Vec<u32>,
    /// `-n⁻¹ mod 2³²`.
    n0inv: u32,
    /// `R² mod n`, R = 2^(32·limbs): converts into Montgomery form.
    rr: Vec<u32>,
    e: u64,
    /// Modulus length in bytes (the signature's length).
    size: usize,
}

fn to_limbs(x: &BigUint, limbs: usize) -> Vec<u32> {
    let mut v = vec![0u32; limbs];
    for (i, b) in x.to_bytes_le().into_iter().enumerate().take(4 * limbs) {
        v[i / 4] |= u32::from(b) << (8 * (i % 4));
    }
    v
}

impl Rs256Key {
    /// Prepares `key`. `None` for keys outside what verification supports (even modulus, an
    /// exponent over 64 bits): such keys are refused at load.
    pub fn new(key: &rsa::RsaPublicKey) -> Option<Rs256Key> {
        let n = key.n();
        let e_bytes = key.e().to_bytes_le();
        if e_bytes.len() > 8 {
            return None;
        }
        let e = e_bytes.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        if e < 3 || n.bits() < 2 {
            return None;
        }
        let size = key.size();
        let limbs = size.div_ceil(4);
        let nl = to_limbs(n, limbs);
        let n0 = nl[0];
        if n0 & 1 == 0 {
            return None;
        }
        // Newton iteration for n0⁻¹ mod 2³²: each step doubles the correct low bits (3 → 96).
        let mut inv: u32 = n0;
        for _ in 0..4 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inv)));
        }
        let rr = (BigUint::from(1u8) << (64 * limbs)) % n;
        Some(Rs256Key { n: nl, n0inv: inv.wrapping_neg(), rr: to_limbs(&rr, limbs), e, size })
    }

    /// Modulus length in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// `out = a·b·R⁻¹ mod n`, fully reduced (inputs below n). `t` is scratch of limbs+2.
    fn mont_mul(&self, a: &[u32], b: &[u32], t: &mut [u32], out: &mut [u32]) {
        let k = self.n.len();
        let n = &self.n[..k];
        let a = &a[..k];
        let t = &mut t[..k + 2];
        t.fill(0);
        for &bi in &b[..k] {
            let bi = u64::from(bi);
            // m makes t + a·bi + m·n divisible by 2³².
            let m = u64::from((t[0].wrapping_add((a[0] as u64 * bi) as u32)).wrapping_mul(self.n0inv));
            let s = u64::from(t[0]) + u64::from(a[0]) * bi;
            let mut c1 = s >> 32;
            let s2 = (s & 0xffff_ffff) + m * u64::from(n[0]);
            let mut c2 = s2 >> 32;
            for j in 1..k {
                let s = u64::from(t[j]) + u64::from(a[j]) * bi + c1;
                c1 = s >> 32;
                let s2 = (s & 0xffff_ffff) + m * u64::from(n[j]) + c2;
                c2 = s2 >> 32;
                t[j - 1] = s2 as u32;
            }
            let s = u64::from(t[k]) + c1 + c2;
            t[k - 1] = s as u32;
            t[k] = t[k + 1] + (s >> 32) as u32;
            t[k + 1] = 0;
        }
        // t < 2n: one conditional subtraction.
        let ge = t[k] != 0 || !less_than(&t[..k], n);
        if ge {
            let mut borrow = 0i64;
            for j in 0..k {
                let d = i64::from(t[j]) - i64::from(n[j]) + borrow;
                out[j] = d as u32;
                borrow = d >> 32;
            }
        } else {
            out[..k].copy_from_slice(&t[..k]);
        }
    }

    /// `sig^e mod n` as big-endian bytes of the modulus length; `None` if `sig ≥ n`.
    fn public_op(&self, sig: &[u8]) -> Option<Vec<u8>> {
        let k = self.n.len();
        let mut s = vec![0u32; k];
        for (i, chunk) in sig.rchunks(4).enumerate() {
            let mut w = 0u32;
            for &b in chunk {
                w = (w << 8) | u32::from(b);
            }
            s[i] = w;
        }
        if !less_than(&s, &self.n) {
            return None;
        }
        let mut t = vec![0u32; k + 2];
        let mut base = vec![0u32; k];
        self.mont_mul(&s, &self.rr, &mut t, &mut base); // s·R
        let mut acc = base.clone();
        let mut tmp = vec![0u32; k];
        let top = 63 - self.e.leading_zeros();
        for bit in (0..top).rev() {
            self.mont_mul(&acc, &acc, &mut t, &mut tmp);
            std::mem::swap(&mut acc, &mut tmp);
            if (self.e >> bit) & 1 == 1 {
                self.mont_mul(&acc, &base, &mut t, &mut tmp);
                std::mem::swap(&mut acc, &mut tmp);
            }
        }
        // Out of Montgomery form: multiply by 1.
        let mut one = vec![0u32; k];
        one[0] = 1;
        self.mont_mul(&acc, &one, &mut t, &mut tmp);
        let mut out = vec![0u8; self.size];
        for (i, b) in out.iter_mut().rev().enumerate() {
            *b = (tmp[i / 4] >> (8 * (i % 4))) as u8;
        }
        Some(out)
    }

    /// RSASSA-PKCS1-v1_5 verification with SHA-256: the recovered encoding must be exactly
    /// `00 01 FF…FF 00 DigestInfo(SHA-256(msg))` (RFC 8017 §8.2.2 step 3, compared as a whole).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        if sig.len() != self.size {
            return false;
        }
        let Some(em) = self.public_op(sig) else {
            return false;
        };
        let t_len = SHA256_PREFIX.len() + 32;
        if self.size < t_len + 11 {
            return false;
        }
        let ps_end = self.size - t_len - 1;
        em[0] == 0
            && em[1] == 1
            && em[2..ps_end].iter().all(|&b| b == 0xff)
            && em[ps_end] == 0
            && em[ps_end + 1..ps_end + 1 + SHA256_PREFIX.len()] == SHA256_PREFIX
            && em[self.size - 32..] == Sha256::digest(msg)[..]
    }
}

/// `a < b` for equal-length little-endian limbs.
fn less_than(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic bytes without a dependency.
    struct Rng(u64);
    impl Rng {
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n)
                .map(|_| {
                    self.0 ^= self.0 >> 12;
                    self.0 ^= self.0 << 25;
                    self.0 ^= self.0 >> 27;
                    (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
                })
                .collect()
        }
    }

    /// The Montgomery exponentiation agrees with num-bigint's modpow for odd moduli of every limb
    /// alignment (bytes ≡ 0..3 mod 4), sizes up to 8192 bits, small and large exponents, and the
    /// edge inputs 0, 1, n−1; inputs ≥ n are refused.
    #[test]
    fn public_op_matches_modpow() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for &size in &[256usize, 257, 258, 259, 260, 384, 512, 1024] {
            for &e in &[3u64, 65537, (1 << 33) - 1, 0x1_0000_0001] {
                let mut nb = rng.bytes(size);
                nb[0] |= 0x80;
                nb[size - 1] |= 1;
                let n = BigUint::from_bytes_be(&nb);
                let key = rsa::RsaPublicKey::new_with_max_size(n.clone(), BigUint::from(e), 8192).unwrap();
                let k = Rs256Key::new(&key).unwrap();
                assert_eq!(k.size(), size);
                let mut inputs = vec![vec![0u8; size], BigUint::from(1u8).to_bytes_be(), (&n - 1u8).to_bytes_be()];
                for _ in 0..3 {
                    let mut s = rng.bytes(size);
                    s[0] &= 0x7f;
                    inputs.push(s);
                }
                for s in inputs {
                    let mut padded = vec![0u8; size - s.len()];
                    padded.extend_from_slice(&s);
                    let want = BigUint::from_bytes_be(&padded).modpow(&BigUint::from(e), &n);
                    let got = k.public_op(&padded).unwrap();
                    assert_eq!(BigUint::from_bytes_be(&got), want, "size {size} e {e}");
                }
                assert!(k.public_op(&nb).is_none(), "s = n must be refused");
                assert!(k.public_op(&vec![0xff; size]).is_none(), "s > n must be refused");
            }
        }
    }
}

/// For the `arith` fuzz target: the Montgomery exponentiation on a fuzzer-chosen odd modulus,
/// exponent and input against num-bigint's modpow.
#[cfg(fuzzing)]
pub fn fuzz_public_op(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let size = 256 + usize::from(data[0] % 8);
    let e = u64::from(u16::from_le_bytes([data[1], data[2]])) | 3;
    let body: Vec<u8> = data[3..].iter().copied().cycle().take(2 * size).collect();
    if body.is_empty() {
        return;
    }
    let mut nb = body[..size].to_vec();
    nb[0] |= 0x80;
    nb[size - 1] |= 1;
    let n = BigUint::from_bytes_be(&nb);
    let Ok(key) = rsa::RsaPublicKey::new_with_max_size(n.clone(), BigUint::from(e), 8192) else {
        return;
    };
    let Some(k) = Rs256Key::new(&key) else {
        return;
    };
    let s = &body[size..];
    let sv = BigUint::from_bytes_be(s);
    match k.public_op(s) {
        Some(got) => assert_eq!(BigUint::from_bytes_be(&got), sv.modpow(&BigUint::from(e), &n)),
        None => assert!(sv >= n),
    }
}
