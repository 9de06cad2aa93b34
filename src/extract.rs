//! Where the bearer token comes from: a header (with a scheme prefix), a cookie, or a query
//! parameter, tried in configured order. Ambiguity (the same source twice) is a 400, not a guess.

use crate::config::Source;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extracted {
    None,
    Token { token: String, source: usize },
    /// RFC 6750 `invalid_request`: the request carries the credential ambiguously.
    Ambiguous,
    /// Something is where the token should be, but it is not a token.
    Malformed,
}

/// RFC 6750 b64token, which covers every JWS/JWE compact token and opaque tokens.
fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|c| c.is_ascii_alphanumeric() || b"-._~+/".contains(&c))
}

fn values<'a>(headers: &'a [(String, Vec<u8>)], name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
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
    One(String),
    Many,
    Bad,
}

fn from_header(headers: &[(String, Vec<u8>)], name: &str, prefix: &str) -> Found {
    let mut vals = values(headers, name);
    let Some(v) = vals.next() else { return Found::Nothing };
    if vals.next().is_some() {
        return Found::Many;
    }
    let Ok(v) = std::str::from_utf8(v) else { return Found::Bad };
    if v.len() < prefix.len() || !v.is_char_boundary(prefix.len()) || !v[..prefix.len()].eq_ignore_ascii_case(prefix) {
        // Another scheme (e.g. Basic): not a bearer token from this source.
        return Found::Nothing;
    }
    let t = v[prefix.len()..].trim_start_matches(' ');
    // Envoy joins repeated headers with ','; a b64token never contains one.
    if t.contains(',') {
        return Found::Many;
    }
    Found::One(t.to_owned())
}

fn from_cookie(headers: &[(String, Vec<u8>)], name: &str) -> Found {
    let mut found = Found::Nothing;
    for v in values(headers, "cookie") {
        let Ok(v) = std::str::from_utf8(v) else { continue };
        for pair in v.split(';') {
            let Some((k, val)) = pair.trim().split_once('=') else { continue };
            if k.trim() == name {
                if !matches!(found, Found::Nothing) {
                    return Found::Many;
                }
                found = Found::One(val.trim().trim_matches('"').to_owned());
            }
        }
    }
    found
}

fn from_query(path: &str, name: &str) -> Found {
    let Some((_, q)) = path.split_once('?') else { return Found::Nothing };
    let q = q.split('#').next().unwrap_or("");
    let mut found = Found::Nothing;
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(k).as_deref() == Some(name) {
            if !matches!(found, Found::Nothing) {
                return Found::Many;
            }
            found = match percent_decode(v) {
                Some(v) => Found::One(v),
                None => Found::Bad,
            };
        }
    }
    found
}

pub fn extract(sources: &[Source], headers: &[(String, Vec<u8>)], path: &str) -> Extracted {
    for (i, s) in sources.iter().enumerate() {
        let found = match s {
            Source::Header { name, prefix } => from_header(headers, name, prefix),
            Source::Cookie(name) => from_cookie(headers, name),
            Source::Query(name) => from_query(path, name),
        };
        match found {
            Found::Nothing => continue,
            Found::Many => return Extracted::Ambiguous,
            Found::Bad => return Extracted::Malformed,
            Found::One(t) if is_b64token(&t) => return Extracted::Token { token: t, source: i },
            Found::One(_) => return Extracted::Malformed,
        }
    }
    Extracted::None
}

#[cfg(test)]
mod tests {
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
        Extracted::Token { token: t.into(), source }
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
            (h(&[("authorization", "Bearer a.b.c"), ("cookie", "access_token=c.o.k")]), "/", tok("a.b.c", 0)),
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
}
