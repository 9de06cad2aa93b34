//! Time per verification for each backend. `cargo run --release` natively; `run.sh` also builds
//! wasm32-wasip1 and runs it in node's V8 with Liftoff off (Envoy's V8 runs TurboFan only).
#[path = "../../../src/jose/rs256.rs"]
mod rs256;
#[path = "../../../src/jose/es256.rs"]
mod es256;
#[path = "../../../src/jose/ed25519.rs"]
mod ed25519;

use std::time::Instant;

fn hex(s: &serde_json::Value) -> Vec<u8> {
    let s = s.as_str().unwrap_or_default();
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0)).collect()
}

fn time(name: &str, iters: u32, mut f: impl FnMut() -> bool) {
    for _ in 0..iters / 10 + 1 {
        assert!(f(), "{name}: did not verify");
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..iters {
            assert!(f());
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e6 / iters as f64);
    }
    println!("{name:<28} {best:>9.1} µs");
}

fn main() {
    let fx: serde_json::Value = serde_json::from_str(include_str!("../fixtures.json")).unwrap();
    let msg = hex(&fx["msg"]);
    let it: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200);

    let (n, e, sig) = (hex(&fx["rs256"]["n"]), fx["rs256"]["e"].as_u64().unwrap(), hex(&fx["rs256"]["sig"]));
    let key = rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(&n), rsa::BigUint::from(e)).unwrap();
    {
        use sha2::Digest;
        let k = key.clone();
        time("RS256 rsa 0.9", it, || {
            let h = sha2::Sha256::digest(&msg);
            k.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &h, &sig).is_ok()
        });
    }
    let t = Instant::now();
    let fast = rs256::Rs256Key::new(&key).unwrap();
    println!("{:<28} {:>9.1} µs", "RS256 own: prepare key", t.elapsed().as_secs_f64() * 1e6);
    time("RS256 own (Montgomery u32)", it, || fast.verify(&msg, &sig));

    let (x, y, sig) = (hex(&fx["es256"]["x"]), hex(&fx["es256"]["y"]), hex(&fx["es256"]["sig"]));
    let mut sec1 = vec![4u8];
    sec1.extend_from_slice(&x);
    sec1.extend_from_slice(&y);
    {
        use p256::ecdsa::signature::Verifier;
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
        let s = p256::ecdsa::Signature::try_from(sig.as_slice()).unwrap();
        time("ES256 p256 0.13", it, || vk.verify(&msg, &s).is_ok());
    }
    {
        use p256_14::ecdsa::signature::Verifier;
        let vk = p256_14::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
        let s = p256_14::ecdsa::Signature::try_from(sig.as_slice()).unwrap();
        time("ES256 p256 0.14", it, || vk.verify(&msg, &s).is_ok());
    }

    let t = Instant::now();
    let own = es256::Es256Key::new(&x, &y).unwrap();
    println!("{:<28} {:>9.1} µs", "ES256 own: prepare key", t.elapsed().as_secs_f64() * 1e6);
    let t = Instant::now();
    assert!(own.verify(&msg, &sig));
    println!("{:<28} {:>9.1} µs", "ES256 own: first (G table)", t.elapsed().as_secs_f64() * 1e6);
    time("ES256 own (comb, u32)", it, || own.verify(&msg, &sig));
    // A DPoP proof key seen once: the per-key table built for one verification, or none.
    time("ES256 one-shot key, table", it, || es256::Es256Key::new(&x, &y).is_some_and(|k| k.verify(&msg, &sig)));
    time("ES256 one-shot key, untabled", it, || es256::Es256Key::new(&x, &y).is_some_and(|k| k.verify_untabled(&msg, &sig)));

    let (x, sig) = (hex(&fx["eddsa"]["x"]), hex(&fx["eddsa"]["sig"]));
    {
        let pk = ed25519_compact::PublicKey::from_slice(&x).unwrap();
        let s = ed25519_compact::Signature::from_slice(&sig).unwrap();
        time("EdDSA ed25519-compact 2", it, || pk.verify(&msg, &s).is_ok());
    }
    {
        let pk = ed25519_dalek::VerifyingKey::from_bytes(&x.clone().try_into().unwrap()).unwrap();
        let s = ed25519_dalek::Signature::from_slice(&sig).unwrap();
        time("EdDSA ed25519-dalek 3", it, || pk.verify_strict(&msg, &s).is_ok());
        let t = Instant::now();
        let own = ed25519::Ed25519Key::new(&x.clone().try_into().unwrap()).unwrap();
        println!("{:<28} {:>9.1} µs", "EdDSA own: prepare key", t.elapsed().as_secs_f64() * 1e6);
        time("EdDSA own (tables, dalek)", it, || own.verify(&msg, &sig));
        let xa: [u8; 32] = x.clone().try_into().unwrap();
        time("EdDSA one-shot key, table", it, || ed25519::Ed25519Key::new(&xa).is_some_and(|k| k.verify(&msg, &sig)));
        time("EdDSA one-shot key, untabled", it, || ed25519::Ed25519Key::new(&xa).is_some_and(|k| k.verify_untabled(&msg, &sig)));
        time("EdDSA dalek 3 (verify)", it, || { use ed25519_dalek::Verifier; pk.verify(&msg, &s).is_ok() });
    }
}
