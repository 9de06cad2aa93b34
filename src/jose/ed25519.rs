//! EdDSA (Ed25519, RFC 8032 §5.1.7) verification with a per-key table, on curve25519-dalek's
//! arithmetic.
//!
//! ed25519-dalek's `verify_strict` computes `[k](−A) + [s]B` with 253 shared doublings and also
//! decompresses R (a square root) to refuse small-order R. Here `−A` gets a radix-16 table (the
//! same kind dalek keeps for B: 32 × 8 points, 30 KiB) at the key's first use, so both products
//! are 64 table additions each and no doublings; and the small-order check runs on the computed
//! R' (three doublings), which equals R whenever the encodings match. The decision is the same
//! as `verify_strict`'s: s < L, small-order A refused (at load), small-order R refused, the
//! cofactorless equation, R' compared by its canonical encoding (so a non-canonical R never
//! matches). Pinned against ed25519-speccheck and every Wycheproof vector.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsBasepointTable, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::BasepointTable;
use sha2_11::{Digest, Sha512};
use std::sync::OnceLock;

/// B's radix-16 table, built once per VM rather than linked in (dalek's constant copy is 30 KiB of
/// .wasm; building it takes ~3 ms of V8 time, when the first Ed25519 key is loaded).
fn basepoint_table() -> &'static EdwardsBasepointTable {
    static B: OnceLock<EdwardsBasepointTable> = OnceLock::new();
    B.get_or_init(|| EdwardsBasepointTable::create(&ED25519_BASEPOINT_POINT))
}

/// An Ed25519 public key prepared for verification.
pub struct Ed25519Key {
    /// The key as encoded (hashed into k as given, like every implementation).
    bytes: [u8; 32],
    /// −A, checked at load; its radix-16 table (30 KiB) is built at the first verification.
    neg_a: EdwardsPoint,
    table: std::cell::OnceCell<Box<EdwardsBasepointTable>>,
}

impl Ed25519Key {
    /// `None` unless `x` decodes to a point of the curve that is not of small order.
    pub fn new(x: &[u8; 32]) -> Option<Ed25519Key> {
        let a = CompressedEdwardsY(*x).decompress()?;
        if a.is_small_order() {
            return None;
        }
        basepoint_table();
        Some(Ed25519Key { bytes: *x, neg_a: -a, table: std::cell::OnceCell::new() })
    }

    /// With −A's table (built at the first call): for keys that verify many signatures.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.verify_by(msg, sig, |s, k| {
            basepoint_table().mul_base(s) + self.table.get_or_init(|| Box::new(EdwardsBasepointTable::create(&self.neg_a))).mul_base(k)
        })
    }

    /// The same decision without −A's table (dalek's variable-time double-scalar product): for
    /// a key seen once, such as a DPoP proof's.
    pub fn verify_untabled(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.verify_by(msg, sig, |s, k| EdwardsPoint::vartime_double_scalar_mul_basepoint(k, &self.neg_a, s))
    }

    fn verify_by(&self, msg: &[u8], sig: &[u8], r_of: impl FnOnce(&Scalar, &Scalar) -> EdwardsPoint) -> bool {
        if sig.len() != 64 {
            return false;
        }
        let (r, s) = sig.split_at(32);
        let Ok(s) = <[u8; 32]>::try_from(s) else { return false };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s)) else {
            return false;
        };
        let mut h = Sha512::new();
        h.update(r);
        h.update(self.bytes);
        h.update(msg);
        let mut wide = [0u8; 64];
        wide.copy_from_slice(&h.finalize());
        let k = Scalar::from_bytes_mod_order_wide(&wide);
        let r_computed = r_of(&s, &k);
        r_computed.compress().as_bytes()[..] == r[..] && !r_computed.is_small_order()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Same decisions as ed25519-dalek's `verify_strict` on valid signatures and on every
    /// single-bit change of R, s and the message; s + L is refused.
    #[test]
    fn agrees_with_dalek_verify_strict() {
        for i in 0..8u32 {
            let kp = ed25519_compact::KeyPair::generate();
            let pk: [u8; 32] = kp.pk.as_ref().try_into().unwrap();
            let ours = Ed25519Key::new(&pk).unwrap();
            assert!(ours.table.get().is_none(), "the table of -A waits for the key's first use");
            let theirs = ed25519_dalek::VerifyingKey::from_bytes(&pk).unwrap();
            let msg = format!("header.payload-{i}").into_bytes();
            let sig = kp.sk.sign(&msg, None).as_ref().to_vec();
            assert!(ours.verify(&msg, &sig));
            assert!(ours.table.get().is_some());
            let strict = |m: &[u8], s: &[u8]| {
                ed25519_dalek::Signature::from_slice(s).is_ok_and(|s| theirs.verify_strict(m, &s).is_ok())
            };
            for bit in (0..512).step_by(7) {
                let mut bad = sig.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert_eq!(ours.verify(&msg, &bad), strict(&msg, &bad), "bit {bit}");
            }
            let mut other = msg.clone();
            other[0] ^= 1;
            assert!(!ours.verify(&other, &sig));
            // s + L (still < 2^256 for these s): the malleated form is refused.
            const L: [u8; 32] = [0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
            let mut mal = sig.clone();
            let mut carry = 0u16;
            for j in 0..32 {
                let v = u16::from(mal[32 + j]) + u16::from(L[j]) + carry;
                mal[32 + j] = v as u8;
                carry = v >> 8;
            }
            assert!(!ours.verify(&msg, &mal) && !strict(&msg, &mal));
            assert!(!ours.verify(&msg, &sig[..63]));
        }
        // Small-order keys are refused when loaded (the identity, encoded as y = 1).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(Ed25519Key::new(&identity).is_none());
    }
}
