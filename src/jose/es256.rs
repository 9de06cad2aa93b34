//! ES256 verification (ECDSA over P-256 with SHA-256, FIPS 186-5 §6.4.2) for public data, with
//! per-key precomputation.
//!
//! Why not the `p256` crate's verify: inside Envoy's V8 its 64-bit-limb field arithmetic pays for
//! emulated 64×64→128 multiplications, and every verification does 256 doublings. Here field
//! elements are eight u32 limbs (u64 products, which V8 compiles to native multiplies) reduced
//! with the NIST fast reduction for p-256 (FIPS 186-5 / SP 800-186, the 32-bit word form), and
//! each key — the generator once per VM, a JWK's point when it is loaded — gets a comb table of
//! `j·16^i·P` (i < 64, j < 16) in affine form: `u₁G + u₂Q` is then 128 mixed additions and no
//! doublings. The check `x(R) ≡ r (mod n)` is done in Jacobian coordinates (no inversion), and
//! `s⁻¹ mod n` by binary extended Euclid. Nothing here is secret, so nothing is constant-time.
//! Exceptional cases of the addition law (P = Q, P = −Q, the point at infinity) are handled
//! explicitly; every Wycheproof P-256 vector is decided correctly (src/tests/vectors.rs).

use sha2::{Digest, Sha256};
use std::sync::OnceLock;

type Fe = [u32; 8];

const P: Fe = [0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0, 0, 0, 1, 0xffff_ffff];
const N: Fe = [0xfc63_2551, 0xf3b9_cac2, 0xa717_9e84, 0xbce6_faad, 0xffff_ffff, 0xffff_ffff, 0, 0xffff_ffff];
const B: Fe = [0x27d2_604b, 0x3bce_3c3e, 0xcc53_b0f6, 0x651d_06b0, 0x7698_86bc, 0xb3eb_bd55, 0xaa3a_93e7, 0x5ac6_35d8];
const GX: Fe = [0xd898_c296, 0xf4a1_3945, 0x2deb_33a0, 0x7703_7d81, 0x63a4_40f2, 0xf8bc_e6e5, 0xe12c_4247, 0x6b17_d1f2];
const GY: Fe = [0x37bf_51f5, 0xcbb6_4068, 0x6b31_5ece, 0x2bce_3357, 0x7c0f_9e16, 0x8ee7_eb4a, 0xfe1a_7f9b, 0x4fe3_42e2];
const ZERO: Fe = [0; 8];
const ONE: Fe = [1, 0, 0, 0, 0, 0, 0, 0];

fn from_be(b: &[u8]) -> Fe {
    let mut r = ZERO;
    for (i, chunk) in b.rchunks(4).take(8).enumerate() {
        r[i] = chunk.iter().fold(0u32, |acc, &x| (acc << 8) | u32::from(x));
    }
    r
}

fn lt(a: &Fe, b: &Fe) -> bool {
    for i in (0..8).rev() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
    }
    false
}

fn is_zero(a: &Fe) -> bool {
    a.iter().all(|&x| x == 0)
}

/// `a + b` as 256 bits and the carry out.
fn add_raw(a: &Fe, b: &Fe) -> (Fe, u32) {
    let mut r = ZERO;
    let mut c = 0u64;
    for i in 0..8 {
        let s = u64::from(a[i]) + u64::from(b[i]) + c;
        r[i] = s as u32;
        c = s >> 32;
    }
    (r, c as u32)
}

/// `a − b` as 256 bits and whether it borrowed.
fn sub_raw(a: &Fe, b: &Fe) -> (Fe, bool) {
    let mut r = ZERO;
    let mut borrow = 0i64;
    for i in 0..8 {
        let d = i64::from(a[i]) - i64::from(b[i]) + borrow;
        r[i] = d as u32;
        borrow = d >> 32;
    }
    (r, borrow != 0)
}

// ---- arithmetic modulo p (all values fully reduced) ----

