//! Issue 13 in the core: per-route `require` (scopes all/any, claim values, methods), ID tokens
//! refused, keys without a `kid`, many issuers picked by `iss`, and OpenID discovery.

use super::support::{bearer, claims, EsKey};
use crate::config;
use crate::flow::{Filter, Outcome};
use crate::metrics::{Deny, Metric};
use crate::route::RouteInput;
use crate::testing::FakeHost;
use serde_json::{json, Value};
use std::rc::Rc;

const NOW: u64 = 1_800_000_000_000;
const ISS: &str = "https://idp.ecomm.com";
const API: &str = "https://api.ecomm.com";

fn filter(v: Value) -> (FakeHost, Filter) {
    super::support::filter_at(&v, NOW)
}

fn provider(k: &EsKey) -> Value {
    json!({"name": "idp", "issuer": ISS, "audiences": [API], "jwks": {"inline": {"keys": [k.jwk()]}}})
}

fn req<'a>(method: &'a str, path: &'a str) -> RouteInput<'a> {
    RouteInput { method, path, authority: "a", route_name: None, cluster: None }
}

fn status(o: &Outcome) -> u32 {
    match o {
        Outcome::Allow(_) => 200,
        Outcome::Deny(r) => r.status,
        o => panic!("unexpected {o:?}"),
    }
}

fn www(o: &Outcome) -> String {
    match o {
        Outcome::Deny(r) => r.headers.iter().find(|(k, _)| k == "www-authenticate").map(|(_, v)| v.clone()).unwrap_or_default(),
        o => panic!("expected Deny, got {o:?}"),
    }
}

fn admin_setup(k: &EsKey) -> (FakeHost, Filter) {
    filter(json!({
        "providers": [provider(k)],
        "routes": [
            {"match": {"path_prefix": "/admin", "methods": ["POST", "DELETE"]},
             "require": {"scopes_all": ["admin"], "scopes_any": ["ops", "sre"],
                         "claims": {"groups": ["ops"], "email_verified": [true], "realm_access.roles": "auditor", "level": [3]}}},
            {"match": {"path_prefix": "/admin"}, "require": {"scopes_any": ["read"]}},
            {"match": {"path_prefix": "/"}}
        ]
    }))
}

fn user(k: &EsKey, extra: Value) -> String {
    let mut c = claims(ISS, API, "alice", NOW);
    c["scope"] = json!("admin ops read");
    c["groups"] = json!(["dev", "ops"]);
    c["email_verified"] = json!(true);
    c["realm_access"] = json!({"roles": ["auditor", "viewer"]});
    c["level"] = json!(3.0);
    for (name, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(name);
        } else {
            c[name] = v.clone();
        }
    }
    k.token(&c)
}

#[test]
fn a_token_that_meets_every_rule_passes_and_each_failing_rule_is_a_403() {
    let k = EsKey::new("k1");
    let (host, mut f) = admin_setup(&k);
    let ok = user(&k, json!({}));
    assert_eq!(status(&f.on_request(&req("POST", "/admin/users"), &bearer(&ok), &host)), 200);
    assert_eq!(status(&f.on_request(&req("DELETE", "/admin/users"), &bearer(&ok), &host)), 200, "from the cache");
    let cases: [(&str, Value, &str); 9] = [
        ("scope missing from scopes_all", json!({"scope": "ops read"}), "scope=\"admin\""),
        ("none of scopes_any", json!({"scope": "admin read"}), "scope=\"ops sre\""),
        ("scopes_any from scp array", json!({"scope": null, "scp": ["admin"]}), "scope=\"ops sre\""),
        ("group not held", json!({"groups": ["dev"]}), "insufficient_scope"),
        ("claim absent", json!({"groups": null}), "insufficient_scope"),
        ("bool differs", json!({"email_verified": false}), "insufficient_scope"),
        ("string \"true\" is not true", json!({"email_verified": "true"}), "insufficient_scope"),
        ("dotted path value missing", json!({"realm_access": {"roles": ["viewer"]}}), "insufficient_scope"),
        ("number differs", json!({"level": 2}), "insufficient_scope"),
    ];
    for (i, (case, extra, expect)) in cases.iter().enumerate() {
        let t = user(&k, extra.clone());
        let o = f.on_request(&req("POST", "/admin/users"), &bearer(&t), &host);
        assert_eq!(status(&o), 403, "{case}");
        let w = www(&o);
        assert!(w.contains("error=\"insufficient_scope\"") && w.contains(expect), "{case}: {w}");
        if *expect == "insufficient_scope" {
            assert!(!w.contains("scope=\""), "{case}: a claims failure names no scope: {w}");
        }
        assert_eq!(host.counter(Metric::Denied(Deny::Forbidden)), i as u64 + 1, "{case}");
    }
    // Array scope claims and scp as a string work as well.
    let t = user(&k, json!({"scope": ["admin", "sre"]}));
    assert_eq!(status(&f.on_request(&req("POST", "/admin/x"), &bearer(&t), &host)), 200);
    let t = user(&k, json!({"scope": null, "scp": "admin sre"}));
    assert_eq!(status(&f.on_request(&req("POST", "/admin/x"), &bearer(&t), &host)), 200);
}

