//! JWK / JWKS parsing (RFC 7517, RFC 7518 §6, RFC 8037) into verification keys.
//! Only public signature keys for RS256, ES256 and EdDSA (Ed25519) are ever built; symmetric
//! keys, private key material and unknown key types are never used for verification.

use super::b64;
use super::Alg;
use serde_json::{Map, Value};

/// A verification key, parsed and checked once at load.
pub enum KeyMaterial {
    Rsa(super::rs256::Rs256Key),
    P256(super::es256::Es256Key),
    Ed25519(super::ed25519::Ed25519Key),
}

pub struct Jwk {
    pub kid: Option<String>,
    /// Identifies this key across JWKS refreshes: SHA-256 (first 8 bytes) over its `kid`, `alg`,
    /// type and public members. A cached verification names the key by it (see `flow::Verified`).
    pub fp: u64,
    /// The only algorithm this key may be used with (from its type, and its `alg` if present).
    pub alg: Alg,
    pub key: KeyMaterial,
}

/// Why a JWK was not usable. Messages are safe to log (they carry no key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwkError(pub String);

impl std::fmt::Display for JwkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, JwkError> {
    Err(JwkError(msg.into()))
}

pub const MIN_RSA_BITS: usize = 2048;
pub const MAX_RSA_BITS: usize = 8192;
/// Usable keys kept per JWKS. Each EC/OKP key's table is built at its first use (an ES256 comb
/// table is 60 KiB and ~7 ms of V8 time per worker), so a token naming every kid of an oversized
/// key set could stall a worker; the cap bounds that.
pub const MAX_JWKS_KEYS: usize = 32;
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn b64_member(m: &Map<String, Value>, name: &str) -> Result<Vec<u8>, JwkError> {
    match m.get(name) {
        Some(Value::String(s)) => match b64::decode(s.as_bytes()) {
            Some(v) => Ok(v),
            None => err(format!("`{name}` is not strict base64url")),
        },
        Some(_) => err(format!("`{name}` must be a string")),
        None => err(format!("`{name}` is missing")),
    }
}

fn str_member<'a>(m: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, JwkError> {
    match m.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => err(format!("`{name}` must be a string")),
    }
}

/// Parses one JWK object.
fn fingerprint(m: &Map<String, Value>, alg: Alg) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(alg.name().as_bytes());
    for name in ["kty", "crv", "kid", "n", "e", "x", "y"] {
        h.update([0u8]);
        if let Some(v) = m.get(name).and_then(Value::as_str) {
            h.update(name.as_bytes());
            h.update([1u8]);
            h.update(v.as_bytes());
        }
    }
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

pub fn parse_jwk(m: &Map<String, Value>) -> Result<Jwk, JwkError> {
    let kty = str_member(m, "kty")?.ok_or_else(|| JwkError("`kty` is missing".into()))?;
    if let Some(p) = PRIVATE_MEMBERS.iter().find(|p| m.contains_key(**p)) {
        return err(format!("contains private or symmetric key material (`{p}`)"));
    }
    let kid = str_member(m, "kid")?.map(str::to_owned);
    if let Some(u) = str_member(m, "use")? {
        if u != "sig" {
            return err(format!("`use` is \"{u}\", not \"sig\""));
        }
    }
    if let Some(ops) = m.get("key_ops") {
        // RFC 7517 §4.3: unregistered values are allowed and ignored here; a key whose registered
        // operations exclude "verify" is not a verification key.
        let Some(ops) = ops.as_array().filter(|a| a.iter().all(Value::is_string)) else {
            return err("`key_ops` must be an array of strings");
        };
        let ops: Vec<&str> = ops.iter().filter_map(Value::as_str).collect();
        let registered = ["sign", "verify", "encrypt", "decrypt", "wrapKey", "unwrapKey", "deriveKey", "deriveBits"];
        if ops.iter().any(|o| registered.contains(o)) && !ops.contains(&"verify") {
            return err("`key_ops` does not allow \"verify\"");
        }
    }
    let (alg, key) = match kty {
        "RSA" => {
            let n = b64_member(m, "n")?;
            let e = b64_member(m, "e")?;
            let n = rsa::BigUint::from_bytes_be(&n);
            let e = rsa::BigUint::from_bytes_be(&e);
            let bits = n.bits();
            if bits < MIN_RSA_BITS {
                return err(format!("RSA modulus has {bits} bits; at least {MIN_RSA_BITS} are required"));
            }
            if roca_fingerprint(&n) {
                return err("RSA key has the ROCA fingerprint (CVE-2017-15361): its private key is recoverable");
            }
            let key = rsa::RsaPublicKey::new_with_max_size(n, e, MAX_RSA_BITS)
                .or_else(|_| err("RSA public key is invalid (bad exponent or modulus)"))?;
            let key = super::rs256::Rs256Key::new(&key).ok_or_else(|| JwkError("RSA public key is invalid (bad exponent or modulus)".into()))?;
            (Alg::Rs256, KeyMaterial::Rsa(key))
        }
        "EC" => {
            match str_member(m, "crv")? {
                Some("P-256") => {}
                Some(c) => return err(format!("EC curve `{c}` is not supported (only P-256)")),
                None => return err("`crv` is missing"),
            }
            let x = b64_member(m, "x")?;
            let y = b64_member(m, "y")?;
            if x.len() != 32 || y.len() != 32 {
                return err("P-256 `x` and `y` must be 32 bytes each");
            }
            let key = super::es256::Es256Key::new(&x, &y).ok_or_else(|| JwkError("P-256 point is not on the curve".into()))?;
            (Alg::Es256, KeyMaterial::P256(key))
        }
        "OKP" => {
            match str_member(m, "crv")? {
                Some("Ed25519") => {}
                Some(c) => return err(format!("OKP curve `{c}` is not supported (only Ed25519)")),
                None => return err("`crv` is missing"),
            }
            let x = b64_member(m, "x")?;
            let Ok(x) = <[u8; 32]>::try_from(x.as_slice()) else {
                return err("Ed25519 `x` must be 32 bytes");
            };
            let key = super::ed25519::Ed25519Key::new(&x)
                .ok_or_else(|| JwkError("Ed25519 `x` is not a valid point, or is of small order".into()))?;
            (Alg::EdDsa, KeyMaterial::Ed25519(key))
        }
        "oct" => return err("symmetric (`oct`) keys are never used"),
        other => return err(format!("key type `{other}` is not supported")),
    };
    if let Some(a) = str_member(m, "alg")? {
        if Alg::from_name(a) != Some(alg) {
            return err(format!("`alg` \"{a}\" does not fit a {kty} key (expected {})", alg.name()));
        }
    }
    Ok(Jwk { fp: fingerprint(m, alg), kid, alg, key })
}

