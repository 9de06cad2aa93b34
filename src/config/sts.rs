//! `sts`: the RFC 8693 token endpoint, its client authentication, and the keys and issuer the
//! issued tokens are checked against.

use super::{fail, jwks, ConfigError, JwksSource};
use crate::sts::{ClientAuth, TYPE_ACCESS_TOKEN, TYPE_JWT};
use tef_config_raw::{RawClientAuth, RawSts};

pub struct Sts {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub timeout_ms: u64,
    pub client_auth: ClientAuth,
    pub issuer: String,
    /// Keys of the issued tokens; without them an issued JWT is never forwarded.
    pub jwks: Option<JwksSource>,
    pub requested_token_type: String,
    pub subject_token_type: String,
    pub margin_ms: u64,
}

/// RFC 6749 §2.3.1 client authentication, as the STS and introspection take it; `f` names the field.
pub(super) fn client_auth(f: &str, a: &RawClientAuth) -> Result<ClientAuth, ConfigError> {
    let secret = |m: &str| match &a.client_secret {
        Some(s) if !s.is_empty() => Ok(s.clone()),
        _ => fail(format!("{f}.client_secret"), format!("is required for {m}")),
    };
    let id = |m: &str| match &a.client_id {
        Some(s) if !s.is_empty() => Ok(s.clone()),
        _ => fail(format!("{f}.client_id"), format!("is required for {m}")),
    };
    Ok(match a.method.as_str() {
        m @ "client_secret_basic" => ClientAuth::Basic { id: id(m)?, secret: secret(m)? },
        m @ "client_secret_post" => ClientAuth::Post { id: id(m)?, secret: secret(m)? },
        "none" => {
            if a.client_secret.is_some() {
                return fail(format!("{f}.client_secret"), "method `none` sends no secret");
            }
            ClientAuth::None { id: a.client_id.clone().filter(|s| !s.is_empty()) }
        }
        other => return fail(format!("{f}.method"), format!("\"{other}\" is not one of client_secret_basic, client_secret_post, none")),
    })
}

pub(super) fn sts(x: RawSts) -> Result<Sts, ConfigError> {
    if x.cluster.is_empty() {
        return fail("sts.cluster", "must not be empty");
    }
    if !x.path.starts_with('/') {
        return fail("sts.path", "must start with \"/\"");
    }
    if x.issuer.is_empty() {
        return fail("sts.issuer", "must not be empty");
    }
    let timeout_ms = x.timeout_ms.unwrap_or(1500);
    if !(10..=60_000).contains(&timeout_ms) {
        return fail("sts.timeout_ms", "must be 10..60000");
    }
    let client_auth = client_auth("sts.client_auth", &x.client_auth)?;
    let token_type = |field: &str, v: Option<String>| -> Result<String, ConfigError> {
        match v.as_deref() {
            None | Some("access_token") => Ok(TYPE_ACCESS_TOKEN.into()),
            Some("jwt") => Ok(TYPE_JWT.into()),
            Some(u) if u.starts_with("urn:") => Ok(u.into()),
            Some(u) => fail(field, format!("\"{u}\" is not access_token, jwt or a token type URN")),
        }
    };
    let jwks = match x.jwks {
        None => None,
        Some(j) => Some(jwks("sts.jwks", j)?),
    };
    let requested_token_type = token_type("sts.requested_token_type", x.requested_token_type)?;
    if requested_token_type == TYPE_JWT && jwks.is_none() {
        return fail("sts.jwks", "is required when `requested_token_type` is jwt: an issued JWT is never forwarded unverified");
    }
    let margin_s = x.expiry_margin_seconds.unwrap_or(30);
    if margin_s > 3600 {
        return fail("sts.expiry_margin_seconds", "must be at most 3600");
    }
    Ok(Sts {
        authority: x.authority.filter(|a| !a.is_empty()).unwrap_or_else(|| x.cluster.clone()),
        cluster: x.cluster,
        path: x.path,
        timeout_ms,
        client_auth,
        issuer: x.issuer,
        jwks,
        requested_token_type,
        subject_token_type: token_type("sts.subject_token_type", x.subject_token_type)?,
        margin_ms: margin_s * 1000,
    })
}
