//! The mint credential: a short-lived JWT the filter signs itself (`signing.rs`) for the route's
//! audience, carrying the verified end user. No callout: a request that misses the cache signs
//! at once, so concurrent first requests sign at most once per worker (a worker runs one request
//! at a time, and the first caches what the next ones use).
//!
//! Claims of a minted token:
//! - `iss`: `signing.issuer`; `aud`: the route's audience; `iat`; `exp` = min(now + ttl, the
//!   subject's `exp`); `jti`: 128 random bits, unique per token.
//! - `sub`: the subject's `sub`; `sub_id` (RFC 9493 §3.2.5, format `iss_sub`): the subject's
//!   original issuer and subject, so that `iss` + `sub` stays unique across issuers after the hop.
//! - `act` (RFC 8693 §4.1): `{"sub": signing.actor}` (this proxy), with the subject's own `act`
//!   nested inside it when it had one: the call chain, newest actor outermost.
//! - `scope`: the route's `scopes` (all held by the subject, else 403) or else the subject's:
//!   never wider. The route's `copy_claims`, as they are.
//! - With `nest`: `subject_token`, the verified incoming token itself, so that the next hop
//!   verifies both this hop's token (for it) and the end user's (`providers[].nested`).
//!
//! Minted tokens are cached per (subject token, audience, scopes) in shared data and the
//! worker's front, until their `exp` minus a margin (a quarter of the ttl, at most 15 s), so a
//! hot request signs nothing.

use crate::authenticate::{Authenticator, Verified};
use crate::authorize;
use crate::cache::SlotCache;
use crate::config::{Config, MintSpec, Signing};
use crate::flow::{allow, deny, deny_with, Outcome, Pending};
use crate::host::Host;
use crate::metrics::{Deny, Metric};
use crate::plan;
use crate::singleflight::Key;
use serde_json::{json, Map, Value};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

pub struct Minter {
    cache: SlotCache,
    /// Keyed from the VM's random source once: `jti`s are unpredictable and unique per VM.
    seed: RandomState,
    counter: u64,
}

/// How long before its `exp` a cached minted token stops being served.
fn margin_ms(ttl_ms: u64) -> u64 {
    (ttl_ms / 4).min(15_000)
}

impl Minter {
    pub fn new(cfg: &Config) -> Minter {
        let ns = crate::keys::NAMESPACE;
        Minter { cache: SlotCache::new(&format!("{ns}/mint"), cfg.cache_max_entries), seed: RandomState::new(), counter: 0 }
    }

    fn key(cfg: &Config, token: &str, spec: &MintSpec) -> Key {
        super::cache_key(cfg, super::Kind::Mint, token, &[std::slice::from_ref(&spec.audience), &spec.scopes])
    }

    fn jti(&mut self, now: u64) -> String {
        self.counter = self.counter.wrapping_add(1);
        let a = self.seed.hash_one((self.counter, now, 0u8));
        let b = self.seed.hash_one((self.counter, now, 1u8));
        let mut bytes = a.to_be_bytes().to_vec();
        bytes.extend_from_slice(&b.to_be_bytes());
        crate::jose::b64::encode(&bytes)
    }

    /// The credential for a request on a mint `route`.
    #[allow(clippy::too_many_arguments)]
    pub fn run(&mut self, cfg: &Config, auth: &mut Authenticator, p: &Pending, route: usize, v: Verified, now: u64, resumed: bool, host: &dyn Host) -> Outcome {
        let (Some(signing), Some(spec)) = (cfg.signing.as_ref(), cfg.routes[route].mint.as_ref()) else {
            return deny(cfg, host, Deny::ExchangeUnavailable, "token minting not configured");
        };
        // A cached token was minted for this very subject token, so its scopes were checked:
        // the check (and its allocations) waits for a miss.
        if let Some(tok) = auth.local.exchanged(&p.token, route, now) {
            if !resumed {
                host.count(Metric::MintCacheHit);
            }
            return allow(host, plan::replaced(cfg, &p.removal, &v.set, tok));
        }
        let key = Self::key(cfg, &p.token, spec);
        if let Some(tok) = super::from_shared(cfg, &self.cache, &mut auth.local, &p.token, route, &key, now, host) {
            host.count(Metric::MintCacheHit);
            return allow(host, plan::replaced(cfg, &p.removal, &v.set, &tok));
        }
        let scopes = match authorize::required_scopes(cfg, &spec.scopes, &v.scopes) {
            Ok(s) if s.is_empty() => v.scopes.to_vec(),
            Ok(s) => s,
            Err(r) => return deny_with(host, Deny::InsufficientScope, r),
        };
        let jti = self.jti(now);
        let nested = spec.nest.then_some(&*p.token);
        let Some((claims, exp_ms)) = minted_claims(signing, spec, &v, &scopes, now, jti, nested) else {
            return deny(cfg, host, Deny::Claims, "token has no subject");
        };
        let header: Map<String, Value> = [("typ".to_owned(), json!(signing.typ))].into_iter().collect();
        let Some(token) = signing.current_key().sign(header, &claims) else {
            return deny(cfg, host, Deny::ExchangeUnavailable, "token minting unavailable");
        };
        host.count(Metric::MintOk);
        let until = exp_ms.saturating_sub(margin_ms(signing.ttl_ms)).min(now.saturating_add(cfg.cache_max_ttl_ms));
        super::keep(cfg, &self.cache, &mut auth.local, &p.token, route, &key, &token, until, now, host);
        allow(host, plan::replaced(cfg, &p.removal, &v.set, &token))
    }
}

/// The minted token's claims (see the module doc) and its expiry in ms. `None`: the verified
/// token has no string `sub`.
pub fn minted_claims(
    signing: &Signing,
    spec: &MintSpec,
    v: &Verified,
    scopes: &[String],
    now_ms: u64,
    jti: String,
    nested: Option<&str>,
) -> Option<(Map<String, Value>, u64)> {
    let carry = crate::jose::json::parse_object(v.carry.as_bytes()).unwrap_or_default();
    let sub = carry.get("sub").and_then(Value::as_str)?;
    let orig_iss = carry.get("iss").and_then(Value::as_str).unwrap_or("");
    let now_s = now_ms / 1000;
    let exp_s = (now_s + signing.ttl_ms / 1000).min(v.exp_ms / 1000);
    let mut act = json!({"sub": signing.actor});
    if let Some(prior) = carry.get("act").filter(|a| a.is_object()) {
        act["act"] = prior.clone();
    }
    let mut c = Map::new();
    for name in &spec.copy_claims {
        if let Some(val) = carry.get(name) {
            c.insert(name.clone(), val.clone());
        }
    }
    c.insert("iss".into(), json!(signing.issuer));
    c.insert("sub".into(), json!(sub));
    c.insert("sub_id".into(), json!({"format": "iss_sub", "iss": orig_iss, "sub": sub}));
    c.insert("aud".into(), json!(spec.audience));
    c.insert("iat".into(), json!(now_s));
    c.insert("exp".into(), json!(exp_s));
    c.insert("jti".into(), json!(jti));
    c.insert("act".into(), act);
    if !scopes.is_empty() {
        c.insert("scope".into(), json!(scopes.join(" ")));
    }
    if let Some(inner) = nested {
        c.insert(crate::config::NESTED_CLAIM.into(), json!(inner));
    }
    Some((c, exp_s * 1000))
}
