//! Arbitrary bytes as a remote JWKS document, and as an OpenID discovery document: a document
//! is read only when it names the provider's issuer, and a JWKS location it yields is a path.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tef_core::jose::jwk::parse_jwks(data);
    if let Ok((authority, path)) = tef_core::keys::discovered_jwks(data, "https://idp.test") {
        assert!(!authority.is_empty() && !authority.contains('@'));
        assert!(path.starts_with('/') && !path.contains('#'));
        let doc = tef_core::jose::json::parse_object(data).unwrap();
        assert_eq!(doc.get("issuer").and_then(|v| v.as_str()), Some("https://idp.test"));
    }
});
