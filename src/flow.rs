//! The per-request decision, free of host calls:
//! route → extract → authenticate (claims cache, or parse, pick the provider by `iss`, find the
//! key, verify, check claims) → credential (forward as is, or exchange at the STS) → header plan.
//!
//! A request may have to wait: for its provider's first keys (or an unknown `kid`'s refetch), or
//! for a token exchange. Waiting requests are decided again (`resume`) on every tick and whenever
//! a fetch or an exchange ends, until they are allowed or answered: every paused request ends.
//! Exchanges have one leader per (token, target): other requests on the same worker wait for it
//! (in-flight map), other workers see a short shared-data marker and poll the cache; a waiter
//! whose leader vanished takes over after the marker's deadline.

use crate::cache::SlotCache;
use crate::claims;
use crate::config::{Config, JwksSource};
use crate::exchange::{self, ExchangeSpec, Failure, StsAnswer};
use crate::extract::{self, Extracted};
use crate::host::Host;
use crate::jose::jws::{self, JwsError};
use crate::jose::verify::{self, VerifyError};
use crate::keys::{FetchRequest, KeyState, Keystore, Want};
use crate::local::LocalCache;
use crate::metrics::{Deny, Metric};
use crate::reply::{self, Reply};
use crate::route::{self, RouteInput};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::rc::Rc;

/// Headers to change on the way upstream: every `remove` first, then every `set`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderPlan {
    pub remove: Vec<String>,
    pub set: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitKind {
    Keys(usize),
    Exchange,
}

/// A paused request: enough to decide it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub token: String,
    pub route: Option<usize>,
    /// How to take the client's token out of the request (used when it is exchanged).
    pub removal: HeaderPlan,
    pub started_ms: u64,
    pub deadline_ms: u64,
    pub kind: WaitKind,
    /// Whether this request already led an STS call: it never leads a second one.
    pub led: bool,
}

/// An STS call the glue must dispatch, then report with `exchange_done(key, …)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeCall {
    pub key: [u8; 32],
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allow(HeaderPlan),
    Deny(Reply),
    /// Pause until `resume` decides it.
    Wait(Pending),
    /// Pause, dispatch this STS call, and `resume` the request after `exchange_done`.
    Call(ExchangeCall, Pending),
}

/// How an STS call ended, as the glue saw it.
pub enum CallResult<'a> {
    Response { status: &'a str, body: &'a [u8] },
    DispatchFailed,
}

/// A verified subject token: what the filter keeps of it (also the claims-cache payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub provider: usize,
    /// `Jwk::fp` of the key that verified the token: a cached result is served only while the
    /// provider's current keys still hold that key (review finding F8).
    pub key_fp: u64,
    pub exp_ms: u64,
    pub scopes: Vec<String>,
    pub set: Vec<(String, String)>,
}

struct InFlight {
    deadline_ms: u64,
    route: usize,
    allowed_scopes: Vec<String>,
    subject_exp_ms: u64,
}

/// Per-VM filter state.
pub struct Filter {
    pub cfg: Rc<Config>,
    pub keys: Keystore,
    claims_cache: SlotCache,
    exchange_cache: SlotCache,
    /// This worker's own front for both caches.
    local: LocalCache,
    /// Exchanges this VM leads, by key.
    inflight: HashMap<[u8; 32], InFlight>,
    /// Results of exchanges that just ended on this VM, for their waiters (a few seconds at most).
    recent: HashMap<[u8; 32], Recent>,
}

/// An exchange that just ended. `waiters_only`: its token could not be cached (it expires at
/// once), so it answers only the requests that waited for it, never a new one (finding F4).
struct Recent {
    result: ExchangeResult,
    until_ms: u64,
    waiters_only: bool,
}

/// The token an exchange produced, or the answer its requests get.
type ExchangeResult = Result<String, (Deny, Reply)>;

