//! Self-issued tokens (`routes[].mint`): the signing configuration and its refusals, the minted
//! claims, caching (a hot request signs nothing), and the JWKS the filter serves.

use super::support::{bearer, claims, jwks, EsKey};
use crate::config;
use crate::flow::{Filter, Outcome};
use crate::jose::{b64, jwk, jws, verify};
use crate::metrics::{Deny, Metric};
use crate::route::RouteInput;
use crate::testing::FakeHost;
use serde_json::{json, Map, Value};
use std::rc::Rc;

const NOW: u64 = 1_800_000_000_000;
const ISS: &str = "https://idp.example.com";
const EDGE: &str = "https://edge.ecomm.com";
const INVENTORY: &str = "https://inventory.ecomm.com";

/// A private Ed25519 JWK from a fixed seed, and its public half.
fn ed_private(seed: u8) -> (Value, Value) {
    let d = [seed; 32];
    let x = ed25519_dalek::SigningKey::from_bytes(&d).verifying_key().to_bytes();
    (
        json!({"kty": "OKP", "crv": "Ed25519", "d": b64::encode(&d), "x": b64::encode(&x)}),
        json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode(&x)}),
    )
}

fn es_private(seed: u8) -> Value {
    let sk = p256::ecdsa::SigningKey::from_bytes(&[seed; 32].into()).unwrap();
    let p = sk.verifying_key().to_encoded_point(false);
    json!({"kty": "EC", "crv": "P-256", "d": b64::encode(&[seed; 32]), "x": b64::encode(p.x().unwrap()), "y": b64::encode(p.y().unwrap())})
}

fn base(idp: &EsKey, signing: Value) -> Value {
    json!({
        "providers": [{"name": "corp", "issuer": ISS, "audiences": ["api"], "jwks": {"inline": {"keys": [idp.jwk()]}}}],
        "signing": signing,
        "routes": [
            {"match": {"path_prefix": "/inventory"},
             "mint": {"audience": INVENTORY, "copy_claims": ["email"], "scopes": ["inventory:read"]}},
            {"match": {"path_prefix": "/all-scopes"}, "mint": {"audience": INVENTORY}}
        ],
        "forward": {"claims_to_headers": {"sub": "x-user-sub"}}
    })
}

fn rotation_signing() -> Value {
    let (_, old_public) = ed_private(1);
    json!({"issuer": EDGE, "ttl_seconds": 60, "jwks_path": "/.well-known/edge-jwks.json",
           "keys": [{"kid": "edge-2026-12", "alg": "EdDSA", "private_jwk": ed_private(2).0},
                    {"kid": "edge-2026-11", "alg": "EdDSA", "public_jwk": old_public, "retired": true}]})
}

fn parse(v: &Value) -> Result<config::Config, config::ConfigError> {
    config::parse(v.to_string().as_bytes())
}

fn at(path: &str) -> RouteInput<'_> {
    RouteInput { method: "GET", path, authority: "api.example.com", route_name: None, cluster: None }
}

fn minted(o: &Outcome) -> String {
    match o {
        Outcome::Allow(plan) => {
            assert!(!plan.remove.contains(&"authorization".to_string()), "the set replaces the client's one value");
            let v = plan.set.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.clone()).expect("a minted token");
            v.strip_prefix("Bearer ").unwrap().to_owned()
        }
        other => panic!("expected Allow, got {other:?}"),
    }
}

fn decode(token: &str) -> (Map<String, Value>, Map<String, Value>) {
    let j = jws::parse(token, 16384).unwrap();
    let mut it = token.split('.');
    let h = crate::jose::json::parse_object(&b64::decode(it.next().unwrap().as_bytes()).unwrap()).unwrap();
    (h, j.payload)
}