fn fe_add(a: &Fe, b: &Fe) -> Fe {
    let (r, c) = add_raw(a, b);
    if c != 0 || !lt(&r, &P) {
        sub_raw(&r, &P).0
    } else {
        r
    }
}

fn fe_sub(a: &Fe, b: &Fe) -> Fe {
    let (r, borrow) = sub_raw(a, b);
    if borrow {
        add_raw(&r, &P).0
    } else {
        r
    }
}

/// NIST fast reduction of a 512-bit product (16 words) modulo p-256:
/// `s1 + 2s2 + 2s3 + s4 + s5 − s6 − s7 − s8 − s9`, then the carry folded with
/// `2²⁵⁶ ≡ 2²²⁴ − 2¹⁹² − 2⁹⁶ + 1`.
fn reduce(c: &[u64; 16]) -> Fe {
    let c: [i64; 16] = std::array::from_fn(|i| c[i] as i64);
    let mut w: [i64; 8] = [
        c[0] + c[8] + c[9] - c[11] - c[12] - c[13] - c[14],
        c[1] + c[9] + c[10] - c[12] - c[13] - c[14] - c[15],
        c[2] + c[10] + c[11] - c[13] - c[14] - c[15],
        c[3] + 2 * c[11] + 2 * c[12] + c[13] - c[15] - c[8] - c[9],
        c[4] + 2 * c[12] + 2 * c[13] + c[14] - c[9] - c[10],
        c[5] + 2 * c[13] + 2 * c[14] + c[15] - c[10] - c[11],
        c[6] + 3 * c[14] + 2 * c[15] + c[13] - c[8] - c[9],
        c[7] + 3 * c[15] + c[8] - c[10] - c[11] - c[12] - c[13],
    ];
    loop {
        let mut carry = 0i64;
        for x in w.iter_mut() {
            *x += carry;
            carry = *x >> 32;
            *x &= 0xffff_ffff;
        }
        if carry == 0 {
            break;
        }
        w[0] += carry;
        w[3] -= carry;
        w[6] -= carry;
        w[7] += carry;
    }
    let mut r: Fe = std::array::from_fn(|i| w[i] as u32);
    while !lt(&r, &P) {
        r = sub_raw(&r, &P).0;
    }
    r
}

fn fe_mul(a: &Fe, b: &Fe) -> Fe {
    let mut c = [0u64; 16];
    for i in 0..8 {
        let ai = u64::from(a[i]);
        let mut carry = 0u64;
        for j in 0..8 {
            let t = c[i + j] + ai * u64::from(b[j]) + carry;
            c[i + j] = t & 0xffff_ffff;
            carry = t >> 32;
        }
        c[i + 8] = carry;
    }
    reduce(&c)
}

fn fe_sqr(a: &Fe) -> Fe {
    // Cross products once, doubled, plus the squares.
    let mut c = [0u64; 16];
    for i in 0..8 {
        let ai = u64::from(a[i]);
        let mut carry = 0u64;
        for j in i + 1..8 {
            let t = c[i + j] + ai * u64::from(a[j]) + carry;
            c[i + j] = t & 0xffff_ffff;
            carry = t >> 32;
        }
        c[i + 8] = carry;
    }
    let mut carry = 0u64;
    for i in 0..8 {
        let sq = u64::from(a[i]) * u64::from(a[i]);
        let lo = (c[2 * i] << 1) + (sq & 0xffff_ffff) + carry;
        let hi = (c[2 * i + 1] << 1) + (sq >> 32) + (lo >> 32);
        c[2 * i] = lo & 0xffff_ffff;
        c[2 * i + 1] = hi & 0xffff_ffff;
        carry = hi >> 32;
    }
    reduce(&c)
}

/// `a⁻¹ = a^(p−2)` (a ≠ 0). Only used when tables are built.
fn fe_inv(a: &Fe) -> Fe {
    let e = sub_raw(&P, &[2, 0, 0, 0, 0, 0, 0, 0]).0;
    let mut r = ONE;
    for i in (0..256).rev() {
        r = fe_sqr(&r);
        if (e[i / 32] >> (i % 32)) & 1 == 1 {
            r = fe_mul(&r, a);
        }
    }
    r
}

