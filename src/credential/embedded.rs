//! The embedded credential: the verified token carries tokens for other audiences, issued by the
//! same authorization server (say, a payments token embedding one for accounts), in a claim
//! holding an array of tokens or an object of audience → token. The route forwards the one for
//! its audience, and only after verifying it fully, as the outer token was: a JWS whose
//! signature verifies with the same provider's keys, `iss` the provider's, `aud` the route's
//! audience, `exp`/`nbf`/`iat` within the clock skew, `typ` as the provider accepts.
//!
//! None verifies → 403 `insufficient_scope` (`denied.embedded`): the caller is authenticated,
//! but its token carries nothing for this service. An embedded token is never forwarded
//! unverified. The chosen one is cached per (outer token, route) until its own `exp`.

use crate::authenticate::{exp_to_ms, Authenticator, Verified};
use crate::cache::SlotCache;
use crate::claims;
use crate::config::{AudiencePattern, Config, EmbeddedSpec};
use crate::flow::{allow, deny, Outcome, Pending};
use crate::host::Host;
use crate::jose::{jws, verify};
use crate::keys::KeyState;
use crate::metrics::Deny;
use crate::plan;
use serde_json::Value;

/// Embedded tokens tried per request at most.
pub const MAX_CANDIDATES: usize = 16;

pub struct Embedded {
    cache: SlotCache,
}

/// The candidates in `carried` (the verified token's carried claims as JSON) for `spec`: the
/// object member named by the audience first, then every other string member or element.
pub fn candidates(carried: &str, spec: &EmbeddedSpec) -> Vec<String> {
    let Some(m) = crate::jose::json::parse_object(carried.as_bytes()) else { return Vec::new() };
    let mut out: Vec<String> = Vec::new();
    match m.get(&spec.claim) {
        Some(Value::Array(a)) => out.extend(a.iter().filter_map(Value::as_str).map(str::to_owned)),
        Some(Value::Object(o)) => {
            if let Some(t) = o.get(&spec.audience).and_then(Value::as_str) {
                out.push(t.to_owned());
            }
            out.extend(o.iter().filter(|(k, _)| **k != spec.audience).filter_map(|(_, v)| v.as_str()).map(str::to_owned));
        }
        Some(Value::String(t)) => out.push(t.clone()),
        _ => {}
    }
    out.truncate(MAX_CANDIDATES);
    out
}

impl Embedded {
    pub fn new(cfg: &Config) -> Embedded {
        Embedded { cache: SlotCache::new(&format!("{}/embd", crate::keys::NAMESPACE), cfg.cache_max_entries) }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn run(&mut self, cfg: &Config, auth: &mut Authenticator, p: &Pending, route: usize, v: Verified, now: u64, host: &dyn Host) -> Outcome {
        let Some(spec) = cfg.routes[route].embedded.as_ref() else {
            return deny(cfg, host, Deny::Embedded, "no embedded token configured");
        };
        if let Some(tok) = auth.local.exchanged(&p.token, route, now) {
            return allow(host, plan::replaced(cfg, &p.removal, &v.set, tok));
        }
        let key = super::cache_key(cfg, super::Kind::Embedded, &p.token, &[std::slice::from_ref(&spec.audience)]);
        if let Some(tok) = super::from_shared(cfg, &self.cache, &mut auth.local, &p.token, route, &key, now, host) {
            return allow(host, plan::replaced(cfg, &p.removal, &v.set, &tok));
        }
        for t in candidates(&v.carry, spec) {
            if let Some(exp_ms) = verify_for(cfg, auth, v.provider, &t, &spec.audience, now, host) {
                let until = exp_ms.min(v.exp_ms).min(now.saturating_add(cfg.cache_max_ttl_ms));
                super::keep(cfg, &self.cache, &mut auth.local, &p.token, route, &key, &t, until, now, host);
                return allow(host, plan::replaced(cfg, &p.removal, &v.set, &t));
            }
        }
        deny(cfg, host, Deny::Embedded, "token carries no valid token for this service")
    }
}

/// Verifies an embedded token as provider `p` for `audience`; its expiry (ms) if it passes.
#[allow(clippy::too_many_arguments)]
fn verify_for(cfg: &Config, auth: &mut Authenticator, p: usize, token: &str, audience: &str, now: u64, host: &dyn Host) -> Option<u64> {
    let provider = &cfg.providers[p];
    let jws = jws::parse(token, cfg.max_token_bytes).ok()?;
    if provider.algorithms.as_ref().is_some_and(|a| !a.contains(&jws.alg)) {
        return None;
    }
    let KeyState::Ready(keys) = auth.keys.state(p, jws.kid.as_deref(), host) else { return None };
    verify::verify_with_keys(&keys, jws.alg, jws.kid.as_deref(), jws.signing_input, &jws.signature).ok()?;
    let exp = claims::check_for(provider, &[AudiencePattern::Exact(audience.to_owned())], jws.typ.as_deref(), &jws.payload, now).ok()?;
    Some(exp_to_ms(exp))
}
