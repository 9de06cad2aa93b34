//! Where the bearer token comes from: a header (with a scheme prefix), a cookie, or a query
//! parameter. Every configured source is read: the same token in several sources is one token
//! (found in each of them, and taken out of each when it is replaced); two different values, or
//! one source twice, are a 400 `invalid_request`, never a guess (review finding F2). A query
//! parameter is known by its percent-decoded name, both when it is read and when it is removed
//! (finding F1).

use crate::config::Source;
use crate::flow::HeaderPlan;
use std::rc::Rc;

/// At most this many token sources (`Extracted::Token::sources` is a bit set).
pub const MAX_SOURCES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extracted {
    None,
    /// `sources`: bit `i` set for every source `i` that carries this token.
    Token { token: Rc<str>, sources: u32 },
    /// RFC 6750 `invalid_request`: the request carries the credential ambiguously.
    Ambiguous,
    /// Something is where the token should be, but it is not a token.
    Malformed,
}

/// The bytes of an RFC 6750 b64token before its trailing `=`s, by value: one lookup per byte of
/// a token on every request (a class test with a set search was a fifth of the hot path).
const B64TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        c += 1;
    }
    t
};

/// RFC 6750 b64token, which covers every JWS/JWE compact token and opaque tokens.
/// Whether a header value that is not a b64token is repeated headers Envoy joined with ','
/// (refused as more than one token, as a second header would be).
pub fn is_joined(s: &str) -> bool {
    s.contains(',')
}

pub fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(|c| B64TOKEN[c as usize])
}

/// The names compared as they come first: the host hands them in lowercase, as the
/// configuration holds them (a case-insensitive comparison is a pass of two lowercasings per
/// byte, on every request, in V8); any other spelling still matches.
fn values<'a>(headers: &'a [(String, Vec<u8>)], name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers.iter().filter(move |(k, _)| same_ignoring_case(k.as_bytes(), name.as_bytes())).map(|(_, v)| v.as_slice())
}

