//! `routes[]`: what a route matches (path, host, Envoy's route or cluster), which providers it
//! accepts, whether it is anonymous, and its credential for the next hop (`exchange`).

use super::{fail, ConfigError, Provider};
use crate::sts::ExchangeSpec;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExchange {
    #[serde(default)]
    pub(super) audience: Option<OneOrMany>,
    #[serde(default)]
    pub(super) resource: Option<OneOrMany>,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    #[serde(rename = "match", default)]
    pub(super) matcher: RawMatch,
    #[serde(default)]
    pub(super) allow_anonymous: bool,
    #[serde(default)]
    pub(super) providers: Option<Vec<String>>,
    #[serde(default)]
    pub(super) exchange: Option<RawExchange>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMatch {
    #[serde(default)]
    pub(super) path_prefix: Option<String>,
    #[serde(default)]
    pub(super) path_exact: Option<String>,
    #[serde(default)]
    pub(super) authority: Option<String>,
    #[serde(default)]
    pub(super) route_name: Option<String>,
    #[serde(default)]
    pub(super) cluster: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteMatch {
    pub path_prefix: Option<String>,
    pub path_exact: Option<String>,
    pub authority: Option<String>,
    pub route_name: Option<String>,
    pub cluster: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub matcher: RouteMatch,
    pub allow_anonymous: bool,
    /// Indexes into `Config::providers` allowed on this route.
    pub providers: Vec<usize>,
    /// Exchange the token at the STS for this target; `None` forwards the original token.
    pub exchange: Option<ExchangeSpec>,
}

/// The routes, and whether any matches on Envoy's `route_name` / `cluster`.
pub(super) fn routes(raw: Vec<RawRoute>, providers: &[Provider], has_sts: bool) -> Result<(Vec<Route>, bool, bool), ConfigError> {
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
        let exchange = match r.exchange {
            None => None,
            Some(x) => {
                if !has_sts {
                    return fail(format!("{f}.exchange"), "needs a top-level `sts`");
                }
                let audiences = x.audience.map(OneOrMany::into_vec).unwrap_or_default();
                let resources = x.resource.map(OneOrMany::into_vec).unwrap_or_default();
                if audiences.is_empty() && resources.is_empty() {
                    return fail(format!("{f}.exchange"), "set `audience` and/or `resource`");
                }
                for (name, list) in [("audience", &audiences), ("resource", &resources)] {
                    if list.iter().any(|a| a.is_empty() || a.contains('*')) {
                        return fail(format!("{f}.exchange.{name}"), "values must be non-empty and without wildcards");
                    }
                }
                let mut scopes = x.scopes;
                if scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
                    return fail(format!("{f}.exchange.scopes"), "scopes must be non-empty and without spaces");
                }
                scopes.sort();
                scopes.dedup();
                Some(ExchangeSpec { audiences, resources, scopes })
            }
        };
        routes.push(Route {
            exchange,
            matcher: RouteMatch {
                path_prefix: m.path_prefix,
                path_exact: m.path_exact,
                authority,
                route_name: m.route_name,
                cluster: m.cluster,
            },
            allow_anonymous: r.allow_anonymous,
            providers: allowed,
        });
    }
    Ok((routes, needs_route_name, needs_cluster))
}
