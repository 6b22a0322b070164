//! The plan phase: everything the router decides for a forwarded request before any I/O, as a
//! pure function of the request, its route and the stream's random value. Cluster, load
//! balancing hash and generated cookies, path and authority rewrites, the route timeout and
//! the retry policy, with the `x-envoy-*` request headers that override them (the connection
//! manager has already removed those from external requests).

use std::borrow::Cow;
use std::net::SocketAddr;

use outrider_model::{
    ForwardAction, HttpConnectionManager, RetryOn, RetryPolicy, Route, VirtualHost, WeightedCluster,
};

use super::timeouts::{Timeouts, timeouts};
use crate::headers::{MAX_RETRIES, RETRY_ON, number};
use crate::routing::{
    GeneratedCookie, RequestView, choose_cluster, request_hash, rewrite_authority, rewrite_path,
};

/// What routing decided for one forwarded request. Borrows only the route configuration, so
/// the request itself can be taken apart afterwards.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan<'r> {
    /// `None` when the route names its cluster by a header the request lacks.
    pub cluster: Option<Cow<'r, str>>,
    /// The weighted cluster entry picked, whose header mutations apply first.
    pub weighted: Option<&'r WeightedCluster>,
    /// For RING_HASH and MAGLEV.
    pub hash: Option<u64>,
    /// Cookies a hash policy generated for this client: sent with the upstream's answer (not
    /// with local replies), as Envoy's router does.
    pub set_cookies: Vec<GeneratedCookie>,
    /// The path and query to send when a prefix or regex rewrite changed it (`None`: the
    /// request's own, sent without copying).
    pub path: Option<String>,
    /// A new `:authority`/`Host` from the route or the weighted cluster (`auto_host_rewrite`
    /// is per attempt: it needs the endpoint).
    pub authority: Option<Cow<'r, str>>,
    /// The route and per-try timeouts, what the upstream's `grpc-timeout` says, and the
    /// stream's own limits (`timeouts.rs`).
    pub timeouts: Timeouts,
    /// The request may carry `x-envoy-*` controls, which the router removes.
    pub envoy_controls: bool,
    /// The route's policy, else the virtual host's, with `x-envoy-retry-on` and
    /// `x-envoy-max-retries` applied (copied only when a header changes it).
    pub retry: Option<Cow<'r, RetryPolicy>>,
}

/// What the connection manager knows of a request besides the request itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Downstream {
    /// The connection's two ends (cookie and connection-property hash policies read them).
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The request may carry the router's `x-envoy-*` controls (it is internal and came
    /// with some); otherwise they are not looked for.
    pub envoy_controls: bool,
}

