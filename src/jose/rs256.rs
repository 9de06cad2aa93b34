//! RS256 verification (RSASSA-PKCS1-v1_5 with SHA-256, RFC 8017 §8.2.2) with Montgomery arithmetic
//! on 32-bit limbs and per-key precomputation.
//!
//! Why not the `rsa` crate's verify: inside Envoy's V8, `num-bigint-dig` on 64-bit limbs pays for
//! emulated 64×64→128 multiplications (wasm has none), and every call recomputes what depends only
//! on the key. Here a key is prepared once when it is loaded (`-n⁻¹ mod 2³²`, `R² mod n`); a
//! verification is then `e`'s square-and-multiply in Montgomery form over u32 limbs with u64
//! products, which V8 compiles to native multiplies: a product (a squaring makes each cross
//! product once), then its Montgomery reduction, each two rows per pass over the limbs; the last
//! step leaves Montgomery form.
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

    /// `out = a·b·R⁻¹ mod n`, fully reduced (inputs below n): `multiply`, then `redc`, each two
    /// rows per pass over `t` as in `mont_sqr`. `t` is scratch of 2·limbs+1.
    fn mont_mul(&self, a: &[u32], b: &[u32], t: &mut [u32], out: &mut [u32]) {
        let k = self.n.len();
        let t = &mut t[..2 * k + 1];
        multiply(&a[..k], &b[..k], t);
        self.redc(t, out);
    }

    /// `out = a²·R⁻¹ mod n`, fully reduced (a below n): `square`, then `redc`. 1.5·k²
    /// multiplications where `mont_mul` makes 2·k² (all but one or two of a verification's steps
    /// are squarings: 16 of 18 for e = 65537), and each pass over `t` makes two rows' (V8 then
    /// loads and stores each limb half as often). `t` is scratch of 2·limbs+1.
    fn mont_sqr(&self, a: &[u32], t: &mut [u32], out: &mut [u32]) {
        let k = self.n.len();
        let t = &mut t[..2 * k + 1];
        square(&a[..k], t);
        self.redc(t, out);
    }

    /// `out = x·R⁻¹ mod n` for x < n·R in the 2·limbs+1 limbs of `t` (overwritten), fully
    /// reduced.
    // Inlined into `mont_sqr` and `mont_mul` (as `square` and `multiply`): called apart, the
    // slices' lengths are not known where the loops run, and RS256 costs 2 % more instructions
    // in Envoy (bench/callgrind.sh).
    #[inline(always)]
    fn redc(&self, t: &mut [u32], out: &mut [u32]) {
        let k = self.n.len();
        let n = &self.n[..k];
        // Two limbs at a time: adding m0·n·2^(32i) clears limb i and m1·n·2^(32(i+1)) limb i+1
        // (m1 known once row i reached limb i+1), both rows in one pass over t (row i+1 one limb
        // behind row i); `top` is the carry into limb i+k.
        let mask = 0xffff_ffffu64;
        let (mut i, mut top) = (0, 0u64);
        while i + 1 < k {
            let m0 = u64::from(t[i].wrapping_mul(self.n0inv));
            let mut c0 = (u64::from(t[i]) + m0 * u64::from(n[0])) >> 32;
            let s0 = u64::from(t[i + 1]) + m0 * u64::from(n[1]) + c0;
            c0 = s0 >> 32;
            let m1 = u64::from((s0 as u32).wrapping_mul(self.n0inv));
            let mut c1 = ((s0 & mask) + m1 * u64::from(n[0])) >> 32;
            // `add_two_rows`'s loop, written out: called here, RS256 costs 0.5 % more
            // instructions in Envoy (bench/callgrind.sh), in `square` and `multiply` nothing.
            for (tj, w) in t[i + 2..i + k].iter_mut().zip(n.windows(2).skip(1)) {
                let s0 = u64::from(*tj) + m0 * u64::from(w[1]) + c0;
                c0 = s0 >> 32;
                let s1 = (s0 & mask) + m1 * u64::from(w[0]) + c1;
                c1 = s1 >> 32;
                *tj = s1 as u32;
            }
            let s0 = u64::from(t[i + k]) + c0 + top;
            let s1 = (s0 & mask) + m1 * u64::from(n[k - 1]) + c1;
            t[i + k] = s1 as u32;
            let s = u64::from(t[i + k + 1]) + (s0 >> 32) + (s1 >> 32);
            t[i + k + 1] = s as u32;
            top = s >> 32;
            i += 2;
        }
        if i < k {
            // An odd number of limbs: the last row alone.
            let m = u64::from(t[i].wrapping_mul(self.n0inv));
            let c = add_row(&mut t[i..i + k], n, m);
            let s = u64::from(t[i + k]) + c + top;
            t[i + k] = s as u32;
            top = s >> 32;
        }
        // (x + m·n)/R < 2n: one conditional subtraction.
        Self::reduce_once(&t[k..2 * k], top != 0, n, out);
    }

    /// `out = x mod n` for `x` = `low` + `carry`·R below 2n.
    fn reduce_once(low: &[u32], carry: bool, n: &[u32], out: &mut [u32]) {
        if carry || !less_than(low, n) {
            let mut borrow = 0i64;
            for (j, o) in out[..n.len()].iter_mut().enumerate() {
                let d = i64::from(low[j]) - i64::from(n[j]) + borrow;
                *o = d as u32;
                borrow = d >> 32;
            }
        } else {
            out[..n.len()].copy_from_slice(low);
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
        let mut t = vec![0u32; 2 * k + 1];
        let mut base = vec![0u32; k];
        self.mont_mul(&s, &self.rr, &mut t, &mut base); // s·R
        let mut acc = base.clone();
        let mut tmp = vec![0u32; k];
        let top = 63 - self.e.leading_zeros();
        for bit in (0..top).rev() {
            self.mont_sqr(&acc, &mut t, &mut tmp);
            std::mem::swap(&mut acc, &mut tmp);
            if (self.e >> bit) & 1 == 1 {
                // The last step (an odd `e`, every RSA key's) multiplies by `s` itself rather than
                // `s·R`: s^(e−1)·R · s · R⁻¹ = s^e, out of Montgomery form with no step of its own.
                let by = if bit == 0 { &s } else { &base };
                self.mont_mul(&acc, by, &mut t, &mut tmp);
                std::mem::swap(&mut acc, &mut tmp);
            }
        }
        if self.e & 1 == 0 {
            // Out of Montgomery form: multiply by 1.
            let mut one = vec![0u32; k];
            one[0] = 1;
            self.mont_mul(&acc, &one, &mut t, &mut tmp);
            std::mem::swap(&mut acc, &mut tmp);
        }
        let mut out = vec![0u8; self.size];
        for (i, b) in out.iter_mut().rev().enumerate() {
            *b = (acc[i / 4] >> (8 * (i % 4))) as u8;
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

/// `t` += `a`·`y` over `t`'s limbs (as many as `a` has); the carry out.
#[inline(always)]
fn add_row(t: &mut [u32], a: &[u32], y: u64) -> u64 {
    let mut c = 0u64;
    for (tj, &aj) in t.iter_mut().zip(a) {
        let s = u64::from(*tj) + u64::from(aj) * y + c;
        *tj = s as u32;
        c = s >> 32;
    }
    c
}

/// Two rows in one pass over `t`, row 1 one limb behind row 0: limb j of `t` gets `a[j+1]`·`y0`
/// (carry `c0`) and `a[j]`·`y1` (carry `c1`), for as many limbs as `t` has (`a` one more); the
/// two carries out.
#[inline(always)]
fn add_two_rows(t: &mut [u32], a: &[u32], y0: u64, y1: u64, mut c0: u64, mut c1: u64) -> (u64, u64) {
    for (tj, w) in t.iter_mut().zip(a.windows(2)) {
        let s0 = u64::from(*tj) + u64::from(w[1]) * y0 + c0;
        c0 = s0 >> 32;
        let s1 = (s0 & 0xffff_ffff) + u64::from(w[0]) * y1 + c1;
        c1 = s1 >> 32;
        *tj = s1 as u32;
    }
    (c0, c1)
}

/// `t` = `a`·`b` (2·len limbs and one more, all written), two rows per pass over `t` (row i+1
/// one limb behind row i).
#[inline(always)]
fn multiply(a: &[u32], b: &[u32], t: &mut [u32]) {
    let k = a.len();
    t.fill(0);
    let mut i = 0;
    while i + 2 <= k {
        let (y0, y1) = (u64::from(b[i]), u64::from(b[i + 1]));
        let s0 = u64::from(t[i]) + u64::from(a[0]) * y0;
        t[i] = s0 as u32;
        // Limb c gets a[c−i]·b[i] and a[c−i−1]·b[i+1].
        let (c0, c1) = add_two_rows(&mut t[i + 1..i + k], a, y0, y1, s0 >> 32, 0);
        // Limb i+k no row wrote yet.
        let s1 = c0 + u64::from(a[k - 1]) * y1 + c1;
        t[i + k] = s1 as u32;
        t[i + k + 1] = (s1 >> 32) as u32;
        i += 2;
    }
    if i < k {
        // An odd number of limbs: the last row alone.
        t[i + k] = add_row(&mut t[i..i + k], a, u64::from(b[i])) as u32;
    }
}

/// `t` = `a`² (2·len limbs and one more, all written): each cross product a[i]·a[j], i < j,
/// once, doubled, plus the squares a[i]².
#[inline(always)]
fn square(a: &[u32], t: &mut [u32]) {
    let k = a.len();
    t.fill(0);
    // The cross products a[i]·a[j], i < j, two rows per pass over t (row i+1 one limb behind
    // row i); each pair's last carries land on limbs no row wrote yet.
    let mut i = 0;
    while i + 4 <= k {
        let (x0, x1) = (u64::from(a[i]), u64::from(a[i + 1]));
        let s0 = u64::from(t[2 * i + 1]) + x0 * u64::from(a[i + 1]);
        t[2 * i + 1] = s0 as u32;
        let s0 = u64::from(t[2 * i + 2]) + x0 * u64::from(a[i + 2]) + (s0 >> 32);
        t[2 * i + 2] = s0 as u32;
        // Limb c gets a[i]·a[c−i] and a[i+1]·a[c−i−1].
        let (c0, c1) = add_two_rows(&mut t[2 * i + 3..i + k], &a[i + 2..], x0, x1, s0 >> 32, 0);
        let s1 = c0 + x1 * u64::from(a[k - 1]) + c1;
        t[i + k] = s1 as u32;
        t[i + k + 1] = (s1 >> 32) as u32;
        i += 2;
    }
    // The last rows (at most three) one at a time.
    for i in i..k {
        t[i + k] = add_row(&mut t[2 * i + 1..i + k], &a[i + 1..], u64::from(a[i])) as u32;
    }
    // Doubled (their sum is below 2^(64k−1)), plus the squares a[i]² at limb 2i: a² < R².
    let mut hi = 0u32;
    for x in t[..2 * k].iter_mut() {
        let v = *x;
        *x = (v << 1) | hi;
        hi = v >> 31;
    }
    let mut c = 0u64;
    for (i, &ai) in a.iter().enumerate() {
        let sq = u64::from(ai) * u64::from(ai);
        let s = u64::from(t[2 * i]) + (sq & 0xffff_ffff) + c;
        t[2 * i] = s as u32;
        let s = u64::from(t[2 * i + 1]) + (sq >> 32) + (s >> 32);
        t[2 * i + 1] = s as u32;
        c = s >> 32;
    }
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

    /// An even exponent (no RSA key has one: `rsa` refuses them) still leaves Montgomery form,
    /// by its own step; and a squaring is the product of a number with itself.
    #[test]
    fn even_exponents_and_squares() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for &size in &[256usize, 259] {
            let mut nb = rng.bytes(size);
            nb[0] |= 0x80;
            nb[size - 1] |= 1;
            let n = BigUint::from_bytes_be(&nb);
            let key = rsa::RsaPublicKey::new_with_max_size(n.clone(), BigUint::from(65537u32), 8192).unwrap();
            let mut k = Rs256Key::new(&key).unwrap();
            let limbs = k.n.len();
            let mut s = rng.bytes(size);
            s[0] &= 0x7f;
            for e in [2u64, 4, 65536, 6] {
                k.e = e;
                let want = BigUint::from_bytes_be(&s).modpow(&BigUint::from(e), &n);
                assert_eq!(BigUint::from_bytes_be(&k.public_op(&s).unwrap()), want, "size {size} e {e}");
            }
            let a = to_limbs(&(&n - 2u8), limbs);
            let (mut t, mut sq, mut mul) = (vec![0u32; 2 * limbs + 1], vec![0u32; limbs], vec![0u32; limbs]);
            k.mont_sqr(&a, &mut t, &mut sq);
            k.mont_mul(&a, &a, &mut t, &mut mul);
            assert_eq!(sq, mul, "size {size}: (n−2)² as a square and as a product");
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
