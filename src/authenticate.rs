//! Authentication of the incoming token: the worker's front and the shared claims cache first,
//! then a full verification of a JWT (strict JWS parse, the provider chosen by `iss`, its key by
//! `kid` and `alg`, the signature, the registered claims), whose result is cached. A remote
//! provider's keys may not be there yet: the request then waits for them (`Auth::Wait`).
//! Introspection of opaque tokens (issue 13) joins here as a second way to authenticate.

use crate::authorize;
use crate::cache::SlotCache;
use crate::claims;
use crate::config::{Config, JwksSource, Nested};
use crate::flow::Pending;
use crate::introspector::{self, Introspector};
use crate::host::Host;
use crate::jose::jws::{self, JwsError};
use crate::jose::verify::{self, VerifyError};
use crate::keys::{KeyState, Keystore, Want};
use crate::local::{LocalCache, Slot};
use crate::metrics::{Deny, Metric};
use crate::sts;
use serde_json::{Map, Value};
use std::rc::Rc;

/// A verified subject token: what the filter keeps of it (also the claims-cache payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub provider: usize,
    /// `Jwk::fp` of the key that verified the token: a cached result is served only while the
    /// provider's current keys still hold that key (review finding F8).
    pub key_fp: u64,
    /// A nested token's inner key: (provider, `Jwk::fp`), held to the same rule.
    pub inner_key: Option<(usize, u64)>,
    pub exp_ms: u64,
    /// Shared, not copied: a cached result is cloned on every request.
    pub scopes: std::rc::Rc<[String]>,
    /// Shared, not copied, like `scopes`: the forwarded plan of a cached token is found by it
    /// (`plan::ForwardPlans`).
    pub set: std::rc::Rc<[(String, String)]>,
    /// What minting needs of the token (`sub`, `iss`, `act` and the routes' `copy_claims`), as
    /// a JSON object; empty where no route mints.
    pub carry: std::rc::Rc<str>,
    /// What the token is bound to (DPoP key, client certificate): checked on every request by
    /// `sender.rs`, also for a cached token.
    /// `None` for an unbound token (most: no allocation).
    pub cnf: Option<Box<claims::Cnf>>,
}

/// What a cache hit counts.
fn count_hit(v: &Verified, host: &dyn Host) {
    host.count(Metric::CacheHit);
    if v.key_fp == INTROSPECTED {
        host.count(Metric::IntrospectionCacheHit);
    }
}

pub enum Auth {
    Ok(Verified),
    Fail(Deny, &'static str),
    Unavailable,
    /// Wait for this provider's keys.
    Wait(usize),
    /// Dispatch this introspection call (its deadline), then decide again.
    Call(crate::flow::ExchangeCall, u64),
    /// Another request's introspection is in flight until this deadline: wait for it.
    WaitCall(u64),
}

/// `Verified::key_fp` of an introspected token: no key verified it, the server vouched for it.
pub const INTROSPECTED: u64 = u64::MAX;

/// Per-VM authentication state: every provider's keys, the claims cache, the worker's front.
pub struct Authenticator {
    pub(crate) cfg: Rc<Config>,
    pub keys: Keystore,
    pub(crate) claims_cache: SlotCache,
    /// Opaque tokens (`introspector.rs`).
    pub(crate) intro: Introspector,
    /// This worker's own front for the claims and exchange caches.
    pub local: LocalCache,
}

fn give_up(keys: &Keystore, p: usize, started: u64, missing: bool) -> Auth {
    let m = keys.meta(p);
    if missing || m.last_fail_ms >= started {
        Auth::Unavailable
    } else {
        Auth::Fail(Deny::UnknownKid, "token signing key is unknown")
    }
}

pub fn exp_to_ms(exp_s: f64) -> u64 {
    if exp_s >= (u64::MAX / 1000) as f64 {
        u64::MAX
    } else {
        (exp_s * 1000.0) as u64
    }
}

impl Authenticator {
    pub fn new(cfg: Rc<Config>) -> Authenticator {
        let ns = crate::keys::NAMESPACE;
        Authenticator {
            keys: Keystore::new(&cfg),
            claims_cache: SlotCache::new(&format!("{ns}/claims"), cfg.cache_max_entries),
            intro: Introspector::new(&cfg),
            local: LocalCache::new(if cfg.cache_max_ttl_ms > 0 { cfg.cache_local_entries as usize } else { 0 }),
            cfg,
        }
    }

