//! One callout per key, however many requests want it: the component every callout shares (the
//! STS exchange today; introspection, discovery and Txn-Token calls build on it).
//!
//! - The request that finds neither a result nor a call in flight leads: `lead` records the call
//!   in this VM's in-flight map (with what the result will need, `M`) and writes a shared-data
//!   marker `<ns>/<name>/<slot>` (16 bytes of the key ‖ deadline), so other workers wait for the
//!   leader's result (in their shared cache) instead of calling too.
//! - Requests on the same VM wait on the in-flight entry; other VMs see the marker and decide
//!   their requests again on every tick.
//! - When the call ends, `take` clears the in-flight entry and, once the result is stored where
//!   other VMs look for it, `release` clears the marker (never before: a waiter on another VM
//!   would find neither and call again); `remember` keeps the result (`R`: a value or
//!   the answer its requests get) on this VM for a moment, so its waiters get the same answer.
//!   A result that cannot be cached is remembered for its waiters only: it never answers a new
//!   request (finding F4 of the security review).
//! - A waiter whose leader vanished (`abandon`, a stream reset) or passed its deadline leads a
//!   new call. The in-flight map and the remembered results are bounded.

use crate::host::{Host, SetError, CAS_CREATE as CREATE};
use std::collections::HashMap;

pub type Key = [u8; 32];

/// Remembered results kept per VM at most (the map is cleared when full: waiters then call).
const RECENT_MAX: usize = 4096;

struct Recent<R> {
    result: R,
    until_ms: u64,
    waiters_only: bool,
}

pub struct SingleFlight<M, R> {
    marker_prefix: String,
    slots: u32,
    inflight: HashMap<Key, (u64, M)>,
    recent: HashMap<Key, Recent<R>>,
}

/// Where a key stands for one request.
pub enum Flight<R> {
    /// A call just ended: its result.
    Done(R),
    /// A call is in flight (on this VM or another) until this deadline: wait.
    Waiting(u64),
    /// Nothing in flight: the caller may lead.
    Free,
}

impl<M, R: Clone> SingleFlight<M, R> {
    /// `name`: the marker keys' folder under the namespace; `slots`: how many marker keys at most.
    pub fn new(name: &str, slots: u32) -> Self {
        SingleFlight {
            marker_prefix: format!("{}/{name}", crate::keys::NAMESPACE),
            slots: slots.max(1),
            inflight: HashMap::new(),
            recent: HashMap::new(),
        }
    }

    /// Forgets results and calls past their time.
    pub fn tick(&mut self, now: u64) {
        self.recent.retain(|_, r| r.until_ms > now);
        self.inflight.retain(|_, (deadline, _)| *deadline > now);
    }

    fn marker_key(&self, key: &Key) -> String {
        let slot = u32::from_be_bytes([key[28], key[29], key[30], key[31]]) % self.slots;
        format!("{}/{slot}", self.marker_prefix)
    }

    fn marker_deadline(&self, key: &Key, now: u64, host: &dyn Host) -> Option<u64> {
        let (v, _) = host.shared_get(&self.marker_key(key))?;
        Self::live(key, &v, now)
    }

    /// The marker for `key` when it is live: `Some(deadline)`.
    fn live(key: &Key, v: &[u8], now: u64) -> Option<u64> {
        if !Self::is_for(key, v) {
            return None;
        }
        let mut d = [0u8; 8];
        d.copy_from_slice(&v[16..24]);
        let deadline = u64::from_be_bytes(d);
        (deadline > now).then_some(deadline)
    }

    /// Whether marker value `v` is `key`'s (live or ended).
    fn is_for(key: &Key, v: &[u8]) -> bool {
        v.len() == 24 && v[..16] == key[..16]
    }

    fn marker(key: &Key, deadline: u64) -> Vec<u8> {
        let mut v = key[..16].to_vec();
        v.extend_from_slice(&deadline.to_be_bytes());
        v
    }

