//! The per-request decision, free of host calls, in one direction:
//! route → extract → authenticate (`authenticate.rs`) → authorize (`authorize.rs`) → credential
//! for the next hop (`credential/`) → header plan (`plan.rs`).
//!
//! A request may have to wait: for its provider's first keys (or an unknown `kid`'s refetch), or
//! for a callout (an STS exchange). Waiting requests are decided again (`resume`) on every tick
//! and whenever a fetch or a callout ends, until they are allowed or answered: every paused
//! request ends. Callouts have one leader per key (`singleflight.rs`).

use crate::authenticate::{Auth, Authenticator};
use crate::config::Config;
use crate::credential::embedded::Embedded;
use crate::credential::exchange::Exchanger;
use crate::credential::mint::Minter;
use crate::credential::txn_token::TxnTokens;
use crate::extract::{self, Extracted};
use crate::host::Host;
use crate::keys::{FetchRequest, Keystore};
use crate::metrics::{Deny, Metric};
use crate::reply::{self, Reply};
use crate::route::{self, RouteInput};
use crate::sender::{Presented, Sender};
use std::cell::Cell;
use std::rc::Rc;

pub use crate::authenticate::{decode_entry, encode_entry, Verified};
pub use crate::plan::HeaderPlan;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitKind {
    Keys(usize),
    Exchange,
    /// An introspection call.
    Call,
}

/// A paused request: enough to decide it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Shared with the per-VM cache's entry where the token was kept there.
    pub token: std::rc::Rc<str>,
    pub route: Option<usize>,
    /// How to take the client's token out of the request (used when it is replaced).
    pub removal: HeaderPlan,
    /// Which of `Config::sources` the token came from (bits, `Extracted::Token`).
    pub sources: u32,
    pub started_ms: u64,
    pub deadline_ms: u64,
    pub kind: WaitKind,
    /// The callouts this request already led (`LED_*`): it never leads a second of a kind.
    pub led: u8,
    /// What the request offers for the token's binding (DPoP proof, client certificate), where
    /// a provider checks one.
    pub presented: Option<Box<Presented>>,
    /// The once-per-request checks after authentication ran: the token's binding (a proof's
    /// `jti` is recorded when it is) and a sidecar's `txn` replay record.
    pub bound: bool,
    /// What a Txn-Token request tells the service of this request (Txn-Token routes only).
    pub facts: Option<Box<crate::txn_token::RequestFacts>>,
    /// The key of this request's own Txn-Token call, once it made it.
    pub txn_key: Option<[u8; 32]>,
    /// On a Txn-Token route that also exchanges the client's token: the exchanged token, kept
    /// while the Txn-Token call runs.
    pub exchanged: Option<String>,
}

pub const LED_EXCHANGE: u8 = 1;
pub const LED_INTROSPECTION: u8 = 2;
pub const LED_TXN: u8 = 4;

/// What Envoy knows of the request's connection, where the configuration needs it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Connection<'a> {
    /// The client certificate's SHA-256 (hex), for certificate-bound tokens.
    pub peer_cert_sha256: Option<&'a str>,
    /// `source.address` (`ip:port`), for a Txn-Token's `request_context`.
    pub source_address: Option<&'a str>,
}

/// A callout the glue must dispatch, then report with `exchange_done(key, …)`.
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
    /// Shared: a hot request's plan is the one built for its token before (`plan::ForwardPlans`).
    Allow(Rc<HeaderPlan>),
    Deny(Reply),
    /// The filter answers the request itself (its JWKS on `signing.jwks_path`).
    Respond(Reply),
    /// Pause until `resume` decides it.
    Wait(Pending),
    /// Pause, dispatch this call, and `resume` the request after `exchange_done`.
    Call(ExchangeCall, Pending),
}

/// How a callout ended, as the glue saw it.
pub enum CallResult<'a> {
    Response { status: &'a str, body: &'a [u8], content_type: Option<&'a str>, cache_control: Option<&'a str> },
    DispatchFailed,
}

