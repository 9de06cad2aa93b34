//! `signing`: the filter's own issuer and keys, for minted tokens (`routes[].mint`), and the path
//! it serves their public JWKS on. Two shapes: one key inline (`kid`, `alg`, `private_jwk` or
//! `private_jwk_env`), or `keys[]` with exactly one current key and any number of retired ones
//! (served, never used, for rotation). A private key may come from an environment variable
//! holding the private JWK's JSON (Envoy: `vm_config.environment_variables.host_env_keys`), so
//! that it lives in a Kubernetes Secret rather than in the plugin configuration. Errors name the
//! field; they never carry key material.

use super::{fail, ConfigError};
use crate::jose::Alg;
use crate::signing::{self, SigningKey};
use tef_config_raw::RawSigning;
use serde_json::{Map, Value};

pub struct Signing {
    pub issuer: String,
    pub ttl_ms: u64,
    /// Served by the filter itself (GET/HEAD), with `cache-control: max-age`.
    pub jwks_path: Option<String>,
    pub jwks_max_age_s: u64,
    /// `act.sub` of minted tokens: this proxy (the issuer by default).
    pub actor: String,
    /// The minted tokens' `typ` header: `JWT`, or `at+jwt` (RFC 9068 access tokens).
    pub typ: String,
    /// Every configured key; `keys[current]` signs.
    pub keys: Vec<SigningKey>,
    pub current: usize,
    /// The JSON served on `jwks_path`.
    pub jwks_body: String,
}

impl Signing {
    pub fn current_key(&self) -> &SigningKey {
        &self.keys[self.current]
    }
}

/// A private JWK from the configuration or from the environment variable it names.
fn private_jwk(field: &str, inline: Option<Value>, env: Option<String>) -> Result<Option<Map<String, Value>>, ConfigError> {
    match (inline, env) {
        (Some(_), Some(_)) => fail(field, "set only one of `private_jwk` and `private_jwk_env`"),
        (Some(Value::Object(m)), None) => Ok(Some(m)),
        (Some(_), None) => fail(format!("{field}.private_jwk"), "must be a JWK object"),
        (None, Some(name)) => {
            let Ok(text) = std::env::var(&name) else {
                return fail(
                    format!("{field}.private_jwk_env"),
                    format!("environment variable {name} is not set (Envoy passes it to the VM with vm_config.environment_variables.host_env_keys)"),
                );
            };
            match crate::jose::json::parse_object(text.as_bytes()) {
                Some(m) => Ok(Some(m)),
                None => fail(format!("{field}.private_jwk_env"), format!("environment variable {name} does not hold a JWK JSON object")),
            }
        }
        (None, None) => Ok(None),
    }
}

fn key(field: &str, kid: &str, alg: &str, jwk: Map<String, Value>, private: bool) -> Result<SigningKey, ConfigError> {
    if kid.is_empty() || !kid.bytes().all(|c| c.is_ascii_graphic() && c != b'"' && c != b'\\') {
        return fail(format!("{field}.kid"), "must be non-empty printable ASCII without quotes");
    }
    let Some(alg) = Alg::from_name(alg).filter(|a| *a != Alg::Rs256) else {
        return fail(format!("{field}.alg"), format!("\"{alg}\" cannot sign here (EdDSA or ES256)"));
    };
    let which = if private { "private_jwk" } else { "public_jwk" };
    signing::parse_key(kid, alg, &jwk, private).map_err(|e| {
        let at = if e.member == "alg" { format!("{field}.alg") } else { format!("{field}.{which}.{}", e.member) };
        ConfigError { field: at, message: e.message }
    })
}