    /// Takes the marker for `key` unless another VM's call for it is live: compare-and-swap on
    /// the marker's key, so of two VMs that both found it free, one leads and the other waits.
    /// A marker key read as missing is written with `CAS_CREATE`: it fails if another VM made
    /// the key since, as a stale CAS token does.
    fn take_marker(&self, key: &Key, deadline: u64, now: u64, host: &dyn Host) -> Result<(), u64> {
        let at = self.marker_key(key);
        for _ in 0..4 {
            let cas = match host.shared_get(&at) {
                Some((v, cas)) => match Self::live(key, &v, now) {
                    Some(theirs) => return Err(theirs),
                    None => cas,
                },
                None => CREATE,
            };
            match host.shared_set(&at, &Self::marker(key, deadline), Some(cas)) {
                Err(SetError::CasMismatch) => continue,
                // Shared data refused the write for another reason: lead without a marker
                // (other VMs may call too, as they would with no shared data at all).
                _ => return Ok(()),
            }
        }
        // The marker's key changed four times in a row: other VMs are writing it; wait (as long
        // as this call would have taken) for what they bring.
        Err(deadline)
    }

    /// `resumed`: the request waited (for this call or for keys); only such requests are given
    /// a waiters-only result.
    pub fn check(&self, key: &Key, now: u64, resumed: bool, host: &dyn Host) -> Flight<R> {
        if let Some(r) = self.recent.get(key) {
            if now < r.until_ms && (resumed || !r.waiters_only) {
                return Flight::Done(r.result.clone());
            }
        }
        let here = self.inflight.get(key).map(|(d, _)| *d).filter(|d| *d > now);
        match here.or_else(|| self.marker_deadline(key, now, host)) {
            Some(deadline) => Flight::Waiting(deadline),
            None => Flight::Free,
        }
    }

    /// Whether this VM leads a call for `key` now.
    pub fn leads(&self, key: &Key) -> bool {
        self.inflight.contains_key(key)
    }

    /// This VM leads the call for `key` until `deadline`, unless another VM took the key's
    /// marker since `check` found it free: then `Err` with that call's deadline (wait for it).
    pub fn lead(&mut self, key: Key, deadline: u64, meta: M, now: u64, host: &dyn Host) -> Result<(), u64> {
        self.take_marker(&key, deadline, now, host)?;
        self.inflight.insert(key, (deadline, meta));
        Ok(())
    }

    /// The call for `key` ended: what `lead` was given, if it is still in flight here. The
    /// marker stays until `release`, after the result is where other VMs look for it.
    pub fn take(&mut self, key: &Key) -> Option<M> {
        self.inflight.remove(key).map(|(_, meta)| meta)
    }

    /// Clears the key's marker if it is still this key's (another key may share the slot since):
    /// other VMs' waiters then look for the result, or lead.
    pub fn release(&self, key: &Key, host: &dyn Host) {
        let at = self.marker_key(key);
        if let Some((v, cas)) = host.shared_get(&at) {
            if Self::is_for(key, &v) {
                let _ = host.shared_set(&at, &Self::marker(key, 0), Some(cas));
            }
        }
    }

    /// `take`, then `release`: for a call that ended with nothing for other VMs.
    pub fn finish(&mut self, key: &Key, host: &dyn Host) -> Option<M> {
        let meta = self.take(key)?;
        self.release(key, host);
        Some(meta)
    }

    /// The leader could not dispatch or went away: a waiter may lead at once.
    pub fn abandon(&mut self, key: &Key, host: &dyn Host) {
        self.finish(key, host);
    }