enum Auth {
    Ok(Verified),
    Fail(Deny, &'static str),
    Unavailable,
    Wait(usize),
}

const RECENT_MAX: usize = 4096;

fn give_up(keys: &Keystore, p: usize, started: u64, missing: bool) -> Auth {
    let m = keys.meta(p);
    if missing || m.last_fail_ms >= started {
        Auth::Unavailable
    } else {
        Auth::Fail(Deny::UnknownKid, "token signing key is unknown")
    }
}

fn exp_to_ms(exp_s: f64) -> u64 {
    if exp_s >= (u64::MAX / 1000) as f64 {
        u64::MAX
    } else {
        (exp_s * 1000.0) as u64
    }
}

impl Filter {
    pub fn new(cfg: Rc<Config>) -> Filter {
        let keys = Keystore::new(&cfg);
        let ns = crate::keys::NAMESPACE;
        Filter {
            claims_cache: SlotCache::new(&format!("{ns}/claims"), cfg.cache_max_entries),
            exchange_cache: SlotCache::new(&format!("{ns}/xchg"), cfg.cache_max_entries),
            local: LocalCache::new(if cfg.cache_max_ttl_ms > 0 { cfg.cache_local_entries as usize } else { 0 }),
            cfg,
            keys,
            inflight: HashMap::new(),
            recent: HashMap::new(),
        }
    }

    pub fn init(&mut self, host: &dyn Host) {
        self.keys.init(host);
    }

    /// Every tick: JWKS sync/refresh, and forget exchange state past its time.
    pub fn tick(&mut self, host: &dyn Host) -> Vec<FetchRequest> {
        let now = host.now_ms();
        self.recent.retain(|_, r| r.until_ms > now);
        self.inflight.retain(|_, f| f.deadline_ms > now);
        self.keys.tick(host)
    }

    pub fn fetch_done(&mut self, p: usize, result: Result<Vec<u8>, String>, host: &dyn Host) {
        self.keys.fetch_done(p, result, host);
    }

    fn strip_plan(&self) -> HeaderPlan {
        HeaderPlan { remove: self.cfg.forward.strip_headers.clone(), set: Vec::new() }
    }

    fn reply_for(&self, d: Deny, description: &'static str) -> Reply {
        match d {
            Deny::Missing => reply::missing(&self.cfg.realm),
            Deny::BadRequest => reply::invalid_request(&self.cfg.realm, description),
            Deny::JwksUnavailable | Deny::ExchangeUnavailable => reply::unavailable(description),
            Deny::InsufficientScope => reply::insufficient_scope(&self.cfg.realm, description, ""),
            _ => reply::invalid_token(&self.cfg.realm, description),
        }
    }

    fn deny(&self, host: &dyn Host, d: Deny, description: &'static str) -> Outcome {
        self.deny_with(host, d, self.reply_for(d, description))
    }

    fn deny_with(&self, host: &dyn Host, d: Deny, r: Reply) -> Outcome {
        host.count(Metric::Denied(d));
        Outcome::Deny(r)
    }

    fn allow(&self, host: &dyn Host, plan: HeaderPlan) -> Outcome {
        host.count(Metric::Allowed);
        Outcome::Allow(plan)
    }

    /// Decides a request from its route and headers.
    pub fn on_request(&mut self, r: &RouteInput, headers: &[(String, Vec<u8>)], host: &dyn Host) -> Outcome {
        let route = route::select(&self.cfg.routes, r);
        let anonymous = route.is_some_and(|i| self.cfg.routes[i].allow_anonymous);
        let (token, sources) = match extract::extract(&self.cfg.sources, headers, r.path) {
            Extracted::Token { token, sources } => (token, sources),
            Extracted::None if anonymous => {
                host.count(Metric::AllowedAnonymous);
                return Outcome::Allow(self.strip_plan());
            }
            Extracted::None => return self.deny(host, Deny::Missing, ""),
            Extracted::Ambiguous => return self.deny(host, Deny::BadRequest, "more than one token in the request"),
            Extracted::Malformed => return self.deny(host, Deny::Malformed, "token malformed"),
        };
        let now = host.now_ms();
        let removal = match route.and_then(|i| self.cfg.routes[i].exchange.as_ref()) {
            Some(_) => extract::removal_plan(&self.cfg.sources, sources, headers, r.path),
            None => HeaderPlan::default(),
        };
        let p = Pending { token, route, removal, started_ms: now, deadline_ms: now, kind: WaitKind::Exchange, led: false };
        self.decide(&p, now, false, host)
    }