// ---- points ----

#[derive(Clone, Copy)]
struct Jac {
    x: Fe,
    y: Fe,
    /// Zero for the point at infinity.
    z: Fe,
}

#[derive(Clone, Copy)]
struct Aff {
    x: Fe,
    y: Fe,
}

const INFINITY: Jac = Jac { x: ONE, y: ONE, z: ZERO };

/// dbl-2001-b (a = −3). No point of odd order has y = 0, so only infinity is special (and maps to itself).
fn double(p: &Jac) -> Jac {
    if is_zero(&p.z) {
        return *p;
    }
    let delta = fe_sqr(&p.z);
    let gamma = fe_sqr(&p.y);
    let beta = fe_mul(&p.x, &gamma);
    let t = fe_mul(&fe_sub(&p.x, &delta), &fe_add(&p.x, &delta));
    let alpha = fe_add(&fe_add(&t, &t), &t);
    let beta4 = fe_add(&fe_add(&beta, &beta), &fe_add(&beta, &beta));
    let beta8 = fe_add(&beta4, &beta4);
    let x3 = fe_sub(&fe_sqr(&alpha), &beta8);
    let z3 = fe_sub(&fe_sub(&fe_sqr(&fe_add(&p.y, &p.z)), &gamma), &delta);
    let g2 = fe_sqr(&gamma);
    let g8 = {
        let g2x2 = fe_add(&g2, &g2);
        let g2x4 = fe_add(&g2x2, &g2x2);
        fe_add(&g2x4, &g2x4)
    };
    let y3 = fe_sub(&fe_mul(&alpha, &fe_sub(&beta4, &x3)), &g8);
    Jac { x: x3, y: y3, z: z3 }
}

/// madd-2007-bl: Jacobian + affine, with the exceptional cases (P = Q, P = −Q, P = ∞).
fn add_mixed(p: &Jac, q: &Aff) -> Jac {
    if is_zero(&p.z) {
        return Jac { x: q.x, y: q.y, z: ONE };
    }
    let z1z1 = fe_sqr(&p.z);
    let u2 = fe_mul(&q.x, &z1z1);
    let s2 = fe_mul(&q.y, &fe_mul(&p.z, &z1z1));
    let h = fe_sub(&u2, &p.x);
    let r_half = fe_sub(&s2, &p.y);
    if is_zero(&h) {
        return if is_zero(&r_half) { double(p) } else { INFINITY };
    }
    let hh = fe_sqr(&h);
    let i = fe_add(&fe_add(&hh, &hh), &fe_add(&hh, &hh));
    let j = fe_mul(&h, &i);
    let r = fe_add(&r_half, &r_half);
    let v = fe_mul(&p.x, &i);
    let x3 = fe_sub(&fe_sub(&fe_sqr(&r), &j), &fe_add(&v, &v));
    let yj = fe_mul(&p.y, &j);
    let y3 = fe_sub(&fe_mul(&r, &fe_sub(&v, &x3)), &fe_add(&yj, &yj));
    let z3 = fe_sub(&fe_sub(&fe_sqr(&fe_add(&p.z, &h)), &z1z1), &hh);
    Jac { x: x3, y: y3, z: z3 }
}

/// `y² = x³ − 3x + b` with both coordinates below p.
fn on_curve(x: &Fe, y: &Fe) -> bool {
    if !lt(x, &P) || !lt(y, &P) {
        return false;
    }
    let x3 = fe_mul(&fe_sqr(x), x);
    let three_x = fe_add(&fe_add(x, x), x);
    fe_sqr(y) == fe_add(&fe_sub(&x3, &three_x), &B)
}

/// Comb table: entry `[i][j−1]` is `j·16^i·P` in affine form, for i < 64 and 1 ≤ j ≤ 15.
struct Table(Vec<[Aff; 15]>);

