//! Signature verification by this crate's `rs256`, `es256` and `ed25519` (keys prepared once when
//! loaded; Ed25519 on curve25519-dalek's arithmetic). Why not jwt-compact's algorithms: README, "Crypto".

use super::jwk::{KeyMaterial, KeySet};
use super::Alg;

/// Verifies `sig` over `signing_input`. The algorithm must already match the key (see `KeySet::candidates`).
pub fn verify(alg: Alg, key: &KeyMaterial, signing_input: &[u8], sig: &[u8]) -> bool {
    match (alg, key) {
        // PKCS#1 v1.5; the signature must be exactly the modulus length (checked there).
        (Alg::Rs256, KeyMaterial::Rsa(k)) => k.verify(signing_input, sig),
        (Alg::Es256, KeyMaterial::P256(k)) => {
            // JWS ES256 is raw r||s (RFC 7518 §3.4): exactly 64 bytes, never DER (checked there).
            k.verify(signing_input, sig)
        }
        (Alg::EdDsa, KeyMaterial::Ed25519(k)) => {
            // RFC 8032 §5.1.7 with ed25519-dalek's `verify_strict` decisions (see ed25519.rs).
            k.verify(signing_input, sig)
        }
        _ => false,
    }
}

/// The same decision as `verify`, without building a per-key table (ES256, EdDSA): for a key
/// that is seen once, such as a DPoP proof's (`dpop.rs`). RS256 has no table either way.
pub fn verify_untabled(alg: Alg, key: &KeyMaterial, signing_input: &[u8], sig: &[u8]) -> bool {
    match (alg, key) {
        (Alg::Es256, KeyMaterial::P256(k)) => k.verify_untabled(signing_input, sig),
        (Alg::EdDsa, KeyMaterial::Ed25519(k)) => k.verify_untabled(signing_input, sig),
        _ => verify(alg, key, signing_input, sig),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// No key of the token's algorithm (with its `kid`, if it names one).
    NoKeyForAlgorithm,
    BadSignature,
}

/// Selects the candidate keys (same algorithm; same `kid` when the token names one) and accepts
/// the signature if any of them verifies it. Returns that key's `Jwk::fp`.
pub fn verify_with_keys(keys: &KeySet, alg: Alg, kid: Option<&str>, signing_input: &[u8], sig: &[u8]) -> Result<u64, VerifyError> {
    let mut candidates = keys.candidates(alg, kid).peekable();
    if candidates.peek().is_none() {
        return Err(VerifyError::NoKeyForAlgorithm);
    }
    match candidates.find(|k| verify(alg, &k.key, signing_input, sig)) {
        Some(k) => Ok(k.fp),
        None => Err(VerifyError::BadSignature),
    }
}
