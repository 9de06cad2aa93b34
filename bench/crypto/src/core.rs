// The filter's pure core, included by path (the main crate is cdylib-only), as fuzz/src/lib.rs does.
#![allow(dead_code, unused_imports)]
#[path = "../../../src/cache.rs"]
pub mod cache;
#[path = "../../../src/claims.rs"]
pub mod claims;
#[path = "../../../src/config.rs"]
pub mod config;
#[path = "../../../src/exchange.rs"]
pub mod exchange;
#[path = "../../../src/extract.rs"]
pub mod extract;
#[path = "../../../src/flow.rs"]
pub mod flow;
#[path = "../../../src/host.rs"]
pub mod host;
#[path = "../../../src/jose/mod.rs"]
pub mod jose;
#[path = "../../../src/keys.rs"]
pub mod keys;
#[path = "../../../src/metrics.rs"]
pub mod metrics;
#[path = "../../../src/reply.rs"]
pub mod reply;
#[path = "../../../src/route.rs"]
pub mod route;
#[path = "../../../src/testing.rs"]
pub mod testing;