impl Table {
    fn new(p: Aff) -> Table {
        // 16^i·P for every row (4 doublings each), made affine together, then each row's
        // multiples by mixed additions, made affine together: two inversions in all.
        let mut bases = Vec::with_capacity(64);
        let mut b = Jac { x: p.x, y: p.y, z: ONE };
        for _ in 0..64 {
            bases.push(b);
            for _ in 0..4 {
                b = double(&b);
            }
        }
        let bases = batch_affine(&bases);
        let mut jac = Vec::with_capacity(64 * 15);
        for base in &bases {
            let mut q = Jac { x: base.x, y: base.y, z: ONE };
            jac.push(q);
            for _ in 1..15 {
                q = add_mixed(&q, base);
                jac.push(q);
            }
        }
        let aff = batch_affine(&jac);
        Table(aff.chunks(15).map(|c| std::array::from_fn(|j| c[j])).collect())
    }

    /// Adds `u·P` into `acc`, one 4-bit digit of `u` per row.
    fn add_multiple(&self, acc: &mut Jac, u: &Fe) {
        for (i, row) in self.0.iter().enumerate() {
            let digit = (u[i / 8] >> (4 * (i % 8))) & 0xf;
            if digit != 0 {
                *acc = add_mixed(acc, &row[digit as usize - 1]);
            }
        }
    }
}

/// Affine forms of points none of which is infinity (Montgomery's trick: one inversion). No table
/// entry is infinity: j·16^i < 2²⁵⁶ is never a multiple of the prime order n.
fn batch_affine(points: &[Jac]) -> Vec<Aff> {
    let mut prefix = Vec::with_capacity(points.len());
    let mut acc = ONE;
    for p in points {
        prefix.push(acc);
        acc = fe_mul(&acc, &p.z);
    }
    let mut inv = fe_inv(&acc);
    let mut out = vec![Aff { x: ZERO, y: ZERO }; points.len()];
    for k in (0..points.len()).rev() {
        let zinv = fe_mul(&inv, &prefix[k]);
        inv = fe_mul(&inv, &points[k].z);
        let z2 = fe_sqr(&zinv);
        out[k] = Aff { x: fe_mul(&points[k].x, &z2), y: fe_mul(&points[k].y, &fe_mul(&z2, &zinv)) };
    }
    out
}

fn generator_table() -> &'static Table {
    static G: OnceLock<Table> = OnceLock::new();
    G.get_or_init(|| Table::new(Aff { x: GX, y: GY }))
}

// ---- arithmetic modulo n (scalars) ----

/// `a·b mod n` by schoolbook product and Montgomery reduction (two of them, with R² mod n, to
/// come back to the normal form).
fn sc_mul(a: &Fe, b: &Fe) -> Fe {
    const R2: Fe = [0xbe79_eea2, 0x8324_4c95, 0x49bd_6fa6, 0x4699_799c, 0x2b6b_ec59, 0x2845_b239, 0xf3d9_5620, 0x66e1_2d94];
    mont_n(&mont_n(a, b), &R2)
}

/// Montgomery multiplication modulo n: `a·b·2⁻²⁵⁶ mod n`.
fn mont_n(a: &Fe, b: &Fe) -> Fe {
    const N0INV: u32 = 0xee00_bc4f; // −n⁻¹ mod 2³²
    let mut t = [0u64; 10];
    for &bi in b.iter() {
        let bi = u64::from(bi);
        let mut c = 0u64;
        for j in 0..8 {
            let s = t[j] + u64::from(a[j]) * bi + c;
            t[j] = s & 0xffff_ffff;
            c = s >> 32;
        }
        let s = t[8] + c;
        t[8] = s & 0xffff_ffff;
        t[9] = s >> 32;
        let m = u64::from((t[0] as u32).wrapping_mul(N0INV));
        let s = t[0] + m * u64::from(N[0]);
        let mut c = s >> 32;
        for j in 1..8 {
            let s = t[j] + m * u64::from(N[j]) + c;
            t[j - 1] = s & 0xffff_ffff;
            c = s >> 32;
        }
        let s = t[8] + c;
        t[7] = s & 0xffff_ffff;
        t[8] = t[9] + (s >> 32);
        t[9] = 0;
    }
    let r: Fe = std::array::from_fn(|i| t[i] as u32);
    if t[8] != 0 || !lt(&r, &N) {
        sub_raw(&r, &N).0
    } else {
        r
    }
}