#[test]
fn both_configuration_shapes_load() {
    let idp = EsKey::new("i1");
    let flat = json!({"issuer": EDGE, "kid": "k1", "alg": "ES256", "private_jwk": es_private(3), "ttl_seconds": 30});
    let c = parse(&base(&idp, flat)).unwrap();
    let s = c.signing.as_ref().unwrap();
    assert_eq!((s.keys.len(), s.current, s.ttl_ms, s.actor.as_str(), s.typ.as_str()), (1, 0, 30_000, EDGE, "JWT"));
    let c = parse(&base(&idp, rotation_signing())).unwrap();
    let s = c.signing.as_ref().unwrap();
    assert_eq!((s.keys.len(), s.keys[s.current].kid.as_str()), (2, "edge-2026-12"));
    assert_eq!(c.carried_claims, vec!["act", "email", "iss", "sub"]);
}

#[test]
fn a_private_key_may_come_from_the_environment() {
    let idp = EsKey::new("i1");
    let (private, _) = ed_private(4);
    std::env::set_var("TEF_TEST_SIGNING_JWK", private.to_string());
    let c = parse(&base(&idp, json!({"issuer": EDGE, "kid": "env", "alg": "EdDSA", "private_jwk_env": "TEF_TEST_SIGNING_JWK"}))).unwrap();
    assert!(c.signing.unwrap().current_key().secret.is_some());
    let e = parse(&base(&idp, json!({"issuer": EDGE, "kid": "env", "alg": "EdDSA", "private_jwk_env": "TEF_TEST_NO_SUCH_VAR"}))).err().unwrap();
    assert_eq!(e.field, "signing.private_jwk_env");
    assert!(e.message.contains("host_env_keys"), "{e}");
}

#[test]
fn bad_signing_keys_are_refused_with_the_field_named() {
    let idp = EsKey::new("i1");
    let (ed, ed_public) = ed_private(5);
    let secret = ed["d"].as_str().unwrap().to_owned();
    let mut wrong_x = ed.clone();
    wrong_x["x"] = json!(b64::encode(&[9u8; 32]));
    let cases: Vec<(Value, &str)> = vec![
        (json!({"issuer": EDGE, "kid": "k", "alg": "EdDSA", "private_jwk": wrong_x}), "signing.private_jwk.x"),
        (json!({"issuer": EDGE, "kid": "k", "alg": "ES256", "private_jwk": ed.clone()}), "signing.private_jwk.crv"),
        (json!({"issuer": EDGE, "kid": "k", "alg": "EdDSA", "private_jwk": {"kty": "OKP", "crv": "Ed25519", "d": "!!", "x": ed["x"]}}), "signing.private_jwk.d"),
        (json!({"issuer": EDGE, "kid": "k", "alg": "RS256", "private_jwk": ed.clone()}), "signing.alg"),
        (json!({"issuer": EDGE, "kid": "k", "alg": "EdDSA", "private_jwk": ed_public.clone()}), "signing.private_jwk.d"),
        (json!({"issuer": EDGE, "keys": [{"kid": "k", "alg": "EdDSA", "public_jwk": ed_public.clone()}]}), "signing.keys[0].public_jwk"),
        (json!({"issuer": EDGE, "keys": [{"kid": "k", "alg": "EdDSA", "private_jwk": ed.clone()},
                                          {"kid": "k", "alg": "EdDSA", "public_jwk": ed_public.clone(), "retired": true}]}), "signing.keys[1].kid"),
        (json!({"issuer": EDGE, "keys": [{"kid": "a", "alg": "EdDSA", "private_jwk": ed.clone()},
                                          {"kid": "b", "alg": "ES256", "private_jwk": es_private(6)}]}), "signing.keys"),
        (json!({"issuer": EDGE, "keys": [{"kid": "a", "alg": "EdDSA", "public_jwk": ed.clone(), "retired": true},
                                          {"kid": "b", "alg": "ES256", "private_jwk": es_private(6)}]}), "signing.keys[0].public_jwk.d"),
        (json!({"issuer": EDGE, "kid": "k", "alg": "EdDSA", "private_jwk": ed.clone(), "ttl_seconds": 0}), "signing.ttl_seconds"),
        (json!({"issuer": EDGE}), "signing"),
    ];
    for (signing, field) in cases {
        let e = parse(&base(&idp, signing.clone())).err().unwrap_or_else(|| panic!("accepted {signing}"));
        assert_eq!(e.field, field, "{e}");
        assert!(!e.to_string().contains(&secret), "the private key in an error text: {e}");
    }
    let mut v = base(&idp, rotation_signing());
    v["routes"][0]["mint"]["copy_claims"] = json!(["exp"]);
    assert_eq!(parse(&v).err().unwrap().field, "routes[0].mint.copy_claims[0]");
    let mut v = base(&idp, rotation_signing());
    v.as_object_mut().unwrap().remove("signing");
    assert_eq!(parse(&v).err().unwrap().field, "routes[0].mint");
}

