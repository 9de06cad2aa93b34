//! Compact JWS parsing with the header rules of RFC 7515 and RFC 8725.
//! Nothing here trusts the token: keys are never taken from it (`jwk`, `jku`, `x5u`, `x5c` are
//! ignored), and every deviation from the strict form is a rejection.

use super::{b64, json, Alg};
use serde_json::{Map, Value};

pub const MAX_KID_LEN: usize = 256;

/// Why a token could not be parsed. `Display` is the safe RFC 6750 `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsError {
    TooLarge,
    /// JWE (5 segments) or any other segment count.
    NotCompactJws,
    BadEncoding,
    BadHeader,
    BadPayload,
    /// `alg` missing, `none`, HS*, or any algorithm the filter does not verify.
    AlgorithmNotAllowed,
    /// `crit`, `b64: false`, `zip`, or a nested JWT (`cty: JWT`).
    UnsupportedHeader,
}

impl JwsError {
    pub fn description(self) -> &'static str {
        match self {
            JwsError::TooLarge => "token too large",
            JwsError::NotCompactJws => "token is not a compact JWS",
            JwsError::BadEncoding => "token is not strict base64url",
            JwsError::BadHeader => "token header is malformed",
            JwsError::BadPayload => "token payload is malformed",
            JwsError::AlgorithmNotAllowed => "token algorithm not allowed",
            JwsError::UnsupportedHeader => "token uses an unsupported header parameter",
        }
    }
}

