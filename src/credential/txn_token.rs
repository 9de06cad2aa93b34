//! The Txn-Token credential: one call to the Txn-Token service (the `sts` endpoint) per request
//! for a Transaction Token (draft-ietf-oauth-transaction-tokens-10), verified (signature with
//! `sts.jwks`, `typ`, trust domain, `txn`, `sub`, lifetime, scope) before it goes in its
//! header. A Txn-Token names one call chain (`txn`): it is never cached, never shared between
//! requests, so there is no single flight here — each request leads its own call, and its
//! answer comes back to it alone (by a key no other request has). Every fault fails closed.

use crate::authenticate::{Authenticator, Verified};
use crate::authorize;
use crate::config::{Config, TxnSpec};
use crate::flow::{allow, deny, deny_with, CallResult, ExchangeCall, Outcome, Pending, WaitKind, LED_TXN};
use crate::host::Host;
use crate::metrics::{Deny, Histogram, Metric};
use crate::plan;
use crate::reply::{self, Reply};
use crate::singleflight::Key;
use crate::sts::{self, Failure, StsAnswer};
use crate::txn_token;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

struct InFlight {
    started_ms: u64,
    deadline_ms: u64,
    route: usize,
    allowed_scopes: Vec<String>,
}

type TxnResult = Result<String, (Deny, Reply)>;

#[derive(Default)]
pub struct TxnTokens {
    in_flight: HashMap<Key, InFlight>,
    /// Answers not yet taken by their request (it resumes right after), with when they go.
    results: HashMap<Key, (u64, TxnResult)>,
    calls: u64,
}

impl TxnTokens {
    pub fn new() -> TxnTokens {
        TxnTokens::default()
    }

    /// A key no other request on this VM has (the answer is this request's alone).
    fn next_key(&mut self, cfg: &Config, now: u64) -> Key {
        self.calls += 1;
        let mut h = Sha256::new();
        h.update(cfg.fingerprint);
        h.update(b"txn-token call");
        h.update(self.calls.to_be_bytes());
        h.update(now.to_be_bytes());
        h.finalize().into()
    }

    pub fn leads(&self, key: &Key) -> bool {
        self.in_flight.contains_key(key)
    }

    /// Forgets calls and answers past their time (a reset stream's, which nothing takes).
    pub fn tick(&mut self, now: u64) {
        self.in_flight.retain(|_, f| f.deadline_ms + 5_000 > now);
        self.results.retain(|_, (until, _)| *until > now);
    }

    /// The request's stream went away: its answer, when it comes, is dropped.
    pub fn abandon(&mut self, key: &Key) {
        self.in_flight.remove(key);
        self.results.remove(key);
    }

    fn plan(cfg: &Config, spec: &TxnSpec, p: &Pending, v: Verified, token: String, exchanged: Option<&str>) -> plan::HeaderPlan {
        match exchanged {
            // The client's token replaced by its exchanged one, and the Txn-Token beside it.
            Some(x) => plan::also_set(plan::replaced(cfg, &p.removal, &v.set, x), &spec.header, token),
            None => plan::with_header(cfg, (!spec.keep_authorization).then_some(&p.removal), &v.set, &spec.header, token),
        }
    }

    /// The credential for a request on a Txn-Token `route`: the answer to its own call (after
    /// it), or a new call. `exchanged`: the client's token as exchanged for the upstream, where
    /// the route also exchanges it.
    #[allow(clippy::too_many_arguments)]
    pub fn run(&mut self, cfg: &Config, p: &Pending, route: usize, v: Verified, now: u64, host: &dyn Host, exchanged: Option<&str>) -> Outcome {
        let (Some(s), Some(spec)) = (cfg.sts.as_ref(), cfg.routes[route].txn.as_ref()) else {
            return deny(cfg, host, Deny::TxnTokenUnavailable, "Txn-Token service not configured");
        };
        let scopes = match authorize::required_scopes(cfg, &spec.scopes, &v.scopes) {
            Ok(s) => s,
            Err(r) => return deny_with(host, Deny::InsufficientScope, r),
        };
        if p.led & LED_TXN != 0 {
            let Some(key) = p.txn_key else {
                return deny(cfg, host, Deny::TxnTokenUnavailable, "Txn-Token unavailable");
            };
            return match self.results.remove(&key) {
                Some((_, Ok(tok))) => allow(host, Self::plan(cfg, spec, p, v, tok, exchanged)),
                Some((_, Err((d, r)))) => deny_with(host, d, r),
                None if self.in_flight.contains_key(&key) && now < p.deadline_ms => Outcome::Wait(p.clone()),
                None => {
                    // One request makes one Txn-Token call, whatever became of it.
                    self.in_flight.remove(&key);
                    deny(cfg, host, Deny::TxnTokenUnavailable, "Txn-Token unavailable")
                }
            };
        }
        let key = self.next_key(cfg, now);
        let deadline = now + s.timeout_ms + 500;
        let allowed_scopes = if spec.scopes.is_empty() { v.scopes.to_vec() } else { scopes.clone() };
        self.in_flight.insert(key, InFlight { started_ms: now, deadline_ms: deadline, route, allowed_scopes });
        let mut facts = p.facts.as_deref().cloned().unwrap_or_default();
        facts.authn = authn(cfg, p, &v);
        let req = txn_token::build_request(s, spec, &scopes, &p.token, &facts);
        let call = ExchangeCall { key, cluster: s.cluster.clone(), headers: req.headers, body: req.body.into_bytes(), timeout_ms: s.timeout_ms };
        let exchanged = exchanged.map(str::to_owned);
        Outcome::Call(call, Pending { deadline_ms: deadline, kind: WaitKind::Exchange, led: p.led | LED_TXN, txn_key: Some(key), exchanged, ..p.clone() })
    }

