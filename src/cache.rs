//! A bounded cache in proxy-wasm shared data. The host has no TTL and no eviction, so the cache
//! is a fixed table of `max_entries` slots: key `<prefix>/<slot>`, 2-way set-associative (each
//! entry may live in one of two slots chosen by its hash). Memory is bounded by construction,
//! lookups are O(1), expired entries are never returned, and a collision overwrites the entry
//! that expires first.
//!
//! Value layout (v1): `b"TEF1"` ‖ 16-byte key hash ‖ expiry ms (u64 BE) ‖ payload.

use crate::host::Host;

const MAGIC: &[u8; 4] = b"TEF1";
const HEADER: usize = 4 + 16 + 8;

pub struct SlotCache {
    prefix: String,
    slots: u32,
}

/// A decoded entry; `None` for anything that is not a v1 entry.
pub fn decode(bytes: &[u8]) -> Option<(&[u8], u64, &[u8])> {
    if bytes.len() < HEADER || &bytes[..4] != MAGIC {
        return None;
    }
    let hash = &bytes[4..20];
    let mut exp = [0u8; 8];
    exp.copy_from_slice(&bytes[20..28]);
    Some((hash, u64::from_be_bytes(exp), &bytes[HEADER..]))
}

pub fn encode(hash: &[u8; 32], expiry_ms: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + payload.len());
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(&hash[..16]);
    v.extend_from_slice(&expiry_ms.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

impl SlotCache {
    pub fn new(prefix: &str, slots: u32) -> Self {
        SlotCache { prefix: prefix.to_owned(), slots: slots.max(1) }
    }

    fn slot_keys(&self, hash: &[u8; 32]) -> [String; 2] {
        let a = u32::from_be_bytes([hash[16], hash[17], hash[18], hash[19]]) % self.slots;
        let b = u32::from_be_bytes([hash[20], hash[21], hash[22], hash[23]]) % self.slots;
        [format!("{}/{}", self.prefix, a), format!("{}/{}", self.prefix, b)]
    }

    /// The payload stored for `hash` and its expiry, if present and not expired at `now_ms`.
    pub fn get(&self, host: &dyn Host, hash: &[u8; 32], now_ms: u64) -> Option<(Vec<u8>, u64)> {
        let keys = self.slot_keys(hash);
        let n = if keys[0] == keys[1] { 1 } else { 2 };
        for key in &keys[..n] {
            if let Some((bytes, _)) = host.shared_get(key) {
                if let Some((h, exp, payload)) = decode(&bytes) {
                    if h == &hash[..16] && now_ms < exp {
                        return Some((payload.to_vec(), exp));
                    }
                }
            }
        }
        None
    }

    /// Stores `payload` for `hash` until `expiry_ms`, in the slot that is free, expired, already
    /// holds this hash, or otherwise expires first.
    pub fn put(&self, host: &dyn Host, hash: &[u8; 32], expiry_ms: u64, payload: &[u8], now_ms: u64) {
        let keys = self.slot_keys(hash);
        let mut best: Option<(u8, u64, &String)> = None; // (rank: 0 same/free/expired, 1 live), expiry, key
        for key in if keys[0] == keys[1] { &keys[..1] } else { &keys[..] } {
            let (rank, exp) = match host.shared_get(key).as_ref().and_then(|(b, _)| decode(b).map(|(h, e, _)| (h == &hash[..16], e))) {
                None => (0, 0),
                Some((true, _)) => (0, 0),
                Some((false, e)) if e <= now_ms => (0, 0),
                Some((false, e)) => (1, e),
            };
            if best.is_none_or(|(r, e, _)| (rank, exp) < (r, e)) {
                best = Some((rank, exp, key));
            }
        }
        if let Some((_, _, key)) = best {
            // Last writer wins; a lost race only costs a later miss.
            let _ = host.shared_set(key, &encode(hash, expiry_ms, payload), None);
        }
    }
}

/// What `SlotCache::claim` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Not seen: recorded now, by this caller alone.
    New,
    /// A live entry for this hash exists (or another caller recorded it at the same moment).
    Seen,
}

