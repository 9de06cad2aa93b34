//! The credential for the next hop, per route: the original token forwarded as it came (the
//! shared-token pattern; `plan::forwarded`), a token exchanged at the STS for the route's target
//! (`exchange`), one the filter signs itself (`mint`), or one the verified token carries for the
//! route's audience (`embedded`). Each further kind (mint, nested, embedded, Transaction Token) gets its
//! own file here.

pub mod embedded;
pub mod exchange;
pub mod mint;

use crate::config::Config;
use crate::singleflight::Key;
use sha2::{Digest, Sha256};

/// Which credential a cache key is for (keys of different kinds never collide).
#[derive(Clone, Copy)]
pub enum Kind {
    Exchange = 1,
    Mint = 2,
    Embedded = 3,
}

/// The cache key of a credential made from `token`: the configuration's fingerprint, the entry
/// layout's version, the kind, the token, then `parts` (lists of strings, unambiguously framed).
pub fn cache_key(cfg: &Config, kind: Kind, token: &str, parts: &[&[String]]) -> Key {
    let mut h = Sha256::new();
    h.update(cfg.fingerprint);
    h.update(crate::authenticate::ENTRY_VERSION);
    h.update([kind as u8]);
    h.update(token.as_bytes());
    for list in parts {
        h.update([0u8]);
        for v in list.iter() {
            h.update(v.as_bytes());
            h.update([0xffu8]);
        }
    }
    h.finalize().into()
}
