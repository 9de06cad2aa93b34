//! Optional refusal of a Txn-Token `txn` seen before (`providers[].txn_token.refuse_replay`): a
//! sidecar that should see each call chain once records every `txn` in bounded shared data (all
//! workers) until its token expires, and refuses it on a later request. Off by default: a
//! service that fans out, retries, or is called twice in one chain legitimately sees one `txn`
//! on several requests.

use crate::authenticate::Verified;
use crate::cache::{Claim, SlotCache};
use crate::config::Config;
use crate::host::Host;
use crate::metrics::Deny;
use crate::reply::{self, Reply};
use sha2::{Digest, Sha256};
use std::hash::{BuildHasher, RandomState};

pub struct TxnReplay {
    /// Per provider with `refuse_replay`.
    seen: Vec<Option<SlotCache>>,
    seed: RandomState,
    counter: u64,
}

impl TxnReplay {
    pub fn new(cfg: &Config) -> TxnReplay {
        let ns = crate::keys::NAMESPACE;
        let seen = cfg
            .providers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let t = p.txn_token.as_ref().filter(|t| t.refuse_replay)?;
                Some(SlotCache::new_replay(&format!("{ns}/txn-seen/{i}"), t.replay_cache_entries))
            })
            .collect();
        TxnReplay { seen, seed: RandomState::new(), counter: 0 }
    }

    /// Records the token's `txn` (kept with the verified claims, as `carry`); refuses one seen.
    pub fn check(&mut self, cfg: &Config, v: &Verified, now: u64, host: &dyn Host) -> Result<(), (Deny, Reply)> {
        let Some(cache) = self.seen.get(v.provider).and_then(Option::as_ref) else { return Ok(()) };
        let carried = crate::jose::json::parse_object(v.carry.as_bytes()).unwrap_or_default();
        let Some(txn) = carried.get("txn").and_then(|t| t.as_str()) else {
            return Err((Deny::Claims, reply::invalid_token(&cfg.realm, "token lacks a required claim")));
        };
        let issuer = cfg.providers.get(v.provider).map_or("", |p| p.issuer.as_str());
        let mut h = Sha256::new();
        h.update(issuer.as_bytes());
        h.update([0u8]);
        h.update(txn.as_bytes());
        let hash: [u8; 32] = h.finalize().into();
        self.counter = self.counter.wrapping_add(1);
        let tag = self.seed.hash_one(self.counter);
        match cache.claim(host, &hash, v.exp_ms.max(now + 1), now, tag) {
            Claim::New => Ok(()),
            Claim::Seen => Err((Deny::TxnReplay, reply::invalid_token(&cfg.realm, "Txn-Token transaction seen before"))),
        }
    }
}