/// The plan for `request` on a route that forwards with `action`.
#[inline(always)]
pub(crate) fn plan<'r>(
    hcm: &HttpConnectionManager,
    vhost: &'r VirtualHost,
    route: &'r Route,
    action: &'r ForwardAction,
    request: &RequestView<'_>,
    downstream: Downstream,
    random: u64,
) -> Plan<'r> {
    let choice = choose_cluster(action, request, random);
    let hash = request_hash(
        &action.hash_policy,
        request,
        downstream.peer,
        downstream.local,
    );
    let headers = request.headers;
    let mut retry = action
        .retry_policy
        .as_ref()
        .or(vhost.retry_policy.as_ref())
        .map(Cow::Borrowed);
    if let Some(retry_on) = downstream
        .envoy_controls
        .then(|| headers.get(&RETRY_ON))
        .flatten()
        .and_then(|v| v.to_str().ok())
    {
        let policy = retry
            .get_or_insert_with(|| Cow::Owned(RetryPolicy::default()))
            .to_mut();
        policy.retry_on = policy.retry_on | RetryOn::parse(retry_on);
    }
    if let Some(policy) = retry.as_mut().filter(|_| downstream.envoy_controls)
        && let Some(max) = number(headers, &MAX_RETRIES)
    {
        policy.to_mut().num_retries = max;
    }
    let per_try = retry.as_ref().and_then(|p| p.per_try_timeout);
    Plan {
        timeouts: timeouts(
            hcm,
            action,
            per_try,
            headers,
            request.is_grpc,
            downstream.envoy_controls,
        ),
        authority: rewrite_authority(action, choice.weighted, request),
        cluster: choice.cluster,
        weighted: choice.weighted,
        hash: hash.hash,
        set_cookies: hash.set_cookies,
        path: match rewrite_path(route, request.path_and_query) {
            Cow::Owned(rewritten) => Some(rewritten),
            Cow::Borrowed(_) => None,
        },
        retry,
        envoy_controls: downstream.envoy_controls,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::Request;
    use outrider_model::{RouteAction, RouteConfiguration};

    use std::time::Duration;

    use super::*;
    use crate::request::test_support;

    fn config(routes: &str) -> Arc<RouteConfiguration> {
        test_support::routes(
            "  retry_policy: { retry_on: reset, num_retries: 4 }\n",
            routes,
        )
    }

    /// The plan for a `GET path` with `headers` on the first route of `routes`.
    fn plan_of(routes: &str, path: &str, headers: &[(&str, &str)]) -> Plan<'static> {
        let config = config(routes);
        let mut request = Request::builder().uri(path).header("host", "example.com");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (parts, ()) = request.body(()).expect("valid request").into_parts();
        let view = RequestView::from_parts(&parts, false);
        let vhost = &config.virtual_hosts[0];
        let route = &vhost.routes[0];
        let RouteAction::Forward(action) = &route.action else {
            panic!("a forwarding route");
        };
        let peer = "10.0.0.1:5000".parse().expect("an address");
        let local = "10.0.0.2:80".parse().expect("an address");
        let hcm = test_support::hcm("");
        let downstream = Downstream {
            peer,
            local,
            envoy_controls: true,
        };
        let planned = plan(&hcm, vhost, route, action, &view, downstream, 7);
        // Owned, so the test's configuration can go.
        Plan {
            cluster: planned.cluster.map(|c| Cow::Owned(c.into_owned())),
            weighted: None,
            authority: planned.authority.map(|a| Cow::Owned(a.into_owned())),
            retry: planned.retry.map(|r| Cow::Owned(r.into_owned())),
            hash: planned.hash,
            set_cookies: planned.set_cookies,
            path: planned.path,
            timeouts: planned.timeouts,
            envoy_controls: planned.envoy_controls,
        }
    }

    /// Request headers of a case.
    type Headers = &'static [(&'static str, &'static str)];

    /// Retries and conditions of a planned policy.
    type Retried = Option<(u32, RetryOn)>;

    const PLAIN: &str = "  - match: { prefix: / }\n    route: { cluster: c }\n";

    #[test]
    fn timeouts_from_the_route_and_the_header() {
        let ms = Duration::from_millis;
        let cases: &[(&str, Headers, Option<Duration>)] = &[
            (PLAIN, &[], Some(Duration::from_secs(15))),
            (
                PLAIN,
                &[("x-envoy-upstream-rq-timeout-ms", "250")],
                Some(ms(250)),
            ),
            (PLAIN, &[("x-envoy-upstream-rq-timeout-ms", "0")], None),
            (
                PLAIN,
                &[("x-envoy-upstream-rq-timeout-ms", "soon")],
                Some(ms(15_000)),
            ),
            (
                "  - match: { prefix: / }\n    route: { cluster: c, timeout: 0s }\n",
                &[],
                None,
            ),
            (
                "  - match: { prefix: / }\n    route: { cluster: c, timeout: 2s }\n",
                &[],
                Some(ms(2000)),
            ),
        ];
        for (routes, headers, timeout) in cases {
            assert_eq!(
                plan_of(routes, "/", headers).timeouts.route,
                *timeout,
                "{routes} {headers:?}"
            );
        }
    }

    #[test]
    fn retry_policy_from_route_then_vhost_then_headers() {
        let retries = |routes: &str, headers: &[(&str, &str)]| {
            plan_of(routes, "/", headers)
                .retry
                .map(|p| (p.num_retries, p.retry_on))
        };
        let route_policy = "  - match: { prefix: / }\n    route: { cluster: c, retry_policy: { retry_on: 5xx, num_retries: 2 } }\n";
        let cases: &[(&str, Headers, Retried)] = &[
            (PLAIN, &[], Some((4, RetryOn::RESET))),
            (route_policy, &[], Some((2, RetryOn::FIVE_XX))),
            (
                route_policy,
                &[("x-envoy-retry-on", "reset"), ("x-envoy-max-retries", "6")],
                Some((6, RetryOn::FIVE_XX | RetryOn::RESET)),
            ),
            (
                route_policy,
                &[("x-envoy-max-retries", "x")],
                Some((2, RetryOn::FIVE_XX)),
            ),
        ];
        for (routes, headers, expected) in cases {
            assert_eq!(retries(routes, headers), *expected, "{routes} {headers:?}");
        }
    }

    /// A request on a route, and the cluster, rewritten path and authority planned for it.
    struct Forwarded {
        routes: &'static str,
        path: &'static str,
        headers: Headers,
        cluster: Option<&'static str>,
        rewritten: Option<&'static str>,
        authority: Option<&'static str>,
    }

    #[test]
    fn cluster_path_and_authority() {
        let cases = [
            Forwarded {
                routes: PLAIN,
                path: "/a",
                headers: &[],
                cluster: Some("c"),
                rewritten: None,
                authority: None,
            },
            Forwarded {
                routes: "  - match: { prefix: /a }\n    route: { cluster: c, prefix_rewrite: /b, host_rewrite_literal: up.example }\n",
                path: "/a/x?q=1",
                headers: &[],
                cluster: Some("c"),
                rewritten: Some("/b/x?q=1"),
                authority: Some("up.example"),
            },
            Forwarded {
                routes: "  - match: { prefix: / }\n    route: { cluster_header: x-cluster, host_rewrite_header: x-host }\n",
                path: "/",
                headers: &[("x-cluster", "from-header"), ("x-host", "h.example")],
                cluster: Some("from-header"),
                rewritten: None,
                authority: Some("h.example"),
            },
            // The naming header is missing: no cluster (the route's not-found code answers).
            Forwarded {
                routes: "  - match: { prefix: / }\n    route: { cluster_header: x-cluster }\n",
                path: "/",
                headers: &[],
                cluster: None,
                rewritten: None,
                authority: None,
            },
        ];
        for case in &cases {
            let plan = plan_of(case.routes, case.path, case.headers);
            assert_eq!(plan.cluster.as_deref(), case.cluster, "{}", case.routes);
            assert_eq!(plan.path.as_deref(), case.rewritten, "{}", case.routes);
            assert_eq!(plan.authority.as_deref(), case.authority, "{}", case.routes);
        }
    }

    #[test]
    fn cookie_policies_hash_and_generate_cookies() {
        let routes = "  - match: { prefix: / }\n    route:\n      cluster: c\n      hash_policy: [{ cookie: { name: sticky, ttl: 60s, path: / } }]\n";
        let without = plan_of(routes, "/", &[]);
        assert!(without.hash.is_some());
        assert_eq!(without.set_cookies.len(), 1);
        assert_eq!(without.set_cookies[0].name, "sticky");
        let with = plan_of(routes, "/", &[("cookie", "sticky=abc")]);
        assert!(with.set_cookies.is_empty());
        assert_ne!(with.hash, None);
    }
}
