//! Authorization on verified claims only, never on a header the client sent: which providers a
//! route accepts, and the scopes a route's credential needs (checked before any callout, so a
//! missing scope costs no STS call). Per-route `require` rules (issue 13) join here.

use crate::config::Config;
use crate::reply::{self, Reply};

/// Whether provider `p` may authenticate requests on `route` (no route: every provider).
pub fn provider_allowed(cfg: &Config, route: Option<usize>, p: usize) -> bool {
    route.is_none_or(|r| cfg.routes[r].providers.contains(&p))
}

/// The scopes to ask for: all of `required` (the route's), which the subject must hold, or the
/// 403 `insufficient_scope` that names them (RFC 6750 §3.1).
pub fn required_scopes(cfg: &Config, required: &[String], held: &[String]) -> Result<Vec<String>, Reply> {
    crate::sts::downscope(required, held)
        .map_err(|_| reply::insufficient_scope(&cfg.realm, "token lacks a scope this route requires", &required.join(" ")))
}
