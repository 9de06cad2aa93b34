//! Attacks on the token path, each decided through `Filter::on_request` with real keys: every one
//! must end in a 401 (never an Allow), counted under the expected reason.

use super::support::{bearer, EdKey, EsKey};
use crate::config;
use crate::flow::{Filter, Outcome};
use crate::jose::b64;
use crate::metrics::{Deny, Metric};
use crate::route::RouteInput;
use crate::testing::FakeHost;
use jwt_compact::{alg::Hs256, alg::Hs256Key, Algorithm, AlgorithmSignature};
use serde_json::{json, Value};
use std::rc::Rc;

const NOW: u64 = 1_800_000_000_000;
const ISS: &str = "https://idp.test";

fn rsa_jwk() -> Value {
    // RFC 7520 §3.3 public key, as published (n, e).
    let v: Value = serde_json::from_str(include_str!("../../tests/vectors/jose-cookbook/jwk/3_3.rsa_public_key.json")).unwrap();
    json!({"kty": "RSA", "kid": "rsa-1", "n": v["n"], "e": v["e"]})
}

struct Setup {
    host: FakeHost,
    f: Filter,
    es: EsKey,
    ed: EdKey,
}

fn setup(extra: impl FnOnce(&mut Value)) -> Setup {
    let es = EsKey::new("es-1");
    let ed = EdKey::new("ed-1");
    let mut v = json!({"providers": [{"name": "p", "issuer": ISS, "audiences": ["api"],
        "jwks": {"inline": {"keys": [es.jwk(), ed.jwk(), rsa_jwk()]}}}],
        "forward": {"claims_to_headers": {"sub": "x-sub"}}});
    extra(&mut v);
    let host = FakeHost::new(NOW);
    let mut f = Filter::new(Rc::new(config::parse(v.to_string().as_bytes()).unwrap()));
    f.init(&host);
    Setup { host, f, es, ed }
}

fn ok_claims() -> Value {
    json!({"iss": ISS, "aud": "api", "sub": "a", "exp": NOW / 1000 + 300})
}

fn seg(v: &Value) -> String {
    b64::encode(v.to_string().as_bytes())
}

fn raw(header: &Value, claims: &Value, sig: &[u8]) -> String {
    format!("{}.{}.{}", seg(header), seg(claims), b64::encode(sig))
}

fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = format!("{}.{}", seg(header), seg(claims));
    let sig = Hs256.sign(&Hs256Key::new(secret), input.as_bytes());
    format!("{input}.{}", b64::encode(&sig.as_bytes()))
}

fn check(s: &mut Setup, name: &str, token: &str, want: Deny) {
    let before = s.host.counter(Metric::Denied(want));
    let headers = bearer(token);
    let r = RouteInput { method: "GET", path: "/", authority: "a", route_name: None, cluster: None };
    match s.f.on_request(&r, &headers, &s.host) {
        Outcome::Deny(reply) => {
            assert!(reply.status == 401 || reply.status == 400, "{name}: {}", reply.status);
            assert_eq!(s.host.counter(Metric::Denied(want)), before + 1, "{name}: {reply:?}");
        }
        other => panic!("{name}: not refused: {other:?}"),
    }
}

