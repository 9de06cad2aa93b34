//! Every counter the filter emits, with its stable name (shown by Envoy under `<stat_prefix>.<name>`).

use crate::introspection::Failure as IntroFailure;
use crate::sts::Failure;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Deny {
    Missing,
    BadRequest,
    Malformed,
    Algorithm,
    Signature,
    UnknownKid,
    Issuer,
    Audience,
    Expired,
    NotYetValid,
    Claims,
    TokenType,
    ProviderNotAllowed,
    HeaderValue,
    JwksUnavailable,
    InsufficientScope,
    ExchangeRefused,
    ExchangeUnavailable,
    /// The route forwards an embedded token, and none for its audience verified.
    Embedded,
    /// A nested token whose inner token failed a check (or is nested deeper).
    Nested,
    /// Introspection said the token is not active (or the negative cache remembers so).
    Inactive,
    /// Introspection answered something unusable (not JSON, expired, another issuer…): 401.
    IntrospectionInvalid,
    /// Introspection gave no answer (unreachable, timeout, 5xx): 503.
    IntrospectionUnavailable,
    /// The route's `require` rules (scopes, claim values) do not hold: 403.
    Forbidden,
    /// An OpenID Connect ID token presented as an access token.
    IdToken,    /// An `Authorization: DPoP` token without a `DPoP` proof header.
    DpopMissing,
    /// More than one DPoP proof.
    DpopMultiple,
    /// A proof that is not a compact JWS with JSON parts.
    DpopMalformed,
    /// A proof whose `typ` is not `dpop+jwt`.
    DpopType,
    /// A proof algorithm that is not allowed (or not its key's).
    DpopAlgorithm,
    /// A proof without a valid public `jwk` (or with a private one).
    DpopKey,
    /// A proof whose signature does not verify with its `jwk`.
    DpopSignature,
    /// A proof for another method (`htm`).
    DpopMethod,
    /// A proof for another URL (`htu`).
    DpopUrl,
    /// A proof too old or from the future (`iat`).
    DpopIssuedAt,
    /// A proof without a usable `jti`.
    DpopJti,
    /// A proof presented before (its `jti` within its window).
    DpopReplay,
    /// A proof for another access token (`ath`).
    DpopAccessTokenHash,
    /// A proof signed by a key other than the token's `cnf.jkt`.
    DpopBinding,
    /// A proof without a current server nonce (answered `use_dpop_nonce`).
    DpopNonce,
    /// A DPoP-bound token, or one of a provider that requires DPoP, presented as a bearer token.
    DpopBearer,
    /// `Authorization: DPoP` with a token that is not DPoP-bound, or of a provider without DPoP.
    DpopUnbound,
    /// A certificate-bound token on a connection without a client certificate.
    CertificateMissing,
    /// A certificate-bound token with another client certificate.
    CertificateMismatch,
    /// A token that is not certificate-bound where the provider requires it.
    CertificateUnbound,
    /// A Txn-Token whose `req_wl` is not one of the provider's `txn_token.workloads`.
    TxnWorkload,
    /// A Txn-Token whose `txn` was seen on an earlier request (`txn_token.refuse_replay`).
    TxnReplay,
    /// The Txn-Token service refused the subject token or the scope.
    TxnTokenRefused,
    /// No Txn-Token: the service failed, timed out, or its answer did not verify.
    TxnTokenUnavailable,
}

