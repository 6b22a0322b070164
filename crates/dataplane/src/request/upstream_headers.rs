//! The plan applied to the request's headers, once for all attempts: hop-by-hop headers out,
//! the router's timeout controls consumed, the expected timeout, the route's header mutations, the rewritten
//! path (with `x-envoy-original-path`) and the authority in the form the upstream's protocol
//! carries it. No I/O: what each attempt adds (attempt count, `auto_host_rewrite`) is in
//! `attempt.rs`.

use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use outrider_model::{ForwardAction, HttpConnectionManager};

use super::error::ProxyError;
use super::plan::Plan;
use super::timeouts::{GRPC_TIMEOUT, GrpcTimeoutHeader, grpc_timeout_value};
use crate::headers::{
    EXPECTED_TIMEOUT_MS, ORIGINAL_PATH, PER_TRY_TIMEOUT_MS, UPSTREAM_TIMEOUT_MS, X_FORWARDED_HOST,
    strip_hop_by_hop,
};
use crate::route_headers::RouteHeaders;

/// Envoy's default route timeout, whose header value is a static.
const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the request goes, besides its headers.
#[derive(Debug, PartialEq)]
pub(crate) struct Target {
    pub path: PathAndQuery,
    /// For an HTTP/2 upstream, the `:authority` (the `Host` header is removed so that nothing
    /// contradicts it); `None` for HTTP/1.1, whose `Host` header carries it.
    pub authority: Option<String>,
}

/// How the upstream request is framed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Upstream {
    pub http2: bool,
    /// A WebSocket (or other) upgrade goes through: its `Upgrade`/`Connection` headers stay.
    pub upgrade: bool,
}