pub(super) fn signing(raw: RawSigning) -> Result<Signing, ConfigError> {
    let f = "signing";
    if raw.issuer.is_empty() {
        return fail("signing.issuer", "must not be empty");
    }
    let ttl_s = raw.ttl_seconds.unwrap_or(60);
    if !(1..=3600).contains(&ttl_s) {
        return fail("signing.ttl_seconds", "must be 1..3600 (minted tokens are short-lived)");
    }
    if let Some(p) = &raw.jwks_path {
        if !p.starts_with('/') || p.contains(['?', '#']) {
            return fail("signing.jwks_path", "must be a path starting with \"/\", without query");
        }
    }
    let max_age = raw.jwks_max_age_seconds.unwrap_or(300);
    if max_age > 86_400 {
        return fail("signing.jwks_max_age_seconds", "must be 0..86400");
    }
    let typ = raw.typ.unwrap_or_else(|| "JWT".into());
    if !["JWT", "at+jwt"].contains(&typ.as_str()) {
        return fail("signing.typ", "must be \"JWT\" or \"at+jwt\"");
    }
    let flat = raw.kid.is_some() || raw.alg.is_some() || raw.private_jwk.is_some() || raw.private_jwk_env.is_some();
    let mut keys: Vec<(SigningKey, bool)> = Vec::new();
    match (flat, raw.keys) {
        (true, Some(_)) => return fail(f, "give either one key (`kid`, `alg`, `private_jwk`) or `keys`, not both"),
        (false, None) => return fail(f, "no signing key: set `kid`, `alg` and `private_jwk` (or `private_jwk_env`), or `keys`"),
        (true, None) => {
            let kid = raw.kid.ok_or(ConfigError { field: "signing.kid".into(), message: "is required".into() })?;
            let alg = raw.alg.ok_or(ConfigError { field: "signing.alg".into(), message: "is required".into() })?;
            let Some(jwk) = private_jwk(f, raw.private_jwk, raw.private_jwk_env)? else {
                return fail("signing.private_jwk", "is required (or `private_jwk_env`)");
            };
            keys.push((key(f, &kid, &alg, jwk, true)?, false));
        }
        (false, Some(list)) => {
            if list.is_empty() || list.len() > 8 {
                return fail("signing.keys", "must hold 1..8 keys");
            }
            for (i, k) in list.into_iter().enumerate() {
                let kf = format!("signing.keys[{i}]");
                let private = private_jwk(&kf, k.private_jwk, k.private_jwk_env)?;
                let parsed = match (private, k.public_jwk) {
                    (Some(_), Some(_)) => return fail(kf, "set a private or a public JWK, not both"),
                    (Some(jwk), None) => key(&kf, &k.kid, &k.alg, jwk, true)?,
                    (None, Some(Value::Object(jwk))) if k.retired => key(&kf, &k.kid, &k.alg, jwk, false)?,
                    (None, Some(Value::Object(_))) => {
                        return fail(format!("{kf}.public_jwk"), "the current key needs its private JWK (only a retired key may be public-only)")
                    }
                    (None, Some(_)) => return fail(format!("{kf}.public_jwk"), "must be a JWK object"),
                    (None, None) => return fail(kf, "set `private_jwk`, `private_jwk_env` or (retired) `public_jwk`"),
                };
                if keys.iter().any(|(x, _)| x.kid == parsed.kid) {
                    return fail(format!("{kf}.kid"), format!("duplicate kid \"{}\"", parsed.kid));
                }
                keys.push((parsed, k.retired));
            }
        }
    }
    let current: Vec<usize> = keys.iter().enumerate().filter(|(_, (_, retired))| !retired).map(|(i, _)| i).collect();
    if current.len() != 1 {
        return fail("signing.keys", format!("exactly one key must be current (not retired); {} are", current.len()));
    }
    let keys: Vec<SigningKey> = keys.into_iter().map(|(k, _)| k).collect();
    let jwks_body = signing::jwks_body(&keys);
    Ok(Signing {
        actor: raw.actor.filter(|a| !a.is_empty()).unwrap_or_else(|| raw.issuer.clone()),
        issuer: raw.issuer,
        ttl_ms: ttl_s * 1000,
        jwks_path: raw.jwks_path,
        jwks_max_age_s: max_age,
        typ,
        keys,
        current: current[0],
        jwks_body,
    })
}
