//! Transaction Tokens (draft-ietf-oauth-transaction-tokens-10): the Txn-Token request (an
//! RFC 8693 profile, §7.1), the checks on what the Txn-Token service answers (§7.4; the token
//! itself, §4), and the `req_wl` check of a sidecar's provider. Pure: no host calls (the caller
//! checks the signature with the service's keys).

use crate::config::{Sts, TxnSpec};
use crate::sts::{self, StsRequest};
use serde_json::{Map, Value};

/// `requested_token_type` / `issued_token_type` of a Txn-Token (§7.1, §7.4).
pub const TYPE_TXN_TOKEN: &str = "urn:ietf:params:oauth:token-type:txn_token";
/// The JWS `typ` of a Txn-Token (§4.2).
pub const TYP: &str = "txntoken+jwt";
/// `request_context.authn`: how the edge authenticated the request's token.
pub const AUTHN_BEARER: &str = "urn:ietf:rfc:6750";
pub const AUTHN_DPOP: &str = "urn:ietf:rfc:9449";
pub const AUTHN_MTLS: &str = "urn:ietf:rfc:8705";
/// `request_details.path` is cut at this many bytes (the query is never sent).
const MAX_PATH_BYTES: usize = 512;
/// Clock difference allowed between the filter and the Txn-Token service.
const SKEW_MS: u64 = 5_000;

/// What the edge knows of the request, for `request_context` and `request_details`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestFacts {
    /// The client's IP address (Envoy's `source.address` without the port).
    pub source_ip: String,
    pub authn: &'static str,
    pub method: String,
    /// `:path` without query and fragment, at most `MAX_PATH_BYTES`.
    pub path: String,
}

impl RequestFacts {
    pub fn new(source_address: Option<&str>, method: &str, path: &str) -> RequestFacts {
        let path = path.split(['?', '#']).next().unwrap_or("");
        let mut cut = path.len().min(MAX_PATH_BYTES);
        while !path.is_char_boundary(cut) {
            cut -= 1;
        }
        RequestFacts { source_ip: source_address.map(source_ip).unwrap_or("").to_owned(), authn: AUTHN_BEARER, method: method.to_owned(), path: path[..cut].to_owned() }
    }
}

/// The IP address of an Envoy `source.address` (`1.2.3.4:5678`, `[::1]:5678`).
pub fn source_ip(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match address.rsplit_once(':') {
        Some((ip, port)) if !ip.contains(':') && port.bytes().all(|c| c.is_ascii_digit()) => ip,
        _ => address,
    }
}

/// `request_context` (§7.1): the keys the draft's examples use.
pub fn request_context(f: &RequestFacts) -> String {
    let mut m = Map::new();
    if !f.source_ip.is_empty() {
        m.insert("req_ip".into(), Value::String(f.source_ip.clone()));
    }
    m.insert("authn".into(), Value::String(f.authn.into()));
    Value::Object(m).to_string()
}

/// `request_details` (§7.1): what was asked, kept small (no query, no body, no headers).
pub fn request_details(f: &RequestFacts) -> String {
    let mut m = Map::new();
    m.insert("method".into(), Value::String(f.method.clone()));
    m.insert("path".into(), Value::String(f.path.clone()));
    Value::Object(m).to_string()
}

/// The Txn-Token request: the verified token as the subject, the trust domain as the audience.
pub fn build_request(s: &Sts, spec: &TxnSpec, scopes: &[String], subject_token: &str, f: &RequestFacts) -> StsRequest {
    let scope = scopes.join(" ");
    let (ctx, details) = (request_context(f), request_details(f));
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", sts::GRANT_TYPE),
        ("requested_token_type", TYPE_TXN_TOKEN),
        ("audience", &spec.trust_domain),
        ("subject_token", subject_token),
        ("subject_token_type", &s.subject_token_type),
        ("request_context", &ctx),
        ("request_details", &details),
    ];
    if !scope.is_empty() {
        form.push(("scope", &scope));
    }
    sts::form_request(&s.authority, &s.path, &s.client_auth, form, "application/json")
}

