//! Root context: configuration, metrics, the 100 ms tick (JWKS sync/refresh, deciding paused
//! requests again), and callouts it dispatched itself (JWKS fetches, and exchanges it leads for a
//! request whose leader went away): their answers come here.

use super::host::{apply, call_header, call_response, max_call_bytes, Metrics, WasmHost};
use super::http::Http;
use crate::config;
use crate::flow::{CallResult, ExchangeCall, Filter, Outcome, Pending};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

pub const TICK: Duration = Duration::from_millis(100);
// The tick refreshes this worker's clock reading (`clock.rs`): its slack covers many ticks, with
// room for a slow turn of the event loop.
const _: () = assert!(crate::clock::SLACK_MS >= 5 * TICK.as_millis() as u64);
const MAX_JWKS_BYTES: usize = 1 << 20;

pub struct Shared {
    pub filter: RefCell<Filter>,
    pub metrics: Metrics,
    /// Paused requests, by HTTP context id.
    pub pending: RefCell<BTreeMap<u32, Pending>>,
    /// The request headers the configuration reads (`Config::needed_headers`), as the last
    /// request had them: each request overwrites them in place (`header_map::select`).
    pub headers: RefCell<Vec<(String, Vec<u8>)>>,
}

enum Callout {
    Jwks(usize),
    /// An exchange led by the root for the paused requests of this key.
    Exchange([u8; 32]),
}

pub struct Root {
    shared: Option<Rc<Shared>>,
    callouts: HashMap<u32, Callout>,
    ticks: u32,
}

/// Logs at the level Envoy runs the `wasm` component at (`--component-log-level wasm:debug`
/// shows one line per denied request): below it, nothing is formatted and no host call is made.
fn sync_log_level() {
    use proxy_wasm::types::LogLevel;
    let filter = match hostcalls::get_log_level() {
        Ok(LogLevel::Trace) => log::LevelFilter::Trace,
        Ok(LogLevel::Debug) => log::LevelFilter::Debug,
        Ok(LogLevel::Info) | Err(_) => log::LevelFilter::Info,
        Ok(LogLevel::Warn) => log::LevelFilter::Warn,
        Ok(LogLevel::Error) | Ok(LogLevel::Critical) => log::LevelFilter::Error,
    };
    log::set_max_level(filter);
}

pub fn dispatch(call: &ExchangeCall) -> Result<u32, proxy_wasm::types::Status> {
    let headers: Vec<(&str, &str)> = call.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    hostcalls::dispatch_http_call(&call.cluster, headers, Some(&call.body), vec![], Duration::from_millis(call.timeout_ms))
}

/// Decides every paused request again; those with an answer are resumed or answered. Only the
/// root (`leader` given) may start a new exchange for them: a call dispatched while an HTTP
/// context is active would answer to that context. Elsewhere the would-be leader steps back and
/// the next tick starts it.
pub fn wake_pending(s: &Shared, mut leader: Option<&mut Root>) {
    let host = WasmHost { metrics: &s.metrics };
    let waiting: Vec<(u32, Pending)> = s.pending.borrow().iter().map(|(k, v)| (*k, v.clone())).collect();
    for (ctx, p) in waiting {
        let out = s.filter.borrow_mut().resume(&p, &host);
        let out = match out {
            None => continue,
            Some(Outcome::Call(call, pending)) => {
                match leader.as_deref_mut() {
                    Some(root) => match dispatch(&call) {
                        Ok(token) => {
                            root.callouts.insert(token, Callout::Exchange(call.key));
                            s.pending.borrow_mut().insert(ctx, pending);
                        }
                        Err(_) => s.filter.borrow_mut().call_done(&call.key, CallResult::DispatchFailed, &host),
                    },
                    None => s.filter.borrow_mut().abandon(&call.key, &host),
                }
                continue;
            }
            Some(other) => other,
        };
        s.pending.borrow_mut().remove(&ctx);
        if hostcalls::set_effective_context(ctx).is_err() {
            continue; // the stream is gone
        }
        if apply(&out, None) {
            let _ = hostcalls::resume_http_request();
        }
    }
}

impl Root {
    pub fn new(_id: u32) -> Root {
        Root { shared: None, callouts: HashMap::new(), ticks: 0 }
    }

    fn dispatch_fetches(&mut self, s: &Shared) {
        let host = WasmHost { metrics: &s.metrics };
        let reqs = s.filter.borrow_mut().tick(&host);
        for f in reqs {
            let headers: Vec<(&str, &str)> = f.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            match self.dispatch_http_call(&f.cluster, headers, None, vec![], Duration::from_millis(f.timeout_ms)) {
                Ok(token) => {
                    self.callouts.insert(token, Callout::Jwks(f.provider));
                }
                Err(e) => {
                    let why = format!("dispatch to cluster \"{}\" failed: {e:?}", f.cluster);
                    s.filter.borrow_mut().fetch_done(f.provider, Err(why), &host);
                }
            }
        }
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let Some(s) = self.shared.clone() else { return };
        let Some(callout) = self.callouts.remove(&token) else { return };
        let host = WasmHost { metrics: &s.metrics };
        match callout {
            Callout::Jwks(p) => {
                let (status, body) = call_response(body_size, MAX_JWKS_BYTES);
                let result = match (status.as_str(), body) {
                    ("200", Some(b)) => Ok(b),
                    ("200", None) => Err(format!("JWKS body missing or over {MAX_JWKS_BYTES} bytes")),
                    (st, _) => Err(format!("JWKS endpoint answered :status {st}")),
                };
                s.filter.borrow_mut().fetch_done(p, result, &host);
            }
            Callout::Exchange(key) => {
                let (status, body) = call_response(body_size, max_call_bytes());
                let body = body.unwrap_or_default();
                let (content_type, cache_control) = (call_header("content-type"), call_header("cache-control"));
                s.filter.borrow_mut().call_done(&key, CallResult::Response { status: &status, body: &body, content_type: content_type.as_deref(), cache_control: cache_control.as_deref() }, &host);
            }
        }
        wake_pending(&s, None);
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        sync_log_level();
        let bytes = match hostcalls::get_buffer(proxy_wasm::types::BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(b)) => b,
            _ => {
                log::error!("[config_invalid] invalid plugin configuration: (root): the configuration is empty");
                return false;
            }
        };
        let cfg = match config::parse(&bytes) {
            Ok(c) => c,
            Err(e) => {
                log::error!("[config_invalid] {e}");
                return false;
            }
        };
        let summary = crate::config::summary(&cfg);
        let metrics = Metrics::define(&cfg.stat_prefix);
        let mut filter = Filter::new(Rc::new(cfg));
        filter.init(&WasmHost { metrics: &metrics });
        self.shared = Some(Rc::new(Shared { filter: RefCell::new(filter), metrics, pending: RefCell::new(BTreeMap::new()), headers: RefCell::new(Vec::new()) }));
        if let Err(e) = hostcalls::set_tick_period(TICK) {
            log::error!("[tick_failed] cannot set the tick period: {e:?}");
            return false;
        }
        log::info!("token-exchange-filter configured (version {}): {summary}", env!("CARGO_PKG_VERSION"));
        true
    }

    fn on_tick(&mut self) {
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks % 50 == 0 {
            sync_log_level(); // an operator may change Envoy's level at runtime (admin /logging)
        }
        let Some(s) = self.shared.clone() else { return };
        self.dispatch_fetches(&s);
        if !s.pending.borrow().is_empty() {
            wake_pending(&s, Some(self));
        }
        s.metrics.flush();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http::new(context_id, self.shared.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