    /// Decides a waiting request again. `None`: keep waiting.
    pub fn resume(&mut self, pending: &Pending, host: &dyn Host) -> Option<Outcome> {
        let now = host.now_ms();
        match self.decide(pending, now, true, host) {
            Outcome::Wait(_) => None,
            other => Some(other),
        }
    }

    fn decide(&mut self, p: &Pending, now: u64, resumed: bool, host: &dyn Host) -> Outcome {
        let waited = resumed.then_some(p);
        match self.authenticate(&p.token, p.route, now, waited, host) {
            Auth::Ok(v) => match p.route.and_then(|r| self.cfg.routes[r].exchange.as_ref().map(|_| r)) {
                Some(r) => self.exchange(p, r, v, now, resumed, host),
                None => {
                    let mut plan = self.strip_plan();
                    plan.set = v.set;
                    self.allow(host, plan)
                }
            },
            Auth::Fail(d, desc) => self.deny(host, d, desc),
            Auth::Unavailable => self.deny(host, Deny::JwksUnavailable, "signing keys unavailable"),
            Auth::Wait(provider) => {
                if !resumed {
                    host.count(Metric::JwksWait);
                }
                let deadline_ms = if resumed { p.deadline_ms } else { now + self.keys.timeout_ms(provider) + 500 };
                Outcome::Wait(Pending { deadline_ms, kind: WaitKind::Keys(provider), started_ms: if resumed { p.started_ms } else { now }, ..p.clone() })
            }
        }
    }

    fn cache_key(&self, token: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.cfg.fingerprint);
        // The entry layout's version: a new build never reads an older build's entries.
        h.update(ENTRY_VERSION);
        h.update([0u8]);
        h.update(token.as_bytes());
        h.finalize().into()
    }

    fn allowed_on_route(&self, route: Option<usize>, p: usize) -> bool {
        route.is_none_or(|r| self.cfg.routes[r].providers.contains(&p))
    }

    /// A token found in a cache (this worker's front or shared data).
    /// `None`: the key that verified it has left the provider's keys since: verify again.
    fn claims_hit(&self, v: Verified, route: Option<usize>, waited: Option<&Pending>, host: &dyn Host) -> Option<Auth> {
        if !self.keys.holds_key(v.provider, v.key_fp) {
            return None;
        }
        if waited.is_none() {
            host.count(Metric::CacheHit);
        }
        if !self.allowed_on_route(route, v.provider) {
            return Some(Auth::Fail(Deny::ProviderNotAllowed, "issuer not accepted on this route"));
        }
        Some(Auth::Ok(v))
    }

