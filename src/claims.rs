//! Registered-claim checks (RFC 7519 §4.1, RFC 8725 §3.8–3.10) and the principal.

use crate::config::{AudiencePattern, Provider};
use crate::metrics::Deny;
use serde_json::{Map, Value};

pub const MAX_AUDIENCES: usize = 128;

/// A token's confirmation (RFC 7800 `cnf`): the DPoP key thumbprint (`jkt`, RFC 9449 §6.1) or
/// the client certificate's SHA-256 (`x5t#S256`, RFC 8705 §3.1) it is bound to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cnf {
    pub jkt: Option<String>,
    pub x5t: Option<String>,
}

impl Cnf {
    pub fn jkt(c: &Option<Box<Cnf>>) -> Option<&str> {
        c.as_ref()?.jkt.as_deref()
    }
    pub fn x5t(c: &Option<Box<Cnf>>) -> Option<&str> {
        c.as_ref()?.x5t.as_deref()
    }
}

/// The token's `cnf`. A member that is there but not a string binds the token to nothing that
/// can match (`Some("")`): such a token is never accepted where its binding is checked.
pub fn cnf(claims: &Map<String, Value>) -> Option<Box<Cnf>> {
    let c = claims.get("cnf")?;
    let member = |name: &str| match c.get(name) {
        None => None,
        // Control bytes never match a thumbprint (and could not be cached).
        Some(Value::String(s)) if !s.bytes().any(|c| c < 0x20) => Some(s.clone()),
        Some(_) => Some(String::new()),
    };
    Some(Box::new(match c {
        Value::Object(_) => Cnf { jkt: member("jkt"), x5t: member("x5t#S256") },
        // A `cnf` that is not an object: bound to something unknown.
        _ => Cnf { jkt: Some(String::new()), x5t: None },
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimsError {
    pub reason: Deny,
    pub description: &'static str,
}

fn e<T>(reason: Deny, description: &'static str) -> Result<T, ClaimsError> {
    Err(ClaimsError { reason, description })
}

/// A NumericDate (RFC 7519 §2): a non-negative JSON number, possibly fractional.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, ClaimsError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
            _ => e(Deny::Claims, "token has an invalid time claim"),
        },
        Some(_) => e(Deny::Claims, "token has an invalid time claim"),
    }
}

pub fn audience_matches(pattern: &AudiencePattern, aud: &str) -> bool {
    match pattern {
        AudiencePattern::Exact(a) => a == aud,
        AudiencePattern::Wildcard { scheme, suffix } => {
            let Some(host) = aud.strip_prefix(scheme.as_str()) else { return false };
            let Some(label) = host.strip_suffix(suffix.as_str()) else { return false };
            !label.is_empty()
                && label.split('.').all(|l| !l.is_empty() && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
        }
    }
}

/// Checks `iss`, `aud`, `exp`, `nbf`, `iat`, `typ` and required claims. Returns `exp` in seconds.
pub fn check(p: &Provider, typ: Option<&str>, claims: &Map<String, Value>, now_ms: u64) -> Result<f64, ClaimsError> {
    check_for(p, &p.audiences, typ, claims, now_ms)
}

/// `check` against `audiences` instead of the provider's own (an embedded token is meant for
/// the route's audience).
pub fn check_for(p: &Provider, audiences: &[AudiencePattern], typ: Option<&str>, claims: &Map<String, Value>, now_ms: u64) -> Result<f64, ClaimsError> {
    let now = now_ms as f64 / 1000.0;
    let skew = p.skew_s as f64;
    let typ_norm = typ.map(|t| {
        let t = t.to_ascii_lowercase();
        t.strip_prefix("application/").map(str::to_owned).unwrap_or(t)
    });
    if !p.token_types.iter().any(|t| Some(t.as_str()) == typ_norm.as_deref() || (t.is_empty() && typ.is_none())) {
        return e(Deny::TokenType, "token type not accepted");
    }
    match claims.get("iss") {
        Some(Value::String(s)) if *s == p.issuer => {}
        _ => return e(Deny::Issuer, "issuer not trusted"),
    }
    if id_token(p, typ_norm.as_deref(), claims) {
        return e(Deny::IdToken, "an ID token is not an access token");
    }
    let auds: Vec<&str> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) if !a.is_empty() && a.len() <= MAX_AUDIENCES => {
            let mut v = Vec::with_capacity(a.len());
            for x in a {
                match x.as_str() {
                    Some(s) => v.push(s),
                    None => return e(Deny::Audience, "audience not allowed"),
                }
            }
            v
        }
        _ => return e(Deny::Audience, "audience not allowed"),
    };
    if !auds.iter().any(|a| audiences.iter().any(|pat| audience_matches(pat, a))) {
        return e(Deny::Audience, "audience not allowed");
    }
    let exp = match numeric_date(claims, "exp")? {
        Some(v) => v,
        None => return e(Deny::Claims, "token has no expiry"),
    };
    if now >= exp + skew {
        return e(Deny::Expired, "token expired");
    }
    if let Some(nbf) = numeric_date(claims, "nbf")? {
        if now + skew < nbf {
            return e(Deny::NotYetValid, "token not yet valid");
        }
    }
    if let Some(iat) = numeric_date(claims, "iat")? {
        if iat > now + skew {
            return e(Deny::NotYetValid, "token issued in the future");
        }
    }
    for c in &p.required_claims {
        if matches!(claims.get(c), None | Some(Value::Null)) {
            return e(Deny::Claims, "token lacks a required claim");
        }
    }
    if let Some(t) = p.txn_token.as_ref().filter(|t| !t.workloads.is_empty()) {
        if !crate::txn_token::workloads_ok(claims, &t.workloads) {
            return e(Deny::TxnWorkload, "Txn-Token from a workload not allowed");
        }
    }
    Ok(exp)
}

