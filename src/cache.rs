//! A bounded cache in proxy-wasm shared data. The host has no TTL and no eviction, so the cache
//! is a fixed table of buckets: key `<prefix>/<bucket>`, each value holding up to [`WAYS`]
//! entries, and each hash may live in one of two buckets chosen by it (two choices of four-way
//! buckets). Memory is bounded by construction (at most `max_entries` entries), a lookup reads one
//! key, or two when its entry went to the second bucket; expired entries are never returned, and a
//! new entry takes a free or expired place before it overwrites the live entry that expires first.
//!
//! Why buckets: with one entry per key and two keys per hash, a population half the size of
//! `max_entries` lost ≈ 6 % of its live entries to collisions in the worst case (each a
//! re-verification, or a new exchange at the STS); two four-way buckets lose under 0.5 % at the
//! same memory (`a_population_half_the_size_keeps_its_entries` below, and bench/README.md).
//!
//! Value layout (v2): `b"TEF2"` then per entry: 16-byte key hash ‖ expiry ms (u64 BE) ‖ payload
//! length (u32 BE) ‖ payload. Anything else (another build's layout, corruption) reads as an
//! empty bucket.

use crate::host::{Host, SetError, CAS_CREATE};
use crate::metrics::Metric;

const MAGIC: &[u8; 4] = b"TEF2";
const ENTRY_HEADER: usize = 16 + 8 + 4;
/// Entries per bucket (fewer when `max_entries` is smaller).
pub const WAYS: u32 = 4;
/// Attempts at a compare-and-swap write before giving up (another worker writing the bucket).
const ATTEMPTS: usize = 3;

/// One cache entry as stored in a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The first 16 bytes of the key hash.
    pub hash: &'a [u8],
    pub expiry_ms: u64,
    pub payload: &'a [u8],
}

pub struct SlotCache {
    prefix: String,
    buckets: u32,
    ways: usize,
    /// Counted each time a live entry is overwritten to make room.
    evicted: Metric,
}

/// Calls `each` on every entry of a v2 bucket, in order; `None` for anything that is not a
/// whole one (then what `each` saw is to be dropped).
fn walk<'a>(bytes: &'a [u8], mut each: impl FnMut(Entry<'a>)) -> Option<()> {
    let mut rest = bytes.strip_prefix(MAGIC.as_slice())?;
    while !rest.is_empty() {
        if rest.len() < ENTRY_HEADER {
            return None;
        }
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&rest[16..24]);
        let len = u32::from_be_bytes([rest[24], rest[25], rest[26], rest[27]]) as usize;
        let payload = rest.get(ENTRY_HEADER..ENTRY_HEADER.checked_add(len)?)?;
        each(Entry { hash: &rest[..16], expiry_ms: u64::from_be_bytes(exp), payload });
        rest = &rest[ENTRY_HEADER + len..];
    }
    Some(())
}

/// A bucket's entries; `None` for anything that is not a v2 bucket.
pub fn decode(bytes: &[u8]) -> Option<Vec<Entry<'_>>> {
    let mut out = Vec::new();
    walk(bytes, |e| out.push(e))?;
    Some(out)
}

/// `decode(bytes)`'s live entry for `hash`, without collecting the entries (this runs on every
/// shared-data hit); a bucket `decode` refuses finds nothing.
fn find_live<'a>(bytes: &'a [u8], hash: &[u8], now_ms: u64) -> Option<Entry<'a>> {
    let mut found = None;
    walk(bytes, |e| {
        if found.is_none() && e.hash == hash && now_ms < e.expiry_ms {
            found = Some(e);
        }
    })?;
    found
}

/// A bucket value holding `entries`.
pub fn encode(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut v = Vec::with_capacity(MAGIC.len() + entries.iter().map(|e| ENTRY_HEADER + e.payload.len()).sum::<usize>());
    v.extend_from_slice(MAGIC);
    for e in entries {
        v.extend_from_slice(&e.hash[..16]);
        v.extend_from_slice(&e.expiry_ms.to_be_bytes());
        v.extend_from_slice(&(e.payload.len() as u32).to_be_bytes());
        v.extend_from_slice(e.payload);
    }
    v
}

/// One bucket as read: its value and the CAS token to write it back with (`None`: the key was
/// never written).
struct Read {
    bytes: Vec<u8>,
    cas: Option<u32>,
}

/// A bucket's entries, an unreadable value as none.
fn entries(r: &Read) -> Vec<Entry<'_>> {
    decode(&r.bytes).unwrap_or_default()
}