    /// One keyed BLAKE3 of the token alone, with the claims cache's own key (`hash_key`): the
    /// one-shot form, 1 083 V8 instructions under a hasher fed the prefix and the token apart
    /// (callgrind, one shared-data hit, bench/README 2026-12-07).
    fn cache_key(&self, token: &str) -> [u8; 32] {
        blake3::keyed_hash(&self.cfg.hash_keys[CLAIMS_PURPOSE as usize], token.as_bytes()).into()
    }


    /// A token found in a cache (this worker's front or shared data).
    /// `None`: the key that verified it has left the provider's keys since: verify again.
    fn claims_hit(&self, v: Verified, route: Option<usize>, waited: Option<&Pending>, host: &dyn Host) -> Option<Auth> {
        if !self.still_held(&v) {
            return None;
        }
        if waited.is_none() {
            count_hit(&v, host);
        }
        if !authorize::provider_allowed(&self.cfg, route, v.provider) {
            return Some(Auth::Fail(Deny::ProviderNotAllowed, "issuer not accepted on this route"));
        }
        Some(Auth::Ok(v))
    }

    /// Whether the keys that verified a kept result are still the provider's (an introspected
    /// result has none).
    fn still_held(&self, v: &Verified) -> bool {
        v.key_fp == INTROSPECTED || (self.keys.holds_key(v.provider, v.key_fp) && v.inner_key.is_none_or(|(ip, fp)| self.keys.holds_key(ip, fp)))
    }

    /// A token this worker forwarded a moment ago on `route`, as it came: the plan that decision
    /// made (`LocalCache::put_forwarded`) and the verification result it was made from, counted
    /// as the decision counts a cached result (the caller counts `allowed` once it has checked
    /// what this request brings itself: a client certificate). `None`: decide in full.
    /// Everything else that decision read is the configuration and that result, but the
    /// provider's keys, which change: checked here as `claims_hit` checks them.
    /// `slot`: where extraction found the token kept (`LocalCache::known`).
    pub fn forwarded(&self, token: &str, slot: Option<Slot>, route: Option<usize>, now: u64, host: &dyn Host) -> Option<(&Verified, std::rc::Rc<crate::flow::HeaderPlan>)> {
        self.kept_plan(self.local.forwarded_in(slot, token, route, now), host)
    }

