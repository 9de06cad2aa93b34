//! RFC 7662 token introspection, the pure parts: the request (form-encoded `token` and
//! `token_type_hint`, the client's authentication as for the STS), the answer (plain JSON, or
//! an RFC 9701 signed `token-introspection+jwt` once its signature is verified), the checks an
//! active answer must pass, and how long it may be kept (`Cache-Control`).
//!
//! Never a pass on doubt: an inactive answer, an answer that is not a JSON object, lacks a
//! boolean `active`, has an `exp` in the past, another `iss` or an `aud` not accepted is a 401;
//! no answer (unreachable, timeout, 5xx, any other status) is a 503.

use crate::claims::audience_matches;
use crate::config::{AudiencePattern, Introspection};
use crate::sts::{form_request, StsRequest};
use serde_json::{Map, Value};

/// RFC 9701 §4: the media type of a signed answer, and its JWS `typ`.
pub const SIGNED_MEDIA_TYPE: &str = "application/token-introspection+jwt";
pub const SIGNED_TYP: &str = "token-introspection+jwt";
/// Answers longer than this are refused unread.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The call to `authority` + `path` (the configured endpoint, or the discovered one).
pub fn build_request(i: &Introspection, authority: &str, path: &str, token: &str) -> StsRequest {
    let accept = if i.signed { SIGNED_MEDIA_TYPE } else { "application/json" };
    form_request(authority, path, &i.client_auth, vec![("token", token), ("token_type_hint", "access_token")], accept)
}

/// Why an introspection did not make a token active (`introspection_failed.<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failure {
    /// No answer: dispatch failed, Envoy's 503 (no connection), …
    Unreachable,
    /// Envoy's 504: slower than `timeout_ms`.
    Timeout,
    /// The server answered something other than 200 (5xx, or 4xx for our own credentials).
    Status,
    /// 200 but not a JSON object with a boolean `active` (or a signed answer where one was
    /// required, or the other way round).
    BadAnswer,
    /// A signed answer whose signature, `typ`, `iss` or `aud` does not verify.
    Signature,
    /// The signed answer's key is not (yet) among the provider's keys.
    Keys,
    /// Active, but `exp` in the past (or `nbf` in the future).
    Expired,
    /// Active, but another `iss` than the provider's.
    Issuer,
    /// Active, but an `aud` this provider does not accept.
    Audience,
}

impl Failure {
    pub const ALL: [Failure; 9] = [
        Failure::Unreachable,
        Failure::Timeout,
        Failure::Status,
        Failure::BadAnswer,
        Failure::Signature,
        Failure::Keys,
        Failure::Expired,
        Failure::Issuer,
        Failure::Audience,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Failure::Unreachable => "unreachable",
            Failure::Timeout => "timeout",
            Failure::Status => "status",
            Failure::BadAnswer => "bad_answer",
            Failure::Signature => "signature",
            Failure::Keys => "keys",
            Failure::Expired => "expired",
            Failure::Issuer => "issuer",
            Failure::Audience => "audience",
        }
    }

    /// 503 (the server could not say) rather than 401 (it said something unusable).
    pub fn unavailable(self) -> bool {
        matches!(self, Failure::Unreachable | Failure::Timeout | Failure::Status | Failure::Keys)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The token is active: its claims (with `iss` filled in with the provider's when absent),
    /// and its `exp` (seconds) if the answer gave one.
    Active(Map<String, Value>, Option<f64>),
    Inactive,
    Failed(Failure),
}

/// What the callout brought back, before it is interpreted.
pub enum Body<'a> {
    /// `application/json` (or no content type).
    Json(&'a [u8]),
    /// RFC 9701: the compact JWS, to be verified by the caller (`verified_payload`).
    Signed(&'a [u8]),
}

/// Classifies the answer by status and media type. `signed`: the provider requires signed answers.
pub fn classify<'a>(status: &str, content_type: Option<&str>, body: &'a [u8], signed: bool) -> Result<Body<'a>, Failure> {
    match status {
        "200" => {}
        "504" => return Err(Failure::Timeout),
        "503" | "" => return Err(Failure::Unreachable),
        _ => return Err(Failure::Status),
    }
    let media = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let is_signed = media == SIGNED_MEDIA_TYPE;
    match (signed, is_signed) {
        (true, true) => Ok(Body::Signed(body)),
        (false, false) => Ok(Body::Json(body)),
        // A plain answer where a signed one is required (a downgrade), or a signed one nobody asked for.
        _ => Err(Failure::BadAnswer),
    }
}

