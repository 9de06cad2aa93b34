//! Sender-constrained tokens, natively: DPoP proofs (RFC 9449) made by real client keys, and
//! certificate binding (RFC 8705), through the whole request flow.

use super::support::{claims, filter_at, EdKey, EsKey};
use crate::host::Host;
use crate::dpop::{self, normalize_htu, ProofKeys};
use crate::flow::Outcome;
use crate::jose::{b64, jwk};
use crate::metrics::{Deny, Metric};
use crate::route::RouteInput;
use crate::testing::FakeHost;
use serde_json::{json, Value};

const NOW: u64 = 1_800_000_000_000;
const ISS: &str = "https://idp.example.com";
const URL: &str = "https://api.ecomm.com/orders/1";

/// A DPoP client: its key pair and how it signs proofs.
enum Client {
    Es(EsKey),
    Ed(EdKey),
}

impl Client {
    fn public_jwk(&self) -> Value {
        let mut j = match self {
            Client::Es(k) => k.jwk(),
            Client::Ed(k) => k.jwk(),
        };
        j.as_object_mut().unwrap().remove("kid");
        j
    }
    fn jkt(&self) -> String {
        jwk::thumbprint(self.public_jwk().as_object().unwrap()).unwrap()
    }
    fn alg(&self) -> &'static str {
        match self {
            Client::Es(_) => "ES256",
            Client::Ed(_) => "EdDSA",
        }
    }
    fn sign_jws(&self, header: &Value, payload: &Value) -> String {
        let input = format!("{}.{}", b64::encode(header.to_string().as_bytes()), b64::encode(payload.to_string().as_bytes()));
        let sig = match self {
            Client::Es(k) => k.sign(input.as_bytes()),
            Client::Ed(k) => k.kp.sk.sign(input.as_bytes(), None).as_ref().to_vec(),
        };
        format!("{input}.{}", b64::encode(&sig))
    }
    fn claims(&self, method: &str, url: &str, token: &str, iat_ms: u64, jti: &str) -> Value {
        json!({"htm": method, "htu": url, "iat": iat_ms / 1000, "jti": jti, "ath": dpop::ath(token)})
    }
    fn proof(&self, method: &str, url: &str, token: &str, iat_ms: u64, jti: &str) -> String {
        let header = json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.public_jwk()});
        self.sign_jws(&header, &self.claims(method, url, token, iat_ms, jti))
    }
}

fn es() -> Client {
    Client::Es(EsKey::new("client"))
}

fn config(idp: &EsKey, provider_extra: Value) -> Value {
    let mut p = json!({"name": "idp", "issuer": ISS, "audiences": ["api"], "jwks": {"inline": {"keys": [idp.jwk()]}}});
    for (k, v) in provider_extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    json!({"providers": [p], "forward": {"principal_header": "x-principal"}, "cache": {"max_entries": 100}})
}

fn bound_token(idp: &EsKey, cnf: Value) -> String {
    let mut c = claims(ISS, "api", "alice", NOW);
    c["cnf"] = cnf;
    idp.token(&c)
}

fn request(method: &str, auth: &str, proofs: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut h = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":scheme".to_string(), b"https".to_vec()),
        (":authority".to_string(), b"api.ecomm.com".to_vec()),
        (":path".to_string(), b"/orders/1?page=2".to_vec()),
        ("authorization".to_string(), auth.as_bytes().to_vec()),
    ];
    for p in proofs {
        h.push(("dpop".to_string(), p.as_bytes().to_vec()));
    }
    h
}

fn route(method: &str) -> RouteInput<'_> {
    RouteInput { method, path: "/orders/1?page=2", authority: "api.ecomm.com", route_name: None, cluster: None }
}

