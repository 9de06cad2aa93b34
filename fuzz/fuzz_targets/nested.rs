//! Nested tokens: a properly signed outer token whose `subject_token` is the fuzz input (raw),
//! and one whose inner token is properly signed over the fuzz input as its payload, through
//! the whole request path of a provider that accepts nested tokens.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tef_core::{config, flow::Filter, jose::b64, route::RouteInput, testing::FakeHost, NOW_MS};

const INNER: &str = "https://inner.example";
const OUTER: &str = "https://outer.example";

fn key(seed: u8) -> (ed25519_dalek::SigningKey, serde_json::Value) {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": format!("k{seed}"),
                                  "x": b64::encode(&sk.verifying_key().to_bytes())});
    (sk, jwk)
}

fn sign(sk: &ed25519_dalek::SigningKey, kid: &str, payload: &[u8]) -> String {
    use ed25519_dalek::Signer;
    let h = format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#);
    let input = format!("{}.{}", b64::encode(h.as_bytes()), b64::encode(payload));
    format!("{input}.{}", b64::encode(&sk.sign(input.as_bytes()).to_bytes()))
}

thread_local! {
    static CFG: std::rc::Rc<config::Config> = {
        let v = serde_json::json!({"providers": [
            {"name": "inner", "issuer": INNER, "audiences": ["edge"], "jwks": {"inline": {"keys": [key(1).1]}}},
            {"name": "outer", "issuer": OUTER, "audiences": ["b"], "jwks": {"inline": {"keys": [key(2).1]}},
             "nested": {"inner_providers": ["inner"], "caller_header": "x-caller"}}],
            "forward": {"claims_to_headers": {"sub": "x-user-sub"}, "principal_header": "x-principal"}});
        std::rc::Rc::new(config::parse(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}")))
    };
}

fuzz_target!(|data: &[u8]| {
    let host = FakeHost::new(NOW_MS);
    let mut f = Filter::new(CFG.with(|c| c.clone()));
    f.init(&host);
    let now = NOW_MS / 1000;
    let inner_signed = sign(&key(1).0, "k1", data);
    let raw = String::from_utf8_lossy(data).into_owned();
    for inner in [raw, inner_signed] {
        let outer = serde_json::json!({"iss": OUTER, "aud": "b", "sub": "alice", "exp": now + 60, "subject_token": inner});
        let tok = sign(&key(2).0, "k2", outer.to_string().as_bytes());
        let headers = vec![("authorization".to_string(), format!("Bearer {tok}").into_bytes())];
        let r = RouteInput { method: "GET", path: "/", authority: "b", route_name: None, cluster: None };
        let _ = f.on_request(&r, &headers, &host);
    }
});
