//! Per-VM view of every provider's keys, and the cross-worker JWKS refresh protocol.
//!
//! Remote JWKS live in shared data so one copy serves every worker:
//! - `<ns>/jwks/<provider>/<source-hash>` holds a record: `TEFJ1 next_fetch last_ok last_fail refetch_ok\n<JWKS body>`.
//!   Each VM keeps the decoded keys and re-decodes only when the record's CAS token changes.
//! - `<ns>/jwks/<provider>/<source-hash>/lease` holds `until_ms`. `on_tick` runs in every worker VM
//!   and on the main thread; a VM fetches only after winning a CAS write of an expired lease, so
//!   one fetch happens per period for the whole Envoy. The lease key is created (as expired) at
//!   configure time, because the host lets any CAS write to a *missing* key succeed.
//!
//! A failed fetch keeps the last good keys and schedules a retry after `retry_ms`.

use crate::config::{Config, JwksSource, RemoteJwks};
use crate::host::Host;
use crate::jose::jwk::{self, KeySet};
use crate::metrics::{Histogram, Metric};
use sha2::{Digest, Sha256};
use std::rc::Rc;

pub const NAMESPACE: &str = "tef1";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordMeta {
    pub next_fetch_ms: u64,
    pub last_ok_ms: u64,
    pub last_fail_ms: u64,
    pub refetch_ok_ms: u64,
}

pub fn encode_record(m: &RecordMeta, body: &[u8]) -> Vec<u8> {
    let mut v = format!("TEFJ1 {} {} {} {}\n", m.next_fetch_ms, m.last_ok_ms, m.last_fail_ms, m.refetch_ok_ms).into_bytes();
    v.extend_from_slice(body);
    v
}

pub fn decode_record(bytes: &[u8]) -> Option<(RecordMeta, &[u8])> {
    let nl = bytes.iter().position(|c| *c == b'\n')?;
    let head = std::str::from_utf8(&bytes[..nl]).ok()?;
    let mut it = head.split(' ');
    if it.next()? != "TEFJ1" {
        return None;
    }
    let mut n = || it.next().and_then(|s| s.parse::<u64>().ok());
    let m = RecordMeta { next_fetch_ms: n()?, last_ok_ms: n()?, last_fail_ms: n()?, refetch_ok_ms: n()? };
    Some((m, &bytes[nl + 1..]))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Nothing,
    /// No keys yet: fetch as soon as the retry back-off allows.
    FirstKeys,
    /// A token names a `kid` we do not have: refetch, rate-limited by `min_refetch_ms`.
    UnknownKid,
}

struct Remote {
    src: RemoteJwks,
    record_key: String,
    lease_key: String,
    cas: Option<u32>,
    meta: RecordMeta,
    want: Want,
    /// This VM holds the lease and has a fetch in flight until then.
    inflight_until: u64,
    /// SHA-256 of the JWKS body `set` was parsed from: a refresh that brings the same body
    /// (the usual case) keeps the prepared keys instead of preparing them again on every VM.
    body_hash: Option<[u8; 32]>,
    /// With OpenID discovery: the JWKS `(authority, path)` this VM last read from the metadata
    /// document, and until when it is used without reading the document again.
    discovered: Option<(String, String)>,
    discovered_until: u64,
    /// The fetch in flight is the metadata document.
    discovering: bool,
    /// When this VM dispatched its fetch in flight (for the `jwks_fetch_ms` histogram).
    fetch_started_ms: u64,
    /// The metadata document just came in: this VM still holds the lease and fetches the JWKS
    /// at its next tick (until this deadline).
    chain_until: u64,
}

/// The JWKS location an OpenID Connect Discovery 1.0 document gives (`jwks_uri`, §3), as the
/// `:authority` and `:path` to fetch through the same cluster; the document must name `issuer`
/// exactly (§4.3), or it is refused.
pub fn discovered_jwks(body: &[u8], issuer: &str) -> Result<(String, String), String> {
    discovered(body, issuer).map(|(jwks, _)| jwks)
}

