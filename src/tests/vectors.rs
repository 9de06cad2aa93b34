//! Public test vectors (tests/vectors, copied from their sources: see its SOURCES.md) through the filter's own JOSE path:
//! `jwk::parse_jwk` → `verify::verify` for the Wycheproof primitive files, and
//! `jws::parse_compact` → `verify::verify_with_keys` for the JOSE-level files. Any vector decided
//! wrongly fails the test (`acceptable` may go either way).

use crate::jose::jwk::{self, KeySet};
use crate::jose::{jws, verify, Alg};
use serde_json::{Map, Value};
use std::path::PathBuf;

fn dir() -> PathBuf {
    let d = std::env::var_os("TEF_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors"));
    assert!(d.is_dir(), "test vectors not found at {} (set TEF_VECTORS)", d.display());
    d
}

fn load(rel: &str) -> Value {
    let p = dir().join(rel);
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// A public JWK: private members removed (the filter refuses JWKs that carry them).
fn public(jwk: &Value) -> Map<String, Value> {
    let mut m = jwk.as_object().unwrap().clone();
    for k in ["d", "p", "q", "dp", "dq", "qi", "oth"] {
        m.remove(k);
    }
    m
}

/// The group's JWK; for the few ECDSA groups without one, built from the uncompressed point.
fn group_jwk(g: &Value, field: &str) -> Map<String, Value> {
    if !g[field].is_null() {
        return public(&g[field]);
    }
    let u = hex(g["publicKey"]["uncompressed"].as_str().unwrap());
    assert_eq!((u.len(), u[0]), (65, 4));
    let mut m = Map::new();
    m.insert("kty".into(), "EC".into());
    m.insert("crv".into(), "P-256".into());
    m.insert("x".into(), crate::jose::b64::encode(&u[1..33]).into());
    m.insert("y".into(), crate::jose::b64::encode(&u[33..]).into());
    m
}

struct Tally {
    file: String,
    checked: usize,
    wrong: Vec<String>,
}

impl Tally {
    fn new(file: &str) -> Tally {
        Tally { file: file.into(), checked: 0, wrong: vec![] }
    }
    fn check(&mut self, id: impl std::fmt::Display, result: &str, accepted: bool) {
        self.checked += 1;
        let ok = match result {
            "valid" => accepted,
            "invalid" => !accepted,
            "acceptable" => true,
            other => panic!("unknown result {other}"),
        };
        if !ok {
            self.wrong.push(format!("{id} (expected {result}, accepted={accepted})"));
        }
    }
    fn done(self, at_least: usize) {
        assert!(self.wrong.is_empty(), "{}: {} vectors decided wrongly: {:?}", self.file, self.wrong.len(), self.wrong);
        assert!(self.checked >= at_least, "{}: only {} vectors checked", self.file, self.checked);
        eprintln!("{}: {} vectors, all decided correctly", self.file, self.checked);
    }
}

fn primitive_file(file: &str, jwk_field: &str, alg: Alg, at_least: usize, group_filter: impl Fn(&Value) -> bool) {
    let v = load(file);
    let mut t = Tally::new(file);
    for g in v["testGroups"].as_array().unwrap().iter().filter(|g| group_filter(g)) {
        let key = jwk::parse_jwk(&group_jwk(g, jwk_field)).unwrap_or_else(|e| panic!("{file}: group key: {e}"));
        assert_eq!(key.alg, alg);
        for test in g["tests"].as_array().unwrap() {
            let (msg, sig) = (hex(test["msg"].as_str().unwrap()), hex(test["sig"].as_str().unwrap()));
            let accepted = verify::verify(alg, &key.key, &msg, &sig);
            assert_eq!(verify::verify_untabled(alg, &key.key, &msg, &sig), accepted, "untabled path disagrees: {}", test["tcId"]);
            t.check(format!("tcId {} {}", test["tcId"], test["comment"]), test["result"].as_str().unwrap(), accepted);
        }
    }
    t.done(at_least);
}

#[test]
fn wycheproof_es256_p1363() {
    primitive_file("wycheproof/ecdsa_secp256r1_sha256_p1363_test.json", "publicKeyJwk", Alg::Es256, 262, |_| true);
}

#[test]
fn wycheproof_es256_webcrypto_legacy_p256_subset() {
    primitive_file("wycheproof/legacy_v0/ecdsa_webcrypto_test.json", "jwk", Alg::Es256, 200, |g| {
        g["jwk"]["crv"] == "P-256" && g["sha"] == "SHA-256"
    });
}

#[test]
fn wycheproof_ed25519() {
    primitive_file("wycheproof/ed25519_test.json", "publicKeyJwk", Alg::EdDsa, 150, |_| true);
}

#[test]
fn wycheproof_ed25519_legacy() {
    primitive_file("wycheproof/legacy_v0/eddsa_test.json", "jwk", Alg::EdDsa, 140, |_| true);
}

#[test]
fn wycheproof_rs256_pkcs1_2048() {
    primitive_file("wycheproof/rsa_signature_2048_sha256_test.json", "keyJwk", Alg::Rs256, 259, |_| true);
}

/// A JWS ES256 signature is raw r‖s; ASN.1 DER signatures must never verify.
#[test]
fn wycheproof_es256_der_signatures_are_rejected() {
    let file = "wycheproof/ecdsa_secp256r1_sha256_test.json";
    let v = load(file);
    let mut n = 0;
    for g in v["testGroups"].as_array().unwrap() {
        let key = jwk::parse_jwk(&group_jwk(g, "publicKeyJwk")).unwrap();
        for test in g["tests"].as_array().unwrap() {
            let (msg, sig) = (hex(test["msg"].as_str().unwrap()), hex(test["sig"].as_str().unwrap()));
            let accepted = verify::verify(Alg::Es256, &key.key, &msg, &sig);
            assert_eq!(verify::verify_untabled(Alg::Es256, &key.key, &msg, &sig), accepted, "untabled path disagrees: {}", test["tcId"]);
            assert!(!accepted, "{file}: tcId {} (DER) accepted", test["tcId"]);
            n += 1;
        }
    }
    assert!(n >= 480);
}

/// Key set from a JOSE test group: a JWK or a JWKS, private members removed, unusable keys skipped
/// (as for a remote JWKS).
fn keyset(v: &Value) -> KeySet {
    let keys: Vec<Value> = match v.get("keys") {
        Some(Value::Array(a)) => a.clone(),
        _ => vec![v.clone()],
    };
    let doc: Map<String, Value> =
        [("keys".to_string(), Value::Array(keys.iter().map(|k| Value::Object(public(k))).collect()))].into_iter().collect();
    jwk::parse_jwks_value(&doc).unwrap().0
}

/// The JOSE-level decision: strict compact parse, header rules, key selection, signature.
fn jose_accepts(keys: &KeySet, token: &str) -> bool {
    match jws::parse_compact(token, 65_536) {
        Ok(c) => verify::verify_with_keys(keys, c.alg, c.kid.as_deref(), c.signing_input, &c.signature).is_ok(),
        Err(_) => false,
    }
}

fn supported(token: &str) -> bool {
    let h = token.split('.').next().unwrap_or("");
    crate::jose::b64::decode(h.as_bytes())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["alg"].as_str().and_then(Alg::from_name))
        .is_some()
}

