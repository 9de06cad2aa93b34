//! Embedded tokens (`routes[].embedded`): the token for the route's audience is found in the
//! verified token, verified fully, and forwarded; anything else is refused.

use super::support::{bearer, claims, EsKey};
use crate::config;
use crate::flow::{Filter, Outcome};
use crate::metrics::{Deny, Metric};
use crate::route::RouteInput;
use crate::testing::FakeHost;
use serde_json::{json, Value};
use std::rc::Rc;

const NOW: u64 = 1_800_000_000_000;
const ISS: &str = "https://as.ecomm.com";
const PAYMENTS: &str = "https://payments.ecomm.com";
const ACCOUNTS: &str = "https://accounts.ecomm.com";

fn setup() -> (FakeHost, EsKey, Filter) {
    let k = EsKey::new("as1");
    let v = json!({
        "providers": [{"name": "as", "issuer": ISS, "audiences": [PAYMENTS], "jwks": {"inline": {"keys": [k.jwk()]}}}],
        "routes": [{"match": {"path_prefix": "/accounts"}, "embedded": {"claim": "tokens", "audience": ACCOUNTS}}],
        "forward": {"claims_to_headers": {"sub": "x-user-sub"}}
    });
    let cfg = Rc::new(config::parse(v.to_string().as_bytes()).unwrap());
    let host = FakeHost::new(NOW);
    let mut f = Filter::new(cfg);
    f.init(&host);
    (host, k, f)
}

fn outer(k: &EsKey, tokens: Value) -> String {
    let mut c = claims(ISS, PAYMENTS, "alice", NOW);
    c["tokens"] = tokens;
    k.token(&c)
}

fn at() -> RouteInput<'static> {
    RouteInput { method: "GET", path: "/accounts/1", authority: "a", route_name: None, cluster: None }
}

fn forwarded(o: &Outcome) -> String {
    match o {
        Outcome::Allow(plan) => {
            assert!(!plan.remove.contains(&"authorization".to_string()), "replaced by the set, not removed");
            plan.set.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v[7..].to_owned()).unwrap()
        }
        o => panic!("expected Allow, got {o:?}"),
    }
}

#[test]
fn the_token_for_the_routes_audience_is_verified_and_forwarded() {
    let (host, k, mut f) = setup();
    let accounts = k.token(&claims(ISS, ACCOUNTS, "alice", NOW));
    let other = k.token(&claims(ISS, "https://other.ecomm.com", "alice", NOW));
    for tokens in [json!({ACCOUNTS: accounts, "https://other.ecomm.com": other}), json!([other, accounts])] {
        let t = outer(&k, tokens);
        assert_eq!(forwarded(&f.on_request(&at(), &bearer(&t), &host)), accounts);
        assert_eq!(forwarded(&f.on_request(&at(), &bearer(&t), &host)), accounts, "again, from the cache");
    }
}

#[test]
fn anything_but_a_valid_token_for_the_audience_is_refused() {
    let (host, k, mut f) = setup();
    let stranger = EsKey::new("as1"); // same kid, another key: a forged signature
    let mut expired = claims(ISS, ACCOUNTS, "alice", NOW);
    expired["exp"] = json!(NOW / 1000 - 3600);
    let cases = [
        ("no claim", json!(null)),
        ("another audience only", json!([k.token(&claims(ISS, "https://other.ecomm.com", "alice", NOW))])),
        ("forged signature", json!([stranger.token(&claims(ISS, ACCOUNTS, "alice", NOW))])),
        ("expired", json!([k.token(&expired)])),
        ("another issuer", json!([k.token(&claims("https://evil.example", ACCOUNTS, "alice", NOW))])),
        ("not a JWS", json!({ACCOUNTS: "opaque-token"})),
        ("not strings", json!([1, {"a": 2}, null])),
    ];
    for (i, (case, tokens)) in cases.iter().enumerate() {
        let t = outer(&k, tokens.clone());
        let o = f.on_request(&at(), &bearer(&t), &host);
        assert!(matches!(&o, Outcome::Deny(r) if r.status == 403), "{case}: {o:?}");
        assert_eq!(host.counter(Metric::Denied(Deny::Embedded)), i as u64 + 1, "{case}");
    }
    // The embedded token alone is no way in: its audience is not the provider's.
    let accounts = k.token(&claims(ISS, ACCOUNTS, "alice", NOW));
    assert!(matches!(f.on_request(&at(), &bearer(&accounts), &host), Outcome::Deny(r) if r.status == 401));
}