/// The reply for a refusal with a fixed description.
fn reply_for(cfg: &Config, d: Deny, description: &'static str) -> Reply {
    match d {
        Deny::Missing => reply::missing(&cfg.realm),
        Deny::BadRequest => reply::invalid_request(&cfg.realm, description),
        Deny::JwksUnavailable | Deny::ExchangeUnavailable | Deny::IntrospectionUnavailable | Deny::TxnTokenUnavailable => reply::unavailable(description),
        Deny::InsufficientScope | Deny::Embedded => reply::insufficient_scope(&cfg.realm, description, ""),
        _ => reply::invalid_token(&cfg.realm, description),
    }
}

pub(crate) fn deny(cfg: &Config, host: &dyn Host, d: Deny, description: &'static str) -> Outcome {
    deny_with(host, d, reply_for(cfg, d, description))
}

/// Whether a forwarded decision is kept and answered from (`LocalCache::forwarded`): not where
/// each request brings its own proof or is checked for replay (DPoP, Txn-Token replay). A
/// certificate binding alone is checked again on every request, against its connection's
/// certificate (`Filter::on_request_with`).
fn keeps_forwarded(cfg: &Config) -> bool {
    !cfg.txn_replay && (!cfg.sender_checks || cfg.dpop_source.is_none())
}

/// Whether an exchanged or minted request's plan is kept and answered from
/// (`LocalCache::replaced_in`): as `keeps_forwarded`, and not where a certificate binding is
/// checked per request; only on a route that exchanges or mints (a Txn-Token is one per request,
/// an embedded token not kept so), and for a token from headers alone (removing a cookie or a
/// query parameter rewrites what else the request holds).
fn keeps_replaced(cfg: &Config, route: usize, sources: u32) -> bool {
    let r = &cfg.routes[route];
    keeps_forwarded(cfg)
        && !cfg.sender_checks
        && r.txn.is_none()
        && r.embedded.is_none()
        && (r.exchange.is_some() || r.mint.is_some())
        && cfg.sources.iter().enumerate().all(|(i, s)| sources & (1 << i) == 0 || matches!(s, crate::config::Source::Header { .. }))
}

pub(crate) fn deny_with(host: &dyn Host, d: Deny, r: Reply) -> Outcome {
    host.count(Metric::Denied(d));
    // The reason code is the metric's; nothing from the request (no token, no subject).
    log::debug!("[denied.{}] request refused with {}", d.name(), r.status);
    Outcome::Deny(r)
}

pub(crate) fn allow(host: &dyn Host, plan: HeaderPlan) -> Outcome {
    host.count(Metric::Allowed);
    Outcome::Allow(Rc::new(plan))
}

/// The filter's own JWKS, for a request on `signing.jwks_path` (GET and HEAD; anything else 405).
fn serve_jwks(cfg: &Config, r: &RouteInput) -> Option<Reply> {
    let s = cfg.signing.as_ref()?;
    let path = s.jwks_path.as_deref()?;
    if route::normalize_path(r.path) != path {
        return None;
    }
    Some(match r.method {
        "GET" | "HEAD" => reply::jwks(&s.jwks_body, s.jwks_max_age_s),
        _ => reply::method_not_allowed("GET, HEAD"),
    })
}

/// Per-VM filter state.
pub struct Filter {
    pub cfg: Rc<Config>,
    auth: Authenticator,
    exchange: Exchanger,
    mint: Minter,
    embedded: Embedded,
    txn: TxnTokens,
    sender: Sender,
    replay: crate::txn_replay::TxnReplay,
    forward_plans: crate::plan::ForwardPlans,
}

