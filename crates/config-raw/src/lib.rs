//! The plugin configuration's serde types, one file per section as in the filter's
//! `src/config/` (which validates them), and `parse`, the only place they are deserialized.
#![forbid(unsafe_code)]

mod config;
mod forward;
mod introspection;
mod providers;
mod require;
mod routes;
mod sender;
mod signing;
mod sources;
mod sts;

pub use config::*;
pub use forward::*;
pub use introspection::*;
pub use providers::*;
pub use require::*;
pub use routes::*;
pub use sender::*;
pub use signing::*;
pub use sources::*;
pub use sts::*;

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The configuration text as operators wrote it; the error says where serde_json stopped
/// (line, column), from which the filter names the field.
#[inline(never)]
pub fn parse(bytes: &[u8]) -> Result<RawConfig, serde_json::Error> {
    serde_json::from_slice(bytes)
}
