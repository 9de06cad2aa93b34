//! The filter's own signing keys, for the tokens it mints (`credential/mint.rs`), and the JWKS it
//! serves for them.
//!
//! Signing touches private keys, so it uses constant-time, audited code only: Ed25519 by
//! ed25519-dalek (on the same curve25519-dalek the verifier uses), ES256 by p256's
//! `ecdsa::SigningKey` with RFC 6979 deterministic nonces, both behind `crates/signer` (a crate
//! of its own so that it is built size-optimised). The hand-written verifiers in `jose/`
//! never sign. A private key is never logged, never in an error text, never served: errors name
//! the field and say what is wrong, and the served JWKS carries public members only.

use crate::jose::{b64, Alg};
use serde_json::{json, Map, Value};
pub use tef_signer::Secret;

pub struct SigningKey {
    pub kid: String,
    pub alg: Alg,
    /// `None` for a retired key given by its public JWK only (served for rotation, never used).
    pub secret: Option<Secret>,
    /// The public JWK as served (`kty`, `crv`, `x`, `y`, `kid`, `alg`, `use`).
    pub public: Value,
}

/// Why a signing key was refused. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    /// The member at fault, relative to the key (`private_jwk.d`, `alg`…).
    pub member: &'static str,
    pub message: String,
}

fn err<T>(member: &'static str, message: impl Into<String>) -> Result<T, KeyError> {
    Err(KeyError { member, message: message.into() })
}

fn member<'a>(jwk: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, KeyError> {
    match jwk.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => err(name, "must be a string"),
        None => err(name, "is missing"),
    }
}

fn bytes32(jwk: &Map<String, Value>, name: &'static str) -> Result<[u8; 32], KeyError> {
    let s = member(jwk, name)?;
    let v = b64::decode(s.as_bytes()).ok_or(KeyError { member: name, message: "is not base64url".into() })?;
    <[u8; 32]>::try_from(v.as_slice()).map_err(|_| KeyError { member: name, message: "must be 32 bytes".into() })
}

/// Parses a key from its JWK: a private JWK (`d` present) or, for a retired key, a public one.
/// The JWK's own `alg`, if present, must agree with `alg`; `kty`/`crv` must be the algorithm's.
pub fn parse_key(kid: &str, alg: Alg, jwk: &Map<String, Value>, private: bool) -> Result<SigningKey, KeyError> {
    if let Some(a) = jwk.get("alg") {
        if a.as_str() != Some(alg.name()) {
            return err("alg", format!("the JWK's `alg` is not {}", alg.name()));
        }
    }
    let kty = member(jwk, "kty")?;
    let crv = member(jwk, "crv")?;
    let (secret, public_members) = match alg {
        Alg::EdDsa => {
            if kty != "OKP" || crv != "Ed25519" {
                return err("crv", "EdDSA signing needs an OKP key on Ed25519");
            }
            let x = bytes32(jwk, "x")?;
            if private {
                let d = bytes32(jwk, "d")?;
                let (sk, public) = Secret::ed25519(&d);
                if public != x {
                    return err("x", "does not match the private key `d`");
                }
                (Some(sk), json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode(&x)}))
            } else {
                if !tef_signer::ed25519_public_usable(&x) {
                    return err("x", "is not a usable Ed25519 public key");
                }
                (None, json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode(&x)}))
            }
        }
        Alg::Es256 => {
            if kty != "EC" || crv != "P-256" {
                return err("crv", "ES256 signing needs an EC key on P-256");
            }
            let x = bytes32(jwk, "x")?;
            let y = bytes32(jwk, "y")?;
            if private {
                let d = bytes32(jwk, "d")?;
                let (sk, px, py) =
                    Secret::p256(&d).ok_or(KeyError { member: "d", message: "is not a valid P-256 private key".into() })?;
                if px != x || py != y {
                    return err("x", "`x`/`y` do not match the private key `d`");
                }
                (Some(sk), json!({"kty": "EC", "crv": "P-256", "x": b64::encode(&x), "y": b64::encode(&y)}))
            } else {
                if !tef_signer::p256_public_valid(&x, &y) {
                    return err("x", "`x`/`y` are not a point on P-256");
                }
                (None, json!({"kty": "EC", "crv": "P-256", "x": b64::encode(&x), "y": b64::encode(&y)}))
            }
        }
        Alg::Rs256 => return err("alg", "the filter signs with EdDSA or ES256 only"),
    };
    if !private && jwk.contains_key("d") {
        return err("d", "a public JWK must not carry the private key");
    }
    let mut public = public_members;
    public["kid"] = json!(kid);
    public["alg"] = json!(alg.name());
    public["use"] = json!("sig");
    Ok(SigningKey { kid: kid.to_owned(), alg, secret, public })
}

