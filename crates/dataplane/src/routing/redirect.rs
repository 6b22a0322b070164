//! Local answers of a route: a `redirect` (status and `Location`, built as Envoy's
//! `Http::Utility::newUri` builds it) and a `direct_response` (status, body, and the request's
//! own URL as `Location` for 201 and 3xx, as Envoy's router adds it).

use std::borrow::Cow;

use outrider_model::{DirectResponse, RedirectAction, RedirectPath, RouteMatch};

use super::request::RequestView;
use super::rewrite::{PathRewriteRef, apply_path_rewrite};

/// A redirect to send downstream (with an empty body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
    pub location: String,
}

/// A direct response to send downstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse<'c> {
    pub status: u16,
    /// Empty when the route has no body (Envoy sends `text/plain` when there is one).
    pub body: &'c [u8],
    /// Set for 201 and 3xx statuses.
    pub location: Option<String>,
}

/// The redirect for `request`, which the route with `route_match` and `action` matched.
pub fn redirect(
    route_match: &RouteMatch,
    action: &RedirectAction,
    request: &RequestView<'_>,
) -> Redirect {
    // Envoy rewrites `:path` first (prefix or regex rewrite), then builds the URI from it.
    let path = match &action.path {
        Some(RedirectPath::PrefixRewrite(p)) => apply_path_rewrite(
            &route_match.path,
            PathRewriteRef::Prefix(p),
            request.path_and_query,
        ),
        Some(RedirectPath::Regex(r)) => apply_path_rewrite(
            &route_match.path,
            PathRewriteRef::Regex(r),
            request.path_and_query,
        ),
        Some(RedirectPath::Path(_)) | None => Cow::Borrowed(request.path_and_query),
    };
    Redirect {
        status: action.response_code,
        location: location(Some(action), &path, request),
    }
}

/// The direct response for `request`.
pub fn direct_response<'c>(
    action: &'c DirectResponse,
    request: &RequestView<'_>,
) -> LocalResponse<'c> {
    let wants_location = action.status == 201 || (300..400).contains(&action.status);
    LocalResponse {
        status: action.status,
        body: action.body.as_deref().unwrap_or_default(),
        location: (wants_location && !request.path_and_query.is_empty())
            .then(|| location(None, request.path_and_query, request)),
    }
}

/// Envoy's `newUri`: `scheme://host[:port]path`, each part from the redirect when it sets one,
/// else from the request.
fn location(
    action: Option<&RedirectAction>,
    path_and_query: &str,
    request: &RequestView<'_>,
) -> String {
    let scheme = action
        .and_then(|a| a.scheme.as_deref())
        .unwrap_or(request.scheme());
    let port = action.and_then(|a| a.port);
    let host = match action.and_then(|a| a.host.as_deref()) {
        Some(host) => host,
        None => request_host(request, scheme, port.is_some()),
    };
    let path_redirect = match action.and_then(|a| a.path.as_ref()) {
        Some(RedirectPath::Path(p)) if !p.is_empty() => Some(p.as_str()),
        _ => None,
    };
    // A `path_redirect` with its own query replaces the request's and ignores `strip_query`;
    // one without keeps the request's query (subject to `strip_query`).
    let redirect_has_query = path_redirect.is_some_and(|p| p.contains('?'));
    let request_query = path_and_query
        .find('?')
        .map_or("", |q| &path_and_query[q..]);
    let (path, query) = match path_redirect {
        Some(p) if redirect_has_query => (p, ""),
        Some(p) => (p, request_query),
        None => match path_and_query.find('?') {
            Some(q) => (&path_and_query[..q], &path_and_query[q..]),
            None => (path_and_query, ""),
        },
    };
    let strip_query = !redirect_has_query && action.is_some_and(|a| a.strip_query);

    let mut out =
        String::with_capacity(scheme.len() + 3 + host.len() + 6 + 1 + path.len() + query.len());
    out.push_str(scheme);
    out.push_str("://");
    out.push_str(host);
    if let Some(port) = port {
        out.push(':');
        out.push_str(&port.to_string());
    }
    if !path.starts_with('/') {
        out.push('/');
    }
    out.push_str(path);
    if !strip_query {
        out.push_str(query);
    }
    out
}

/// Envoy's `processRequestHost`: the request authority, without its port when the redirect
/// sets a port, or when the scheme changes and the port was the default of the original
/// scheme (judged by `x-forwarded-proto`, which the connection manager has set by now).
fn request_host<'a>(request: &RequestView<'a>, new_scheme: &str, new_port: bool) -> &'a str {
    let authority = request.authority;
    let host_end = if authority.starts_with('[') {
        authority.rfind("]:").map(|i| i + 1)
    } else {
        authority.rfind(':')
    };
    let Some(host_end) = host_end else {
        return authority;
    };
    let port = &authority[host_end..];
    let forwarded_proto = request.first_header_value("x-forwarded-proto");
    let protocol = forwarded_proto.as_deref().unwrap_or(request.scheme());
    let mut remove_port = new_port;
    if new_scheme != protocol {
        remove_port |= protocol.eq_ignore_ascii_case("https") && port == ":443";
        remove_port |= protocol.eq_ignore_ascii_case("http") && port == ":80";
    }
    if remove_port {
        &authority[..host_end]
    } else {
        authority
    }
}
