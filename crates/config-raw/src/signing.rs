//! `signing` (flat, or `keys[]`) as written; validated in the filter's `src/config/signing.rs`.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSigning {
    pub issuer: String,
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    #[serde(default)]
    pub jwks_path: Option<String>,
    #[serde(default)]
    pub jwks_max_age_seconds: Option<u64>,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub keys: Option<Vec<RawSigningKey>>,
    // The flat form: one key.
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(default)]
    pub private_jwk: Option<Value>,
    #[serde(default)]
    pub private_jwk_env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSigningKey {
    pub kid: String,
    pub alg: String,
    #[serde(default)]
    pub private_jwk: Option<Value>,
    #[serde(default)]
    pub private_jwk_env: Option<String>,
    #[serde(default)]
    pub public_jwk: Option<Value>,
    #[serde(default)]
    pub retired: bool,
}