impl SigningKey {
    /// A compact JWS of `header` (its `alg` and `kid` set here) and `payload`. `None` for a key
    /// without its private part (never the current key: the configuration refuses that).
    pub fn sign(&self, mut header: Map<String, Value>, payload: &Map<String, Value>) -> Option<String> {
        header.insert("alg".into(), json!(self.alg.name()));
        header.insert("kid".into(), json!(self.kid));
        let input = format!(
            "{}.{}",
            b64::encode(Value::Object(header).to_string().as_bytes()),
            b64::encode(Value::Object(payload.clone()).to_string().as_bytes())
        );
        let sig = self.secret.as_ref()?.sign(input.as_bytes());
        Some(format!("{input}.{}", b64::encode(&sig)))
    }
}

/// The JWKS body served on `jwks_path`: every configured key's public JWK (current and retired).
pub fn jwks_body(keys: &[SigningKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.public.clone()).collect::<Vec<_>>()}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::jwk;

    fn ed_jwk() -> (Map<String, Value>, [u8; 32]) {
        let d = [7u8; 32];
        let x = ed25519_dalek::SigningKey::from_bytes(&d).verifying_key().to_bytes();
        let v = json!({"kty": "OKP", "crv": "Ed25519", "d": b64::encode(&d), "x": b64::encode(&x)});
        (v.as_object().unwrap().clone(), x)
    }

    fn es_jwk() -> Map<String, Value> {
        let sk = p256::ecdsa::SigningKey::from_bytes(&[9u8; 32].into()).unwrap();
        let p = sk.verifying_key().to_encoded_point(false);
        json!({"kty": "EC", "crv": "P-256", "d": b64::encode(&[9u8; 32]), "x": b64::encode(p.x().unwrap()), "y": b64::encode(p.y().unwrap())})
            .as_object()
            .unwrap()
            .clone()
    }

    /// What the filter signs verifies with the project's own verifiers, through the served JWKS.
    #[test]
    fn signed_tokens_verify_against_the_served_jwks() {
        let (ed, _) = ed_jwk();
        let keys = vec![parse_key("e1", Alg::EdDsa, &ed, true).unwrap(), parse_key("p1", Alg::Es256, &es_jwk(), true).unwrap()];
        let (set, rejected) = jwk::parse_jwks(jwks_body(&keys).as_bytes()).unwrap();
        assert!(rejected.is_empty() && set.keys.len() == 2);
        assert!(!jwks_body(&keys).contains("\"d\""), "never a private member in the JWKS");
        let payload = json!({"sub": "alice"}).as_object().unwrap().clone();
        for k in &keys {
            let t = k.sign(Map::new(), &payload).unwrap();
            let j = crate::jose::jws::parse(&t, 8192).unwrap();
            assert_eq!(j.kid.as_deref(), Some(k.kid.as_str()));
            assert!(crate::jose::verify::verify_with_keys(&set, j.alg, j.kid.as_deref(), j.signing_input, &j.signature).is_ok());
        }
        // RFC 6979 / RFC 8032: deterministic.
        assert_eq!(keys[1].sign(Map::new(), &payload), keys[1].sign(Map::new(), &payload));
    }

    #[test]
    fn bad_keys_are_refused_naming_the_member_never_the_key() {
        let (ed, _) = ed_jwk();
        let d = ed["d"].as_str().unwrap().to_owned();
        let cases: Vec<(Alg, Map<String, Value>, bool, &str)> = vec![
            (Alg::EdDsa, { let mut m = ed.clone(); m["x"] = json!(b64::encode(&[1u8; 32])); m }, true, "x"),
            (Alg::EdDsa, { let mut m = ed.clone(); m.insert("crv".into(), json!("X25519")); m }, true, "crv"),
            (Alg::EdDsa, { let mut m = ed.clone(); m.remove("d"); m }, true, "d"),
            (Alg::EdDsa, { let mut m = ed.clone(); m.insert("d".into(), json!("AAAA")); m }, true, "d"),
            (Alg::EdDsa, ed.clone(), false, "d"),
            (Alg::Es256, ed.clone(), true, "crv"),
            (Alg::Es256, { let mut m = es_jwk(); m["y"] = json!(b64::encode(&[2u8; 32])); m }, true, "x"),
            (Alg::Es256, { let mut m = es_jwk(); m["d"] = json!(b64::encode(&[0u8; 32])); m }, true, "d"),
            (Alg::Es256, { let mut m = es_jwk(); m.insert("alg".into(), json!("EdDSA")); m }, true, "alg"),
            (Alg::Rs256, es_jwk(), true, "alg"),
        ];
        for (alg, jwk, private, want) in cases {
            let e = parse_key("k", alg, &jwk, private).err().unwrap_or_else(|| panic!("accepted: {jwk:?}"));
            assert_eq!(e.member, want, "{e:?}");
            assert!(!e.message.contains(&d), "key material in an error text");
        }
        let mut public = ed.clone();
        public.remove("d");
        assert!(parse_key("old", Alg::EdDsa, &public, false).unwrap().secret.is_none());
    }
}
