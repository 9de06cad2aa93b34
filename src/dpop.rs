//! DPoP proofs (RFC 9449 §4.3): the checks of one proof against its request, free of host calls.
//! The proof is public data, and so is its key: the hand-written verifiers check it, without
//! building a per-key table for a key seen once (`ProofKeys` picks the path by how often a key
//! comes back). The replay cache and the binding to the token's `cnf.jkt` are `sender.rs`'s.

use crate::config::Dpop;
use crate::jose::jwk::{self, Jwk};
use crate::jose::{b64, json, jws, verify, Alg};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

/// A proof is refused above this size (a JWS with an RSA key in its header fits in 4 KiB).
pub const MAX_PROOF_BYTES: usize = 8192;
pub const MAX_JTI_BYTES: usize = 256;

/// Why a proof was refused, in the order the checks run. Each is its own counter
/// (`denied.dpop_<name>`) and a fixed `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofError {
    /// No `DPoP` header with an `Authorization: DPoP` token.
    Missing,
    /// More than one proof (two headers, or values joined with a comma).
    Multiple,
    /// Not a compact JWS with a JSON header and payload.
    Malformed,
    /// `typ` is not `dpop+jwt`.
    Type,
    /// `alg` absent, `none`, symmetric, not allowed here, or not the key's.
    Algorithm,
    /// No `jwk` header, a private or symmetric key, or one that is not a valid public key.
    Key,
    Signature,
    /// `htm` is not the request's method.
    Method,
    /// `htu` is not the request's URL.
    Url,
    /// `iat` missing, too old, or in the future.
    IssuedAt,
    /// `jti` missing or too long (a replayed one: `sender.rs`).
    Jti,
    /// `ath` missing or not the hash of the presented access token.
    AccessTokenHash,
    /// No nonce, or not one this filter issued recently (RFC 9449 §8).
    Nonce,
}

impl ProofError {
    pub fn description(self) -> &'static str {
        match self {
            ProofError::Missing => "DPoP proof missing",
            ProofError::Multiple => "more than one DPoP proof",
            ProofError::Malformed => "DPoP proof malformed",
            ProofError::Type => "DPoP proof typ is not dpop+jwt",
            ProofError::Algorithm => "DPoP proof algorithm not allowed",
            ProofError::Key => "DPoP proof key invalid",
            ProofError::Signature => "DPoP proof signature invalid",
            ProofError::Method => "DPoP proof htm does not match the request",
            ProofError::Url => "DPoP proof htu does not match the request",
            ProofError::IssuedAt => "DPoP proof iat outside the accepted window",
            ProofError::Jti => "DPoP proof jti missing or invalid",
            ProofError::AccessTokenHash => "DPoP proof ath does not match the access token",
            ProofError::Nonce => "DPoP proof nonce missing or stale",
        }
    }
}

/// What a valid proof tells the binding check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 thumbprint of the proof's key (what `cnf.jkt` must be).
    pub jkt: String,
    pub jti: String,
    pub iat_ms: u64,
}

/// The request a proof must be for.
pub struct ProofRequest<'a> {
    pub method: &'a str,
    /// The request URL as `htu` must name it, normalised (`expected_htu`).
    pub htu: &'a str,
    pub access_token: &'a str,
    pub now_ms: u64,
}

/// Proof keys seen recently on this worker, by thumbprint. A key seen for the first time is
/// verified without a table (`verify_untabled`: cheaper than building one for a key that may
/// never come back); a key that comes back is kept here and gets its table at its second use,
/// so a client that reuses its key pays the table once. Bounded: the oldest key leaves first.
pub struct ProofKeys {
    keys: HashMap<String, Rc<Jwk>>,
    order: VecDeque<String>,
    capacity: usize,
    /// Thumbprints seen once (their key not kept): the second sight keeps the key.
    seen: HashMap<String, ()>,
    seen_order: VecDeque<String>,
}

/// Keys with tables kept per worker: an ES256 table is 60 KiB, an Ed25519 one 30 KiB.
pub const PROOF_KEYS_WITH_TABLES: usize = 64;
const SEEN_ONCE: usize = 4096;

impl ProofKeys {
    pub fn new(capacity: usize) -> ProofKeys {
        ProofKeys { keys: HashMap::new(), order: VecDeque::new(), capacity, seen: HashMap::new(), seen_order: VecDeque::new() }
    }

    /// Whether the key of this thumbprint is kept with its table.
    pub fn tabled(&self, jkt: &str) -> bool {
        self.keys.contains_key(jkt)
    }

