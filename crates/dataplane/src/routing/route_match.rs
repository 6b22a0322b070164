//! Route selection inside a virtual host: the first route whose match accepts the request, as
//! Envoy's `RouteEntryImplBase::matchRoute` and its path-specific subclasses decide.

use outrider_model::{PathMatch, Route, RouteMatch, VirtualHost};

use super::request::RequestView;

/// The first route of `vhost` that matches `request` (routes are tried in order).
pub fn select_route<'c>(vhost: &'c VirtualHost, request: &RequestView<'_>) -> Option<&'c Route> {
    // An empty `:path` (CONNECT) matches no path specifier Envoy accepts from us.
    if request.path_and_query.is_empty() {
        return None;
    }
    let path = request.path();
    vhost
        .routes
        .iter()
        .find(|route| route_matches(&route.route_match, request, path))
}

/// Whether `m` accepts `request`; `path` is the request path without query and fragment.
/// The path is checked first: it is the cheapest test and the one most likely to fail.
pub fn route_matches(m: &RouteMatch, request: &RequestView<'_>, path: &str) -> bool {
    path_matches(&m.path, m.case_sensitive, path)
        && (!m.grpc || request.is_grpc)
        && m.headers
            .iter()
            .all(|h| h.matches(request.header_value(&h.name).as_deref()))
        && m.query_parameters.iter().all(|q| {
            request
                .query_parameter(&q.name)
                .is_some_and(|value| q.value.as_ref().is_none_or(|m| m.matches(value)))
        })
}

/// Envoy's path matchers. `case_sensitive` does not apply to regexes (their own flags do).
pub(crate) fn path_matches(spec: &PathMatch, case_sensitive: bool, path: &str) -> bool {
    match spec {
        PathMatch::Prefix(prefix) => starts_with(path, prefix, case_sensitive),
        PathMatch::Exact(exact) => {
            path.len() == exact.len() && starts_with(path, exact, case_sensitive)
        }
        PathMatch::SeparatedPrefix(prefix) => {
            starts_with(path, prefix, case_sensitive)
                && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
        }
        PathMatch::Regex(regex) => regex.is_full_match(path),
    }
}

/// Byte-wise so a prefix ending inside a multi-byte character cannot panic.
fn starts_with(path: &str, prefix: &str, case_sensitive: bool) -> bool {
    let (path, prefix) = (path.as_bytes(), prefix.as_bytes());
    match path.get(..prefix.len()) {
        None => false,
        Some(head) if case_sensitive => head == prefix,
        Some(head) => head.eq_ignore_ascii_case(prefix),
    }
}

/// How many bytes of the path (without query) the route's path specifier consumed: what
/// `prefix_rewrite` replaces. Exact and regex routes consume the whole path.
pub(crate) fn matched_len(spec: &PathMatch, path: &str) -> usize {
    match spec {
        PathMatch::Prefix(p) | PathMatch::SeparatedPrefix(p) => p.len().min(path.len()),
        PathMatch::Exact(_) | PathMatch::Regex(_) => path.len(),
    }
}