/// `(x + n·odd) / 2` keeping the 257th bit: halving modulo n.
fn half_mod_n(x: &Fe) -> Fe {
    let (y, carry) = if x[0] & 1 == 1 { add_raw(x, &N) } else { (*x, 0) };
    let mut r = ZERO;
    for i in 0..8 {
        let hi = if i == 7 { carry } else { y[i + 1] };
        r[i] = (y[i] >> 1) | (hi << 31);
    }
    r
}

fn shr1(x: &Fe) -> Fe {
    let mut r = ZERO;
    for i in 0..8 {
        let hi = if i == 7 { 0 } else { x[i + 1] };
        r[i] = (x[i] >> 1) | (hi << 31);
    }
    r
}

fn sub_mod_n(a: &Fe, b: &Fe) -> Fe {
    let (r, borrow) = sub_raw(a, b);
    if borrow {
        add_raw(&r, &N).0
    } else {
        r
    }
}

/// `a⁻¹ mod n` for 0 < a < n, by binary extended Euclid (variable time: a is public).
fn sc_inv(a: &Fe) -> Fe {
    let (mut u, mut v) = (*a, N);
    let (mut x1, mut x2) = (ONE, ZERO);
    while u != ONE && v != ONE {
        while u[0] & 1 == 0 {
            u = shr1(&u);
            x1 = half_mod_n(&x1);
        }
        while v[0] & 1 == 0 {
            v = shr1(&v);
            x2 = half_mod_n(&x2);
        }
        if lt(&u, &v) {
            v = sub_raw(&v, &u).0;
            x2 = sub_mod_n(&x2, &x1);
        } else {
            u = sub_raw(&u, &v).0;
            x1 = sub_mod_n(&x1, &x2);
        }
    }
    if u == ONE {
        x1
    } else {
        x2
    }
}

/// A P-256 public key, checked on the curve at load; its comb table (60 KiB) is built at its
/// first verification, so keys a JWKS lists but no token uses cost neither time nor memory.
pub struct Es256Key {
    point: Aff,
    table: std::cell::OnceCell<Table>,
}

impl Es256Key {
    /// `x`, `y`: 32-byte big-endian affine coordinates. `None` unless the point is on the curve.
    pub fn new(x: &[u8], y: &[u8]) -> Option<Es256Key> {
        if x.len() != 32 || y.len() != 32 {
            return None;
        }
        let (x, y) = (from_be(x), from_be(y));
        if !on_curve(&x, &y) {
            return None;
        }
        // The generator's table is built once per VM, here rather than on a request's path.
        generator_table();
        Some(Es256Key { point: Aff { x, y }, table: std::cell::OnceCell::new() })
    }

