//! Route selection: the first route whose every given condition holds.

use crate::config::Route;

/// What a request offers to route matching.
pub struct RouteInput<'a> {
    /// `:path`, possibly with a query string (ignored for matching).
    pub path: &'a str,
    pub authority: &'a str,
    /// Envoy's `["xds","route_name"]`, when any route needs it.
    pub route_name: Option<&'a str>,
    /// Envoy's `["xds","cluster_name"]`, when any route needs it.
    pub cluster: Option<&'a str>,
}

pub fn select(routes: &[Route], r: &RouteInput) -> Option<usize> {
    let path = r.path.split(['?', '#']).next().unwrap_or("");
    routes.iter().position(|route| {
        let m = &route.matcher;
        m.path_prefix.as_deref().is_none_or(|p| path.starts_with(p))
            && m.path_exact.as_deref().is_none_or(|p| path == p)
            && m.authority.as_deref().is_none_or(|a| r.authority.eq_ignore_ascii_case(a))
            && m.route_name.as_deref().is_none_or(|n| r.route_name == Some(n))
            && m.cluster.as_deref().is_none_or(|c| r.cluster == Some(c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouteMatch;

    fn route(m: RouteMatch) -> Route {
        Route { matcher: m, allow_anonymous: false, providers: vec![], exchange: None }
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
        let inp = |path, authority, route_name, cluster| RouteInput { path, authority, route_name, cluster };
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
}
