//! `forward`: the headers the filter sets (claims, the principal, the next hop's token) and the
//! ones it strips so a client can never supply them.

use super::{fail, header_name, ConfigError, Source};
use tef_config_raw::RawForward;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// (claim, header), sorted by claim.
    pub claims_to_headers: Vec<(String, String)>,
    pub principal_header: Option<String>,
    /// The verified payload, base64url as it was signed (like jwt_authn's `forward_payload_header`).
    pub payload_header: Option<String>,
    /// Every header removed from the incoming request before any is set: `strip_headers` plus
    /// every header the filter sets (so a client can never supply one the token did not), with
    /// the underscore spelling of each (`x_user_sub` for `x-user-sub`).
    pub strip_headers: Vec<String>,
    pub array_separator: String,
    /// Where an exchanged token goes: `authorization` gets `Bearer <token>`, any other header the bare token.
    pub header: String,
}

/// `also_set`: headers other sections make the filter set (a nested provider's caller header).
pub(super) fn forward(fw: RawForward, sources: &[Source], also_set: &[String]) -> Result<Forward, ConfigError> {
    let mut claims_to_headers = Vec::new();
    let mut strip: Vec<String> = also_set.to_vec();
    for (claim, h) in fw.claims_to_headers {
        let f = format!("forward.claims_to_headers.{claim}");
        if claim.is_empty() {
            return fail(f, "claim name must not be empty");
        }
        let h = header_name(&f, &h)?;
        strip.push(h.clone());
        claims_to_headers.push((claim, h));
    }
    let principal_header = match fw.principal_header {
        Some(h) => {
            let h = header_name("forward.principal_header", &h)?;
            strip.push(h.clone());
            Some(h)
        }
        None => None,
    };
    let payload_header = match fw.payload_header {
        Some(h) => {
            let h = header_name("forward.payload_header", &h)?;
            strip.push(h.clone());
            Some(h)
        }
        None => None,
    };
    for (i, h) in fw.strip_headers.iter().enumerate() {
        strip.push(header_name(&format!("forward.strip_headers[{i}]"), h)?);
    }
    for h in &strip {
        if h == "authorization" || h == "host" {
            return fail("forward", format!("the filter will not strip or set \"{h}\" here"));
        }
    }
    strip.sort();
    strip.dedup();
    let forward_header = match fw.header {
        Some(h) => header_name("forward.header", &h)?,
        None => "authorization".into(),
    };
    if strip.contains(&forward_header) {
        return fail("forward.header", "is also a stripped or claim header");
    }
    // A client's copy of the header exchanged tokens go to never reaches an upstream, on any
    // route (unless it is where the token is read from: then it is the token, verified).
    let is_source = sources.iter().any(|s| matches!(s, Source::Header { name, .. } if *name == forward_header));
    if forward_header != "authorization" && !is_source {
        strip.push(forward_header.clone());
    }
    // `x_user_sub` next to `x-user-sub`: CGI, WSGI and PHP upstreams read both as one variable.
    // Off only where Envoy already refuses or drops such headers (`headers_with_underscores_action`):
    // each spelling is one more header removal per request.
    if fw.strip_underscore_spellings.unwrap_or(true) {
        let underscored: Vec<String> = strip.iter().filter(|h| h.contains('-')).map(|h| h.replace('-', "_")).collect();
        strip.extend(underscored);
    }
    strip.sort();
    strip.dedup();
    let array_separator = fw.array_separator.unwrap_or_else(|| " ".into());
    if array_separator.is_empty() || !array_separator.bytes().all(|c| (0x20..0x7f).contains(&c)) {
        return fail("forward.array_separator", "must be non-empty printable ASCII");
    }
    Ok(Forward { claims_to_headers, principal_header, payload_header, strip_headers: strip, array_separator, header: forward_header })
}
