//! `providers[]`: trusted issuers, their audiences, algorithms, clock skew, token types and
//! JWKS (inline, or remote with refresh, refetch and back-off settings).

use super::introspection::{self, Introspection};
use super::sender::{self, CertificateBinding, Dpop};
use super::{fail, ConfigError, DEFAULT_SKEW_S};
use crate::jose::jwk::{self, KeySet};
use crate::jose::Alg;
use tef_config_raw::{RawJwks, RawProvider};
use serde_json::Value;
use std::rc::Rc;

/// The provider's tokens are Txn-Tokens (draft-ietf-oauth-transaction-tokens-10 §4): `typ`
/// `txntoken+jwt`, `txn` and `sub` required, `aud` the trust domain (`audiences`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnProvider {
    /// `req_wl` (each of its values) must be one of these; empty: not checked.
    pub workloads: Vec<String>,
    /// A `txn` seen on an earlier request is refused (`txn_replay.rs`).
    pub refuse_replay: bool,
    /// Slots of the shared-data record of the `txn`s seen.
    pub replay_cache_entries: u32,
}

/// Where OpenID Connect Discovery 1.0 §4 puts the metadata.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

pub struct Provider {
    pub name: String,
    pub issuer: String,
    pub audiences: Vec<AudiencePattern>,
    /// Allowed algorithms; `None` = whatever the provider's keys are for.
    pub algorithms: Option<Vec<Alg>>,
    pub skew_s: u64,
    pub required_claims: Vec<String>,
    /// Accepted `typ` values, lowercase, without `application/`; `""` stands for an absent `typ`.
    pub token_types: Vec<String>,
    pub jwks: JwksSource,
    /// Opaque tokens are decided by this RFC 7662 endpoint (`introspector.rs`).
    pub introspection: Option<Introspection>,
    /// This provider's tokens carry the end user's own token (`credential/mint.rs` with `nest`).
    pub nested: Option<Nested>,
    /// Named in a nested provider's `inner_providers`: its tokens are accepted only inside a
    /// nested token, never on their own (else the edge's token would pass here directly).
    pub inner_only: bool,
    /// OpenID Connect ID tokens are refused (`claims::id_token`).
    pub refuse_id_tokens: bool,
    /// Claims whose presence marks an ID token (default `nonce`, `at_hash`, `c_hash`, `s_hash`).
    pub id_token_claims: Vec<String>,
    /// The IdP's OAuth client ids: a token meant only for them (every `aud` one of these) is an
    /// ID token, not a token for an API.
    pub client_ids: Vec<String>,
    /// DPoP-bound tokens (RFC 9449): proofs checked by `sender.rs`.
    pub dpop: Option<Dpop>,
    /// Certificate-bound tokens (RFC 8705 §3).
    pub certificate_binding: Option<CertificateBinding>,
    /// Transaction Tokens.
    pub txn_token: Option<TxnProvider>,
}

/// The claims that only OpenID Connect ID tokens carry (OIDC Core §2, §3.1.3.6, §3.3.2.11;
/// FAPI's `s_hash`).
pub const ID_TOKEN_CLAIMS: [&str; 4] = ["nonce", "at_hash", "c_hash", "s_hash"];

/// A provider whose tokens carry an inner token in a claim: the outer is checked as this
/// provider's (audience = this service), the inner as one of `inner_providers`' (its own
/// audience, e.g. the edge's), one level deep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nested {
    pub inner_providers: Vec<usize>,
    pub claim: String,
    /// Where the caller (the outer token's `["iss","sub"]`) goes.
    pub caller_header: Option<String>,
}

/// The claim a nested token carries its inner token in, by default.
pub const NESTED_CLAIM: &str = "subject_token";