fn jose_file(file: &str, at_least: usize) {
    let v = load(file);
    let mut t = Tally::new(file);
    let mut by_design = 0;
    for g in v["testGroups"].as_array().unwrap() {
        let keys = keyset(&g["private"]);
        for test in g["tests"].as_array().unwrap() {
            let id = format!("tcId {} {} {}", test["tcId"], g["comment"], test["comment"]);
            let result = test["result"].as_str().unwrap();
            let Some(token) = test["jws"].as_str() else {
                // JSON serialization: a compact-only validator must reject it.
                t.check(id, "invalid", false);
                continue;
            };
            let accepted = jose_accepts(&keys, token);
            if result == "valid" && !supported(token) {
                // HS*, PS*, RS384/512, ES512: valid JOSE, but never accepted by this filter.
                assert!(!accepted, "{file}: {id}: unsupported algorithm accepted");
                by_design += 1;
                continue;
            }
            t.check(id, result, accepted);
        }
    }
    eprintln!("{file}: {by_design} valid vectors use algorithms the filter refuses by design");
    t.done(at_least);
}

#[test]
fn wycheproof_json_web_signature() {
    jose_file("wycheproof/json_web_signature_test.json", 300);
}

#[test]
fn wycheproof_json_web_key() {
    jose_file("wycheproof/json_web_key_test.json", 15);
}

#[test]
fn wycheproof_json_web_crypto_jws_parts() {
    let v = load("wycheproof/json_web_crypto_test.json");
    let mut t = Tally::new("wycheproof/json_web_crypto_test.json");
    for g in v["testGroups"].as_array().unwrap() {
        let keys = keyset(&g["private"]);
        for test in g["tests"].as_array().unwrap() {
            let Some(token) = test["jws"].as_str() else { continue };
            let result = test["result"].as_str().unwrap();
            let accepted = jose_accepts(&keys, token);
            if result == "valid" && !supported(token) {
                assert!(!accepted);
                continue;
            }
            t.check(format!("tcId {}", test["tcId"]), result, accepted);
        }
    }
    t.done(30);
}

