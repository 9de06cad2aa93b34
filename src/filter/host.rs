//! `Host` for the core, implemented with proxy-wasm hostcalls.

use crate::clock::RecentClock;
use crate::flow::{HeaderPlan, Outcome};
use crate::host::{Host, SetError};
use crate::metrics::{Histogram, Metric};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, MetricType, Status};
use std::cell::Cell;
use std::time::UNIX_EPOCH;

/// Metric ids, defined once per VM at configure time, indexed by `Metric::index`. Counts are
/// kept in memory and flushed to Envoy on every tick (100 ms): no hostcall per count on the
/// request path.
pub struct Metrics {
    ids: Vec<u32>,
    counts: Vec<Cell<u64>>,
    /// Histogram ids by `Histogram as usize` (0: not defined).
    histograms: Vec<u32>,
}

impl Metrics {
    pub fn define(prefix: &str) -> Metrics {
        let all = Metric::all();
        let mut ids = vec![0u32; all.len()];
        for m in all {
            match hostcalls::define_metric(MetricType::Counter, &format!("{prefix}.{}", m.name())) {
                Ok(id) => ids[m.index()] = id,
                Err(e) => log::warn!("[metric_failed] cannot define metric {}: {e:?}", m.name()),
            }
        }
        let counts = ids.iter().map(|_| Cell::new(0)).collect();
        let histograms = Histogram::ALL
            .iter()
            .map(|h| match hostcalls::define_metric(MetricType::Histogram, &format!("{prefix}.{}", h.name())) {
                Ok(id) => id,
                Err(e) => {
                    log::warn!("[metric_failed] cannot define histogram {}: {e:?}", h.name());
                    0
                }
            })
            .collect();
        Metrics { ids, counts, histograms }
    }

    pub fn flush(&self) {
        for (id, c) in self.ids.iter().zip(&self.counts) {
            let n = c.replace(0);
            if n > 0 && *id != 0 {
                let _ = hostcalls::increment_metric(*id, n as i64);
            }
        }
    }
}

pub struct WasmHost<'a> {
    pub metrics: &'a Metrics,
}

thread_local! {
    /// This VM's (this worker's) last clock reading: every `now_ms` records one, the tick's among
    /// them (`clock::RecentClock`).
    static RECENT: Cell<RecentClock> = Cell::new(RecentClock::default());
}

impl Host for WasmHost<'_> {
    fn now_ms(&self) -> u64 {
        let now = hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        RECENT.with(|r| {
            let mut c = r.get();
            c.record(now);
            r.set(c);
        });
        now
    }

    fn now_bound_ms(&self) -> Option<u64> {
        RECENT.with(|r| {
            let mut c = r.get();
            let bound = c.bound();
            r.set(c);
            bound
        })
    }

    fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(v), Some(cas))) => Some((v, cas)),
            Ok((Some(v), None)) => Some((v, 0)),
            _ => None,
        }
    }

    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(SetError::CasMismatch),
            Err(_) => Err(SetError::Other),
        }
    }

    fn count(&self, metric: Metric) {
        if let Some(c) = self.metrics.counts.get(metric.index()) {
            c.set(c.get() + 1);
        }
    }

    fn observe(&self, histogram: Histogram, value_ms: u64) {
        // One hostcall per callout that ended (callouts are rare next to requests).
        if let Some(&id) = self.metrics.histograms.get(histogram as usize).filter(|id| **id != 0) {
            let _ = hostcalls::record_metric(id, value_ms);
        }
    }
}

/// `present`: the request's header names when known; removing an absent header is skipped
/// (each removal is a hostcall and clears Envoy's route cache).
fn apply_plan(plan: &HeaderPlan, present: Option<&[(String, Vec<u8>)]>) {
    for h in plan.remove.iter() {
        if present.is_some_and(|hs| !hs.iter().any(|(k, _)| crate::bytes::eq(k.as_bytes(), h.as_bytes()))) {
            continue;
        }
        let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, h);
    }
    for (h, v) in plan.set.iter() {
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, h, Some(v));
    }
}

#[link(wasm_import_module = "env")]
extern "C" {
    // The SDK's own import (it offers the map only as one allocated `String` and `Vec` per pair).
    fn proxy_get_header_map_pairs(map_type: MapType, data: *mut *mut u8, size: *mut usize) -> Status;
}

/// The request's header map, serialized as the host writes it (`header_map::select` reads it):
/// one host call and one allocation, however many headers (empty if the host has none).
pub fn request_header_map() -> Vec<u8> {
    let (mut data, mut size) = (std::ptr::null_mut(), 0usize);
    // SAFETY: on `Ok` the host wrote `size` bytes into a buffer it obtained from this module's
    // `proxy_on_memory_allocate` (the SDK's: a `Vec<u8>` of exactly that capacity, forgotten),
    // so this `Vec` takes ownership of it once, as the SDK's `get_map_bytes` does.
    unsafe {
        match proxy_get_header_map_pairs(MapType::HttpRequestHeaders, &mut data, &mut size) {
            Status::Ok if !data.is_null() => Vec::from_raw_parts(data, size, size),
            _ => Vec::new(),
        }
    }
}

/// The `:status` and body of the HTTP call response being delivered (body `None` if over `max`).
pub fn call_response(body_size: usize, max: usize) -> (String, Option<Vec<u8>>) {
    let status = call_header(":status").unwrap_or_default();
    let body = if body_size > max {
        None
    } else if body_size == 0 {
        Some(Vec::new())
    } else {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).ok().flatten()
    };
    (status, body)
}

/// A header of the callout's answer (as text; `None` when absent or not UTF-8).
pub fn call_header(name: &str) -> Option<String> {
    let b = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, name).ok().flatten()?;
    String::from_utf8(b).ok()
}

/// The largest callout answer (STS or introspection) read at all.
pub fn max_call_bytes() -> usize {
    crate::sts::MAX_RESPONSE_BYTES.max(crate::introspection::MAX_RESPONSE_BYTES)
}

/// Carries out an outcome on the current (effective) HTTP context. Returns true if the request
/// may continue upstream now. `present`: the request's headers, when the caller has them.
pub fn apply(outcome: &Outcome, present: Option<&[(String, Vec<u8>)]>) -> bool {
    match outcome {
        Outcome::Allow(plan) => {
            apply_plan(plan, present);
            true
        }
        Outcome::Deny(r) | Outcome::Respond(r) => {
            let headers: Vec<(&str, &str)> = r.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let _ = hostcalls::send_http_response(r.status, headers, Some(r.body.as_bytes()));
            false
        }
        Outcome::Wait(_) | Outcome::Call(..) => false,
    }
}
