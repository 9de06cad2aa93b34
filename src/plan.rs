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

/// Headers to change on the way upstream: every `remove` first, then every `set`. Both are
/// shared slices: a forwarded plan holds the verification result's own claim headers and the
/// configuration's stripped headers (`ForwardPlans`), so building one copies no header (a
/// shared-data hit builds one per request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderPlan {
    pub remove: Rc<[String]>,
    pub set: Rc<[(String, String)]>,
}

/// A plan's two lists.
type Lists = (Rc<[String]>, Rc<[(String, String)]>);

thread_local! {
    /// The empty lists every plan without removals or headers shares (`Rc<[T]>::default`
    /// allocates one per call, and every full decision starts from an empty removal plan).
    static EMPTY: Lists = (Rc::from(Vec::new()), Rc::from(Vec::new()));
}

impl Default for HeaderPlan {
    fn default() -> Self {
        EMPTY.with(|(remove, set)| HeaderPlan { remove: remove.clone(), set: set.clone() })
    }
}

impl HeaderPlan {
    /// A plan from lists built for it (an empty one shares the empty allocation).
    pub fn new(remove: Vec<String>, set: Vec<(String, String)>) -> HeaderPlan {
        let empty = HeaderPlan::default();
        HeaderPlan { remove: if remove.is_empty() { empty.remove } else { remove.into() }, set: if set.is_empty() { empty.set } else { set.into() } }
    }
}

/// Only the stripping: anonymous requests.
pub fn strip(cfg: &Config) -> HeaderPlan {
    HeaderPlan::new(cfg.forward.strip_headers.clone(), Vec::new())
}

/// The original token goes on as it came (shared-token routes), with the verified claims.
pub fn forwarded(cfg: &Config, claims: &Rc<[(String, String)]>) -> HeaderPlan {
    HeaderPlan { remove: HeaderPlan::new(stripped_but(cfg, claims, 0), Vec::new()).remove, set: claims.clone() }
}

/// Forwarded plans kept this many at a time (per VM).
const FORWARD_SLOTS: usize = 64;

/// The forwarded plans of the tokens seen last on this VM, found by their claim headers'
/// allocation (`Verified::set`, which every copy of one verification result shares): a hot
/// request on a shared-token route builds no plan and copies no header (each is a few hundred
/// instructions in V8, on every request). Direct-mapped; a slot holds the `set` its plan was
/// built from, so that allocation lives as long as the slot and its address names no other.
/// The stripped headers left to remove are shared too, one list per set of stripped headers a
/// plan sets (all tokens of one provider: one or two lists), for the one configuration of the
/// `Filter` that holds this.
pub struct ForwardPlans {
    slots: Vec<Option<ForwardSlot>>,
    /// (bit `i`: `strip_headers[i]` is set, the stripped headers but those).
    removes: Vec<(u64, Rc<[String]>)>,
}

/// Distinct removal lists kept (one per combination of claim headers present that occurs).
const REMOVE_LISTS: usize = 64;

/// The claim headers a plan was built from, and the plan.
type ForwardSlot = (Rc<[(String, String)]>, Rc<HeaderPlan>);