fn decide(f: &mut crate::flow::Filter, host: &FakeHost, headers: &[(String, Vec<u8>)]) -> Result<(), (Deny, u32, String)> {
    let before: Vec<u64> = Deny::ALL.iter().map(|d| host.counter(Metric::Denied(*d))).collect();
    let method = headers.iter().find(|(k, _)| k == ":method").map(|(_, v)| String::from_utf8(v.clone()).unwrap()).unwrap();
    match f.on_request(&route(&method), headers, host) {
        Outcome::Allow(_) => Ok(()),
        Outcome::Deny(r) => {
            let d = Deny::ALL.iter().zip(before).find(|(d, b)| host.counter(Metric::Denied(**d)) > *b).map(|(d, _)| *d).unwrap();
            let www = r.headers.iter().find(|(k, _)| k == "www-authenticate").map(|(_, v)| v.clone()).unwrap_or_default();
            Err((d, r.status, www))
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn reason(r: Result<(), (Deny, u32, String)>) -> Deny {
    r.err().map(|(d, _, _)| d).unwrap_or_else(|| panic!("allowed"))
}

#[test]
fn rfc7638_thumbprint_example() {
    let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    let k = json!({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"});
    assert_eq!(jwk::thumbprint(k.as_object().unwrap()).as_deref(), Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
    assert_eq!(jwk::thumbprint(json!({"kty": "oct", "k": "AAAA"}).as_object().unwrap()), None);
    assert_eq!(jwk::thumbprint(json!({"kty": "EC", "crv": "P-256", "x": "AA"}).as_object().unwrap()), None, "y missing");
}

#[test]
fn htu_normalisation() {
    let want = "https://api.ecomm.com/orders/1";
    for htu in [
        "https://api.ecomm.com/orders/1",
        "HTTPS://API.ecomm.COM/orders/1",
        "https://api.ecomm.com:443/orders/1",
        "https://api.ecomm.com/orders/1?x=1#frag",
        "https://api.ecomm.com/orders/./1",
        "https://api.ecomm.com/a/../orders/1",
        "https://api.ecomm.com/%6Frders/1",
    ] {
        assert_eq!(normalize_htu(htu).as_deref(), Some(want), "{htu}");
    }
    for other in ["http://api.ecomm.com/orders/1", "https://api.ecomm.com:8443/orders/1", "https://api.ecomm.com/orders/1/", "https://evil.com/orders/1", "https://api.ecomm.com/Orders/1"] {
        assert_ne!(normalize_htu(other).as_deref(), Some(want), "{other}");
    }
    assert_eq!(normalize_htu("https://api.ecomm.com").as_deref(), Some("https://api.ecomm.com/"));
    assert_eq!(normalize_htu("ftp://x/y"), None);
    assert_eq!(normalize_htu("https://x/%zz"), None);
    assert_eq!(dpop::expected_htu(None, "https", "API.ecomm.com:443", "/orders/1?page=2").as_deref(), Some(want));
    assert_eq!(dpop::expected_htu(Some("https://api.ecomm.com"), "http", "10.0.0.1:8080", "/orders/1").as_deref(), Some(want));
}

#[test]
fn a_valid_proof_is_accepted_once_and_the_token_stays_cached() {
    let idp = EsKey::new("idp");
    let c = es();
    let (host, mut f) = filter_at(&config(&idp, json!({"dpop": {}})), NOW);
    let tok = bound_token(&idp, json!({"jkt": c.jkt()}));
    let auth = format!("DPoP {tok}");
    let p1 = c.proof("GET", URL, &tok, NOW, "j1");
    assert_eq!(decide(&mut f, &host, &request("GET", &auth, &[&p1])), Ok(()));
    assert_eq!(host.counter(Metric::DpopOk), 1);
    // The same proof again: a replay.
    let r = decide(&mut f, &host, &request("GET", &auth, &[&p1]));
    let (d, status, www) = r.unwrap_err();
    assert_eq!((d, status), (Deny::DpopReplay, 401));
    assert!(www.starts_with("DPoP ") && www.contains("error=\"invalid_dpop_proof\"") && www.contains("algs=\"ES256 EdDSA\""), "{www}");
    // A new proof: allowed; the token came from the cache (the proof never does).
    let p2 = c.proof("GET", URL, &tok, NOW, "j2");
    assert_eq!(decide(&mut f, &host, &request("GET", &auth, &[&p2])), Ok(()));
    assert!(host.counter(Metric::CacheHit) >= 2);
    // Another VM (worker) sees the first worker's jtis: replay across workers.
    let mut f2 = crate::flow::Filter::new(f.cfg.clone());
    f2.init(&host);
    assert_eq!(reason(decide(&mut f2, &host, &request("GET", &auth, &[&p2]))), Deny::DpopReplay);
    // After the window the jti is forgotten, but the proof is too old by then.
    host.advance(70_000);
    assert_eq!(reason(decide(&mut f, &host, &request("GET", &auth, &[&p1]))), Deny::DpopIssuedAt);
}

#[test]
fn every_bad_proof_is_refused_with_its_reason() {
    let idp = EsKey::new("idp");
    let c = es();
    let other = es();
    let (host, mut f) = filter_at(&config(&idp, json!({"dpop": {}})), NOW);
    let tok = bound_token(&idp, json!({"jkt": c.jkt()}));
    let other_tok = bound_token(&idp, json!({"jkt": c.jkt(), "x": 1}));
    let auth = format!("DPoP {tok}");
    let hdr = |alg: &str, jwk: Value| json!({"typ": "dpop+jwt", "alg": alg, "jwk": jwk});
    let body = |jti: &str| c.claims("GET", URL, &tok, NOW, jti);
    let mut private = c.public_jwk();
    private["d"] = json!(b64::encode(&[7u8; 32]));
    let unsigned = |h: Value, p: Value| format!("{}.{}.", b64::encode(h.to_string().as_bytes()), b64::encode(p.to_string().as_bytes()));
    let cases: Vec<(&str, Vec<String>, &str, Deny)> = vec![
        ("no proof", vec![], "GET", Deny::DpopMissing),
        ("two proofs", vec![c.proof("GET", URL, &tok, NOW, "a1"), c.proof("GET", URL, &tok, NOW, "a2")], "GET", Deny::DpopMultiple),
        ("joined", vec![format!("{},{}", c.proof("GET", URL, &tok, NOW, "a3"), c.proof("GET", URL, &tok, NOW, "a4"))], "GET", Deny::DpopMultiple),
        ("garbage", vec!["not-a-jws".into()], "GET", Deny::DpopMalformed),
        ("typ JWT", vec![c.sign_jws(&json!({"typ": "JWT", "alg": "ES256", "jwk": c.public_jwk()}), &body("b1"))], "GET", Deny::DpopType),
        ("alg none", vec![unsigned(json!({"typ": "dpop+jwt", "alg": "none", "jwk": c.public_jwk()}), body("b2"))], "GET", Deny::DpopAlgorithm),
        ("HS256", vec![unsigned(hdr("HS256", json!({"kty": "oct", "k": "c2VjcmV0"})), body("b3"))], "GET", Deny::DpopAlgorithm),
        ("RS256 not allowed", vec![unsigned(hdr("RS256", c.public_jwk()), body("b4"))], "GET", Deny::DpopAlgorithm),
        ("alg not the key's", vec![c.sign_jws(&hdr("EdDSA", c.public_jwk()), &body("b5"))], "GET", Deny::DpopAlgorithm),
        ("no jwk", vec![c.sign_jws(&json!({"typ": "dpop+jwt", "alg": "ES256"}), &body("b6"))], "GET", Deny::DpopKey),
        ("private key", vec![c.sign_jws(&hdr("ES256", private), &body("b7"))], "GET", Deny::DpopKey),
        ("bad signature", vec![{
            // A character inside the signature (the last one also carries padding bits, which
            // the strict base64url decoder checks first).
            let mut p = c.proof("GET", URL, &tok, NOW, "b8").into_bytes();
            let at = p.len() - 10;
            p[at] = if p[at] == b'A' { b'B' } else { b'A' };
            String::from_utf8(p).unwrap()
        }], "GET", Deny::DpopSignature),
        ("other method", vec![c.proof("POST", URL, &tok, NOW, "c1")], "GET", Deny::DpopMethod),
        ("other URL", vec![c.proof("GET", "https://api.ecomm.com/orders/2", &tok, NOW, "c2")], "GET", Deny::DpopUrl),
        ("other host", vec![c.proof("GET", "https://evil.example/orders/1", &tok, NOW, "c3")], "GET", Deny::DpopUrl),
        ("from the future", vec![c.proof("GET", URL, &tok, NOW + 30_000, "c4")], "GET", Deny::DpopIssuedAt),
        ("too old", vec![c.proof("GET", URL, &tok, NOW - 120_000, "c5")], "GET", Deny::DpopIssuedAt),
        ("no jti", vec![c.sign_jws(&hdr("ES256", c.public_jwk()), &json!({"htm": "GET", "htu": URL, "iat": NOW / 1000, "ath": dpop::ath(&tok)}))], "GET", Deny::DpopJti),
        ("ath of another token", vec![c.proof("GET", URL, &other_tok, NOW, "c6")], "GET", Deny::DpopAccessTokenHash),
        ("no ath", vec![c.sign_jws(&hdr("ES256", c.public_jwk()), &json!({"htm": "GET", "htu": URL, "iat": NOW / 1000, "jti": "c7"}))], "GET", Deny::DpopAccessTokenHash),
        ("another key than cnf.jkt", vec![other.proof("GET", URL, &tok, NOW, "c8")], "GET", Deny::DpopBinding),
    ];
    for (name, proofs, method, want) in cases {
        let refs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let r = decide(&mut f, &host, &request(method, &auth, &refs));
        let (d, status, www) = r.unwrap_err();
        assert_eq!((d, status), (want, 401), "{name}");
        assert!(www.starts_with("DPoP "), "{name}: {www}");
    }
    // None of the refused proofs took a replay slot, and a good one still passes.
    assert_eq!(decide(&mut f, &host, &request("GET", &auth, &[&c.proof("GET", URL, &tok, NOW, "ok")])), Ok(()));
}

#[test]
fn bearer_and_scheme_mismatches() {
    let idp = EsKey::new("idp");
    let c = es();
    let bound = bound_token(&idp, json!({"jkt": c.jkt()}));
    let plain = idp.token(&claims(ISS, "api", "bob", NOW));
    // DPoP required: neither a bound nor an unbound token as Bearer.
    let (host, mut f) = filter_at(&config(&idp, json!({"dpop": {"required": true}})), NOW);
    assert_eq!(reason(decide(&mut f, &host, &request("GET", &format!("Bearer {bound}"), &[]))), Deny::DpopBearer);
    assert_eq!(reason(decide(&mut f, &host, &request("GET", &format!("Bearer {plain}"), &[]))), Deny::DpopBearer);
    let p = c.proof("GET", URL, &plain, NOW, "u1");
    assert_eq!(reason(decide(&mut f, &host, &request("GET", &format!("DPoP {plain}"), &[&p]))), Deny::DpopUnbound);
    // Not required: bearer tokens pass, a bound one as Bearer never does.
    let (host, mut f) = filter_at(&config(&idp, json!({"dpop": {"required": false}})), NOW);
    assert_eq!(decide(&mut f, &host, &request("GET", &format!("Bearer {plain}"), &[])), Ok(()));
    assert_eq!(reason(decide(&mut f, &host, &request("GET", &format!("Bearer {bound}"), &[]))), Deny::DpopBearer);
    // No DPoP configured at all: a bound token is still no bearer token, and the DPoP scheme is
    // not a token source.
    let (host, mut f) = filter_at(&config(&idp, json!({})), NOW);
    assert_eq!(reason(decide(&mut f, &host, &request("GET", &format!("Bearer {bound}"), &[]))), Deny::DpopBearer);
    assert_eq!(reason(decide(&mut f, &host, &request("GET", &format!("DPoP {bound}"), &[&c.proof("GET", URL, &bound, NOW, "u2")]))), Deny::Missing);
}

#[test]
fn eddsa_proofs_and_the_key_table_choice() {
    let idp = EsKey::new("idp");
    let c = Client::Ed(EdKey::new("client"));
    let (host, mut f) = filter_at(&config(&idp, json!({"dpop": {"algorithms": ["EdDSA"]}})), NOW);
    let tok = bound_token(&idp, json!({"jkt": c.jkt()}));
    let auth = format!("DPoP {tok}");
    for i in 0..4 {
        let p = c.proof("GET", URL, &tok, NOW, &format!("e{i}"));
        assert_eq!(decide(&mut f, &host, &request("GET", &auth, &[&p])), Ok(()), "proof {i}");
    }
    // ES256 is not allowed on this provider.
    let es_client = es();
    let tok2 = bound_token(&idp, json!({"jkt": es_client.jkt()}));
    let p = es_client.proof("GET", URL, &tok2, NOW, "x");
    assert_eq!(reason(decide(&mut f, &host, &request("GET", &format!("DPoP {tok2}"), &[&p]))), Deny::DpopAlgorithm);

    // ProofKeys: a key seen once is not kept; at its second valid proof it is (and from then on
    // verified with its table).
    let cfg = crate::config::parse(config(&idp, json!({"dpop": {}})).to_string().as_bytes()).unwrap();
    let d = cfg.providers[0].dpop.clone().unwrap();
    let c = es();
    let tok = bound_token(&idp, json!({"jkt": c.jkt()}));
    let htu = dpop::expected_htu(None, "https", "api.ecomm.com", "/orders/1").unwrap();
    let req = dpop::ProofRequest { method: "GET", htu: &htu, access_token: &tok, now_ms: NOW };
    let mut keys = ProofKeys::new(2);
    for i in 0..3 {
        let p = c.proof("GET", URL, &tok, NOW, &format!("k{i}"));
        assert!(dpop::check(&d, &[p.as_bytes()], &req, &mut keys, &|_| true).is_ok());
        assert_eq!(keys.tabled(&c.jkt()), i >= 1, "after proof {i}");
    }
}

/// Two workers configured at once both find the nonce secret missing: the second one's write
/// fails, so the nonces the first one issued stay valid.
#[test]
fn the_nonce_secret_is_made_once() {
    let idp = EsKey::new("idp");
    let (host, f) = filter_at(&config(&idp, json!({"dpop": {"nonce": {"lifetime_seconds": 60}}})), NOW);
    let before = host.shared_values();
    *host.stale.borrow_mut() = Some("dpop-nonce-secret".into());
    let mut f2 = crate::flow::Filter::new(f.cfg.clone());
    f2.init(&host);
    *host.stale.borrow_mut() = None;
    assert_eq!(host.shared_values(), before);
    // An unusable value there (not 32 bytes) is replaced.
    let key = host.shared_keys().into_iter().find(|k| k.contains("dpop-nonce-secret")).unwrap();
    host.shared_set(&key, b"short", None).unwrap();
    let mut f3 = crate::flow::Filter::new(f.cfg.clone());
    f3.init(&host);
    assert_eq!(host.shared_get(&key).unwrap().0.len(), 32);
}

#[test]
fn server_nonces() {
    let idp = EsKey::new("idp");
    let c = es();
    let (host, mut f) = filter_at(&config(&idp, json!({"dpop": {"nonce": {"lifetime_seconds": 60}}})), NOW);
    let tok = bound_token(&idp, json!({"jkt": c.jkt()}));
    let auth = format!("DPoP {tok}");
    let route_ = route("GET");
    let ask = |f: &mut crate::flow::Filter, proof: &str| f.on_request(&route_, &request("GET", &auth, &[proof]), &host);
    let nonce = match ask(&mut f, &c.proof("GET", URL, &tok, NOW, "n1")) {
        Outcome::Deny(r) => {
            let www = r.headers.iter().find(|(k, _)| k == "www-authenticate").unwrap().1.clone();
            assert!(www.contains("error=\"use_dpop_nonce\""), "{www}");
            r.headers.iter().find(|(k, _)| k == "dpop-nonce").unwrap().1.clone()
        }
        o => panic!("{o:?}"),
    };
    assert_eq!(host.counter(Metric::Denied(Deny::DpopNonce)), 1);
    let p = {
        let mut body = c.claims("GET", URL, &tok, NOW, "n3");
        body["nonce"] = json!(nonce);
        c.sign_jws(&json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": c.public_jwk()}), &body)
    };
    assert!(matches!(ask(&mut f, &p), Outcome::Allow(_)));
    let forged = {
        let mut body = c.claims("GET", URL, &tok, NOW, "n4");
        body["nonce"] = json!(b64::encode(&[0u8; 24]));
        c.sign_jws(&json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": c.public_jwk()}), &body)
    };
    assert!(matches!(ask(&mut f, &forged), Outcome::Deny(_)));
    // Two windows later the nonce is stale.
    host.advance(125_000);
    let stale = {
        let mut body = c.claims("GET", URL, &tok, NOW + 125_000, "n5");
        body["nonce"] = json!(nonce);
        c.sign_jws(&json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": c.public_jwk()}), &body)
    };
    assert!(matches!(ask(&mut f, &stale), Outcome::Deny(_)));
    assert_eq!(host.counter(Metric::Denied(Deny::DpopNonce)), 3);
}

#[test]
fn certificate_binding() {
    let idp = EsKey::new("idp");
    let cert_hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let x5t = crate::sender::hex_to_b64(cert_hex).unwrap();
    let bound = bound_token(&idp, json!({"x5t#S256": x5t}));
    let plain = idp.token(&claims(ISS, "api", "bob", NOW));
    let (host, mut f) = filter_at(&config(&idp, json!({"certificate_binding": {"required": true}})), NOW);
    let r = route("GET");
    let hdrs = |t: &str| vec![("authorization".to_string(), format!("Bearer {t}").into_bytes())];
    let other_hex = cert_hex.replace('0', "f");
    let run = |f: &mut crate::flow::Filter, t: &str, cert: Option<&str>| match f.on_request_with(&r, &hdrs(t), crate::flow::Connection { peer_cert_sha256: cert, source_address: None }, &host) {
        Outcome::Allow(_) => None,
        Outcome::Deny(_) => Some(()),
        o => panic!("{o:?}"),
    };
    assert_eq!(run(&mut f, &bound, Some(cert_hex)), None);
    assert_eq!(host.counter(Metric::CertificateBound), 1);
    assert_eq!(run(&mut f, &bound, Some(cert_hex)), None, "again, from the cache");
    // Answered from the forwarded decision kept for it (the same plan), the certificate still
    // checked on each request, against that request's connection.
    let plan = |f: &mut crate::flow::Filter, cert: Option<&str>| match f.on_request_with(&r, &hdrs(&bound), crate::flow::Connection { peer_cert_sha256: cert, source_address: None }, &host) {
        Outcome::Allow(p) => p,
        o => panic!("{o:?}"),
    };
    let (a, b) = (plan(&mut f, Some(cert_hex)), plan(&mut f, Some(cert_hex)));
    assert!(std::rc::Rc::ptr_eq(&a, &b), "the kept plan");
    assert_eq!((host.counter(Metric::CertificateBound), host.counter(Metric::Allowed), host.counter(Metric::CacheHit)), (4, 4, 3));
    assert!(run(&mut f, &bound, None).is_some());
    assert_eq!(host.counter(Metric::Denied(Deny::CertificateMissing)), 1);
    assert!(run(&mut f, &bound, Some(&other_hex)).is_some());
    assert_eq!(host.counter(Metric::Denied(Deny::CertificateMismatch)), 1);
    assert!(run(&mut f, &bound, Some("")).is_some(), "an empty digest is no certificate");
    assert_eq!(host.counter(Metric::Denied(Deny::CertificateMissing)), 2);
    assert_eq!((host.counter(Metric::Allowed), host.counter(Metric::CertificateBound)), (4, 4), "a refused request is not counted allowed");
    assert_eq!(run(&mut f, &bound, Some(cert_hex)), None, "its own certificate again");
    assert!(run(&mut f, &plain, Some(cert_hex)).is_some());
    assert_eq!(host.counter(Metric::Denied(Deny::CertificateUnbound)), 1);
    // Not required: unbound tokens pass, bound ones still need their certificate.
    let (host2, mut f) = filter_at(&config(&idp, json!({"certificate_binding": {"required": false}})), NOW);
    let run2 = |f: &mut crate::flow::Filter, t: &str, cert: Option<&str>| matches!(f.on_request_with(&r, &hdrs(t), crate::flow::Connection { peer_cert_sha256: cert, source_address: None }, &host2), Outcome::Allow(_));
    assert!(run2(&mut f, &plain, None));
    assert!(!run2(&mut f, &bound, None));
    assert!(run2(&mut f, &bound, Some(cert_hex)));
}

#[test]
fn config_errors_name_the_field() {
    let idp = EsKey::new("idp");
    for (extra, field) in [
        (json!({"dpop": {"max_age_seconds": 0}}), "providers[0].dpop.max_age_seconds"),
        (json!({"dpop": {"algorithms": ["HS256"]}}), "providers[0].dpop.algorithms[0]"),
        (json!({"dpop": {"algorithms": []}}), "providers[0].dpop.algorithms"),
        (json!({"dpop": {"htu_origin": "https://api.ecomm.com/path"}}), "providers[0].dpop.htu_origin"),
        (json!({"dpop": {"replay_cache_entries": 1}}), "providers[0].dpop.replay_cache_entries"),
        (json!({"dpop": {"nonce": {"lifetime_seconds": 1}}}), "providers[0].dpop.nonce.lifetime_seconds"),
        (json!({"dpop": {"bogus": 1}}), "providers[0].dpop"),
    ] {
        let e = crate::config::parse(config(&idp, extra.clone()).to_string().as_bytes()).err().unwrap_or_else(|| panic!("{extra} accepted"));
        assert!(e.field.starts_with(field), "{extra}: {e}");
    }
}