#[test]
fn a_minted_token_carries_the_user_the_chain_and_no_more_scope() {
    let idp = EsKey::new("i1");
    let cfg = Rc::new(parse(&base(&idp, rotation_signing())).unwrap());
    let host = FakeHost::new(NOW);
    let mut f = Filter::new(cfg.clone());
    f.init(&host);
    let mut c = claims(ISS, "api", "alice", NOW);
    c["scope"] = json!("inventory:read orders:write");
    c["email"] = json!("alice@example.com");
    c["act"] = json!({"sub": "mobile-app"});
    c["exp"] = json!(NOW / 1000 + 40);
    let subject = idp.token(&c);
    let tok = minted(&f.on_request(&at("/inventory/1"), &bearer(&subject), &host));
    let (h, p) = decode(&tok);
    assert_eq!((h["alg"].as_str(), h["kid"].as_str(), h["typ"].as_str()), (Some("EdDSA"), Some("edge-2026-12"), Some("JWT")));
    assert_eq!(p["iss"], json!(EDGE));
    assert_eq!(p["sub"], json!("alice"));
    assert_eq!(p["sub_id"], json!({"format": "iss_sub", "iss": ISS, "sub": "alice"}));
    assert_eq!(p["aud"], json!(INVENTORY));
    assert_eq!(p["iat"], json!(NOW / 1000));
    assert_eq!(p["exp"], json!(NOW / 1000 + 40), "never past the subject's exp");
    assert_eq!(p["act"], json!({"sub": EDGE, "act": {"sub": "mobile-app"}}));
    assert_eq!(p["scope"], json!("inventory:read"), "the route's scope, not the subject's wider set");
    assert_eq!(p["email"], json!("alice@example.com"));
    assert!(p["jti"].as_str().is_some_and(|j| j.len() >= 20));
    // It verifies against the JWKS the filter serves.
    let served = match f.on_request(&at("/.well-known/edge-jwks.json"), &[], &host) {
        Outcome::Respond(r) => r,
        o => panic!("{o:?}"),
    };
    let (set, _) = jwk::parse_jwks(served.body.as_bytes()).unwrap();
    let j = jws::parse(&tok, 16384).unwrap();
    assert!(verify::verify_with_keys(&set, j.alg, j.kid.as_deref(), j.signing_input, &j.signature).is_ok());
    // Without route scopes: the subject's own, and without an `act` of its own, one level.
    let bob = idp.token(&claims(ISS, "api", "bob", NOW));
    let (_, p) = decode(&minted(&f.on_request(&at("/all-scopes"), &bearer(&bob), &host)));
    assert_eq!(p["scope"], json!("read write"));
    assert_eq!(p["act"], json!({"sub": EDGE}));
    assert!(p.get("email").is_none());
    // A route scope the subject lacks: 403, nothing signed.
    let before = host.counter(Metric::MintOk);
    let o = f.on_request(&at("/inventory/1"), &bearer(&bob), &host);
    assert!(matches!(&o, Outcome::Deny(r) if r.status == 403), "{o:?}");
    assert_eq!(host.counter(Metric::Denied(Deny::InsufficientScope)), 1);
    assert_eq!(host.counter(Metric::MintOk), before);
}