    /// Keeps `result` for the key's waiters until `until_ms` (and for new requests too, unless
    /// `waiters_only`).
    pub fn remember(&mut self, key: &Key, result: R, until_ms: u64, waiters_only: bool) {
        if self.recent.len() >= RECENT_MAX {
            self.recent.clear();
        }
        self.recent.insert(*key, Recent { result, until_ms, waiters_only });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeHost;

    #[test]
    fn one_leader_waiters_then_the_result() {
        let host = FakeHost::new(1000);
        let mut vm1: SingleFlight<&str, u32> = SingleFlight::new("t", 16);
        let vm2: SingleFlight<&str, u32> = SingleFlight::new("t", 16);
        let k = [7u8; 32];
        assert!(matches!(vm1.check(&k, 1000, false, &host), Flight::Free));
        assert_eq!(vm1.lead(k, 3000, "meta", 1000, &host), Ok(()));
        assert!(matches!(vm1.check(&k, 1000, false, &host), Flight::Waiting(3000)));
        assert!(matches!(vm2.check(&k, 1000, false, &host), Flight::Waiting(3000)), "the marker reaches other VMs");
        assert_eq!(vm1.finish(&k, &host), Some("meta"));
        assert!(matches!(vm2.check(&k, 1001, false, &host), Flight::Free), "the marker is cleared");
        vm1.remember(&k, 42, 2000, false);
        assert!(matches!(vm1.check(&k, 1500, false, &host), Flight::Done(42)));
        assert!(matches!(vm1.check(&k, 2000, false, &host), Flight::Free), "remembered until 2000");
        vm1.remember(&k, 43, 2000, true);
        assert!(matches!(vm1.check(&k, 1500, false, &host), Flight::Free), "waiters only: not for a new request");
        assert!(matches!(vm1.check(&k, 1500, true, &host), Flight::Done(43)));
    }

    #[test]
    fn of_two_vms_that_both_found_the_key_free_one_leads() {
        let host = FakeHost::new(1000);
        let mut vm1: SingleFlight<u8, u32> = SingleFlight::new("t", 16);
        let mut vm2: SingleFlight<u8, u32> = SingleFlight::new("t", 16);
        let k = [9u8; 32];
        // Both look before either leads (two workers on the same first request).
        assert!(matches!(vm1.check(&k, 1000, false, &host), Flight::Free));
        assert!(matches!(vm2.check(&k, 1000, false, &host), Flight::Free));
        assert_eq!(vm1.lead(k, 3000, 1, 1000, &host), Ok(()));
        assert_eq!(vm2.lead(k, 3100, 2, 1000, &host), Err(3000), "the second waits for the first's call");
        assert!(!vm2.leads(&k));
        assert_eq!(vm1.finish(&k, &host), Some(1));
        assert_eq!(vm2.lead(k, 3100, 2, 1001, &host), Ok(()), "once it ended, a new call may lead");
        // Another key in the same slot: the marker is not this key's, so it is taken.
        let mut other = k;
        other[0] = 1;
        assert_eq!(vm1.lead(other, 3200, 3, 1001, &host), Ok(()));
        // The first key's end does not clear the other key's marker.
        assert_eq!(vm2.finish(&k, &host), Some(2));
        assert!(matches!(vm2.check(&other, 1002, false, &host), Flight::Waiting(3200)));
    }

    #[test]
    fn a_made_marker_key_is_never_overwritten_by_its_making() {
        // Two VMs both found the key missing: the second one's making must not wipe the
        // first one's marker (a write with `CREATE` to a key that exists fails).
        let host = FakeHost::new(1000);
        let mut vm1: SingleFlight<(), ()> = SingleFlight::new("t", 1);
        let k = [3u8; 32];
        assert_eq!(vm1.lead(k, 3000, (), 1000, &host), Ok(()));
        let at = vm1.marker_key(&k);
        assert!(host.shared_set(&at, &[0u8; 24], Some(CREATE)).is_err());
        assert!(matches!(vm1.marker_deadline(&k, 1000, &host), Some(3000)));
    }

    #[test]
    fn a_vanished_leader_frees_the_key() {
        let host = FakeHost::new(1000);
        let mut vm: SingleFlight<(), ()> = SingleFlight::new("t", 16);
        let k = [1u8; 32];
        assert_eq!(vm.lead(k, 3000, (), 1000, &host), Ok(()));
        vm.abandon(&k, &host);
        assert!(matches!(vm.check(&k, 1000, false, &host), Flight::Free));
        assert_eq!(vm.lead(k, 3000, (), 1000, &host), Ok(()));
        vm.tick(3000);
        assert!(matches!(vm.check(&k, 3000, false, &host), Flight::Free), "past its deadline");
        assert_eq!(vm.finish(&k, &host), None);
    }
}
