//! Route selection: the first route whose every given condition holds.
//!
//! The decision must agree with what Envoy routed on and what the backend will resolve, or a
//! request could reach a path or host under a more lenient route's rules (review finding F3):
//! - `authority` is compared as a host name: case-insensitively, without a port and without a
//!   trailing dot (`Admin.Example.com.:443` is `admin.example.com`). IPv6 literals keep their
//!   brackets (`[::1]:8443` is `[::1]`).
//! - `path_prefix` / `path_exact` are compared against the path normalised as RFC 3986 §6.2.2
//!   and Envoy's `normalize_path` + `merge_slashes` do it (and more): query and fragment
//!   dropped, `%XX` of unreserved characters and of `/` and `\` decoded, `\` read as `/`,
//!   repeated slashes merged, `.` and `..` segments removed. With Envoy's recommended settings
//!   the path arrives normalised already and this changes nothing; without them, the filter
//!   still picks the route of the path a normalising backend will serve. The forwarded `:path`
//!   is never changed by this. Matching stays case-sensitive, as in Envoy.

use crate::bytes::eq;
use crate::config::Route;
use std::borrow::Cow;

/// What a request offers to route matching.
pub struct RouteInput<'a> {
    /// `:method` (read when something needs it, else empty).
    pub method: &'a str,
    /// `:path`, possibly with a query string (ignored for matching).
    pub path: &'a str,
    pub authority: &'a str,
    /// Envoy's `["xds","route_name"]`, when any route needs it.
    pub route_name: Option<&'a str>,
    /// Envoy's `["xds","cluster_name"]`, when any route needs it.
    pub cluster: Option<&'a str>,
}

/// The host of an `:authority` (or `Host`) value as the routes compare it: no port, no trailing
/// dot, ASCII lowercase (the configuration's `authority` is stored that way).
pub fn host_of(authority: &str) -> Cow<'_, str> {
    let host = if authority.starts_with('[') {
        // An IPv6 literal: the port, if any, follows the closing bracket.
        match authority.find(']') {
            Some(i) => &authority[..=i],
            None => authority,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|c| c.is_ascii_digit()) => h,
            _ => authority,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|c| c.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Already normal: rooted, nothing to decode (`%`, `\\`), no empty segment (`//`), no `.` or
/// `..` segment. One pass over the bytes (every request with a route on the path asks).
fn is_plain(b: &[u8]) -> bool {
    let Some((&b'/', rest)) = b.split_first() else { return false };
    // The segment since the last `/`: its length, and whether it is dots only.
    let (mut len, mut dots) = (0usize, true);
    for &c in rest {
        match c {
            b'%' | b'\\' => return false,
            b'/' => {
                if len == 0 || (dots && len <= 2) {
                    return false;
                }
                (len, dots) = (0, true);
            }
            _ => {
                len += 1;
                dots &= c == b'.';
            }
        }
    }
    !(dots && (len == 1 || len == 2))
}

/// The path (without query or fragment) normalised for matching; see the module doc.
pub fn normalize_path(raw: &str) -> Cow<'_, str> {
    let end = raw.bytes().position(|c| c == b'?' || c == b'#').unwrap_or(raw.len());
    let path = raw.get(..end).unwrap_or("");
    let b = path.as_bytes();
    if is_plain(b) {
        return Cow::Borrowed(path);
    }
    // Decode what Envoy and common backends decode before resolving segments.
    let mut dec = Vec::with_capacity(b.len() + 1);
    if b.first() != Some(&b'/') {
        dec.push(b'/');
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                let v = h * 16 + l;
                if v.is_ascii_alphanumeric() || b"-._~/\\".contains(&v) {
                    dec.push(if v == b'\\' { b'/' } else { v });
                    i += 3;
                    continue;
                }
            }
        }
        dec.push(if c == b'\\' { b'/' } else { c });
        i += 1;
    }
    // Merge slashes and remove dot segments (RFC 3986 §5.2.4 on a rooted path).
    let text = String::from_utf8_lossy(&dec).into_owned();
    let trailing = text.ends_with('/') || text.ends_with("/.") || text.ends_with("/..");
    let mut out: Vec<&str> = Vec::new();
    for seg in text.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut n = String::with_capacity(text.len());
    for s in &out {
        n.push('/');
        n.push_str(s);
    }
    if n.is_empty() || trailing {
        n.push('/');
    }
    Cow::Owned(n)
}

