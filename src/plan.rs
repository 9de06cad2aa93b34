//! The header plan: what changes on the way upstream. Every stripped header is removed first
//! (spoofable identity headers, their underscore spellings, the forward header), then the
//! verified claims and the credential for the next hop are set.
//!
//! A header the plan sets is not removed first: proxy-wasm's replace drops every client copy
//! (checked with bench/noop on Envoy 1.36.2 and 1.40.0, the oldest and newest on PyPI: three
//! spoofed `x-user-sub`, two spellings, in; one out), and a second spoofed copy never survives
//! (tested end to end on both). A stripped header the plan does not set (a claim this token
//! lacks) is removed. That saves one host call per set header on every request.

use crate::config::Config;
use std::rc::Rc;

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
pub fn forwarded(cfg: &Config, claims: &[(String, String)]) -> HeaderPlan {
    HeaderPlan { remove: stripped_but(cfg, claims, 0), set: claims.to_vec() }
}

/// Forwarded plans kept this many at a time (per VM).
const FORWARD_SLOTS: usize = 64;

/// The forwarded plans of the tokens seen last on this VM, found by their claim headers'
/// allocation (`Verified::set`, which every copy of one verification result shares): a hot
/// request on a shared-token route builds no plan and copies no header (each is a few hundred
/// instructions in V8, on every request). Direct-mapped; a slot holds the `set` its plan was
/// built from, so that allocation lives as long as the slot and its address names no other.
pub struct ForwardPlans {
    slots: Vec<Option<ForwardSlot>>,
}

/// The claim headers a plan was built from, and the plan.
type ForwardSlot = (Rc<[(String, String)]>, Rc<HeaderPlan>);

impl Default for ForwardPlans {
    fn default() -> Self {
        ForwardPlans { slots: (0..FORWARD_SLOTS).map(|_| None).collect() }
    }
}

impl ForwardPlans {
    /// `forwarded(cfg, set)`, built once per verification result held.
    pub fn get(&mut self, cfg: &Config, set: &Rc<[(String, String)]>) -> Rc<HeaderPlan> {
        let i = (Rc::as_ptr(set) as *const u8 as usize >> 3) % FORWARD_SLOTS;
        if let Some(Some((s, plan))) = self.slots.get(i) {
            if Rc::ptr_eq(s, set) {
                return plan.clone();
            }
        }
        let plan = Rc::new(forwarded(cfg, set));
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Some((set.clone(), plan.clone()));
        }
        plan
    }
}

/// The stripped headers but those in `set` (the set replaces every copy; module doc), with
/// room for `more`: built once at its size, without copying what is left out (this runs on
/// every request).
fn stripped_but(cfg: &Config, set: &[(String, String)], more: usize) -> Vec<String> {
    let mut remove = Vec::with_capacity(cfg.forward.strip_headers.len() + more);
    remove.extend(cfg.forward.strip_headers.iter().filter(|r| !set.iter().any(|(k, _)| k == *r)).cloned());
    remove
}

/// The client's token is replaced by `token` (in `forward.header`): `removal` takes it out of
/// every source it came in (where that source is `forward.header` itself, the set replaces it).
pub fn replaced(cfg: &Config, removal: &HeaderPlan, claims: &[(String, String)], token: &str) -> HeaderPlan {
    let h = &cfg.forward.header;
    // One allocation of the right size (this runs on every cached exchanged or minted request).
    let scheme = scheme(h);
    let mut value = String::with_capacity(scheme.len() + token.len());
    value.push_str(scheme);
    value.push_str(token);
    let mut set = Vec::with_capacity(claims.len() + 1 + removal.set.len());
    set.extend_from_slice(claims);
    set.push((h.clone(), value));
    // The stripped headers but those the set replaces; then the token's sources: a source header
    // that is `forward.header` itself holds one value (two copies are a 400 before this), which
    // the set replaces; a cookie or `:path` is rewritten.
    let mut remove = stripped_but(cfg, &set, removal.remove.len());
    remove.extend(removal.remove.iter().filter(|r| *r != h).cloned());
    set.extend(removal.set.iter().cloned());
    HeaderPlan { remove, set }
}

/// What precedes the replacing token in `header`.
fn scheme(header: &str) -> &'static str {
    if header == "authorization" {
        "Bearer "
    } else {
        ""
    }
}

/// Whether `plan` (made by `replaced`) forwards `token` as the client's replacement.
pub fn carries(cfg: &Config, plan: &HeaderPlan, token: &str) -> bool {
    let h = &cfg.forward.header;
    plan.set.iter().any(|(k, v)| k == h && v.strip_prefix(scheme(h)) == Some(token))
}

/// `plan` with `value` in `header` as well (replacing any copy, so not removed).
pub fn also_set(mut plan: HeaderPlan, header: &str, value: String) -> HeaderPlan {
    plan.remove.retain(|r| r != header);
    plan.set.push((header.to_owned(), value));
    plan
}

/// The verified claims and `value` in `header` (a Txn-Token); with `removal`, the client's token
/// is taken out of every source it came in.
pub fn with_header(cfg: &Config, removal: Option<&HeaderPlan>, claims: &[(String, String)], header: &str, value: String) -> HeaderPlan {
    let mut set = claims.to_vec();
    set.push((header.to_owned(), value));
    let mut plan = HeaderPlan { remove: stripped_but(cfg, &set, 0), set };
    if let Some(r) = removal {
        plan.remove.extend(r.remove.iter().filter(|h| !plan.set.iter().any(|(k, _)| k == *h)).cloned());
        plan.set.extend(r.set.iter().cloned());
    }
    plan
}