/// The RFC 7638 JWK thumbprint: base64url(SHA-256) of the key's required members in
/// lexicographic order, no whitespace. `None` for a key type without a thumbprint here or a
/// required member that is missing or not a string (RFC 7638 §3.2, §3.3).
pub fn thumbprint(m: &Map<String, Value>) -> Option<String> {
    use sha2::{Digest, Sha256};
    let members: &[&str] = match m.get("kty")?.as_str()? {
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        "RSA" => &["e", "kty", "n"],
        _ => return None,
    };
    let mut json = String::from("{");
    for (i, name) in members.iter().enumerate() {
        let v = m.get(*name)?.as_str()?;
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!("\"{name}\":{}", Value::String(v.to_owned())));
    }
    json.push('}');
    Some(b64::encode(&Sha256::digest(json.as_bytes())))
}

/// ROCA (CVE-2017-15361) detection: moduli generated by the flawed Infineon library are, modulo
/// each small prime below, inside the subgroup generated by 65537. A random modulus passes all of
/// these checks with probability ~2^-154.
fn roca_fingerprint(n: &rsa::BigUint) -> bool {
    const PRIMES: [u32; 39] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107,
        109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173,
    ];
    let bytes = n.to_bytes_be();
    PRIMES.iter().all(|&p| {
        let r = bytes.iter().fold(0u32, |acc, b| (acc * 256 + *b as u32) % p);
        let g = 65537 % p;
        let mut x = 1u32;
        loop {
            if x == r {
                return true;
            }
            x = x * g % p;
            if x == 1 {
                return false;
            }
        }
    })
}

/// A parsed key set. Keys that could not be used are reported, not silently dropped.
#[derive(Default)]
pub struct KeySet {
    pub keys: Vec<Jwk>,
}

/// How many keys without a `kid` a token that names one may be tried against.
pub const MAX_KIDLESS_CANDIDATES: usize = 4;

impl KeySet {
    /// Candidate keys for a token: same algorithm, and the same `kid` when the token names one;
    /// then, for a token that names a `kid`, up to `MAX_KIDLESS_CANDIDATES` keys of its algorithm
    /// that have no `kid` (the `kid` is a hint, RFC 7515 §4.1.4: Envoy's `jwt_authn` tries such
    /// keys too).
    pub fn candidates<'a>(&'a self, alg: Alg, kid: Option<&'a str>) -> impl Iterator<Item = &'a Jwk> {
        let kidless = if kid.is_some() { MAX_KIDLESS_CANDIDATES } else { 0 };
        self.keys
            .iter()
            .filter(move |k| k.alg == alg && (kid.is_none() || k.kid.as_deref() == kid))
            .chain(self.keys.iter().filter(move |k| k.alg == alg && k.kid.is_none()).take(kidless))
    }

    pub fn holds(&self, fp: u64) -> bool {
        self.keys.iter().any(|k| k.fp == fp)
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    pub fn algs(&self) -> Vec<Alg> {
        let mut v: Vec<Alg> = self.keys.iter().map(|k| k.alg).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Parses a JWKS document. Returns the usable keys and, per rejected key, its index and reason.
pub fn parse_jwks(bytes: &[u8]) -> Result<(KeySet, Vec<(usize, JwkError)>), JwkError> {
    let doc = super::json::parse_object(bytes)
        .ok_or_else(|| JwkError("JWKS is not a JSON object (or has duplicate members)".into()))?;
    parse_jwks_value(&doc)
}

pub fn parse_jwks_value(doc: &Map<String, Value>) -> Result<(KeySet, Vec<(usize, JwkError)>), JwkError> {
    let keys = match doc.get("keys") {
        Some(Value::Array(a)) => a,
        _ => return err("JWKS has no `keys` array"),
    };
    let mut set = KeySet::default();
    let mut rejected = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if set.keys.len() == MAX_JWKS_KEYS {
            rejected.push((i, JwkError(format!("the JWKS already has {MAX_JWKS_KEYS} usable keys; more are ignored"))));
            continue;
        }
        match k.as_object().ok_or_else(|| JwkError("not a JSON object".into())).and_then(parse_jwk) {
            Ok(j) => set.keys.push(j),
            Err(e) => rejected.push((i, e)),
        }
    }
    Ok((set, rejected))
}