#[test]
fn methods_pick_the_route_and_other_methods_fall_through() {
    let k = EsKey::new("k1");
    let (host, mut f) = admin_setup(&k);
    // GET /admin is the second route: needs "read" only.
    let reader = user(&k, json!({"scope": "read", "groups": null}));
    assert_eq!(status(&f.on_request(&req("GET", "/admin/users"), &bearer(&reader), &host)), 200);
    assert_eq!(status(&f.on_request(&req("POST", "/admin/users"), &bearer(&reader), &host)), 403);
    let nobody = user(&k, json!({"scope": "write"}));
    assert_eq!(status(&f.on_request(&req("GET", "/admin/users"), &bearer(&nobody), &host)), 403);
    assert_eq!(status(&f.on_request(&req("GET", "/public"), &bearer(&nobody), &host)), 200);
}

#[test]
fn decisions_never_read_client_headers() {
    let k = EsKey::new("k1");
    let (host, mut f) = admin_setup(&k);
    let t = user(&k, json!({"groups": ["dev"]}));
    let mut h = bearer(&t);
    h.push(("groups".into(), b"ops".to_vec()));
    h.push(("x-scope".into(), b"admin ops".to_vec()));
    assert_eq!(status(&f.on_request(&req("POST", "/admin/users"), &h, &host)), 403);
}

#[test]
fn require_is_checked_on_config() {
    let k = EsKey::new("k1");
    let bad: [(Value, &str); 7] = [
        (json!({"match": {"methods": ["get"]}}), "routes[0].match.methods[0]"),
        (json!({"match": {"methods": []}}), "routes[0].match.methods"),
        (json!({"require": {}}), "routes[0].require"),
        (json!({"require": {"scopes_all": ["a b"]}}), "routes[0].require.scopes_all[0]"),
        (json!({"require": {"claims": {"groups": [{"x": 1}]}}}), "routes[0].require.claims.groups[0]"),
        (json!({"require": {"claims": {"groups": []}}}), "routes[0].require.claims.groups"),
        (json!({"allow_anonymous": true, "require": {"scopes_all": ["a"]}}), "routes[0].require"),
    ];
    for (route, field) in bad {
        let v = json!({"providers": [provider(&k)], "routes": [route]});
        match config::parse(v.to_string().as_bytes()) {
            Err(e) => assert_eq!(e.field, field, "{e}"),
            Ok(_) => panic!("accepted {route}"),
        }
    }
}