pub fn select(routes: &[Route], r: &RouteInput) -> Option<usize> {
    if routes.is_empty() {
        return None;
    }
    let by_path = routes.iter().any(|x| x.matcher.path_prefix.is_some() || x.matcher.path_exact.is_some());
    let path = if by_path { normalize_path(r.path) } else { Cow::Borrowed("") };
    let host = if routes.iter().any(|x| x.matcher.authority.is_some()) { host_of(r.authority) } else { Cow::Borrowed("") };
    routes.iter().position(|route| {
        let m = &route.matcher;
        // Byte-wise in place (`==` on strings is a `memcmp` call, a byte loop in wasm).
        m.path_prefix.as_deref().is_none_or(|p| path.as_bytes().get(..p.len()).is_some_and(|h| eq(h, p.as_bytes())))
            && m.path_exact.as_deref().is_none_or(|p| eq(path.as_bytes(), p.as_bytes()))
            && m.authority.as_deref().is_none_or(|a| eq(host.as_bytes(), a.as_bytes()))
            && m.route_name.as_deref().is_none_or(|n| r.route_name == Some(n))
            && m.cluster.as_deref().is_none_or(|c| r.cluster == Some(c))
            && (m.methods.is_empty() || m.methods.iter().any(|x| eq(x.as_bytes(), r.method.as_bytes())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouteMatch;

    fn route(m: RouteMatch) -> Route {
        Route { matcher: m, allow_anonymous: false, providers: vec![], exchange: None, mint: None, embedded: None, txn: None, require: None }
    }

    #[test]
    fn first_match_wins() {
        let routes = vec![
            route(RouteMatch { path_exact: Some("/exact".into()), ..Default::default() }),
            route(RouteMatch { path_prefix: Some("/healthz".into()), ..Default::default() }),
            route(RouteMatch { authority: Some("admin.example.com".into()), ..Default::default() }),
            route(RouteMatch { route_name: Some("orders".into()), ..Default::default() }),
            route(RouteMatch { cluster: Some("inventory".into()), path_prefix: Some("/inv".into()), ..Default::default() }),
        ];
        let inp = |path, authority, route_name, cluster| RouteInput { method: "GET", path, authority, route_name, cluster };
        let cases = [
            (inp("/exact", "a", None, None), Some(0)),
            (inp("/exact?x=1", "a", None, None), Some(0)),
            (inp("/exact/more", "a", None, None), None),
            (inp("/healthz/live", "a", None, None), Some(1)),
            (inp("/x", "ADMIN.example.com", None, None), Some(2)),
            (inp("/x", "b", Some("orders"), None), Some(3)),
            (inp("/inv/1", "b", None, Some("inventory")), Some(4)),
            (inp("/other", "b", None, Some("inventory")), None),
            (inp("/x", "b", None, None), None),
        ];
        for (i, want) in cases {
            assert_eq!(select(&routes, &i), want, "{}", i.path);
        }
    }

    /// Review finding F3: the host Envoy routed on, whatever port or trailing dot the client
    /// wrote, picks the same route (this failed before: `admin.example.com:443` fell through).
    #[test]
    fn authority_is_compared_as_a_host() {
        let routes = vec![
            route(RouteMatch { authority: Some("admin.example.com".into()), ..Default::default() }),
            route(RouteMatch { authority: Some("[::1]".into()), ..Default::default() }),
        ];
        let at = |a| select(&routes, &RouteInput { method: "GET", path: "/", authority: a, route_name: None, cluster: None });
        for a in ["admin.example.com", "ADMIN.example.com", "admin.example.com:443", "admin.example.com.",
                  "Admin.Example.Com.:8443", "admin.example.com:"] {
            assert_eq!(at(a), Some(0), "{a}");
        }
        for a in ["[::1]", "[::1]:8080"] {
            assert_eq!(at(a), Some(1), "{a}");
        }
        for a in ["admin.example.com.evil", "xadmin.example.com", "admin.example.com:443:1x", "admin.example.com..", ""] {
            assert_eq!(at(a), None, "{a}");
        }
    }

    #[test]
    fn paths_are_matched_normalised() {
        let cases = [
            ("/admin", "/admin"),
            ("/admin?x=/../y", "/admin"),
            ("/public/../admin", "/admin"),
            ("/public/%2e%2E/admin", "/admin"),
            ("/public%2F..%2Fadmin", "/admin"),
            ("/public\\..\\admin", "/admin"),
            ("/public%5C..%5Cadmin", "/admin"),
            ("//admin//x", "/admin/x"),
            ("/./admin/./x/.", "/admin/x/"),
            ("/a/b/..", "/a/"),
            ("/../../admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/admin%3Fx", "/admin%3Fx"),
            ("/admin%2", "/admin%2"),
            ("", "/"),
            ("admin", "/admin"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_path(raw), want, "{raw}");
        }
        let routes = vec![
            route(RouteMatch { path_prefix: Some("/admin".into()), ..Default::default() }),
            route(RouteMatch { path_prefix: Some("/public".into()), ..Default::default() }),
        ];
        let at = |p| select(&routes, &RouteInput { method: "GET", path: p, authority: "a", route_name: None, cluster: None });
        assert_eq!(at("/public/../admin/users"), Some(0));
        assert_eq!(at("/public/%2e%2e/admin"), Some(0));
        assert_eq!(at("/public/x"), Some(1));
    }

    /// The one-pass check against its definition, on every string of up to seven bytes over the
    /// bytes that matter (and an ordinary one).
    #[test]
    fn plain_exactly_when_rooted_with_nothing_to_decode_and_no_empty_or_dot_segment() {
        let defined = |p: &str| {
            p.starts_with('/') && !p.bytes().any(|c| c == b'%' || c == b'\\') && !p.contains("//") && !p.split('/').any(|seg| seg == "." || seg == "..")
        };
        let alphabet = [b'/', b'.', b'a', b'%', b'\\'];
        let mut checked = 0;
        for len in 0..=7u32 {
            for mut k in 0..alphabet.len().pow(len) {
                let mut b = Vec::new();
                for _ in 0..len {
                    b.push(alphabet[k % alphabet.len()]);
                    k /= alphabet.len();
                }
                let p = std::str::from_utf8(&b).unwrap();
                assert_eq!(is_plain(&b), defined(p), "{p:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, (0..=7).map(|l| 5usize.pow(l)).sum::<usize>());
    }
}