    /// Verifies `sig` with the proof's key `m` (thumbprint `jkt`), choosing the path by how
    /// often the key was seen.
    fn verify(&mut self, jkt: &str, m: &Map<String, Value>, alg: Alg, input: &[u8], sig: &[u8]) -> Result<bool, ProofError> {
        if let Some(k) = self.keys.get(jkt) {
            return Ok(k.alg == alg && verify::verify(alg, &k.key, input, sig));
        }
        let k = jwk::parse_jwk(m).map_err(|_| ProofError::Key)?;
        if k.alg != alg {
            return Err(ProofError::Algorithm);
        }
        let ok = verify::verify_untabled(alg, &k.key, input, sig);
        if ok && self.capacity > 0 {
            if self.seen.remove(jkt).is_some() {
                // Its second valid proof: keep the key (its table is built at the next use).
                if self.order.len() >= self.capacity {
                    if let Some(old) = self.order.pop_front() {
                        self.keys.remove(&old);
                    }
                }
                self.order.push_back(jkt.to_owned());
                self.keys.insert(jkt.to_owned(), Rc::new(k));
            } else {
                if self.seen_order.len() >= SEEN_ONCE {
                    if let Some(old) = self.seen_order.pop_front() {
                        self.seen.remove(&old);
                    }
                }
                self.seen_order.push_back(jkt.to_owned());
                self.seen.insert(jkt.to_owned(), ());
            }
        }
        Ok(ok)
    }
}

/// `base64url(SHA-256(token))`: a proof's `ath` (RFC 9449 §4.2).
pub fn ath(access_token: &str) -> String {
    b64::encode(&Sha256::digest(access_token.as_bytes()))
}

fn default_port(scheme: &str) -> &'static str {
    match scheme {
        "https" => "443",
        "http" => "80",
        _ => "",
    }
}

/// `scheme://authority` normalised as RFC 3986 §6.2.2–6.2.3 say: scheme and host lowercase, the
/// scheme's default port dropped. `None` unless it is an http(s) origin.
pub fn normalize_origin(origin: &str) -> Option<String> {
    let (scheme, authority) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return None;
    }
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let mut authority = authority.to_ascii_lowercase();
    let port_at = if authority.starts_with('[') { authority.find(']').map(|i| i + 1) } else { authority.rfind(':') };
    if let Some(i) = port_at {
        if authority[i..].strip_prefix(':') == Some(default_port(&scheme)) || &authority[i..] == ":" {
            authority.truncate(i);
        }
    }
    Some(format!("{scheme}://{authority}"))
}

/// A path normalised for comparison (RFC 3986 §6.2.2): query and fragment dropped,
/// percent-encodings of unreserved characters decoded and the others uppercased, dot segments
/// removed, an empty path made "/". `None` for a broken percent-encoding.
pub fn normalize_path(path: &str) -> Option<String> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let b = path.as_bytes();
    let mut out = String::with_capacity(b.len() + 1);
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            let v = u8::from_str_radix(h, 16).ok()?;
            if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                out.push(v as char);
            } else {
                out.push('%');
                out.push_str(&h.to_ascii_uppercase());
            }
            i += 3;
        } else {
            // Request paths are ASCII on the wire (Envoy refuses others); keep bytes as chars.
            out.push(b[i] as char);
            i += 1;
        }
    }
    // RFC 3986 §5.2.4, on segments.
    let mut segs: Vec<&str> = Vec::new();
    let rel = out.strip_prefix('/').unwrap_or(&out);
    let parts: Vec<&str> = rel.split('/').collect();
    for (k, seg) in parts.iter().enumerate() {
        let last = k + 1 == parts.len();
        match *seg {
            "." => {
                if last {
                    segs.push("");
                }
            }
            ".." => {
                segs.pop();
                if last {
                    segs.push("");
                }
            }
            s => segs.push(s),
        }
    }
    Some(format!("/{}", segs.join("/")))
}

/// The URL a proof for this request must name: `origin` (the configured `htu_origin`, else
/// `scheme://authority` of the request) and the path, normalised.
pub fn expected_htu(origin: Option<&str>, scheme: &str, authority: &str, path: &str) -> Option<String> {
    let o = match origin {
        Some(o) => o.to_owned(),
        None => normalize_origin(&format!("{}://{}", if scheme.is_empty() { "http" } else { scheme }, authority))?,
    };
    Some(format!("{o}{}", normalize_path(path)?))
}

/// An `htu` as a proof states it, normalised the same way (query and fragment ignored).
pub fn normalize_htu(htu: &str) -> Option<String> {
    let (scheme, rest) = htu.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let origin = normalize_origin(&format!("{scheme}://{}", &rest[..end]))?;
    let path = &rest[end..];
    let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    Some(format!("{origin}{}", normalize_path(&path)?))
}

