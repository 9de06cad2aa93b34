//! Root context: configuration, metrics, the 100 ms tick that syncs and refreshes JWKS, JWKS
//! callouts (they answer here), and waking requests that wait for keys.

use super::host::{apply, Metrics, WasmHost};
use super::http::Http;
use crate::config;
use crate::flow::{Filter, Outcome, Pending};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, MapType};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

pub const TICK: Duration = Duration::from_millis(100);
const MAX_JWKS_BYTES: usize = 1 << 20;

pub struct Shared {
    pub filter: RefCell<Filter>,
    pub metrics: Metrics,
    /// Requests paused for keys, by HTTP context id.
    pub pending: RefCell<BTreeMap<u32, Pending>>,
}

pub struct Root {
    shared: Option<Rc<Shared>>,
    /// JWKS callouts in flight: token → provider.
    fetches: HashMap<u32, usize>,
}

impl Root {
    pub fn new(_id: u32) -> Root {
        Root { shared: None, fetches: HashMap::new() }
    }

    fn dispatch_fetches(&mut self, s: &Shared) {
        let host = WasmHost { metrics: &s.metrics };
        let reqs = s.filter.borrow_mut().tick(&host);
        for f in reqs {
            let headers: Vec<(&str, &str)> = f.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            match self.dispatch_http_call(&f.cluster, headers, None, vec![], Duration::from_millis(f.timeout_ms)) {
                Ok(token) => {
                    self.fetches.insert(token, f.provider);
                }
                Err(e) => {
                    let why = format!("dispatch to cluster \"{}\" failed: {e:?}", f.cluster);
                    s.filter.borrow_mut().fetch_done(f.provider, Err(why), &host);
                }
            }
        }
    }
}

/// Decides every waiting request again; those with an answer are resumed or answered.
pub fn wake_pending(s: &Shared) {
    let host = WasmHost { metrics: &s.metrics };
    let waiting: Vec<(u32, Pending)> = s.pending.borrow().iter().map(|(k, v)| (*k, v.clone())).collect();
    for (ctx, p) in waiting {
        let out = s.filter.borrow_mut().resume(&p, &host);
        if let Some(out) = out {
            s.pending.borrow_mut().remove(&ctx);
            if hostcalls::set_effective_context(ctx).is_err() {
                continue; // the stream is gone
            }
            if apply(&out) {
                let _ = hostcalls::resume_http_request();
            } else if let Outcome::Wait(_) = out {
                // resume() never returns Wait; nothing to do.
            }
        }
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let Some(s) = self.shared.clone() else { return };
        let Some(p) = self.fetches.remove(&token) else { return };
        let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let result = if status != "200" {
            Err(format!("JWKS endpoint answered :status {status}"))
        } else if body_size > MAX_JWKS_BYTES {
            Err(format!("JWKS body of {body_size} bytes is over the {MAX_JWKS_BYTES} byte limit"))
        } else {
            match hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpCallResponseBody, 0, body_size) {
                Ok(Some(b)) => Ok(b),
                _ => Err("JWKS response has no body".to_owned()),
            }
        };
        let host = WasmHost { metrics: &s.metrics };
        s.filter.borrow_mut().fetch_done(p, result, &host);
        wake_pending(&s);
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(proxy_wasm::types::BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(b)) => b,
            _ => {
                log::error!("invalid plugin configuration: (root): the configuration is empty");
                return false;
            }
        };
        let cfg = match config::parse(&bytes) {
            Ok(c) => c,
            Err(e) => {
                log::error!("{e}");
                return false;
            }
        };
        let metrics = Metrics::define(&cfg.stat_prefix);
        let mut filter = Filter::new(Rc::new(cfg));
        filter.init(&WasmHost { metrics: &metrics });
        self.shared = Some(Rc::new(Shared { filter: RefCell::new(filter), metrics, pending: RefCell::new(BTreeMap::new()) }));
        if let Err(e) = hostcalls::set_tick_period(TICK) {
            log::error!("cannot set the tick period: {e:?}");
            return false;
        }
        log::info!("token-exchange-filter configured");
        true
    }

    fn on_tick(&mut self) {
        let Some(s) = self.shared.clone() else { return };
        self.dispatch_fetches(&s);
        if !s.pending.borrow().is_empty() {
            wake_pending(&s);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http::new(context_id, self.shared.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
