//! Configuration: the example loads as written; each bad configuration is refused with
//! the field named.

use crate::config::{self, AudiencePattern, JwksSource, Source};
use serde_json::{json, Value};

fn example() -> Value {
    serde_json::from_str(include_str!("../../envoy/plugin-config.example.json")).unwrap()
}

fn parse(v: &Value) -> Result<config::Config, config::ConfigError> {
    config::parse(v.to_string().as_bytes())
}

#[test]
fn example_loads_as_written() {
    let c = parse(&example()).unwrap();
    assert_eq!(c.providers.len(), 2);
    assert_eq!(c.providers[0].audiences[1], AudiencePattern::Wildcard { scheme: "".into(), suffix: ".ecomm.com".into() });
    assert_eq!(c.providers[0].skew_s, 60);
    match &c.providers[0].jwks {
        JwksSource::Remote(r) => {
            assert_eq!((r.cluster.as_str(), r.path.as_str(), r.refresh_ms, r.timeout_ms), ("idp", "/jwks", 300_000, 2000));
            assert_eq!(r.min_refetch_ms, 30_000);
        }
        _ => panic!("corp must be remote"),
    }
    assert!(matches!(c.providers[1].jwks, JwksSource::Inline(_)));
    assert_eq!(c.sources[1], Source::Cookie("access_token".into()));
    assert!(c.routes[0].allow_anonymous);
    assert_eq!(c.routes[1].providers, vec![0, 1]);
    assert_eq!(
        c.forward.strip_headers,
        vec!["x-principal", "x-user-scope", "x-user-sub", "x_principal", "x_user_scope", "x_user_sub"],
        "every stripped header with its underscore spelling"
    );
    assert_eq!(c.cache_max_entries, 10_000);
}

#[test]
fn minimal_config_has_safe_defaults() {
    let c = parse(&json!({"providers": [{"name": "a", "issuer": "i", "audiences": ["x"],
        "jwks": {"cluster": "idp", "path": "/k"}}]}))
    .unwrap();
    assert_eq!(c.sources, vec![Source::Header { name: "authorization".into(), prefix: "Bearer ".into() }]);
    assert_eq!(c.providers[0].algorithms, None, "defaults to what the keys say");
    assert_eq!(c.providers[0].skew_s, 60);
    assert_eq!(c.max_token_bytes, 8192);
    assert_eq!(c.realm, "api");
    match &c.providers[0].jwks {
        JwksSource::Remote(r) => assert_eq!(r.authority, "idp"),
        _ => panic!(),
    }
}

