//! `routes[]`: what a route matches (path, host, Envoy's route or cluster), which providers it
//! accepts, whether it is anonymous, and its credential for the next hop (`exchange` at the STS,
//! `mint`: a token the filter signs itself, or `embedded`: a token for this route's audience that
//! the verified token carries).

use super::require::{self, Require};
use super::{fail, ConfigError, Provider};
use crate::sts::ExchangeSpec;
use tef_config_raw::{OneOrMany, RawAuthorization, RawRoute};

/// An exchange target, checked: `f` names the field.
fn exchange_spec(f: &str, audience: Option<OneOrMany>, resource: Option<OneOrMany>, scopes: Vec<String>) -> Result<ExchangeSpec, ConfigError> {
    let audiences = audience.map(OneOrMany::into_vec).unwrap_or_default();
    let resources = resource.map(OneOrMany::into_vec).unwrap_or_default();
    if audiences.is_empty() && resources.is_empty() {
        return fail(f, "set `audience` and/or `resource`");
    }
    for (name, list) in [("audience", &audiences), ("resource", &resources)] {
        if list.iter().any(|a| a.is_empty() || a.contains('*')) {
            return fail(format!("{f}.{name}"), "values must be non-empty and without wildcards");
        }
    }
    let mut scopes = scopes;
    if scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
        return fail(format!("{f}.scopes"), "scopes must be non-empty and without spaces");
    }
    scopes.sort();
    scopes.dedup();
    Ok(ExchangeSpec { audiences, resources, scopes })
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteMatch {
    pub path_prefix: Option<String>,
    pub path_exact: Option<String>,
    pub authority: Option<String>,
    pub route_name: Option<String>,
    pub cluster: Option<String>,
    /// `:method` is one of these (uppercase); empty: any method.
    pub methods: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub matcher: RouteMatch,
    pub allow_anonymous: bool,
    /// Indexes into `Config::providers` allowed on this route.
    pub providers: Vec<usize>,
    /// Exchange the token at the STS for this target (on a Txn-Token route: the client's
    /// token for the upstream, next to the Txn-Token).
    pub exchange: Option<ExchangeSpec>,
    /// Mint a token for this audience, signed by the filter. Neither: the original token is
    /// forwarded.
    pub mint: Option<MintSpec>,
    /// Forward the token for this audience that the verified token carries in a claim.
    pub embedded: Option<EmbeddedSpec>,
    /// Obtain a Transaction Token for the call chain (`credential/txn_token.rs`).
    pub txn: Option<TxnSpec>,
    /// Authorization on the verified claims (`authorize.rs`), before the credential.
    pub require: Option<Require>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedSpec {
    /// The claim holding the tokens: an array of tokens, or an object of audience → token.
    pub claim: String,
    pub audience: String,
}

/// `exchange` with `txn_token: true`: a Txn-Token from the Txn-Token service (the `sts`
/// endpoint, draft-ietf-oauth-transaction-tokens-10 §7) for the trust domain, per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnSpec {
    /// The Txn-Token's `aud`: the trust domain the call chain runs in.
    pub trust_domain: String,
    /// Sorted, deduplicated; empty: the subject's scopes.
    pub scopes: Vec<String>,
    /// `authorization: "forward"`: the client's token goes on as it came; by default it is
    /// removed (the outside token never travels inside).
    pub keep_authorization: bool,
    /// The header the Txn-Token goes in (`txn-token`).
    pub header: String,
    /// The longest lifetime (`exp` − now) an issued Txn-Token may have.
    pub max_lifetime_ms: u64,
}

pub const TXN_TOKEN_HEADER: &str = "txn-token";

