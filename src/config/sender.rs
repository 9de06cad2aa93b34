//! `providers[].dpop` and `providers[].certificate_binding`: sender-constrained access tokens,
//! bound to a key the client proves it holds on every request (DPoP, RFC 9449) or to the TLS
//! client certificate of the connection (RFC 8705 §3).

use super::{fail, ConfigError};
use crate::jose::Alg;
use tef_config_raw::{RawCertificateBinding, RawDpop};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dpop {
    /// Every token of the provider must come as `Authorization: DPoP` with a proof; `false`:
    /// bearer tokens are accepted too, but a DPoP-bound token (`cnf.jkt`) never as one.
    pub required: bool,
    /// A proof's `iat` may be this old (and `clock_skew` in the future); its `jti` is
    /// remembered this long (plus the skew).
    pub max_age_ms: u64,
    pub skew_ms: u64,
    /// The proof algorithms accepted (asymmetric only), in the `algs` of the challenge.
    pub algorithms: Vec<Alg>,
    /// The scheme and authority of the URL the proof's `htu` must name, as clients see it (an
    /// edge behind a load balancer); `None`: the request's `:scheme` and `:authority`.
    pub htu_origin: Option<String>,
    pub replay_cache_entries: u32,
    /// Server-provided nonces (RFC 9449 §8): a proof must carry one the filter issued within
    /// this lifetime.
    pub nonce_lifetime_ms: Option<u64>,
}

impl Dpop {
    /// The `algs` parameter of a `DPoP` challenge (RFC 9449 §7.1).
    pub fn algs(&self) -> String {
        self.algorithms.iter().map(|a| a.name()).collect::<Vec<_>>().join(" ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateBinding {
    /// Every token must be bound (`cnf["x5t#S256"]`) to the connection's client certificate;
    /// `false`: unbound tokens are accepted, bound ones only with their certificate.
    pub required: bool,
}

pub const DEFAULT_DPOP_ALGORITHMS: [Alg; 2] = [Alg::Es256, Alg::EdDsa];

pub(super) fn dpop(f: &str, raw: RawDpop) -> Result<Dpop, ConfigError> {
    let max_age_s = raw.max_age_seconds.unwrap_or(60);
    if !(1..=3600).contains(&max_age_s) {
        return fail(format!("{f}.max_age_seconds"), "must be 1..3600");
    }
    let skew_s = raw.clock_skew_seconds.unwrap_or(5);
    if skew_s > 300 {
        return fail(format!("{f}.clock_skew_seconds"), "must be 0..300");
    }
    let algorithms = match raw.algorithms {
        None => DEFAULT_DPOP_ALGORITHMS.to_vec(),
        Some(list) if list.is_empty() => return fail(format!("{f}.algorithms"), "must not be empty (omit it for ES256 and EdDSA)"),
        Some(list) => {
            let mut v = Vec::new();
            for (j, a) in list.iter().enumerate() {
                match Alg::from_name(a) {
                    Some(x) if !v.contains(&x) => v.push(x),
                    Some(_) => return fail(format!("{f}.algorithms[{j}]"), format!("\"{a}\" is listed twice")),
                    None => return fail(format!("{f}.algorithms[{j}]"), format!("\"{a}\" is not supported (ES256, EdDSA, RS256: asymmetric only)")),
                }
            }
            v
        }
    };
    let htu_origin = match raw.htu_origin {
        None => None,
        Some(o) => {
            let ok = (o.starts_with("https://") || o.starts_with("http://"))
                && o.split_once("://").is_some_and(|(_, rest)| !rest.is_empty() && !rest.contains(['/', '?', '#', ' ']));
            if !ok {
                return fail(format!("{f}.htu_origin"), "must be a scheme and authority only, like \"https://api.ecomm.com\"");
            }
            Some(crate::dpop::normalize_origin(&o).unwrap_or(o))
        }
    };
    let replay_cache_entries = raw.replay_cache_entries.unwrap_or(65_536);
    if !(64..=4_000_000).contains(&replay_cache_entries) {
        return fail(format!("{f}.replay_cache_entries"), "must be 64..4000000");
    }
    let nonce_lifetime_ms = match raw.nonce {
        None => None,
        Some(n) => {
            let s = n.lifetime_seconds.unwrap_or(300);
            if !(10..=86_400).contains(&s) {
                return fail(format!("{f}.nonce.lifetime_seconds"), "must be 10..86400");
            }
            Some(s * 1000)
        }
    };
    Ok(Dpop { required: raw.required.unwrap_or(true), max_age_ms: max_age_s * 1000, skew_ms: skew_s * 1000, algorithms, htu_origin, replay_cache_entries, nonce_lifetime_ms })
}

pub(super) fn certificate_binding(raw: RawCertificateBinding) -> CertificateBinding {
    CertificateBinding { required: raw.required.unwrap_or(true) }
}
