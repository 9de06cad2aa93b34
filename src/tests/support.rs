//! Test keys and token building (real signatures).

use crate::jose::b64;
use p256::ecdsa::signature::Signer;
use serde_json::{json, Value};

pub struct EsKey {
    pub kid: String,
    pub sk: p256::ecdsa::SigningKey,
}

impl EsKey {
    pub fn new(kid: &str) -> EsKey {
        EsKey { kid: kid.into(), sk: p256::ecdsa::SigningKey::random(&mut rand_core::OsRng) }
    }
    pub fn jwk(&self) -> Value {
        let p = self.sk.verifying_key().to_encoded_point(false);
        json!({"kty": "EC", "crv": "P-256", "kid": self.kid,
               "x": b64::encode(p.x().unwrap()), "y": b64::encode(p.y().unwrap())})
    }
    pub fn token(&self, claims: &Value) -> String {
        self.token_with_header(&json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"}), claims)
    }
    pub fn sign(&self, input: &[u8]) -> Vec<u8> {
        let sig: p256::ecdsa::Signature = self.sk.sign(input);
        sig.to_bytes().to_vec()
    }
    pub fn token_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64::encode(header.to_string().as_bytes()), b64::encode(claims.to_string().as_bytes()));
        let sig: p256::ecdsa::Signature = self.sk.sign(input.as_bytes());
        format!("{input}.{}", b64::encode(&sig.to_bytes()))
    }
}

pub struct EdKey {
    pub kid: String,
    pub kp: ed25519_compact::KeyPair,
}

impl EdKey {
    pub fn new(kid: &str) -> EdKey {
        EdKey { kid: kid.into(), kp: ed25519_compact::KeyPair::generate() }
    }
    pub fn jwk(&self) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "kid": self.kid, "x": b64::encode(self.kp.pk.as_ref())})
    }
    pub fn token(&self, claims: &Value) -> String {
        let header = json!({"alg": "EdDSA", "kid": self.kid});
        let input = format!("{}.{}", b64::encode(header.to_string().as_bytes()), b64::encode(claims.to_string().as_bytes()));
        let sig = self.kp.sk.sign(input.as_bytes(), None);
        format!("{input}.{}", b64::encode(sig.as_ref()))
    }
}

pub fn jwks(keys: &[Value]) -> Vec<u8> {
    json!({ "keys": keys }).to_string().into_bytes()
}

/// Claims valid at `now_ms` for 300 s.
pub fn claims(iss: &str, aud: &str, sub: &str, now_ms: u64) -> Value {
    let now = now_ms / 1000;
    json!({"iss": iss, "aud": aud, "sub": sub, "iat": now, "exp": now + 300, "scope": "read write"})
}

/// `Authorization: Bearer <token>` as the request headers.
pub fn bearer(token: &str) -> Vec<(String, Vec<u8>)> {
    vec![("authorization".into(), format!("Bearer {token}").into_bytes())]
}

/// A filter (one VM) over the configuration `v`, at `now_ms`, initialised.
pub fn filter_at(v: &Value, now_ms: u64) -> (crate::testing::FakeHost, crate::flow::Filter) {
    let cfg = std::rc::Rc::new(crate::config::parse(v.to_string().as_bytes()).unwrap());
    let host = crate::testing::FakeHost::new(now_ms);
    let mut f = crate::flow::Filter::new(cfg);
    f.init(&host);
    (host, f)
}