#[test]
fn a_hot_request_signs_nothing_and_workers_share_minted_tokens() {
    let idp = EsKey::new("i1");
    let cfg = Rc::new(parse(&base(&idp, rotation_signing())).unwrap());
    let host = FakeHost::new(NOW);
    let (mut vm1, mut vm2) = (Filter::new(cfg.clone()), Filter::new(cfg));
    vm1.init(&host);
    vm2.init(&host);
    let mut c = claims(ISS, "api", "alice", NOW);
    c["scope"] = json!("inventory:read");
    let subject = idp.token(&c);
    let first = minted(&vm1.on_request(&at("/inventory/1"), &bearer(&subject), &host));
    for _ in 0..63 {
        assert_eq!(minted(&vm1.on_request(&at("/inventory/1"), &bearer(&subject), &host)), first);
    }
    assert_eq!(minted(&vm2.on_request(&at("/inventory/2"), &bearer(&subject), &host)), first, "shared data serves the other worker");
    assert_eq!(host.counter(Metric::MintOk), 1, "64 + 1 requests, one signature");
    assert_eq!(host.counter(Metric::MintCacheHit), 64);
    // Cached until exp (60 s) minus a quarter of the ttl: at 45 s a new token, a new jti.
    host.advance(45_000);
    let later = minted(&vm1.on_request(&at("/inventory/1"), &bearer(&subject), &host));
    assert_ne!(later, first);
    assert_ne!(decode(&later).1["jti"], decode(&first).1["jti"]);
    assert_eq!(host.counter(Metric::MintOk), 2);
}

/// A hot minted request is answered with the plan that replaced the client's token a moment
/// ago (`LocalCache::replaced_in`): counted as the whole decision counts, only on its route,
/// never past the minted token's cache life, and not once the key that verified the client's
/// token leaves its provider's JWKS. A token from a cookie is decided each time (taking it out
/// rewrites the request's other cookies).
#[test]
fn a_hot_minted_request_is_answered_from_the_plan_kept_with_its_token() {
    let (idp, other) = (EsKey::new("i1"), EsKey::new("i2"));
    let mut v = base(&idp, rotation_signing());
    v["providers"][0]["jwks"] = json!({"cluster": "idp", "path": "/jwks", "refresh_seconds": 60, "timeout_ms": 1000, "min_refetch_seconds": 1});
    v["from"] = json!([{"header": "authorization", "prefix": "Bearer "}, {"cookie": "at"}]);
    let cfg = Rc::new(parse(&v).unwrap());
    let host = FakeHost::new(NOW);
    let mut f = Filter::new(cfg);
    f.init(&host);
    assert_eq!(f.tick(&host).len(), 1);
    f.fetch_done(0, Ok(jwks(&[idp.jwk(), other.jwk()])), &host);
    let mut c = claims(ISS, "api", "alice", NOW);
    c["scope"] = json!("inventory:read");
    let subject = idp.token(&c);
    let plan = |o: Outcome| match o {
        Outcome::Allow(p) => p,
        o => panic!("expected Allow, got {o:?}"),
    };
    let counts = || [Metric::MintOk, Metric::MintCacheHit, Metric::CacheHit, Metric::Allowed].map(|m| host.counter(m));
    let first = plan(f.on_request(&at("/inventory/1"), &bearer(&subject), &host));
    let kept = plan(f.on_request(&at("/inventory/2"), &bearer(&subject), &host));
    assert_eq!(*kept, *first, "the cached token, the same headers");
    assert_eq!(counts(), [1, 1, 1, 2]);
    for n in 3..6 {
        assert!(Rc::ptr_eq(&kept, &plan(f.on_request(&at("/inventory/1"), &bearer(&subject), &host))), "the kept plan itself");
        assert_eq!(counts(), [1, n - 1, n - 1, n], "counted as a cached mint");
    }
    // Another route: its own token and plan; the kept one stays the first route's.
    let all = plan(f.on_request(&at("/all-scopes"), &bearer(&subject), &host));
    assert_ne!(minted(&Outcome::Allow(all.clone())), minted(&Outcome::Allow(kept.clone())));
    assert_eq!(host.counter(Metric::MintOk), 2);
    assert!(Rc::ptr_eq(&kept, &plan(f.on_request(&at("/inventory/1"), &bearer(&subject), &host))));
    // The same token from the cookie: the same minted token, but decided in full, every time.
    for others in ["a=1", "b=2"] {
        let cookie = vec![("cookie".to_string(), format!("{others}; at={subject}").into_bytes())];
        let p = plan(f.on_request(&at("/inventory/1"), &cookie, &host));
        assert!(!Rc::ptr_eq(&kept, &p));
        assert_eq!(minted(&Outcome::Allow(p.clone())), minted(&Outcome::Allow(kept.clone())));
        assert!(p.set.contains(&("cookie".to_string(), others.to_string())), "this request's own cookies: {p:?}");
    }
    // Cached until exp (60 s) minus a quarter of the ttl: at 45 s a new token, a new plan.
    host.advance(45_000);
    let later = plan(f.on_request(&at("/inventory/1"), &bearer(&subject), &host));
    assert_ne!(minted(&Outcome::Allow(later.clone())), minted(&Outcome::Allow(kept.clone())));
    assert_eq!(host.counter(Metric::MintOk), 3);
    assert!(Rc::ptr_eq(&later, &plan(f.on_request(&at("/inventory/1"), &bearer(&subject), &host))));
    // The IdP rotates i1 out: neither the kept plan nor anything else serves its token.
    host.advance(16_000);
    assert_eq!(f.tick(&host).len(), 1);
    f.fetch_done(0, Ok(jwks(&[other.jwk()])), &host);
    let o = f.on_request(&at("/inventory/1"), &bearer(&subject), &host);
    assert!(matches!(&o, Outcome::Deny(r) if r.status == 401), "{o:?}");
}