/// Where a new entry goes in the buckets read: (bucket index, entry index to replace, or `None`
/// to add, whether that overwrites another hash's live entry). The hash's own entry first, then
/// a free or expired place (first bucket first), then the live entry that expires first.
fn place(buckets: &[Vec<Entry<'_>>], hash: &[u8], ways: usize, now_ms: u64) -> (usize, Option<usize>, bool) {
    let mut best: Option<((u8, u64), usize, Option<usize>)> = None;
    for (b, entries) in buckets.iter().enumerate() {
        if let Some(i) = entries.iter().position(|e| e.hash == hash) {
            return (b, Some(i), false);
        }
        let mut consider = |rank: (u8, u64), at: Option<usize>| {
            if best.is_none_or(|(r, _, _)| rank < r) {
                best = Some((rank, b, at));
            }
        };
        if let Some(i) = entries.iter().position(|e| e.expiry_ms <= now_ms) {
            consider((0, 0), Some(i));
        } else if entries.len() < ways {
            consider((0, 0), None);
        } else if let Some((i, e)) = entries.iter().enumerate().min_by_key(|(_, e)| e.expiry_ms) {
            consider((1, e.expiry_ms), Some(i));
        }
    }
    best.map(|((rank, _), b, at)| (b, at, rank == 1)).unwrap_or((0, None, false))
}

/// The bucket's `entries` with `new` placed at `at` (replacing that entry) or added, expired
/// entries dropped and at most `ways` entries kept.
fn with_entry<'a>(mut entries: Vec<Entry<'a>>, at: Option<usize>, new: Entry<'a>, ways: usize, now_ms: u64) -> Vec<u8> {
    match at {
        Some(i) if i < entries.len() => entries[i] = new,
        _ => entries.push(new),
    }
    entries.retain(|e| e.expiry_ms > now_ms || e.hash == new.hash);
    // More than `ways` only in a bucket another configuration wrote: keep the new entry.
    while entries.len() > ways {
        let Some(i) = entries.iter().position(|e| e.hash != new.hash) else { break };
        entries.remove(i);
    }
    encode(&entries)
}

impl SlotCache {
    /// At most `max_entries` entries (rounded down to a multiple of the bucket size); a live
    /// entry overwritten to make room counts `cache_evicted`.
    pub fn new(prefix: &str, max_entries: u32) -> Self {
        let max_entries = max_entries.max(1);
        let ways = WAYS.min(max_entries);
        SlotCache { prefix: prefix.to_owned(), buckets: max_entries / ways, ways: ways as usize, evicted: Metric::CacheEvicted }
    }

    /// A record of what was seen (`claim`), whose overwritten live entries count
    /// `replay_evicted`: a replay of what they recorded would no longer be caught.
    pub fn new_replay(prefix: &str, max_entries: u32) -> Self {
        SlotCache { evicted: Metric::ReplayEvicted, ..SlotCache::new(prefix, max_entries) }
    }

    /// How many entries the cache holds at most.
    pub fn capacity(&self) -> u32 {
        self.buckets * self.ways as u32
    }

    /// The hash's buckets: one, or two different ones (the first is read first).
    fn buckets_of(&self, hash: &[u8; 32]) -> (u32, Option<u32>) {
        let a = u32::from_be_bytes([hash[16], hash[17], hash[18], hash[19]]) % self.buckets;
        let b = u32::from_be_bytes([hash[20], hash[21], hash[22], hash[23]]) % self.buckets;
        (a, (a != b).then_some(b))
    }

    /// `<prefix>/<bucket>`, the bucket in decimal, without `format!` (core::fmt's machinery, on
    /// every lookup of every shared-data hit).
    fn key(&self, bucket: u32) -> String {
        let mut k = String::with_capacity(self.prefix.len() + 11);
        k.push_str(&self.prefix);
        k.push('/');
        let (mut digits, mut at, mut n) = ([0u8; 10], 10, bucket);
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        k.extend(digits[at..].iter().map(|d| char::from(*d)));
        k
    }

    /// The hash's bucket keys, for a read-modify-write of both.
    fn bucket_keys(&self, hash: &[u8; 32]) -> Vec<String> {
        let (a, b) = self.buckets_of(hash);
        std::iter::once(a).chain(b).map(|i| self.key(i)).collect()
    }

    fn read(host: &dyn Host, keys: &[String]) -> Vec<Read> {
        keys.iter()
            .map(|k| match host.shared_get(k) {
                Some((bytes, cas)) => Read { bytes, cas: Some(cas) },
                None => Read { bytes: Vec::new(), cas: None },
            })
            .collect()
    }

