//! The STS protocol (RFC 8693 token exchange), the pure parts: the form-encoded request (with RFC 6749 §2.3.1 client
//! authentication), scope down-scoping, parsing the STS answer (§2.2.1 success, §2.2.2 / RFC 6749
//! §5.2 errors), and the checks on the issued token before it may be forwarded.

use crate::claims::audience_matches;
use crate::config::AudiencePattern;
use serde_json::{Map, Value};

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// RFC 6749 §2.3.1: HTTP Basic with the form-encoded id and secret.
    Basic { id: String, secret: String },
    /// RFC 6749 §2.3.1: `client_id` and `client_secret` in the body.
    Post { id: String, secret: String },
    /// No client secret (e.g. mTLS on the cluster); `client_id` is sent if configured.
    None { id: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExchangeSpec {
    pub audiences: Vec<String>,
    pub resources: Vec<String>,
    /// Sorted, deduplicated.
    pub scopes: Vec<String>,
}

/// `application/x-www-form-urlencoded` (WHATWG URL §5.2): unreserved bytes as is, space as `+`,
/// everything else `%XX` of its UTF-8 bytes.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The scopes a subject token holds: `scope` (space-separated string, RFC 8693 §4.2) or `scp`
/// (array or string, a common variant).
pub fn subject_scopes(claims: &Map<String, Value>) -> Vec<String> {
    let mut v: Vec<String> = match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(s)), _) => s.split_whitespace().map(str::to_owned).collect(),
        (Some(Value::Array(a)), _) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        (_, Some(Value::Array(a))) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        (_, Some(Value::String(s))) => s.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    // A scope is a space-free token (RFC 6749 §3.3): array members that are not are no scope.
    v.retain(|s| !s.is_empty() && !s.contains(char::is_whitespace));
    v.sort();
    v.dedup();
    v
}

/// The scope to request: the route's scopes, all of which the subject must hold. `Err` names the
/// first one it lacks (→ 403 insufficient_scope, without calling the STS).
pub fn downscope<'a>(route: &'a [String], subject: &[String]) -> Result<Vec<String>, &'a str> {
    for s in route {
        if !subject.contains(s) {
            return Err(s);
        }
    }
    Ok(route.to_vec())
}

pub struct StsRequest {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[allow(clippy::too_many_arguments)]
pub fn build_request(
    authority: &str,
    path: &str,
    auth: &ClientAuth,
    spec: &ExchangeSpec,
    scopes: &[String],
    subject_token: &str,
    subject_token_type: &str,
    requested_token_type: &str,
) -> StsRequest {
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", GRANT_TYPE),
        ("subject_token", subject_token),
        ("subject_token_type", subject_token_type),
        ("requested_token_type", requested_token_type),
    ];
    for a in &spec.audiences {
        form.push(("audience", a));
    }
    for r in &spec.resources {
        form.push(("resource", r));
    }
    let scope = scopes.join(" ");
    if !scope.is_empty() {
        form.push(("scope", &scope));
    }
    form_request(authority, path, auth, form, "application/json")
}

/// A form-encoded POST to the authorization server (token exchange, introspection) with the
/// client's authentication (RFC 6749 §2.3.1) in the header or the body.
pub fn form_request<'a>(authority: &str, path: &str, auth: &'a ClientAuth, mut form: Vec<(&'a str, &'a str)>, accept: &str) -> StsRequest {
    let mut headers = vec![
        (":method".to_owned(), "POST".to_owned()),
        (":path".to_owned(), path.to_owned()),
        (":authority".to_owned(), authority.to_owned()),
        ("content-type".to_owned(), "application/x-www-form-urlencoded".to_owned()),
        ("accept".to_owned(), accept.to_owned()),
    ];
    match auth {
        ClientAuth::Basic { id, secret } => {
            let cred = format!("{}:{}", form_encode(id), form_encode(secret));
            headers.push(("authorization".to_owned(), format!("Basic {}", std_b64(cred.as_bytes()))));
        }
        ClientAuth::Post { id, secret } => {
            form.push(("client_id", id));
            form.push(("client_secret", secret));
        }
        ClientAuth::None { id: Some(id) } => form.push(("client_id", id)),
        ClientAuth::None { id: None } => {}
    }
    let body = form.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect::<Vec<_>>().join("&");
    StsRequest { headers, body }
}

