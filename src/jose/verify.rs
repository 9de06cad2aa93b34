//! Signature verification through jwt-compact's algorithm implementations.
//! Lengths are checked here first: jwt-compact's Ed25519 `try_from_slice` panics on a wrong length.

use super::jwk::{KeyMaterial, KeySet};
use super::Alg;
use jwt_compact::{alg, Algorithm, AlgorithmSignature};

/// Verifies `sig` over `signing_input`. The algorithm must already match the key (see `KeySet::candidates`).
pub fn verify(alg: Alg, key: &KeyMaterial, signing_input: &[u8], sig: &[u8]) -> bool {
    match (alg, key) {
        (Alg::Rs256, KeyMaterial::Rsa(k)) => {
            // PKCS#1 v1.5: the signature is exactly the modulus length.
            if sig.len() != rsa::traits::PublicKeyParts::size(k) {
                return false;
            }
            match alg::RsaSignature::try_from_slice(sig) {
                Ok(s) => alg::Rsa::rs256().verify_signature(&s, k, signing_input),
                Err(_) => false,
            }
        }
        (Alg::Es256, KeyMaterial::P256(k)) => {
            // JWS ES256 is raw r||s (RFC 7518 §3.4): exactly 64 bytes, never DER.
            if sig.len() != 64 {
                return false;
            }
            match p256::ecdsa::Signature::try_from_slice(sig) {
                Ok(s) => alg::Es256.verify_signature(&s, k, signing_input),
                Err(_) => false,
            }
        }
        (Alg::EdDsa, KeyMaterial::Ed25519(k)) => {
            if sig.len() != ed25519_compact::Signature::BYTES {
                return false;
            }
            match ed25519_compact::Signature::try_from_slice(sig) {
                Ok(s) => alg::Ed25519.verify_signature(&s, k, signing_input),
                Err(_) => false,
            }
        }
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// No key of the token's algorithm (with its `kid`, if it names one).
    NoKeyForAlgorithm,
    BadSignature,
}

/// Selects the candidate keys (same algorithm; same `kid` when the token names one) and accepts
/// the signature if any of them verifies it.
pub fn verify_with_keys(keys: &KeySet, alg: Alg, kid: Option<&str>, signing_input: &[u8], sig: &[u8]) -> Result<(), VerifyError> {
    let mut candidates = keys.candidates(alg, kid).peekable();
    if candidates.peek().is_none() {
        return Err(VerifyError::NoKeyForAlgorithm);
    }
    if candidates.any(|k| verify(alg, &k.key, signing_input, sig)) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}
