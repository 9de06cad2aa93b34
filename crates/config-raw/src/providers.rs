//! `providers[]` (with `jwks`, `discovery`, `nested`, `txn_token`) as written; validated in the filter's `src/config/providers.rs`.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub name: String,
    pub issuer: String,
    pub audiences: Vec<String>,
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    #[serde(default)]
    pub jwks: Option<RawJwks>,
    #[serde(default)]
    pub introspection: Option<RawIntrospection>,
    #[serde(default)]
    pub discovery: Option<RawDiscovery>,
    #[serde(default)]
    pub clock_skew_seconds: Option<u64>,
    #[serde(default)]
    pub required_claims: Vec<String>,
    #[serde(default)]
    pub token_types: Option<Vec<String>>,
    #[serde(default)]
    pub nested: Option<RawNested>,
    #[serde(default)]
    pub refuse_id_tokens: Option<bool>,
    #[serde(default)]
    pub id_token_claims: Option<Vec<String>>,
    #[serde(default)]
    pub client_ids: Vec<String>,
    #[serde(default)]
    pub dpop: Option<RawDpop>,
    #[serde(default)]
    pub certificate_binding: Option<RawCertificateBinding>,
    #[serde(default)]
    pub txn_token: Option<RawTxnProvider>,
}

/// A provider of Transaction Tokens (a sidecar's inbound side).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTxnProvider {
    #[serde(default)]
    pub workloads: Vec<String>,
    #[serde(default)]
    pub refuse_replay: bool,
    #[serde(default)]
    pub replay_cache_entries: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNested {
    pub inner_providers: Vec<String>,
    #[serde(default)]
    pub claim: Option<String>,
    #[serde(default)]
    pub caller_header: Option<String>,
}

/// OpenID Connect Discovery: the provider's JWKS location from its metadata document.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiscovery {
    pub cluster: String,
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub refresh_seconds: Option<u64>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub min_refetch_seconds: Option<u64>,
    #[serde(default)]
    pub retry_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwks {
    #[serde(default)]
    pub inline: Option<Value>,
    #[serde(default)]
    pub inline_string: Option<String>,
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub refresh_seconds: Option<u64>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub min_refetch_seconds: Option<u64>,
    #[serde(default)]
    pub retry_ms: Option<u64>,
}
