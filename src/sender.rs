//! Sender-constrained tokens, the step after authentication: the token is used by the party it
//! was issued to. DPoP (RFC 9449): a token bound to a key (`cnf.jkt`) comes as
//! `Authorization: DPoP` with a fresh proof signed by that key (`dpop.rs` checks the proof; here
//! its `jti` is recorded across workers and its key compared with the token's). Certificate
//! binding (RFC 8705 §3): `cnf["x5t#S256"]` is the SHA-256 of the client certificate of this
//! connection, as Envoy saw it in the TLS handshake. A cached token is checked again on every
//! request: the proof and the connection are new each time; the token's claims are not.

use crate::authenticate::Verified;
use crate::cache::{Claim, SlotCache};
use crate::config::{Config, Dpop};
use crate::dpop::{self, ProofError, ProofKeys, ProofRequest};
use crate::host::Host;
use crate::jose::b64;
use crate::metrics::{Deny, Metric};
use crate::reply::{self, Reply};
use sha2::{Digest, Sha256};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// What the request offers for the binding checks, read by the glue when a provider needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presented {
    /// The token came as `Authorization: DPoP <token>`.
    pub dpop_scheme: bool,
    /// Every `DPoP` header value.
    pub proofs: Vec<Vec<u8>>,
    pub method: String,
    pub scheme: String,
    pub authority: String,
    pub path: String,
    /// Envoy's `connection.sha256_peer_certificate_digest` (hex), when a client certificate
    /// was presented on this connection.
    pub peer_cert_sha256: Option<String>,
}

pub struct Sender {
    /// Per provider with DPoP: the proofs' `jti`s within their window.
    replay: Vec<Option<SlotCache>>,
    keys: ProofKeys,
    seed: RandomState,
    counter: u64,
}

/// Shared-data key of the secret the DPoP nonces are made with (one per configuration).
fn nonce_secret_key(cfg: &Config) -> String {
    format!("{}/dpop-nonce-secret/{}", crate::keys::NAMESPACE, b64::encode(&cfg.fingerprint[..12]))
}

