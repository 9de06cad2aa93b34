//! `providers[].introspection`: the RFC 7662 endpoint that decides opaque tokens (the phantom
//! token pattern), its client authentication, timeouts and how long answers are kept.

use super::sts::client_auth;
use super::{fail, ConfigError};
use crate::sts::ClientAuth;
use tef_config_raw::RawIntrospection;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    pub cluster: String,
    pub authority: String,
    /// `None`: the provider's discovery document's `introspection_endpoint` (shared data).
    pub path: Option<String>,
    pub client_auth: ClientAuth,
    pub timeout_ms: u64,
    /// An active answer is kept at most this long (and never past the token's `exp`, nor past
    /// the answer's `Cache-Control: max-age`; `no-store`: not at all).
    pub max_cache_ms: u64,
    /// An inactive answer is kept this long (0: not at all), so floods of junk tokens cost one
    /// call each, not one per request.
    pub negative_cache_ms: u64,
    /// Ask for, and accept only, signed answers (RFC 9701 `application/token-introspection+jwt`),
    /// verified against the provider's `jwks`.
    pub signed: bool,
    /// The provider's JWTs are introspected too, after their local verification (so a revoked
    /// JWT stops passing within `max_cache_seconds`); the claims stay the verified JWT's.
    pub jwts: bool,
}

pub(super) fn introspection(f: &str, x: RawIntrospection, has_jwks: bool, has_discovery: bool) -> Result<Introspection, ConfigError> {
    if x.cluster.is_empty() {
        return fail(format!("{f}.cluster"), "must not be empty");
    }
    match &x.path {
        Some(p) if !p.starts_with('/') => return fail(format!("{f}.path"), "must start with \"/\""),
        None if !has_discovery => {
            return fail(format!("{f}.path"), "is required (or the provider's `discovery`, whose document's introspection_endpoint is then used)")
        }
        _ => {}
    }
    let client_auth = client_auth(&format!("{f}.client_auth"), &x.client_auth)?;
    let timeout_ms = x.timeout_ms.unwrap_or(1500);
    if !(10..=60_000).contains(&timeout_ms) {
        return fail(format!("{f}.timeout_ms"), "must be 10..60000");
    }
    let max_cache_s = x.max_cache_seconds.unwrap_or(300);
    if max_cache_s > 86_400 {
        return fail(format!("{f}.max_cache_seconds"), "must be 0..86400 (0: ask on every request)");
    }
    let negative_s = x.negative_cache_seconds.unwrap_or(10);
    if negative_s > 3600 {
        return fail(format!("{f}.negative_cache_seconds"), "must be 0..3600");
    }
    if x.introspect_jwts && !has_jwks {
        return fail(format!("{f}.introspect_jwts"), "needs the provider's `jwks` (or `discovery`): JWTs are verified locally first");
    }
    if x.signed_answers && !has_jwks {
        return fail(format!("{f}.signed_answers"), "needs the provider's `jwks`: signed answers are verified against them");
    }
    Ok(Introspection {
        authority: x.authority.filter(|a| !a.is_empty()).unwrap_or_else(|| x.cluster.clone()),
        cluster: x.cluster,
        path: x.path,
        client_auth,
        timeout_ms,
        max_cache_ms: max_cache_s * 1000,
        negative_cache_ms: negative_s * 1000,
        signed: x.signed_answers,
        jwts: x.introspect_jwts,
    })
}