/// The `:authority` and `:path` of an http(s) URL of a discovery document.
fn url_parts(uri: &str, member: &str) -> Result<(String, String), String> {
    let rest = uri.strip_prefix("https://").or_else(|| uri.strip_prefix("http://")).ok_or(format!("{member} is not an http(s) URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_graphic() && c != b'#');
    if !ok(authority) || authority.contains('@') || !ok(path) {
        return Err(format!("{member} is not a usable URL"));
    }
    Ok((authority.to_owned(), path.to_owned()))
}

/// The JWKS location and, if the document has one, the introspection endpoint (RFC 8414 §2).
#[allow(clippy::type_complexity)]
fn discovered(body: &[u8], issuer: &str) -> Result<((String, String), Option<(String, String)>), String> {
    let doc = crate::jose::json::parse_object(body).ok_or("discovery document is not a JSON object")?;
    if doc.get("issuer").and_then(serde_json::Value::as_str) != Some(issuer) {
        return Err("discovery document names another issuer than the provider's".into());
    }
    let uri = doc.get("jwks_uri").and_then(serde_json::Value::as_str).ok_or("discovery document has no jwks_uri")?;
    let jwks = url_parts(uri, "jwks_uri")?;
    let intro = match doc.get("introspection_endpoint").and_then(serde_json::Value::as_str) {
        Some(u) => Some(url_parts(u, "introspection_endpoint")?),
        None => None,
    };
    Ok((jwks, intro))
}

fn introspection_key(provider: &str) -> String {
    format!("{NAMESPACE}/disc/{provider}/introspection")
}

/// The introspection endpoint provider `name`'s discovery document gave, as any VM stored it.
pub fn discovered_introspection(name: &str, host: &dyn Host) -> Option<(String, String)> {
    let (v, _) = host.shared_get(&introspection_key(name))?;
    let text = String::from_utf8(v).ok()?;
    let (a, p) = text.split_once('\n')?;
    Some((a.to_owned(), p.to_owned()))
}

struct ProviderKeys {
    set: Option<Rc<KeySet>>,
    remote: Option<Remote>,
}

/// What a provider's keys say about a token's `kid`.
pub enum KeyState {
    Ready(Rc<KeySet>),
    /// Remote keys never arrived yet.
    Missing,
    UnknownKid(Rc<KeySet>),
}

/// An HTTP fetch the glue must dispatch (and report back with `fetch_done`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    pub provider: usize,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub timeout_ms: u64,
}

pub struct Keystore {
    providers: Vec<ProviderKeys>,
    names: Vec<String>,
}

fn source_id(name: &str, r: &RemoteJwks) -> String {
    let h = Sha256::digest(format!("{}\n{}\n{}", r.cluster, r.authority, r.path).as_bytes());
    format!("{NAMESPACE}/jwks/{name}/{:02x}{:02x}{:02x}{:02x}", h[0], h[1], h[2], h[3])
}

fn parse_lease(v: &[u8]) -> u64 {
    std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

impl Keystore {
    /// One slot per `Config::key_sources()`: the providers, then the STS.
    pub fn new(cfg: &Config) -> Keystore {
        let sources = cfg.key_sources();
        let names = sources.iter().map(|(n, _)| n.to_string()).collect();
        let providers = sources
            .into_iter()
            .map(|(name, jwks)| match jwks {
                JwksSource::Inline(set) => ProviderKeys { set: Some(set.clone()), remote: None },
                JwksSource::Remote(r) => {
                    let record_key = source_id(name, r);
                    ProviderKeys {
                        set: None,
                        remote: Some(Remote {
                            src: r.clone(),
                            lease_key: format!("{record_key}/lease"),
                            record_key,
                            cas: None,
                            meta: RecordMeta::default(),
                            want: Want::Nothing,
                            inflight_until: 0,
                            body_hash: None,
                            discovered: None,
                            discovered_until: 0,
                            discovering: false,
                            fetch_started_ms: 0,
                            chain_until: 0,
                        }),
                    }
                }
            })
            .collect();
        Keystore { providers, names }
    }

    fn name(&self, p: usize) -> &str {
        self.names.get(p).map(String::as_str).unwrap_or("?")
    }

    /// Configure time: make sure every lease key exists (see the module doc), and load whatever
    /// keys other VMs already fetched.
    pub fn init(&mut self, host: &dyn Host) {
        for i in 0..self.providers.len() {
            if let Some(r) = &self.providers[i].remote {
                if host.shared_get(&r.lease_key).is_none() {
                    // `CAS_CREATE`: never resets a lease another worker made and took since.
                    let _ = host.shared_set(&r.lease_key, b"0", Some(crate::host::CAS_CREATE));
                }
            }
            self.sync(i, host);
        }
    }

    /// Re-reads a remote provider's record; decodes keys only when it changed. Returns true if it did.
    pub fn sync(&mut self, p: usize, host: &dyn Host) -> bool {
        let Some(pk) = self.providers.get_mut(p) else { return false };
        let Some(r) = pk.remote.as_mut() else { return false };
        let Some((bytes, cas)) = host.shared_get(&r.record_key) else { return false };
        if r.cas == Some(cas) {
            return false;
        }
        r.cas = Some(cas);
        let Some((meta, body)) = decode_record(&bytes) else { return false };
        r.meta = meta;
        r.want = Want::Nothing;
        let hash: Option<[u8; 32]> = (!body.is_empty()).then(|| Sha256::digest(body).into());
        if hash.is_some() && r.body_hash != hash {
            match jwk::parse_jwks(body) {
                Ok((set, _)) if !set.keys.is_empty() => {
                    pk.set = Some(Rc::new(set));
                    r.body_hash = hash;
                }
                _ => log::warn!("[jwks_record_invalid] provider {}: shared JWKS record does not parse", self.names[p]),
            }
        }
        true
    }

    /// The keys for provider `p` given a token's `kid`. Re-reads shared data once on a miss, in
    /// case another worker fetched newer keys since this VM's last tick.
    pub fn state(&mut self, p: usize, kid: Option<&str>, host: &dyn Host) -> KeyState {
        let ready = |set: &Option<Rc<KeySet>>| match (set, kid) {
            (Some(s), Some(k)) if s.has_kid(k) => Some(s.clone()),
            (Some(s), None) => Some(s.clone()),
            _ => None,
        };
        if let Some(s) = ready(&self.providers[p].set) {
            return KeyState::Ready(s);
        }
        if self.sync(p, host) {
            if let Some(s) = ready(&self.providers[p].set) {
                return KeyState::Ready(s);
            }
        }
        match &self.providers[p].set {
            Some(s) => KeyState::UnknownKid(s.clone()),
            None => KeyState::Missing,
        }
    }

    /// Whether this VM's current keys for provider `p` still hold the key `fp` (no host call).
    /// A remote JWKS refresh that drops a key reaches every VM at its next tick.
    pub fn holds_key(&self, p: usize, fp: u64) -> bool {
        self.providers.get(p).and_then(|x| x.set.as_ref()).is_some_and(|s| s.holds(fp))
    }

    /// Whether a failed fetch's back-off (`retry_ms`) still runs: no fetch of any kind starts.
    pub fn in_backoff(&self, p: usize, now: u64) -> bool {
        self.providers
            .get(p)
            .and_then(|x| x.remote.as_ref())
            .is_some_and(|r| r.meta.last_fail_ms > r.meta.last_ok_ms && now < r.meta.last_fail_ms.saturating_add(r.src.retry_ms))
    }

    pub fn meta(&self, p: usize) -> RecordMeta {
        self.providers.get(p).and_then(|x| x.remote.as_ref()).map(|r| r.meta).unwrap_or_default()
    }

    pub fn retry_ms(&self, p: usize) -> u64 {
        self.providers.get(p).and_then(|x| x.remote.as_ref()).map(|r| r.src.retry_ms).unwrap_or(0)
    }

    /// How long the keys may take to arrive: one fetch, or with discovery two (and a tick).
    pub fn timeout_ms(&self, p: usize) -> u64 {
        match self.providers.get(p).and_then(|x| x.remote.as_ref()) {
            Some(r) if r.src.discovery_issuer.is_some() => 2 * r.src.timeout_ms + 200,
            Some(r) => r.src.timeout_ms,
            None => 0,
        }
    }

    /// Whether an unknown `kid` may trigger a refetch now.
    pub fn may_refetch(&self, p: usize, now: u64) -> bool {
        self.providers.get(p).and_then(|x| x.remote.as_ref()).is_some_and(|r| now >= r.meta.refetch_ok_ms)
    }

    pub fn want(&mut self, p: usize, w: Want) {
        if let Some(r) = self.providers.get_mut(p).and_then(|x| x.remote.as_mut()) {
            if r.want == Want::Nothing || w == Want::FirstKeys {
                r.want = w;
            }
        }
    }

    /// Every VM's `on_tick`: pick up keys other VMs fetched, and start a fetch where one is due
    /// and this VM wins the lease.
    pub fn tick(&mut self, host: &dyn Host) -> Vec<FetchRequest> {
        let now = host.now_ms();
        let mut out = Vec::new();
        for p in 0..self.providers.len() {
            self.sync(p, host);
            let Some(r) = self.providers[p].remote.as_mut() else { continue };
            if r.inflight_until > now {
                continue;
            }
            if r.chain_until > now {
                // The metadata document came in; the lease is still this VM's: the JWKS next.
                r.inflight_until = r.chain_until;
                r.chain_until = 0;
                r.fetch_started_ms = now;
                out.push(jwks_fetch(p, r));
                continue;
            }
            let m = r.meta;
            let due = r.cas.is_none() || now >= m.next_fetch_ms;
            // The back-off after a failure holds for every reason to fetch (finding F5).
            let backoff_over = now >= m.last_fail_ms.saturating_add(r.src.retry_ms);
            let urgent = backoff_over
                && match r.want {
                    Want::Nothing => false,
                    Want::FirstKeys => true,
                    Want::UnknownKid => now >= m.refetch_ok_ms,
                };
            if !due && !urgent {
                continue;
            }
            let (lease, cas) = match host.shared_get(&r.lease_key) {
                Some((v, cas)) => (parse_lease(&v), Some(cas)),
                None => (0, None),
            };
            if lease > now {
                continue;
            }
            let until = now + r.src.timeout_ms + 1000;
            if host.shared_set(&r.lease_key, until.to_string().as_bytes(), Some(cas.unwrap_or(crate::host::CAS_CREATE))).is_err() {
                continue; // another VM won this round
            }
            r.inflight_until = until;
            r.fetch_started_ms = now;
            r.discovering = r.src.discovery_issuer.is_some() && (r.discovered.is_none() || now >= r.discovered_until);
            out.push(if r.discovering { get(p, r, &r.src.authority, &r.src.path, "application/json") } else { jwks_fetch(p, r) });
        }
        out
    }

    /// The outcome of a fetch this VM dispatched: `Ok(body)` for a 200, `Err(reason)` otherwise.
    pub fn fetch_done(&mut self, p: usize, result: Result<Vec<u8>, String>, host: &dyn Host) {
        let now = host.now_ms();
        let name = self.name(p).to_owned();
        let Some(pk) = self.providers.get_mut(p) else { return };
        let Some(r) = pk.remote.as_mut() else { return };
        r.inflight_until = 0;
        host.observe(Histogram::JwksFetchMs, now.saturating_sub(r.fetch_started_ms));
        let result = if std::mem::take(&mut r.discovering) {
            let issuer = r.src.discovery_issuer.clone().unwrap_or_default();
            match result.and_then(|doc| discovered(&doc, &issuer)) {
                Ok((at, intro)) => {
                    if let Some((a, p)) = intro {
                        // For every VM's introspection calls (`introspector.rs`).
                        let _ = host.shared_set(&introspection_key(&name), format!("{a}\n{p}").as_bytes(), None);
                    }
                    if r.discovered.as_ref() != Some(&at) {
                        log::info!("provider {name}: discovery: JWKS at {}{}", at.0, at.1);
                    }
                    r.discovered = Some(at);
                    r.discovered_until = now + r.src.refresh_ms;
                    // Keep the lease for the JWKS fetch that follows at the next tick.
                    r.chain_until = now + r.src.timeout_ms + 1000;
                    let _ = host.shared_set(&r.lease_key, r.chain_until.to_string().as_bytes(), None);
                    return;
                }
                Err(e) => Err(format!("discovery: {e}")),
            }
        } else {
            result
        };
        // Start from the newest shared record, so a failure never drops keys another VM stored.
        let (mut meta, old_body) = match host.shared_get(&r.record_key) {
            Some((b, _)) => match decode_record(&b) {
                Some((m, body)) => (m, body.to_vec()),
                None => (RecordMeta::default(), Vec::new()),
            },
            None => (RecordMeta::default(), Vec::new()),
        };
        let held = if pk.set.is_some() { r.body_hash } else { None };
        let parsed = result.and_then(|body| {
            let hash: [u8; 32] = Sha256::digest(&body).into();
            if held == Some(hash) {
                return Ok((None, body));
            }
            match jwk::parse_jwks(&body) {
                Ok((set, rejected)) => {
                    for (i, e) in &rejected {
                        log::warn!("[jwks_key_rejected] provider {name}: JWKS key {i} ignored: {e}");
                        host.count(Metric::JwksKeysRejected);
                    }
                    if set.keys.is_empty() {
                        Err("JWKS has no usable key".to_owned())
                    } else {
                        Ok((Some((set, hash)), body))
                    }
                }
                Err(e) => Err(e.0),
            }
        });
        let body = match parsed {
            Ok((set, body)) => {
                host.count(Metric::JwksFetchOk);
                meta.next_fetch_ms = now + r.src.refresh_ms;
                meta.last_ok_ms = now;
                meta.refetch_ok_ms = now + r.src.min_refetch_ms;
                if let Some((set, hash)) = set {
                    log::info!("provider {name}: JWKS fetched, {} usable keys", set.keys.len());
                    pk.set = Some(Rc::new(set));
                    r.body_hash = Some(hash);
                }
                body
            }
            Err(reason) => {
                host.count(Metric::JwksFetchFailed);
                log::warn!("[jwks_fetch_failed] provider {name}: JWKS fetch failed: {reason}; keeping the last good keys");
                meta.next_fetch_ms = now + r.src.retry_ms;
                meta.last_fail_ms = now;
                old_body
            }
        };
        r.meta = meta;
        r.want = Want::Nothing;
        let _ = host.shared_set(&r.record_key, &encode_record(&meta, &body), None);
        r.cas = host.shared_get(&r.record_key).map(|(_, c)| c);
        let _ = host.shared_set(&r.lease_key, b"0", None);
    }
}

/// A GET of `path` at `authority` through the provider's cluster.
fn get(p: usize, r: &Remote, authority: &str, path: &str, accept: &str) -> FetchRequest {
    FetchRequest {
        provider: p,
        cluster: r.src.cluster.clone(),
        headers: vec![
            (":method".into(), "GET".into()),
            (":path".into(), path.to_owned()),
            (":authority".into(), authority.to_owned()),
            ("accept".into(), accept.to_owned()),
        ],
        timeout_ms: r.src.timeout_ms,
    }
}

/// The JWKS fetch: the configured path, or the one discovery found.
fn jwks_fetch(p: usize, r: &Remote) -> FetchRequest {
    let accept = "application/json, application/jwk-set+json";
    match &r.discovered {
        Some((authority, path)) if r.src.discovery_issuer.is_some() => get(p, r, authority, path, accept),
        _ => get(p, r, &r.src.authority, &r.src.path, accept),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_documents_are_read_strictly() {
        let iss = "https://idp.example.com";
        let doc = |v: serde_json::Value| v.to_string().into_bytes();
        assert_eq!(
            discovered_jwks(&doc(serde_json::json!({"issuer": iss, "jwks_uri": "https://idp.example.com:8443/oauth/jwks?v=2"})), iss),
            Ok(("idp.example.com:8443".into(), "/oauth/jwks?v=2".into()))
        );
        for bad in [
            serde_json::json!({"issuer": "https://evil.example", "jwks_uri": "https://idp.example.com/jwks"}),
            serde_json::json!({"issuer": iss}),
            serde_json::json!({"issuer": iss, "jwks_uri": "ftp://idp.example.com/jwks"}),
            serde_json::json!({"issuer": iss, "jwks_uri": "https:///jwks"}),
            serde_json::json!({"issuer": iss, "jwks_uri": "https://user@idp.example.com/jwks"}),
            serde_json::json!({"issuer": iss, "jwks_uri": "https://idp.example.com/jwks#frag"}),
            serde_json::json!({"issuer": iss, "jwks_uri": 7}),
        ] {
            assert!(discovered_jwks(&doc(bad.clone()), iss).is_err(), "{bad}");
        }
        assert!(discovered_jwks(b"<html>", iss).is_err());
    }

    #[test]
    fn record_round_trip() {
        let m = RecordMeta { next_fetch_ms: 5, last_ok_ms: 4, last_fail_ms: 3, refetch_ok_ms: 2 };
        let enc = encode_record(&m, b"{\"keys\":[]}");
        assert_eq!(decode_record(&enc), Some((m, &b"{\"keys\":[]}"[..])));
        assert_eq!(decode_record(b"TEFJ0 1 2 3 4\n"), None);
        assert_eq!(decode_record(b"TEFJ1 1 2 3\n"), None);
        assert_eq!(decode_record(b"garbage"), None);
    }
}