#[test]
fn the_jwks_is_served_with_every_key_and_only_for_get_and_head() {
    let idp = EsKey::new("i1");
    let cfg = Rc::new(parse(&base(&idp, rotation_signing())).unwrap());
    let host = FakeHost::new(NOW);
    let mut f = Filter::new(cfg);
    f.init(&host);
    for method in ["GET", "HEAD"] {
        let r = RouteInput { method, path: "/.well-known/edge-jwks.json?x=1", authority: "a", route_name: None, cluster: None };
        match f.on_request(&r, &[], &host) {
            Outcome::Respond(r) => {
                assert_eq!(r.status, 200);
                assert!(r.headers.contains(&("cache-control".into(), "public, max-age=300".into())));
                let doc: Value = serde_json::from_str(&r.body).unwrap();
                let kids: Vec<&str> = doc["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
                assert_eq!(kids, vec!["edge-2026-12", "edge-2026-11"], "current and retired");
                assert!(!r.body.contains("\"d\""));
            }
            o => panic!("{o:?}"),
        }
    }
    let r = RouteInput { method: "POST", path: "/.well-known/edge-jwks.json", authority: "a", route_name: None, cluster: None };
    assert!(matches!(f.on_request(&r, &[], &host), Outcome::Respond(r) if r.status == 405));
    assert_eq!(f.cfg.needed_headers.as_deref().unwrap()[..2], [":path".to_string(), ":method".to_string()]);
}

#[test]
fn a_certificate_binding_can_be_carried_into_the_minted_token() {
    // After the edge a minted token is a bearer token; `copy_claims: ["cnf"]` carries the
    // binding for a next hop that wants to see it.
    let idp = EsKey::new("i1");
    let mut v = base(&idp, rotation_signing());
    v["routes"][0]["mint"]["copy_claims"] = json!(["cnf"]);
    let cfg = Rc::new(parse(&v).unwrap());
    let host = FakeHost::new(NOW);
    let mut f = Filter::new(cfg);
    f.init(&host);
    let mut c = claims(ISS, "api", "alice", NOW);
    c["scope"] = json!("inventory:read");
    c["cnf"] = json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"});
    let (_, p) = decode(&minted(&f.on_request(&at("/inventory/1"), &bearer(&idp.token(&c)), &host)));
    assert_eq!(p["cnf"], json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}));
}