/// Rewrites `parts` for the upstream as `plan` says and returns the target.
#[inline(always)]
pub(crate) fn prepare(
    parts: &mut http::request::Parts,
    plan: &Plan<'_>,
    action: &ForwardAction,
    hcm: &HttpConnectionManager,
    route_headers: &RouteHeaders<'_>,
    upstream: Upstream,
) -> Result<Target, ProxyError> {
    let envoy_controls = plan.envoy_controls;
    strip_hop_by_hop(&mut parts.headers, upstream.upgrade);
    // The router consumes its timeout controls (the retry ones stay, as in Envoy).
    if envoy_controls {
        parts.headers.remove(UPSTREAM_TIMEOUT_MS);
        parts.headers.remove(PER_TRY_TIMEOUT_MS);
    }
    match plan.timeouts.grpc_timeout_header {
        GrpcTimeoutHeader::Keep => {}
        GrpcTimeoutHeader::Set(timeout) => {
            parts
                .headers
                .insert(GRPC_TIMEOUT, grpc_timeout_value(timeout));
        }
        GrpcTimeoutHeader::Remove => {
            parts.headers.remove(GRPC_TIMEOUT);
        }
    }
    if let Some(timeout) = plan.timeouts.expected()
        && !hcm.suppress_envoy_headers
        && let Ok(millis) = u64::try_from(timeout.as_millis())
    {
        // The default timeout's value is a static: no allocation on the common path.
        let value = if timeout == DEFAULT_ROUTE_TIMEOUT {
            HeaderValue::from_static("15000")
        } else {
            HeaderValue::from(millis)
        };
        parts.headers.insert(EXPECTED_TIMEOUT_MS, value);
    }
    if !route_headers.is_empty() {
        route_headers.apply_to_request(&mut parts.headers);
    }
    let path = match plan.path.as_deref().map(PathAndQuery::try_from) {
        Some(Ok(rewritten)) => {
            // Envoy keeps the path the client sent for the upstream to see.
            if !hcm.suppress_envoy_headers
                && let Some(original) = parts.uri.path_and_query()
                && let Ok(value) = HeaderValue::from_str(original.as_str())
            {
                parts.headers.insert(ORIGINAL_PATH, value);
            }
            rewritten
        }
        Some(Err(_)) => return Err(ProxyError::InvalidUpstreamRequest),
        None => parts
            .uri
            .path_and_query()
            .filter(|p| !p.as_str().is_empty())
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    };
    // An HTTP/1.1 upstream needs a Host header: an HTTP/2 downstream carried the authority in
    // `:authority` instead.
    if !upstream.http2
        && !parts.headers.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(value) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(header::HOST, value);
    }
    if let Some(authority) = &plan.authority
        && let Ok(value) = HeaderValue::from_str(authority)
    {
        if action.append_x_forwarded_host
            && let Some(original) = parts.headers.get(header::HOST).cloned()
        {
            parts.headers.append(X_FORWARDED_HOST, original);
        }
        parts.headers.insert(header::HOST, value);
    }
    let authority = if upstream.http2 {
        match parts.headers.remove(header::HOST) {
            Some(host) => host.to_str().ok().map(str::to_owned),
            None => parts.uri.authority().map(|a| a.as_str().to_owned()),
        }
    } else {
        None
    };
    Ok(Target { path, authority })
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use http::Request;
    use outrider_model::RouteAction;

    use super::*;
    use crate::request::plan::plan;
    use crate::request::test_support;
    use crate::routing::RequestView;

    struct Case {
        route: &'static str,
        uri: &'static str,
        host: Option<&'static str>,
        http2: bool,
        /// Expected path, authority and the headers the upstream sees (name, value).
        path: &'static str,
        authority: Option<&'static str>,
        headers: &'static [(&'static str, &'static str)],
    }

    fn hcm(suppress: bool) -> HttpConnectionManager {
        let router = format!("          suppress_envoy_headers: {suppress}\n");
        test_support::hcm_with("", &router)
    }

    fn run(case: &Case, suppress: bool) -> (Target, http::HeaderMap) {
        let route_yaml = format!("  - match: {{ prefix: / }}\n    route: {}\n", case.route);
        let config = test_support::routes("", &route_yaml);
        let vhost = &config.virtual_hosts[0];
        let route = &vhost.routes[0];
        let RouteAction::Forward(action) = &route.action else {
            panic!("a forwarding route");
        };
        let mut request = Request::builder()
            .uri(case.uri)
            .header("connection", "keep-alive");
        if let Some(host) = case.host {
            request = request.header("host", host);
        }
        let (mut parts, ()) = request.body(()).expect("valid request").into_parts();
        let peer = "10.0.0.1:5000".parse().expect("an address");
        let local = "10.0.0.2:80".parse().expect("an address");
        let hcm = hcm(suppress);
        let connection = crate::request::plan::Downstream {
            peer,
            local,
            envoy_controls: true,
        };
        let planned = plan(
            &hcm,
            vhost,
            route,
            action,
            &RequestView::from_parts(&parts, false),
            connection,
            0,
        );
        let plan = Plan {
            cluster: planned.cluster.map(|c| Cow::Owned(c.into_owned())),
            ..planned
        };
        let route_headers = RouteHeaders::new(&config, vhost, route);
        let upstream = Upstream {
            http2: case.http2,
            upgrade: false,
        };
        let target = prepare(&mut parts, &plan, action, &hcm, &route_headers, upstream)
            .expect("a valid target");
        (target, parts.headers)
    }

    #[test]
    fn headers_path_and_authority_for_each_upstream_protocol() {
        let cases = [
            Case {
                route: "{ cluster: c }",
                uri: "/a?b",
                host: Some("example.com"),
                http2: false,
                path: "/a?b",
                authority: None,
                headers: &[
                    ("host", "example.com"),
                    ("x-envoy-expected-rq-timeout-ms", "15000"),
                ],
            },
            Case {
                route: "{ cluster: c, timeout: 0s, prefix_rewrite: /z }",
                uri: "/a",
                host: Some("example.com"),
                http2: true,
                path: "/za",
                authority: Some("example.com"),
                headers: &[("x-envoy-original-path", "/a")],
            },
            // An HTTP/2 downstream's authority becomes the HTTP/1.1 upstream's Host.
            Case {
                route: "{ cluster: c, timeout: 3s }",
                uri: "http://h2.example/",
                host: None,
                http2: false,
                path: "/",
                authority: None,
                headers: &[
                    ("host", "h2.example"),
                    ("x-envoy-expected-rq-timeout-ms", "3000"),
                ],
            },
            Case {
                route: "{ cluster: c, host_rewrite_literal: new.example, append_x_forwarded_host: true }",
                uri: "/",
                host: Some("old.example"),
                http2: false,
                path: "/",
                authority: None,
                headers: &[("host", "new.example"), ("x-forwarded-host", "old.example")],
            },
        ];
        for case in &cases {
            let (target, headers) = run(case, false);
            assert_eq!(target.path.as_str(), case.path, "{}", case.route);
            assert_eq!(
                target.authority.as_deref(),
                case.authority,
                "{}",
                case.route
            );
            assert!(!headers.contains_key("connection"), "hop-by-hop stays");
            assert_eq!(headers.contains_key("host"), !case.http2, "{}", case.route);
            for (name, value) in case.headers {
                assert_eq!(
                    headers.get(*name).map(|v| v.to_str().expect("ASCII")),
                    Some(*value),
                    "{} {name}",
                    case.route
                );
            }
        }
    }

    #[test]
    fn suppressed_envoy_headers_are_not_added() {
        let case = Case {
            route: "{ cluster: c, prefix_rewrite: /z }",
            uri: "/a",
            host: Some("example.com"),
            http2: false,
            path: "/za",
            authority: None,
            headers: &[],
        };
        let (_, headers) = run(&case, true);
        assert!(!headers.contains_key("x-envoy-expected-rq-timeout-ms"));
        assert!(!headers.contains_key("x-envoy-original-path"));
    }
}
