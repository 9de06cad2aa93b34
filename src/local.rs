//! A small per-VM (per-worker) front for the shared-data caches. Proxy-wasm shared data is the
//! cache all workers share, but every read of it is a host call that copies the value into the
//! VM; a token seen a moment ago on this worker is answered from here with no host call and no
//! hash of the whole token.
//!
//! Direct-mapped, `slots` entries (a collision replaces the older entry), so memory is bounded:
//! each entry holds the token itself (compared byte for byte: a hash alone never vouches for a
//! token), what its verification produced, and the tokens it was exchanged for per route. An
//! entry never outlives what the shared caches would serve: its expiry is the one the shared
//! entry got (`min(exp, now + max_ttl)`), and an exchanged token's the one its shared entry got.
//! A token forwarded as it came also keeps the plan that decision made (`forwarded`), next to
//! the very verification result it was made from: the next request with it on that route is
//! answered without deciding again; so does a token exchanged or minted for a route, with the
//! plan that replaced the client's token with it (`replaced_in`).
//!
//! A token found in shared data takes a free or expired slot at once, but replaces a live entry
//! only on its second sighting there (`admit`): tokens that each come once in a while (a
//! population larger than the front) neither evict those in use nor churn an entry per request.

use crate::flow::{HeaderPlan, Verified};
use std::rc::Rc;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// Tokens longer than this are not kept here (the shared caches still serve them).
pub const MAX_TOKEN: usize = 4096;
/// How many of a token's last bytes pick its slot.
const INDEX_BYTES: usize = 24;
/// Exchanged tokens kept per subject token (one per route that exchanges it).
const MAX_EXCHANGED: usize = 8;

struct Exchanged {
    route: usize,
    token: String,
    until_ms: u64,
    /// The plan that replaced the client's token with this one, for a token from these
    /// sources (`Pending::sources`): `replaced_in`.
    plan: Option<(u32, Rc<HeaderPlan>)>,
}

struct Entry {
    /// Shared with the requests that present it (`known`): a hot request copies no token.
    token: Rc<str>,
    /// `LocalCache::hash` of `token`: another token in this slot (in a population larger than
    /// the front, most lookups) is told apart by it without reading either token.
    hash: u64,
    until_ms: u64,
    verified: Verified,
    exchanged: Vec<Exchanged>,
    /// The route (`None`: no route matched) the token was last forwarded on, and the plan.
    forward: Option<(Option<usize>, Rc<HeaderPlan>)>,
}

/// Where `known` found a token: a hint for `forwarded_in`, never trusted without the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(usize);

pub struct LocalCache {
    slots: Vec<Option<Entry>>,
    /// Per slot, a tag of the last token found in shared data that was not kept (`admit`; 0:
    /// none).
    seen: Vec<u32>,
    /// Random per VM: which slot a token gets is not known outside it.
    seed: u64,
}

/// `a == b`, eight bytes at a time (wasm's `memcmp` goes byte by byte, and every request
/// compares its whole header's token with the one kept here, in `known`; `verified` then knows
/// the kept token by its address, which the request holds, so it cannot be another's), and
/// without stopping at the first difference: how long a comparison takes says nothing of how
/// much of a kept token a presented one shares (the hot case, equal tokens, reads all anyway).
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = ca.remainder().iter().zip(cb.remainder()).fold(0u8, |d, (x, y)| d | (x ^ y));
    let word = |c: &[u8]| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
    ca.zip(cb).fold(tail as u64, |d, (x, y)| d | (word(x) ^ word(y))) == 0
}

/// Whether `e` holds the token whose `LocalCache::hash` is `h`: compared in full, but only
/// where the hashes agree (equal-length tokens of one issuer in one slot, most of a population
/// larger than the front, then cost no read of either). That tells a client nothing of a kept
/// token's bytes: the hash is mixed with the VM's random seed.
fn holds(e: &Entry, h: u64, token: &[u8]) -> bool {
    e.hash == h && same(e.token.as_bytes(), token)
}

impl LocalCache {
    /// `slots` = 0 disables it.
    pub fn new(slots: usize) -> LocalCache {
        LocalCache { slots: (0..slots).map(|_| None).collect(), seen: vec![0; slots], seed: RandomState::new().hash_one(0x7465_6600u64) }
    }