/// HMAC-SHA256 (RFC 2104) of the window number under the 32-byte secret.
fn mac(secret: &[u8], window: u64) -> [u8; 32] {
    let mut k = [0u8; 64];
    k[..secret.len().min(64)].copy_from_slice(&secret[..secret.len().min(64)]);
    let pad = |b: u8| k.map(|x| x ^ b);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(window.to_be_bytes()).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

impl Sender {
    pub fn new(cfg: &Config) -> Sender {
        let ns = crate::keys::NAMESPACE;
        let replay = cfg
            .providers
            .iter()
            .enumerate()
            .map(|(i, p)| p.dpop.as_ref().map(|d| SlotCache::new_replay(&format!("{ns}/dpop-jti/{i}"), d.replay_cache_entries)))
            .collect();
        Sender { replay, keys: ProofKeys::new(dpop::PROOF_KEYS_WITH_TABLES), seed: RandomState::new(), counter: 0 }
    }

    fn tag(&mut self) -> u64 {
        self.counter = self.counter.wrapping_add(1);
        self.seed.hash_one(self.counter)
    }

    /// The nonce secret: written once per configuration by whichever worker comes first.
    pub fn init(&mut self, cfg: &Config, host: &dyn Host) {
        if cfg.providers.iter().any(|p| p.dpop.as_ref().is_some_and(|d| d.nonce_lifetime_ms.is_some())) {
            let key = nonce_secret_key(cfg);
            let found = host.shared_get(&key);
            if found.as_ref().is_none_or(|(v, _)| v.len() != 32) {
                let mut secret = Vec::with_capacity(32);
                for i in 0..4u8 {
                    secret.extend_from_slice(&self.seed.hash_one((i, self.counter)).to_be_bytes());
                }
                // Over the unusable value read, by its CAS token; where missing, `CAS_CREATE`:
                // of two workers that both found it so, the first one's secret stays.
                let cas = found.map_or(crate::host::CAS_CREATE, |(_, cas)| cas);
                let _ = host.shared_set(&key, &secret, Some(cas));
            }
        }
    }

    fn nonce_secret(cfg: &Config, host: &dyn Host) -> Option<Vec<u8>> {
        host.shared_get(&nonce_secret_key(cfg)).map(|(v, _)| v).filter(|v| v.len() == 32)
    }

    /// A nonce for now: the time window and its MAC (valid for this window and the next).
    fn nonce(cfg: &Config, d: &Dpop, now: u64, host: &dyn Host) -> Option<String> {
        let life = d.nonce_lifetime_ms?;
        let secret = Self::nonce_secret(cfg, host)?;
        let w = now / life;
        let mut b = w.to_be_bytes().to_vec();
        b.extend_from_slice(&mac(&secret, w)[..16]);
        Some(b64::encode(&b))
    }

    fn nonce_ok(secret: Option<&[u8]>, life: u64, now: u64, nonce: &str) -> bool {
        let (Some(secret), Some(b)) = (secret, b64::decode(nonce.as_bytes())) else { return false };
        if b.len() != 24 {
            return false;
        }
        let mut wb = [0u8; 8];
        wb.copy_from_slice(&b[..8]);
        let w = u64::from_be_bytes(wb);
        let cur = now / life;
        (w == cur || w + 1 == cur) && mac(secret, w)[..16] == b[8..]
    }

    /// Checks the token's binding: to a DPoP proof in `pres`, to the connection's client
    /// certificate `cert` (Envoy's `connection.sha256_peer_certificate_digest`, hex). `Err`: the
    /// refusal to send.
    #[allow(clippy::too_many_arguments)]
    pub fn check(&mut self, cfg: &Config, v: &Verified, token: &str, pres: Option<&Presented>, cert: Option<&str>, now: u64, host: &dyn Host) -> Result<(), (Deny, Reply)> {
        let prov = &cfg.providers[v.provider];
        let jkt = crate::claims::Cnf::jkt(&v.cnf);
        let dpop_scheme = pres.is_some_and(|p| p.dpop_scheme);
        let realm = &cfg.realm;
        match (&prov.dpop, pres) {
            (None, _) if dpop_scheme => {
                return Err((Deny::DpopUnbound, reply::invalid_token(realm, "this issuer's tokens are not DPoP tokens")));
            }
            // RFC 9449 §7.1: a DPoP-bound token is never accepted as a bearer token.
            (None, _) if jkt.is_some() => {
                return Err((Deny::DpopBearer, reply::invalid_token(realm, "DPoP-bound token presented as a bearer token")));
            }
            (None, _) => {}
            (Some(d), _) if !dpop_scheme => {
                if d.required || jkt.is_some() {
                    let why = if jkt.is_some() { "DPoP-bound token presented as a bearer token" } else { "this issuer's tokens must be DPoP-bound" };
                    return Err((Deny::DpopBearer, reply::dpop(realm, "invalid_token", why, &d.algs(), None)));
                }
            }
            (Some(d), Some(p)) => self.dpop(cfg, d, v, token, p, now, host)?,
            (Some(_), None) => {}
        }
        if let Some(cb) = &prov.certificate_binding {
            let cert = cert.filter(|c| !c.is_empty());
            match (crate::claims::Cnf::x5t(&v.cnf), cert) {
                (None, _) if !cb.required => {}
                (None, _) => return Err((Deny::CertificateUnbound, reply::invalid_token(realm, "token is not bound to a client certificate"))),
                (Some(_), None) => {
                    return Err((Deny::CertificateMissing, reply::invalid_token(realm, "certificate-bound token without a client certificate")))
                }
                (Some(x5t), Some(hex)) => {
                    if hex_to_b64(hex).as_deref() != Some(x5t) {
                        return Err((Deny::CertificateMismatch, reply::invalid_token(realm, "token is bound to another client certificate")));
                    }
                    host.count(Metric::CertificateBound);
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn dpop(&mut self, cfg: &Config, d: &Dpop, v: &Verified, token: &str, p: &Presented, now: u64, host: &dyn Host) -> Result<(), (Deny, Reply)> {
        let realm = &cfg.realm;
        let refuse = |deny: Deny, why: &str| Err((deny, reply::dpop(realm, "invalid_dpop_proof", why, &d.algs(), None)));
        let Some(jkt) = crate::claims::Cnf::jkt(&v.cnf) else {
            return Err((Deny::DpopUnbound, reply::dpop(realm, "invalid_token", "token is not DPoP-bound", &d.algs(), None)));
        };
        let Some(htu) = dpop::expected_htu(d.htu_origin.as_deref(), &p.scheme, &p.authority, &p.path) else {
            return refuse(Deny::DpopUrl, ProofError::Url.description());
        };
        let secret = d.nonce_lifetime_ms.and_then(|_| Self::nonce_secret(cfg, host));
        let life = d.nonce_lifetime_ms.unwrap_or(1);
        let nonce_ok = |n: &str| Self::nonce_ok(secret.as_deref(), life, now, n);
        let values: Vec<&[u8]> = p.proofs.iter().map(Vec::as_slice).collect();
        let req = ProofRequest { method: &p.method, htu: &htu, access_token: token, now_ms: now };
        let proof = match dpop::check(d, &values, &req, &mut self.keys, &nonce_ok) {
            Ok(proof) => proof,
            Err(ProofError::Nonce) => {
                let n = Self::nonce(cfg, d, now, host);
                return Err((Deny::DpopNonce, reply::dpop(realm, "use_dpop_nonce", ProofError::Nonce.description(), &d.algs(), n.as_deref())));
            }
            Err(e) => return refuse(proof_deny(e), e.description()),
        };
        if proof.jkt != jkt {
            return refuse(Deny::DpopBinding, "DPoP proof key is not the key the token is bound to");
        }
        // Last, so that only proofs that passed every other check take a slot.
        let mut h = Sha256::new();
        h.update(proof.jkt.as_bytes());
        h.update([0u8]);
        h.update(proof.jti.as_bytes());
        let hash: [u8; 32] = h.finalize().into();
        let tag = self.tag();
        if let Some(cache) = self.replay.get(v.provider).and_then(Option::as_ref) {
            let until = proof.iat_ms.saturating_add(d.max_age_ms + 2 * d.skew_ms).max(now + 1);
            if cache.claim(host, &hash, until, now, tag) == Claim::Seen {
                return refuse(Deny::DpopReplay, "DPoP proof replayed");
            }
        }
        host.count(Metric::DpopOk);
        Ok(())
    }
}

fn proof_deny(e: ProofError) -> Deny {
    match e {
        ProofError::Missing => Deny::DpopMissing,
        ProofError::Multiple => Deny::DpopMultiple,
        ProofError::Malformed => Deny::DpopMalformed,
        ProofError::Type => Deny::DpopType,
        ProofError::Algorithm => Deny::DpopAlgorithm,
        ProofError::Key => Deny::DpopKey,
        ProofError::Signature => Deny::DpopSignature,
        ProofError::Method => Deny::DpopMethod,
        ProofError::Url => Deny::DpopUrl,
        ProofError::IssuedAt => Deny::DpopIssuedAt,
        ProofError::Jti => Deny::DpopJti,
        ProofError::AccessTokenHash => Deny::DpopAccessTokenHash,
        ProofError::Nonce => Deny::DpopNonce,
    }
}

/// A hex SHA-256 (Envoy's certificate digest) as base64url (how `x5t#S256` carries it).
pub fn hex_to_b64(hex: &str) -> Option<String> {
    if hex.len() != 64 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..32).map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()).collect();
    Some(b64::encode(&bytes?))
}