/// (mutation of the example, field the error must name, words the message must contain)
#[test]
fn bad_configurations_name_the_field() {
    type Mutate = fn(&mut Value);
    let cases: Vec<(Mutate, &str, &str)> = vec![
        (|v| v["bogus"] = json!(1), "bogus", "unknown field"),
        (|v| v["providers"][0]["jwks"]["clustr"] = json!("x"), "providers[0].jwks.clustr", "unknown field"),
        (|v| v["providers"][0]["issuer"] = json!(5), "providers[0].issuer", "invalid type"),
        (|v| v["providers"] = json!([]), "providers", "at least one"),
        (|v| v["providers"][0]["audiences"][1] = json!("ecomm.*.com"), "providers[0].audiences[1]", "wildcard in the wrong place"),
        (|v| v["providers"][0]["audiences"][1] = json!("*ecomm.com"), "providers[0].audiences[1]", "wildcard in the wrong place"),
        (|v| v["providers"][0]["audiences"][1] = json!("*.com"), "providers[0].audiences[1]", "too broad"),
        (|v| v["providers"][0]["audiences"][1] = json!("https://*.ecomm.com/x"), "providers[0].audiences[1]", "wildcard"),
        (|v| v["providers"][0]["algorithms"] = json!(["HS256"]), "providers[0].algorithms[0]", "not supported"),
        (|v| v["providers"][0]["algorithms"] = json!(["none"]), "providers[0].algorithms[0]", "not supported"),
        (|v| v["providers"][0]["jwks"].as_object_mut().unwrap().remove("cluster").map(|_| ()).unwrap(), "providers[0].jwks.cluster", "required"),
        (|v| v["providers"][0]["jwks"]["cluster"] = json!(""), "providers[0].jwks.cluster", "empty"),
        (|v| v["providers"][0]["jwks"]["path"] = json!("jwks"), "providers[0].jwks.path", "start with"),
        (|v| v["providers"][0]["jwks"]["refresh_seconds"] = json!(0), "providers[0].jwks.refresh_seconds", "1..86400"),
        (|v| v["providers"][1]["jwks"]["inline"]["keys"][0]["x"] = json!("AAAA"), "providers[1].jwks.inline.keys[0]", "32 bytes"),
        (|v| v["providers"][1]["jwks"]["inline"]["keys"][0]["x"] = json!("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHUR+"), "providers[1].jwks.inline.keys[0]", "base64url"),
        (|v| v["providers"][1]["jwks"]["inline"]["keys"][0]["d"] = json!("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"), "providers[1].jwks.inline.keys[0]", "private"),
        (|v| v["providers"][1]["jwks"]["inline"] = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}), "providers[1].jwks.inline.keys[0]", "private or symmetric"),
        (|v| v["providers"][1]["jwks"]["inline"]["keys"][0]["alg"] = json!("ES256"), "providers[1].jwks.inline.keys[0]", "does not fit"),
        (|v| v["providers"][1]["jwks"]["cluster"] = json!("idp"), "providers[1].jwks.cluster", "inline JWKS takes no remote"),
        (|v| v["providers"][1]["jwks"]["inline"] = json!({"keys": []}), "providers[1].jwks.inline.keys", "no keys"),
        (|v| v["providers"][1]["name"] = json!("corp"), "providers[1].name", "duplicate"),
        (|v| v["providers"][1]["issuer"] = json!("https://idp.example.com"), "providers[1].issuer", "same issuer"),
        (|v| v["providers"][0]["clock_skew_seconds"] = json!(3600), "providers[0].clock_skew_seconds", "at most"),
        (|v| v["routes"][1]["providers"] = json!(["corp", "nope"]), "routes[1].providers[1]", "unknown provider"),
        (|v| v["routes"][0]["match"]["path_prefix"] = json!("healthz"), "routes[0].match.path_prefix", "start with"),
        (|v| v["routes"][0]["match"]["typo"] = json!("x"), "routes[0].match.typo", "unknown field"),
        (|v| v["from"][0] = json!({"header": "authorization", "cookie": "x"}), "from[0]", "exactly one"),
        (|v| v["from"][0] = json!({"cookie": "x", "prefix": "Bearer "}), "from[0].prefix", "only a `header`"),
        (|v| v["from"][0]["header"] = json!("bad header"), "from[0].header", "not a valid HTTP header name"),
        (|v| v["forward"]["principal_header"] = json!("x principal"), "forward.principal_header", "not a valid"),
        (|v| v["forward"]["claims_to_headers"]["sub"] = json!(""), "forward.claims_to_headers.sub", "not a valid"),
        (|v| v["forward"]["strip_headers"][0] = json!("authorization"), "forward", "authorization"),
        (|v| v["cache"]["max_entries"] = json!(0), "cache.max_entries", "1..1000000"),
        (|v| v["cache"]["max_entries"] = json!(-1), "cache.max_entries", "invalid value"),
        (|v| v["realm"] = json!("a\"b"), "realm", "quotes"),
        (|v| v["max_token_bytes"] = json!(10), "max_token_bytes", "256..65536"),
    ];
    for (i, (mutate, field, words)) in cases.into_iter().enumerate() {
        let mut v = example();
        mutate(&mut v);
        match parse(&v) {
            Ok(_) => panic!("case {i} ({field}): accepted"),
            Err(e) => {
                assert_eq!(e.field, field, "case {i}: {e}");
                assert!(e.message.contains(words), "case {i}: {e}");
                assert!(e.to_string().starts_with("invalid plugin configuration: "), "{e}");
            }
        }
    }
}

#[test]
fn rsa_keys_under_2048_bits_are_refused_at_load() {
    // A 1024-bit modulus (value irrelevant: the size check comes first).
    let n = crate::jose::b64::encode(&[0xc5u8; 128]);
    let v = json!({"providers": [{"name": "a", "issuer": "i", "audiences": ["x"],
        "jwks": {"inline": {"keys": [{"kty": "RSA", "n": n, "e": "AQAB"}]}}}]});
    let e = parse(&v).err().unwrap();
    assert_eq!(e.field, "providers[0].jwks.inline.keys[0]");
    assert!(e.message.contains("1024 bits"), "{e}");
}

#[test]
fn not_json_is_refused() {
    for bad in [&b""[..], b"{", b"[]", b"null", b"{\"providers\": 1}"] {
        assert!(config::parse(bad).is_err());
    }
}

#[test]
fn inline_string_jwks() {
    let mut v = example();
    let keys = v["providers"][1]["jwks"]["inline"].to_string();
    v["providers"][1]["jwks"] = json!({"inline_string": keys});
    assert!(parse(&v).is_ok());
    v["providers"][1]["jwks"] = json!({"inline_string": "{not json"});
    assert_eq!(parse(&v).err().unwrap().field, "providers[1].jwks.inline_string");
}

fn exchange_example() -> Value {
    serde_json::from_str(include_str!("../../envoy/plugin-config.exchange.json")).unwrap()
}