#[test]
fn rfc7520_cookbook() {
    let cases: &[(&str, bool)] = &[
        ("jose-cookbook/jws/4_1.rsa_v15_signature.json", true),
        ("jose-cookbook/curve25519/jws.json", true),
        ("jose-cookbook/jws/4_2.rsa-pss_signature.json", false),
        ("jose-cookbook/jws/4_3.ecdsa_signature.json", false),
        ("jose-cookbook/jws/4_4.hmac-sha2_integrity_protection.json", false),
        ("jose-cookbook/jws/4_5.signature_with_detached_content.json", false),
        ("jose-cookbook/rfc7797/hmac-sha2_b64_false.json", false),
    ];
    for (file, want) in cases {
        let v = load(file);
        let keys = keyset(&v["input"]["key"]);
        let token = v["output"]["compact"].as_str();
        let accepted = token.is_some_and(|t| jose_accepts(&keys, t));
        assert_eq!(accepted, *want, "{file}");
    }
    // RFC 7520 §3 public keys: the RSA key loads; the EC key is P-521, refused with a reason.
    assert!(jwk::parse_jwk(load("jose-cookbook/jwk/3_3.rsa_public_key.json").as_object().unwrap()).is_ok());
    let e = jwk::parse_jwk(load("jose-cookbook/jwk/3_1.ec_public_key.json").as_object().unwrap()).err().unwrap();
    assert!(e.0.contains("P-521"), "{e}");
}

/// ed25519-speccheck: there is no single right answer for cases 0–5 (cofactored vs cofactorless);
/// this pins what the filter (ed25519-dalek `verify_strict`) decides, so a crate
/// change that alters it fails here. Cases 6–7 (S ≥ L) must be rejected per RFC 8032.
#[test]
fn ed25519_speccheck_pinned() {
    let v = load("ed25519-speccheck/cases.json");
    let got: Vec<bool> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let pk = hex(c["pub_key"].as_str().unwrap());
            let mut m = Map::new();
            m.insert("kty".into(), "OKP".into());
            m.insert("crv".into(), "Ed25519".into());
            m.insert("x".into(), crate::jose::b64::encode(&pk).into());
            match jwk::parse_jwk(&m) {
                Ok(k) => {
                    let (msg, sig) = (hex(c["message"].as_str().unwrap()), hex(c["signature"].as_str().unwrap()));
                    let v = verify::verify(Alg::EdDsa, &k.key, &msg, &sig);
                    assert_eq!(verify::verify_untabled(Alg::EdDsa, &k.key, &msg, &sig), v, "untabled path disagrees");
                    v
                }
                Err(_) => false,
            }
        })
        .collect();
    assert_eq!(got.len(), 12);
    assert!(!got[6] && !got[7], "S >= L must be rejected: {got:?}");
    let pinned = PINNED_SPECCHECK;
    assert_eq!(got, pinned, "ed25519 edge-case behaviour changed");
}

/// ed25519-dalek's `verify_strict` checks the cofactorless equation (`sB == R + hA`) and rejects
/// small-order A or R, S ≥ L and non-canonical encodings: it accepts case 3 only (mixed-order A,
/// both equations hold). ed25519-compact, used before, also accepted 4 and 5 (cofactored only);
/// honest signers' signatures satisfy both equations, so the stricter choice loses none.
const PINNED_SPECCHECK: [bool; 12] = [false, false, false, true, false, false, false, false, false, false, false, false];

/// The Wycheproof ROCA key is refused for its fingerprint (not, say, for its size).
#[test]
fn roca_key_is_refused_for_its_fingerprint() {
    let v = load("wycheproof/json_web_key_test.json");
    let g = v["testGroups"].as_array().unwrap().iter().find(|g| g["comment"] == "jws_rsa_roca_key").unwrap();
    let keys = g["private"].get("keys").and_then(Value::as_array).cloned().unwrap_or_else(|| vec![g["private"].clone()]);
    let e = jwk::parse_jwk(&public(&keys[0])).err().expect("ROCA key accepted");
    assert!(e.0.contains("ROCA"), "{e}");
    // And ordinary 2048-bit keys from the same files are not flagged.
    let v = load("wycheproof/rsa_signature_2048_sha256_test.json");
    for g in v["testGroups"].as_array().unwrap() {
        assert!(jwk::parse_jwk(&public(&g["keyJwk"])).is_ok());
    }
}
