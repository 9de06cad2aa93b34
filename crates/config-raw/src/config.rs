//! the top level and `cache` as written; validated in the filter's `src/config/mod.rs`.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub providers: Vec<RawProvider>,
    #[serde(default)]
    pub from: Option<Vec<RawSource>>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub forward: RawForward,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub realm: Option<String>,
    #[serde(default)]
    pub stat_prefix: Option<String>,
    #[serde(default)]
    pub max_token_bytes: Option<usize>,
    #[serde(default)]
    pub sts: Option<RawSts>,
    #[serde(default)]
    pub signing: Option<RawSigning>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    #[serde(default)]
    pub max_entries: Option<u32>,
    #[serde(default)]
    pub max_ttl_seconds: Option<u64>,
    #[serde(default)]
    pub local_entries: Option<u32>,
}