#[test]
fn exchange_example_loads() {
    let c = parse(&exchange_example()).unwrap();
    let sts = c.sts.as_ref().unwrap();
    assert_eq!(sts.client_auth, crate::sts::ClientAuth::Basic { id: "gateway".into(), secret: "s3cr3t".into() });
    assert_eq!(sts.timeout_ms, 1500);
    assert_eq!(sts.margin_ms, 30_000);
    assert_eq!(c.routes[1].exchange.as_ref().unwrap().audiences, vec!["https://orders.ecomm.com"]);
    assert_eq!(c.routes[2].exchange.as_ref().unwrap().resources, vec!["https://inventory.ecomm.com"]);
    assert!(c.needs_cluster);
    assert_eq!(c.forward.header, "authorization");
    assert_eq!(c.key_sources().len(), 2, "the STS keys are a key source");
}

#[test]
fn bad_exchange_configurations_name_the_field() {
    type Mutate = fn(&mut Value);
    let cases: Vec<(Mutate, &str, &str)> = vec![
        (|v| { v.as_object_mut().unwrap().remove("sts"); }, "routes[1].exchange", "needs a top-level `sts`"),
        (|v| v["routes"][1]["exchange"] = json!({"scopes": ["a"]}), "routes[1].exchange", "audience"),
        (|v| v["routes"][1]["exchange"]["audience"] = json!("*.ecomm.com"), "routes[1].exchange.audience", "wildcards"),
        (|v| v["routes"][1]["exchange"]["scopes"] = json!(["a b"]), "routes[1].exchange.scopes", "spaces"),
        (|v| v["routes"][1]["exchange"]["bogus"] = json!(1), "routes[1].exchange.bogus", "unknown field"),
        (|v| v["sts"]["client_auth"]["method"] = json!("private_key_jwt"), "sts.client_auth.method", "not one of"),
        (|v| { v["sts"]["client_auth"].as_object_mut().unwrap().remove("client_secret"); }, "sts.client_auth.client_secret", "required"),
        (|v| v["sts"]["client_auth"] = json!({"method": "none", "client_secret": "x"}), "sts.client_auth.client_secret", "sends no secret"),
        (|v| v["sts"]["path"] = json!("token"), "sts.path", "start with"),
        (|v| v["sts"]["issuer"] = json!(""), "sts.issuer", "empty"),
        (|v| v["sts"]["timeout_ms"] = json!(0), "sts.timeout_ms", "10..60000"),
        (|v| v["sts"]["subject_token_type"] = json!("saml"), "sts.subject_token_type", "not access_token"),
        (|v| v["sts"]["jwks"]["path"] = json!("jwks"), "sts.jwks.path", "start with"),
        (|v| { v["sts"].as_object_mut().unwrap().remove("cluster"); }, "sts", "missing field `cluster`"),
        (|v| v["forward"]["header"] = json!("x-user-sub"), "forward.header", "stripped"),
    ];
    for (i, (mutate, field, words)) in cases.into_iter().enumerate() {
        let mut v = exchange_example();
        mutate(&mut v);
        match parse(&v) {
            Ok(_) => panic!("case {i} ({field}): accepted"),
            Err(e) => {
                assert_eq!(e.field, field, "case {i}: {e}");
                assert!(e.message.contains(words), "case {i}: {e}");
            }
        }
    }
}

#[test]
fn only_the_headers_read_and_stripped_are_kept_for_authorization_sources() {
    let c = parse(&json!({"providers": [{"name": "a", "issuer": "i", "audiences": ["x"],
        "jwks": {"cluster": "idp", "path": "/k"}}], "forward": {"claims_to_headers": {"sub": "x-sub"}}}))
    .unwrap();
    assert_eq!(c.needed_headers, Some(vec!["authorization".into(), "x-sub".into(), "x_sub".into()]), "a set header is stripped first: seen, so removed only when there");
    let c = parse(&json!({"providers": [{"name": "a", "issuer": "i", "audiences": ["x"],
        "jwks": {"cluster": "idp", "path": "/k"}}], "forward": {"strip_headers": ["x-sub"]}}))
    .unwrap();
    assert_eq!(c.needed_headers, Some(vec!["authorization".into(), "x-sub".into(), "x_sub".into()]));
    assert!(c.only_authorization, "one read, the two stripped headers removed unread");
    let c = parse(&json!({"providers": [{"name": "a", "issuer": "i", "audiences": ["x"],
        "jwks": {"cluster": "idp", "path": "/k"}}], "forward": {"strip_headers": ["x-sub", "x-email"]}}))
    .unwrap();
    assert!(!c.only_authorization, "four stripped headers: the whole map shows which are there");
    let c = parse(&json!({"providers": [{"name": "a", "issuer": "i", "audiences": ["x"],
        "jwks": {"cluster": "idp", "path": "/k"}}],
        "routes": [{"match": {"path_prefix": "/p", "authority": "h"}, "allow_anonymous": true}]}))
    .unwrap();
    assert_eq!(c.needed_headers, Some(vec![":path".into(), ":authority".into(), "authorization".into()]));
    assert!(!c.only_authorization);
    // A cookie (or any other) source needs the whole header map: a cookie may repeat.
    assert_eq!(parse(&example()).unwrap().needed_headers, None);
}