impl SlotCache {
    /// Records `hash` until `expiry_ms` unless a live entry for it exists: a replay check
    /// across workers. The write is a compare-and-swap on the slot it read; a slot that was
    /// missing is read back for `tag` (unique to this caller), so of two workers recording the
    /// same hash at once exactly one gets `New` (the host lets two writes to a missing key both
    /// succeed; the read-back sees the later one). A collision overwrites the entry that expires first: size
    /// the cache for the live entries (`replay_cache_entries`).
    pub fn claim(&self, host: &dyn Host, hash: &[u8; 32], expiry_ms: u64, now_ms: u64, tag: u64) -> Claim {
        let keys = self.slot_keys(hash);
        let n = if keys[0] == keys[1] { 1 } else { 2 };
        for _attempt in 0..3 {
            let mut best: Option<((u8, u64), usize, Option<u32>)> = None;
            for (i, key) in keys[..n].iter().enumerate() {
                let got = host.shared_get(key);
                let (rank, cas) = match &got {
                    None => ((0, 0), None),
                    Some((b, cas)) => match decode(b) {
                        Some((h, e, _)) if h == &hash[..16] && now_ms < e => return Claim::Seen,
                        Some((_, e, _)) if e > now_ms => ((1, e), Some(*cas)),
                        _ => ((0, 0), Some(*cas)),
                    },
                };
                if best.is_none_or(|(r, _, _)| rank < r) {
                    best = Some((rank, i, cas));
                }
            }
            let Some((_, i, cas)) = best else { return Claim::New };
            let value = encode(hash, expiry_ms, &tag.to_be_bytes());
            match host.shared_set(&keys[i], &value, cas) {
                // A compare-and-swap on the version read: nobody wrote the slot in between.
                Ok(()) if cas.is_some() => return Claim::New,
                // A write to a missing key always succeeds, also a second one at once: read back.
                Ok(()) => {
                    return match host.shared_get(&keys[i]) {
                        Some((b, _)) if b == value => Claim::New,
                        // Somebody wrote the slot right after: the same hash means the same
                        // proof twice; another hash took the slot (our record is lost, but
                        // this request was the first to present it).
                        Some((b, _)) => match decode(&b) {
                            Some((h, _, _)) if h == &hash[..16] => Claim::Seen,
                            _ => Claim::New,
                        },
                        None => Claim::New,
                    };
                }
                Err(crate::host::SetError::CasMismatch) => continue,
                Err(crate::host::SetError::Other) => return Claim::New,
            }
        }
        // Three lost races on two slots: someone is writing this hash's slots right now.
        Claim::Seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeHost;
    use sha2::{Digest, Sha256};

    fn h(i: u32) -> [u8; 32] {
        Sha256::digest(i.to_be_bytes()).into()
    }

    #[test]
    fn round_trip_and_expiry() {
        let host = FakeHost::new(1_000);
        let c = SlotCache::new("c", 16);
        c.put(&host, &h(1), 2_000, b"one", 1_000);
        assert_eq!(c.get(&host, &h(1), 1_500), Some((b"one".to_vec(), 2_000)));
        assert_eq!(c.get(&host, &h(1), 2_000), None, "expired entries are never served");
        assert_eq!(c.get(&host, &h(2), 1_500), None);
    }

    #[test]
    fn bounded_by_slot_count() {
        let host = FakeHost::new(0);
        let c = SlotCache::new("c", 64);
        for i in 0..10_000 {
            c.put(&host, &h(i), 1_000_000 + i as u64, b"x", 0);
        }
        assert!(host.shared_len() <= 64, "{} keys", host.shared_len());
        // The most recent entries are (mostly) present; none is ever confused with another.
        let mut hits = 0;
        for i in 9_990..10_000 {
            hits += c.get(&host, &h(i), 1).is_some() as u32;
        }
        assert!(hits >= 5, "{hits}");
        for i in 0..10_000 {
            if let Some((p, _)) = c.get(&host, &h(i), 1) {
                assert_eq!(p, b"x");
            }
        }
    }

    #[test]
    fn claim_records_once_until_expiry() {
        let host = FakeHost::new(0);
        let c = SlotCache::new("r", 64);
        assert_eq!(c.claim(&host, &h(1), 1_000, 0, 7), Claim::New);
        assert_eq!(c.claim(&host, &h(1), 1_000, 10, 8), Claim::Seen, "a replay is seen");
        assert_eq!(c.claim(&host, &h(2), 1_000, 10, 8), Claim::New);
        assert_eq!(c.claim(&host, &h(1), 2_000, 1_000, 9), Claim::New, "expired: new again");
        // Bounded: many claims never exceed the slots, and each fresh hash is New once.
        for i in 10..5_000 {
            assert_eq!(c.claim(&host, &h(i), 10_000, 1_000, i as u64), Claim::New);
        }
        assert!(host.shared_len() <= 64);
        assert_eq!(c.claim(&host, &h(4_999), 10_000, 1_000, 1), Claim::Seen);
    }

    #[test]
    fn garbage_and_foreign_values_are_misses() {
        let host = FakeHost::new(0);
        let c = SlotCache::new("c", 1);
        host.shared_set("c/0", b"garbage", None).unwrap();
        assert_eq!(c.get(&host, &h(1), 0), None);
        assert!(decode(b"TEF1").is_none());
        c.put(&host, &h(1), 10, b"p", 0);
        assert_eq!(c.get(&host, &h(1), 0), Some((b"p".to_vec(), 10)));
    }
}
