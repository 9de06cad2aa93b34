//! Signing with constant-time, audited code only: Ed25519 by ed25519-dalek, ES256 by p256's
//! `ecdsa::SigningKey` with RFC 6979 deterministic nonces. The filter's hand-written verifiers
//! never sign. Nothing here logs, formats or returns private key material.
#![forbid(unsafe_code)]

/// A private key that can sign.
pub enum Secret {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

impl Secret {
    /// An Ed25519 key from its 32-byte seed (`d`), with its public key (`x`).
    #[inline(never)]
    pub fn ed25519(d: &[u8; 32]) -> (Secret, [u8; 32]) {
        let sk = ed25519_dalek::SigningKey::from_bytes(d);
        let x = sk.verifying_key().to_bytes();
        (Secret::Ed25519(sk), x)
    }

    /// A P-256 key from its scalar (`d`), with its public point (`x`, `y`); `None` if `d` is not
    /// a valid private key (zero, or not below the group order).
    #[inline(never)]
    pub fn p256(d: &[u8; 32]) -> Option<(Secret, [u8; 32], [u8; 32])> {
        let sk = p256::ecdsa::SigningKey::from_bytes(&(*d).into()).ok()?;
        let point = sk.verifying_key().to_encoded_point(false);
        let x: [u8; 32] = point.x()?[..].try_into().ok()?;
        let y: [u8; 32] = point.y()?[..].try_into().ok()?;
        Some((Secret::P256(sk), x, y))
    }

    /// The signature of `msg`: 64 bytes either way (Ed25519 `R‖S`; ES256 `r‖s`, JWS form).
    #[inline(never)]
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        use p256::ecdsa::signature::Signer as _;
        match self {
            Secret::Ed25519(k) => k.sign(msg).to_bytes(),
            Secret::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(msg);
                let mut out = [0u8; 64];
                out.copy_from_slice(&s.to_bytes());
                out
            }
        }
    }
}

/// Whether `x` is an Ed25519 public key a retired key may be served with (a point, not weak).
#[inline(never)]
pub fn ed25519_public_usable(x: &[u8; 32]) -> bool {
    ed25519_dalek::VerifyingKey::from_bytes(x).map(|k| !k.is_weak()).unwrap_or(false)
}

/// Whether (`x`, `y`) is a point on P-256.
#[inline(never)]
pub fn p256_public_valid(x: &[u8; 32], y: &[u8; 32]) -> bool {
    let mut sec1 = [0u8; 65];
    sec1[0] = 4;
    sec1[1..33].copy_from_slice(x);
    sec1[33..].copy_from_slice(y);
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sign_deterministically_and_check_their_public_parts() {
        let (ed, x) = Secret::ed25519(&[7u8; 32]);
        assert!(ed25519_public_usable(&x));
        assert_eq!(ed.sign(b"m"), ed.sign(b"m"));
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&x).unwrap();
        assert!(vk.verify_strict(b"m", &ed25519_dalek::Signature::from_bytes(&ed.sign(b"m"))).is_ok());
        let (es, px, py) = Secret::p256(&[9u8; 32]).unwrap();
        assert!(p256_public_valid(&px, &py));
        assert!(!p256_public_valid(&px, &[2u8; 32]));
        assert_eq!(es.sign(b"m"), es.sign(b"m"), "RFC 6979");
        assert!(Secret::p256(&[0u8; 32]).is_none());
        assert!(Secret::p256(&[0xffu8; 32]).is_none());
    }
}