    fn authenticate(&mut self, token: &str, route: Option<usize>, now: u64, waited: Option<&Pending>, host: &dyn Host) -> Auth {
        let cfg = self.cfg.clone();
        if let Some(v) = self.local.verified(token, now) {
            if let Some(a) = self.claims_hit(v.clone(), route, waited, host) {
                return a;
            }
        }
        let key = self.cache_key(token);
        if cfg.cache_max_ttl_ms > 0 {
            if let Some((v, until)) = self.claims_cache.get(host, &key, now).and_then(|(e, until)| Some((decode_entry(&e)?, until))) {
                let v2 = v.clone();
                if let Some(a) = self.claims_hit(v, route, waited, host) {
                    self.local.put_verified(token, until, &v2);
                    return a;
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
        let started = waited.map(|w| w.started_ms).unwrap_or(now);
        let keys = match self.keys.state(p, jws.kid.as_deref(), host) {
            KeyState::Ready(k) => k,
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
        let key_fp = match verify::verify_with_keys(&keys, jws.alg, jws.kid.as_deref(), jws.signing_input, &jws.signature) {
            Ok(fp) => fp,
            // The kid exists but is for another algorithm (e.g. an ES256 token naming an RSA key).
            Err(VerifyError::NoKeyForAlgorithm) => return Auth::Fail(Deny::Algorithm, "token algorithm does not match its key"),
            Err(VerifyError::BadSignature) => return Auth::Fail(Deny::Signature, "token signature invalid"),
        };
        let exp = match claims::check(provider, jws.typ.as_deref(), &jws.payload, now) {
            Ok(exp) => exp,
            Err(e) => return Auth::Fail(e.reason, e.description),
        };
        let Some(set) = self.claim_headers(&jws.payload) else {
            return Auth::Fail(Deny::HeaderValue, "token claim cannot be forwarded as a header");
        };
        let v = Verified { provider: p, key_fp, exp_ms: exp_to_ms(exp), scopes: exchange::subject_scopes(&jws.payload), set };
        if cfg.cache_max_ttl_ms > 0 {
            let until = v.exp_ms.min(now.saturating_add(cfg.cache_max_ttl_ms));
            if until > now {
                self.claims_cache.put(host, &key, until, &encode_entry(&v), now);
                self.local.put_verified(token, until, &v);
            }
        }
        Auth::Ok(v)
    }

    /// The claim and principal headers to set.
    fn claim_headers(&self, payload: &serde_json::Map<String, serde_json::Value>) -> Option<Vec<(String, String)>> {
        let fw = &self.cfg.forward;
        let mut set = Vec::new();
        for (claim, header) in &fw.claims_to_headers {
            if let Some(v) = payload.get(claim) {
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
        Some(set)
    }

    // ---------- token exchange ----------

    fn exchange_key(&self, token: &str, spec: &ExchangeSpec, scopes: &[String]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.cfg.fingerprint);
        h.update(ENTRY_VERSION);
        h.update([1u8]);
        h.update(token.as_bytes());
        for list in [&spec.audiences, &spec.resources, &scopes.to_vec()] {
            h.update([0u8]);
            for v in list.iter() {
                h.update(v.as_bytes());
                h.update([0xffu8]);
            }
        }
        h.finalize().into()
    }

    fn marker_key(&self, key: &[u8; 32]) -> String {
        let slot = u32::from_be_bytes([key[28], key[29], key[30], key[31]]) % self.cfg.cache_max_entries;
        format!("{}/xinf/{slot}", crate::keys::NAMESPACE)
    }

    /// The live shared in-flight marker for `key`, if another VM leads this exchange.
    fn marker_deadline(&self, key: &[u8; 32], now: u64, host: &dyn Host) -> Option<u64> {
        let (v, _) = host.shared_get(&self.marker_key(key))?;
        if v.len() != 24 || v[..16] != key[..16] {
            return None;
        }
        let mut d = [0u8; 8];
        d.copy_from_slice(&v[16..24]);
        let deadline = u64::from_be_bytes(d);
        (deadline > now).then_some(deadline)
    }

    fn set_marker(&self, key: &[u8; 32], deadline: u64, host: &dyn Host) {
        let mut v = key[..16].to_vec();
        v.extend_from_slice(&deadline.to_be_bytes());
        let _ = host.shared_set(&self.marker_key(key), &v, None);
    }

    fn exchanged_plan(&self, p: &Pending, v: Verified, token: &str) -> HeaderPlan {
        let mut plan = self.strip_plan();
        plan.remove.extend(p.removal.remove.iter().cloned());
        plan.set = v.set;
        plan.set.extend(p.removal.set.iter().cloned());
        let h = &self.cfg.forward.header;
        let value = if h == "authorization" { format!("Bearer {token}") } else { token.to_owned() };
        plan.set.push((h.clone(), value));
        plan
    }

    /// An exchanged token found in a cache (this worker's front or shared data).
    fn exchange_hit(&self, p: &Pending, v: Verified, token: &str, resumed: bool, host: &dyn Host) -> Outcome {
        if !resumed {
            host.count(Metric::ExchangeCacheHit);
        }
        let plan = self.exchanged_plan(p, v, token);
        self.allow(host, plan)
    }

    fn exchange(&mut self, p: &Pending, route: usize, v: Verified, now: u64, resumed: bool, host: &dyn Host) -> Outcome {
        let cfg = self.cfg.clone();
        let (Some(sts), Some(spec)) = (cfg.sts.as_ref(), cfg.routes[route].exchange.as_ref()) else {
            return self.deny(host, Deny::ExchangeUnavailable, "token exchange not configured");
        };
        let scopes = match exchange::downscope(&spec.scopes, &v.scopes) {
            Ok(s) => s,
            Err(_) => {
                let r = reply::insufficient_scope(&cfg.realm, "token lacks a scope this route requires", &spec.scopes.join(" "));
                return self.deny_with(host, Deny::InsufficientScope, r);
            }
        };
        let caching = cfg.cache_max_ttl_ms > 0;
        if let Some(tok) = self.local.exchanged(&p.token, route, now) {
            return self.exchange_hit(p, v, tok, resumed, host);
        }
        let key = self.exchange_key(&p.token, spec, &scopes);
        if let Some((tok, until)) = self.exchange_cache.get(host, &key, now).filter(|_| caching) {
            if let Ok(tok) = String::from_utf8(tok) {
                self.local.put_exchanged(&p.token, route, &tok, until, now);
                return self.exchange_hit(p, v, &tok, resumed, host);
            }
        }
        if let Some(r) = self.recent.get(&key) {
            // A result that could not be cached answers only the requests that waited for it
            // (the leader among them); a new request makes its own call.
            if now < r.until_ms && (resumed || !r.waiters_only) {
                return match r.result.clone() {
                    Ok(tok) => {
                        let plan = self.exchanged_plan(p, v, &tok);
                        self.allow(host, plan)
                    }
                    Err((d, r)) => self.deny_with(host, d, r),
                };
            }
        }
        let led_here = self.inflight.get(&key).map(|f| f.deadline_ms).filter(|d| *d > now);
        if let Some(deadline) = led_here.or_else(|| self.marker_deadline(&key, now, host)) {
            if !resumed {
                host.count(Metric::ExchangeWait);
            }
            return Outcome::Wait(Pending { deadline_ms: deadline, kind: WaitKind::Exchange, ..p.clone() });
        }
        if p.led {
            // Defence in depth: whatever the STS answered, one request makes one STS call.
            log::warn!("token exchange: a request's own exchange left no result; not calling the STS again");
            return self.deny(host, Deny::ExchangeUnavailable, "token exchange unavailable");
        }
        // Lead this exchange.
        host.count(Metric::ExchangeCacheMiss);
        let deadline = now + sts.timeout_ms + 500;
        let allowed_scopes = if spec.scopes.is_empty() { v.scopes.clone() } else { scopes.clone() };
        self.inflight.insert(key, InFlight { deadline_ms: deadline, route, allowed_scopes, subject_exp_ms: v.exp_ms });
        self.set_marker(&key, deadline, host);
        let req = exchange::build_request(
            &sts.authority,
            &sts.path,
            &sts.client_auth,
            spec,
            &scopes,
            &p.token,
            &sts.subject_token_type,
            &sts.requested_token_type,
        );
        let call = ExchangeCall { key, cluster: sts.cluster.clone(), headers: req.headers, body: req.body.into_bytes(), timeout_ms: sts.timeout_ms };
        Outcome::Call(call, Pending { deadline_ms: deadline, kind: WaitKind::Exchange, led: true, ..p.clone() })
    }

    /// The leader of `key` could not dispatch or went away: let a waiter take over at once.
    pub fn abandon(&mut self, key: &[u8; 32], host: &dyn Host) {
        if self.inflight.remove(key).is_some() {
            self.set_marker(key, 0, host);
        }
    }

    /// An STS call ended. Records the result for the key's waiters (cache, or `recent`), counts it.
    pub fn exchange_done(&mut self, key: &[u8; 32], result: CallResult, host: &dyn Host) {
        let now = host.now_ms();
        let Some(f) = self.inflight.remove(key) else {
            log::debug!("token exchange answer for an exchange no longer in flight");
            return;
        };
        self.set_marker(key, 0, host);
        let answer = match result {
            CallResult::Response { status, body } if body.len() <= exchange::MAX_RESPONSE_BYTES => exchange::parse_response(status, body),
            CallResult::Response { .. } => StsAnswer::Failed(Failure::BadResponse),
            CallResult::DispatchFailed => StsAnswer::Failed(Failure::Dispatch),
        };
        let outcome: ExchangeResult = match answer {
            StsAnswer::Token { access_token, expires_in, issued_token_type } => match self.check_issued(&access_token, &issued_token_type, &f, now, host) {
                Ok(exp_ms) => {
                    host.count(Metric::ExchangeOk);
                    let sts_margin = self.cfg.sts.as_ref().map(|s| s.margin_ms).unwrap_or(0);
                    let mut until = exp_ms.min(f.subject_exp_ms);
                    if let Some(e) = expires_in {
                        until = until.min(now.saturating_add(e.saturating_mul(1000)));
                    }
                    let cache_until = until.saturating_sub(sts_margin).min(now.saturating_add(self.cfg.cache_max_ttl_ms));
                    if cache_until > now && self.cfg.cache_max_ttl_ms > 0 {
                        self.exchange_cache.put(host, key, cache_until, access_token.as_bytes(), now);
                    }
                    if until > now {
                        self.remember(key, Ok(access_token), until.min(now + 2000), false);
                    } else {
                        // Expired at once (a subject inside its clock skew, `expires_in: 0`): it
                        // still answers this exchange's own requests, and nothing else.
                        self.remember(key, Ok(access_token), now + 1000, true);
                    }
                    return;
                }
                Err(why) => {
                    host.count(Metric::ExchangeRejected);
                    log::warn!("token exchange: the STS answer was rejected: {why}");
                    Err((Deny::ExchangeUnavailable, reply::unavailable("token exchange failed")))
                }
            },
            StsAnswer::Refused { status, description, .. } => {
                host.count(Metric::ExchangeFailed(Failure::Refused));
                let r = if status == 401 {
                    reply::invalid_token(&self.cfg.realm, description)
                } else {
                    reply::insufficient_scope(&self.cfg.realm, description, "")
                };
                Err((Deny::ExchangeRefused, r))
            }
            StsAnswer::Failed(why) => {
                host.count(Metric::ExchangeFailed(why));
                log::warn!("token exchange failed: {}", why.name());
                Err((Deny::ExchangeUnavailable, reply::unavailable("token exchange unavailable")))
            }
        };
        self.remember(key, outcome, now + 1000, false);
    }

    fn remember(&mut self, key: &[u8; 32], result: ExchangeResult, until_ms: u64, waiters_only: bool) {
        if self.recent.len() >= RECENT_MAX {
            self.recent.clear();
        }
        self.recent.insert(*key, Recent { result, until_ms, waiters_only });
    }

    /// Verifies an issued token before it may be forwarded: a JWT must verify against the STS keys
    /// and carry the right issuer, audience, expiry and scope. Returns its expiry (ms).
    ///
    /// An opaque token is forwarded unverified only where the STS is not expected to issue JWTs:
    /// with `sts.jwks` set, `requested_token_type` jwt, or `issued_token_type` jwt, whatever
    /// does not verify as a JWT is refused (finding F7).
    fn check_issued(&mut self, token: &str, issued_type: &str, f: &InFlight, now: u64, host: &dyn Host) -> Result<u64, &'static str> {
        let cfg = self.cfg.clone();
        let Some(sts) = cfg.sts.as_ref() else { return Err("no STS configured") };
        let spec = cfg.routes.get(f.route).and_then(|r| r.exchange.as_ref()).ok_or("route changed")?;
        let jwt_expected = sts.jwks.is_some() || sts.requested_token_type == exchange::TYPE_JWT || issued_type == exchange::TYPE_JWT;
        if token.bytes().filter(|c| *c == b'.').count() != 2 {
            if jwt_expected {
                return Err("issued token is not a JWT, but the STS is configured (or says) to issue JWTs");
            }
            // Not a JWS: an opaque token cannot be checked here; the upstream verifies it. It is
            // cached no longer than the subject token (and `expires_in`).
            return Ok(f.subject_exp_ms);
        }
        if sts.jwks.is_none() {
            return Err("issued token is a JWT but `sts.jwks` is not configured");
        }
        let jws = jws::parse(token, 16 * 1024).map_err(|e| e.description())?;
        let idx = cfg.providers.len();
        let keys = match self.keys.state(idx, jws.kid.as_deref(), host) {
            KeyState::Ready(k) => k,
            KeyState::Missing => {
                self.keys.want(idx, Want::FirstKeys);
                return Err("STS signing keys not loaded yet");
            }
            KeyState::UnknownKid(_) => {
                self.keys.want(idx, Want::UnknownKid);
                return Err("issued token names an unknown STS key");
            }
        };
        verify::verify_with_keys(&keys, jws.alg, jws.kid.as_deref(), jws.signing_input, &jws.signature)
            .map_err(|_| "issued token signature invalid")?;
        let exp = exchange::check_issued_claims(&jws.payload, &sts.issuer, spec, &f.allowed_scopes, now)?;
        Ok(exp_to_ms(exp))
    }
}

/// Hashed into every cache key: bump it when an entry's layout changes.
const ENTRY_VERSION: &[u8] = b"entry-v2";

/// Claims-cache payload: provider, key fingerprint, subject `exp` (ms), scopes, then
/// `name \0 value \0` per header. Header values never contain NUL (control bytes are refused
/// before caching).
pub fn encode_entry(v: &Verified) -> Vec<u8> {
    let mut out = vec![v.provider as u8];
    out.extend_from_slice(&v.key_fp.to_be_bytes());
    out.extend_from_slice(&v.exp_ms.to_be_bytes());
    out.extend_from_slice(v.scopes.join(" ").as_bytes());
    out.push(0);
    for (k, val) in &v.set {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(val.as_bytes());
        out.push(0);
    }
    out
}

pub fn decode_entry(bytes: &[u8]) -> Option<Verified> {
    if bytes.len() < 18 {
        return None;
    }
    let provider = bytes[0] as usize;
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&bytes[1..9]);
    let mut e = [0u8; 8];
    e.copy_from_slice(&bytes[9..17]);
    let mut parts = bytes[17..].split(|c| *c == 0);
    let scopes = std::str::from_utf8(parts.next()?).ok()?.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    let mut set = Vec::new();
    while let Some(k) = parts.next() {
        if k.is_empty() {
            break;
        }
        let v = parts.next()?;
        set.push((String::from_utf8(k.to_vec()).ok()?, String::from_utf8(v.to_vec()).ok()?));
    }
    Some(Verified { provider, key_fp: u64::from_be_bytes(fp), exp_ms: u64::from_be_bytes(e), scopes, set })
}
