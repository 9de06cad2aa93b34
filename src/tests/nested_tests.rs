//! Nested tokens: a hop's own token carrying the end user's (`mint.nest`), accepted where a
//! provider says so (`providers[].nested`) with both verified, one level deep.

use super::support::{bearer, claims, EsKey};
use crate::config;
use crate::flow::{Filter, Outcome};
use crate::jose::b64;
use crate::metrics::{Deny, Metric};
use crate::route::RouteInput;
use crate::testing::FakeHost;
use serde_json::{json, Value};
use std::rc::Rc;

const NOW: u64 = 1_800_000_000_000;
const IDP: &str = "https://idp.example.com";
const EDGE_AUD: &str = "https://api.ecomm.com";
const A_SIDECAR: &str = "https://a.sidecar.ecomm.com";
const B: &str = "https://b.ecomm.com";

fn at(path: &str) -> RouteInput<'_> {
    RouteInput { method: "GET", path, authority: "b", route_name: None, cluster: None }
}

/// B's inbound: the IdP (inner) and A's sidecar (outer, nested) as providers.
fn b_inbound(idp: &EsKey, sidecar_jwk: Value) -> Filter {
    let v = json!({
        "providers": [
            {"name": "idp", "issuer": IDP, "audiences": [EDGE_AUD], "jwks": {"inline": {"keys": [idp.jwk()]}}},
            {"name": "a-sidecar", "issuer": A_SIDECAR, "audiences": [B], "jwks": {"inline": {"keys": [sidecar_jwk]}},
             "nested": {"inner_providers": ["idp"], "caller_header": "x-caller"}}
        ],
        "forward": {"claims_to_headers": {"sub": "x-user-sub", "email": "x-email"}, "principal_header": "x-principal"}
    });
    let mut f = Filter::new(Rc::new(config::parse(v.to_string().as_bytes()).unwrap()));
    f.init(&FakeHost::new(NOW));
    f
}

fn headers(o: &Outcome) -> Vec<(String, String)> {
    match o {
        Outcome::Allow(plan) => plan.set.to_vec(),
        o => panic!("expected Allow, got {o:?}"),
    }
}

