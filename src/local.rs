//! A small per-VM (per-worker) front for the shared-data caches. Proxy-wasm shared data is the
//! cache all workers share, but every read of it is a host call that copies the value into the
//! VM; a token seen a moment ago on this worker is answered from here with no host call and no
//! SHA-256.
//!
//! Direct-mapped, `slots` entries (a collision replaces the older entry), so memory is bounded:
//! each entry holds the token itself (compared byte for byte: a hash alone never vouches for a
//! token), what its verification produced, and the tokens it was exchanged for per route. An
//! entry never outlives what the shared caches would serve: its expiry is the one the shared
//! entry got (`min(exp, now + max_ttl)`), and an exchanged token's the one its shared entry got.

use crate::flow::Verified;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// Tokens longer than this are not kept here (the shared caches still serve them).
pub const MAX_TOKEN: usize = 4096;
/// Exchanged tokens kept per subject token (one per route that exchanges it).
const MAX_EXCHANGED: usize = 8;

struct Exchanged {
    route: usize,
    token: String,
    until_ms: u64,
}

struct Entry {
    token: Box<str>,
    until_ms: u64,
    verified: Verified,
    exchanged: Vec<Exchanged>,
}

pub struct LocalCache {
    slots: Vec<Option<Entry>>,
    hasher: RandomState,
}

impl LocalCache {
    /// `slots` = 0 disables it.
    pub fn new(slots: usize) -> LocalCache {
        LocalCache { slots: (0..slots).map(|_| None).collect(), hasher: RandomState::new() }
    }

    fn index(&self, token: &str) -> Option<usize> {
        if self.slots.is_empty() || token.len() > MAX_TOKEN {
            return None;
        }
        Some((self.hasher.hash_one(token.as_bytes()) % self.slots.len() as u64) as usize)
    }

    fn entry(&self, token: &str, now_ms: u64) -> Option<&Entry> {
        let e = self.slots.get(self.index(token)?)?.as_ref()?;
        (now_ms < e.until_ms && &*e.token == token).then_some(e)
    }

    /// What verifying `token` produced, if kept here and not expired at `now_ms`.
    pub fn verified(&self, token: &str, now_ms: u64) -> Option<&Verified> {
        self.entry(token, now_ms).map(|e| &e.verified)
    }

    /// Keeps `token`'s verification result until `until_ms` (replacing whatever held its slot).
    pub fn put_verified(&mut self, token: &str, until_ms: u64, verified: &Verified) {
        let Some(i) = self.index(token) else { return };
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Some(Entry { token: token.into(), until_ms, verified: verified.clone(), exchanged: Vec::new() });
        }
    }

    /// The token `token` was exchanged for on `route`, if kept here and not expired.
    pub fn exchanged(&self, token: &str, route: usize, now_ms: u64) -> Option<&str> {
        let e = self.entry(token, now_ms)?;
        e.exchanged.iter().find(|x| x.route == route && now_ms < x.until_ms).map(|x| x.token.as_str())
    }

    /// Keeps the token `token` was exchanged for on `route`, until `until_ms`; only next to a
    /// live verification result for `token` (an exchange is never served for an unverified token).
    pub fn put_exchanged(&mut self, token: &str, route: usize, issued: &str, until_ms: u64, now_ms: u64) {
        let Some(i) = self.index(token) else { return };
        let Some(Some(e)) = self.slots.get_mut(i) else { return };
        if &*e.token != token || now_ms >= e.until_ms {
            return;
        }
        e.exchanged.retain(|x| x.route != route && now_ms < x.until_ms);
        if e.exchanged.len() >= MAX_EXCHANGED {
            e.exchanged.remove(0);
        }
        e.exchanged.push(Exchanged { route, token: issued.to_owned(), until_ms });
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
        Verified { provider: 0, key_fp: 7, inner_key: None, exp_ms: 9_000, scopes: vec!["read".into()], set: vec![("x-user-sub".into(), sub.into())], carry: String::new(), cnf: None }
    }

    #[test]
    fn serves_only_the_same_token_until_its_expiry() {
        let mut c = LocalCache::new(64);
        c.put_verified("tok-a", 5_000, &v("a"));
        assert_eq!(c.verified("tok-a", 4_999), Some(&v("a")));
        assert_eq!(c.verified("tok-a", 5_000), None, "never past the expiry it was given");
        assert_eq!(c.verified("tok-b", 1_000), None);
        assert_eq!(c.verified("tok-", 1_000), None);
    }

    #[test]
    fn bounded_and_never_confuses_tokens() {
        let mut c = LocalCache::new(16);
        for i in 0..1000 {
            c.put_verified(&format!("token-{i}"), 10_000, &v(&i.to_string()));
        }
        assert!(c.entries() <= 16);
        for i in 0..1000 {
            if let Some(got) = c.verified(&format!("token-{i}"), 1) {
                assert_eq!(got, &v(&i.to_string()));
            }
        }
    }

    #[test]
    fn exchanged_tokens_live_with_their_subject_and_route() {
        let mut c = LocalCache::new(8);
        c.put_exchanged("s", 0, "orphan", 9_000, 0);
        assert_eq!(c.exchanged("s", 0, 1), None, "no exchanged token without a verified subject");
        c.put_verified("s", 5_000, &v("s"));
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
        c.put_verified("s", 6_000, &v("s"));
        assert_eq!(c.exchanged("s", 1, 1), None);
    }

    #[test]
    fn disabled_and_oversized() {
        let mut c = LocalCache::new(0);
        c.put_verified("t", 5_000, &v("t"));
        assert_eq!(c.verified("t", 1), None);
        let mut c = LocalCache::new(4);
        let big = "x".repeat(MAX_TOKEN + 1);
        c.put_verified(&big, 5_000, &v("t"));
        assert_eq!(c.verified(&big, 1), None);
    }
}