impl Deny {
    pub const ALL: [Deny; 49] = [
        Deny::Missing,
        Deny::BadRequest,
        Deny::Malformed,
        Deny::Algorithm,
        Deny::Signature,
        Deny::UnknownKid,
        Deny::Issuer,
        Deny::Audience,
        Deny::Expired,
        Deny::NotYetValid,
        Deny::Claims,
        Deny::TokenType,
        Deny::ProviderNotAllowed,
        Deny::HeaderValue,
        Deny::JwksUnavailable,
        Deny::InsufficientScope,
        Deny::ExchangeRefused,
        Deny::ExchangeUnavailable,
        Deny::Embedded,
        Deny::Nested,
        Deny::Inactive,
        Deny::IntrospectionInvalid,
        Deny::IntrospectionUnavailable,
        Deny::Forbidden,
        Deny::IdToken,
        Deny::DpopMissing,
        Deny::DpopMultiple,
        Deny::DpopMalformed,
        Deny::DpopType,
        Deny::DpopAlgorithm,
        Deny::DpopKey,
        Deny::DpopSignature,
        Deny::DpopMethod,
        Deny::DpopUrl,
        Deny::DpopIssuedAt,
        Deny::DpopJti,
        Deny::DpopReplay,
        Deny::DpopAccessTokenHash,
        Deny::DpopBinding,
        Deny::DpopNonce,
        Deny::DpopBearer,
        Deny::DpopUnbound,
        Deny::CertificateMissing,
        Deny::CertificateMismatch,
        Deny::CertificateUnbound,
        Deny::TxnWorkload,
        Deny::TxnReplay,
        Deny::TxnTokenRefused,
        Deny::TxnTokenUnavailable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Deny::Missing => "missing",
            Deny::BadRequest => "bad_request",
            Deny::Malformed => "malformed",
            Deny::Algorithm => "algorithm",
            Deny::Signature => "signature",
            Deny::UnknownKid => "unknown_kid",
            Deny::Issuer => "issuer",
            Deny::Audience => "audience",
            Deny::Expired => "expired",
            Deny::NotYetValid => "not_yet_valid",
            Deny::Claims => "claims",
            Deny::TokenType => "token_type",
            Deny::ProviderNotAllowed => "provider_not_allowed",
            Deny::HeaderValue => "header_value",
            Deny::JwksUnavailable => "jwks_unavailable",
            Deny::InsufficientScope => "insufficient_scope",
            Deny::ExchangeRefused => "exchange_refused",
            Deny::ExchangeUnavailable => "exchange_unavailable",
            Deny::Embedded => "embedded",
            Deny::Nested => "nested",
            Deny::Inactive => "inactive",
            Deny::IntrospectionInvalid => "introspection_invalid",
            Deny::IntrospectionUnavailable => "introspection_unavailable",
            Deny::Forbidden => "forbidden",
            Deny::IdToken => "id_token",
            Deny::DpopMissing => "dpop_missing",
            Deny::DpopMultiple => "dpop_multiple",
            Deny::DpopMalformed => "dpop_malformed",
            Deny::DpopType => "dpop_type",
            Deny::DpopAlgorithm => "dpop_algorithm",
            Deny::DpopKey => "dpop_key",
            Deny::DpopSignature => "dpop_signature",
            Deny::DpopMethod => "dpop_method",
            Deny::DpopUrl => "dpop_url",
            Deny::DpopIssuedAt => "dpop_iat",
            Deny::DpopJti => "dpop_jti",
            Deny::DpopReplay => "dpop_replay",
            Deny::DpopAccessTokenHash => "dpop_ath",
            Deny::DpopBinding => "dpop_binding",
            Deny::DpopNonce => "dpop_nonce",
            Deny::DpopBearer => "dpop_bearer",
            Deny::DpopUnbound => "dpop_unbound",
            Deny::CertificateMissing => "certificate_missing",
            Deny::CertificateMismatch => "certificate_mismatch",
            Deny::CertificateUnbound => "certificate_unbound",
            Deny::TxnWorkload => "txn_workload",
            Deny::TxnReplay => "txn_replay",
            Deny::TxnTokenRefused => "txn_token_refused",
            Deny::TxnTokenUnavailable => "txn_token_unavailable",
        }
    }
}

/// Histograms of how long callouts take, in milliseconds (Envoy's proxy-wasm histograms: in
/// `/stats/prometheus` with Envoy's buckets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Histogram {
    /// A JWKS (or discovery document) fetch, dispatch to answer (or failure).
    JwksFetchMs,
    /// An STS token exchange call.
    ExchangeCallMs,
    /// An introspection call.
    IntrospectionCallMs,
    /// A Txn-Token service call.
    TxnTokenCallMs,
}

impl Histogram {
    pub const ALL: [Histogram; 4] = [Histogram::JwksFetchMs, Histogram::ExchangeCallMs, Histogram::IntrospectionCallMs, Histogram::TxnTokenCallMs];