impl Route {
    /// Whether the client's token is replaced on this route (and so taken out of the request).
    pub fn replaces_token(&self) -> bool {
        self.exchange.is_some() || self.mint.is_some() || self.embedded.is_some() || self.txn.as_ref().is_some_and(|t| !t.keep_authorization)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintSpec {
    pub audience: String,
    /// Claims copied from the verified token as they are.
    pub copy_claims: Vec<String>,
    /// Sorted, deduplicated; empty: the subject's scopes.
    pub scopes: Vec<String>,
    /// Carry the verified incoming token in the minted one (claim `subject_token`), for a next
    /// hop that verifies both (`providers[].nested`).
    pub nest: bool,
}

/// Claims the filter sets itself in a minted token: never copied.
pub const MINTED_CLAIMS: [&str; 11] = ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "act", "scope", "sub_id", "subject_token"];

/// The routes, and whether any matches on Envoy's `route_name` / `cluster`.
pub(super) fn routes(raw: Vec<RawRoute>, providers: &[Provider], has_sts: bool, has_signing: bool) -> Result<(Vec<Route>, bool, bool), ConfigError> {
    let mut routes = Vec::new();
    let (mut needs_route_name, mut needs_cluster) = (false, false);
    for (i, r) in raw.into_iter().enumerate() {
        let f = format!("routes[{i}]");
        let m = r.matcher;
        for (name, v) in [("path_prefix", &m.path_prefix), ("path_exact", &m.path_exact)] {
            if let Some(p) = v {
                if !p.starts_with('/') {
                    return fail(format!("{f}.match.{name}"), "must start with \"/\"");
                }
            }
        }
        if m.path_prefix.is_some() && m.path_exact.is_some() {
            return fail(format!("{f}.match"), "set at most one of `path_prefix` and `path_exact`");
        }
        let authority = match m.authority {
            None => None,
            Some(a) => {
                let host = crate::route::host_of(&a).into_owned();
                if host != a.to_ascii_lowercase().trim_end_matches('.') || host.is_empty() {
                    return fail(format!("{f}.match.authority"), format!("\"{a}\": give the host name alone, without a port (requests are matched on their host without port or trailing dot)"));
                }
                Some(host)
            }
        };
        let methods = match m.methods {
            None => Vec::new(),
            Some(list) if list.is_empty() => return fail(format!("{f}.match.methods"), "must not be empty (omit it to match every method)"),
            Some(list) => {
                let mut v = Vec::new();
                for (j, x) in list.into_iter().enumerate() {
                    if x.is_empty() || !x.bytes().all(|c| c.is_ascii_uppercase()) {
                        return fail(format!("{f}.match.methods[{j}]"), format!("\"{x}\": methods are uppercase tokens (GET, POST, ...)"));
                    }
                    v.push(x);
                }
                v.sort();
                v.dedup();
                v
            }
        };
        if r.allow_anonymous && r.require.is_some() {
            return fail(format!("{f}.require"), "an anonymous route cannot require claims (a request without a token has none)");
        }
        let require = match r.require {
            None => None,
            Some(x) => Some(require::require(&format!("{f}.require"), x)?),
        };
        needs_route_name |= m.route_name.is_some();
        needs_cluster |= m.cluster.is_some();
        let allowed = match r.providers {
            None => (0..providers.len()).collect(),
            Some(names) => {
                if r.allow_anonymous && names.is_empty() {
                    Vec::new()
                } else if names.is_empty() {
                    return fail(format!("{f}.providers"), "must not be empty (omit it to allow every provider)");
                } else {
                    let mut v = Vec::new();
                    for (j, n) in names.iter().enumerate() {
                        match providers.iter().position(|p| &p.name == n) {
                            Some(x) => v.push(x),
                            None => return fail(format!("{f}.providers[{j}]"), format!("unknown provider \"{n}\"")),
                        }
                    }
                    v
                }
            }
        };
        let (exchange, txn) = match r.exchange {
            None => (None, None),
            Some(x) => {
                if !has_sts {
                    return fail(format!("{f}.exchange"), "needs a top-level `sts`");
                }
                if !x.txn_token {
                    for (name, set) in [("authorization", x.authorization.is_some()), ("header", x.header.is_some()), ("max_lifetime_seconds", x.max_lifetime_seconds.is_some())] {
                        if set {
                            return fail(format!("{f}.exchange.{name}"), "is for `txn_token: true` only");
                        }
                    }
                    (Some(exchange_spec(&format!("{f}.exchange"), x.audience, x.resource, x.scopes)?), None)
                } else {
                    let spec = exchange_spec(&format!("{f}.exchange"), x.audience, x.resource, x.scopes)?;
                    if spec.audiences.len() != 1 || !spec.resources.is_empty() {
                        return fail(format!("{f}.exchange.audience"), "a Txn-Token is for one trust domain: set one `audience` and no `resource`");
                    }
                    let (keep_authorization, exchange) = match x.authorization {
                        None => (false, None),
                        Some(RawAuthorization::Mode(m)) => match m.as_str() {
                            "remove" => (false, None),
                            "forward" => (true, None),
                            o => return fail(format!("{f}.exchange.authorization"), format!("\"{o}\" is not remove, forward or {{\"exchange\": {{…}}}}")),
                        },
                        Some(RawAuthorization::Exchange { exchange: t }) => {
                            (false, Some(exchange_spec(&format!("{f}.exchange.authorization.exchange"), t.audience, t.resource, t.scopes)?))
                        }
                    };
                    let header = super::header_name(&format!("{f}.exchange.header"), x.header.as_deref().unwrap_or(TXN_TOKEN_HEADER))?;
                    if header == "authorization" || header.starts_with(':') {
                        return fail(format!("{f}.exchange.header"), "must be a header of its own, not authorization");
                    }
                    let life = x.max_lifetime_seconds.unwrap_or(300);
                    if !(1..=3600).contains(&life) {
                        return fail(format!("{f}.exchange.max_lifetime_seconds"), "must be 1..3600 (Txn-Tokens are short-lived)");
                    }
                    let trust_domain = spec.audiences.into_iter().next().unwrap_or_default();
                    let scopes = spec.scopes;
                    (exchange, Some(TxnSpec { trust_domain, scopes, keep_authorization, header, max_lifetime_ms: life * 1000 }))
                }
            }
        };
        let mint = match r.mint {
            None => None,
            Some(m) => {
                if exchange.is_some() || txn.is_some() {
                    return fail(format!("{f}.mint"), "a route either exchanges or mints, not both");
                }
                if !has_signing {
                    return fail(format!("{f}.mint"), "needs a top-level `signing`");
                }
                if m.audience.is_empty() || m.audience.contains('*') {
                    return fail(format!("{f}.mint.audience"), "must be non-empty and without wildcards");
                }
                for (j, c) in m.copy_claims.iter().enumerate() {
                    if c.is_empty() || MINTED_CLAIMS.contains(&c.as_str()) {
                        return fail(format!("{f}.mint.copy_claims[{j}]"), format!("\"{c}\" is set by the filter itself and cannot be copied"));
                    }
                }
                let mut scopes = m.scopes;
                if scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
                    return fail(format!("{f}.mint.scopes"), "scopes must be non-empty and without spaces");
                }
                scopes.sort();
                scopes.dedup();
                let mut copy_claims = m.copy_claims;
                copy_claims.sort();
                copy_claims.dedup();
                Some(MintSpec { audience: m.audience, copy_claims, scopes, nest: m.nest })
            }
        };
        let embedded = match r.embedded {
            None => None,
            Some(e) => {
                if exchange.is_some() || txn.is_some() || mint.is_some() {
                    return fail(format!("{f}.embedded"), "a route has one credential: exchange, mint or embedded");
                }
                if e.claim.is_empty() || MINTED_CLAIMS.contains(&e.claim.as_str()) {
                    return fail(format!("{f}.embedded.claim"), "must name a claim that carries tokens");
                }
                if e.audience.is_empty() || e.audience.contains('*') {
                    return fail(format!("{f}.embedded.audience"), "must be non-empty and without wildcards");
                }
                Some(EmbeddedSpec { claim: e.claim, audience: e.audience })
            }
        };
        routes.push(Route {
            exchange,
            txn,
            mint,
            embedded,
            require,
            matcher: RouteMatch {
                // Every normalised path starts with "/": that prefix is no condition, and a route
                // set matching only on it needs no `:path` read per request.
                path_prefix: m.path_prefix.filter(|p| p != "/"),
                path_exact: m.path_exact,
                authority,
                route_name: m.route_name,
                cluster: m.cluster,
                methods,
            },
            allow_anonymous: r.allow_anonymous,
            providers: allowed,
        });
    }
    Ok((routes, needs_route_name, needs_cluster))
}