    /// A plan kept in the worker's front with the result it was made from, served only while
    /// the key that verified that result is still the provider's; counted as a cached result.
    fn kept_plan<'a>(&self, kept: Option<(&'a Verified, &std::rc::Rc<crate::flow::HeaderPlan>)>, host: &dyn Host) -> Option<(&'a Verified, std::rc::Rc<crate::flow::HeaderPlan>)> {
        let (v, plan) = kept?;
        if !self.still_held(v) {
            return None;
        }
        count_hit(v, host);
        Some((v, plan.clone()))
    }

    /// `forwarded` for a route that exchanges or mints: the plan that replaced the client's
    /// token on `route` with the one kept for it (`LocalCache::replaced_in`), the provider's keys
    /// checked and the hit counted as there.
    pub fn replaced(&self, token: &str, slot: Option<Slot>, route: usize, sources: u32, now: u64, host: &dyn Host) -> Option<std::rc::Rc<crate::flow::HeaderPlan>> {
        self.kept_plan(self.local.replaced_in(slot, token, route, sources, now), host).map(|(_, plan)| plan)
    }

    pub fn authenticate(&mut self, token: &Rc<str>, route: Option<usize>, now: u64, waited: Option<&Pending>, host: &dyn Host) -> Auth {
        let cfg = self.cfg.clone();
        if let Some(v) = self.local.verified(token, now) {
            if let Some(a) = self.claims_hit(v.clone(), route, waited, host) {
                return a;
            }
        }
        let key = self.cache_key(token);
        if cfg.cache_max_ttl_ms > 0 {
            if let Some((v, until)) = self.claims_cache.get_with(host, &key, now, |e, until| Some((decode_entry(e)?, until))) {
                let kept = self.local.admit(token.as_bytes(), now).then(|| v.clone());
                if let Some(a) = self.claims_hit(v, route, waited, host) {
                    if let Some(v) = kept {
                        self.local.put_verified(token.clone(), until, &v);
                    }
                    return a;
                }
            }
        }
        // Not a token verified before (the caches hold no other): RFC 6750's b64token or
        // nothing, before anything parses it, sends it or counts a miss for it.
        if !crate::extract::is_b64token(token) {
            // Repeated headers Envoy joined with ',' (`extract::from_header` leaves them to here).
            if crate::extract::is_joined(token) {
                return Auth::Fail(Deny::BadRequest, "more than one token in the request");
            }
            return Auth::Fail(Deny::Malformed, "token malformed");
        }
        if cfg.cache_max_ttl_ms > 0 && waited.is_none() {
            host.count(Metric::CacheMiss);
        }

        if introspector::is_opaque(token) {
            if let Some(p) = introspector::provider_for(&cfg, route) {
                return self.introspect(p, token, &key, None, now, waited, host);
            }
        }
        let jws = match jws::parse(token, cfg.max_token_bytes) {
            Ok(j) => j,
            Err(JwsError::AlgorithmNotAllowed) => return Auth::Fail(Deny::Algorithm, "token algorithm not allowed"),
            Err(e) => return Auth::Fail(Deny::Malformed, e.description()),
        };
        let iss = jws.payload.get("iss").and_then(|v| v.as_str()).unwrap_or("");
        let Some(&p) = cfg.by_issuer.get(iss) else {
            return Auth::Fail(Deny::Issuer, "issuer not trusted");
        };
        if !authorize::provider_allowed(&cfg, route, p) {
            return Auth::Fail(Deny::ProviderNotAllowed, "issuer not accepted on this route");
        }
        if cfg.providers[p].inner_only {
            return Auth::Fail(Deny::ProviderNotAllowed, "issuer accepted only inside a nested token");
        }
        let provider = &cfg.providers[p];
        if provider.algorithms.as_ref().is_some_and(|a| !a.contains(&jws.alg)) {
            return Auth::Fail(Deny::Algorithm, "token algorithm not allowed");
        }
        let started = waited.map(|w| w.started_ms).unwrap_or(now);
        // A key without a `kid` that verifies a token naming an unknown one (RFC 7515 §4.1.4).
        let mut kidless_fp = None;
        let keys = match self.keys.state(p, jws.kid.as_deref(), host) {
            KeyState::Ready(k) => k,
            KeyState::UnknownKid(set) if {
                kidless_fp = verify::verify_with_keys(&set, jws.alg, jws.kid.as_deref(), jws.signing_input, &jws.signature).ok();
                kidless_fp.is_some()
            } =>
            {
                set
            }
            KeyState::Missing => {
                let m = self.keys.meta(p);
                // Fail fast while a recent fetch failure's back-off runs.
                if waited.is_none() && self.keys.in_backoff(p, now) {
                    return Auth::Unavailable;
                }
                let can_wait = waited.is_none_or(|w| now < w.deadline_ms && m.last_fail_ms < started && m.last_ok_ms < started);
                if !can_wait {
                    return give_up(&self.keys, p, started, true);
                }
                self.keys.want(p, Want::FirstKeys);
                return Auth::Wait(p);
            }
            KeyState::UnknownKid(_) => {
                let remote = matches!(provider.jwks, JwksSource::Remote(_));
                return match waited {
                    // The IdP failed a moment ago: no refetch before its back-off ends (F5), and
                    // the key may be a new one it could not deliver: 503, as for missing keys.
                    None if remote && self.keys.in_backoff(p, now) => Auth::Unavailable,
                    None if remote && self.keys.may_refetch(p, now) => {
                        self.keys.want(p, Want::UnknownKid);
                        Auth::Wait(p)
                    }
                    None => Auth::Fail(Deny::UnknownKid, "token signing key is unknown"),
                    Some(w) => {
                        let m = self.keys.meta(p);
                        if now < w.deadline_ms && m.last_ok_ms < started && m.last_fail_ms < started {
                            Auth::Wait(p)
                        } else {
                            give_up(&self.keys, p, started, false)
                        }
                    }
                };
            }
        };
        let verified = match kidless_fp {
            Some(fp) => Ok(fp),
            None => verify::verify_with_keys(&keys, jws.alg, jws.kid.as_deref(), jws.signing_input, &jws.signature),
        };
        let key_fp = match verified {
            Ok(fp) => fp,
            // The kid exists but is for another algorithm (e.g. an ES256 token naming an RSA key).
            Err(VerifyError::NoKeyForAlgorithm) => return Auth::Fail(Deny::Algorithm, "token algorithm does not match its key"),
            Err(VerifyError::BadSignature) => return Auth::Fail(Deny::Signature, "token signature invalid"),
        };
        let exp = match claims::check(provider, jws.typ.as_deref(), &jws.payload, now) {
            Ok(exp) => exp,
            Err(e) => return Auth::Fail(e.reason, e.description),
        };
        // A nested token: the end user's own token inside, verified as its provider's.
        let (exp, set, inner_key) = match &provider.nested {
            None => match self.claim_headers(&jws.payload, token.split('.').nth(1)) {
                Some(set) => (exp, set, None),
                None => return Auth::Fail(Deny::HeaderValue, "token claim cannot be forwarded as a header"),
            },
            Some(n) => match self.inner(n, &jws.payload, now, host) {
                Ok((inner_exp, set, inner_key)) => (exp.min(inner_exp), set, Some(inner_key)),
                Err(a) => return a,
            },
        };
        let v = Verified { provider: p, key_fp, inner_key, exp_ms: exp_to_ms(exp), scopes: sts::subject_scopes(&jws.payload).into(), set: set.into(), carry: self.carry(&jws.payload).into(), cnf: claims::cnf(&jws.payload) };
        if provider.introspection.as_ref().is_some_and(|i| i.jwts) {
            // Verified, and the server must still say it is active (revocation).
            return self.introspect(p, token, &key, Some(v), now, waited, host);
        }
        if cfg.cache_max_ttl_ms > 0 {
            let until = v.exp_ms.min(now.saturating_add(cfg.cache_max_ttl_ms));
            if until > now {
                self.claims_cache.put(host, &key, until, &encode_entry(&v), now);
                self.local.put_verified(token.clone(), until, &v);
            }
        }
        Auth::Ok(v)
    }

    /// The inner token of a nested one (`outer`: the verified outer claims): verified as one of
    /// the inner providers' (signature, `iss`, `aud`, `exp`, `typ`), one level deep, with the
    /// outer's subject. Its `exp` and the headers to set: the claims and the principal are the
    /// inner token's (the end user), the caller header names the outer `["iss","sub"]`.
    // Not on the hot path (nested tokens only): the large `Err` (a whole `Auth`) stays.
    #[allow(clippy::type_complexity, clippy::result_large_err)]
    fn inner(&mut self, n: &Nested, outer: &Map<String, Value>, now: u64, host: &dyn Host) -> Result<(f64, Vec<(String, String)>, (usize, u64)), Auth> {
        let cfg = self.cfg.clone();
        let fail = |d: &'static str| Auth::Fail(Deny::Nested, d);
        let inner_tok = outer.get(&n.claim).and_then(Value::as_str).ok_or(fail("nested token carries no inner token"))?;
        let jws = jws::parse(inner_tok, cfg.max_token_bytes).map_err(|_| fail("inner token malformed"))?;
        let iss = jws.payload.get("iss").and_then(Value::as_str).unwrap_or("");
        let ip = *n.inner_providers.iter().find(|i| cfg.providers[**i].issuer == iss).ok_or(fail("inner token issuer not trusted"))?;
        let inner_provider = &cfg.providers[ip];
        if inner_provider.algorithms.as_ref().is_some_and(|a| !a.contains(&jws.alg)) {
            return Err(fail("inner token algorithm not allowed"));
        }
        let keys = match self.keys.state(ip, jws.kid.as_deref(), host) {
            KeyState::Ready(k) => k,
            KeyState::Missing => {
                self.keys.want(ip, Want::FirstKeys);
                return Err(Auth::Wait(ip));
            }
            // Keys without a `kid` are still candidates (`KeySet::candidates`).
            KeyState::UnknownKid(set) => set,
        };
        let inner_fp = verify::verify_with_keys(&keys, jws.alg, jws.kid.as_deref(), jws.signing_input, &jws.signature)
            .map_err(|_| fail("inner token signature invalid"))?;
        let exp = claims::check(inner_provider, jws.typ.as_deref(), &jws.payload, now).map_err(|_| fail("inner token invalid"))?;
        if jws.payload.contains_key(&n.claim) {
            return Err(fail("nested token deeper than one level"));
        }
        if jws.payload.get("sub") != outer.get("sub") {
            return Err(fail("inner and outer tokens name different subjects"));
        }
        let mut set = self.claim_headers(&jws.payload, inner_tok.split('.').nth(1)).ok_or(Auth::Fail(Deny::HeaderValue, "token claim cannot be forwarded as a header"))?;
        if let Some(h) = &n.caller_header {
            let outer_iss = outer.get("iss").and_then(Value::as_str).unwrap_or("");
            let outer_sub = outer.get("sub").and_then(Value::as_str).unwrap_or("");
            set.push((h.clone(), claims::principal(outer_iss, outer_sub)));
        }
        Ok((exp, set, (ip, inner_fp)))
    }

    /// What minting needs of the verified claims, kept with them in the caches.
    pub(crate) fn carry(&self, payload: &serde_json::Map<String, serde_json::Value>) -> String {
        let wanted = &self.cfg.carried_claims;
        if wanted.is_empty() {
            return String::new();
        }
        let m: serde_json::Map<String, serde_json::Value> =
            wanted.iter().filter_map(|c| claims::lookup(payload, c).map(|v| (c.clone(), v.clone()))).collect();
        serde_json::Value::Object(m).to_string()
    }

    /// The claim and principal headers to set. `payload_b64`: what `forward.payload_header`
    /// carries (a JWT's payload segment exactly as it was signed).
    pub(crate) fn claim_headers(&self, payload: &serde_json::Map<String, serde_json::Value>, payload_b64: Option<&str>) -> Option<Vec<(String, String)>> {
        let fw = &self.cfg.forward;
        let mut set = Vec::new();
        for (claim, header) in &fw.claims_to_headers {
            if let Some(v) = claims::lookup(payload, claim) {
                if v.is_null() {
                    continue;
                }
                set.push((header.clone(), claims::header_value(v, &fw.array_separator)?));
            }
        }
        if let Some(h) = &fw.principal_header {
            let iss = payload.get("iss").and_then(|v| v.as_str())?;
            let sub = payload.get("sub").and_then(|v| v.as_str())?;
            set.push((h.clone(), claims::principal(iss, sub)));
        }
        if let Some(h) = &fw.payload_header {
            // The payload segment exactly as it was signed (strict base64url, checked by the parser).
            set.push((h.clone(), payload_b64?.to_owned()));
        }
        Some(set)
    }
}