    pub fn name(self) -> &'static str {
        match self {
            Histogram::JwksFetchMs => "jwks_fetch_ms",
            Histogram::ExchangeCallMs => "exchange_call_ms",
            Histogram::IntrospectionCallMs => "introspection_call_ms",
            Histogram::TxnTokenCallMs => "txn_token_call_ms",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    Allowed,
    AllowedAnonymous,
    Denied(Deny),
    CacheHit,
    CacheMiss,
    JwksFetchOk,
    JwksFetchFailed,
    JwksKeysRejected,
    JwksWait,
    ExchangeOk,
    ExchangeCacheHit,
    ExchangeCacheMiss,
    /// The STS answered with a token that failed verification; it was never forwarded.
    ExchangeRejected,
    /// Requests that waited for another request's exchange instead of calling the STS.
    ExchangeWait,
    ExchangeFailed(Failure),
    /// Tokens the filter signed (cache misses of minting routes).
    MintOk,
    MintCacheHit,
    /// Answers on `signing.jwks_path`.
    JwksServed,
    /// Introspection calls answered `active: true` (and passed every check).
    IntrospectionOk,
    /// Introspection calls answered `active: false`.
    IntrospectionInactive,
    /// Requests served an introspected token's claims from the caches.
    IntrospectionCacheHit,
    /// Requests refused from the negative cache (no call).
    IntrospectionNegativeHit,
    /// Requests that waited for another request's introspection instead of calling.
    IntrospectionWait,
    IntrospectionFailed(IntroFailure),
    /// Requests whose DPoP proof passed every check.
    DpopOk,
    /// Requests whose token's certificate binding matched the connection's client certificate.
    CertificateBound,
    /// Txn-Tokens obtained (and verified) for a request.
    TxnTokenOk,
    /// The Txn-Token service answered with a token that failed verification; never forwarded.
    TxnTokenRejected,
    TxnTokenFailed(Failure),
    /// A live entry of a shared cache (claims, exchanged, minted or embedded tokens, the
    /// introspection negative cache) overwritten to make room: `cache.max_entries` is too small.
    CacheEvicted,
    /// A live replay record (DPoP `jti`, Txn-Token `txn`) overwritten to make room: a replay of
    /// it would pass; `replay_cache_entries` is too small.
    ReplayEvicted,
}

impl Metric {
    pub fn all() -> Vec<Metric> {
        let mut v = vec![
            Metric::Allowed,
            Metric::AllowedAnonymous,
            Metric::CacheHit,
            Metric::CacheMiss,
            Metric::JwksFetchOk,
            Metric::JwksFetchFailed,
            Metric::JwksKeysRejected,
            Metric::JwksWait,
            Metric::ExchangeOk,
            Metric::ExchangeCacheHit,
            Metric::ExchangeCacheMiss,
            Metric::ExchangeRejected,
            Metric::ExchangeWait,
            Metric::MintOk,
            Metric::MintCacheHit,
            Metric::JwksServed,
            Metric::IntrospectionOk,
            Metric::IntrospectionInactive,
            Metric::IntrospectionCacheHit,
            Metric::IntrospectionNegativeHit,
            Metric::IntrospectionWait,
            Metric::DpopOk,
            Metric::CertificateBound,
            Metric::TxnTokenOk,
            Metric::TxnTokenRejected,
            Metric::CacheEvicted,
            Metric::ReplayEvicted,
        ];
        v.extend(Deny::ALL.iter().map(|d| Metric::Denied(*d)));
        v.extend(Failure::ALL.iter().map(|f| Metric::ExchangeFailed(*f)));
        v.extend(IntroFailure::ALL.iter().map(|f| Metric::IntrospectionFailed(*f)));
        v.extend(Failure::ALL.iter().map(|f| Metric::TxnTokenFailed(*f)));
        v
    }

