//! Authentication of opaque tokens by introspection (RFC 7662; the phantom-token pattern): a
//! token that is not a JWT goes to the route's first introspecting provider. One call per token
//! however many requests wait (`singleflight.rs`); an active answer becomes a `Verified` like a
//! verified JWT's and is kept in the claims cache (so a cached opaque token costs what a cached
//! JWT costs), never past its `exp`, `max_cache_seconds`, the cache's `max_ttl_seconds` or the
//! answer's `Cache-Control`; an inactive answer is kept in a negative cache for
//! `negative_cache_seconds`. Every fault fails closed (`introspection.rs`).

use crate::authenticate::{encode_entry, exp_to_ms, Auth, Authenticator, Verified, INTROSPECTED};
use crate::cache::SlotCache;
use crate::config::Config;
use crate::flow::{CallResult, ExchangeCall, Pending, LED_INTROSPECTION};
use crate::host::Host;
use crate::introspection::{self, Answer, Body, Failure};
use crate::jose::{b64, jws, verify};
use crate::keys::{KeyState, Want};
use crate::metrics::{Deny, Histogram, Metric};
use crate::singleflight::{Flight, Key, SingleFlight};
use crate::sts::{self, ClientAuth};
use serde_json::{Map, Value};

/// The introspection a request gets: the token's claims, or its refusal.
type IntroResult = Result<Verified, (Deny, &'static str)>;

/// What an introspection in flight needs when its answer comes.
pub(crate) struct InFlight {
    started_ms: u64,
    provider: usize,
    /// The token's claims-cache key (the flight's own key is per provider).
    claims_key: Key,
    /// A JWT verified locally and introspected too (`introspect_jwts`): its claims are kept.
    jwt: Option<Verified>,
}

pub struct Introspector {
    /// Tokens the server said are not active, until `negative_cache_seconds` pass.
    negative: SlotCache,
    pub(crate) flight: SingleFlight<InFlight, IntroResult>,
}

impl Introspector {
    pub fn new(cfg: &Config) -> Introspector {
        let ns = crate::keys::NAMESPACE;
        Introspector { negative: SlotCache::new(&format!("{ns}/intro-neg"), cfg.cache_max_entries), flight: SingleFlight::new("iinf", cfg.cache_max_entries) }
    }

    pub fn tick(&mut self, now: u64) {
        self.flight.tick(now);
    }
}

/// A token is a JWT (verified locally) when it has the three parts of a compact JWS; anything
/// else is opaque.
pub fn is_opaque(token: &str) -> bool {
    token.bytes().filter(|c| *c == b'.').count() != 2
}

/// The provider that introspects opaque tokens on `route`: the first introspecting one of the
/// route's `providers` (all providers, in order, where no route matched).
pub fn provider_for(cfg: &Config, route: Option<usize>) -> Option<usize> {
    match route {
        Some(r) => cfg.routes[r].providers.iter().copied().find(|p| cfg.providers[*p].introspection.is_some()),
        None => cfg.providers.iter().position(|p| p.introspection.is_some()),
    }
}

fn provider_key(key: &Key, p: usize) -> Key {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(key);
    h.update(b"introspection");
    h.update((p as u32).to_be_bytes());
    h.finalize().into()
}

fn client_id(a: &ClientAuth) -> Option<&str> {
    match a {
        ClientAuth::Basic { id, .. } | ClientAuth::Post { id, .. } => Some(id),
        ClientAuth::None { id } => id.as_deref(),
    }
}

impl Authenticator {
    /// An opaque token that missed the claims cache: the negative cache, a call in flight, or
    /// a new call to provider `p`'s introspection endpoint.
    /// `jwt`: the token is a JWT of provider `p` that verified locally (`introspect_jwts`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn introspect(&mut self, p: usize, token: &str, key: &Key, jwt: Option<Verified>, now: u64, waited: Option<&Pending>, host: &dyn Host) -> Auth {
        let cfg = self.cfg.clone();
        let Some(i) = cfg.providers[p].introspection.as_ref() else { return Auth::Fail(Deny::Malformed, "token malformed") };
        // What one provider said of a token is that provider's: calls and negative answers
        // are per (token, provider).
        let claims_key = *key;
        let key = &provider_key(key, p);
        if i.negative_cache_ms > 0 && self.intro.negative.get(host, key, now).is_some() {
            if waited.is_none() {
                host.count(Metric::IntrospectionNegativeHit);
            }
            return Auth::Fail(Deny::Inactive, "token is not active");
        }
        // A signed answer is verified against the provider's keys: have them before calling.
        let expired = waited.is_some_and(|w| now >= w.deadline_ms);
        let unavailable = Auth::Fail(Deny::IntrospectionUnavailable, "token introspection unavailable");
        if i.signed && matches!(self.keys.state(p, None, host), KeyState::Missing) {
            if expired {
                return unavailable;
            }
            self.keys.want(p, Want::FirstKeys);
            return Auth::Wait(p);
        }
        match self.intro.flight.check(key, now, waited.is_some(), host) {
            Flight::Done(r) => return r.map_or_else(|(d, why)| Auth::Fail(d, why), Auth::Ok),
            Flight::Waiting(deadline) => {
                if waited.is_none() {
                    host.count(Metric::IntrospectionWait);
                }
                return Auth::WaitCall(deadline);
            }
            Flight::Free => {}
        }
        // A result that just came is taken above even at the deadline; past it, or once this
        // request led a call (whatever came of it), no new call.
        if expired || waited.is_some_and(|w| w.led & LED_INTROSPECTION != 0) {
            return unavailable;
        }
        // The endpoint: configured, or what the provider's discovery document said (any VM's
        // fetch, through shared data); before the document came, wait for it like for keys.
        let (authority, path) = match &i.path {
            Some(path) => (i.authority.clone(), path.clone()),
            None => match crate::keys::discovered_introspection(&cfg.providers[p].name, host) {
                Some(at) => at,
                None => {
                    // Refetch the document (rate-limited like an unknown kid's JWKS refetch).
                    self.keys.want(p, Want::UnknownKid);
                    return Auth::Wait(p);
                }
            },
        };
        let deadline = now + i.timeout_ms + 500;
        if let Err(theirs) = self.intro.flight.lead(*key, deadline, InFlight { started_ms: now, provider: p, claims_key, jwt }, now, host) {
            // Another VM took the call since `check` (both found it free): wait for its answer.
            if waited.is_none() {
                host.count(Metric::IntrospectionWait);
            }
            return Auth::WaitCall(theirs);
        }
        let req = introspection::build_request(i, &authority, &path, token);
        Auth::Call(ExchangeCall { key: *key, cluster: i.cluster.clone(), headers: req.headers, body: req.body.into_bytes(), timeout_ms: i.timeout_ms }, deadline)
    }

    /// The introspection call for `key` ended: the answer goes to the cache (or the negative
    /// cache) and to the requests waiting for it.
    pub fn introspection_done(&mut self, key: &Key, result: CallResult, host: &dyn Host) {
        let Some(f) = self.intro.flight.take(key) else { return };
        self.settle(key, f, result, host);
        // Only now, with the answer in the shared caches, may other VMs' waiters stop waiting.
        self.intro.flight.release(key, host);
    }

    fn settle(&mut self, key: &Key, f: InFlight, result: CallResult, host: &dyn Host) {
        let now = host.now_ms();
        let InFlight { started_ms, provider: p, claims_key, jwt } = f;
        host.observe(Histogram::IntrospectionCallMs, now.saturating_sub(started_ms));
        let cfg = self.cfg.clone();
        let provider = &cfg.providers[p];
        let Some(i) = provider.introspection.as_ref() else { return };
        let (answer, cache_control) = match result {
            CallResult::Response { body, .. } if body.len() > introspection::MAX_RESPONSE_BYTES => (Answer::Failed(Failure::BadAnswer), None),
            CallResult::Response { status, body, content_type, cache_control } => {
                let a = match introspection::classify(status, content_type, body, i.signed) {
                    Err(f) => Answer::Failed(f),
                    Ok(Body::Json(b)) => introspection::parse_json(b, &provider.issuer, &provider.audiences, provider.skew_s, now),
                    Ok(Body::Signed(b)) => match self.signed_claims(p, b, client_id(&i.client_auth), host) {
                        Ok(m) => introspection::interpret(m, &provider.issuer, &provider.audiences, provider.skew_s, now),
                        Err(f) => Answer::Failed(f),
                    },
                };
                (a, introspection::cache_control_max_age(cache_control))
            }
            CallResult::DispatchFailed => (Answer::Failed(Failure::Unreachable), None),
        };
        let result: IntroResult = match answer {
            Answer::Active(claims, exp) => {
                let keep_ms = i.max_cache_ms.min(cfg.cache_max_ttl_ms).min(cache_control.map_or(u64::MAX, |s| s * 1000));
                let exp_ms = exp.map_or(now.saturating_add(i.max_cache_ms), exp_to_ms);
                let verified = match jwt {
                    // A JWT: its verified claims, for no longer than either says.
                    Some(v) => Some(Verified { exp_ms: v.exp_ms.min(exp_ms), ..v }),
                    None => self.introspected(p, &claims, exp_ms),
                };
                match verified {
                    Some(v) => {
                        host.count(Metric::IntrospectionOk);
                        let until = exp_ms.min(now.saturating_add(keep_ms));
                        if until > now {
                            self.claims_cache.put(host, &claims_key, until, &encode_entry(&v), now);
                            self.intro.flight.remember(key, Ok(v), until.min(now + 2000), false);
                        } else {
                            // Not to be kept (`no-store`, caching off): its own requests only.
                            self.intro.flight.remember(key, Ok(v), now + 1000, true);
                        }
                        return;
                    }
                    None => Err((Deny::HeaderValue, "token claim cannot be forwarded as a header")),
                }
            }
            Answer::Inactive => {
                host.count(Metric::IntrospectionInactive);
                if i.negative_cache_ms > 0 && cache_control != Some(0) {
                    self.intro.negative.put(host, key, now + i.negative_cache_ms, b"inactive", now);
                }
                Err((Deny::Inactive, "token is not active"))
            }
            Answer::Failed(f) => {
                host.count(Metric::IntrospectionFailed(f));
                log::warn!("[introspection_failed.{}] provider {}: token introspection failed", f.name(), provider.name);
                if f.unavailable() {
                    Err((Deny::IntrospectionUnavailable, "token introspection unavailable"))
                } else {
                    Err((Deny::IntrospectionInvalid, "token introspection answer refused"))
                }
            }
        };
        self.intro.flight.remember(key, result, now + 1000, false);
    }

    /// An RFC 9701 answer: a JWS of `typ` `token-introspection+jwt` signed by one of provider
    /// `p`'s keys, naming the provider and us; its `token_introspection` member.
    fn signed_claims(&mut self, p: usize, body: &[u8], client_id: Option<&str>, host: &dyn Host) -> Result<Map<String, Value>, Failure> {
        let text = std::str::from_utf8(body).map_err(|_| Failure::BadAnswer)?.trim();
        let jws = jws::parse(text, introspection::MAX_RESPONSE_BYTES).map_err(|_| Failure::BadAnswer)?;
        let typ = jws.typ.as_deref().map(|t| t.to_ascii_lowercase());
        if typ.as_deref().map(|t| t.strip_prefix("application/").unwrap_or(t)) != Some(introspection::SIGNED_TYP) {
            return Err(Failure::Signature);
        }
        let provider = &self.cfg.providers[p];
        if provider.algorithms.as_ref().is_some_and(|a| !a.contains(&jws.alg)) {
            return Err(Failure::Signature);
        }
        let (keys, known) = match self.keys.state(p, jws.kid.as_deref(), host) {
            KeyState::Ready(k) => (k, true),
            KeyState::UnknownKid(k) => (k, false),
            KeyState::Missing => return Err(Failure::Keys),
        };
        if verify::verify_with_keys(&keys, jws.alg, jws.kid.as_deref(), jws.signing_input, &jws.signature).is_err() {
            if !known {
                self.keys.want(p, Want::UnknownKid);
                return Err(Failure::Keys);
            }
            return Err(Failure::Signature);
        }
        introspection::signed_payload(jws.payload, &provider.issuer, client_id)
    }

    /// What the filter keeps of an active answer, as for a verified JWT: scopes, the claim and
    /// principal headers (the payload header carries the answer's claims, base64url JSON).
    fn introspected(&self, p: usize, claims: &Map<String, Value>, exp_ms: u64) -> Option<Verified> {
        let payload = b64::encode(Value::Object(claims.clone()).to_string().as_bytes());
        let set = self.claim_headers(claims, Some(&payload))?;
        Some(Verified { provider: p, key_fp: INTROSPECTED, inner_key: None, exp_ms, scopes: sts::subject_scopes(claims).into(), set: set.into(), carry: self.carry(claims).into(), cnf: crate::claims::cnf(claims) })
    }
}
