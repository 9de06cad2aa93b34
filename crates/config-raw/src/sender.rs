//! `providers[].dpop` and `providers[].certificate_binding` as written; validated in the filter's `src/config/sender.rs`.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDpop {
    #[serde(default)]
    pub required: Option<bool>,
    #[serde(default)]
    pub max_age_seconds: Option<u64>,
    #[serde(default)]
    pub clock_skew_seconds: Option<u64>,
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    #[serde(default)]
    pub htu_origin: Option<String>,
    #[serde(default)]
    pub replay_cache_entries: Option<u32>,
    #[serde(default)]
    pub nonce: Option<RawNonce>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNonce {
    #[serde(default)]
    pub lifetime_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificateBinding {
    #[serde(default)]
    pub required: Option<bool>,
}