    /// Whether a token found in shared data (verified by another worker, or here a while ago) is
    /// to be kept here: at once where its slot is free (empty, or its entry expired at
    /// `now_ms`), and otherwise on its second sighting with no other such token seen in that
    /// slot in between (TinyLFU's doorkeeper). A token that comes once, as each of a population
    /// larger than the front does, then neither evicts a token in use nor costs an entry's
    /// making and unmaking; one in use is kept from its second request on this worker.
    pub fn admit(&mut self, token: &[u8], now_ms: u64) -> bool {
        let Some((i, h)) = self.index(token) else { return false };
        // The hash's high half (the slot takes its low bits), never 0.
        let tag = (h >> 32) as u32 | 1;
        if self.slots.get(i).is_some_and(|e| e.as_ref().is_none_or(|e| e.until_ms <= now_ms)) {
            return true;
        }
        match self.seen.get_mut(i) {
            Some(t) if *t == tag => true,
            Some(t) => {
                *t = tag;
                false
            }
            None => false,
        }
    }

    /// `token`'s slot and its hash.
    fn index(&self, token: &[u8]) -> Option<(usize, u64)> {
        self.hash(token).map(|h| ((h % self.slots.len() as u64) as usize, h))
    }

    fn hash(&self, token: &[u8]) -> Option<u64> {
        if self.slots.is_empty() || token.len() > MAX_TOKEN {
            return None;
        }
        // The slot comes from the token's last bytes and its length, mixed with this VM's random
        // seed: a JWT ends in its signature and an opaque token is random throughout, so those
        // spread tokens as well as hashing the whole would, at a fraction of the work (this runs
        // up to three times per request). Only verified tokens are kept, whose signatures no
        // client chooses, and a slot is only ever served to the very same token (compared in
        // full): a collision costs a miss, never a wrong answer.
        let b = token;
        let tail = &b[b.len().saturating_sub(INDEX_BYTES)..];
        let mut h = self.seed ^ b.len() as u64;
        let mut mix = |w: u64| {
            h = (h ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            h ^= h >> 29;
        };
        // Whole words read in place (a copy of each into a buffer was a `memcpy` call apiece).
        let words = tail.chunks_exact(8);
        let rest = words.remainder();
        for c in words {
            mix(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        }
        if !rest.is_empty() {
            mix(rest.iter().rev().fold(0u64, |w, b| (w << 8) | u64::from(*b)));
        }
        Some(h)
    }

    /// `entry`, from `slot` first where `known` handed out the very allocation `token` is (then
    /// nothing is hashed or compared: it is the kept token); anything else, as `entry`.
    fn entry_in(&self, slot: Option<Slot>, token: &[u8], now_ms: u64) -> Option<&Entry> {
        if let Some(Some(e)) = slot.and_then(|Slot(i)| self.slots.get(i)) {
            if std::ptr::eq(e.token.as_ptr(), token.as_ptr()) && e.token.len() == token.len() {
                return (now_ms < e.until_ms).then_some(e);
            }
        }
        self.entry(token, now_ms)
    }

    fn entry(&self, token: &[u8], now_ms: u64) -> Option<&Entry> {
        let (i, h) = self.index(token)?;
        let e = self.slots.get(i)?.as_ref()?;
        // The kept allocation itself (the request holds it from `known`): equal without reading it.
        let kept = std::ptr::eq(e.token.as_ptr(), token.as_ptr()) && e.token.len() == token.len();
        (now_ms < e.until_ms && (kept || holds(e, h, token))).then_some(e)
    }

    /// The token kept here, verified, at `now_ms`, that is byte for byte `token`, and its slot.
    /// Shared, not copied: `verified` then knows it by its address, `forwarded_in` by its slot.
    pub fn known(&self, token: &[u8], now_ms: u64) -> Option<(Rc<str>, Slot)> {
        let (i, h) = self.index(token)?;
        let e = self.slots.get(i)?.as_ref()?;
        (now_ms < e.until_ms && holds(e, h, token)).then(|| (e.token.clone(), Slot(i)))
    }

    /// What verifying `token` produced, if kept here and not expired at `now_ms`.
    pub fn verified(&self, token: &str, now_ms: u64) -> Option<&Verified> {
        self.entry(token.as_bytes(), now_ms).map(|e| &e.verified)
    }

    /// Keeps `token`'s verification result until `until_ms` (replacing whatever held its slot).
    /// The request's own token is kept (no copy of it: the request holds it from extraction).
    pub fn put_verified(&mut self, token: Rc<str>, until_ms: u64, verified: &Verified) {
        let Some((i, hash)) = self.index(token.as_bytes()) else { return };
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Some(Entry { token, hash, until_ms, verified: verified.clone(), exchanged: Vec::new(), forward: None });
        }
    }

    /// The plan `put_forwarded` kept for `token` on `route`, with the verification result it
    /// was made from, if kept here and not expired at `now_ms`.
    pub fn forwarded(&self, token: &str, route: Option<usize>, now_ms: u64) -> Option<(&Verified, &Rc<HeaderPlan>)> {
        self.forwarded_in(None, token, route, now_ms)
    }

    /// `forwarded`, looked up in `slot` first (where `known` found `token`).
    pub fn forwarded_in(&self, slot: Option<Slot>, token: &str, route: Option<usize>, now_ms: u64) -> Option<(&Verified, &Rc<HeaderPlan>)> {
        let e = self.entry_in(slot, token.as_bytes(), now_ms)?;
        let (r, plan) = e.forward.as_ref()?;
        (*r == route).then_some((&e.verified, plan))
    }

    /// Keeps `plan`, what forwarding `token` on `route` decided from the verification result
    /// whose claim headers are `set`: only next to that very result (the allocation of its `set`,
    /// which a result verified again does not share), so the plan never outlives what it was
    /// made from.
    pub fn put_forwarded(&mut self, token: &str, route: Option<usize>, set: &Rc<[(String, String)]>, plan: &Rc<HeaderPlan>, now_ms: u64) {
        if let Some(e) = self.result_mut(token, set, now_ms) {
            e.forward = Some((route, plan.clone()));
        }
    }

    /// `token`'s entry, live at `now_ms`, if it holds the very verification result whose claim
    /// headers are `set`: where a plan made from that result may be kept.
    fn result_mut(&mut self, token: &str, set: &Rc<[(String, String)]>, now_ms: u64) -> Option<&mut Entry> {
        let (i, h) = self.index(token.as_bytes())?;
        let e = self.slots.get_mut(i)?.as_mut()?;
        (now_ms < e.until_ms && Rc::ptr_eq(&e.verified.set, set) && holds(e, h, token.as_bytes())).then_some(e)
    }

    /// The token `token` was exchanged for on `route`, if kept here and not expired.
    pub fn exchanged(&self, token: &str, route: usize, now_ms: u64) -> Option<&str> {
        let e = self.entry(token.as_bytes(), now_ms)?;
        e.exchanged.iter().find(|x| x.route == route && now_ms < x.until_ms).map(|x| x.token.as_str())
    }

    /// Keeps the token `token` was exchanged for on `route`, until `until_ms`; only next to a
    /// live verification result for `token` (an exchange is never served for an unverified token).
    pub fn put_exchanged(&mut self, token: &str, route: usize, issued: &str, until_ms: u64, now_ms: u64) {
        let Some((i, h)) = self.index(token.as_bytes()) else { return };
        let Some(Some(e)) = self.slots.get_mut(i) else { return };
        if !holds(e, h, token.as_bytes()) || now_ms >= e.until_ms {
            return;
        }
        e.exchanged.retain(|x| x.route != route && now_ms < x.until_ms);
        if e.exchanged.len() >= MAX_EXCHANGED {
            e.exchanged.remove(0);
        }
        e.exchanged.push(Exchanged { route, token: issued.to_owned(), until_ms, plan: None });
    }

    /// The plan `put_replaced` kept for `token` on `route` (the token it was exchanged for or
    /// minted there, and the client's taken from `sources`), with the verification result it was
    /// made from, while both are kept here and live at `now_ms`. `slot`: as `forwarded_in`.
    pub fn replaced_in(&self, slot: Option<Slot>, token: &str, route: usize, sources: u32, now_ms: u64) -> Option<(&Verified, &Rc<HeaderPlan>)> {
        let e = self.entry_in(slot, token.as_bytes(), now_ms)?;
        let x = e.exchanged.iter().find(|x| x.route == route && now_ms < x.until_ms)?;
        let (s, plan) = x.plan.as_ref()?;
        (*s == sources).then_some((&e.verified, plan))
    }

    /// Keeps `plan`, what a request with `token` (from `sources`) on `route` was allowed with,
    /// next to the token kept here for that route, if `carries` says the plan forwards that very
    /// token, and only next to the verification result whose claim headers are `set` (as
    /// `put_forwarded`).
    #[allow(clippy::too_many_arguments)]
    pub fn put_replaced(&mut self, token: &str, route: usize, sources: u32, set: &Rc<[(String, String)]>, plan: &Rc<HeaderPlan>, now_ms: u64, carries: &dyn Fn(&str) -> bool) {
        let Some(e) = self.result_mut(token, set, now_ms) else { return };
        if let Some(x) = e.exchanged.iter_mut().find(|x| x.route == route && now_ms < x.until_ms) {
            if carries(&x.token) {
                x.plan = Some((sources, plan.clone()));
            }
        }
    }

    /// Entries held.
    #[cfg(test)]
    pub fn entries(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(sub: &str) -> Verified {
        Verified { provider: 0, key_fp: 7, inner_key: None, exp_ms: 9_000, scopes: vec!["read".to_string()].into(), set: vec![("x-user-sub".into(), sub.into())].into(), carry: "".into(), cnf: None }
    }

    #[test]
    fn serves_only_the_same_token_until_its_expiry() {
        let mut c = LocalCache::new(64);
        c.put_verified("tok-a".into(), 5_000, &v("a"));
        assert_eq!(c.verified("tok-a", 4_999), Some(&v("a")));
        assert_eq!(c.verified("tok-a", 5_000), None, "never past the expiry it was given");
        assert_eq!(c.verified("tok-b", 1_000), None);
        assert_eq!(c.verified("tok-", 1_000), None);
    }

    #[test]
    fn bounded_and_never_confuses_tokens() {
        let mut c = LocalCache::new(16);
        for i in 0..1000 {
            c.put_verified(format!("token-{i}").into(), 10_000, &v(&i.to_string()));
        }
        assert!(c.entries() <= 16);
        for i in 0..1000 {
            if let Some(got) = c.verified(&format!("token-{i}"), 1) {
                assert_eq!(got, &v(&i.to_string()));
            }
        }
    }

    #[test]
    fn tokens_that_share_their_tail_share_a_slot_and_are_never_confused() {
        let mut c = LocalCache::new(64);
        let tok = |i: usize| format!("{i:04}.{}", "t".repeat(40));
        for i in 0..10 {
            c.put_verified(tok(i).into(), 10_000, &v(&i.to_string()));
        }
        assert_eq!(c.entries(), 1, "the same length and last bytes: one slot");
        assert_eq!(c.verified(&tok(9), 1), Some(&v("9")));
        for i in 0..9 {
            assert_eq!(c.verified(&tok(i), 1), None, "{i}: never another token's entry");
        }
    }

    #[test]
    fn a_kept_token_is_shared_and_known_by_its_address_only_while_it_is_the_kept_one() {
        let mut c = LocalCache::new(1);
        c.put_verified("tok-a".into(), 5_000, &v("a"));
        let (held, _) = c.known(b"tok-a", 1).expect("kept");
        assert_eq!(&*held, "tok-a");
        assert_eq!(c.verified(&held, 1), Some(&v("a")));
        assert_eq!(c.verified(&held, 5_000), None, "the address never extends the expiry");
        // The one slot now holds another token: the held copy is not it, whatever its address.
        c.put_verified("tok-b".into(), 5_000, &v("b"));
        assert_eq!(c.verified(&held, 1), None);
        assert_eq!(c.known(b"tok-a", 1), None);
        // Kept again (a new allocation): found by its bytes.
        c.put_verified("tok-a".into(), 5_000, &v("a2"));
        assert_eq!(c.verified(&held, 1), Some(&v("a2")));
    }

    #[test]
    fn exchanged_tokens_live_with_their_subject_and_route() {
        let mut c = LocalCache::new(8);
        c.put_exchanged("s", 0, "orphan", 9_000, 0);
        assert_eq!(c.exchanged("s", 0, 1), None, "no exchanged token without a verified subject");
        c.put_verified("s".into(), 5_000, &v("s"));
        c.put_exchanged("s", 0, "for-orders", 3_000, 0);
        c.put_exchanged("s", 1, "for-billing", 9_000, 0);
        assert_eq!(c.exchanged("s", 0, 2_999), Some("for-orders"));
        assert_eq!(c.exchanged("s", 0, 3_000), None, "never past the exchanged token's own expiry");
        assert_eq!(c.exchanged("s", 1, 4_999), Some("for-billing"));
        assert_eq!(c.exchanged("s", 1, 5_000), None, "nor past the subject's");
        assert_eq!(c.exchanged("s", 2, 1), None);
        c.put_exchanged("s", 0, "newer", 4_000, 10);
        assert_eq!(c.exchanged("s", 0, 3_500), Some("newer"));
        // A new verification of the same token keeps nothing it should not.
        c.put_verified("s".into(), 6_000, &v("s"));
        assert_eq!(c.exchanged("s", 1, 1), None);
    }

    #[test]
    fn a_slot_from_known_finds_only_that_kept_token() {
        let mut c = LocalCache::new(64);
        let plan = Rc::new(HeaderPlan::default());
        let (va, vb) = (v("a"), v("b"));
        c.put_verified("tok-a".into(), 5_000, &va);
        c.put_forwarded("tok-a", None, &va.set, &plan, 0);
        c.put_verified("tok-b".into(), 5_000, &vb);
        c.put_forwarded("tok-b", None, &vb.set, &plan, 0);
        let (ka, sa) = c.known(b"tok-a", 1).expect("kept");
        assert_eq!(&*ka, "tok-a");
        assert_eq!(c.forwarded_in(Some(sa), &ka, None, 1).map(|x| x.0), Some(&va));
        assert!(c.forwarded_in(Some(sa), &ka, None, 5_000).is_none(), "never past the expiry");
        // Another token with a's slot (or equal bytes in another allocation): looked up as
        // itself, never served a's entry.
        let (kb, sb) = c.known(b"tok-b", 1).expect("kept");
        assert_eq!(c.forwarded_in(Some(sa), &kb, None, 1).map(|x| x.0), Some(&vb));
        assert_eq!(c.forwarded_in(Some(sb), "tok-a", None, 1).map(|x| x.0), Some(&va));
        assert!(c.forwarded_in(Some(sa), "tok-c", None, 1).is_none());
        assert!(c.forwarded_in(Some(Slot(1_000)), &ka, None, 1).is_some(), "a slot out of range is no hit by itself");
        // The slot's entry replaced: the hint finds the new one's token, not the old handout.
        c.put_verified("tok-a".into(), 9_000, &v("a2"));
        assert!(c.forwarded_in(Some(sa), &ka, None, 1).is_none(), "a new verification keeps no plan");
        assert!(c.known(b"tok-a", 9_000).is_none());
    }

    #[test]
    fn a_forwarded_plan_lives_with_the_result_it_was_made_from_and_its_route() {
        let mut c = LocalCache::new(8);
        let plan = Rc::new(HeaderPlan::new(vec!["x-user-sub".into()], vec![("x-user-sub".into(), "a".into())]));
        let va = v("a");
        c.put_forwarded("tok-a", None, &va.set, &plan, 0);
        assert!(c.forwarded("tok-a", None, 1).is_none(), "no plan without a verified token");
        c.put_verified("tok-a".into(), 5_000, &va);
        // Another result's claims (equal in value, not the kept one): not kept.
        c.put_forwarded("tok-a", None, &v("a").set, &plan, 0);
        assert!(c.forwarded("tok-a", None, 1).is_none());
        c.put_forwarded("tok-a", Some(2), &va.set, &plan, 0);
        let (got, p) = c.forwarded("tok-a", Some(2), 1).expect("kept");
        assert_eq!((got, &**p), (&va, &*plan));
        assert!(c.forwarded("tok-a", None, 1).is_none(), "only on the route it was made for");
        assert!(c.forwarded("tok-a", Some(1), 1).is_none());
        assert!(c.forwarded("tok-a", Some(2), 5_000).is_none(), "never past the token's expiry");
        assert!(c.forwarded("tok-b", Some(2), 1).is_none());
        // Verified again: the plan made from the old result goes.
        c.put_verified("tok-a".into(), 6_000, &va);
        assert!(c.forwarded("tok-a", Some(2), 1).is_none());
        c.put_forwarded("tok-a", Some(2), &va.set, &plan, 5_500);
        assert!(c.forwarded("tok-a", Some(2), 5_600).is_some());
        c.put_verified("tok-a".into(), 6_000, &va);
        c.put_forwarded("tok-a", Some(2), &va.set, &plan, 6_000);
        assert!(c.forwarded("tok-a", Some(2), 1).is_none(), "not kept once expired");
    }

    #[test]
    fn a_replacing_plan_lives_with_its_exchanged_token_its_result_its_route_and_its_sources() {
        let mut c = LocalCache::new(8);
        let plan = Rc::new(HeaderPlan::new(vec![], vec![("authorization".into(), "Bearer ex-1".into())]));
        let va = v("a");
        let yes = |t: &str| t == "ex-1";
        c.put_verified("tok-a".into(), 5_000, &va);
        c.put_replaced("tok-a", 2, 1, &va.set, &plan, 0, &yes);
        assert!(c.replaced_in(None, "tok-a", 2, 1, 1).is_none(), "no plan without an exchanged token");
        c.put_exchanged("tok-a", 2, "ex-1", 3_000, 0);
        // Another result's claims (equal in value), a plan for another token: not kept.
        c.put_replaced("tok-a", 2, 1, &v("a").set, &plan, 0, &yes);
        c.put_replaced("tok-a", 2, 1, &va.set, &plan, 0, &|t| t == "ex-0");
        assert!(c.replaced_in(None, "tok-a", 2, 1, 1).is_none());
        c.put_replaced("tok-a", 2, 1, &va.set, &plan, 0, &yes);
        let (got, p) = c.replaced_in(None, "tok-a", 2, 1, 1).expect("kept");
        assert_eq!((got, &**p), (&va, &*plan));
        assert!(c.replaced_in(None, "tok-a", 1, 1, 1).is_none(), "only on its route");
        assert!(c.replaced_in(None, "tok-a", 2, 2, 1).is_none(), "only for the same sources");
        assert!(c.replaced_in(None, "tok-b", 2, 1, 1).is_none());
        assert!(c.replaced_in(None, "tok-a", 2, 1, 3_000).is_none(), "never past the exchanged token's life");
        // A new exchanged token for the route: the plan made for the old one goes with it.
        c.put_exchanged("tok-a", 2, "ex-2", 4_000, 1);
        assert!(c.replaced_in(None, "tok-a", 2, 1, 2).is_none());
        // Verified again: everything kept next to the old result goes.
        c.put_exchanged("tok-a", 2, "ex-1", 4_000, 1);
        c.put_replaced("tok-a", 2, 1, &va.set, &plan, 1, &yes);
        assert!(c.replaced_in(None, "tok-a", 2, 1, 2).is_some());
        c.put_verified("tok-a".into(), 6_000, &va);
        assert!(c.replaced_in(None, "tok-a", 2, 1, 2).is_none());
    }

    #[test]
    fn same_is_equality() {
        let t = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln";
        for n in 0..t.len() {
            let (a, b) = (&t[..n], t[..n].to_vec());
            assert!(same(a, &b), "{n}");
            for i in 0..n {
                let mut c = b.clone();
                c[i] ^= 1;
                assert!(!same(a, &c), "{n} {i}");
            }
            assert!(!same(a, &t[..n + 1]));
        }
    }

    #[test]
    fn disabled_and_oversized() {
        let mut c = LocalCache::new(0);
        c.put_verified("t".into(), 5_000, &v("t"));
        assert_eq!(c.verified("t", 1), None);
        let mut c = LocalCache::new(4);
        let big = "x".repeat(MAX_TOKEN + 1);
        c.put_verified(big.as_str().into(), 5_000, &v("t"));
        assert_eq!(c.verified(&big, 1), None);
    }
}