#[test]
fn algorithm_attacks() {
    let mut s = setup(|_| {});
    let c = ok_claims();
    let rsa = rsa_jwk();
    let pem_like = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", rsa["n"].as_str().unwrap());
    let es_pub = s.es.jwk();
    let cases: Vec<(&str, String, Deny)> = vec![
        ("none", raw(&json!({"alg": "none"}), &c, b""), Deny::Algorithm),
        ("None with kid", raw(&json!({"alg": "None", "kid": "es-1"}), &c, b""), Deny::Algorithm),
        ("NONE", raw(&json!({"alg": "NONE"}), &c, b""), Deny::Algorithm),
        ("HS256 keyed with the RSA public key (PEM)", hs256(&json!({"alg": "HS256", "kid": "rsa-1"}), &c, pem_like.as_bytes()), Deny::Algorithm),
        ("HS256 keyed with the RSA JWK JSON", hs256(&json!({"alg": "HS256", "kid": "rsa-1"}), &c, rsa.to_string().as_bytes()), Deny::Algorithm),
        ("HS256 keyed with the raw modulus", hs256(&json!({"alg": "HS256", "kid": "rsa-1"}), &c, &b64::decode(rsa["n"].as_str().unwrap().as_bytes()).unwrap()), Deny::Algorithm),
        ("HS256 keyed with the EC JWK", hs256(&json!({"alg": "HS256", "kid": "es-1"}), &c, es_pub.to_string().as_bytes()), Deny::Algorithm),
        ("ES256 naming the RSA key", s.es.token_with_header(&json!({"alg": "ES256", "kid": "rsa-1"}), &c), Deny::Algorithm),
        ("EdDSA naming the EC key", raw(&json!({"alg": "EdDSA", "kid": "es-1"}), &c, &[0; 64]), Deny::Algorithm),
        ("PS256", raw(&json!({"alg": "PS256", "kid": "rsa-1"}), &c, &[1; 256]), Deny::Algorithm),
        ("ES384", raw(&json!({"alg": "ES384", "kid": "es-1"}), &c, &[1; 96]), Deny::Algorithm),
        ("es256 lowercase", raw(&json!({"alg": "es256", "kid": "es-1"}), &c, &[1; 64]), Deny::Algorithm),
        ("alg missing", raw(&json!({"kid": "es-1"}), &c, &[1; 64]), Deny::Algorithm),
        ("alg not a string", raw(&json!({"alg": ["ES256"], "kid": "es-1"}), &c, &[1; 64]), Deny::Malformed),
    ];
    for (name, t, want) in cases {
        check(&mut s, name, &t, want);
    }
}

#[test]
fn key_and_signature_attacks() {
    let mut s = setup(|_| {});
    let c = ok_claims();
    let attacker = EsKey::new("es-1");
    let good = s.es.token(&c);
    let (input, sig64) = good.rsplit_once('.').unwrap();
    let sig = b64::decode(sig64.as_bytes()).unwrap();
    let n = hex_n();
    let mut r_eq_n = n.to_vec();
    r_eq_n.extend_from_slice(&sig[32..]);
    let mut high = sig.clone();
    high.push(0);
    let cases: Vec<(&str, String, Deny)> = vec![
        ("embedded jwk", attacker.token_with_header(&json!({"alg": "ES256", "kid": "es-1", "jwk": attacker.jwk()}), &c), Deny::Signature),
        ("jku", attacker.token_with_header(&json!({"alg": "ES256", "kid": "es-1", "jku": "https://evil/jwks"}), &c), Deny::Signature),
        ("x5u", attacker.token_with_header(&json!({"alg": "ES256", "kid": "es-1", "x5u": "https://evil/cert"}), &c), Deny::Signature),
        ("x5c", attacker.token_with_header(&json!({"alg": "ES256", "kid": "es-1", "x5c": ["MIIB"]}), &c), Deny::Signature),
        ("unknown kid", attacker.token_with_header(&json!({"alg": "ES256", "kid": "nope"}), &c), Deny::UnknownKid),
        ("path-like kid", attacker.token_with_header(&json!({"alg": "ES256", "kid": "../../../../etc/passwd"}), &c), Deny::UnknownKid),
        ("huge kid", attacker.token_with_header(&json!({"alg": "ES256", "kid": "k".repeat(5000)}), &c), Deny::Malformed),
        ("numeric kid", attacker.token_with_header(&json!({"alg": "ES256", "kid": 1}), &c), Deny::Malformed),
        ("psychic r=s=0", format!("{input}.{}", b64::encode(&[0u8; 64])), Deny::Signature),
        ("r = n", format!("{input}.{}", b64::encode(&r_eq_n)), Deny::Signature),
        ("63-byte signature", format!("{input}.{}", b64::encode(&sig[..63])), Deny::Signature),
        ("65-byte signature", format!("{input}.{}", b64::encode(&high)), Deny::Signature),
        ("DER signature", format!("{input}.{}", b64::encode(&der(&sig))), Deny::Signature),
        ("stripped signature", format!("{input}."), Deny::Signature),
        ("Ed25519 all-zero signature", raw(&json!({"alg": "EdDSA", "kid": "ed-1"}), &c, &[0; 64]), Deny::Signature),
        ("Ed25519 S >= L", ed_s_plus_l(&s.ed, &c), Deny::Signature),
    ];
    for (name, t, want) in cases {
        check(&mut s, name, &t, want);
    }
    // And the untouched token passes: the cases above fail for their attack, not for setup.
    let headers = bearer(&good);
    let r = RouteInput { method: "GET", path: "/", authority: "a", route_name: None, cluster: None };
    assert!(matches!(s.f.on_request(&r, &headers, &s.host), Outcome::Allow(_)));
    let ed_ok = s.ed.token(&c);
    let headers = bearer(&ed_ok);
    assert!(matches!(s.f.on_request(&r, &headers, &s.host), Outcome::Allow(_)));
}