/// The claims of an RFC 9701 payload (already signature-checked): `iss` the provider, `aud`
/// naming our client id when we have one, the answer in `token_introspection`.
pub fn signed_payload(payload: Map<String, Value>, issuer: &str, client_id: Option<&str>) -> Result<Map<String, Value>, Failure> {
    if payload.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(Failure::Signature);
    }
    if let Some(id) = client_id {
        let ok = match payload.get("aud") {
            Some(Value::String(a)) => a == id,
            Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(id)),
            _ => false,
        };
        if !ok {
            return Err(Failure::Signature);
        }
    }
    match payload.get("token_introspection") {
        Some(Value::Object(m)) => Ok(m.clone()),
        _ => Err(Failure::BadAnswer),
    }
}

fn seconds(v: Option<&Value>) -> Result<Option<f64>, Failure> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
            _ => Err(Failure::BadAnswer),
        },
        Some(_) => Err(Failure::BadAnswer),
    }
}

/// Interprets an introspection answer's members (RFC 7662 §2.2) for `issuer`'s provider.
pub fn interpret(mut m: Map<String, Value>, issuer: &str, audiences: &[AudiencePattern], skew_s: u64, now_ms: u64) -> Answer {
    match m.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Answer::Inactive,
        _ => return Answer::Failed(Failure::BadAnswer),
    }
    let now = now_ms as f64 / 1000.0;
    let skew = skew_s as f64;
    let exp = match seconds(m.get("exp")) {
        Ok(e) => e,
        Err(f) => return Answer::Failed(f),
    };
    if exp.is_some_and(|e| now >= e + skew) {
        return Answer::Failed(Failure::Expired);
    }
    match seconds(m.get("nbf")) {
        Ok(Some(nbf)) if now + skew < nbf => return Answer::Failed(Failure::Expired),
        Ok(_) => {}
        Err(f) => return Answer::Failed(f),
    }
    match m.get("iss") {
        None => {
            m.insert("iss".into(), Value::String(issuer.to_owned()));
        }
        Some(Value::String(s)) if s == issuer => {}
        Some(_) => return Answer::Failed(Failure::Issuer),
    }
    // `aud` is optional in an answer; when given, one value must be accepted.
    let aud_ok = match m.get("aud") {
        None => true,
        Some(Value::String(a)) => audiences.iter().any(|p| audience_matches(p, a)),
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str().is_some_and(|a| audiences.iter().any(|p| audience_matches(p, a)))),
        Some(_) => false,
    };
    if !aud_ok {
        return Answer::Failed(Failure::Audience);
    }
    if !matches!(m.get("sub"), None | Some(Value::String(_))) || !matches!(m.get("scope"), None | Some(Value::String(_))) {
        return Answer::Failed(Failure::BadAnswer);
    }
    Answer::Active(m, exp)
}

/// A plain JSON answer.
pub fn parse_json(body: &[u8], issuer: &str, audiences: &[AudiencePattern], skew_s: u64, now_ms: u64) -> Answer {
    match crate::jose::json::parse_object(body) {
        Some(m) => interpret(m, issuer, audiences, skew_s, now_ms),
        None => Answer::Failed(Failure::BadAnswer),
    }
}