/// Checks one proof (`values`: every `DPoP` header value of the request) against the request, in
/// the order of `ProofError`. `nonce_ok` decides a proof's `nonce` when nonces are on.
pub fn check(cfg: &Dpop, values: &[&[u8]], req: &ProofRequest, keys: &mut ProofKeys, nonce_ok: &dyn Fn(&str) -> bool) -> Result<Proof, ProofError> {
    let raw = match values {
        [] => return Err(ProofError::Missing),
        [one] => *one,
        _ => return Err(ProofError::Multiple),
    };
    // A JWS never holds a comma: one means Envoy joined two headers.
    if raw.contains(&b',') {
        return Err(ProofError::Multiple);
    }
    let proof = std::str::from_utf8(raw).map_err(|_| ProofError::Malformed)?.trim_matches(' ');
    if proof.is_empty() {
        return Err(ProofError::Missing);
    }
    let c = match jws::parse_compact(proof, MAX_PROOF_BYTES) {
        Ok(c) => c,
        Err(jws::JwsError::AlgorithmNotAllowed) => return Err(ProofError::Algorithm),
        Err(_) => return Err(ProofError::Malformed),
    };
    let payload = json::parse_object(&c.payload).ok_or(ProofError::Malformed)?;
    if !c.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt")) {
        return Err(ProofError::Type);
    }
    if !cfg.algorithms.contains(&c.alg) {
        return Err(ProofError::Algorithm);
    }
    let Some(Value::Object(key)) = c.header.get("jwk") else {
        return Err(ProofError::Key);
    };
    let jkt = jwk::thumbprint(key).ok_or(ProofError::Key)?;
    match keys.verify(&jkt, key, c.alg, c.signing_input, &c.signature)? {
        true => {}
        false => return Err(ProofError::Signature),
    }
    if payload.get("htm").and_then(Value::as_str) != Some(req.method) {
        return Err(ProofError::Method);
    }
    let htu = payload.get("htu").and_then(Value::as_str).and_then(normalize_htu);
    if htu.as_deref() != Some(req.htu) {
        return Err(ProofError::Url);
    }
    let iat_ms = match payload.get("iat").and_then(Value::as_f64) {
        Some(s) if s.is_finite() && s >= 0.0 => (s * 1000.0) as u64,
        _ => return Err(ProofError::IssuedAt),
    };
    if iat_ms > req.now_ms.saturating_add(cfg.skew_ms) || iat_ms.saturating_add(cfg.max_age_ms + cfg.skew_ms) < req.now_ms {
        return Err(ProofError::IssuedAt);
    }
    let jti = match payload.get("jti").and_then(Value::as_str) {
        Some(j) if !j.is_empty() && j.len() <= MAX_JTI_BYTES => j.to_owned(),
        _ => return Err(ProofError::Jti),
    };
    if payload.get("ath").and_then(Value::as_str) != Some(ath(req.access_token).as_str()) {
        return Err(ProofError::AccessTokenHash);
    }
    if cfg.nonce_lifetime_ms.is_some() && !payload.get("nonce").and_then(Value::as_str).is_some_and(nonce_ok) {
        return Err(ProofError::Nonce);
    }
    Ok(Proof { jkt, jti, iat_ms })
}

/// For the `dpop` fuzz target: any proof bytes against a fixed request never panic, and a
/// proof that passes names the request.
#[cfg(fuzzing)]
pub fn fuzz_proof(data: &[u8]) {
    let cfg = Dpop {
        required: true,
        max_age_ms: 60_000,
        skew_ms: 5_000,
        algorithms: vec![Alg::Es256, Alg::EdDsa, Alg::Rs256],
        htu_origin: None,
        replay_cache_entries: 64,
        nonce_lifetime_ms: None,
    };
    let (method, rest) = data.split_at(data.len().min(1));
    let method = if method.first().is_some_and(|m| m % 2 == 0) { "GET" } else { "POST" };
    let htu = expected_htu(None, "https", "api.ecomm.com", "/a/b").unwrap_or_default();
    let req = ProofRequest { method, htu: &htu, access_token: "a.b.c", now_ms: 1_700_000_000_000 };
    let mut keys = ProofKeys::new(4);
    let values: Vec<&[u8]> = rest.split(|c| *c == b'\n').collect();
    // Twice: the second time a key that verified once takes the other path (`ProofKeys`), and
    // both paths must decide alike.
    let first = check(&cfg, &values, &req, &mut keys, &|_| true);
    let second = check(&cfg, &values, &req, &mut keys, &|_| true);
    assert_eq!(first, second, "the untabled and the kept-key paths disagree");
    if let Ok(p) = first {
        assert!(!p.jti.is_empty() && p.jti.len() <= MAX_JTI_BYTES);
        assert!(p.iat_ms <= req.now_ms + cfg.skew_ms);
    }
    if let Ok(s) = std::str::from_utf8(rest) {
        let _ = normalize_htu(s);
        let _ = normalize_path(s);
    }
}