impl Default for ForwardPlans {
    fn default() -> Self {
        ForwardPlans { slots: (0..FORWARD_SLOTS).map(|_| None).collect(), removes: Vec::new() }
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
        // As `forwarded(cfg, set)`, its lists shared: no header copied.
        let plan = Rc::new(HeaderPlan { remove: self.removes_for(cfg, set), set: set.clone() });
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Some((set.clone(), plan.clone()));
        }
        plan
    }

    /// `stripped_but(cfg, set, 0)`, made once per combination of stripped headers `set` holds.
    fn removes_for(&mut self, cfg: &Config, set: &[(String, String)]) -> Rc<[String]> {
        let strip = &cfg.forward.strip_headers;
        let own = |set: &[(String, String)]| HeaderPlan::new(stripped_but(cfg, set, 0), Vec::new()).remove;
        if strip.len() > 64 {
            return own(set);
        }
        let mask = strip.iter().enumerate().filter(|(_, h)| set.iter().any(|(k, _)| crate::bytes::eq(k.as_bytes(), h.as_bytes()))).fold(0u64, |m, (i, _)| m | 1 << i);
        if let Some((_, r)) = self.removes.iter().find(|(m, _)| *m == mask) {
            return r.clone();
        }
        let r = own(set);
        if self.removes.len() < REMOVE_LISTS {
            self.removes.push((mask, r.clone()));
        }
        r
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
    HeaderPlan::new(remove, set)
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
pub fn also_set(plan: HeaderPlan, header: &str, value: String) -> HeaderPlan {
    let remove = plan.remove.iter().filter(|r| *r != header).cloned().collect();
    let mut set = plan.set.to_vec();
    set.push((header.to_owned(), value));
    HeaderPlan::new(remove, set)
}

/// The verified claims and `value` in `header` (a Txn-Token); with `removal`, the client's token
/// is taken out of every source it came in.
pub fn with_header(cfg: &Config, removal: Option<&HeaderPlan>, claims: &[(String, String)], header: &str, value: String) -> HeaderPlan {
    let mut set = claims.to_vec();
    set.push((header.to_owned(), value));
    let mut remove = stripped_but(cfg, &set, 0);
    if let Some(r) = removal {
        remove.extend(r.remove.iter().filter(|h| !set.iter().any(|(k, _)| k == *h)).cloned());
        set.extend(r.set.iter().cloned());
    }
    HeaderPlan::new(remove, set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        let v = serde_json::json!({
            "providers": [{"name": "p", "issuer": "https://idp.test", "audiences": ["api"], "jwks": {"cluster": "idp", "authority": "idp.test", "path": "/jwks"}}],
            "forward": {"claims_to_headers": {"sub": "x-sub", "scope": "x-scope"}, "principal_header": "x-principal", "strip_headers": ["x-internal"]}
        });
        crate::config::parse(v.to_string().as_bytes()).unwrap()
    }

    fn set(pairs: &[(&str, &str)]) -> Rc<[(String, String)]> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>().into()
    }

    #[test]
    fn a_kept_plan_is_the_forwarded_plan_sharing_the_result_and_the_stripped_lists() {
        let cfg = cfg();
        let mut plans = ForwardPlans::default();
        let alice = set(&[("x-sub", "alice"), ("x-scope", "read"), ("x-principal", "p")]);
        let bob = set(&[("x-sub", "bob"), ("x-scope", "write"), ("x-principal", "q")]);
        let no_scope = set(&[("x-sub", "carol"), ("x-principal", "r")]);
        let none = set(&[]);
        for s in [&alice, &bob, &no_scope, &none, &alice] {
            let plan = plans.get(&cfg, s);
            assert_eq!(*plan, forwarded(&cfg, s), "as `forwarded` builds it");
            assert!(Rc::ptr_eq(&plan.set, s), "the result's own claim headers, not a copy");
            assert!(plan.remove.iter().all(|h| !s.iter().any(|(k, _)| k == h)), "a set header is not removed");
        }
        assert!(plans.get(&cfg, &no_scope).remove.contains(&"x-scope".to_string()), "a claim this token lacks is stripped");
        // One removal list per combination of stripped headers set, whatever the values.
        assert!(Rc::ptr_eq(&plans.get(&cfg, &alice).remove, &plans.get(&cfg, &bob).remove));
        assert!(!Rc::ptr_eq(&plans.get(&cfg, &alice).remove, &plans.get(&cfg, &no_scope).remove));
        assert_eq!(plans.removes.len(), 3);
        assert_eq!(*plans.get(&cfg, &none).remove, *cfg.forward.strip_headers, "nothing set: everything stripped");
    }

    #[test]
    fn empty_plans_share_one_allocation() {
        let (a, b) = (HeaderPlan::default(), HeaderPlan::new(Vec::new(), Vec::new()));
        assert!(Rc::ptr_eq(&a.remove, &b.remove) && Rc::ptr_eq(&a.set, &b.set));
        assert_eq!(a, HeaderPlan { remove: Vec::new().into(), set: Vec::new().into() });
    }
}