#[test]
fn id_tokens_are_refused_and_access_tokens_pass() {
    let k = EsKey::new("k1");
    let mut p = provider(&k);
    p["client_ids"] = json!(["web-app"]);
    p["audiences"] = json!([API, "https://other.ecomm.com"]);
    let (host, mut f) = filter(json!({"providers": [p]}));
    let at = |extra: Value| {
        let mut c = claims(ISS, API, "alice", NOW);
        for (n, v) in extra.as_object().unwrap() {
            c[n] = v.clone();
        }
        c
    };
    let refused = [
        ("nonce", at(json!({"nonce": "n-0S6_WzA2Mj"}))),
        ("at_hash", at(json!({"at_hash": "77QmUPtjPfzWtF2AnpK9RQ"}))),
        ("c_hash", at(json!({"c_hash": "LDktKdoQak3Pk0cnXxCltA"}))),
        ("Keycloak typ ID", at(json!({"typ": "ID"}))),
        ("aud only the client", at(json!({"aud": ["web-app"]}))),
    ];
    for (i, (case, c)) in refused.iter().enumerate() {
        let o = f.on_request(&req("GET", "/"), &bearer(&k.token(c)), &host);
        assert_eq!(status(&o), 401, "{case}");
        assert!(www(&o).contains("invalid_token"), "{case}");
        assert_eq!(host.counter(Metric::Denied(Deny::IdToken)), i as u64 + 1, "{case}");
    }
    let passed = [
        ("plain access token", at(json!({"typ": "Bearer", "azp": "web-app"}))),
        ("aud the API and the client", at(json!({"aud": [API, "web-app"]}))),
    ];
    for (case, c) in passed {
        assert_eq!(status(&f.on_request(&req("GET", "/"), &bearer(&k.token(&c)), &host)), 200, "{case}");
    }
    // RFC 9068 typ at+jwt declares an access token, whatever else it carries.
    let c = at(json!({"nonce": "legacy-keycloak"}));
    let t = k.token_with_header(&json!({"alg": "ES256", "kid": "k1", "typ": "at+jwt"}), &c);
    assert_eq!(status(&f.on_request(&req("GET", "/"), &bearer(&t), &host)), 200);
}

#[test]
fn the_id_token_rules_are_per_provider() {
    let k = EsKey::new("k1");
    // Keycloak before 25 put `nonce` in access tokens: drop it from the marking claims.
    let mut p = provider(&k);
    p["id_token_claims"] = json!(["at_hash", "c_hash", "s_hash"]);
    let (host, mut f) = filter(json!({"providers": [p]}));
    let mut c = claims(ISS, API, "alice", NOW);
    c["nonce"] = json!("n");
    assert_eq!(status(&f.on_request(&req("GET", "/"), &bearer(&k.token(&c)), &host)), 200);
    c["at_hash"] = json!("h");
    assert_eq!(status(&f.on_request(&req("GET", "/"), &bearer(&k.token(&c)), &host)), 401);
    let mut p = provider(&k);
    p["refuse_id_tokens"] = json!(false);
    let (host, mut f) = filter(json!({"providers": [p]}));
    assert_eq!(status(&f.on_request(&req("GET", "/"), &bearer(&k.token(&c)), &host)), 200);
    // A client id that is also an accepted audience is a contradiction.
    let mut p = provider(&k);
    p["client_ids"] = json!([API]);
    let e = config::parse(json!({"providers": [p]}).to_string().as_bytes()).err().unwrap();
    assert_eq!(e.field, "providers[0].client_ids[0]");
}

#[test]
fn a_key_without_kid_verifies_a_token_that_names_one() {
    let k = EsKey::new("k1");
    let other = EsKey::new("k2");
    let mut kidless = k.jwk();
    kidless.as_object_mut().unwrap().remove("kid");
    let (host, mut f) = filter(json!({
        "providers": [{"name": "idp", "issuer": ISS, "audiences": [API], "jwks": {"inline": {"keys": [other.jwk(), kidless]}}}]
    }));
    let c = claims(ISS, API, "alice", NOW);
    assert_eq!(status(&f.on_request(&req("GET", "/"), &bearer(&k.token(&c)), &host)), 200, "kid k1 unknown, the kid-less key verifies");
    // A forgery naming an unknown kid is still refused (only the kid-less key is tried).
    let forger = EsKey::new("k9");
    assert_eq!(status(&f.on_request(&req("GET", "/"), &bearer(&forger.token(&c)), &host)), 401);
    // k2's kid names k2's key: k2's own tokens verify as before.
    assert_eq!(status(&f.on_request(&req("GET", "/"), &bearer(&other.token(&c)), &host)), 200);
}