impl Filter {
    pub fn new(cfg: Rc<Config>) -> Filter {
        Filter {
            auth: Authenticator::new(cfg.clone()),
            exchange: Exchanger::new(&cfg),
            mint: Minter::new(&cfg),
            embedded: Embedded::new(&cfg),
            txn: TxnTokens::new(),
            sender: Sender::new(&cfg),
            replay: crate::txn_replay::TxnReplay::new(&cfg),
            forward_plans: crate::plan::ForwardPlans::default(),
            cfg,
        }
    }

    /// Every provider's keys on this VM.
    pub fn keys_mut(&mut self) -> &mut Keystore {
        &mut self.auth.keys
    }

    pub fn init(&mut self, host: &dyn Host) {
        self.auth.keys.init(host);
        let cfg = self.cfg.clone();
        self.sender.init(&cfg, host);
    }

    /// Every tick: JWKS sync/refresh, and forget callout state past its time.
    pub fn tick(&mut self, host: &dyn Host) -> Vec<FetchRequest> {
        let now = host.now_ms();
        self.exchange.tick(now);
        self.txn.tick(now);
        self.auth.intro.tick(now);
        self.auth.keys.tick(host)
    }

    pub fn fetch_done(&mut self, p: usize, result: Result<Vec<u8>, String>, host: &dyn Host) {
        self.auth.keys.fetch_done(p, result, host);
    }

    /// Decides a request from its route and headers.
    pub fn on_request(&mut self, r: &RouteInput, headers: &[(String, Vec<u8>)], host: &dyn Host) -> Outcome {
        self.on_request_with(r, headers, Connection::default(), host)
    }