fn normalized_typ(typ: Option<&str>) -> Option<String> {
    typ.map(|t| {
        let t = t.to_ascii_lowercase();
        t.strip_prefix("application/").map(str::to_owned).unwrap_or(t)
    })
}

fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= 1024 && !s.bytes().any(|c| c < 0x20 || c == 0x7f))
}

/// Checks an issued Txn-Token's `typ` and claims (its signature is the caller's): `iss` (if
/// present) the service's, `aud` the trust domain, `txn` and `sub` present, `exp` in the future
/// and within `max_lifetime_seconds`, `iat` not ahead, `scope` within `allowed_scopes`.
/// Returns `exp` in milliseconds.
pub fn check_issued(typ: Option<&str>, claims: &Map<String, Value>, issuer: &str, spec: &TxnSpec, allowed_scopes: &[String], now_ms: u64) -> Result<u64, &'static str> {
    if normalized_typ(typ).as_deref() != Some(TYP) {
        return Err("issued Txn-Token has the wrong `typ`");
    }
    match claims.get("iss") {
        None => {}
        Some(Value::String(s)) if s == issuer => {}
        Some(_) => return Err("issued Txn-Token has the wrong issuer"),
    }
    let td = spec.trust_domain.as_str();
    let aud_ok = match claims.get("aud") {
        Some(Value::String(s)) => s == td,
        Some(Value::Array(a)) => !a.is_empty() && a.iter().all(|v| v.as_str() == Some(td)),
        _ => false,
    };
    if !aud_ok {
        return Err("issued Txn-Token is for another trust domain");
    }
    if text(claims.get("txn")).is_none() {
        return Err("issued Txn-Token has no `txn`");
    }
    if text(claims.get("sub")).is_none() {
        return Err("issued Txn-Token has no `sub`");
    }
    let exp_ms = match claims.get("exp").and_then(Value::as_f64) {
        Some(e) if e.is_finite() && e > 0.0 && e < 1e13 => (e * 1000.0) as u64,
        _ => return Err("issued Txn-Token has no expiry"),
    };
    if exp_ms <= now_ms {
        return Err("issued Txn-Token has expired");
    }
    if exp_ms > now_ms + spec.max_lifetime_ms + SKEW_MS {
        return Err("issued Txn-Token lives longer than `max_lifetime_seconds`");
    }
    match claims.get("iat") {
        None => {}
        Some(Value::Number(n)) if n.as_f64().is_some_and(|i| i * 1000.0 <= (now_ms + SKEW_MS) as f64) => {}
        Some(_) => return Err("issued Txn-Token has an `iat` in the future"),
    }
    if !sts::subject_scopes(claims).iter().all(|s| allowed_scopes.contains(s)) {
        return Err("issued Txn-Token has a wider scope than requested");
    }
    Ok(exp_ms)
}

/// A sidecar's check of `req_wl` (§4.3): the requesting workload (every one, for a replaced
/// Txn-Token's list) is one of `allowed`.
pub fn workloads_ok(claims: &Map<String, Value>, allowed: &[String]) -> bool {
    match claims.get("req_wl") {
        Some(Value::String(s)) => allowed.iter().any(|a| a == s),
        Some(Value::Array(list)) => !list.is_empty() && list.iter().all(|v| v.as_str().is_some_and(|s| allowed.iter().any(|a| a == s))),
        _ => false,
    }
}