    /// The payload stored for `hash` and its expiry, if present and not expired at `now_ms`.
    pub fn get(&self, host: &dyn Host, hash: &[u8; 32], now_ms: u64) -> Option<(Vec<u8>, u64)> {
        self.get_with(host, hash, now_ms, |payload, expiry_ms| Some((payload.to_vec(), expiry_ms)))
    }

    /// `f(payload, expiry)` of `hash`'s live entry, read in place in the bucket as the host
    /// returned it (no copy of the payload, no list of the bucket's entries: this runs on every
    /// shared-data hit); `None` when there is none or `f` declines it.
    pub fn get_with<T>(&self, host: &dyn Host, hash: &[u8; 32], now_ms: u64, f: impl FnOnce(&[u8], u64) -> Option<T>) -> Option<T> {
        // The second bucket's key is only made when the first does not hold the entry.
        let (a, b) = self.buckets_of(hash);
        for bucket in std::iter::once(a).chain(b) {
            if let Some((bytes, _)) = host.shared_get(&self.key(bucket)) {
                if let Some(e) = find_live(&bytes, &hash[..16], now_ms) {
                    return f(e.payload, e.expiry_ms);
                }
            }
        }
        None
    }

    pub fn put(&self, host: &dyn Host, hash: &[u8; 32], expiry_ms: u64, payload: &[u8], now_ms: u64) {
        let keys = self.bucket_keys(hash);
        let new = Entry { hash: &hash[..16], expiry_ms, payload };
        for _attempt in 0..ATTEMPTS {
            let reads = Self::read(host, &keys);
            let mut buckets: Vec<_> = reads.iter().map(entries).collect();
            let (b, at, evicts) = place(&buckets, &hash[..16], self.ways, now_ms);
            let value = with_entry(buckets.swap_remove(b), at, new, self.ways, now_ms);
            // A bucket read as missing is made with `CAS_CREATE`: another worker's write to it
            // since fails this one, which reads again.
            match host.shared_set(&keys[b], &value, Some(reads[b].cas.unwrap_or(CAS_CREATE))) {
                Err(SetError::CasMismatch) => continue,
                Ok(()) if evicts => return host.count(self.evicted),
                _ => return,
            }
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
    /// across workers. The write is a compare-and-swap on the bucket it read; a bucket that was
    /// missing is made with `CAS_CREATE` (so a worker that also read it missing, and writes
    /// after this one, fails and reads again) and read back for `tag` (unique to this caller),
    /// so of two workers recording the same hash at once exactly one gets `New`. When both buckets are full of live entries,
    /// the one that expires first is overwritten: size the cache for the live entries
    /// (`replay_cache_entries`).
    pub fn claim(&self, host: &dyn Host, hash: &[u8; 32], expiry_ms: u64, now_ms: u64, tag: u64) -> Claim {
        let keys = self.bucket_keys(hash);
        let tag = tag.to_be_bytes();
        let new = Entry { hash: &hash[..16], expiry_ms, payload: &tag };
        for _attempt in 0..ATTEMPTS {
            let reads = Self::read(host, &keys);
            let mut buckets: Vec<_> = reads.iter().map(entries).collect();
            if buckets.iter().flatten().any(|e| e.hash == &hash[..16] && now_ms < e.expiry_ms) {
                return Claim::Seen;
            }
            let (b, at, evicts) = place(&buckets, &hash[..16], self.ways, now_ms);
            let value = with_entry(buckets.swap_remove(b), at, new, self.ways, now_ms);
            let written = host.shared_set(&keys[b], &value, Some(reads[b].cas.unwrap_or(CAS_CREATE)));
            if written.is_ok() && evicts {
                host.count(self.evicted);
            }
            match written {
                // A compare-and-swap on the version read: nobody wrote the bucket in between.
                Ok(()) if reads[b].cas.is_some() => return Claim::New,
                // A bucket made by this write (`CAS_CREATE`): read back all the same, in case
                // another worker's write to the missing key raced it.
                Ok(()) => {
                    let back = Self::read(host, &keys[b..=b]);
                    match entries(&back[0]).iter().find(|e| e.hash == &hash[..16]) {
                        Some(e) if e.payload == tag => return Claim::New,
                        // Another caller recorded the same hash right after: the same proof twice.
                        Some(_) => return Claim::Seen,
                        // Somebody wrote the bucket without it: record it again.
                        None => continue,
                    }
                }
                Err(SetError::CasMismatch) => continue,
                Err(SetError::Other) => return Claim::New,
            }
        }
        // Three lost races on two buckets: someone is writing this hash's buckets right now.
        Claim::Seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeHost;
    use std::cell::Cell;
    use sha2::{Digest, Sha256};

    fn h(i: u32) -> [u8; 32] {
        Sha256::digest(i.to_be_bytes()).into()
    }

    /// Entries in every bucket of the fake host's shared data.
    fn entries_held(host: &FakeHost) -> usize {
        host.shared_values().iter().map(|v| decode(v).map_or(0, |e| e.len())).sum()
    }

    #[test]
    fn a_population_half_the_size_keeps_its_entries() {
        // Round-robin over `n` live tokens in a cache of 2n (the sizing bench/ and the README
        // give): the cache's worst case, as each overwritten entry is the next one needed.
        // One entry per key with two keys per hash missed 6 % of lookups here; the buckets miss
        // well under 1 %.
        let (n, passes) = (4_000u32, 4);
        let host = FakeHost::new(0);
        let c = SlotCache::new("p", 2 * n);
        let (mut misses, mut reads_before) = (0, host.reads.get());
        let mut t = 1_000u64;
        for pass in 0..passes {
            if pass == 1 {
                reads_before = host.reads.get();
            }
            for i in 0..n {
                t += 1;
                if c.get(&host, &h(i), t).is_none() {
                    misses += (pass > 0) as u32;
                    let before = host.reads.get();
                    c.put(&host, &h(i), t + 3_600_000, b"claims", t);
                    reads_before += host.reads.get() - before;
                }
            }
        }
        let lookups = n * (passes - 1);
        assert!(misses * 200 < lookups, "{misses} misses in {lookups} lookups");
        let per_lookup = (host.reads.get() - reads_before) as f64 / lookups as f64;
        assert!(per_lookup < 1.4, "{per_lookup} shared-data reads per lookup");
        assert!(entries_held(&host) <= c.capacity() as usize);
    }

    #[test]
    fn finding_in_place_agrees_with_decoding_the_bucket() {
        let (h1, h2, h3) = (h(1), h(2), h(3));
        let bucket = encode(&[
            Entry { hash: &h1[..16], expiry_ms: 100, payload: b"one" },
            Entry { hash: &h2[..16], expiry_ms: 50, payload: b"" },
            Entry { hash: &h3[..16], expiry_ms: 300, payload: b"three" },
        ]);
        for now in [0, 49, 50, 99, 100, 299, 300] {
            for hash in [&h1, &h2, &h3, &h(4)] {
                let want = decode(&bucket).and_then(|es| es.into_iter().find(|x| x.hash == &hash[..16] && now < x.expiry_ms));
                assert_eq!(find_live(&bucket, &hash[..16], now), want, "now {now}");
            }
        }
        // A bucket decode refuses (cut anywhere, another layout) holds nothing, also before the cut.
        for cut in 0..bucket.len() {
            let part = &bucket[..cut];
            if decode(part).is_none() {
                assert_eq!(find_live(part, &h1[..16], 0), None, "cut at {cut}");
            }
        }
        assert_eq!(find_live(b"TEF1", &h1[..16], 0), None);
    }

    #[test]
    fn bucket_keys_are_the_prefix_and_the_bucket_in_decimal() {
        let c = SlotCache::new("claims", 8);
        for b in [0, 1, 9, 10, 99, 100, 4_095, 65_536, 1_000_000_007, u32::MAX] {
            assert_eq!(c.key(b), format!("claims/{b}"));
        }
    }

    #[test]
    fn one_entry_per_hash_and_small_caches_stay_bounded() {
        let host = FakeHost::new(0);
        let c = SlotCache::new("o", 8);
        for round in 0..3u64 {
            c.put(&host, &h(1), 10_000 + round, b"v", 0);
        }
        assert_eq!(entries_held(&host), 1, "a put replaces the hash's own entry");
        assert_eq!(c.get(&host, &h(1), 5), Some((b"v".to_vec(), 10_002)));
        for max in [1u32, 2, 3, 5, 7] {
            let host = FakeHost::new(0);
            let c = SlotCache::new("s", max);
            for i in 0..100 {
                c.put(&host, &h(i), 1_000 + i as u64, b"x", 0);
            }
            assert!(entries_held(&host) <= max as usize, "max {max}: {}", entries_held(&host));
            assert!(c.get(&host, &h(99), 0).is_some(), "max {max}: the newest entry is kept");
        }
    }

    #[test]
    fn expired_entries_make_room_first() {
        let host = FakeHost::new(0);
        // One bucket of four.
        let c = SlotCache::new("e", 4);
        for i in 0..4 {
            c.put(&host, &h(i), if i == 2 { 50 } else { 1_000 }, b"x", 0);
        }
        c.put(&host, &h(9), 1_000, b"y", 100);
        assert!(c.get(&host, &h(2), 10).is_none(), "the expired entry made room");
        for i in [0, 1, 3, 9] {
            assert!(c.get(&host, &h(i), 100).is_some(), "{i} kept");
        }
        assert_eq!(host.counter(Metric::CacheEvicted), 0, "an expired entry is no eviction");
        // Full of live entries: the one expiring first goes, counted.
        c.put(&host, &h(10), 2_000, b"z", 100);
        c.put(&host, &h(11), 990, b"z", 100);
        assert!(c.get(&host, &h(11), 100).is_some());
        assert_eq!(entries_held(&host), 4);
        assert_eq!(host.counter(Metric::CacheEvicted), 2);
        // A replay record's eviction has its own counter.
        let r = SlotCache::new_replay("rp", 4);
        for i in 0..5 {
            assert_eq!(r.claim(&host, &h(100 + i), 1_000, 0, i as u64), Claim::New);
        }
        assert_eq!(host.counter(Metric::ReplayEvicted), 1);
        assert_eq!(host.counter(Metric::CacheEvicted), 2);
    }

    #[test]
    fn bucket_values_are_checked() {
        let e = [Entry { hash: &[1u8; 16], expiry_ms: 7, payload: b"abc" }, Entry { hash: &[2u8; 16], expiry_ms: 8, payload: b"" }];
        let v = encode(&e);
        assert_eq!(decode(&v).as_deref(), Some(&e[..]));
        for cut in 0..v.len() {
            if cut != 4 && cut != v.len() - ENTRY_HEADER {
                assert!(decode(&v[..cut]).is_none(), "truncated at {cut}");
            }
        }
        let mut long = v.clone();
        long[4 + 24..4 + 28].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&long).is_none(), "a length past the end");
        assert!(decode(b"TEF1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").is_none(), "the older layout is a miss");
    }

    #[test]
    fn a_bucket_written_under_more_ways_is_cut_to_size() {
        let host = FakeHost::new(0);
        let c = SlotCache::new("w", 2); // one bucket of two
        let hs: Vec<[u8; 32]> = (0..6).map(h).collect();
        let many: Vec<Entry> = hs.iter().map(|x| Entry { hash: &x[..16], expiry_ms: 1_000, payload: b"o" }).collect();
        host.shared_set("w/0", &encode(&many), None).unwrap();
        c.put(&host, &h(50), 1_000, b"n", 0);
        assert_eq!(entries_held(&host), 2);
        assert!(c.get(&host, &h(50), 0).is_some());
    }

    /// A host on which another worker writes a bucket right before each of the first `races`
    /// writes this worker makes (between its read and its write).
    struct Racing<'a> {
        inner: &'a FakeHost,
        races: Cell<u32>,
        other: [u8; 32],
    }