/// Hashed into every cache key: bump it when an entry's layout changes.
pub const ENTRY_VERSION: &[u8] = b"entry-v6";

/// `hash_key`'s purpose for the claims cache (the credential caches' are `credential::Kind`).
pub const CLAIMS_PURPOSE: u8 = 0;

/// The key every shared-cache key of a token is hashed with, one per `purpose` (0 the claims
/// cache, then `credential::Kind`), made once per configuration: BLAKE3 (every shared-data
/// lookup hashes the whole token, and it is 2.9x faster than SHA-256 in V8) keyed with the
/// configuration's fingerprint, so entries made under another configuration never match, over
/// the entry layout's version, so a new build never reads an older build's entries, and the
/// purpose, so keys of different caches never collide.
pub fn hash_key(fingerprint: &[u8; 32], purpose: u8) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(fingerprint);
    h.update(ENTRY_VERSION);
    h.update(&[purpose]);
    h.finalize().into()
}

/// Claims-cache payload: provider, key fingerprint, the inner key of a nested token (flag, then
/// provider and fingerprint), subject `exp` (ms), scopes, the carried
/// claims (JSON), the `cnf` (`j` + jkt and/or `x` + x5t#S256, `\x01`-separated), then
/// `name \0 value \0` per header. Neither contains NUL (control bytes in
/// header values are refused before caching; JSON escapes them).
pub fn encode_entry(v: &Verified) -> Vec<u8> {
    let mut out = vec![v.provider as u8];
    out.extend_from_slice(&v.key_fp.to_be_bytes());
    match v.inner_key {
        Some((ip, fp)) => {
            out.push(1);
            out.push(ip as u8);
            out.extend_from_slice(&fp.to_be_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(&v.exp_ms.to_be_bytes());
    out.extend_from_slice(v.scopes.join(" ").as_bytes());
    out.push(0);
    out.extend_from_slice(v.carry.as_bytes());
    out.push(0);
    if let Some(j) = claims::Cnf::jkt(&v.cnf) {
        out.push(b'j');
        out.extend_from_slice(j.as_bytes());
    }
    if let Some(x) = claims::Cnf::x5t(&v.cnf) {
        out.push(1);
        out.push(b'x');
        out.extend_from_slice(x.as_bytes());
    }
    out.push(0);
    for (k, val) in v.set.iter() {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(val.as_bytes());
        out.push(0);
    }
    out
}

thread_local! {
    static EMPTY: (std::rc::Rc<[String]>, std::rc::Rc<str>) = (std::rc::Rc::from(Vec::new()), std::rc::Rc::from(""));
}

pub fn decode_entry(bytes: &[u8]) -> Option<Verified> {
    let u64_at = |at: usize| -> Option<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(bytes.get(at..at + 8)?);
        Some(u64::from_be_bytes(b))
    };
    let provider = *bytes.first()? as usize;
    let key_fp = u64_at(1)?;
    let (inner_key, at) = match *bytes.get(9)? {
        0 => (None, 10),
        1 => (Some((*bytes.get(10)? as usize, u64_at(11)?)), 19),
        _ => return None,
    };
    let exp_ms = u64_at(at)?;
    let mut parts = bytes.get(at + 8..)?.split(|c| *c == 0);
    let (scope_text, carry_text) = (std::str::from_utf8(parts.next()?).ok()?, std::str::from_utf8(parts.next()?).ok()?);
    // Most entries have no scopes and carry nothing (no route mints): those share one empty
    // allocation each instead of making one per decode (a shared-data hit decodes every time).
    let (scopes, carry) = EMPTY.with(|(no_scopes, no_carry)| {
        let scopes = if scope_text.is_empty() { no_scopes.clone() } else { scope_text.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>().into() };
        let carry = if carry_text.is_empty() { no_carry.clone() } else { carry_text.into() };
        (scopes, carry)
    });
    let mut c = claims::Cnf::default();
    let cnf_part = parts.next()?;
    for m in cnf_part.split(|c| *c == 1).filter(|m| !m.is_empty()) {
        let val = String::from_utf8(m[1..].to_vec()).ok()?;
        match m[0] {
            b'j' => c.jkt = Some(val),
            b'x' => c.x5t = Some(val),
            _ => return None,
        }
    }
    let cnf = (!cnf_part.is_empty()).then(|| Box::new(c));
    let mut set = Vec::new();
    while let Some(k) = parts.next() {
        if k.is_empty() {
            break;
        }
        let v = parts.next()?;
        set.push((String::from_utf8(k.to_vec()).ok()?, String::from_utf8(v.to_vec()).ok()?));
    }
    Some(Verified { provider, key_fp, inner_key, exp_ms, scopes, set: set.into(), carry, cnf })
}
