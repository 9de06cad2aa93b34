//! The exchange credential: the verified token is exchanged at the STS (RFC 8693, `sts.rs`) for
//! one meant for the route's target, verified before it replaces the client's token, cached per
//! (token, target) in shared data and the worker's front, with one STS call per key however many
//! requests wait (`singleflight.rs`). Every STS fault fails closed.

use crate::authenticate::{exp_to_ms, Authenticator, Verified};
use crate::authorize;
use crate::cache::SlotCache;
use crate::config::Config;
use crate::flow::{allow, deny, deny_with, CallResult, ExchangeCall, Outcome, Pending, WaitKind, LED_EXCHANGE};
use crate::host::Host;
use crate::metrics::{Deny, Histogram, Metric};
use crate::plan;
use crate::reply::{self, Reply};
use crate::singleflight::{Flight, Key, SingleFlight};
use crate::sts::{self, ExchangeSpec, Failure, StsAnswer};

/// What the answer of an exchange in flight is checked against.
struct InFlight {
    started_ms: u64,
    route: usize,
    allowed_scopes: Vec<String>,
    subject_exp_ms: u64,
}

/// The token an exchange produced, or the answer its requests get.
type ExchangeResult = Result<String, (Deny, Reply)>;

pub struct Exchanger {
    cache: SlotCache,
    flight: SingleFlight<InFlight, ExchangeResult>,
}

impl Exchanger {
    pub fn new(cfg: &Config) -> Exchanger {
        let ns = crate::keys::NAMESPACE;
        Exchanger {
            cache: SlotCache::new(&format!("{ns}/xchg"), cfg.cache_max_entries),
            flight: SingleFlight::new("xinf", cfg.cache_max_entries),
        }
    }

    pub fn tick(&mut self, now: u64) {
        self.flight.tick(now);
    }

    fn key(cfg: &Config, token: &str, spec: &ExchangeSpec, scopes: &[String]) -> Key {
        super::cache_key(cfg, super::Kind::Exchange, token, &[&spec.audiences, &spec.resources, scopes])
    }

    /// The credential for a request on an exchange `route`: a cached exchanged token, the
    /// result of an exchange that just ended, a wait for one in flight, or a new STS call.
    #[allow(clippy::too_many_arguments)]
    pub fn run(&mut self, cfg: &Config, auth: &mut Authenticator, p: &Pending, route: usize, v: Verified, now: u64, resumed: bool, host: &dyn Host) -> Outcome {
        self.run_then(cfg, auth, p, route, v, now, resumed, host, &mut |p, v, token| allow(host, plan::replaced(cfg, &p.removal, &v.set, token)))
    }

