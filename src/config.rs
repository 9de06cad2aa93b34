//! Plugin configuration: serde types with `deny_unknown_fields`, then validation into `Config`.
//! Every error names the field (`providers[1].jwks.cluster: ...`) so one log line tells the operator
//! what to fix.

use crate::jose::jwk::{self, KeySet};
use crate::sts::{ClientAuth, ExchangeSpec, TYPE_ACCESS_TOKEN, TYPE_JWT};
use crate::jose::Alg;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::rc::Rc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid plugin configuration: {}: {}", self.field, self.message)
    }
}

fn fail<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError { field: field.into(), message: message.into() })
}

// ---------- what operators write ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    providers: Vec<RawProvider>,
    #[serde(default)]
    from: Option<Vec<RawSource>>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    forward: RawForward,
    #[serde(default)]
    cache: RawCache,
    #[serde(default)]
    realm: Option<String>,
    #[serde(default)]
    stat_prefix: Option<String>,
    #[serde(default)]
    max_token_bytes: Option<usize>,
    #[serde(default)]
    sts: Option<RawSts>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSts {
    cluster: String,
    #[serde(default)]
    authority: Option<String>,
    path: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
    client_auth: RawClientAuth,
    issuer: String,
    #[serde(default)]
    jwks: Option<RawJwks>,
    #[serde(default)]
    requested_token_type: Option<String>,
    #[serde(default)]
    subject_token_type: Option<String>,
    #[serde(default)]
    expiry_margin_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClientAuth {
    method: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExchange {
    #[serde(default)]
    audience: Option<OneOrMany>,
    #[serde(default)]
    resource: Option<OneOrMany>,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: String,
    issuer: String,
    audiences: Vec<String>,
    #[serde(default)]
    algorithms: Option<Vec<String>>,
    jwks: RawJwks,
    #[serde(default)]
    clock_skew_seconds: Option<u64>,
    #[serde(default)]
    required_claims: Vec<String>,
    #[serde(default)]
    token_types: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwks {
    #[serde(default)]
    inline: Option<Value>,
    #[serde(default)]
    inline_string: Option<String>,
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    refresh_seconds: Option<u64>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    min_refetch_seconds: Option<u64>,
    #[serde(default)]
    retry_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    cookie: Option<String>,
    #[serde(default)]
    query: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    #[serde(rename = "match", default)]
    matcher: RawMatch,
    #[serde(default)]
    allow_anonymous: bool,
    #[serde(default)]
    providers: Option<Vec<String>>,
    #[serde(default)]
    exchange: Option<RawExchange>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    #[serde(default)]
    path_prefix: Option<String>,
    #[serde(default)]
    path_exact: Option<String>,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    route_name: Option<String>,
    #[serde(default)]
    cluster: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawForward {
    #[serde(default)]
    claims_to_headers: BTreeMap<String, String>,
    #[serde(default)]
    principal_header: Option<String>,
    #[serde(default)]
    strip_headers: Vec<String>,
    #[serde(default)]
    array_separator: Option<String>,
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    strip_underscore_spellings: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCache {
    #[serde(default)]
    max_entries: Option<u32>,
    #[serde(default)]
    max_ttl_seconds: Option<u64>,
    #[serde(default)]
    local_entries: Option<u32>,
}

// ---------- what the filter runs on ----------

pub struct Config {
    pub providers: Vec<Provider>,
    pub sources: Vec<Source>,
    pub routes: Vec<Route>,
    pub forward: Forward,
    pub cache_max_entries: u32,
    pub cache_max_ttl_ms: u64,
    /// Entries of each worker's own front for the shared caches (0: none).
    pub cache_local_entries: u32,
    pub realm: String,
    pub stat_prefix: String,
    pub max_token_bytes: usize,
    /// SHA-256 of the configuration bytes: cache entries made under another configuration never match.
    pub fingerprint: [u8; 32],
    pub sts: Option<Sts>,
    /// Whether any route matches on `route_name` / `cluster` (those cost a host call per request).
    pub needs_route_name: bool,
    pub needs_cluster: bool,
    /// When every token source is the `authorization` header (which Envoy keeps as one value,
    /// joining repeats with ','), the only request headers the filter needs: read one by one
    /// instead of fetching the whole map. `None`: read the whole map (cookies and other headers
    /// may repeat, and one-value reads would miss a repeat).
    pub needed_headers: Option<Vec<String>>,
    /// The stripped headers are not among `needed_headers`: the filter sets a header on (nearly)
    /// every allowed request anyway, and once one header changes, removing the stripped ones
    /// unread costs less than reading each to see whether it is there (bench/hostcalls.sh).
    pub strip_unread: bool,
}

pub struct Provider {
    pub name: String,
    pub issuer: String,
    pub audiences: Vec<AudiencePattern>,
    /// Allowed algorithms; `None` = whatever the provider's keys are for.
    pub algorithms: Option<Vec<Alg>>,
    pub skew_s: u64,
    pub required_claims: Vec<String>,
    /// Accepted `typ` values, lowercase, without `application/`; `""` stands for an absent `typ`.
    pub token_types: Vec<String>,
    pub jwks: JwksSource,
}

pub enum JwksSource {
    Inline(Rc<KeySet>),
    Remote(RemoteJwks),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub refresh_ms: u64,
    pub timeout_ms: u64,
    pub min_refetch_ms: u64,
    pub retry_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudiencePattern {
    Exact(String),
    /// `*.ecomm.com` → scheme "" and suffix ".ecomm.com"; `https://*.ecomm.com` → scheme "https://".
    Wildcard { scheme: String, suffix: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Header { name: String, prefix: String },
    Cookie(String),
    Query(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteMatch {
    pub path_prefix: Option<String>,
    pub path_exact: Option<String>,
    pub authority: Option<String>,
    pub route_name: Option<String>,
    pub cluster: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub matcher: RouteMatch,
    pub allow_anonymous: bool,
    /// Indexes into `Config::providers` allowed on this route.
    pub providers: Vec<usize>,
    /// Exchange the token at the STS for this target; `None` forwards the original token.
    pub exchange: Option<ExchangeSpec>,
}

pub struct Sts {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub timeout_ms: u64,
    pub client_auth: ClientAuth,
    pub issuer: String,
    /// Keys of the issued tokens; without them an issued JWT is never forwarded.
    pub jwks: Option<JwksSource>,
    pub requested_token_type: String,
    pub subject_token_type: String,
    pub margin_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// (claim, header), sorted by claim.
    pub claims_to_headers: Vec<(String, String)>,
    pub principal_header: Option<String>,
    /// Every header removed from the incoming request before any is set: `strip_headers` plus
    /// every header the filter sets (so a client can never supply one the token did not), with
    /// the underscore spelling of each (`x_user_sub` for `x-user-sub`).
    pub strip_headers: Vec<String>,
    pub array_separator: String,
    /// Where an exchanged token goes: `authorization` gets `Bearer <token>`, any other header the bare token.
    pub header: String,
}

pub const DEFAULT_SKEW_S: u64 = 60;
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
pub const DEFAULT_MAX_ENTRIES: u32 = 10_000;
pub const DEFAULT_LOCAL_ENTRIES: u32 = 1024;

/// Parses and validates the plugin configuration.
pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path.is_empty() || path == "." || path == "?" { "(root)".to_owned() } else { path };
        ConfigError { field, message: e.into_inner().to_string() }
    })?;
    validate(raw, Sha256::digest(bytes).into())
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn header_name(field: &str, name: &str) -> Result<String, ConfigError> {
    if name.is_empty() || !name.bytes().all(is_token_char) {
        return fail(field, format!("\"{name}\" is not a valid HTTP header name"));
    }
    Ok(name.to_ascii_lowercase())
}

fn dns_like(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|l| !l.is_empty() && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
}

fn audience(field: &str, a: &str) -> Result<AudiencePattern, ConfigError> {
    if a.is_empty() {
        return fail(field, "empty audience");
    }
    if !a.contains('*') {
        return Ok(AudiencePattern::Exact(a.to_owned()));
    }
    let (scheme, rest) = match a.find("://") {
        Some(i) => (&a[..i + 3], &a[i + 3..]),
        None => ("", a),
    };
    let Some(suffix) = rest.strip_prefix("*.") else {
        return fail(field, format!("wildcard in the wrong place in \"{a}\": only a leading \"*.\" label is allowed"));
    };
    if scheme.contains('*') || !dns_like(suffix) {
        return fail(field, format!("wildcard in the wrong place in \"{a}\": after \"*.\" must come a DNS name"));
    }
    if !suffix.contains('.') {
        return fail(field, format!("wildcard \"{a}\" is too broad: name at least two labels after \"*.\""));
    }
    Ok(AudiencePattern::Wildcard { scheme: scheme.to_owned(), suffix: format!(".{suffix}") })
}

fn non_empty(field: &str, v: Option<String>) -> Result<String, ConfigError> {
    match v {
        Some(s) if !s.is_empty() => Ok(s),
        Some(_) => fail(field, "must not be empty"),
        None => fail(field, "is required for a remote JWKS"),
    }
}

fn jwks(field: &str, raw: RawJwks) -> Result<JwksSource, ConfigError> {
    let inline_doc = match (raw.inline, raw.inline_string) {
        (Some(_), Some(_)) => return fail(field, "set only one of `inline` and `inline_string`"),
        (Some(Value::Object(m)), None) => Some(m),
        (Some(_), None) => return fail(format!("{field}.inline"), "must be a JWKS object"),
        (None, Some(s)) => match crate::jose::json::parse_object(s.as_bytes()) {
            Some(m) => Some(m),
            None => return fail(format!("{field}.inline_string"), "is not a JWKS JSON object"),
        },
        (None, None) => None,
    };
    if let Some(doc) = inline_doc {
        let which = if raw.cluster.is_some() { "cluster" } else if raw.path.is_some() { "path" } else { "" };
        if !which.is_empty() {
            return fail(format!("{field}.{which}"), "an inline JWKS takes no remote settings");
        }
        let (set, rejected) = jwk::parse_jwks_value(&doc).or_else(|e| fail(format!("{field}.inline"), e.0))?;
        if let Some((i, e)) = rejected.first() {
            return fail(format!("{field}.inline.keys[{i}]"), e.0.clone());
        }
        if set.keys.is_empty() {
            return fail(format!("{field}.inline.keys"), "no keys");
        }
        return Ok(JwksSource::Inline(Rc::new(set)));
    }
    let cluster = non_empty(&format!("{field}.cluster"), raw.cluster)?;
    let path = non_empty(&format!("{field}.path"), raw.path)?;
    if !path.starts_with('/') {
        return fail(format!("{field}.path"), "must start with \"/\"");
    }
    let authority = match raw.authority {
        Some(a) if a.is_empty() => return fail(format!("{field}.authority"), "must not be empty"),
        Some(a) => a,
        None => cluster.clone(),
    };
    let refresh_s = raw.refresh_seconds.unwrap_or(300);
    if !(1..=86_400).contains(&refresh_s) {
        return fail(format!("{field}.refresh_seconds"), "must be 1..86400");
    }
    let timeout_ms = raw.timeout_ms.unwrap_or(2000);
    if !(10..=60_000).contains(&timeout_ms) {
        return fail(format!("{field}.timeout_ms"), "must be 10..60000");
    }
    let min_refetch_s = raw.min_refetch_seconds.unwrap_or(30);
    if min_refetch_s > 86_400 {
        return fail(format!("{field}.min_refetch_seconds"), "must be 0..86400");
    }
    let retry_ms = raw.retry_ms.unwrap_or(2000);
    if !(100..=600_000).contains(&retry_ms) {
        return fail(format!("{field}.retry_ms"), "must be 100..600000");
    }
    Ok(JwksSource::Remote(RemoteJwks {
        cluster,
        authority,
        path,
        refresh_ms: refresh_s * 1000,
        timeout_ms,
        min_refetch_ms: min_refetch_s * 1000,
        retry_ms: retry_ms.min(refresh_s * 1000),
    }))
}

fn sts(x: RawSts) -> Result<Sts, ConfigError> {
    if x.cluster.is_empty() {
        return fail("sts.cluster", "must not be empty");
    }
    if !x.path.starts_with('/') {
        return fail("sts.path", "must start with \"/\"");
    }
    if x.issuer.is_empty() {
        return fail("sts.issuer", "must not be empty");
    }
    let timeout_ms = x.timeout_ms.unwrap_or(1500);
    if !(10..=60_000).contains(&timeout_ms) {
        return fail("sts.timeout_ms", "must be 10..60000");
    }
    let secret = |m: &str| match &x.client_auth.client_secret {
        Some(s) if !s.is_empty() => Ok(s.clone()),
        _ => fail("sts.client_auth.client_secret", format!("is required for {m}")),
    };
    let id = |m: &str| match &x.client_auth.client_id {
        Some(s) if !s.is_empty() => Ok(s.clone()),
        _ => fail("sts.client_auth.client_id", format!("is required for {m}")),
    };
    let client_auth = match x.client_auth.method.as_str() {
        m @ "client_secret_basic" => ClientAuth::Basic { id: id(m)?, secret: secret(m)? },
        m @ "client_secret_post" => ClientAuth::Post { id: id(m)?, secret: secret(m)? },
        "none" => {
            if x.client_auth.client_secret.is_some() {
                return fail("sts.client_auth.client_secret", "method `none` sends no secret");
            }
            ClientAuth::None { id: x.client_auth.client_id.clone().filter(|s| !s.is_empty()) }
        }
        other => {
            return fail(
                "sts.client_auth.method",
                format!("\"{other}\" is not one of client_secret_basic, client_secret_post, none"),
            )
        }
    };
    let token_type = |field: &str, v: Option<String>| -> Result<String, ConfigError> {
        match v.as_deref() {
            None | Some("access_token") => Ok(TYPE_ACCESS_TOKEN.into()),
            Some("jwt") => Ok(TYPE_JWT.into()),
            Some(u) if u.starts_with("urn:") => Ok(u.into()),
            Some(u) => fail(field, format!("\"{u}\" is not access_token, jwt or a token type URN")),
        }
    };
    let jwks = match x.jwks {
        None => None,
        Some(j) => Some(jwks("sts.jwks", j)?),
    };
    let requested_token_type = token_type("sts.requested_token_type", x.requested_token_type)?;
    if requested_token_type == TYPE_JWT && jwks.is_none() {
        return fail("sts.jwks", "is required when `requested_token_type` is jwt: an issued JWT is never forwarded unverified");
    }
    let margin_s = x.expiry_margin_seconds.unwrap_or(30);
    if margin_s > 3600 {
        return fail("sts.expiry_margin_seconds", "must be at most 3600");
    }
    Ok(Sts {
        authority: x.authority.filter(|a| !a.is_empty()).unwrap_or_else(|| x.cluster.clone()),
        cluster: x.cluster,
        path: x.path,
        timeout_ms,
        client_auth,
        issuer: x.issuer,
        jwks,
        requested_token_type,
        subject_token_type: token_type("sts.subject_token_type", x.subject_token_type)?,
        margin_ms: margin_s * 1000,
    })
}

impl Config {
    /// Every key source: the providers in order, then the STS (index `providers.len()`) if it has keys.
    pub fn key_sources(&self) -> Vec<(&str, &JwksSource)> {
        let mut v: Vec<(&str, &JwksSource)> = self.providers.iter().map(|p| (p.name.as_str(), &p.jwks)).collect();
        if let Some(j) = self.sts.as_ref().and_then(|s| s.jwks.as_ref()) {
            v.push(("sts", j));
        }
        v
    }
}

fn validate(raw: RawConfig, fingerprint: [u8; 32]) -> Result<Config, ConfigError> {
    if raw.providers.is_empty() {
        return fail("providers", "at least one provider is required");
    }
    if raw.providers.len() > 255 {
        return fail("providers", "at most 255 providers");
    }
    let mut providers: Vec<Provider> = Vec::new();
    for (i, p) in raw.providers.into_iter().enumerate() {
        let f = format!("providers[{i}]");
        if p.name.is_empty() || !p.name.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c)) {
            return fail(format!("{f}.name"), "must be non-empty and use only [A-Za-z0-9._-]");
        }
        if providers.iter().any(|q| q.name == p.name) {
            return fail(format!("{f}.name"), format!("duplicate provider name \"{}\"", p.name));
        }
        if p.issuer.is_empty() {
            return fail(format!("{f}.issuer"), "must not be empty");
        }
        if providers.iter().any(|q| q.issuer == p.issuer) {
            return fail(format!("{f}.issuer"), "another provider has the same issuer (providers are chosen by `iss`)");
        }
        if p.audiences.is_empty() {
            return fail(format!("{f}.audiences"), "at least one audience is required");
        }
        let audiences = p
            .audiences
            .iter()
            .enumerate()
            .map(|(j, a)| audience(&format!("{f}.audiences[{j}]"), a))
            .collect::<Result<Vec<_>, _>>()?;
        let algorithms = match p.algorithms {
            None => None,
            Some(list) => {
                if list.is_empty() {
                    return fail(format!("{f}.algorithms"), "must not be empty (omit it to use the keys' algorithms)");
                }
                let mut v = Vec::new();
                for (j, a) in list.iter().enumerate() {
                    match Alg::from_name(a) {
                        Some(x) => v.push(x),
                        None => {
                            return fail(
                                format!("{f}.algorithms[{j}]"),
                                format!("\"{a}\" is not supported (RS256, ES256, EdDSA; never none or HS*)"),
                            )
                        }
                    }
                }
                Some(v)
            }
        };
        let skew_s = p.clock_skew_seconds.unwrap_or(DEFAULT_SKEW_S);
        if skew_s > 600 {
            return fail(format!("{f}.clock_skew_seconds"), "must be at most 600");
        }
        let token_types = match p.token_types {
            None => vec![String::new(), "jwt".into(), "at+jwt".into()],
            Some(list) => list
                .iter()
                .map(|t| {
                    let t = t.to_ascii_lowercase();
                    t.strip_prefix("application/").map(str::to_owned).unwrap_or(t)
                })
                .collect(),
        };
        for (j, c) in p.required_claims.iter().enumerate() {
            if c.is_empty() {
                return fail(format!("{f}.required_claims[{j}]"), "must not be empty");
            }
        }
        let jwks = jwks(&format!("{f}.jwks"), p.jwks)?;
        if let (Some(algs), JwksSource::Inline(set)) = (&algorithms, &jwks) {
            if !set.keys.iter().any(|k| algs.contains(&k.alg)) {
                return fail(format!("{f}.algorithms"), "no inline key can be used with these algorithms");
            }
        }
        providers.push(Provider {
            name: p.name,
            issuer: p.issuer,
            audiences,
            algorithms,
            skew_s,
            required_claims: p.required_claims,
            token_types,
            jwks,
        });
    }

    let sources = match raw.from {
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

    let mut routes = Vec::new();
    let (mut needs_route_name, mut needs_cluster) = (false, false);
    for (i, r) in raw.routes.into_iter().enumerate() {
        let f = format!("routes[{i}]");
        let m = r.matcher;
        for (name, v) in [("path_prefix", &m.path_prefix), ("path_exact", &m.path_exact)] {
            if let Some(p) = v {
                if !p.starts_with('/') {
                    return fail(format!("{f}.match.{name}"), "must start with \"/\"");
                }
            }
        }
        if m.path_prefix.is_some() && m.path_exact.is_some() {
            return fail(format!("{f}.match"), "set at most one of `path_prefix` and `path_exact`");
        }
        let authority = match m.authority {
            None => None,
            Some(a) => {
                let host = crate::route::host_of(&a).into_owned();
                if host != a.to_ascii_lowercase().trim_end_matches('.') || host.is_empty() {
                    return fail(format!("{f}.match.authority"), format!("\"{a}\": give the host name alone, without a port (requests are matched on their host without port or trailing dot)"));
                }
                Some(host)
            }
        };
        needs_route_name |= m.route_name.is_some();
        needs_cluster |= m.cluster.is_some();
        let allowed = match r.providers {
            None => (0..providers.len()).collect(),
            Some(names) => {
                if r.allow_anonymous && names.is_empty() {
                    Vec::new()
                } else if names.is_empty() {
                    return fail(format!("{f}.providers"), "must not be empty (omit it to allow every provider)");
                } else {
                    let mut v = Vec::new();
                    for (j, n) in names.iter().enumerate() {
                        match providers.iter().position(|p| &p.name == n) {
                            Some(x) => v.push(x),
                            None => return fail(format!("{f}.providers[{j}]"), format!("unknown provider \"{n}\"")),
                        }
                    }
                    v
                }
            }
        };
        let exchange = match r.exchange {
            None => None,
            Some(x) => {
                if raw.sts.is_none() {
                    return fail(format!("{f}.exchange"), "needs a top-level `sts`");
                }
                let audiences = x.audience.map(OneOrMany::into_vec).unwrap_or_default();
                let resources = x.resource.map(OneOrMany::into_vec).unwrap_or_default();
                if audiences.is_empty() && resources.is_empty() {
                    return fail(format!("{f}.exchange"), "set `audience` and/or `resource`");
                }
                for (name, list) in [("audience", &audiences), ("resource", &resources)] {
                    if list.iter().any(|a| a.is_empty() || a.contains('*')) {
                        return fail(format!("{f}.exchange.{name}"), "values must be non-empty and without wildcards");
                    }
                }
                let mut scopes = x.scopes;
                if scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
                    return fail(format!("{f}.exchange.scopes"), "scopes must be non-empty and without spaces");
                }
                scopes.sort();
                scopes.dedup();
                Some(ExchangeSpec { audiences, resources, scopes })
            }
        };
        routes.push(Route {
            exchange,
            matcher: RouteMatch {
                path_prefix: m.path_prefix,
                path_exact: m.path_exact,
                authority,
                route_name: m.route_name,
                cluster: m.cluster,
            },
            allow_anonymous: r.allow_anonymous,
            providers: allowed,
        });
    }

    let fw = raw.forward;
    let mut claims_to_headers = Vec::new();
    let mut strip: Vec<String> = Vec::new();
    for (claim, h) in fw.claims_to_headers {
        let f = format!("forward.claims_to_headers.{claim}");
        if claim.is_empty() {
            return fail(f, "claim name must not be empty");
        }
        let h = header_name(&f, &h)?;
        strip.push(h.clone());
        claims_to_headers.push((claim, h));
    }
    let principal_header = match fw.principal_header {
        Some(h) => {
            let h = header_name("forward.principal_header", &h)?;
            strip.push(h.clone());
            Some(h)
        }
        None => None,
    };
    for (i, h) in fw.strip_headers.iter().enumerate() {
        strip.push(header_name(&format!("forward.strip_headers[{i}]"), h)?);
    }
    for h in &strip {
        if h == "authorization" || h == "host" {
            return fail("forward", format!("the filter will not strip or set \"{h}\" here"));
        }
    }
    strip.sort();
    strip.dedup();
    let forward_header = match fw.header {
        Some(h) => header_name("forward.header", &h)?,
        None => "authorization".into(),
    };
    if strip.contains(&forward_header) {
        return fail("forward.header", "is also a stripped or claim header");
    }
    // A client's copy of the header exchanged tokens go to never reaches an upstream, on any
    // route (unless it is where the token is read from: then it is the token, verified).
    let is_source = sources.iter().any(|s| matches!(s, Source::Header { name, .. } if *name == forward_header));
    if forward_header != "authorization" && !is_source {
        strip.push(forward_header.clone());
    }
    // `x_user_sub` next to `x-user-sub`: CGI, WSGI and PHP upstreams read both as one variable.
    // Off only where Envoy already refuses or drops such headers (`headers_with_underscores_action`):
    // each spelling is one more header removal per request.
    if fw.strip_underscore_spellings.unwrap_or(true) {
        let underscored: Vec<String> = strip.iter().filter(|h| h.contains('-')).map(|h| h.replace('-', "_")).collect();
        strip.extend(underscored);
    }
    strip.sort();
    strip.dedup();
    let array_separator = fw.array_separator.unwrap_or_else(|| " ".into());
    if array_separator.is_empty() || !array_separator.bytes().all(|c| (0x20..0x7f).contains(&c)) {
        return fail("forward.array_separator", "must be non-empty printable ASCII");
    }

    let cache_max_entries = raw.cache.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
    if !(1..=1_000_000).contains(&cache_max_entries) {
        return fail("cache.max_entries", "must be 1..1000000");
    }
    let cache_max_ttl_s = raw.cache.max_ttl_seconds.unwrap_or(300);
    if cache_max_ttl_s > 86_400 {
        return fail("cache.max_ttl_seconds", "must be 0..86400 (0 disables the cache)");
    }
    let cache_local_entries = raw.cache.local_entries.unwrap_or(DEFAULT_LOCAL_ENTRIES);
    if cache_local_entries > 65_536 {
        return fail("cache.local_entries", "must be 0..65536 (0: every lookup reads shared data)");
    }
    let max_token_bytes = raw.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
    if !(256..=65_536).contains(&max_token_bytes) {
        return fail("max_token_bytes", "must be 256..65536");
    }
    let realm = raw.realm.unwrap_or_else(|| "api".into());
    if !realm.bytes().all(|c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\') {
        return fail("realm", "must be printable ASCII without quotes or backslashes");
    }
    let sts = match raw.sts {
        None => None,
        Some(x) => Some(sts(x)?),
    };
    let stat_prefix = raw.stat_prefix.unwrap_or_else(|| "token_exchange_filter".into());
    if stat_prefix.is_empty() || !stat_prefix.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.') {
        return fail("stat_prefix", "must be non-empty and use only [A-Za-z0-9_.]");
    }
    let sets_headers = !claims_to_headers.is_empty() || principal_header.is_some() || routes.iter().any(|r| r.exchange.is_some());
    let needed_headers = sources
        .iter()
        .all(|s| matches!(s, Source::Header { name, .. } if name == "authorization"))
        .then(|| {
            let mut v: Vec<String> = Vec::new();
            if routes.iter().any(|r| r.matcher.path_prefix.is_some() || r.matcher.path_exact.is_some()) {
                v.push(":path".into());
            }
            if routes.iter().any(|r| r.matcher.authority.is_some()) {
                v.push(":authority".into());
            }
            v.push("authorization".into());
            if !sets_headers {
                v.extend(strip.iter().cloned());
            }
            v
        });
    let strip_unread = needed_headers.is_some() && sets_headers && !strip.is_empty();
    Ok(Config {
        providers,
        sources,
        routes,
        forward: Forward { claims_to_headers, principal_header, strip_headers: strip, array_separator, header: forward_header },
        sts,
        cache_max_entries,
        cache_max_ttl_ms: cache_max_ttl_s * 1000,
        cache_local_entries,
        realm,
        stat_prefix,
        max_token_bytes,
        fingerprint,
        needs_route_name,
        needs_cluster,
        needed_headers,
        strip_unread,
    })
}
