//! token-exchange-filter: a proxy-wasm filter for Envoy that validates bearer JWTs and forwards
//! verified identity upstream.
//!
//! Everything but `filter/` is a pure core that never calls the host: time, shared data and
//! metrics come through [`host::Host`], so every decision is tested natively.

pub mod authenticate;
pub mod authorize;
pub mod bytes;
pub mod cache;
pub mod claims;
pub mod clock;
pub mod config;
pub mod credential;
pub mod dpop;
pub mod extract;
pub mod flow;
pub mod header_map;
pub mod host;
pub mod jose;
pub mod keys;
pub mod local;
pub mod metrics;
pub mod reply;
pub mod plan;
pub mod route;
pub mod sender;
pub mod signing;
pub mod singleflight;
pub mod sts;
pub mod txn_replay;
pub mod txn_token;
pub mod introspection;
pub mod introspector;

#[cfg(test)]
pub mod testing;

#[cfg(test)]
mod tests;

#[cfg(target_arch = "wasm32")]
mod filter;
