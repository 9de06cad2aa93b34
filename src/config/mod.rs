//! Plugin configuration: the text parsed into the serde types of `crates/config-raw` (what
//! operators write, `deny_unknown_fields`; a crate of its own, built size-optimised), then
//! validated here into `Config`, one file per section (`providers`, `sources` for `from`, `routes`, `forward`, `sts`; the
//! cache and the top-level scalars here). Every error names the field
//! (`providers[1].jwks.cluster: ...`) so one log line tells the operator what to fix.

mod error_path;
mod forward;
mod introspection;
mod providers;
mod require;
mod routes;
mod sender;
mod signing;
mod sources;
mod sts;

pub use forward::Forward;
pub use introspection::Introspection;
pub use providers::{AudiencePattern, JwksSource, Nested, Provider, RemoteJwks, TxnProvider, NESTED_CLAIM};
pub use require::Require;
pub use sender::{CertificateBinding, Dpop};
pub use routes::{EmbeddedSpec, MintSpec, Route, RouteMatch, TxnSpec, MINTED_CLAIMS, TXN_TOKEN_HEADER};
pub use signing::Signing;
pub use sources::Source;
pub use sts::Sts;

use crate::credential::Kind;
use providers::jwks;
use sha2::{Digest, Sha256};
use tef_config_raw::RawConfig;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid plugin configuration: {}: {}", self.field, self.message)
    }
}

pub(super) fn fail<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError { field: field.into(), message: message.into() })
}

// ---------- what the filter runs on (what operators write: crates/config-raw) ----------

pub struct Config {
    pub providers: Vec<Provider>,
    /// `iss` → index into `providers`: one lookup however many providers there are.
    pub by_issuer: std::collections::HashMap<String, usize>,
    pub sources: Vec<Source>,
    pub routes: Vec<Route>,
    pub forward: Forward,
    pub cache_max_entries: u32,
    pub cache_max_ttl_ms: u64,
    /// Entries of each worker's own front for the shared caches (0: none).
    pub cache_local_entries: u32,
    pub realm: String,
    pub stat_prefix: String,
    pub max_token_bytes: usize,
    /// SHA-256 of the configuration bytes: cache entries made under another configuration never match.
    pub fingerprint: [u8; 32],
    /// `authenticate::hash_key` of the fingerprint for each cache (0 claims, then
    /// `credential::Kind`): made once here, so a lookup hashes the token alone.
    pub hash_keys: [[u8; 32]; 4],
    pub sts: Option<Sts>,
    /// The filter's own issuer and keys, for minted tokens.
    pub signing: Option<Signing>,
    /// Claims of a verified token that minting, embedded tokens and `require.claims` need (kept
    /// with it in the caches, by the name configured, dotted paths resolved): `sub`, `iss`, `act`
    /// and every mint route's `copy_claims`; empty where no route needs any.
    pub carried_claims: Vec<String>,
    /// Whether any route matches on `route_name` / `cluster` (those cost a host call per request).
    pub needs_route_name: bool,
    pub needs_cluster: bool,
    /// When every token source is the `authorization` header, the only request headers the
    /// filter needs (the stripped ones among them, to see which are there); the glue reads the
    /// whole map in one host call either way (`header_map`) and keeps these. `None`: keep every
    /// header (cookies, query-string tokens, other headers and DPoP read more of the request).
    pub needed_headers: Option<Vec<String>>,
    /// Of the request, only `authorization` is read (no route matches on the path, method or
    /// authority) and at most two headers are stripped (one and its underscore spelling): one
    /// single-header read instead of the whole map (in Envoy's V8 ≈ 10 500 instructions against
    /// ≈ 12 900 with the pick, bench/callgrind.sh), the stripped headers then removed unread
    /// (≈ 1 900 each: with more of them the map, which shows the absent ones, costs less).
    pub only_authorization: bool,
    /// Index of the `Authorization: DPoP` source in `sources`, added when a provider takes
    /// DPoP tokens.
    pub dpop_source: Option<usize>,
    /// A provider checks DPoP proofs or certificate bindings (`sender.rs`).
    pub sender_checks: bool,
    /// A provider checks certificate bindings: the glue reads the connection's client
    /// certificate digest.
    pub needs_peer_cert: bool,
    /// A route obtains Txn-Tokens: the glue reads the client's address (`["source","address"]`).
    pub needs_source_address: bool,
    /// A provider refuses a `txn` seen before (`txn_replay.rs`).
    pub txn_replay: bool,
}

pub const DEFAULT_SKEW_S: u64 = 60;
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
pub const DEFAULT_MAX_ENTRIES: u32 = 10_000;
pub const DEFAULT_LOCAL_ENTRIES: u32 = 1024;

/// Parses and validates the plugin configuration.
pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
    let raw: RawConfig = tef_config_raw::parse(bytes).map_err(|e| {
        let field = error_path::path_at(bytes, error_path::offset(bytes, e.line(), e.column()));
        ConfigError { field, message: e.to_string() }
    })?;
    validate(raw, Sha256::digest(bytes).into())
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