fn same_ignoring_case(a: &[u8], b: &[u8]) -> bool {
    crate::bytes::eq(a, b) || a.eq_ignore_ascii_case(b)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

enum Found {
    Nothing,
    /// One value (its characters not checked here: `extract_unchecked`).
    One(Rc<str>),
    Many,
    Bad,
}

/// What `known` answers: the kept token equal byte for byte to the one asked about.
pub type Known<'k> = dyn Fn(&[u8]) -> Option<Rc<str>> + 'k;

fn from_header(headers: &[(String, Vec<u8>)], name: &str, prefix: &str, known: &Known) -> Found {
    let mut vals = values(headers, name);
    let Some(v) = vals.next() else { return Found::Nothing };
    if vals.next().is_some() {
        return Found::Many;
    }
    // The scheme, on the bytes (the prefix is text: equal bytes end on a character boundary).
    let rest = v.get(prefix.len()..).filter(|_| same_ignoring_case(&v[..prefix.len()], prefix.as_bytes()));
    let rest = rest.map(|r| &r[r.iter().position(|b| *b != b' ').unwrap_or(r.len())..]);
    // The common case first: a token this worker verified a moment ago (valid UTF-8 and a
    // b64token then, so neither is checked again: each is a pass over the token in V8).
    if let Some(k) = rest.and_then(known) {
        return Found::One(k);
    }
    let Ok(text) = std::str::from_utf8(v) else { return Found::Bad };
    // Another scheme (e.g. Basic): not a bearer token from this source. The token is the
    // value's text from where its bytes put it (one UTF-8 pass, not two).
    let Some(t) = rest.and_then(|r| text.get(v.len() - r.len()..)) else { return Found::Nothing };
    // Envoy joins repeated headers with ','. A b64token never contains one, and the caches hold
    // only b64tokens: a joined value is found in neither and refused as two tokens once it is
    // not (`Authenticator::authenticate`, `is_joined`), so a token found in shared data is not
    // scanned for it here (a pass over the token, in V8, on every shared-data hit).
    Found::One(t.into())
}

fn from_cookie(headers: &[(String, Vec<u8>)], name: &str) -> Found {
    let mut found = Found::Nothing;
    for v in values(headers, "cookie") {
        let Ok(v) = std::str::from_utf8(v) else { continue };
        for pair in v.split(';') {
            let Some((_, val)) = pair.trim().split_once('=') else { continue };
            if is_cookie(pair, name) {
                if !matches!(found, Found::Nothing) {
                    return Found::Many;
                }
                let val = val.trim().trim_matches('"');
                if val.is_empty() {
                    continue; // an empty cookie carries no credential
                }
                found = Found::One(val.into());
            }
        }
    }
    found
}

/// Whether a raw `key=value` query pair is the parameter `name` (by its percent-decoded name).
fn is_param(pair: &str, name: &str) -> bool {
    let k = pair.split_once('=').map(|(k, _)| k).unwrap_or(pair);
    percent_decode(k).as_deref() == Some(name)
}

/// Whether a raw `name=value` cookie pair is the cookie `name`.
fn is_cookie(pair: &str, name: &str) -> bool {
    pair.split_once('=').is_some_and(|(k, _)| k.trim() == name)
}

fn from_query(path: &str, name: &str) -> Found {
    let Some((_, q)) = path.split_once('?') else { return Found::Nothing };
    let q = q.split('#').next().unwrap_or("");
    let mut found = Found::Nothing;
    for pair in q.split('&') {
        let v = pair.split_once('=').map(|(_, v)| v).unwrap_or("");
        if is_param(pair, name) {
            if !matches!(found, Found::Nothing) {
                return Found::Many;
            }
            found = match percent_decode(v) {
                Some(v) if v.is_empty() => continue, // `?access_token=` carries no credential
                Some(v) => Found::One(v.into()),
                None => Found::Bad,
            };
        }
    }
    found
}

#[cfg(test)]
pub fn extract(sources: &[Source], headers: &[(String, Vec<u8>)], path: &str) -> Extracted {
    extract_known(sources, headers, path, &|_| None)
}

/// The whole contract, as the filter keeps it across extraction and the caches: `extract`,
/// where `known(t)` says `t` is byte for byte a token verified before (so a b64token, not
/// checked again); any other token's characters are checked, a joined header (`is_joined`)
/// refused as more than one token.
#[cfg(test)]
pub fn extract_known(sources: &[Source], headers: &[(String, Vec<u8>)], path: &str, known: &Known) -> Extracted {
    match extract_unchecked(sources, headers, path, known) {
        Extracted::Token { token, .. } if known(token.as_bytes()).is_none() && !is_b64token(&token) => {
            if is_joined(&token) {
                Extracted::Ambiguous
            } else {
                Extracted::Malformed
            }
        }
        e => e,
    }
}

/// The token and where it came from, its characters not checked here: the caller checks them
/// (`is_b64token`; `Ambiguous` for a joined header, `is_joined`, `Malformed` otherwise) before it parses, verifies or sends the token
/// anywhere, and may first find it in the caches (`known`, or by its hash in shared data),
/// which hold only verified tokens, which passed that check (the check is a pass over the
/// token, in V8 about a tenth of what a shared-data hit adds).
pub fn extract_unchecked(sources: &[Source], headers: &[(String, Vec<u8>)], path: &str, known: &Known) -> Extracted {
    let mut token: Option<Rc<str>> = None;
    let mut mask = 0u32;
    let mut bad = false;
    for (i, s) in sources.iter().enumerate().take(MAX_SOURCES) {
        let found = match s {
            Source::Header { name, prefix } => from_header(headers, name, prefix, known),
            Source::Cookie(name) => from_cookie(headers, name),
            Source::Query(name) => from_query(path, name),
        };
        match found {
            Found::Nothing => {}
            Found::Many => return Extracted::Ambiguous,
            Found::Bad => bad = true,
            Found::One(t) => match &token {
                None => {
                    token = Some(t);
                    mask |= 1 << i;
                }
                Some(first) if *first == t => mask |= 1 << i,
                Some(_) => return Extracted::Ambiguous,
            },
        }
    }
    match token {
        // Something unreadable next to a token is a second, different credential.
        Some(_) if bad => Extracted::Ambiguous,
        Some(t) => Extracted::Token { token: t, sources: mask },
        None if bad => Extracted::Malformed,
        None => Extracted::None,
    }
}

/// Takes the token out of every source in `sources` (a bit set from `Extracted::Token`): the
/// header removed, the cookie dropped from `Cookie`, the query parameter dropped from `:path`
/// (matched by its decoded name, as it was read). Used when the token is replaced upstream.
pub fn removal_plan(all: &[Source], sources: u32, headers: &[(String, Vec<u8>)], path: &str) -> HeaderPlan {
    let (mut remove, mut set) = (Vec::new(), Vec::new());
    let mut cookies: Vec<&str> = Vec::new();
    let mut params: Vec<&str> = Vec::new();
    for (i, s) in all.iter().enumerate().take(MAX_SOURCES) {
        if sources & (1 << i) == 0 {
            continue;
        }
        match s {
            Source::Header { name, .. } => remove.push(name.clone()),
            Source::Cookie(name) => cookies.push(name),
            Source::Query(name) => params.push(name),
        }
    }
    if !cookies.is_empty() {
        let kept: Vec<&str> = values(headers, "cookie")
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .filter(|c| !c.is_empty() && !cookies.iter().any(|n| is_cookie(c, n)))
            .collect();
        remove.push("cookie".into());
        if !kept.is_empty() {
            set.push(("cookie".into(), kept.join("; ")));
        }
    }
    if !params.is_empty() {
        let (base, rest) = path.split_once('?').unwrap_or((path, ""));
        let (query, fragment) = match rest.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (rest, None),
        };
        let kept: Vec<&str> = query.split('&').filter(|kv| !kv.is_empty() && !params.iter().any(|n| is_param(kv, n))).collect();
        let mut new = base.to_owned();
        if !kept.is_empty() {
            new.push('?');
            new.push_str(&kept.join("&"));
        }
        if let Some(f) = fragment {
            new.push('#');
            new.push_str(f);
        }
        set.push((":path".into(), new));
    }
    remove.sort();
    remove.dedup();
    HeaderPlan::new(remove, set)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_known_token_is_not_checked_again_and_an_unknown_one_is() {
        let s = vec![Source::Header { name: "authorization".into(), prefix: "Bearer ".into() }];
        let h = vec![("authorization".to_string(), b"Bearer a.b.c".to_vec())];
        let seen = |t: &[u8]| (t == b"a.b.c").then(|| Rc::from("a.b.c"));
        assert_eq!(extract_known(&s, &h, "/", &seen), Extracted::Token { token: "a.b.c".into(), sources: 1 });
        let odd = vec![("authorization".to_string(), b"Bearer a.b\"c".to_vec())];
        assert_eq!(extract_known(&s, &odd, "/", &seen), Extracted::Malformed, "not the known token: checked");
        assert_eq!(extract_known(&s, &odd, "/", &|_| Some(Rc::from("a.b\"c"))), Extracted::Token { token: "a.b\"c".into(), sources: 1 }, "the contract: known means verified before");
        let two = vec![("authorization".to_string(), b"Bearer a.b.c,Bearer d.e.f".to_vec())];
        assert_eq!(extract_known(&s, &two, "/", &seen), Extracted::Ambiguous);
    }

    #[test]
    fn the_b64token_table_is_rfc_6750s_class() {
        for b in 0..=255u8 {
            let rfc = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(B64TOKEN[b as usize], rfc, "byte {b}");
        }
        assert!(is_b64token("a.b-c_d~e+f/g==") && !is_b64token("==") && !is_b64token("a=b") && !is_b64token("a,b"));
    }

    use super::*;

    type Headers = Vec<(String, Vec<u8>)>;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
    }

    fn sources() -> Vec<Source> {
        vec![
            Source::Header { name: "authorization".into(), prefix: "Bearer ".into() },
            Source::Cookie("access_token".into()),
            Source::Query("access_token".into()),
        ]
    }

    fn tok(t: &str, source: usize) -> Extracted {
        Extracted::Token { token: t.into(), sources: 1 << source }
    }

    #[test]
    fn table() {
        let s = sources();
        let cases: Vec<(Headers, &str, Extracted)> = vec![
            (h(&[]), "/", Extracted::None),
            (h(&[("authorization", "Bearer a.b.c")]), "/", tok("a.b.c", 0)),
            (h(&[("authorization", "bearer a.b.c")]), "/", tok("a.b.c", 0)),
            (h(&[("authorization", "BEARER   a.b.c")]), "/", tok("a.b.c", 0)),
            (h(&[("authorization", "Basic dXNlcjpwYXNz")]), "/", Extracted::None),
            (h(&[("authorization", "Bearer")]), "/", Extracted::None),
            (h(&[("authorization", "Bearer ")]), "/", Extracted::Malformed),
            (h(&[("authorization", "Bearer a b")]), "/", Extracted::Malformed),
            (h(&[("authorization", "Bearer a.b.c"), ("authorization", "Bearer d.e.f")]), "/", Extracted::Ambiguous),
            (h(&[("authorization", "Bearer a.b.c,Bearer d.e.f")]), "/", Extracted::Ambiguous),
            (h(&[("cookie", "x=1; access_token=c.o.k; y=2")]), "/", tok("c.o.k", 1)),
            (h(&[("cookie", "access_token=a"), ("cookie", "access_token=b")]), "/", Extracted::Ambiguous),
            // F2: a second, different token in another source is refused, never ignored.
            (h(&[("authorization", "Bearer a.b.c"), ("cookie", "access_token=c.o.k")]), "/", Extracted::Ambiguous),
            (h(&[("authorization", "Bearer a.b.c")]), "/x?access_token=q.u.e", Extracted::Ambiguous),
            (h(&[("authorization", "Bearer a.b.c"), ("cookie", "access_token=a b")]), "/", Extracted::Ambiguous),
            (h(&[("authorization", "Bearer a.b.c")]), "/x?access_token=%ZZ", Extracted::Ambiguous),
            // The same token in two sources is one token, found in both.
            (h(&[("authorization", "Bearer a.b.c"), ("cookie", "access_token=a.b.c")]), "/",
             Extracted::Token { token: "a.b.c".into(), sources: 0b011 }),
            (h(&[("cookie", "access_token=a.b.c")]), "/?access_token=a.b.c",
             Extracted::Token { token: "a.b.c".into(), sources: 0b110 }),
            (h(&[("authorization", "Basic dXNlcjpwYXNz"), ("cookie", "access_token=c.o.k")]), "/", tok("c.o.k", 1)),
            // F1: found through percent-decoding of its name.
            (h(&[]), "/x?access%5Ftoken=q.u.e", tok("q.u.e", 2)),
            (h(&[]), "/x?access_token=q.u.e&z=1", tok("q.u.e", 2)),
            (h(&[]), "/x?access_token=a&access_token=b", Extracted::Ambiguous),
            (h(&[]), "/x?access_token=%ZZ", Extracted::Malformed),
            (h(&[]), "/x?other=1", Extracted::None),
        ];
        for (headers, path, want) in cases {
            assert_eq!(extract(&s, &headers, path), want, "{headers:?} {path}");
        }
        let bad_utf8 = vec![("authorization".to_string(), b"Bearer \xff\xfe".to_vec())];
        assert_eq!(extract(&s, &bad_utf8, "/"), Extracted::Malformed);
        let bad_prefix = vec![("authorization".to_string(), "Beé".as_bytes().to_vec())];
        assert_eq!(extract(&s, &bad_prefix, "/"), Extracted::None);
    }

    /// F1/F2: the token leaves every source it was found in, and only it.
    #[test]
    fn removal_takes_the_token_out_of_every_source() {
        let s = sources();
        let headers = h(&[("authorization", "Bearer t.o.k"), ("cookie", "a=1; access_token=t.o.k"), ("cookie", "b=2")]);
        let plan = removal_plan(&s, 0b111, &headers, "/p?x=1&access%5Ftoken=t.o.k&access_tokens=keep#frag");
        assert_eq!(*plan.remove, ["authorization".to_string(), "cookie".to_string()]);
        assert_eq!(plan.set.to_vec(), vec![("cookie".to_string(), "a=1; b=2".to_string()), (":path".into(), "/p?x=1&access_tokens=keep#frag".into())]);
        let plan = removal_plan(&s, 0b100, &[], "/p?access_token=t");
        assert_eq!(plan, HeaderPlan::new(vec![], vec![(":path".into(), "/p".into())]));
        let plan = removal_plan(&s, 0b010, &h(&[("cookie", "access_token=t")]), "/p?access_token=t");
        assert_eq!(plan, HeaderPlan::new(vec!["cookie".into()], vec![]), "the only cookie: the header goes");
        let plan = removal_plan(&s, 0b001, &headers, "/p");
        assert_eq!(plan, HeaderPlan::new(vec!["authorization".into()], vec![]));
    }
}