#[test]
fn fifty_issuers_each_pick_their_own_provider_and_subjects_stay_apart() {
    let keys: Vec<EsKey> = (0..50).map(|i| EsKey::new(&format!("k{i}"))).collect();
    let providers: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| json!({"name": format!("idp{i}"), "issuer": format!("https://idp{i}.ecomm.com"), "audiences": [API], "jwks": {"inline": {"keys": [k.jwk()]}}}))
        .collect();
    let (host, mut f) = filter(json!({"providers": providers, "forward": {"principal_header": "x-principal"}}));
    let mut seen = std::collections::HashSet::new();
    for (i, k) in keys.iter().enumerate() {
        let t = k.token(&claims(&format!("https://idp{i}.ecomm.com"), API, "alice", NOW));
        match f.on_request(&req("GET", "/"), &bearer(&t), &host) {
            Outcome::Allow(plan) => {
                let p = plan.set.iter().find(|(h, _)| h == "x-principal").unwrap().1.clone();
                assert_eq!(p, format!("[\"https://idp{i}.ecomm.com\",\"alice\"]"));
                assert!(seen.insert(p));
            }
            o => panic!("idp{i}: {o:?}"),
        }
        // Another issuer's key does not verify this issuer's token.
        let wrong = keys[(i + 1) % 50].token(&claims(&format!("https://idp{i}.ecomm.com"), API, "alice", NOW));
        assert_eq!(status(&f.on_request(&req("GET", "/"), &bearer(&wrong), &host)), 401);
    }
}

fn path_of(r: &crate::keys::FetchRequest) -> (String, String) {
    let h = |n: &str| r.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap();
    (h(":authority"), h(":path"))
}

#[test]
fn discovery_finds_the_jwks_once_per_period_and_refuses_another_issuer() {
    let k = EsKey::new("k1");
    let conf = json!({"providers": [{"name": "idp", "issuer": ISS, "audiences": [API],
                                     "discovery": {"cluster": "idp", "authority": "idp.ecomm.com", "refresh_seconds": 60}}]});
    let (host, mut f) = filter(conf.clone());
    let t = k.token(&claims(ISS, API, "alice", NOW));
    let waiting = match f.on_request(&req("GET", "/"), &bearer(&t), &host) {
        Outcome::Wait(p) => p,
        o => panic!("{o:?}"),
    };
    let fetches = f.tick(&host);
    assert_eq!(fetches.len(), 1);
    assert_eq!(path_of(&fetches[0]), ("idp.ecomm.com".into(), "/.well-known/openid-configuration".into()));
    let doc = json!({"issuer": ISS, "jwks_uri": "https://keys.ecomm.com/oauth2/v1/keys", "token_endpoint": "https://idp.ecomm.com/token"});
    f.fetch_done(0, Ok(doc.to_string().into_bytes()), &host);
    // Another VM never fetches while this one holds the lease between the two fetches.
    let mut other = Filter::new(f.cfg.clone());
    other.init(&host);
    assert!(other.tick(&host).is_empty());
    host.advance(100);
    let fetches = f.tick(&host);
    assert_eq!(fetches.len(), 1);
    assert_eq!(path_of(&fetches[0]), ("keys.ecomm.com".into(), "/oauth2/v1/keys".into()));
    f.fetch_done(0, Ok(super::support::jwks(&[k.jwk()])), &host);
    assert_eq!(status(&f.resume(&waiting, &host).unwrap()), 200);
    assert_eq!(status(&other.on_request(&req("GET", "/"), &bearer(&t), &host)), 200, "other VMs read the shared keys");
    assert!(f.tick(&host).is_empty() && other.tick(&host).is_empty());
    // At the next refresh: the document again, then the JWKS.
    host.advance(60_000);
    let fetches: Vec<_> = f.tick(&host).into_iter().chain(other.tick(&host)).collect();
    assert_eq!(fetches.len(), 1);

    // A document naming another issuer is refused: no JWKS fetch, the request gets 503.
    let (host, mut f) = filter(conf);
    let waiting = match f.on_request(&req("GET", "/"), &bearer(&t), &host) {
        Outcome::Wait(p) => p,
        o => panic!("{o:?}"),
    };
    assert_eq!(f.tick(&host).len(), 1);
    let evil = json!({"issuer": "https://evil.example", "jwks_uri": "https://evil.example/keys"});
    f.fetch_done(0, Ok(evil.to_string().into_bytes()), &host);
    host.advance(100);
    assert!(f.tick(&host).is_empty(), "no JWKS fetch from a refused document (back-off)");
    assert_eq!(status(&f.resume(&waiting, &host).unwrap()), 503);
    assert_eq!(host.counter(Metric::JwksFetchFailed), 1);
}

