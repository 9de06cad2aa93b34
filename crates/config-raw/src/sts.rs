//! `sts` (with `client_auth`) as written; validated in the filter's `src/config/sts.rs`.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSts {
    pub cluster: String,
    #[serde(default)]
    pub authority: Option<String>,
    pub path: String,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    pub client_auth: RawClientAuth,
    pub issuer: String,
    #[serde(default)]
    pub jwks: Option<RawJwks>,
    #[serde(default)]
    pub requested_token_type: Option<String>,
    #[serde(default)]
    pub subject_token_type: Option<String>,
    #[serde(default)]
    pub expiry_margin_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientAuth {
    pub method: String,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
}