/// The P-256 group order n, big-endian.
fn hex_n() -> [u8; 32] {
    let h = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
    let mut n = [0u8; 32];
    for i in 0..32 {
        n[i] = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap();
    }
    n
}

fn der(sig: &[u8]) -> Vec<u8> {
    let int = |x: &[u8]| {
        let mut v = x.to_vec();
        if v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    };
    let (r, s) = (int(&sig[..32]), int(&sig[32..]));
    let mut out = vec![0x30, (r.len() + s.len()) as u8];
    out.extend(r);
    out.extend(s);
    out
}

/// A valid Ed25519 signature with L added to S (malleability; RFC 8032 requires S < L).
fn ed_s_plus_l(k: &EdKey, c: &Value) -> String {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let t = k.token(c);
    let (input, s64) = t.rsplit_once('.').unwrap();
    let mut sig = b64::decode(s64.as_bytes()).unwrap();
    let mut carry = 0u16;
    for i in 0..32 {
        let v = sig[32 + i] as u16 + L[i] as u16 + carry;
        sig[32 + i] = v as u8;
        carry = v >> 8;
    }
    format!("{input}.{}", b64::encode(&sig))
}

#[test]
fn claim_attacks() {
    let mut s = setup(|_| {});
    let with = |k: &str, v: Value| {
        let mut c = ok_claims();
        c[k] = v;
        c
    };
    let auds = |n: usize| {
        let mut v: Vec<String> = (0..n).map(|i| format!("aud-{i}")).collect();
        v.push("api".into());
        json!(v)
    };
    let cases: Vec<(&str, Value, Deny)> = vec![
        // Over max_token_bytes before anything else is looked at.
        ("5000 audiences", with("aud", auds(5000)), Deny::Malformed),
        // Fits the size cap, but more audiences than the filter compares (128).
        ("200 audiences", with("aud", auds(200)), Deny::Audience),
        ("aud prefix trick", with("aud", json!("api.evil")), Deny::Audience),
        ("aud case", with("aud", json!("API")), Deny::Audience),
        ("aud trailing slash", with("aud", json!("api/")), Deny::Audience),
        ("aud empty array", with("aud", json!([])), Deny::Audience),
        ("aud null", with("aud", Value::Null), Deny::Audience),
        ("iss trailing slash", with("iss", json!("https://idp.test/")), Deny::Issuer),
        ("iss prefix", with("iss", json!("https://idp.test.evil")), Deny::Issuer),
        ("iss not a string", with("iss", json!(["https://idp.test"])), Deny::Issuer),
        ("exp string", with("exp", json!("1900000000")), Deny::Claims),
        ("exp negative", with("exp", json!(-5)), Deny::Claims),
        ("exp bool", with("exp", json!(true)), Deny::Claims),
        ("exp object", with("exp", json!({"$numberLong": "1"})), Deny::Claims),
        ("exp past", with("exp", json!(NOW / 1000 - 3600)), Deny::Expired),
        ("nbf future", with("nbf", json!(NOW / 1000 + 3600)), Deny::NotYetValid),
        ("sub with CR LF", with("sub", json!("a\r\nx-admin: true")), Deny::HeaderValue),
        ("sub with NUL", with("sub", json!("a\u{0}b")), Deny::HeaderValue),
        ("sub with DEL", with("sub", json!("a\u{7f}")), Deny::HeaderValue),
    ];
    for (name, c, want) in cases {
        let t = s.es.token(&c);
        check(&mut s, name, &t, want);
    }
    // Duplicate members anywhere in the payload, and exp: 1e400, never parse.
    let h = seg(&json!({"alg": "ES256", "kid": "es-1"}));
    for (name, payload) in [
        ("duplicate exp", format!(r#"{{"iss":"{ISS}","aud":"api","sub":"a","exp":1,"exp":{}}}"#, NOW / 1000 + 300)),
        ("duplicate aud", format!(r#"{{"iss":"{ISS}","aud":"x","aud":"api","sub":"a","exp":{}}}"#, NOW / 1000 + 300)),
        ("duplicate sub", format!(r#"{{"iss":"{ISS}","aud":"api","sub":"a","sub":"admin","exp":{}}}"#, NOW / 1000 + 300)),
        ("exp 1e400", format!(r#"{{"iss":"{ISS}","aud":"api","sub":"a","exp":1e400}}"#)),
    ] {
        let input = format!("{h}.{}", b64::encode(payload.as_bytes()));
        let t = format!("{input}.{}", b64::encode(&s.es.sign(input.as_bytes())));
        check(&mut s, name, &t, Deny::Malformed);
    }
    // A fractional NumericDate is valid (RFC 7519 §2).
    let t = s.es.token(&with("exp", json!((NOW / 1000) as f64 + 300.5)));
    let headers = bearer(&t);
    let r = RouteInput { method: "GET", path: "/", authority: "a", route_name: None, cluster: None };
    assert!(matches!(s.f.on_request(&r, &headers, &s.host), Outcome::Allow(_)));
}

#[test]
fn typ_policy() {
    let mut s = setup(|_| {});
    let c = ok_claims();
    for typ in ["dpop+jwt", "JOSE", "secevent+jwt", "id_token"] {
        let t = s.es.token_with_header(&json!({"alg": "ES256", "kid": "es-1", "typ": typ}), &c);
        check(&mut s, typ, &t, Deny::TokenType);
    }
    // Only access tokens when configured: absent and plain JWT refused.
    let mut s = setup(|v| v["providers"][0]["token_types"] = json!(["at+jwt"]));
    let c = ok_claims();
    let t = s.es.token_with_header(&json!({"alg": "ES256", "kid": "es-1", "typ": "JWT"}), &c);
    check(&mut s, "JWT when only at+jwt", &t, Deny::TokenType);
    let t = s.es.token_with_header(&json!({"alg": "ES256", "kid": "es-1"}), &c);
    check(&mut s, "absent when only at+jwt", &t, Deny::TokenType);
    let t = s.es.token_with_header(&json!({"alg": "ES256", "kid": "es-1", "typ": "application/at+jwt"}), &c);
    let headers = bearer(&t);
    let r = RouteInput { method: "GET", path: "/", authority: "a", route_name: None, cluster: None };
    assert!(matches!(s.f.on_request(&r, &headers, &s.host), Outcome::Allow(_)));
}

/// An oversized key set is capped: the first `MAX_JWKS_KEYS` usable keys are kept (each is prepared
/// at load, an ES256 table costs milliseconds), the rest are reported, not silently dropped.
#[test]
fn oversized_jwks_is_capped() {
    use crate::jose::jwk::{parse_jwks, MAX_JWKS_KEYS};
    let keys: Vec<Value> = (0..MAX_JWKS_KEYS + 8).map(|i| EdKey::new(&format!("k{i}")).jwk()).collect();
    let (set, rejected) = parse_jwks(&super::support::jwks(&keys)).unwrap();
    assert_eq!(set.keys.len(), MAX_JWKS_KEYS);
    assert_eq!(rejected.len(), 8);
    assert_eq!(rejected[0].0, MAX_JWKS_KEYS);
    assert!(rejected[0].1 .0.contains("more are ignored"), "{}", rejected[0].1);
    assert!(set.has_kid(&format!("k{}", MAX_JWKS_KEYS - 1)) && !set.has_kid(&format!("k{MAX_JWKS_KEYS}")));
}