/// Whether a verified token is an OpenID Connect ID token rather than an access token (a
/// substitution: ID tokens are for the client that received them). With `refuse_id_tokens`
/// (the default), in order:
/// 1. `typ: at+jwt` (RFC 9068) declares an access token: not an ID token.
/// 2. Any of `id_token_claims` present (`nonce`, `at_hash`, `c_hash`, `s_hash`): an ID token.
/// 3. A `typ` claim of `"ID"` (Keycloak marks its ID tokens so; its access tokens say `Bearer`).
/// 4. Every `aud` one of the provider's `client_ids`: an ID token (it is meant for a client).
///
/// `aud` = `azp` is not a rule: Entra ID gives an app that exposes its own API exactly that.
pub fn id_token(p: &Provider, typ_norm: Option<&str>, claims: &Map<String, Value>) -> bool {
    if !p.refuse_id_tokens || typ_norm == Some("at+jwt") {
        return false;
    }
    if p.id_token_claims.iter().any(|c| claims.contains_key(c)) || claims.get("typ").and_then(Value::as_str) == Some("ID") {
        return true;
    }
    if p.client_ids.is_empty() {
        return false;
    }
    match claims.get("aud") {
        Some(Value::String(a)) => p.client_ids.contains(a),
        Some(Value::Array(a)) => !a.is_empty() && a.iter().all(|x| x.as_str().is_some_and(|x| p.client_ids.iter().any(|c| c == x))),
        _ => false,
    }
}

/// A claim by name: the top-level member of exactly that name (namespaced claims such as
/// `https://example.com/roles` contain dots), or else a path through nested objects
/// (`realm_access.roles`).
pub fn lookup<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut v = claims.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

/// JSON string with every byte outside printable ASCII escaped: safe in a header value.
pub fn ascii_json_string(s: &str, out: &mut String) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(ch),
            _ => {
                let mut buf = [0u16; 2];
                for u in ch.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{:04x}", u));
                }
            }
        }
    }
    out.push('"');
}

/// The principal `iss` + `sub` as a JSON array of two strings, ASCII only: `["https://idp","alice"]`.
/// Unambiguous (neither part can smuggle a separator) and parseable by any JSON library.
pub fn principal(iss: &str, sub: &str) -> String {
    let mut s = String::with_capacity(iss.len() + sub.len() + 8);
    s.push('[');
    ascii_json_string(iss, &mut s);
    s.push(',');
    ascii_json_string(sub, &mut s);
    s.push(']');
    s
}

/// A claim rendered as a header value: strings as-is, arrays of strings joined by `sep`, other
/// values as JSON. `None` when the result would carry control bytes (no header injection).
pub fn header_value(v: &Value, sep: &str) -> Option<String> {
    let s = match v {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Array(a) if a.iter().all(Value::is_string) => {
            a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(sep)
        }
        other => other.to_string(),
    };
    if s.bytes().any(|c| c < 0x20 || c == 0x7f) {
        return None;
    }
    Some(s)
}
