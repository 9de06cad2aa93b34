//! `routes[].require` as written; validated in the filter's `src/config/require.rs`.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequire {
    #[serde(default)]
    pub scopes_all: Vec<String>,
    #[serde(default)]
    pub scopes_any: Vec<String>,
    #[serde(default)]
    pub claims: Map<String, Value>,
}