/// Fuzzing entry: a Txn-Token service answer (`body`) through the answer parser, the JWS
/// parser and the claim checks; never panics, and accepts nothing without every claim.
#[cfg(fuzzing)]
pub fn fuzz_answer(status: &str, body: &[u8], now_ms: u64) {
    let spec = TxnSpec { trust_domain: "td".into(), scopes: vec![], keep_authorization: false, header: "txn-token".into(), max_lifetime_ms: 300_000 };
    if let sts::StsAnswer::Token { access_token, .. } = sts::parse_response(status, body) {
        if let Ok(jws) = crate::jose::jws::parse(&access_token, 16 * 1024) {
            if let Ok(exp) = check_issued(jws.typ.as_deref(), &jws.payload, "iss", &spec, &["a".to_owned()], now_ms) {
                assert!(exp > now_ms && jws.payload.contains_key("txn") && jws.payload.contains_key("sub"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> TxnSpec {
        TxnSpec { trust_domain: "trust.ecomm.com".into(), scopes: vec![], keep_authorization: false, header: "txn-token".into(), max_lifetime_ms: 60_000 }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn source_ips() {
        assert_eq!(source_ip("10.1.2.3:4567"), "10.1.2.3");
        assert_eq!(source_ip("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(source_ip("2001:db8::1"), "2001:db8::1");
        assert_eq!(source_ip("unix:/tmp/s"), "unix:/tmp/s");
    }

    #[test]
    fn request_facts_are_small_and_without_query() {
        let f = RequestFacts { authn: AUTHN_DPOP, ..RequestFacts::new(Some("10.0.0.9:1234"), "POST", "/orders/7?card=4111#x") };
        assert_eq!(request_context(&f), r#"{"authn":"urn:ietf:rfc:9449","req_ip":"10.0.0.9"}"#);
        assert_eq!(request_details(&f), r#"{"method":"POST","path":"/orders/7"}"#);
        let long = format!("/{}", "é".repeat(400));
        assert!(RequestFacts::new(None, "GET", &long).path.len() <= MAX_PATH_BYTES);
        assert_eq!(request_context(&RequestFacts::new(None, "GET", "/")), r#"{"authn":"urn:ietf:rfc:6750"}"#);
    }

    #[test]
    fn issued_claims() {
        let now = 1_700_000_000_000u64;
        let good = json!({"iss": "https://tts", "aud": "trust.ecomm.com", "txn": "t-1", "sub": "alice", "iat": 1_700_000_000, "exp": 1_700_000_030, "scope": "read"});
        let allowed = vec!["read".to_owned()];
        let ok = |c: &Value, typ: &str| check_issued(Some(typ), &claims(c.clone()), "https://tts", &spec(), &allowed, now);
        assert_eq!(ok(&good, "txntoken+jwt"), Ok(1_700_000_030_000));
        assert_eq!(ok(&good, "application/TXNTOKEN+JWT"), Ok(1_700_000_030_000));
        assert!(ok(&good, "at+jwt").is_err());
        assert!(check_issued(None, &claims(good.clone()), "https://tts", &spec(), &allowed, now).is_err());
        let with = |k: &str, v: Value| {
            let mut c = claims(good.clone());
            if v.is_null() {
                c.remove(k);
            } else {
                c.insert(k.into(), v);
            }
            Value::Object(c)
        };
        assert!(ok(&with("iss", Value::Null), "txntoken+jwt").is_ok(), "iss is optional in the draft");
        for (k, v, why) in [
            ("iss", json!("https://other"), "issuer"),
            ("aud", json!("other.domain"), "trust domain"),
            ("aud", json!(["trust.ecomm.com", "x"]), "trust domain"),
            ("txn", Value::Null, "txn"),
            ("txn", json!(""), "txn"),
            ("sub", Value::Null, "sub"),
            ("exp", json!(1_699_999_999), "expired"),
            ("exp", json!(1_700_000_100), "max_lifetime"),
            ("iat", json!(1_700_000_100), "iat"),
            ("scope", json!("read admin"), "wider scope"),
        ] {
            let e = ok(&with(k, v.clone()), "txntoken+jwt").err().unwrap_or("accepted");
            assert!(e.contains(why), "{k}={v}: {e}");
        }
    }

    #[test]
    fn workloads() {
        let allowed = vec!["edge.ecomm.com".to_owned(), "a.ecomm.com".to_owned()];
        assert!(workloads_ok(&claims(json!({"req_wl": "edge.ecomm.com"})), &allowed));
        assert!(workloads_ok(&claims(json!({"req_wl": ["edge.ecomm.com", "a.ecomm.com"]})), &allowed));
        assert!(!workloads_ok(&claims(json!({"req_wl": ["edge.ecomm.com", "evil"]})), &allowed));
        assert!(!workloads_ok(&claims(json!({"req_wl": []})), &allowed));
        assert!(!workloads_ok(&claims(json!({})), &allowed));
        assert!(!workloads_ok(&claims(json!({"req_wl": 1})), &allowed));
    }
}
