//! HTTP context: reads the request, asks the core, applies the outcome; leads the token exchanges
//! it starts (their answers come back here).

use super::host::{apply, call_header, call_response, max_call_bytes, request_header_map, WasmHost};
use super::root::{dispatch, wake_pending, Shared};
use crate::flow::{CallResult, Connection, Outcome, Pending};
use crate::header_map;
use crate::reply;
use crate::route::RouteInput;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};
use std::rc::Rc;

pub struct Http {
    id: u32,
    shared: Option<Rc<Shared>>,
    /// The exchange this request leads: (callout token, key, this request). Boxed: every
    /// request's context is made and dropped, few lead a callout.
    leading: Option<Box<(u32, [u8; 32], Pending)>>,
}

impl Http {
    pub fn new(id: u32, shared: Option<Rc<Shared>>) -> Http {
        Http { id, shared, leading: None }
    }

    /// Carries out an outcome on this (current) context: Continue, or Pause while it waits or
    /// after a local reply.
    fn carry_out(&mut self, s: &Shared, outcome: Outcome, present: Option<&[(String, Vec<u8>)]>) -> Action {
        let host = WasmHost { metrics: &s.metrics };
        match outcome {
            Outcome::Wait(p) => {
                s.pending.borrow_mut().insert(self.id, p);
                Action::Pause
            }
            Outcome::Call(call, p) => match dispatch(&call) {
                Ok(token) => {
                    self.leading = Some(Box::new((token, call.key, p)));
                    Action::Pause
                }
                Err(e) => {
                    log::warn!("[dispatch_failed] callout: dispatch to cluster \"{}\" failed: {e:?}", call.cluster);
                    s.filter.borrow_mut().call_done(&call.key, CallResult::DispatchFailed, &host);
                    let next = s.filter.borrow_mut().resume(&p, &host);
                    match next {
                        Some(o) => self.carry_out(s, o, present),
                        None => self.carry_out(s, Outcome::Wait(p), present),
                    }
                }
            },
            other => {
                if apply(&other, present) {
                    Action::Continue
                } else {
                    Action::Pause
                }
            }
        }
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        // A stream reset while waiting: forget it so nothing resumes a dead stream; if it led an
        // exchange, let a waiter take over at the next tick instead of at the deadline.
        if let Some(s) = &self.shared {
            s.pending.borrow_mut().remove(&self.id);
            if let Some(led) = self.leading.take() {
                let key = led.1;
                s.filter.borrow_mut().abandon(&key, &WasmHost { metrics: &s.metrics });
            }
        }
    }
}

/// `Config::only_authorization`: the one header read into `entries[0]`; returns how many
/// entries it filled (0 or 1).
fn read_authorization(entries: &mut Vec<(String, Vec<u8>)>) -> usize {
    let Some(v) = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, "authorization").ok().flatten() else { return 0 };
    match entries.first_mut() {
        Some((k, value)) => {
            if !crate::bytes::eq(k.as_bytes(), b"authorization") {
                k.clear();
                k.push_str("authorization");
            }
            *value = v;
        }
        None => entries.push(("authorization".into(), v)),
    }
    1
}

/// A request header's value as text, borrowed (`""` when absent or not UTF-8).
fn text<'h>(headers: &'h [(String, Vec<u8>)], name: &str) -> &'h str {
    headers.iter().find(|(k, _)| crate::bytes::eq(k.as_bytes(), name.as_bytes())).and_then(|(_, v)| std::str::from_utf8(v).ok()).unwrap_or("")
}

fn property(path: &[&str]) -> Option<String> {
    hostcalls::get_property(path.to_vec()).ok().flatten().and_then(|b| String::from_utf8(b).ok())
}

impl Context for Http {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let Some(s) = self.shared.clone() else { return };
        let Some(led) = self.leading.take() else { return };
        let (t, key, pending) = *led;
        if t != token {
            return;
        }
        let host = WasmHost { metrics: &s.metrics };
        let (status, body) = call_response(body_size, max_call_bytes());
        let body = body.unwrap_or_default();
        let (content_type, cache_control) = (call_header("content-type"), call_header("cache-control"));
        s.filter.borrow_mut().call_done(&key, CallResult::Response { status: &status, body: &body, content_type: content_type.as_deref(), cache_control: cache_control.as_deref() }, &host);
        let next = s.filter.borrow_mut().resume(&pending, &host);
        match next {
            Some(out) => {
                if self.carry_out(&s, out, None) == Action::Continue {
                    let _ = hostcalls::resume_http_request();
                }
            }
            None => {
                s.pending.borrow_mut().insert(self.id, pending);
            }
        }
        // This request's followers on this worker.
        wake_pending(&s, None);
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(s) = self.shared.clone() else {
            // Never configured: fail closed.
            apply(&Outcome::Deny(reply::unavailable("filter not configured")), None);
            return Action::Pause;
        };
        // Benchmark probes, fixed at compile time (bench/probe.sh); absent from real builds.
        if option_env!("TEF_PROBE") == Some("entry") {
            return Action::Continue;
        }
        let cfg = s.filter.borrow().cfg.clone();
        // The whole map in one host call, the headers the configuration reads kept as bytes (the
        // SDK's String variants panic on a non-UTF-8 value) in a per-VM buffer that keeps its
        // allocations (a busy buffer, never expected: a new one).
        let mut buf = s.headers.try_borrow_mut().ok();
        let mut own = Vec::new();
        let entries = buf.as_deref_mut().unwrap_or(&mut own);
        let n = if cfg.only_authorization {
            read_authorization(entries)
        } else {
            header_map::select(&request_header_map(), cfg.needed_headers.as_deref(), entries)
        };
        let headers: &[(String, Vec<u8>)] = entries.get(..n).unwrap_or_default();
        if option_env!("TEF_PROBE") == Some("headers") {
            return Action::Continue;
        }
        let (path, authority, method) = (text(headers, ":path"), text(headers, ":authority"), text(headers, ":method"));
        let route_name = if cfg.needs_route_name { property(&["xds", "route_name"]) } else { None };
        let cluster = if cfg.needs_cluster { property(&["xds", "cluster_name"]) } else { None };
        let input = RouteInput { method, path, authority, route_name: route_name.as_deref(), cluster: cluster.as_deref() };
        let host = WasmHost { metrics: &s.metrics };
        // The client certificate's SHA-256 (hex) as Envoy saw it in this connection's handshake.
        let peer_cert = if cfg.needs_peer_cert { property(&["connection", "sha256_peer_certificate_digest"]) } else { None };
        // The client's address, for a Txn-Token's `request_context`.
        let source = if cfg.needs_source_address { property(&["source", "address"]) } else { None };
        let conn = Connection { peer_cert_sha256: peer_cert.as_deref(), source_address: source.as_deref() };
        let outcome = s.filter.borrow_mut().on_request_with(&input, headers, conn, &host);
        if option_env!("TEF_PROBE") == Some("decide") {
            return Action::Continue;
        }
        // From the whole map every stripped header is among those kept, and one that is not
        // there is not removed; after the one read, they are removed unread.
        let present = (!cfg.only_authorization).then_some(headers);
        let action = self.carry_out(&s, outcome, present);
        // The values (the token among them) are not kept past the request.
        header_map::wipe(entries);
        action
    }
}