    /// Verifies a JWS ES256 signature: exactly 64 bytes `r ‖ s` (RFC 7518 §3.4), with the key's
    /// comb table (built at the first call): for keys that verify many signatures.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.verify_by(msg, sig, |acc, u2| self.table.get_or_init(|| Table::new(self.point)).add_multiple(acc, u2))
    }

    /// The same decision without the key's table: `u2·Q` by a 4-bit fixed window (15 multiples,
    /// 256 doublings). For a key seen once (a DPoP proof's), building the 60 KiB table costs
    /// several verifications' worth; this costs about two table-based ones.
    pub fn verify_untabled(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.verify_by(msg, sig, |acc, u2| {
            let q = Jac { x: self.point.x, y: self.point.y, z: ONE };
            let mut multiples = Vec::with_capacity(15);
            let mut m = q;
            multiples.push(m);
            for _ in 1..15 {
                m = add_mixed(&m, &self.point);
                multiples.push(m);
            }
            let small = batch_affine(&multiples);
            let mut r = INFINITY;
            for i in (0..64).rev() {
                for _ in 0..4 {
                    r = double(&r);
                }
                let digit = (u2[i / 8] >> (4 * (i % 8))) & 0xf;
                if digit != 0 {
                    r = add_mixed(&r, &small[digit as usize - 1]);
                }
            }
            // acc is still infinity here (the generator's part is added after).
            *acc = r;
        })
    }

    fn verify_by(&self, msg: &[u8], sig: &[u8], key_part: impl FnOnce(&mut Jac, &Fe)) -> bool {
        if sig.len() != 64 {
            return false;
        }
        let (r, s) = (from_be(&sig[..32]), from_be(&sig[32..]));
        if is_zero(&r) || is_zero(&s) || !lt(&r, &N) || !lt(&s, &N) {
            return false;
        }
        let mut e = from_be(&Sha256::digest(msg));
        if !lt(&e, &N) {
            e = sub_raw(&e, &N).0;
        }
        let w = sc_inv(&s);
        let (u1, u2) = (sc_mul(&e, &w), sc_mul(&r, &w));
        let mut acc = INFINITY;
        key_part(&mut acc, &u2);
        generator_table().add_multiple(&mut acc, &u1);
        if is_zero(&acc.z) {
            return false;
        }
        // x(R) = X/Z²; x(R) mod n == r  ⇔  X == r·Z², or X == (r+n)·Z² when r+n < p.
        let z2 = fe_sqr(&acc.z);
        if fe_mul(&r, &z2) == acc.x {
            return true;
        }
        let (rn, carry) = add_raw(&r, &N);
        carry == 0 && lt(&rn, &P) && fe_mul(&rn, &z2) == acc.x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use rsa::BigUint;

    fn big(a: &Fe) -> BigUint {
        BigUint::from_slice(a)
    }
    fn fe(x: &BigUint) -> Fe {
        let mut b = x.to_bytes_be();
        while b.len() < 32 {
            b.insert(0, 0);
        }
        from_be(&b)
    }

    struct Rng(u64);
    impl Rng {
        fn fe(&mut self) -> Fe {
            std::array::from_fn(|_| {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
            })
        }
    }

    /// Field and scalar arithmetic agree with num-bigint on random values and on the edges
    /// (0, 1, p−1, values with all-ones or sparse words that stress the reduction's carries).
    #[test]
    fn arithmetic_matches_bigint() {
        let p = big(&P);
        let n = big(&N);
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut vals: Vec<Fe> = vec![ZERO, ONE, sub_raw(&P, &ONE).0, sub_raw(&P, &[2, 0, 0, 0, 0, 0, 0, 0]).0,
            [0xffff_ffff, 0, 0xffff_ffff, 0, 0xffff_ffff, 0, 0xffff_ffff, 0], [0, 0, 0, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0, 0x8000_0000]];
        for _ in 0..400 {
            let mut v = rng.fe();
            while !lt(&v, &P) {
                v = rng.fe();
            }
            vals.push(v);
        }
        for w in vals.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            let (ba, bb) = (big(a), big(b));
            assert_eq!(big(&fe_mul(a, b)), (&ba * &bb) % &p);
            assert_eq!(big(&fe_sqr(a)), (&ba * &ba) % &p);
            assert_eq!(big(&fe_add(a, b)), (&ba + &bb) % &p);
            assert_eq!(big(&fe_sub(a, b)), (&ba + &p - &bb) % &p);
            let (sa, sb) = (&ba % &n, &bb % &n);
            assert_eq!(big(&sc_mul(&fe(&sa), &fe(&sb))), (&sa * &sb) % &n);
            if sa != BigUint::from(0u8) {
                assert_eq!((big(&sc_inv(&fe(&sa))) * &sa) % &n, BigUint::from(1u8));
            }
        }
        assert_eq!(big(&fe_inv(&vals[7])) * big(&vals[7]) % &p, BigUint::from(1u8));
        assert!(on_curve(&GX, &GY));
        assert!(!on_curve(&GX, &fe_add(&GY, &ONE)));
        assert!(!on_curve(&P, &GY), "coordinates ≥ p are refused");
    }

    /// Signatures from the p256 crate verify; a changed message, r, s or key does not; s and
    /// n − s (both valid ECDSA) verify.
    #[test]
    fn agrees_with_p256_signing() {
        for i in 0..24u32 {
            let sk = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
            let pt = sk.verifying_key().to_encoded_point(false);
            let key = Es256Key::new(pt.x().unwrap(), pt.y().unwrap()).unwrap();
            assert!(key.table.get().is_none(), "the comb table waits for the key's first use");
            let msg = format!("header.payload-{i}");
            let sig: p256::ecdsa::Signature = sk.sign(msg.as_bytes());
            let sig = sig.to_bytes().to_vec();
            assert!(key.verify_untabled(msg.as_bytes(), &sig));
            assert!(key.table.get().is_none(), "the untabled path builds no table");
            assert!(!key.verify_untabled(format!("header.payload-{i}!").as_bytes(), &sig));
            assert!(key.verify(msg.as_bytes(), &sig));
            assert!(key.table.get().is_some());
            assert!(!key.verify(format!("header.payload-{i}!").as_bytes(), &sig));
            for k in [0usize, 31, 32, 63] {
                let mut bad = sig.clone();
                bad[k] ^= 1;
                assert!(!key.verify(msg.as_bytes(), &bad));
            }
            let s = from_be(&sig[32..]);
            let neg = sub_raw(&N, &s).0;
            let mut high_s = sig[..32].to_vec();
            let mut nb = big(&neg).to_bytes_be();
            while nb.len() < 32 {
                nb.insert(0, 0);
            }
            high_s.extend_from_slice(&nb);
            assert!(key.verify(msg.as_bytes(), &high_s), "high-S form is valid ECDSA");
            let other = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
            let opt = other.verifying_key().to_encoded_point(false);
            assert!(!Es256Key::new(opt.x().unwrap(), opt.y().unwrap()).unwrap().verify(msg.as_bytes(), &sig));
        }
    }
}

