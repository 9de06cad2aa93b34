//! `routes[].require`: the coarse authorization a route asks of the verified (or introspected)
//! claims before its credential is obtained: scopes (all of, any of) and claim values.

use super::{fail, ConfigError};
use tef_config_raw::RawRequire;
use serde_json::Value;

/// What a route requires. Every part must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Require {
    /// Sorted, deduplicated: the subject must hold each.
    pub scopes_all: Vec<String>,
    /// Sorted, deduplicated: the subject must hold at least one (empty: no condition).
    pub scopes_any: Vec<String>,
    /// Claim name (top-level, or a dotted path into objects) → accepted values (strings,
    /// numbers, booleans). A claim holds when its value is one of them or, for an array claim,
    /// contains one of them.
    pub claims: Vec<(String, Vec<Value>)>,
}

/// At most this many claims per route, and values per claim.
pub const MAX_REQUIRED_CLAIMS: usize = 32;
pub const MAX_CLAIM_VALUES: usize = 64;

fn scopes(field: &str, mut v: Vec<String>) -> Result<Vec<String>, ConfigError> {
    if let Some(j) = v.iter().position(|s| s.is_empty() || s.bytes().any(|c| c <= b' ' || c == b'"' || c == b'\\' || c >= 0x7f)) {
        return fail(format!("{field}[{j}]"), "scopes must be non-empty printable ASCII without spaces, quotes or backslashes");
    }
    v.sort();
    v.dedup();
    Ok(v)
}

pub(super) fn require(f: &str, r: RawRequire) -> Result<Require, ConfigError> {
    let scopes_all = scopes(&format!("{f}.scopes_all"), r.scopes_all)?;
    let scopes_any = scopes(&format!("{f}.scopes_any"), r.scopes_any)?;
    if r.claims.len() > MAX_REQUIRED_CLAIMS {
        return fail(format!("{f}.claims"), format!("at most {MAX_REQUIRED_CLAIMS} claims"));
    }
    let mut claims = Vec::new();
    for (name, v) in r.claims {
        let cf = format!("{f}.claims.{name}");
        if name.is_empty() || name.split('.').any(str::is_empty) {
            return fail(cf, "claim names must be non-empty (dotted paths without empty parts)");
        }
        let values = match v {
            Value::Array(a) => a,
            one => vec![one],
        };
        if values.is_empty() || values.len() > MAX_CLAIM_VALUES {
            return fail(cf, format!("list 1..{MAX_CLAIM_VALUES} accepted values"));
        }
        if let Some(j) = values.iter().position(|x| !matches!(x, Value::String(_) | Value::Number(_) | Value::Bool(_))) {
            return fail(format!("{cf}[{j}]"), "accepted values are strings, numbers or booleans");
        }
        claims.push((name, values));
    }
    if scopes_all.is_empty() && scopes_any.is_empty() && claims.is_empty() {
        return fail(f, "requires nothing: set `scopes_all`, `scopes_any` or `claims` (or omit `require`)");
    }
    Ok(Require { scopes_all, scopes_any, claims })
}
