//! JOSE: strict compact JWS parsing, JWK/JWKS, and signature verification.

pub mod b64;
pub mod ed25519;
pub mod es256;
pub mod json;
pub mod jwk;
pub mod jws;
pub mod rs256;
pub mod verify;

/// The signature algorithms the filter can verify. Anything else (`none`, HS*, PS*, ES384…) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Alg {
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    /// Exact, case-sensitive JOSE names (RFC 7518 §3.1, RFC 8037 §3.1).
    pub fn from_name(s: &str) -> Option<Alg> {
        match s {
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            "EdDSA" => Some(Alg::EdDsa),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }
}