/// A parsed, not yet verified, compact JWS whose payload is a JSON object (a JWT).
pub struct Jws<'a> {
    pub alg: Alg,
    pub kid: Option<String>,
    pub typ: Option<String>,
    pub header: Map<String, Value>,
    pub payload: Map<String, Value>,
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`, what the signature covers.
    pub signing_input: &'a [u8],
    pub signature: Vec<u8>,
}

/// A compact JWS before its payload is interpreted.
pub struct Compact<'a> {
    pub alg: Alg,
    pub kid: Option<String>,
    pub typ: Option<String>,
    pub header: Map<String, Value>,
    pub payload: Vec<u8>,
    pub signing_input: &'a [u8],
    pub signature: Vec<u8>,
}

/// Parses a JWT: a compact JWS (see `parse_compact`) whose payload is a JSON object.
pub fn parse(token: &str, max_len: usize) -> Result<Jws<'_>, JwsError> {
    let c = parse_compact(token, max_len)?;
    let payload = json::parse_object(&c.payload).ok_or(JwsError::BadPayload)?;
    Ok(Jws { alg: c.alg, kid: c.kid, typ: c.typ, header: c.header, payload, signing_input: c.signing_input, signature: c.signature })
}

/// Parses a compact JWS and applies the header rules; the payload is returned undecoded as JSON.
pub fn parse_compact(token: &str, max_len: usize) -> Result<Compact<'_>, JwsError> {
    let bytes = token.as_bytes();
    if bytes.len() > max_len {
        return Err(JwsError::TooLarge);
    }
    let mut dots = bytes.iter().enumerate().filter(|(_, c)| **c == b'.').map(|(i, _)| i);
    let (d1, d2) = match (dots.next(), dots.next(), dots.next()) {
        (Some(a), Some(b), None) => (a, b),
        _ => return Err(JwsError::NotCompactJws),
    };
    let (h64, p64, s64) = (&bytes[..d1], &bytes[d1 + 1..d2], &bytes[d2 + 1..]);
    let hbytes = b64::decode(h64).ok_or(JwsError::BadEncoding)?;
    let pbytes = b64::decode(p64).ok_or(JwsError::BadEncoding)?;
    let signature = b64::decode(s64).ok_or(JwsError::BadEncoding)?;
    let header = json::parse_object(&hbytes).ok_or(JwsError::BadHeader)?;

    let alg = match header.get("alg") {
        Some(Value::String(a)) => Alg::from_name(a).ok_or(JwsError::AlgorithmNotAllowed)?,
        Some(_) => return Err(JwsError::BadHeader),
        None => return Err(JwsError::AlgorithmNotAllowed),
    };
    // RFC 7515 §4.1.11: a `crit` we do not understand (we understand none) must be rejected.
    if header.contains_key("crit") || header.contains_key("zip") {
        return Err(JwsError::UnsupportedHeader);
    }
    // RFC 7797: unencoded payloads are not JWTs.
    match header.get("b64") {
        None | Some(Value::Bool(true)) => {}
        Some(_) => return Err(JwsError::UnsupportedHeader),
    }
    let opt_str = |name: &str| -> Result<Option<String>, JwsError> {
        match header.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(JwsError::BadHeader),
        }
    };
    let kid = opt_str("kid")?;
    if kid.as_ref().is_some_and(|k| k.len() > MAX_KID_LEN) {
        return Err(JwsError::BadHeader);
    }
    let typ = opt_str("typ")?;
    // Nested JWTs are handled only where configured (not here): RFC 7519 §5.2.
    if opt_str("cty")?.is_some_and(|c| c.eq_ignore_ascii_case("JWT")) {
        return Err(JwsError::UnsupportedHeader);
    }
    Ok(Compact { alg, kid, typ, header, payload: pbytes, signing_input: &bytes[..d2], signature })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(header: &str, payload: &str, sig: &[u8]) -> String {
        format!("{}.{}.{}", b64::encode(header.as_bytes()), b64::encode(payload.as_bytes()), b64::encode(sig))
    }

    #[test]
    fn parses_a_well_formed_token() {
        let t = tok(r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#, r#"{"sub":"a"}"#, &[1; 64]);
        let j = parse(&t, 8192).map_err(|e| e.description()).unwrap();
        assert_eq!(j.alg, Alg::Es256);
        assert_eq!(j.kid.as_deref(), Some("k1"));
        assert_eq!(j.signature.len(), 64);
        assert_eq!(j.signing_input, t.rsplit_once('.').unwrap().0.as_bytes());
    }

    #[test]
    fn header_rules() {
        use JwsError::*;
        let p = r#"{"sub":"a"}"#;
        let cases: &[(&str, JwsError)] = &[
            (r#"{"alg":"none"}"#, AlgorithmNotAllowed),
            (r#"{"alg":"None"}"#, AlgorithmNotAllowed),
            (r#"{"alg":"NONE"}"#, AlgorithmNotAllowed),
            (r#"{"alg":"HS256"}"#, AlgorithmNotAllowed),
            (r#"{"alg":"PS256"}"#, AlgorithmNotAllowed),
            (r#"{"alg":"ES384"}"#, AlgorithmNotAllowed),
            (r#"{"alg":"es256"}"#, AlgorithmNotAllowed),
            (r#"{"typ":"JWT"}"#, AlgorithmNotAllowed),
            (r#"{"alg":256}"#, BadHeader),
            (r#"{"alg":"ES256","alg":"ES256"}"#, BadHeader),
            (r#"{"alg":"ES256","crit":["exp"],"exp":1}"#, UnsupportedHeader),
            (r#"{"alg":"ES256","b64":false,"crit":["b64"]}"#, UnsupportedHeader),
            (r#"{"alg":"ES256","b64":false}"#, UnsupportedHeader),
            (r#"{"alg":"ES256","zip":"DEF"}"#, UnsupportedHeader),
            (r#"{"alg":"ES256","cty":"JWT"}"#, UnsupportedHeader),
            (r#"{"alg":"ES256","cty":"jwt"}"#, UnsupportedHeader),
            (r#"{"alg":"ES256","kid":7}"#, BadHeader),
            (r#"{"alg":"ES256","typ":["JWT"]}"#, BadHeader),
            (r#"["alg","ES256"]"#, BadHeader),
        ];
        for (h, want) in cases {
            let t = tok(h, p, &[1; 64]);
            assert_eq!(parse(&t, 8192).err(), Some(*want), "header {h}");
        }
        let huge_kid = format!(r#"{{"alg":"ES256","kid":"{}"}}"#, "a".repeat(300));
        assert_eq!(parse(&tok(&huge_kid, p, &[1; 64]), 8192).err(), Some(BadHeader));
    }

    #[test]
    fn structure_rules() {
        use JwsError::*;
        let good = tok(r#"{"alg":"ES256"}"#, r#"{"sub":"a"}"#, &[1; 64]);
        assert!(parse(&good, 8192).is_ok());
        assert_eq!(parse(&good, 20).err(), Some(TooLarge));
        let parts: Vec<&str> = good.split('.').collect();
        assert_eq!(parse(&format!("{}.{}", parts[0], parts[1]), 8192).err(), Some(NotCompactJws));
        assert_eq!(parse(&format!("{good}.x"), 8192).err(), Some(NotCompactJws));
        assert_eq!(parse(&format!("{}.{}.{}.{}.{}", parts[0], parts[1], "", "", ""), 8192).err(), Some(NotCompactJws));
        assert_eq!(parse(&format!("{}=.{}.{}", parts[0], parts[1], parts[2]), 8192).err(), Some(BadEncoding));
        assert_eq!(parse(&format!(" {good}"), 8192).err(), Some(BadEncoding));
        let bad_payload = tok(r#"{"alg":"ES256"}"#, r#"[1]"#, &[1; 64]);
        assert_eq!(parse(&bad_payload, 8192).err(), Some(BadPayload));
        let dup = tok(r#"{"alg":"ES256"}"#, r#"{"exp":1,"exp":2}"#, &[1; 64]);
        assert_eq!(parse(&dup, 8192).err(), Some(BadPayload));
        let utf8 = format!("{}.{}.{}", parts[0], b64::encode(b"{\"sub\":\"\xff\"}"), parts[2]);
        assert_eq!(parse(&utf8, 8192).err(), Some(BadPayload));
    }
}