/// A token forwarded a moment ago is answered from the plan that decision made
/// (`LocalCache::forwarded`), counted as the decision counts, and only on the route it was made
/// for: on a route that requires more the same token is decided again and refused; never past
/// the token's expiry.
#[test]
fn a_forwarded_decision_is_kept_only_for_its_route_and_counted_as_made() {
    let k = EsKey::new("k1");
    let (host, mut f) = filter(json!({
        "providers": [provider(&k)],
        "routes": [
            {"match": {"path_prefix": "/read"}, "require": {"scopes_any": ["read"]}},
            {"match": {"path_prefix": "/admin"}, "require": {"scopes_all": ["admin"]}},
            {"match": {"path_prefix": "/"}}
        ],
        "forward": {"claims_to_headers": {"sub": "x-user-sub"}}
    }));
    let tok = k.token(&claims(ISS, API, "alice", NOW));
    let plan = |o: &Outcome| match o {
        Outcome::Allow(p) => p.clone(),
        o => panic!("expected Allow, got {o:?}"),
    };
    let first = plan(&f.on_request(&req("GET", "/read/1"), &bearer(&tok), &host));
    assert_eq!((host.counter(Metric::Allowed), host.counter(Metric::CacheHit)), (1, 0));
    for n in 2..5 {
        let again = plan(&f.on_request(&req("GET", "/read/2"), &bearer(&tok), &host));
        assert!(Rc::ptr_eq(&first, &again), "the kept plan itself");
        assert_eq!((host.counter(Metric::Allowed), host.counter(Metric::CacheHit)), (n, n - 1), "counted as a cached decision");
    }
    // The route that requires more: decided again, refused, and the kept plan stays /read's.
    assert_eq!(status(&f.on_request(&req("GET", "/admin"), &bearer(&tok), &host)), 403);
    assert_eq!(host.counter(Metric::Denied(Deny::Forbidden)), 1);
    assert!(Rc::ptr_eq(&first, &plan(&f.on_request(&req("GET", "/read"), &bearer(&tok), &host))));
    // Another route that allows it: its own decision, the same headers.
    let other = plan(&f.on_request(&req("GET", "/x"), &bearer(&tok), &host));
    assert_eq!(*other, *first);
    assert_eq!(status(&f.on_request(&req("GET", "/admin"), &bearer(&tok), &host)), 403);
    assert_eq!(host.counter(Metric::Allowed), 6);
    // Another token is never answered with it, and the kept one not past its expiry.
    let bob = k.token(&claims(ISS, API, "bob", NOW));
    let b = plan(&f.on_request(&req("GET", "/read"), &bearer(&bob), &host));
    assert!(b.set.contains(&("x-user-sub".to_string(), "bob".to_string())), "{b:?}");
    // Its expiry, with the provider's clock skew (60 s by default).
    host.advance(359_999);
    assert_eq!(*plan(&f.on_request(&req("GET", "/read"), &bearer(&tok), &host)), *first);
    host.advance(1);
    assert_eq!(status(&f.on_request(&req("GET", "/read"), &bearer(&tok), &host)), 401);
}