    impl Host for Racing<'_> {
        fn now_ms(&self) -> u64 {
            self.inner.now_ms()
        }
        fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
            self.inner.shared_get(key)
        }
        fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
            if self.races.get() > 0 {
                self.races.set(self.races.get() - 1);
                let (old, c) = self.inner.shared_get(key).unwrap_or_default();
                let mut es = decode(&old).unwrap_or_default();
                es.retain(|e| e.hash != &self.other[..16]);
                es.push(Entry { hash: &self.other[..16], expiry_ms: 1_000, payload: b"other" });
                self.inner.shared_set(key, &encode(&es), Some(c)).unwrap();
            }
            self.inner.shared_set(key, value, cas)
        }
        fn count(&self, m: Metric) {
            self.inner.count(m)
        }
        fn observe(&self, h: crate::metrics::Histogram, v: u64) {
            self.inner.observe(h, v)
        }
    }

    #[test]
    fn concurrent_writes_to_one_bucket_lose_no_entry() {
        // The other worker's write between this put's read and its write fails the put's
        // compare-and-swap; the put reads again, so both entries are kept.
        let fake = FakeHost::new(0);
        let c = SlotCache::new("r", 4);
        c.put(&fake, &h(1), 1_000, b"a", 0);
        let racing = Racing { inner: &fake, races: Cell::new(1), other: h(2) };
        c.put(&racing, &h(3), 1_000, b"c", 0);
        for i in 1..=3 {
            assert!(c.get(&fake, &h(i), 0).is_some(), "{i}");
        }
        // A claim likewise: recorded once, next to the other worker's entry.
        let racing = Racing { inner: &fake, races: Cell::new(1), other: h(4) };
        assert_eq!(c.claim(&racing, &h(5), 1_000, 0, 1), Claim::New);
        assert_eq!(c.claim(&fake, &h(5), 1_000, 0, 2), Claim::Seen);
        assert!(c.get(&fake, &h(4), 0).is_some());
        // Racing on every attempt: the claim gives up as seen (fail closed).
        let racing = Racing { inner: &fake, races: Cell::new(10), other: h(6) };
        assert_eq!(c.claim(&racing, &h(7), 1_000, 0, 3), Claim::Seen);
    }

    #[test]
    fn claims_on_a_missing_bucket_race_to_exactly_one_new() {
        // Two workers record the same hash in a bucket nobody wrote yet: both writes succeed
        // (no CAS on a missing key), the read-back decides.
        let fake = FakeHost::new(0);
        let c = SlotCache::new("m", 4);
        struct Second<'a>(&'a FakeHost, Cell<bool>);
        impl Host for Second<'_> {
            fn now_ms(&self) -> u64 {
                0
            }
            fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
                self.0.shared_get(key)
            }
            fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
                let r = self.0.shared_set(key, value, cas);
                if !self.1.replace(true) {
                    // The other worker read the bucket missing too and writes now, after us.
                    let other = encode(&[Entry { hash: &h(8)[..16], expiry_ms: 1_000, payload: &9u64.to_be_bytes() }]);
                    self.0.shared_set(key, &other, None).unwrap();
                }
                r
            }
            fn count(&self, m: Metric) {
                self.0.count(m)
            }
            fn observe(&self, h: crate::metrics::Histogram, v: u64) {
                self.0.observe(h, v)
            }
        }
        let second = Second(&fake, Cell::new(false));
        assert_eq!(c.claim(&second, &h(8), 1_000, 0, 1), Claim::Seen, "the later write (tag 9) holds the bucket");
        assert_eq!(c.claim(&fake, &h(8), 1_000, 0, 2), Claim::Seen);
    }

    #[test]
    fn a_claim_that_read_its_bucket_missing_never_overwrites_one_made_since() {
        // Worker B read the bucket missing, then worker A recorded the same hash (and read it
        // back as its own); B's write must not replace A's bucket: B finds it seen.
        let fake = FakeHost::new(0);
        let c = SlotCache::new("s", 1);
        // A worker's view of shared data whose first read comes just before another worker's
        // write (`then`, run right after that read).
        struct AfterFirstRead<'a, F: Fn()>(&'a FakeHost, Cell<bool>, F);
        impl<F: Fn()> Host for AfterFirstRead<'_, F> {
            fn now_ms(&self) -> u64 {
                0
            }
            fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
                let got = self.0.shared_get(key);
                if !self.1.replace(true) {
                    (self.2)();
                }
                got
            }
            fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
                self.0.shared_set(key, value, cas)
            }
            fn count(&self, m: Metric) {
                self.0.count(m)
            }
            fn observe(&self, h: crate::metrics::Histogram, v: u64) {
                self.0.observe(h, v)
            }
        }
        // B's read: missing. A records the hash right after it.
        let stale = AfterFirstRead(&fake, Cell::new(false), || assert_eq!(c.claim(&fake, &h(3), 1_000, 0, 1), Claim::New));
        assert_eq!(c.claim(&stale, &h(3), 1_000, 0, 2), Claim::Seen, "one New for two workers");
        // A put that read the bucket missing keeps the entry made since, too.
        let fake = FakeHost::new(0);
        let c = SlotCache::new("p", WAYS); // one bucket, room for both
        c.put(&AfterFirstRead(&fake, Cell::new(false), || c.put(&fake, &h(4), 1_000, b"a", 0)), &h(5), 1_000, b"b", 0);
        assert!(c.get(&fake, &h(4), 0).is_some() && c.get(&fake, &h(5), 0).is_some());
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
        assert!(host.shared_len() <= 64 / WAYS as usize, "{} keys", host.shared_len());
        assert!(entries_held(&host) <= 64, "{} entries", entries_held(&host));
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
