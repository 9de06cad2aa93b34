//! HTTP context: reads the request, asks the core, applies the outcome.

use super::host::{apply, WasmHost};
use super::root::Shared;
use crate::flow::Outcome;
use crate::reply;
use crate::route::RouteInput;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};
use std::rc::Rc;

pub struct Http {
    id: u32,
    shared: Option<Rc<Shared>>,
}

impl Http {
    pub fn new(id: u32, shared: Option<Rc<Shared>>) -> Http {
        Http { id, shared }
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        // A stream reset while waiting: forget it so nothing resumes a dead stream.
        if let Some(s) = &self.shared {
            s.pending.borrow_mut().remove(&self.id);
        }
    }
}

fn property(path: &[&str]) -> Option<String> {
    hostcalls::get_property(path.to_vec()).ok().flatten().and_then(|b| String::from_utf8(b).ok())
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(s) = self.shared.clone() else {
            // Never configured: fail closed.
            let r = reply::unavailable("filter not configured");
            apply(&Outcome::Deny(r));
            return Action::Pause;
        };
        // Bytes, not String: the SDK's String variant panics on a non-UTF-8 header value.
        let headers: Vec<(String, Vec<u8>)> = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
        let pseudo = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| std::str::from_utf8(v).ok())
                .unwrap_or("")
                .to_owned()
        };
        let (path, authority) = (pseudo(":path"), pseudo(":authority"));
        let (needs_route, needs_cluster) = {
            let f = s.filter.borrow();
            (f.cfg.needs_route_name, f.cfg.needs_cluster)
        };
        let route_name = if needs_route { property(&["xds", "route_name"]) } else { None };
        let cluster = if needs_cluster { property(&["xds", "cluster_name"]) } else { None };
        let input = RouteInput { path: &path, authority: &authority, route_name: route_name.as_deref(), cluster: cluster.as_deref() };
        let host = WasmHost { metrics: &s.metrics };
        let outcome = s.filter.borrow_mut().on_request(&input, &headers, &host);
        match outcome {
            Outcome::Wait(p) => {
                s.pending.borrow_mut().insert(self.id, p);
                Action::Pause
            }
            other => {
                if apply(&other) {
                    Action::Continue
                } else {
                    Action::Pause
                }
            }
        }
    }
}
