//! Arbitrary introspection answers (RFC 7662): the first byte picks the status, the media type
//! and the `Cache-Control`; the rest is the body. The pure parser's promises are checked, then
//! the same answer goes through the filter for an opaque token: a request is allowed only when
//! the answer was a 200 JSON object with `active: true` that passed every check.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tef_core::config::AudiencePattern;
use tef_core::flow::{CallResult, Outcome};
use tef_core::introspection::{self, Answer};
use tef_core::{route::RouteInput, testing::FakeHost, NOW_MS};

const STATUS: [&str; 4] = ["200", "200", "503", "500"];
const CC: [Option<&str>; 4] = [None, Some("no-store"), Some("max-age=5"), Some("max-age=x, public")];
const ISS: &str = "https://as.test";
const CONFIG: &str = r#"{"providers": [{"name": "as", "issuer": "https://as.test", "audiences": ["api"],
  "introspection": {"cluster": "as", "path": "/introspect", "client_auth": {"method": "none"}}}],
  "forward": {"principal_header": "x-principal", "claims_to_headers": {"username": "x-user"}}}"#;

fuzz_target!(|data: &[u8]| {
    let Some((&s, body)) = data.split_first() else { return };
    let status = STATUS[s as usize % STATUS.len()];
    let cc = CC[(s as usize >> 2) % CC.len()];
    let ct = if s & 0x10 != 0 { Some("application/token-introspection+jwt") } else { Some("application/json") };
    let aud = [AudiencePattern::Exact("api".into())];
    let parsed = introspection::parse_json(body, ISS, &aud, 60, NOW_MS);
    if let Answer::Active(m, exp) = &parsed {
        assert_eq!(m.get("active"), Some(&serde_json::Value::Bool(true)));
        assert_eq!(m.get("iss").and_then(|v| v.as_str()), Some(ISS));
        assert!(exp.is_none_or(|e| e * 1000.0 + 60_000.0 > NOW_MS as f64));
    }
    if let Ok(text) = std::str::from_utf8(body) {
        assert!(introspection::cache_control_max_age(Some(text)).is_none_or(|a| a <= 86_400));
    }
    thread_local! {
        static CFG: std::rc::Rc<tef_core::config::Config> =
            std::rc::Rc::new(tef_core::config::parse(CONFIG.as_bytes()).unwrap_or_else(|e| panic!("{e}")));
    }
    let host = FakeHost::new(NOW_MS);
    let mut f = tef_core::flow::Filter::new(CFG.with(|c| c.clone()));
    f.init(&host);
    let r = RouteInput { method: "GET", path: "/x", authority: "a", route_name: None, cluster: None };
    let headers = vec![("authorization".to_owned(), b"Bearer opaque-fuzz-token".to_vec())];
    if let Outcome::Call(c, p) = f.on_request(&r, &headers, &host) {
        f.call_done(&c.key, CallResult::Response { status, body, content_type: ct, cache_control: cc }, &host);
        let allowed = matches!(f.resume(&p, &host), Some(Outcome::Allow(_)));
        let active = status == "200" && s & 0x10 == 0 && matches!(parsed, Answer::Active(..));
        assert!(!allowed || active, "allowed on {status} {}", String::from_utf8_lossy(body));
        // Again, from whatever the answer left in the caches: never allowed unless it was active.
        let again = matches!(f.on_request(&r, &headers, &host), Outcome::Allow(_));
        assert!(!again || active);
    } else {
        panic!("an opaque token must be introspected");
    }
});