pub enum JwksSource {
    Inline(Rc<KeySet>),
    Remote(RemoteJwks),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    pub cluster: String,
    pub authority: String,
    /// The JWKS path; with `discovery`, the metadata document's path (the JWKS path is what the
    /// document's `jwks_uri` says).
    pub path: String,
    /// OpenID Connect Discovery: `path` is the metadata document, whose `issuer` must be this.
    pub discovery_issuer: Option<String>,
    pub refresh_ms: u64,
    pub timeout_ms: u64,
    pub min_refetch_ms: u64,
    pub retry_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudiencePattern {
    Exact(String),
    /// `*.ecomm.com` → scheme "" and suffix ".ecomm.com"; `https://*.ecomm.com` → scheme "https://".
    Wildcard { scheme: String, suffix: String },
}

fn dns_like(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|l| !l.is_empty() && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
}

fn audience(field: &str, a: &str) -> Result<AudiencePattern, ConfigError> {
    if a.is_empty() {
        return fail(field, "empty audience");
    }
    if !a.contains('*') {
        return Ok(AudiencePattern::Exact(a.to_owned()));
    }
    let (scheme, rest) = match a.find("://") {
        Some(i) => (&a[..i + 3], &a[i + 3..]),
        None => ("", a),
    };
    let Some(suffix) = rest.strip_prefix("*.") else {
        return fail(field, format!("wildcard in the wrong place in \"{a}\": only a leading \"*.\" label is allowed"));
    };
    if scheme.contains('*') || !dns_like(suffix) {
        return fail(field, format!("wildcard in the wrong place in \"{a}\": after \"*.\" must come a DNS name"));
    }
    if !suffix.contains('.') {
        return fail(field, format!("wildcard \"{a}\" is too broad: name at least two labels after \"*.\""));
    }
    Ok(AudiencePattern::Wildcard { scheme: scheme.to_owned(), suffix: format!(".{suffix}") })
}

fn non_empty(field: &str, v: Option<String>) -> Result<String, ConfigError> {
    match v {
        Some(s) if !s.is_empty() => Ok(s),
        Some(_) => fail(field, "must not be empty"),
        None => fail(field, "is required for a remote JWKS"),
    }
}

pub(super) fn jwks(field: &str, raw: RawJwks) -> Result<JwksSource, ConfigError> {
    let inline_doc = match (raw.inline, raw.inline_string) {
        (Some(_), Some(_)) => return fail(field, "set only one of `inline` and `inline_string`"),
        (Some(Value::Object(m)), None) => Some(m),
        (Some(_), None) => return fail(format!("{field}.inline"), "must be a JWKS object"),
        (None, Some(s)) => match crate::jose::json::parse_object(s.as_bytes()) {
            Some(m) => Some(m),
            None => return fail(format!("{field}.inline_string"), "is not a JWKS JSON object"),
        },
        (None, None) => None,
    };
    if let Some(doc) = inline_doc {
        let which = if raw.cluster.is_some() { "cluster" } else if raw.path.is_some() { "path" } else { "" };
        if !which.is_empty() {
            return fail(format!("{field}.{which}"), "an inline JWKS takes no remote settings");
        }
        let (set, rejected) = jwk::parse_jwks_value(&doc).or_else(|e| fail(format!("{field}.inline"), e.0))?;
        if let Some((i, e)) = rejected.first() {
            return fail(format!("{field}.inline.keys[{i}]"), e.0.clone());
        }
        if set.keys.is_empty() {
            return fail(format!("{field}.inline.keys"), "no keys");
        }
        return Ok(JwksSource::Inline(Rc::new(set)));
    }
    let cluster = non_empty(&format!("{field}.cluster"), raw.cluster)?;
    let path = non_empty(&format!("{field}.path"), raw.path)?;
    if !path.starts_with('/') {
        return fail(format!("{field}.path"), "must start with \"/\"");
    }
    let authority = match raw.authority {
        Some(a) if a.is_empty() => return fail(format!("{field}.authority"), "must not be empty"),
        Some(a) => a,
        None => cluster.clone(),
    };
    let refresh_s = raw.refresh_seconds.unwrap_or(300);
    if !(1..=86_400).contains(&refresh_s) {
        return fail(format!("{field}.refresh_seconds"), "must be 1..86400");
    }
    let timeout_ms = raw.timeout_ms.unwrap_or(2000);
    if !(10..=60_000).contains(&timeout_ms) {
        return fail(format!("{field}.timeout_ms"), "must be 10..60000");
    }
    let min_refetch_s = raw.min_refetch_seconds.unwrap_or(30);
    if min_refetch_s > 86_400 {
        return fail(format!("{field}.min_refetch_seconds"), "must be 0..86400");
    }
    let retry_ms = raw.retry_ms.unwrap_or(2000);
    if !(100..=600_000).contains(&retry_ms) {
        return fail(format!("{field}.retry_ms"), "must be 100..600000");
    }
    Ok(JwksSource::Remote(RemoteJwks {
        discovery_issuer: None,
        cluster,
        authority,
        path,
        refresh_ms: refresh_s * 1000,
        timeout_ms,
        min_refetch_ms: min_refetch_s * 1000,
        retry_ms: retry_ms.min(refresh_s * 1000),
    }))
}

pub(super) fn providers(raw: Vec<RawProvider>) -> Result<Vec<Provider>, ConfigError> {
    if raw.is_empty() {
        return fail("providers", "at least one provider is required");
    }
    if raw.len() > 255 {
        return fail("providers", "at most 255 providers");
    }
    let mut providers: Vec<Provider> = Vec::new();
    let mut issuers = std::collections::HashSet::new();
    for (i, p) in raw.into_iter().enumerate() {
        let f = format!("providers[{i}]");
        if p.name.is_empty() || !p.name.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c)) {
            return fail(format!("{f}.name"), "must be non-empty and use only [A-Za-z0-9._-]");
        }
        if providers.iter().any(|q| q.name == p.name) {
            return fail(format!("{f}.name"), format!("duplicate provider name \"{}\"", p.name));
        }
        if p.issuer.is_empty() {
            return fail(format!("{f}.issuer"), "must not be empty");
        }
        if !issuers.insert(p.issuer.clone()) {
            return fail(format!("{f}.issuer"), "another provider has the same issuer (providers are chosen by `iss`)");
        }
        if p.audiences.is_empty() {
            return fail(format!("{f}.audiences"), "at least one audience is required");
        }
        let audiences = p
            .audiences
            .iter()
            .enumerate()
            .map(|(j, a)| audience(&format!("{f}.audiences[{j}]"), a))
            .collect::<Result<Vec<_>, _>>()?;
        let algorithms = match p.algorithms {
            None => None,
            Some(list) => {
                if list.is_empty() {
                    return fail(format!("{f}.algorithms"), "must not be empty (omit it to use the keys' algorithms)");
                }
                let mut v = Vec::new();
                for (j, a) in list.iter().enumerate() {
                    match Alg::from_name(a) {
                        Some(x) => v.push(x),
                        None => {
                            return fail(
                                format!("{f}.algorithms[{j}]"),
                                format!("\"{a}\" is not supported (RS256, ES256, EdDSA; never none or HS*)"),
                            )
                        }
                    }
                }
                Some(v)
            }
        };
        let skew_s = p.clock_skew_seconds.unwrap_or(DEFAULT_SKEW_S);
        if skew_s > 600 {
            return fail(format!("{f}.clock_skew_seconds"), "must be at most 600");
        }
        let token_types = match p.token_types {
            None if p.txn_token.is_some() => vec![crate::txn_token::TYP.to_owned()],
            None => vec![String::new(), "jwt".into(), "at+jwt".into()],
            Some(list) => list
                .iter()
                .map(|t| {
                    let t = t.to_ascii_lowercase();
                    t.strip_prefix("application/").map(str::to_owned).unwrap_or(t)
                })
                .collect(),
        };
        for (j, c) in p.required_claims.iter().enumerate() {
            if c.is_empty() {
                return fail(format!("{f}.required_claims[{j}]"), "must not be empty");
            }
        }
        let mut required_claims = p.required_claims;
        let txn_token = match p.txn_token {
            None => None,
            Some(t) => {
                if p.introspection.is_some() {
                    return fail(format!("{f}.txn_token"), "Txn-Tokens are JWTs: not with `introspection`");
                }
                if let Some(j) = t.workloads.iter().position(String::is_empty) {
                    return fail(format!("{f}.txn_token.workloads[{j}]"), "must not be empty");
                }
                required_claims.extend(["txn", "sub"].map(String::from));
                required_claims.sort();
                required_claims.dedup();
                let replay_cache_entries = t.replay_cache_entries.unwrap_or(65_536);
                if !(64..=4_000_000).contains(&replay_cache_entries) {
                    return fail(format!("{f}.txn_token.replay_cache_entries"), "must be 64..4000000");
                }
                if t.replay_cache_entries.is_some() && !t.refuse_replay {
                    return fail(format!("{f}.txn_token.replay_cache_entries"), "is for `refuse_replay: true` only");
                }
                Some(TxnProvider { workloads: t.workloads, refuse_replay: t.refuse_replay, replay_cache_entries })
            }
        };
        let has_jwks = p.jwks.is_some() || p.discovery.is_some();
        let introspection = match p.introspection {
            None => None,
            Some(x) => Some(introspection::introspection(&format!("{f}.introspection"), x, has_jwks, p.discovery.is_some())?),
        };
        let jwks = match (p.jwks, p.discovery) {
            (Some(_), Some(_)) => return fail(format!("{f}.discovery"), "set `jwks` or `discovery`, not both"),
            (None, Some(d)) => {
                let raw = RawJwks {
                    inline: None,
                    inline_string: None,
                    cluster: Some(d.cluster),
                    authority: d.authority,
                    path: Some(d.path.unwrap_or_else(|| DISCOVERY_PATH.to_owned())),
                    refresh_seconds: d.refresh_seconds,
                    timeout_ms: d.timeout_ms,
                    min_refetch_seconds: d.min_refetch_seconds,
                    retry_ms: d.retry_ms,
                };
                match jwks(&format!("{f}.discovery"), raw)? {
                    JwksSource::Remote(r) => JwksSource::Remote(RemoteJwks { discovery_issuer: Some(p.issuer.clone()), ..r }),
                    inline => inline,
                }
            }
            (Some(j), None) => jwks(&format!("{f}.jwks"), j)?,
            // Only an introspecting provider may go without keys: its JWTs then never verify.
            (None, None) if introspection.is_some() => JwksSource::Inline(Rc::new(KeySet::default())),
            (None, None) => return fail(format!("{f}.jwks"), "is required (or `discovery`, or `introspection` for opaque tokens)"),
        };
        if let (Some(algs), JwksSource::Inline(set)) = (&algorithms, &jwks) {
            if !set.keys.iter().any(|k| algs.contains(&k.alg)) {
                return fail(format!("{f}.algorithms"), "no inline key can be used with these algorithms");
            }
        }
        let nested = match p.nested {
            None => None,
            Some(_) if introspection.is_some() => return fail(format!("{f}.nested"), "an introspecting provider cannot be a nested one"),
            Some(n) => {
                if n.inner_providers.is_empty() {
                    return fail(format!("{f}.nested.inner_providers"), "name at least one provider");
                }
                let mut inner = Vec::new();
                for (j, name) in n.inner_providers.iter().enumerate() {
                    // Inner providers come before the outer one (no nesting of nested providers).
                    match providers.iter().position(|q| q.name == *name) {
                        Some(x) if providers[x].nested.is_none() => inner.push(x),
                        Some(_) => return fail(format!("{f}.nested.inner_providers[{j}]"), "a nested provider cannot be an inner one: one level deep"),
                        None => return fail(format!("{f}.nested.inner_providers[{j}]"), format!("unknown provider \"{name}\" (list inner providers before this one)")),
                    }
                }
                let claim = n.claim.unwrap_or_else(|| NESTED_CLAIM.to_owned());
                if claim.is_empty() {
                    return fail(format!("{f}.nested.claim"), "must not be empty");
                }
                let caller_header = match n.caller_header {
                    Some(h) => Some(super::header_name(&format!("{f}.nested.caller_header"), &h)?),
                    None => None,
                };
                Some(Nested { inner_providers: inner, claim, caller_header })
            }
        };
        if let Some(n) = &nested {
            for i in &n.inner_providers {
                providers[*i].inner_only = true;
            }
        }
        let id_token_claims = p.id_token_claims.unwrap_or_else(|| ID_TOKEN_CLAIMS.map(String::from).to_vec());
        if let Some(j) = id_token_claims.iter().position(String::is_empty) {
            return fail(format!("{f}.id_token_claims[{j}]"), "must not be empty");
        }
        if let Some(j) = p.client_ids.iter().position(String::is_empty) {
            return fail(format!("{f}.client_ids[{j}]"), "must not be empty");
        }
        if let Some(j) = p.client_ids.iter().position(|c| audiences.iter().any(|a| crate::claims::audience_matches(a, c))) {
            return fail(format!("{f}.client_ids[{j}]"), "is also an accepted audience: a token for a client is not a token for this API");
        }
        let dpop = match p.dpop {
            None => None,
            Some(d) => Some(sender::dpop(&format!("{f}.dpop"), d)?),
        };
        providers.push(Provider {
            dpop,
            certificate_binding: p.certificate_binding.map(sender::certificate_binding),
            introspection,
            refuse_id_tokens: p.refuse_id_tokens.unwrap_or(true),
            id_token_claims,
            client_ids: p.client_ids,
            inner_only: false,
            nested,
            name: p.name,
            issuer: p.issuer,
            audiences,
            algorithms,
            skew_s,
            required_claims,
            token_types,
            txn_token,
            jwks,
        });
    }
    Ok(providers)
}
