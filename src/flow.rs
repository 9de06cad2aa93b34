//! The per-request decision, free of host calls: route → extract → authenticate (cache, or parse,
//! pick the provider by `iss`, find the key, verify, check claims) → header plan. A request whose
//! provider has no keys yet (or names an unknown `kid`) waits for the JWKS fetch; `resume` decides
//! it again when keys change or its deadline passes, so every paused request ends.

use crate::cache::SlotCache;
use crate::claims;
use crate::config::{Config, JwksSource};
use crate::extract::{self, Extracted};
use crate::host::Host;
use crate::jose::jws::{self, JwsError};
use crate::jose::verify::{self, VerifyError};
use crate::keys::{FetchRequest, KeyState, Keystore, Want};
use crate::metrics::{Deny, Metric};
use crate::reply::{self, Reply};
use crate::route::{self, RouteInput};
use sha2::{Digest, Sha256};
use std::rc::Rc;

/// Headers to change on the way upstream: every `remove` first, then every `set`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderPlan {
    pub remove: Vec<String>,
    pub set: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub token: String,
    pub route: Option<usize>,
    pub provider: usize,
    pub started_ms: u64,
    pub deadline_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allow(HeaderPlan),
    Deny(Reply),
    /// Pause the request until `resume` decides it.
    Wait(Pending),
}

/// Per-VM filter state: the configuration, this VM's view of the keys, the shared cache.
pub struct Filter {
    pub cfg: Rc<Config>,
    pub keys: Keystore,
    cache: SlotCache,
}

enum Auth {
    Ok(HeaderPlan),
    Fail(Deny, &'static str),
    Unavailable,
    Wait(usize),
}

/// Where a token's provider stands on keys, when waiting is no longer allowed.
fn give_up(keys: &Keystore, p: usize, started: u64, missing: bool) -> Auth {
    let m = keys.meta(p);
    if missing || m.last_fail_ms >= started {
        Auth::Unavailable
    } else {
        Auth::Fail(Deny::UnknownKid, "token signing key is unknown")
    }
}

impl Filter {
    pub fn new(cfg: Rc<Config>) -> Filter {
        let keys = Keystore::new(&cfg);
        let cache = SlotCache::new(&format!("{}/claims", crate::keys::NAMESPACE), cfg.cache_max_entries);
        Filter { cfg, keys, cache }
    }

    pub fn init(&mut self, host: &dyn Host) {
        let cfg = self.cfg.clone();
        self.keys.init(&cfg, host);
    }

    pub fn tick(&mut self, host: &dyn Host) -> Vec<FetchRequest> {
        let cfg = self.cfg.clone();
        self.keys.tick(&cfg, host)
    }

    pub fn fetch_done(&mut self, p: usize, result: Result<Vec<u8>, String>, host: &dyn Host) {
        let cfg = self.cfg.clone();
        self.keys.fetch_done(&cfg, p, result, host);
    }

    fn strip_plan(&self) -> HeaderPlan {
        HeaderPlan { remove: self.cfg.forward.strip_headers.clone(), set: Vec::new() }
    }

    fn deny(&self, host: &dyn Host, d: Deny, description: &'static str) -> Outcome {
        host.count(Metric::Denied(d));
        Outcome::Deny(match d {
            Deny::Missing => reply::missing(&self.cfg.realm),
            Deny::BadRequest => reply::invalid_request(&self.cfg.realm, description),
            Deny::JwksUnavailable => reply::unavailable(description),
            _ => reply::invalid_token(&self.cfg.realm, description),
        })
    }

    fn finish(&self, host: &dyn Host, auth: Auth, pending: impl FnOnce(usize) -> Pending) -> Outcome {
        match auth {
            Auth::Ok(plan) => {
                host.count(Metric::Allowed);
                Outcome::Allow(plan)
            }
            Auth::Fail(d, desc) => self.deny(host, d, desc),
            Auth::Unavailable => self.deny(host, Deny::JwksUnavailable, "signing keys unavailable"),
            Auth::Wait(p) => {
                host.count(Metric::JwksWait);
                Outcome::Wait(pending(p))
            }
        }
    }