    /// `on_request` with what Envoy knows of the connection (the client certificate, for
    /// certificate-bound tokens; the client's address, for Txn-Tokens).
    pub fn on_request_with(&mut self, r: &RouteInput, headers: &[(String, Vec<u8>)], conn: Connection, host: &dyn Host) -> Outcome {
        let cfg = &self.cfg;
        if let Some(reply) = serve_jwks(cfg, r) {
            host.count(Metric::JwksServed);
            return Outcome::Respond(reply);
        }
        let route = route::select(&cfg.routes, r);
        let anonymous = route.is_some_and(|i| cfg.routes[i].allow_anonymous);
        // Whether a token kept here is still valid is asked of a time no earlier than now
        // (`clock.rs`): the clock is read once this request needs more than what is kept.
        let (at, read) = match host.now_bound_ms() {
            Some(bound) => (bound, None),
            None => {
                let now = host.now_ms();
                (now, Some(now))
            }
        };
        let slot = Cell::new(None);
        let known = |t: &[u8]| {
            let (k, i) = self.auth.local.known(t, at)?;
            slot.set(Some(i));
            Some(k)
        };
        // A token not known here is checked for its characters once it is not found in the
        // caches either (`Authenticator::authenticate`): the caches hold only tokens that passed.
        let (token, sources) = match extract::extract_unchecked(&cfg.sources, headers, r.path, &known) {
            Extracted::Token { token, sources } => (token, sources),
            Extracted::None if anonymous => {
                host.count(Metric::AllowedAnonymous);
                return Outcome::Allow(Rc::new(crate::plan::strip(cfg)));
            }
            Extracted::None => return deny(cfg, host, Deny::Missing, ""),
            Extracted::Ambiguous => return deny(cfg, host, Deny::BadRequest, "more than one token in the request"),
            Extracted::Malformed => return deny(cfg, host, Deny::Malformed, "token malformed"),
        };
        // Forwarded a moment ago on this route, as it came: decided then (`LocalCache::forwarded`),
        // but for this request's own client certificate, checked here as a full decision does.
        if keeps_forwarded(cfg) {
            if let Some((v, plan)) = self.auth.forwarded(&token, slot.get(), route, at, host) {
                if cfg.sender_checks {
                    // No DPoP here (`keeps_forwarded`): nothing of the request but its certificate.
                    let now = read.unwrap_or_else(|| host.now_ms());
                    if let Err((d, r)) = self.sender.check(cfg, v, &token, Some(&Presented::default()), conn.peer_cert_sha256, now, host) {
                        return deny_with(host, d, r);
                    }
                }
                host.count(Metric::Allowed);
                return Outcome::Allow(plan);
            }
        }
        // Its exchanged or minted token on this route, kept from a moment ago with the plan
        // that replaced the client's with it (`LocalCache::replaced_in`): decided as above.
        if let Some(r) = route.filter(|i| keeps_replaced(cfg, *i, sources)) {
            if let Some(plan) = self.auth.replaced(&token, slot.get(), r, sources, at, host) {
                host.count(if cfg.routes[r].mint.is_some() { Metric::MintCacheHit } else { Metric::ExchangeCacheHit });
                host.count(Metric::Allowed);
                return Outcome::Allow(plan);
            }
        }
        let now = read.unwrap_or_else(|| host.now_ms());
        // The client's token leaves the request where the route replaces it.
        let removal = match route.filter(|i| cfg.routes[*i].replaces_token()) {
            Some(_) => extract::removal_plan(&cfg.sources, sources, headers, r.path),
            None => HeaderPlan::default(),
        };
        let presented = cfg.sender_checks.then(|| {
            let peer_cert_sha256 = conn.peer_cert_sha256.map(str::to_owned);
            if cfg.dpop_source.is_none() {
                // Certificate binding only: nothing of the request itself is needed.
                return Box::new(Presented { peer_cert_sha256, ..Presented::default() });
            }
            let h = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
            Box::new(Presented {
                dpop_scheme: cfg.dpop_source.is_some_and(|i| sources & (1 << i) != 0),
                proofs: headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("dpop")).map(|(_, v)| v.clone()).collect(),
                method: h(":method"),
                scheme: h(":scheme"),
                authority: h(":authority"),
                path: h(":path"),
                peer_cert_sha256,
            })
        });
        let facts = route
            .filter(|i| cfg.routes[*i].txn.is_some())
            .map(|_| Box::new(crate::txn_token::RequestFacts::new(conn.source_address, r.method, r.path)));
        let p = Pending { token, route, removal, sources, started_ms: now, deadline_ms: now, kind: WaitKind::Exchange, led: 0, presented, bound: false, facts, txn_key: None, exchanged: None };
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
        match self.auth.authenticate(&p.token, p.route, now, waited, host) {
            Auth::Ok(v) => {
                // The token's binding, once per request (before it may wait for a callout).
                let checked;
                let p = if (self.cfg.sender_checks || self.cfg.txn_replay) && !p.bound {
                    let cfg = self.cfg.clone();
                    if cfg.sender_checks {
                        if let Err((d, r)) = self.sender.check(&cfg, &v, &p.token, p.presented.as_deref(), p.presented.as_ref().and_then(|x| x.peer_cert_sha256.as_deref()), now, host) {
                            return deny_with(host, d, r);
                        }
                    } else if crate::claims::Cnf::jkt(&v.cnf).is_some() {
                        return deny_with(host, Deny::DpopBearer, reply::invalid_token(&cfg.realm, "DPoP-bound token presented as a bearer token"));
                    }
                    if cfg.txn_replay {
                        if let Err((d, r)) = self.replay.check(&cfg, &v, now, host) {
                            return deny_with(host, d, r);
                        }
                    }
                    checked = Pending { bound: true, ..p.clone() };
                    &checked
                } else {
                    if !self.cfg.sender_checks && crate::claims::Cnf::jkt(&v.cnf).is_some() {
                        // RFC 9449 §7.1: never a bearer token (no provider here takes DPoP).
                        return deny_with(host, Deny::DpopBearer, reply::invalid_token(&self.cfg.realm, "DPoP-bound token presented as a bearer token"));
                    }
                    p
                };
                match crate::authorize::authorize(&self.cfg, p.route, &v) {
                    Ok(()) => self.credential(p, v, now, resumed, host),
                    Err(r) => deny_with(host, Deny::Forbidden, r),
                }
            }
            Auth::Fail(d, desc) => deny(&self.cfg, host, d, desc),
            Auth::Unavailable => deny(&self.cfg, host, Deny::JwksUnavailable, "signing keys unavailable"),
            Auth::Call(call, deadline_ms) => Outcome::Call(call, Pending { deadline_ms, kind: WaitKind::Call, led: p.led | LED_INTROSPECTION, ..p.clone() }),
            Auth::WaitCall(deadline_ms) => Outcome::Wait(Pending { deadline_ms, kind: WaitKind::Call, ..p.clone() }),
            Auth::Wait(provider) => {
                if !resumed {
                    host.count(Metric::JwksWait);
                }
                let deadline_ms = if resumed { p.deadline_ms } else { now + self.auth.keys.timeout_ms(provider) + 500 };
                Outcome::Wait(Pending { deadline_ms, kind: WaitKind::Keys(provider), started_ms: if resumed { p.started_ms } else { now }, ..p.clone() })
            }
        }
    }

    /// The credential for the next hop, by the route's kind.
    fn credential(&mut self, p: &Pending, v: Verified, now: u64, resumed: bool, host: &dyn Host) -> Outcome {
        let cfg = self.cfg.clone();
        match p.route.map(|r| (r, &cfg.routes[r])) {
            Some((r, route)) if route.txn.is_some() => {
                if route.exchange.is_none() {
                    return self.txn.run(&cfg, p, r, v, now, host, None);
                }
                // The client's token exchanged for the upstream first, then the Txn-Token.
                if let Some(tok) = p.exchanged.as_deref() {
                    return self.txn.run(&cfg, p, r, v, now, host, Some(tok));
                }
                let txn = &mut self.txn;
                self.exchange.run_then(&cfg, &mut self.auth, p, r, v, now, resumed, host, &mut |p, v, tok| txn.run(&cfg, p, r, v, now, host, Some(tok)))
            }
            Some((r, route)) if route.exchange.is_some() || route.mint.is_some() => {
                let set = v.set.clone();
                let out = match route.mint.is_some() {
                    true => self.mint.run(&cfg, &mut self.auth, p, r, v, now, resumed, host),
                    false => self.exchange.run(&cfg, &mut self.auth, p, r, v, now, resumed, host),
                };
                if let Outcome::Allow(plan) = &out {
                    if keeps_replaced(&cfg, r, p.sources) {
                        self.auth.local.put_replaced(&p.token, r, p.sources, &set, plan, now, &|issued| crate::plan::carries(&cfg, plan, issued));
                    }
                }
                out
            }
            Some((r, route)) if route.embedded.is_some() => self.embedded.run(&cfg, &mut self.auth, p, r, v, now, host),
            _ => {
                host.count(Metric::Allowed);
                let plan = self.forward_plans.get(&cfg, &v.set);
                if keeps_forwarded(&cfg) {
                    self.auth.local.put_forwarded(&p.token, p.route, &v.set, &plan, now);
                }
                Outcome::Allow(plan)
            }
        }
    }

    /// The leader of `key` could not dispatch or went away: let a waiter take over at once.
    pub fn abandon(&mut self, key: &[u8; 32], host: &dyn Host) {
        self.auth.intro.flight.abandon(key, host);
        self.exchange.abandon(key, host);
        self.txn.abandon(key);
    }

    /// A callout (introspection or STS exchange) ended: its result goes to the requests
    /// waiting for it.
    pub fn call_done(&mut self, key: &[u8; 32], result: CallResult, host: &dyn Host) {
        if self.auth.intro.flight.leads(key) {
            return self.auth.introspection_done(key, result, host);
        }
        let cfg = self.cfg.clone();
        if self.txn.leads(key) {
            return self.txn.done(&cfg, &mut self.auth, key, result, host);
        }
        self.exchange.done(&cfg, &mut self.auth, key, result, host);
    }
}