/// For the `arith` fuzz target: field and scalar arithmetic on fuzzer-chosen values against
/// num-bigint (the fast reduction's carry folding is where a slip would hide).
#[cfg(fuzzing)]
pub fn fuzz_arith(data: &[u8]) {
    use rsa::BigUint;
    if data.len() < 64 {
        return;
    }
    let big = |a: &Fe| BigUint::from_slice(a);
    let (p, n) = (big(&P), big(&N));
    let reduce_p = |x: Fe| if lt(&x, &P) { x } else { sub_raw(&x, &P).0 };
    let (a, b) = (reduce_p(from_be(&data[..32])), reduce_p(from_be(&data[32..64])));
    let (ba, bb) = (big(&a), big(&b));
    assert_eq!(big(&fe_mul(&a, &b)), (&ba * &bb) % &p);
    assert_eq!(big(&fe_sqr(&a)), (&ba * &ba) % &p);
    assert_eq!(big(&fe_add(&a, &b)), (&ba + &bb) % &p);
    assert_eq!(big(&fe_sub(&a, &b)), (&ba + &p - &bb) % &p);
    let reduce_n = |x: Fe| if lt(&x, &N) { x } else { sub_raw(&x, &N).0 };
    let (sa, sb) = (reduce_n(a), reduce_n(b));
    assert_eq!(big(&sc_mul(&sa, &sb)), (big(&sa) * big(&sb)) % &n);
    if !is_zero(&sa) {
        assert_eq!((big(&sc_inv(&sa)) * big(&sa)) % &n, BigUint::from(1u8));
    }
}
