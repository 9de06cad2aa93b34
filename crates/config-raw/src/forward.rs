//! `forward` as written; validated in the filter's `src/config/forward.rs`.

use super::*;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawForward {
    #[serde(default)]
    pub claims_to_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub principal_header: Option<String>,
    #[serde(default)]
    pub strip_headers: Vec<String>,
    #[serde(default)]
    pub array_separator: Option<String>,
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub strip_underscore_spellings: Option<bool>,
    #[serde(default)]
    pub payload_header: Option<String>,
}