    /// Decides a request from its route and headers.
    pub fn on_request(&mut self, r: &RouteInput, headers: &[(String, Vec<u8>)], host: &dyn Host) -> Outcome {
        let route = route::select(&self.cfg.routes, r);
        let anonymous = route.is_some_and(|i| self.cfg.routes[i].allow_anonymous);
        let token = match extract::extract(&self.cfg.sources, headers, r.path) {
            Extracted::Token { token, .. } => token,
            Extracted::None if anonymous => {
                host.count(Metric::AllowedAnonymous);
                return Outcome::Allow(self.strip_plan());
            }
            Extracted::None => return self.deny(host, Deny::Missing, ""),
            Extracted::Ambiguous => return self.deny(host, Deny::BadRequest, "more than one token in the request"),
            Extracted::Malformed => return self.deny(host, Deny::Malformed, "token malformed"),
        };
        let now = host.now_ms();
        let auth = self.authenticate(&token, route, now, None, host);
        self.finish(host, auth, |p| Pending {
            token,
            route,
            provider: p,
            started_ms: now,
            deadline_ms: now + self.keys.timeout_ms(p) + 500,
        })
    }

    /// Decides a waiting request again. `None`: keep waiting.
    pub fn resume(&mut self, pending: &Pending, host: &dyn Host) -> Option<Outcome> {
        let now = host.now_ms();
        let auth = self.authenticate(&pending.token, pending.route, now, Some(pending), host);
        if let Auth::Wait(_) = auth {
            return None;
        }
        Some(self.finish(host, auth, |_| pending.clone()))
    }

    fn cache_key(&self, token: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.cfg.fingerprint);
        h.update([0u8]);
        h.update(token.as_bytes());
        h.finalize().into()
    }

    fn allowed_on_route(&self, route: Option<usize>, p: usize) -> bool {
        route.is_none_or(|r| self.cfg.routes[r].providers.contains(&p))
    }

    fn authenticate(&mut self, token: &str, route: Option<usize>, now: u64, waited: Option<&Pending>, host: &dyn Host) -> Auth {
        let cfg = self.cfg.clone();
        let key = self.cache_key(token);
        if cfg.cache_max_ttl_ms > 0 {
            if let Some(entry) = self.cache.get(host, &key, now) {
                if let Some((p, plan)) = decode_entry(&entry, &cfg.forward.strip_headers) {
                    host.count(Metric::CacheHit);
                    if !self.allowed_on_route(route, p) {
                        return Auth::Fail(Deny::ProviderNotAllowed, "issuer not accepted on this route");
                    }
                    return Auth::Ok(plan);
                }
            }
            if waited.is_none() {
                host.count(Metric::CacheMiss);
            }
        }

        let jws = match jws::parse(token, cfg.max_token_bytes) {
            Ok(j) => j,
            Err(JwsError::AlgorithmNotAllowed) => return Auth::Fail(Deny::Algorithm, "token algorithm not allowed"),
            Err(e) => return Auth::Fail(Deny::Malformed, e.description()),
        };
        let iss = jws.payload.get("iss").and_then(|v| v.as_str()).unwrap_or("");
        let Some(p) = cfg.providers.iter().position(|x| x.issuer == iss) else {
            return Auth::Fail(Deny::Issuer, "issuer not trusted");
        };
        if !self.allowed_on_route(route, p) {
            return Auth::Fail(Deny::ProviderNotAllowed, "issuer not accepted on this route");
        }
        let provider = &cfg.providers[p];
        if provider.algorithms.as_ref().is_some_and(|a| !a.contains(&jws.alg)) {
            return Auth::Fail(Deny::Algorithm, "token algorithm not allowed");
        }
        let keys = match self.keys.state(&cfg, p, jws.kid.as_deref(), host) {
            KeyState::Ready(k) => k,
            KeyState::Missing => {
                let m = self.keys.meta(p);
                let started = waited.map(|w| w.started_ms).unwrap_or(now);
                let can_wait = waited.is_none_or(|w| now < w.deadline_ms && m.last_fail_ms < started && m.last_ok_ms < started);
                // Fail fast while a recent fetch failure's back-off runs.
                if waited.is_none() && m.last_fail_ms > m.last_ok_ms && now < m.last_fail_ms + self.keys.retry_ms(p) {
                    return Auth::Unavailable;
                }
                if !can_wait {
                    return give_up(&self.keys, p, started, true);
                }
                self.keys.want(p, Want::FirstKeys);
                return Auth::Wait(p);
            }
            KeyState::UnknownKid(_) => {
                let remote = matches!(provider.jwks, JwksSource::Remote(_));
                let started = waited.map(|w| w.started_ms).unwrap_or(now);
                match waited {
                    None if remote && self.keys.may_refetch(p, now) => {
                        self.keys.want(p, Want::UnknownKid);
                        return Auth::Wait(p);
                    }
                    Some(w) => {
                        let m = self.keys.meta(p);
                        if now < w.deadline_ms && m.last_ok_ms < started && m.last_fail_ms < started {
                            return Auth::Wait(p);
                        }
                        return give_up(&self.keys, p, started, false);
                    }
                    None => return Auth::Fail(Deny::UnknownKid, "token signing key is unknown"),
                }
            }
        };
        match verify::verify_with_keys(&keys, jws.alg, jws.kid.as_deref(), jws.signing_input, &jws.signature) {
            Ok(()) => {}
            // The kid exists but is for another algorithm (e.g. an ES256 token naming an RSA key).
            Err(VerifyError::NoKeyForAlgorithm) => return Auth::Fail(Deny::Algorithm, "token algorithm does not match its key"),
            Err(VerifyError::BadSignature) => return Auth::Fail(Deny::Signature, "token signature invalid"),
        }
        let exp = match claims::check(provider, jws.typ.as_deref(), &jws.payload, now) {
            Ok(exp) => exp,
            Err(e) => return Auth::Fail(e.reason, e.description),
        };
        let plan = match self.plan_for(&jws.payload) {
            Some(plan) => plan,
            None => return Auth::Fail(Deny::HeaderValue, "token claim cannot be forwarded as a header"),
        };
        if cfg.cache_max_ttl_ms > 0 {
            let exp_ms = if exp >= (u64::MAX / 1000) as f64 { u64::MAX } else { (exp * 1000.0) as u64 };
            let until = exp_ms.min(now.saturating_add(cfg.cache_max_ttl_ms));
            if until > now {
                self.cache.put(host, &key, until, &encode_entry(p, &plan), now);
            }
        }
        Auth::Ok(plan)
    }