    /// `run`, with what becomes of the exchanged token once there is one (`then`: by default
    /// it replaces the client's token; a Txn-Token route goes on to its own call).
    #[allow(clippy::too_many_arguments)]
    pub fn run_then(
        &mut self,
        cfg: &Config,
        auth: &mut Authenticator,
        p: &Pending,
        route: usize,
        v: Verified,
        now: u64,
        resumed: bool,
        host: &dyn Host,
        then: &mut dyn FnMut(&Pending, Verified, &str) -> Outcome,
    ) -> Outcome {
        // An exchanged token found in a cache (this worker's front or shared data).
        let mut hit = |v: Verified, token: &str| {
            if !resumed {
                host.count(Metric::ExchangeCacheHit);
            }
            then(p, v, token)
        };
        let (Some(sts), Some(spec)) = (cfg.sts.as_ref(), cfg.routes[route].exchange.as_ref()) else {
            return deny(cfg, host, Deny::ExchangeUnavailable, "token exchange not configured");
        };
        let scopes = match authorize::required_scopes(cfg, &spec.scopes, &v.scopes) {
            Ok(s) => s,
            Err(r) => return deny_with(host, Deny::InsufficientScope, r),
        };
        if let Some(tok) = auth.local.exchanged(&p.token, route, now) {
            return hit(v, tok);
        }
        let key = Self::key(cfg, &p.token, spec, &scopes);
        if let Some(tok) = super::from_shared(cfg, &self.cache, &mut auth.local, &p.token, route, &key, now, host) {
            return hit(v, &tok);
        }
        match self.flight.check(&key, now, resumed, host) {
            Flight::Done(Ok(tok)) => return then(p, v, &tok),
            Flight::Done(Err((d, r))) => return deny_with(host, d, r),
            Flight::Waiting(deadline) => {
                if !resumed {
                    host.count(Metric::ExchangeWait);
                }
                return Outcome::Wait(Pending { deadline_ms: deadline, kind: WaitKind::Exchange, ..p.clone() });
            }
            Flight::Free => {}
        }
        if p.led & LED_EXCHANGE != 0 {
            // Defence in depth: whatever the STS answered, one request makes one STS call.
            log::warn!("[exchange_no_result] token exchange: a request's own exchange left no result; not calling the STS again");
            return deny(cfg, host, Deny::ExchangeUnavailable, "token exchange unavailable");
        }
        // Lead this exchange (unless another VM took it since `check`: then wait for it).
        let deadline = now + sts.timeout_ms + 500;
        let allowed_scopes = if spec.scopes.is_empty() { v.scopes.to_vec() } else { scopes.clone() };
        if let Err(theirs) = self.flight.lead(key, deadline, InFlight { started_ms: now, route, allowed_scopes, subject_exp_ms: v.exp_ms }, now, host) {
            if !resumed {
                host.count(Metric::ExchangeWait);
            }
            return Outcome::Wait(Pending { deadline_ms: theirs, kind: WaitKind::Exchange, ..p.clone() });
        }
        host.count(Metric::ExchangeCacheMiss);
        let req = sts::build_request(
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
        Outcome::Call(call, Pending { deadline_ms: deadline, kind: WaitKind::Exchange, led: p.led | LED_EXCHANGE, ..p.clone() })
    }

    /// The leader of `key` could not dispatch or went away: let a waiter take over at once.
    pub fn abandon(&mut self, key: &Key, host: &dyn Host) {
        self.flight.abandon(key, host);
    }

    /// An STS call ended. Records the result for the key's waiters (cache, or the flight's
    /// remembered results), counts it.
    pub fn done(&mut self, cfg: &Config, auth: &mut Authenticator, key: &Key, result: CallResult, host: &dyn Host) {
        let Some(f) = self.flight.take(key) else {
            log::debug!("token exchange answer for an exchange no longer in flight");
            return;
        };
        self.settle(cfg, auth, key, f, result, host);
        // Only now, with the token in the shared cache, may other VMs' waiters stop waiting.
        self.flight.release(key, host);
    }

    fn settle(&mut self, cfg: &Config, auth: &mut Authenticator, key: &Key, f: InFlight, result: CallResult, host: &dyn Host) {
        let now = host.now_ms();
        host.observe(Histogram::ExchangeCallMs, now.saturating_sub(f.started_ms));
        let answer = match result {
            CallResult::Response { status, body, .. } if body.len() <= sts::MAX_RESPONSE_BYTES => sts::parse_response(status, body),
            CallResult::Response { .. } => StsAnswer::Failed(Failure::BadResponse),
            CallResult::DispatchFailed => StsAnswer::Failed(Failure::Dispatch),
        };
        let outcome: ExchangeResult = match answer {
            StsAnswer::Token { access_token, expires_in, issued_token_type } => match check_issued(cfg, auth, &access_token, &issued_token_type, &f, now, host) {
                Ok(exp_ms) => {
                    host.count(Metric::ExchangeOk);
                    let sts_margin = cfg.sts.as_ref().map(|s| s.margin_ms).unwrap_or(0);
                    let mut until = exp_ms.min(f.subject_exp_ms);
                    if let Some(e) = expires_in {
                        until = until.min(now.saturating_add(e.saturating_mul(1000)));
                    }
                    let cache_until = until.saturating_sub(sts_margin).min(now.saturating_add(cfg.cache_max_ttl_ms));
                    if cache_until > now && cfg.cache_max_ttl_ms > 0 {
                        self.cache.put(host, key, cache_until, access_token.as_bytes(), now);
                    }
                    if until > now && cfg.cache_max_ttl_ms > 0 {
                        self.flight.remember(key, Ok(access_token), until.min(now + 2000), false);
                    } else {
                        // Expired at once (a subject inside its clock skew, `expires_in: 0`), or
                        // the cache is off (`max_ttl_seconds: 0`): it still answers this
                        // exchange's own requests, and no new one.
                        self.flight.remember(key, Ok(access_token), now + 1000, true);
                    }
                    return;
                }
                Err(why) => {
                    host.count(Metric::ExchangeRejected);
                    log::warn!("[exchange_rejected] token exchange: the STS answer was rejected: {why}");
                    Err((Deny::ExchangeUnavailable, reply::unavailable("token exchange failed")))
                }
            },
            StsAnswer::Refused { status, description, .. } => {
                host.count(Metric::ExchangeFailed(Failure::Refused));
                let r = if status == 401 {
                    reply::invalid_token(&cfg.realm, description)
                } else {
                    reply::insufficient_scope(&cfg.realm, description, "")
                };
                Err((Deny::ExchangeRefused, r))
            }
            StsAnswer::Failed(why) => {
                host.count(Metric::ExchangeFailed(why));
                log::warn!("[exchange_failed.{}] token exchange failed", why.name());
                Err((Deny::ExchangeUnavailable, reply::unavailable("token exchange unavailable")))
            }
        };
        self.flight.remember(key, outcome, now + 1000, false);
    }
}

/// Verifies an issued token before it may be forwarded: a JWT must verify against the STS keys
/// and carry the right issuer, audience, expiry and scope. Returns its expiry (ms).
///
/// An opaque token is forwarded unverified only where the STS is not expected to issue JWTs:
/// with `sts.jwks` set, `requested_token_type` jwt, or `issued_token_type` jwt, whatever does
/// not verify as a JWT is refused (finding F7).
fn check_issued(cfg: &Config, auth: &mut Authenticator, token: &str, issued_type: &str, f: &InFlight, now: u64, host: &dyn Host) -> Result<u64, &'static str> {
    let Some(sts) = cfg.sts.as_ref() else { return Err("no STS configured") };
    let spec = cfg.routes.get(f.route).and_then(|r| r.exchange.as_ref()).ok_or("route changed")?;
    let jwt_expected = sts.jwks.is_some() || sts.requested_token_type == sts::TYPE_JWT || issued_type == sts::TYPE_JWT;
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
    let jws = super::verify_sts_signed(cfg, auth, token, host)?;
    let exp = sts::check_issued_claims(&jws.payload, &sts.issuer, spec, &f.allowed_scopes, now)?;
    Ok(exp_to_ms(exp))
}
