//! The credential for the next hop, per route: the original token forwarded as it came (the
//! shared-token pattern; `plan::forwarded`), a token exchanged at the STS for the route's target
//! (`exchange`), one the filter signs itself (`mint`), or one the verified token carries for the
//! route's audience (`embedded`), or a Transaction Token for the call chain (`txn_token`). Each
//! kind has its own file here.

pub mod embedded;
pub mod exchange;
pub mod mint;
pub mod txn_token;

use crate::authenticate::Authenticator;
use crate::cache::SlotCache;
use crate::config::Config;
use crate::host::Host;
use crate::jose::{jws, verify};
use crate::keys::{KeyState, Want};
use crate::local::LocalCache;
use crate::singleflight::Key;

/// Which credential a cache key is for (keys of different kinds never collide).
#[derive(Clone, Copy)]
pub enum Kind {
    Exchange = 1,
    Mint = 2,
    Embedded = 3,
}

/// The cache key of a credential made from `token`: keyed with the kind's own key
/// (`authenticate::hash_key`: the configuration, the entry layout, the kind), the token, then
/// `parts` (lists of strings, unambiguously framed).
pub fn cache_key(cfg: &Config, kind: Kind, token: &str, parts: &[&[String]]) -> Key {
    let mut h = blake3::Hasher::new_keyed(&cfg.hash_keys[kind as usize]);
    h.update(token.as_bytes());
    for list in parts {
        h.update(&[0u8]);
        for v in list.iter() {
            h.update(v.as_bytes());
            h.update(&[0xffu8]);
        }
    }
    h.finalize().into()
}

/// A credential kept in shared data under `key` (with the cache on); it then fills this
/// worker's front for `token` on `route`. (The front itself is asked first, by the caller,
/// before `key` is computed: a hot request hashes nothing.)
#[allow(clippy::too_many_arguments)]
pub fn from_shared(cfg: &Config, cache: &SlotCache, local: &mut LocalCache, token: &str, route: usize, key: &Key, now: u64, host: &dyn Host) -> Option<String> {
    if cfg.cache_max_ttl_ms == 0 {
        return None;
    }
    let (cred, until) = cache.get(host, key, now)?;
    let cred = String::from_utf8(cred).ok()?;
    local.put_exchanged(token, route, &cred, until, now);
    Some(cred)
}

/// Keeps a new credential until `until_ms` in shared data and this worker's front (with the
/// cache on, and only if it lives past now).
#[allow(clippy::too_many_arguments)]
pub fn keep(cfg: &Config, cache: &SlotCache, local: &mut LocalCache, token: &str, route: usize, key: &Key, cred: &str, until_ms: u64, now: u64, host: &dyn Host) {
    if cfg.cache_max_ttl_ms > 0 && until_ms > now {
        cache.put(host, key, until_ms, cred.as_bytes(), now);
        local.put_exchanged(token, route, cred, until_ms, now);
    }
}

/// An STS answer's JWT (an exchanged token, a Txn-Token) parsed and its signature verified with
/// the STS keys (`sts.jwks`, key source `providers.len()`); missing keys or an unknown `kid`
/// ask the keystore for them. The claims are the caller's to check.
pub fn verify_sts_signed<'a>(cfg: &Config, auth: &mut Authenticator, token: &'a str, host: &dyn Host) -> Result<jws::Jws<'a>, &'static str> {
    let jws = jws::parse(token, 16 * 1024).map_err(|e| e.description())?;
    let idx = cfg.providers.len();
    let keys = match auth.keys.state(idx, jws.kid.as_deref(), host) {
        KeyState::Ready(k) => k,
        KeyState::Missing => {
            auth.keys.want(idx, Want::FirstKeys);
            return Err("STS signing keys not loaded yet");
        }
        KeyState::UnknownKid(_) => {
            auth.keys.want(idx, Want::UnknownKid);
            return Err("issued token names an unknown STS key");
        }
    };
    verify::verify_with_keys(&keys, jws.alg, jws.kid.as_deref(), jws.signing_input, &jws.signature).map_err(|_| "issued token signature invalid")?;
    Ok(jws)
}