    /// Index into a dense table of metric ids (see the glue's metric registry).
    pub fn index(self) -> usize {
        match self {
            Metric::Allowed => 0,
            Metric::AllowedAnonymous => 1,
            Metric::CacheHit => 2,
            Metric::CacheMiss => 3,
            Metric::JwksFetchOk => 4,
            Metric::JwksFetchFailed => 5,
            Metric::JwksKeysRejected => 6,
            Metric::JwksWait => 7,
            Metric::ExchangeOk => 8,
            Metric::ExchangeCacheHit => 9,
            Metric::ExchangeCacheMiss => 10,
            Metric::ExchangeRejected => 11,
            Metric::ExchangeWait => 12,
            Metric::MintOk => 13,
            Metric::MintCacheHit => 14,
            Metric::JwksServed => 15,
            Metric::Denied(d) => 16 + d as usize,
            Metric::ExchangeFailed(f) => 16 + Deny::ALL.len() + f as usize,
            Metric::IntrospectionOk => 16 + Deny::ALL.len() + Failure::ALL.len(),
            Metric::IntrospectionInactive => 17 + Deny::ALL.len() + Failure::ALL.len(),
            Metric::IntrospectionCacheHit => 18 + Deny::ALL.len() + Failure::ALL.len(),
            Metric::IntrospectionNegativeHit => 19 + Deny::ALL.len() + Failure::ALL.len(),
            Metric::IntrospectionWait => 20 + Deny::ALL.len() + Failure::ALL.len(),
            Metric::IntrospectionFailed(f) => 21 + Deny::ALL.len() + Failure::ALL.len() + f as usize,
            Metric::DpopOk => 21 + Deny::ALL.len() + Failure::ALL.len() + IntroFailure::ALL.len(),
            Metric::CertificateBound => 22 + Deny::ALL.len() + Failure::ALL.len() + IntroFailure::ALL.len(),
            Metric::TxnTokenOk => 23 + Deny::ALL.len() + Failure::ALL.len() + IntroFailure::ALL.len(),
            Metric::TxnTokenRejected => 24 + Deny::ALL.len() + Failure::ALL.len() + IntroFailure::ALL.len(),
            Metric::TxnTokenFailed(f) => 25 + Deny::ALL.len() + Failure::ALL.len() + IntroFailure::ALL.len() + f as usize,
            Metric::CacheEvicted => 25 + Deny::ALL.len() + 2 * Failure::ALL.len() + IntroFailure::ALL.len(),
            Metric::ReplayEvicted => 26 + Deny::ALL.len() + 2 * Failure::ALL.len() + IntroFailure::ALL.len(),
        }
    }

    pub fn name(self) -> String {
        match self {
            Metric::Allowed => "allowed".into(),
            Metric::AllowedAnonymous => "allowed_anonymous".into(),
            Metric::CacheHit => "cache_hit".into(),
            Metric::CacheMiss => "cache_miss".into(),
            Metric::JwksFetchOk => "jwks_fetch_ok".into(),
            Metric::JwksFetchFailed => "jwks_fetch_failed".into(),
            Metric::JwksKeysRejected => "jwks_keys_rejected".into(),
            Metric::JwksWait => "jwks_wait".into(),
            Metric::ExchangeOk => "exchange_ok".into(),
            Metric::ExchangeCacheHit => "exchange_cache_hit".into(),
            Metric::ExchangeCacheMiss => "exchange_cache_miss".into(),
            Metric::ExchangeRejected => "exchange_rejected".into(),
            Metric::ExchangeWait => "exchange_wait".into(),
            Metric::MintOk => "mint_ok".into(),
            Metric::MintCacheHit => "mint_cache_hit".into(),
            Metric::JwksServed => "jwks_served".into(),
            Metric::ExchangeFailed(f) => format!("exchange_failed.{}", f.name()),
            Metric::Denied(d) => format!("denied.{}", d.name()),
            Metric::IntrospectionOk => "introspection_ok".into(),
            Metric::IntrospectionInactive => "introspection_inactive".into(),
            Metric::IntrospectionCacheHit => "introspection_cache_hit".into(),
            Metric::IntrospectionNegativeHit => "introspection_negative_hit".into(),
            Metric::IntrospectionWait => "introspection_wait".into(),
            Metric::IntrospectionFailed(f) => format!("introspection_failed.{}", f.name()),
            Metric::DpopOk => "dpop_ok".into(),
            Metric::CertificateBound => "certificate_bound".into(),
            Metric::TxnTokenOk => "txn_token_ok".into(),
            Metric::TxnTokenRejected => "txn_token_rejected".into(),
            Metric::TxnTokenFailed(f) => format!("txn_token_failed.{}", f.name()),
            Metric::CacheEvicted => "cache_evicted".into(),
            Metric::ReplayEvicted => "replay_evicted".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_dense_and_names_unique() {
        let all = Metric::all();
        let mut idx: Vec<usize> = all.iter().map(|m| m.index()).collect();
        idx.sort();
        assert_eq!(idx, (0..all.len()).collect::<Vec<_>>());
        let mut names: Vec<String> = all.iter().map(|m| m.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }
}