    /// A Txn-Token call ended: its checked answer waits for its request.
    pub fn done(&mut self, cfg: &Config, auth: &mut Authenticator, key: &Key, result: CallResult, host: &dyn Host) {
        let now = host.now_ms();
        let Some(f) = self.in_flight.remove(key) else { return };
        host.observe(Histogram::TxnTokenCallMs, now.saturating_sub(f.started_ms));
        let answer = match result {
            CallResult::Response { status, body, .. } if body.len() <= sts::MAX_RESPONSE_BYTES => sts::parse_response(status, body),
            CallResult::Response { .. } => StsAnswer::Failed(Failure::BadResponse),
            CallResult::DispatchFailed => StsAnswer::Failed(Failure::Dispatch),
        };
        let outcome: TxnResult = match answer {
            StsAnswer::Token { access_token, issued_token_type, .. } => match check(cfg, auth, &access_token, &issued_token_type, &f, now, host) {
                Ok(()) => {
                    host.count(Metric::TxnTokenOk);
                    Ok(access_token)
                }
                Err(why) => {
                    host.count(Metric::TxnTokenRejected);
                    log::warn!("[txn_token_rejected] Txn-Token: the service's answer was rejected: {why}");
                    Err((Deny::TxnTokenUnavailable, reply::unavailable("Txn-Token unavailable")))
                }
            },
            StsAnswer::Refused { status, description, .. } => {
                host.count(Metric::TxnTokenFailed(Failure::Refused));
                let r = if status == 401 { reply::invalid_token(&cfg.realm, description) } else { reply::insufficient_scope(&cfg.realm, description, "") };
                Err((Deny::TxnTokenRefused, r))
            }
            StsAnswer::Failed(why) => {
                host.count(Metric::TxnTokenFailed(why));
                log::warn!("[txn_token_failed.{}] Txn-Token call failed", why.name());
                Err((Deny::TxnTokenUnavailable, reply::unavailable("Txn-Token unavailable")))
            }
        };
        self.results.insert(*key, (now + 5_000, outcome));
    }
}

/// How the edge authenticated the request (`request_context.authn`).
fn authn(cfg: &Config, p: &Pending, v: &Verified) -> &'static str {
    if p.presented.as_ref().is_some_and(|x| x.dpop_scheme) {
        txn_token::AUTHN_DPOP
    } else if crate::claims::Cnf::x5t(&v.cnf).is_some() && cfg.providers.get(v.provider).is_some_and(|x| x.certificate_binding.is_some()) {
        txn_token::AUTHN_MTLS
    } else {
        txn_token::AUTHN_BEARER
    }
}

/// Verifies an issued Txn-Token before it is forwarded: `issued_token_type`, the signature with
/// the service's keys (`sts.jwks`), then `txn_token::check_issued`.
fn check(cfg: &Config, auth: &mut Authenticator, token: &str, issued_type: &str, f: &InFlight, now: u64, host: &dyn Host) -> Result<(), &'static str> {
    let Some(s) = cfg.sts.as_ref() else { return Err("no Txn-Token service configured") };
    let spec = cfg.routes.get(f.route).and_then(|r| r.txn.as_ref()).ok_or("route changed")?;
    if issued_type != txn_token::TYPE_TXN_TOKEN {
        return Err("`issued_token_type` is not a Txn-Token");
    }
    let jws = super::verify_sts_signed(cfg, auth, token, host)?;
    txn_token::check_issued(jws.typ.as_deref(), &jws.payload, &s.issuer, spec, &f.allowed_scopes, now).map(|_| ())
}
