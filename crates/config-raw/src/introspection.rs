//! `providers[].introspection` as written; validated in the filter's `src/config/introspection.rs`.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIntrospection {
    pub cluster: String,
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    pub client_auth: RawClientAuth,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub max_cache_seconds: Option<u64>,
    #[serde(default)]
    pub negative_cache_seconds: Option<u64>,
    #[serde(default)]
    pub signed_answers: bool,
    #[serde(default)]
    pub introspect_jwts: bool,
}