/// Standard base64 with padding (HTTP Basic, RFC 7617).
fn std_b64(input: &[u8]) -> String {
    let url = crate::jose::b64::encode(input);
    let mut s: String = url.chars().map(|c| match c {
        '-' => '+',
        '_' => '/',
        c => c,
    }).collect();
    while s.len() % 4 != 0 {
        s.push('=');
    }
    s
}

/// Why an exchange did not produce a usable token; `name()` is the metric suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    /// Envoy answered the callout 503: no connection to the STS.
    Unreachable,
    /// Envoy answered 504: slower than `timeout_ms`.
    Timeout,
    /// The STS answered 5xx.
    ServerError,
    /// 200 without the required members, or not JSON.
    BadResponse,
    /// `invalid_grant` (→ 401) or `invalid_target` / `invalid_scope` (→ 403).
    Refused,
    /// Any other 4xx (`invalid_client`, `unauthorized_client`, …): our configuration is wrong.
    ClientError,
    /// Dispatching the callout failed (unknown cluster…).
    Dispatch,
}

impl Failure {
    pub const ALL: [Failure; 7] = [
        Failure::Unreachable,
        Failure::Timeout,
        Failure::ServerError,
        Failure::BadResponse,
        Failure::Refused,
        Failure::ClientError,
        Failure::Dispatch,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Failure::Unreachable => "unreachable",
            Failure::Timeout => "timeout",
            Failure::ServerError => "server_error",
            Failure::BadResponse => "bad_response",
            Failure::Refused => "refused",
            Failure::ClientError => "client_error",
            Failure::Dispatch => "dispatch",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StsAnswer {
    Token { access_token: String, expires_in: Option<u64>, issued_token_type: String },
    /// The STS refused this subject for this target: (status to the client, RFC 6750 error, description).
    Refused { status: u32, error: &'static str, description: &'static str },
    Failed(Failure),
}

pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Interprets the STS answer. `status` is the callout's `:status` (Envoy reports connection
/// failures as 503 and timeouts as 504).
pub fn parse_response(status: &str, body: &[u8]) -> StsAnswer {
    let code: u32 = status.parse().unwrap_or(0);
    let json = crate::jose::json::parse_object(body);
    match code {
        200 => {
            let Some(m) = json else { return StsAnswer::Failed(Failure::BadResponse) };
            let token = m.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty() && t.len() <= 16 * 1024);
            let issued = m.get("issued_token_type").and_then(Value::as_str).filter(|t| !t.is_empty());
            let token_type = m.get("token_type").and_then(Value::as_str);
            let expires_in = match m.get("expires_in") {
                None => Some(None),
                Some(Value::Number(n)) => n.as_u64().map(Some),
                Some(_) => None,
            };
            let bearer_ok = token_type.is_some_and(|t| t.eq_ignore_ascii_case("bearer") || t.eq_ignore_ascii_case("n_a"));
            match (token, issued, bearer_ok, expires_in) {
                (Some(t), Some(it), true, Some(exp)) if t.bytes().all(|c| c.is_ascii_graphic()) => {
                    StsAnswer::Token { access_token: t.to_owned(), expires_in: exp, issued_token_type: it.to_owned() }
                }
                _ => StsAnswer::Failed(Failure::BadResponse),
            }
        }
        503 if json.is_none() => StsAnswer::Failed(Failure::Unreachable),
        504 if json.is_none() => StsAnswer::Failed(Failure::Timeout),
        500..=599 => StsAnswer::Failed(Failure::ServerError),
        400..=499 => match json.as_ref().and_then(|m| m.get("error")).and_then(Value::as_str) {
            Some("invalid_grant") => StsAnswer::Refused { status: 401, error: "invalid_token", description: "token exchange refused the token" },
            Some("invalid_target") => {
                StsAnswer::Refused { status: 403, error: "insufficient_scope", description: "token exchange refused for this audience" }
            }
            Some("invalid_scope") => {
                StsAnswer::Refused { status: 403, error: "insufficient_scope", description: "token exchange refused this scope" }
            }
            _ => StsAnswer::Failed(Failure::ClientError),
        },
        _ => StsAnswer::Failed(Failure::BadResponse),
    }
}

/// Checks on an issued JWT's claims (its signature is checked by the caller): issuer, audience
/// within what was requested (and at least one of it), a future `exp`, scope within `allowed`.
/// Returns `exp` in seconds.
pub fn check_issued_claims(
    claims: &Map<String, Value>,
    issuer: &str,
    spec: &ExchangeSpec,
    allowed_scopes: &[String],
    now_ms: u64,
) -> Result<f64, &'static str> {
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err("issued token has the wrong issuer");
    }
    let auds: Vec<&str> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s],
        // Every member must be a string (finding F6: `[1]` or `[null]` is no audience at all).
        Some(Value::Array(a)) if !a.is_empty() => match a.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
            Some(v) => v,
            None => return Err("issued token has a non-string audience"),
        },
        _ => return Err("issued token has no audience"),
    };
    let requested: Vec<AudiencePattern> =
        spec.audiences.iter().chain(spec.resources.iter()).map(|a| AudiencePattern::Exact(a.clone())).collect();
    if !requested.is_empty() && !auds.iter().all(|a| requested.iter().any(|p| audience_matches(p, a))) {
        return Err("issued token is for another audience");
    }
    let exp = match claims.get("exp").and_then(Value::as_f64) {
        Some(e) if e.is_finite() && e * 1000.0 > now_ms as f64 => e,
        _ => return Err("issued token has no future expiry"),
    };
    if !subject_scopes(claims).iter().all(|s| allowed_scopes.contains(s)) {
        return Err("issued token has a wider scope than requested");
    }
    Ok(exp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("a+b&c=d e/é~"), "a%2Bb%26c%3Dd+e%2F%C3%A9%7E");
        assert_eq!(form_encode("AZaz09*-._"), "AZaz09*-._");
    }

    #[test]
    fn request_shape_and_client_auth() {
        let spec = ExchangeSpec {
            audiences: vec!["https://orders.ecomm.com".into()],
            resources: vec!["https://inv.ecomm.com/a?b=c&d".into()],
            scopes: vec![],
        };
        let r = build_request("sts.example.com", "/token", &ClientAuth::Basic { id: "gate way".into(), secret: "s3:cr+t".into() },
            &spec, &["orders:read".into(), "x".into()], "tok.en", TYPE_ACCESS_TOKEN, TYPE_ACCESS_TOKEN);
        assert_eq!(
            r.body,
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=tok.en\
             &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token\
             &requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token\
             &audience=https%3A%2F%2Forders.ecomm.com&resource=https%3A%2F%2Finv.ecomm.com%2Fa%3Fb%3Dc%26d\
             &scope=orders%3Aread+x"
        );
        let auth = r.headers.iter().find(|(k, _)| k == "authorization").unwrap();
        // base64("gate+way:s3%3Acr%2Bt")
        assert_eq!(auth.1, "Basic Z2F0ZSt3YXk6czMlM0FjciUyQnQ=");
        assert!(r.headers.contains(&(":method".into(), "POST".into())));
        let r = build_request("a", "/t", &ClientAuth::Post { id: "id".into(), secret: "p&w".into() }, &spec, &[], "t", TYPE_JWT, TYPE_ACCESS_TOKEN);
        assert!(r.body.ends_with("&client_id=id&client_secret=p%26w"), "{}", r.body);
        assert!(!r.body.contains("scope="));
        assert!(r.body.contains("subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt"));
        assert!(!r.headers.iter().any(|(k, _)| k == "authorization"));
    }

    #[test]
    fn scopes() {
        let c = json!({"scope": "b a  c"}).as_object().unwrap().clone();
        assert_eq!(subject_scopes(&c), vec!["a", "b", "c"]);
        let c = json!({"scp": ["x", "y"]}).as_object().unwrap().clone();
        assert_eq!(subject_scopes(&c), vec!["x", "y"]);
        let have = vec!["a".to_string(), "b".to_string()];
        assert_eq!(downscope(&["a".into()], &have), Ok(vec!["a".to_string()]));
        assert_eq!(downscope(&["a".into(), "z".into()], &have), Err("z"));
        assert_eq!(downscope(&[], &have), Ok(vec![]));
    }

    #[test]
    fn responses() {
        let ok = br#"{"access_token":"a.b.c","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":60}"#;
        assert_eq!(
            parse_response("200", ok),
            StsAnswer::Token { access_token: "a.b.c".into(), expires_in: Some(60), issued_token_type: TYPE_ACCESS_TOKEN.into() }
        );
        let cases: &[(&str, &[u8], StsAnswer)] = &[
            ("200", b"<html>", StsAnswer::Failed(Failure::BadResponse)),
            ("200", br#"{"access_token":"a","token_type":"Bearer"}"#, StsAnswer::Failed(Failure::BadResponse)),
            ("200", br#"{"access_token":"a","issued_token_type":"x","token_type":"mac"}"#, StsAnswer::Failed(Failure::BadResponse)),
            ("200", br#"{"access_token":"a b","issued_token_type":"x","token_type":"Bearer"}"#, StsAnswer::Failed(Failure::BadResponse)),
            ("200", br#"{"access_token":"a","issued_token_type":"x","token_type":"Bearer","expires_in":"60"}"#, StsAnswer::Failed(Failure::BadResponse)),
            ("200", br#"{"access_token":"a","access_token":"b","issued_token_type":"x","token_type":"Bearer"}"#, StsAnswer::Failed(Failure::BadResponse)),
            ("503", b"upstream connect error or disconnect/reset before headers", StsAnswer::Failed(Failure::Unreachable)),
            ("504", b"upstream request timeout", StsAnswer::Failed(Failure::Timeout)),
            ("500", b"", StsAnswer::Failed(Failure::ServerError)),
            ("503", br#"{"error":"temporarily_unavailable"}"#, StsAnswer::Failed(Failure::ServerError)),
            ("400", br#"{"error":"invalid_client"}"#, StsAnswer::Failed(Failure::ClientError)),
            ("401", b"", StsAnswer::Failed(Failure::ClientError)),
            ("", b"", StsAnswer::Failed(Failure::BadResponse)),
        ];
        for (status, body, want) in cases {
            assert_eq!(&parse_response(status, body), want, "{status} {}", String::from_utf8_lossy(body));
        }
        assert!(matches!(parse_response("400", br#"{"error":"invalid_grant"}"#), StsAnswer::Refused { status: 401, .. }));
        assert!(matches!(parse_response("400", br#"{"error":"invalid_target"}"#), StsAnswer::Refused { status: 403, .. }));
    }

    #[test]
    fn issued_claims() {
        let spec = ExchangeSpec { audiences: vec!["https://orders".into()], ..Default::default() };
        let allowed = vec!["orders:read".to_string()];
        let now = 1_000_000_000;
        let ok = json!({"iss": "sts", "aud": "https://orders", "exp": 1_000_060, "scope": "orders:read"});
        assert_eq!(check_issued_claims(ok.as_object().unwrap(), "sts", &spec, &allowed, now), Ok(1_000_060.0));
        let bad = [
            json!({"iss": "other", "aud": "https://orders", "exp": 1_000_060}),
            json!({"iss": "sts", "aud": "https://payments", "exp": 1_000_060}),
            json!({"iss": "sts", "aud": ["https://orders", "https://payments"], "exp": 1_000_060}),
            json!({"iss": "sts", "aud": [], "exp": 1_000_060}),
            // F6: non-string members make the audience invalid, not absent.
            json!({"iss": "sts", "aud": [1], "exp": 1_000_060}),
            json!({"iss": "sts", "aud": [null], "exp": 1_000_060}),
            json!({"iss": "sts", "aud": ["https://orders", {}], "exp": 1_000_060}),
            json!({"iss": "sts", "aud": "https://orders"}),
            json!({"iss": "sts", "aud": "https://orders", "exp": 999_999}),
            json!({"iss": "sts", "aud": "https://orders", "exp": 1_000_060, "scope": "orders:read orders:write"}),
        ];
        for b in bad {
            assert!(check_issued_claims(b.as_object().unwrap(), "sts", &spec, &allowed, now).is_err(), "{b}");
        }
    }
}
