//! Request-side rewrites of a forwarding route: `prefix_rewrite` / `regex_rewrite` of the path
//! and `host_rewrite_literal` / `host_rewrite_header` / `auto_host_rewrite` of the authority.
//! Each returns borrowed data when nothing changes, and allocates only to build a new path.

use std::borrow::Cow;

use outrider_model::{
    ForwardAction, HostRewrite, PathMatch, PathRewrite, RegexSubstitution, Route, RouteAction,
    WeightedCluster,
};

use super::request::{RequestView, path_without_query};
use super::route_match::matched_len;

/// A path rewrite of a forwarding route or a redirect (they share Envoy's rules).
#[derive(Debug, Clone, Copy)]
pub(crate) enum PathRewriteRef<'r> {
    /// Replace what the path specifier matched.
    Prefix(&'r str),
    /// Replace every match in the path, keeping the query string.
    Regex(&'r RegexSubstitution),
}

impl<'r> From<&'r PathRewrite> for PathRewriteRef<'r> {
    fn from(rewrite: &'r PathRewrite) -> Self {
        match rewrite {
            PathRewrite::Prefix(p) => Self::Prefix(p),
            PathRewrite::Regex(r) => Self::Regex(r),
        }
    }
}

/// The `:path` to send upstream for `route` (which matched the request): `path_and_query`
/// itself unless the route forwards with a path rewrite. Envoy also records the original in
/// `x-envoy-original-path` when the path changes; `forward` adds it.
pub fn rewrite_path<'a>(route: &Route, path_and_query: &'a str) -> Cow<'a, str> {
    match &route.action {
        RouteAction::Forward(action) => match &action.path_rewrite {
            Some(rewrite) => {
                apply_path_rewrite(&route.route_match.path, rewrite.into(), path_and_query)
            }
            None => Cow::Borrowed(path_and_query),
        },
        RouteAction::Redirect(_) | RouteAction::DirectResponse(_) => Cow::Borrowed(path_and_query),
    }
}

/// Envoy's `rewritePathByPrefixOrRegex` for a request that `spec` matched.
pub(crate) fn apply_path_rewrite<'a>(
    spec: &PathMatch,
    rewrite: PathRewriteRef<'_>,
    path_and_query: &'a str,
) -> Cow<'a, str> {
    let path = path_without_query(path_and_query);
    match rewrite {
        PathRewriteRef::Prefix(replacement) => {
            // The matched part ends on a character boundary (it equals the configured text up
            // to ASCII case); `get` keeps a surprise from panicking.
            let rest = path_and_query
                .get(matched_len(spec, path)..)
                .unwrap_or_default();
            let mut out = String::with_capacity(replacement.len() + rest.len());
            out.push_str(replacement);
            out.push_str(rest);
            Cow::Owned(out)
        }
        PathRewriteRef::Regex(r) => match r.pattern.replace_all(path, &r.substitution) {
            Cow::Borrowed(_) => Cow::Borrowed(path_and_query),
            Cow::Owned(mut replaced) => {
                replaced.push_str(&path_and_query[path.len()..]);
                Cow::Owned(replaced)
            }
        },
    }
}

/// The authority to send upstream, or `None` to keep the request's. Envoy applies, in order:
/// the route's `host_rewrite_literal` or `host_rewrite_header` (a missing or empty header
/// changes nothing), then the chosen weighted cluster's `host_rewrite_literal`, then — once
/// the endpoint is picked, per attempt — [`auto_host`].
///
/// When this returns `Some` and `action.append_x_forwarded_host` is set, the caller appends
/// the original authority to `x-forwarded-host`.
pub fn rewrite_authority<'a>(
    action: &'a ForwardAction,
    weighted: Option<&'a WeightedCluster>,
    request: &RequestView<'_>,
) -> Option<Cow<'a, str>> {
    if let Some(literal) = weighted.and_then(|w| w.host_rewrite_literal.as_deref()) {
        return Some(Cow::Borrowed(literal));
    }
    match &action.host_rewrite {
        HostRewrite::Literal(literal) => Some(Cow::Borrowed(literal)),
        HostRewrite::Header(name) => request
            .first_header_value(name)
            .filter(|v| !v.is_empty())
            .map(|v| Cow::Owned(v.into_owned())),
        HostRewrite::None | HostRewrite::Auto => None,
    }
}

/// `auto_host_rewrite`: the chosen endpoint's hostname (EDS `hostname`, or a DNS endpoint's
/// name) replaces the authority; an endpoint without one leaves it alone.
pub fn auto_host<'a>(action: &ForwardAction, endpoint_hostname: &'a str) -> Option<&'a str> {
    (action.host_rewrite == HostRewrite::Auto && !endpoint_hostname.is_empty())
        .then_some(endpoint_hostname)
}
