//! A fake host for native tests: a clock, shared data with the host's CAS semantics, counters.

use crate::host::{Host, SetError};
use crate::metrics::{Histogram, Metric};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct FakeHost {
    pub now: Cell<u64>,
    shared: RefCell<BTreeMap<String, (Vec<u8>, u32)>>,
    pub counters: RefCell<BTreeMap<Metric, u64>>,
    /// Shared-data reads so far.
    pub reads: Cell<u64>,
    /// Every histogram value recorded, in order.
    pub observed: RefCell<Vec<(Histogram, u64)>>,
    /// Clock readings (`now_ms`) so far.
    pub clock_reads: Cell<u64>,
    /// `now_bound_ms` answers now plus this (`None`: no bound, as before any reading).
    pub bound_ahead_ms: Cell<Option<u64>>,
    /// Reads of keys containing this text find nothing: the view of a worker that read them
    /// before another worker wrote them.
    pub stale: RefCell<Option<String>>,
}

impl FakeHost {
    pub fn new(now_ms: u64) -> FakeHost {
        let h = FakeHost::default();
        h.now.set(now_ms);
        h
    }
    pub fn shared_len(&self) -> usize {
        self.shared.borrow().len()
    }
    pub fn shared_bytes(&self) -> usize {
        self.shared.borrow().iter().map(|(k, (v, _))| k.len() + v.len()).sum()
    }
    /// Every shared-data key, in order.
    pub fn shared_keys(&self) -> Vec<String> {
        self.shared.borrow().keys().cloned().collect()
    }
    /// Every shared-data value, in key order.
    pub fn shared_values(&self) -> Vec<Vec<u8>> {
        self.shared.borrow().values().map(|(v, _)| v.clone()).collect()
    }
    pub fn counter(&self, m: Metric) -> u64 {
        self.counters.borrow().get(&m).copied().unwrap_or(0)
    }
    pub fn advance(&self, ms: u64) {
        self.now.set(self.now.get() + ms);
    }
}

impl Host for FakeHost {
    fn now_ms(&self) -> u64 {
        self.clock_reads.set(self.clock_reads.get() + 1);
        self.now.get()
    }
    fn now_bound_ms(&self) -> Option<u64> {
        self.bound_ahead_ms.get().map(|a| self.now.get() + a)
    }
    fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.reads.set(self.reads.get() + 1);
        if self.stale.borrow().as_deref().is_some_and(|s| key.contains(s)) {
            return None;
        }
        self.shared.borrow().get(key).cloned()
    }
    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
        let mut m = self.shared.borrow_mut();
        match m.get_mut(key) {
            // Like Envoy: a write to a missing key always succeeds, whatever the CAS.
            None => {
                m.insert(key.to_owned(), (value.to_vec(), 1));
                Ok(())
            }
            Some(e) => {
                if let Some(c) = cas {
                    if c != 0 && c != e.1 {
                        return Err(SetError::CasMismatch);
                    }
                }
                e.0 = value.to_vec();
                e.1 += 1;
                Ok(())
            }
        }
    }
    fn count(&self, metric: Metric) {
        *self.counters.borrow_mut().entry(metric).or_default() += 1;
    }
    fn observe(&self, histogram: Histogram, value_ms: u64) {
        self.observed.borrow_mut().push((histogram, value_ms));
    }
}