pub(super) fn header_name(field: &str, name: &str) -> Result<String, ConfigError> {
    if name.is_empty() || !name.bytes().all(is_token_char) {
        return fail(field, format!("\"{name}\" is not a valid HTTP header name"));
    }
    Ok(name.to_ascii_lowercase())
}

/// One line for the startup log: what the filter will do, never a secret.
pub fn summary(c: &Config) -> String {
    let remote = c.providers.iter().filter(|p| matches!(p.jwks, JwksSource::Remote(_))).count();
    let discovery = c.providers.iter().filter(|p| matches!(&p.jwks, JwksSource::Remote(r) if r.discovery_issuer.is_some())).count();
    let intro = c.providers.iter().filter(|p| p.introspection.is_some()).count();
    let kinds = |f: fn(&Route) -> bool| c.routes.iter().filter(|r| f(r)).count();
    format!(
        "{} providers ({} remote JWKS, {} by discovery, {} introspecting), {} routes ({} exchange, {} mint, {} embedded, {} with require), sts {}, signing {}, cache {} entries / {} s, stat_prefix {}",
        c.providers.len(),
        remote,
        discovery,
        intro,
        c.routes.len(),
        kinds(|r| r.exchange.is_some()),
        kinds(|r| r.mint.is_some()),
        kinds(|r| r.embedded.is_some()),
        kinds(|r| r.require.is_some()),
        if c.sts.is_some() { "on" } else { "off" },
        c.signing.as_ref().map_or("off".to_owned(), |s| format!("on ({} keys, issuer {})", s.keys.len(), s.issuer)),
        c.cache_max_entries,
        c.cache_max_ttl_ms / 1000,
        c.stat_prefix
    )
}

impl Config {
    /// Every key source: the providers in order, then the STS (index `providers.len()`) if it has keys.
    pub fn key_sources(&self) -> Vec<(&str, &JwksSource)> {
        let mut v: Vec<(&str, &JwksSource)> = self.providers.iter().map(|p| (p.name.as_str(), &p.jwks)).collect();
        if let Some(j) = self.sts.as_ref().and_then(|s| s.jwks.as_ref()) {
            v.push(("sts", j));
        }
        v
    }
}

