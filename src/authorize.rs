//! Authorization on verified claims only, never on a header the client sent: which providers a
//! route accepts, the route's `require` rules (scopes all/any, claim values), and the scopes a
//! route's credential needs (checked before any callout, so a missing scope costs no STS call).

use crate::authenticate::Verified;
use crate::config::{Config, Require};
use crate::reply::{self, Reply};
use serde_json::Value;

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

/// Why a `require` rule failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ScopesAll,
    ScopesAny,
    Claim,
}

/// Whether one claim value satisfies one accepted value: equal strings or booleans, numerically
/// equal numbers (1 and 1.0 are one number).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64().zip(y.as_f64()).is_some_and(|(x, y)| x == y),
        _ => a == b,
    }
}

/// A claim holds when its value is one of `accepted` or, for an array, contains one of them.
pub fn claim_holds(value: Option<&Value>, accepted: &[Value]) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Array(items)) => items.iter().any(|i| accepted.iter().any(|a| same(i, a))),
        Some(v) => accepted.iter().any(|a| same(v, a)),
    }
}

/// `require` against the verified token's scopes and carried claims (`Verified::carry` holds
/// every claim a `require` names, under that name).
pub fn check_require(q: &Require, v: &Verified) -> Result<(), Refusal> {
    if !q.scopes_all.iter().all(|s| v.scopes.binary_search(s).is_ok()) {
        return Err(Refusal::ScopesAll);
    }
    if !q.scopes_any.is_empty() && !q.scopes_any.iter().any(|s| v.scopes.binary_search(s).is_ok()) {
        return Err(Refusal::ScopesAny);
    }
    if q.claims.is_empty() {
        return Ok(());
    }
    let carried = crate::jose::json::parse_object(v.carry.as_bytes()).unwrap_or_default();
    if q.claims.iter().all(|(name, accepted)| claim_holds(carried.get(name), accepted)) {
        Ok(())
    } else {
        Err(Refusal::Claim)
    }
}

/// The route's `require`, or its 403: `insufficient_scope` naming the scopes it needs for a
/// scope failure (for `scopes_any`, the alternatives), without `scope` for a claim failure.
pub fn authorize(cfg: &Config, route: Option<usize>, v: &Verified) -> Result<(), Reply> {
    let Some(q) = route.and_then(|r| cfg.routes[r].require.as_ref()) else { return Ok(()) };
    check_require(q, v).map_err(|why| match why {
        Refusal::ScopesAll => reply::insufficient_scope(&cfg.realm, "token lacks a scope this route requires", &q.scopes_all.join(" ")),
        Refusal::ScopesAny => reply::insufficient_scope(&cfg.realm, "token has none of the scopes this route accepts", &q.scopes_any.join(" ")),
        Refusal::Claim => reply::insufficient_scope(&cfg.realm, "token claims do not permit this route", ""),
    })
}
