//! The only ways the core reaches the proxy: time, shared data and metrics (counters, and the
//! histograms of callout times). The wasm glue
//! implements these with proxy-wasm hostcalls; tests use `testing::FakeHost`.

use crate::metrics::{Histogram, Metric};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetError {
    /// Compare-and-swap lost: somebody wrote the key since it was read.
    CasMismatch,
    Other,
}

/// The CAS token to write a key read as missing with: a write to a missing key ignores its CAS
/// token, while one to a key that exists fails unless the key's token is this one (one chance
/// in 2^32). So it makes the key, or fails if another worker made it since it was read, instead
/// of overwriting what that worker wrote (`None` would).
pub const CAS_CREATE: u32 = u32::MAX;

pub trait Host {
    /// Wall-clock milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// A time no earlier than now that may cost less than `now_ms` (`clock::RecentClock`), only
    /// for asking whether something valid until a time still is; `None`: ask `now_ms`.
    fn now_bound_ms(&self) -> Option<u64> {
        None
    }
    /// A shared-data value and its CAS token; `None` if the key was never written.
    fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Writes a shared-data value; with `cas`, only if the key still has that CAS token
    /// (the host lets any write to a missing key succeed).
    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError>;
    fn count(&self, metric: Metric);
    /// Records one value (milliseconds) in a histogram: the time a callout took.
    fn observe(&self, histogram: Histogram, value_ms: u64);
}
