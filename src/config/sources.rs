//! `from[]`: where the token is read (a header with a scheme prefix, a cookie, a query parameter).

use super::{fail, header_name, ConfigError};
use tef_config_raw::RawSource;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Header { name: String, prefix: String },
    Cookie(String),
    Query(String),
}

pub(super) fn sources(from: Option<Vec<RawSource>>) -> Result<Vec<Source>, ConfigError> {
    let sources = match from {
        None => vec![Source::Header { name: "authorization".into(), prefix: "Bearer ".into() }],
        Some(list) if list.is_empty() => return fail("from", "at least one token source is required"),
        Some(list) if list.len() > crate::extract::MAX_SOURCES => {
            return fail("from", format!("at most {} token sources", crate::extract::MAX_SOURCES))
        }
        Some(list) => {
            let mut v = Vec::new();
            for (i, s) in list.into_iter().enumerate() {
                let f = format!("from[{i}]");
                let n = s.header.is_some() as u8 + s.cookie.is_some() as u8 + s.query.is_some() as u8;
                if n != 1 {
                    return fail(f, "set exactly one of `header`, `cookie`, `query`");
                }
                if s.prefix.is_some() && s.header.is_none() {
                    return fail(format!("{f}.prefix"), "only a `header` source takes a prefix");
                }
                v.push(match (s.header, s.cookie, s.query) {
                    (Some(h), _, _) => Source::Header {
                        name: header_name(&format!("{f}.header"), &h)?,
                        prefix: s.prefix.unwrap_or_default(),
                    },
                    (_, Some(c), _) if !c.is_empty() => Source::Cookie(c),
                    (_, _, Some(q)) if !q.is_empty() => Source::Query(q),
                    _ => return fail(f, "the source name must not be empty"),
                });
            }
            v
        }
    };
    Ok(sources)
}