fn validate(raw: RawConfig, fingerprint: [u8; 32]) -> Result<Config, ConfigError> {
    let providers = providers::providers(raw.providers)?;
    let mut sources = sources::sources(raw.from)?;
    let dpop_source = match providers.iter().any(|p| p.dpop.is_some()) {
        false => None,
        true => {
            let dpop = Source::Header { name: "authorization".into(), prefix: "DPoP ".into() };
            Some(match sources.iter().position(|s| *s == dpop) {
                Some(i) => i,
                None if sources.len() < crate::extract::MAX_SOURCES => {
                    sources.push(dpop);
                    sources.len() - 1
                }
                None => return fail("from", format!("at most {} token sources, with the DPoP one", crate::extract::MAX_SOURCES)),
            })
        }
    };
    let sender_checks = providers.iter().any(|p| p.dpop.is_some() || p.certificate_binding.is_some());
    let needs_peer_cert = providers.iter().any(|p| p.certificate_binding.is_some());
    let (routes, needs_route_name, needs_cluster) = routes::routes(raw.routes, &providers, raw.sts.is_some(), raw.signing.is_some())?;
    let signing = match raw.signing {
        None => None,
        Some(x) => Some(signing::signing(x)?),
    };
    // A signing key from the environment is not in the configuration's bytes: fold the public
    // keys into the fingerprint, so cached minted tokens never outlive a key change.
    let fingerprint: [u8; 32] = match &signing {
        Some(s) => {
            let mut h = Sha256::new();
            h.update(fingerprint);
            h.update(s.jwks_body.as_bytes());
            h.update(s.current.to_be_bytes());
            h.finalize().into()
        }
        None => fingerprint,
    };
    let caller_headers: Vec<String> = providers.iter().filter_map(|p| p.nested.as_ref()?.caller_header.clone()).collect();
    let mut forward = forward::forward(raw.forward, &sources, &caller_headers)?;
    // A Txn-Token header that arrives from a client is never passed on: every route strips it
    // (a Txn-Token route sets its own).
    for (i, t) in routes.iter().enumerate().filter_map(|(i, r)| Some((i, r.txn.as_ref()?))) {
        if t.header == forward.header || forward.claims_to_headers.iter().any(|(_, h)| *h == t.header) || forward.principal_header.as_ref() == Some(&t.header) {
            return fail(format!("routes[{i}].exchange.header"), "is also a header the filter sets from `forward`");
        }
        if !forward.strip_headers.contains(&t.header) {
            forward.strip_headers.push(t.header.clone());
        }
    }
    let cache_max_entries = raw.cache.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
    if !(1..=1_000_000).contains(&cache_max_entries) {
        return fail("cache.max_entries", "must be 1..1000000");
    }
    let cache_max_ttl_s = raw.cache.max_ttl_seconds.unwrap_or(300);
    if cache_max_ttl_s > 86_400 {
        return fail("cache.max_ttl_seconds", "must be 0..86400 (0 disables the cache)");
    }
    let cache_local_entries = raw.cache.local_entries.unwrap_or(DEFAULT_LOCAL_ENTRIES);
    if cache_local_entries > 65_536 {
        return fail("cache.local_entries", "must be 0..65536 (0: every lookup reads shared data)");
    }
    let max_token_bytes = raw.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
    if !(256..=65_536).contains(&max_token_bytes) {
        return fail("max_token_bytes", "must be 256..65536");
    }
    let realm = raw.realm.unwrap_or_else(|| "api".into());
    if !realm.bytes().all(|c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\') {
        return fail("realm", "must be printable ASCII without quotes or backslashes");
    }
    let sts = match raw.sts {
        None => None,
        Some(x) => Some(sts::sts(x)?),
    };
    if let Some(i) = routes.iter().position(|r| r.txn.is_some()) {
        if sts.as_ref().is_none_or(|s| s.jwks.is_none()) {
            return fail(format!("routes[{i}].exchange.txn_token"), "needs `sts.jwks`: a Txn-Token is verified before it is forwarded");
        }
    }
    let needs_source_address = routes.iter().any(|r| r.txn.is_some());
    let txn_replay = providers.iter().any(|p| p.txn_token.as_ref().is_some_and(|t| t.refuse_replay));
    let stat_prefix = raw.stat_prefix.unwrap_or_else(|| "token_exchange_filter".into());
    if stat_prefix.is_empty() || !stat_prefix.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.') {
        return fail("stat_prefix", "must be non-empty and use only [A-Za-z0-9_.]");
    }
    let mut carried_claims: Vec<String> = Vec::new();
    for m in routes.iter().filter_map(|r| r.mint.as_ref()) {
        carried_claims.extend(["sub", "iss", "act"].map(String::from));
        carried_claims.extend(m.copy_claims.iter().cloned());
    }
    carried_claims.extend(routes.iter().filter_map(|r| r.embedded.as_ref()).map(|e| e.claim.clone()));
    carried_claims.extend(routes.iter().filter_map(|r| r.require.as_ref()).flat_map(|q| q.claims.iter().map(|(c, _)| c.clone())));
    if txn_replay {
        carried_claims.push("txn".into());
    }
    carried_claims.sort();
    carried_claims.dedup();
    let strip = &forward.strip_headers;
    // DPoP needs every `DPoP` header and the URL.
    let needed_headers = (dpop_source.is_none() && sources
        .iter()
        .all(|s| matches!(s, Source::Header { name, .. } if name == "authorization")))
        .then(|| {
            let mut v: Vec<String> = Vec::new();
            let serves_jwks = signing.as_ref().is_some_and(|s| s.jwks_path.is_some());
            if serves_jwks || needs_source_address || routes.iter().any(|r| r.matcher.path_prefix.is_some() || r.matcher.path_exact.is_some()) {
                v.push(":path".into());
            }
            if serves_jwks || needs_source_address || routes.iter().any(|r| !r.matcher.methods.is_empty()) {
                v.push(":method".into());
            }
            if routes.iter().any(|r| r.matcher.authority.is_some()) {
                v.push(":authority".into());
            }
            v.push("authorization".into());
            // Known for free with the rest of the map: an absent stripped header is not removed.
            v.extend(strip.iter().filter(|h| !v.contains(h)).cloned().collect::<Vec<_>>());
            v
        });
    // Only `authorization` is read, and at most one header (with its underscore spelling) is
    // stripped: those go unread, each removal unconditional.
    let only_authorization = strip.len() <= 2 && needed_headers.as_ref().is_some_and(|v| v.first().is_some_and(|h| h == "authorization"));
    let by_issuer = providers.iter().enumerate().map(|(i, p)| (p.issuer.clone(), i)).collect();
    Ok(Config {
        by_issuer,
        providers,
        sources,
        routes,
        forward,
        sts,
        signing,
        carried_claims,
        cache_max_entries,
        cache_max_ttl_ms: cache_max_ttl_s * 1000,
        cache_local_entries,
        realm,
        stat_prefix,
        max_token_bytes,
        fingerprint,
        hash_keys: [crate::authenticate::CLAIMS_PURPOSE, Kind::Exchange as u8, Kind::Mint as u8, Kind::Embedded as u8].map(|purpose| crate::authenticate::hash_key(&fingerprint, purpose)),
        needs_route_name,
        needs_cluster,
        needed_headers,
        only_authorization,
        dpop_source,
        sender_checks,
        needs_peer_cert,
        needs_source_address,
        txn_replay,
    })
}