    /// Strip every filter-owned header, then set the claim and principal headers.
    fn plan_for(&self, payload: &serde_json::Map<String, serde_json::Value>) -> Option<HeaderPlan> {
        let fw = &self.cfg.forward;
        let mut plan = self.strip_plan();
        for (claim, header) in &fw.claims_to_headers {
            if let Some(v) = payload.get(claim) {
                if v.is_null() {
                    continue;
                }
                plan.set.push((header.clone(), claims::header_value(v, &fw.array_separator)?));
            }
        }
        if let Some(h) = &fw.principal_header {
            let iss = payload.get("iss").and_then(|v| v.as_str())?;
            let sub = payload.get("sub").and_then(|v| v.as_str())?;
            plan.set.push((h.clone(), claims::principal(iss, sub)));
        }
        Some(plan)
    }
}

/// Cache payload: provider index, then `name \0 value \0` per header to set.
/// Header values never contain NUL (control bytes are refused before caching).
fn encode_entry(p: usize, plan: &HeaderPlan) -> Vec<u8> {
    let mut v = vec![p as u8];
    for (k, val) in &plan.set {
        v.extend_from_slice(k.as_bytes());
        v.push(0);
        v.extend_from_slice(val.as_bytes());
        v.push(0);
    }
    v
}

fn decode_entry(bytes: &[u8], strip: &[String]) -> Option<(usize, HeaderPlan)> {
    let (&p, rest) = bytes.split_first()?;
    let mut parts = rest.split(|c| *c == 0);
    let mut set = Vec::new();
    while let Some(k) = parts.next() {
        if k.is_empty() {
            break;
        }
        let v = parts.next()?;
        set.push((String::from_utf8(k.to_vec()).ok()?, String::from_utf8(v.to_vec()).ok()?));
    }
    Some((p as usize, HeaderPlan { remove: strip.to_vec(), set }))
}
