//! `routes[]` (`match`, `exchange`, `mint`, `embedded`) as written; validated in the filter's `src/config/routes.rs`.

use super::*;

#[derive(Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExchange {
    #[serde(default)]
    pub audience: Option<OneOrMany>,
    #[serde(default)]
    pub resource: Option<OneOrMany>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// A Transaction Token for the call chain instead of an exchanged access token.
    #[serde(default)]
    pub txn_token: bool,
    #[serde(default)]
    pub authorization: Option<RawAuthorization>,
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub max_lifetime_seconds: Option<u64>,
}

/// With `txn_token`: `"remove"`, `"forward"`, or `{"exchange": {…}}` (the client's token
/// exchanged at the STS for the upstream, next to the Txn-Token).
#[derive(Deserialize)]
#[serde(untagged)]
pub enum RawAuthorization {
    Mode(String),
    Exchange { exchange: RawExchangeTarget },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExchangeTarget {
    #[serde(default)]
    pub audience: Option<OneOrMany>,
    #[serde(default)]
    pub resource: Option<OneOrMany>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMint {
    pub audience: String,
    #[serde(default)]
    pub copy_claims: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub nest: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmbedded {
    pub claim: String,
    pub audience: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    #[serde(rename = "match", default)]
    pub matcher: RawMatch,
    #[serde(default)]
    pub allow_anonymous: bool,
    #[serde(default)]
    pub providers: Option<Vec<String>>,
    #[serde(default)]
    pub exchange: Option<RawExchange>,
    #[serde(default)]
    pub mint: Option<RawMint>,
    #[serde(default)]
    pub embedded: Option<RawEmbedded>,
    #[serde(default)]
    pub require: Option<RawRequire>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub path_exact: Option<String>,
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default)]
    pub route_name: Option<String>,
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub methods: Option<Vec<String>>,
}