/// How long the answer's `Cache-Control` lets it be kept: `Some(0)` for `no-store` /
/// `no-cache`, `Some(n)` for `max-age=n` (seconds, capped), `None` for nothing said.
pub fn cache_control_max_age(value: Option<&str>) -> Option<u64> {
    let v = value?;
    let mut max_age = None;
    for d in v.split(',') {
        let d = d.trim().to_ascii_lowercase();
        if d == "no-store" || d == "no-cache" || d == "private=\"\"" {
            return Some(0);
        }
        if let Some(n) = d.strip_prefix("max-age=") {
            max_age = Some(n.trim_matches('"').parse::<u64>().unwrap_or(0).min(86_400));
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000_000;
    const ISS: &str = "https://idp.example.com";

    fn aud() -> Vec<AudiencePattern> {
        vec![AudiencePattern::Exact("https://api.example.com".into())]
    }

    fn answer(v: Value) -> Answer {
        parse_json(v.to_string().as_bytes(), ISS, &aud(), 60, NOW)
    }

    #[test]
    fn answers_are_read_strictly() {
        let now = NOW / 1000;
        assert_eq!(answer(json!({"active": false})), Answer::Inactive);
        assert!(matches!(answer(json!({"active": true, "sub": "alice"})), Answer::Active(m, None) if m["iss"] == ISS));
        assert!(matches!(answer(json!({"active": true, "exp": now + 60, "iss": ISS, "aud": ["x", "https://api.example.com"]})), Answer::Active(_, Some(_))));
        let failed = [
            (json!({"active": "true"}), Failure::BadAnswer),
            (json!({"sub": "alice"}), Failure::BadAnswer),
            (json!({"active": 1}), Failure::BadAnswer),
            (json!({"active": true, "exp": now - 3600}), Failure::Expired),
            (json!({"active": true, "exp": "soon"}), Failure::BadAnswer),
            (json!({"active": true, "nbf": now + 3600}), Failure::Expired),
            (json!({"active": true, "iss": "https://evil.example"}), Failure::Issuer),
            (json!({"active": true, "aud": "https://other.example.com"}), Failure::Audience),
            (json!({"active": true, "sub": 7}), Failure::BadAnswer),
            (json!({"active": true, "scope": ["a"]}), Failure::BadAnswer),
        ];
        for (v, f) in failed {
            assert_eq!(answer(v.clone()), Answer::Failed(f), "{v}");
        }
        for body in [&b"[]"[..], b"<html>", b"", b"{\"active\":true,\"active\":false}"] {
            assert_eq!(parse_json(body, ISS, &aud(), 60, NOW), Answer::Failed(Failure::BadAnswer));
        }
    }

    #[test]
    fn status_and_media_type_pick_the_reading() {
        assert!(matches!(classify("200", Some("application/json; charset=utf-8"), b"{}", false), Ok(Body::Json(_))));
        assert!(matches!(classify("200", None, b"{}", false), Ok(Body::Json(_))));
        assert!(matches!(classify("200", Some("application/token-introspection+jwt"), b"x", true), Ok(Body::Signed(_))));
        assert!(matches!(classify("200", Some("application/json"), b"{}", true), Err(Failure::BadAnswer)), "no downgrade");
        assert!(matches!(classify("503", None, b"", false), Err(Failure::Unreachable)));
        assert!(matches!(classify("504", None, b"", false), Err(Failure::Timeout)));
        assert!(matches!(classify("500", None, b"", false), Err(Failure::Status)));
        assert!(matches!(classify("401", None, b"", false), Err(Failure::Status)));
    }

    #[test]
    fn cache_control_bounds_the_answer() {
        assert_eq!(cache_control_max_age(None), None);
        assert_eq!(cache_control_max_age(Some("no-store")), Some(0));
        assert_eq!(cache_control_max_age(Some("private, no-cache")), Some(0));
        assert_eq!(cache_control_max_age(Some("max-age=30")), Some(30));
        assert_eq!(cache_control_max_age(Some("public, Max-Age=\"12\"")), Some(12));
        assert_eq!(cache_control_max_age(Some("max-age=junk")), Some(0));
        assert_eq!(cache_control_max_age(Some("public")), None);
    }

    #[test]
    fn signed_payloads_name_the_provider_and_us() {
        let p = json!({"iss": ISS, "aud": "gw", "token_introspection": {"active": true}});
        let m = p.as_object().unwrap().clone();
        assert!(signed_payload(m.clone(), ISS, Some("gw")).is_ok());
        assert_eq!(signed_payload(m.clone(), ISS, Some("other")), Err(Failure::Signature));
        assert_eq!(signed_payload(m, "https://evil", Some("gw")), Err(Failure::Signature));
        let m = json!({"iss": ISS, "aud": "gw", "active": true}).as_object().unwrap().clone();
        assert_eq!(signed_payload(m, ISS, Some("gw")), Err(Failure::BadAnswer));
    }
}
