//! The header plan: what changes on the way upstream. Every stripped header is removed first
//! (spoofable identity headers, their underscore spellings, the forward header), then the
//! verified claims and the credential for the next hop are set.
//!
//! A header the plan sets is removed first all the same. In Envoy 1.40 proxy-wasm's replace
//! already drops every client copy (checked with bench/noop: two `x-user-sub` in, one out), but
//! Envoy's `HeaderMapImpl::setCopy` has replaced only the first of several values in other
//! releases, and a second spoofed copy must never survive (tested end to end). Skipping that
//! removal would save one host call per set header on 1.40 only.

use crate::config::Config;

/// Headers to change on the way upstream: every `remove` first, then every `set`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderPlan {
    pub remove: Vec<String>,
    pub set: Vec<(String, String)>,
}

/// Only the stripping: anonymous requests.
pub fn strip(cfg: &Config) -> HeaderPlan {
    HeaderPlan { remove: cfg.forward.strip_headers.clone(), set: Vec::new() }
}

/// The original token goes on as it came (shared-token routes), with the verified claims.
pub fn forwarded(cfg: &Config, claims: Vec<(String, String)>) -> HeaderPlan {
    HeaderPlan { set: claims, ..strip(cfg) }
}

/// The client's token is replaced by `token` (in `forward.header`): `removal` takes it out of
/// every source it came in. Where that source is `forward.header` itself, setting it replaces
/// the client's value and no removal is needed: a token source holds exactly one value by the
/// time a token is replaced (two copies are refused with 400 by the extractor), so nothing of
/// the client's can survive the set (one host call saved per replaced request).
pub fn replaced(cfg: &Config, removal: &HeaderPlan, claims: Vec<(String, String)>, token: &str) -> HeaderPlan {
    let h = &cfg.forward.header;
    let mut plan = strip(cfg);
    plan.remove.extend(removal.remove.iter().filter(|r| *r != h).cloned());
    plan.set = claims;
    plan.set.extend(removal.set.iter().cloned());
    let value = if h == "authorization" { format!("Bearer {token}") } else { token.to_owned() };
    plan.set.push((h.clone(), value));
    plan
}
