//! The filter's pure core compiled natively for fuzzing. The main crate is cdylib-only (an rlib
//! next to it defeats LTO for the .wasm), so this crate includes the very same source files.
#![allow(dead_code)]

#[path = "../../src/authenticate.rs"]
pub mod authenticate;
#[path = "../../src/authorize.rs"]
pub mod authorize;
#[path = "../../src/bytes.rs"]
pub mod bytes;
#[path = "../../src/cache.rs"]
pub mod cache;
#[path = "../../src/claims.rs"]
pub mod claims;
#[path = "../../src/config/mod.rs"]
pub mod config;
#[path = "../../src/credential/mod.rs"]
pub mod credential;
#[path = "../../src/dpop.rs"]
pub mod dpop;
#[path = "../../src/extract.rs"]
pub mod extract;
#[path = "../../src/flow.rs"]
pub mod flow;
#[path = "../../src/header_map.rs"]
pub mod header_map;
#[path = "../../src/host.rs"]
pub mod host;
#[path = "../../src/jose/mod.rs"]
pub mod jose;
#[path = "../../src/keys.rs"]
pub mod keys;
#[path = "../../src/local.rs"]
pub mod local;
#[path = "../../src/metrics.rs"]
pub mod metrics;
#[path = "../../src/reply.rs"]
pub mod reply;
#[path = "../../src/plan.rs"]
pub mod plan;
#[path = "../../src/route.rs"]
pub mod route;
#[path = "../../src/sender.rs"]
pub mod sender;
#[path = "../../src/signing.rs"]
pub mod signing;
#[path = "../../src/singleflight.rs"]
pub mod singleflight;
#[path = "../../src/introspection.rs"]
pub mod introspection;
#[path = "../../src/introspector.rs"]
pub mod introspector;
#[path = "../../src/sts.rs"]
pub mod sts;
#[path = "../../src/txn_replay.rs"]
pub mod txn_replay;
#[path = "../../src/txn_token.rs"]
pub mod txn_token;
#[path = "../../src/testing.rs"]
pub mod testing;

/// A filter over `fuzz-config.json` (inline RS256/ES256/EdDSA keys, a remote provider, an STS).
/// The configuration is parsed once per process (key parsing dominates otherwise).
pub fn filter(host: &testing::FakeHost) -> flow::Filter {
    thread_local! {
        static CFG: std::rc::Rc<config::Config> = std::rc::Rc::new(
            config::parse(include_bytes!("../fuzz-config.json")).unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let mut f = flow::Filter::new(CFG.with(|c| c.clone()));
    f.init(host);
    f
}

pub const NOW_MS: u64 = 1_800_000_000_000;