#[test]
fn minted_with_nest_then_accepted_with_both_identities() {
    let host = FakeHost::new(NOW);
    let idp = EsKey::new("idp-1");
    let d = [11u8; 32];
    let x = ed25519_dalek::SigningKey::from_bytes(&d).verifying_key().to_bytes();
    let private = json!({"kty": "OKP", "crv": "Ed25519", "d": b64::encode(&d), "x": b64::encode(&x)});
    let public = json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode(&x), "kid": "a1", "alg": "EdDSA"});
    // A's outbound: mints for B with the incoming token nested.
    let a = json!({
        "providers": [{"name": "idp", "issuer": IDP, "audiences": [EDGE_AUD], "jwks": {"inline": {"keys": [idp.jwk()]}}}],
        "signing": {"issuer": A_SIDECAR, "kid": "a1", "alg": "EdDSA", "private_jwk": private},
        "routes": [{"match": {"path_prefix": "/"}, "mint": {"audience": B, "nest": true}}]
    });
    let mut a = Filter::new(Rc::new(config::parse(a.to_string().as_bytes()).unwrap()));
    a.init(&host);
    let mut c = claims(IDP, EDGE_AUD, "alice", NOW);
    c["email"] = json!("alice@example.com");
    let user = idp.token(&c);
    let minted = match a.on_request(&at("/b"), &bearer(&user), &host) {
        Outcome::Allow(plan) => plan.set.iter().find(|(k, _)| k == "authorization").unwrap().1[7..].to_owned(),
        o => panic!("{o:?}"),
    };
    let payload = crate::jose::jws::parse(&minted, 65536).unwrap().payload;
    assert_eq!(payload["subject_token"], json!(user), "the end user's token travels inside");
    let mut b = b_inbound(&idp, public);
    let set = headers(&b.on_request(&at("/x"), &bearer(&minted), &host));
    assert!(set.contains(&("x-principal".into(), format!(r#"["{IDP}","alice"]"#))), "the principal is the inner token's: {set:?}");
    assert!(set.contains(&("x-caller".into(), format!(r#"["{A_SIDECAR}","alice"]"#))), "{set:?}");
    assert!(set.contains(&("x-email".into(), "alice@example.com".into())), "claims from the end user's token");
    // The inner token alone is not for B (its audience is the edge's).
    assert!(matches!(b.on_request(&at("/x"), &bearer(&user), &host), Outcome::Deny(r) if r.status == 401));
    assert!(b.cfg.forward.strip_headers.contains(&"x-caller".to_string()), "a client's x-caller is stripped");
}

#[test]
fn a_nested_token_whose_inner_token_fails_any_check_is_refused() {
    let host = FakeHost::new(NOW);
    let idp = EsKey::new("idp-1");
    let sidecar = EsKey::new("a1");
    let mut b = b_inbound(&idp, sidecar.jwk());
    let outer = |inner: Value, sub: &str| {
        let mut c = claims(A_SIDECAR, B, sub, NOW);
        if !inner.is_null() {
            c["subject_token"] = inner;
        }
        sidecar.token(&c)
    };
    let good_inner = idp.token(&claims(IDP, EDGE_AUD, "alice", NOW));
    let mut expired = claims(IDP, EDGE_AUD, "alice", NOW);
    expired["exp"] = json!(NOW / 1000 - 3600);
    let mut deeper = claims(IDP, EDGE_AUD, "alice", NOW);
    deeper["subject_token"] = json!(good_inner);
    let cases = [
        ("no inner token", outer(json!(null), "alice")),
        ("inner not a string", outer(json!({"a": 1}), "alice")),
        ("inner malformed", outer(json!("a.b.c"), "alice")),
        ("inner expired", outer(json!(idp.token(&expired)), "alice")),
        ("inner forged", outer(json!(EsKey::new("idp-1").token(&claims(IDP, EDGE_AUD, "alice", NOW))), "alice")),
        ("inner from an untrusted issuer", outer(json!(idp.token(&claims("https://evil", EDGE_AUD, "alice", NOW))), "alice")),
        ("inner for another audience", outer(json!(idp.token(&claims(IDP, "https://other", "alice", NOW))), "alice")),
        ("deeper than one level", outer(json!(idp.token(&deeper)), "alice")),
        ("subjects differ", outer(json!(good_inner), "mallory")),
    ];
    for (i, (case, tok)) in cases.iter().enumerate() {
        let o = b.on_request(&at("/x"), &bearer(tok), &host);
        assert!(matches!(&o, Outcome::Deny(r) if r.status == 401), "{case}: {o:?}");
        assert_eq!(host.counter(Metric::Denied(Deny::Nested)), i as u64 + 1, "{case}");
    }
    headers(&b.on_request(&at("/x"), &bearer(&outer(json!(good_inner), "alice")), &host));
}

#[test]
fn nested_configuration_is_checked() {
    let idp = EsKey::new("i");
    let base = |nested: Value| {
        json!({"providers": [
            {"name": "idp", "issuer": IDP, "audiences": ["x"], "jwks": {"inline": {"keys": [idp.jwk()]}}},
            {"name": "outer", "issuer": A_SIDECAR, "audiences": [B], "jwks": {"inline": {"keys": [idp.jwk()]}}, "nested": nested}]})
    };
    for (nested, field) in [
        (json!({"inner_providers": []}), "providers[1].nested.inner_providers"),
        (json!({"inner_providers": ["nope"]}), "providers[1].nested.inner_providers[0]"),
        (json!({"inner_providers": ["idp"], "caller_header": "bad header"}), "providers[1].nested.caller_header"),
    ] {
        let e = config::parse(base(nested).to_string().as_bytes()).err().unwrap();
        assert_eq!(e.field, field, "{e}");
    }
}

/// A cached nested verification ends when the inner provider's key leaves its JWKS (as F8 for
/// the outer key): the worker's front and shared data both re-verify.
#[test]
fn a_cached_nested_token_ends_with_its_inner_key() {
    let host = FakeHost::new(NOW);
    let idp = EsKey::new("idp-1");
    let sidecar = EsKey::new("a1");
    let v = json!({
        "providers": [
            {"name": "idp", "issuer": IDP, "audiences": [EDGE_AUD],
             "jwks": {"cluster": "idp", "path": "/jwks", "refresh_seconds": 60, "min_refetch_seconds": 1}},
            {"name": "a-sidecar", "issuer": A_SIDECAR, "audiences": [B], "jwks": {"inline": {"keys": [sidecar.jwk()]}},
             "nested": {"inner_providers": ["idp"]}}
        ]
    });
    let mut f = Filter::new(Rc::new(config::parse(v.to_string().as_bytes()).unwrap()));
    f.init(&host);
    assert_eq!(f.tick(&host).len(), 1);
    let other = EsKey::new("idp-2");
    f.fetch_done(0, Ok(super::support::jwks(&[idp.jwk(), other.jwk()])), &host);
    let mut c = claims(A_SIDECAR, B, "alice", NOW);
    c["subject_token"] = json!(idp.token(&claims(IDP, EDGE_AUD, "alice", NOW)));
    let tok = sidecar.token(&c);
    headers(&f.on_request(&at("/x"), &bearer(&tok), &host));
    headers(&f.on_request(&at("/x"), &bearer(&tok), &host));
    assert_eq!(host.counter(Metric::CacheHit), 1);
    host.advance(61_000);
    assert_eq!(f.tick(&host).len(), 1);
    f.fetch_done(0, Ok(super::support::jwks(&[other.jwk()])), &host);
    let o = f.on_request(&at("/x"), &bearer(&tok), &host);
    assert!(matches!(&o, Outcome::Deny(r) if r.status == 401), "{o:?}");
    assert_eq!(host.counter(Metric::Denied(Deny::Nested)), 1);
}
