//! Local replies (RFC 6750 §3): 401 with `WWW-Authenticate: Bearer`, 400 `invalid_request`,
//! 503 when keys are unavailable. Descriptions are fixed strings: they never echo the token.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

fn json_body(error: &str, description: Option<&str>) -> String {
    match description {
        Some(d) => format!("{{\"error\":\"{error}\",\"error_description\":\"{d}\"}}\n"),
        None => format!("{{\"error\":\"{error}\"}}\n"),
    }
}

fn base_headers() -> Vec<(String, String)> {
    vec![("content-type".into(), "application/json".into()), ("cache-control".into(), "no-store".into())]
}

/// No credentials: RFC 6750 §3.1 says no error code.
pub fn missing(realm: &str) -> Reply {
    let mut headers = base_headers();
    headers.push(("www-authenticate".into(), format!("Bearer realm=\"{realm}\"")));
    Reply { status: 401, headers, body: json_body("missing_token", None) }
}

pub fn invalid_token(realm: &str, description: &str) -> Reply {
    let mut headers = base_headers();
    headers.push((
        "www-authenticate".into(),
        format!("Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{description}\""),
    ));
    Reply { status: 401, headers, body: json_body("invalid_token", Some(description)) }
}

pub fn invalid_request(realm: &str, description: &str) -> Reply {
    let mut headers = base_headers();
    headers.push((
        "www-authenticate".into(),
        format!("Bearer realm=\"{realm}\", error=\"invalid_request\", error_description=\"{description}\""),
    ));
    Reply { status: 400, headers, body: json_body("invalid_request", Some(description)) }
}

pub fn unavailable(description: &str) -> Reply {
    let mut headers = base_headers();
    headers.push(("retry-after".into(), "1".into()));
    Reply { status: 503, headers, body: json_body("temporarily_unavailable", Some(description)) }
}

/// RFC 6750 §3.1 `insufficient_scope` (403), with the scope the resource needs when known.
pub fn insufficient_scope(realm: &str, description: &str, scope: &str) -> Reply {
    let mut headers = base_headers();
    let scope_attr = if scope.is_empty() { String::new() } else { format!(", scope=\"{scope}\"") };
    headers.push((
        "www-authenticate".into(),
        format!("Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"{description}\"{scope_attr}"),
    ));
    Reply { status: 403, headers, body: json_body("insufficient_scope", Some(description)) }
}

/// The filter's own JWKS (RFC 7517 §8.5 media type).
pub fn jwks(body: &str, max_age_s: u64) -> Reply {
    Reply {
        status: 200,
        headers: vec![("content-type".into(), "application/jwk-set+json".into()), ("cache-control".into(), format!("public, max-age={max_age_s}"))],
        body: body.to_owned(),
    }
}

pub fn method_not_allowed(allow: &str) -> Reply {
    let mut headers = base_headers();
    headers.push(("allow".into(), allow.into()));
    Reply { status: 405, headers, body: json_body("method_not_allowed", None) }
}

/// A `DPoP` challenge (RFC 9449 §7.1): `error` is `invalid_dpop_proof`, `invalid_token` or
/// `use_dpop_nonce` (§8, with the nonce to use in `DPoP-Nonce`); `algs` the accepted proof
/// algorithms. 401, like the Bearer challenges.
pub fn dpop(realm: &str, error: &str, description: &str, algs: &str, nonce: Option<&str>) -> Reply {
    let mut headers = base_headers();
    headers.push((
        "www-authenticate".into(),
        format!("DPoP realm=\"{realm}\", error=\"{error}\", error_description=\"{description}\", algs=\"{algs}\""),
    ));
    if let Some(n) = nonce {
        headers.push(("dpop-nonce".into(), n.to_owned()));
    }
    Reply { status: 401, headers, body: json_body(error, Some(description)) }
}
