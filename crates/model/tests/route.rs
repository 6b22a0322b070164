//! RouteConfiguration conversion: domains, matches, actions, retries and their error paths.

use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3 as pb;
use outrider_model::{
    ClusterSpecifier, DomainMatcher, HashSource, HeaderMatchRule, HostRewrite, PathMatch,
    PathRewrite, RedirectPath, RetryOn, RouteAction, RouteConfiguration, StringPattern,
    WeightedTarget,
};

fn routes(yaml: &str) -> Result<RouteConfiguration, String> {
    let proto: pb::RouteConfiguration =
        outrider_envoy_json::from_yaml_str(yaml).expect("test YAML is a valid RouteConfiguration");
    RouteConfiguration::from_proto(&proto).map_err(|e| e.to_string())
}

fn ok(yaml: &str) -> RouteConfiguration {
    match routes(yaml) {
        Ok(r) => r,
        Err(e) => panic!("expected a valid route configuration, got {e}\n{yaml}"),
    }
}

/// One virtual host `v` for `*` with the given routes.
fn one_route(route: &str) -> String {
    format!("name: r\nvirtual_hosts:\n- name: v\n  domains: ['*']\n  routes:\n  - {route}\n")
}

#[test]
fn domains_follow_envoy_rules() {
    let rc = ok("name: r
virtual_hosts:
- { name: a, domains: ['Foo.COM', '*.bar.com', 'baz.*', '*'], routes: [] }
- { name: b, domains: ['*-suffix.com', 'foo.com:8080'], routes: [] }
");
    assert_eq!(rc.name(), "r");
    assert_eq!(
        rc.virtual_hosts[0].domains,
        [
            DomainMatcher::Exact("foo.com".into()),
            DomainMatcher::Suffix(".bar.com".into()),
            DomainMatcher::Prefix("baz.".into()),
            DomainMatcher::Any,
        ]
    );
    assert!(rc.virtual_hosts[0].domains[1].matches("x.bar.com"));
    assert!(!rc.virtual_hosts[0].domains[1].matches(".bar.com"));
    assert!(rc.virtual_hosts[1].domains[0].matches("a-suffix.com"));
}

#[test]
fn forward_defaults_and_vhost_retry_policy() {
    let rc = ok("name: r
virtual_hosts:
- name: v
  domains: ['*']
  retry_policy: { retry_on: '5xx,reset', num_retries: 3 }
  routes:
  - { match: { prefix: /a }, route: { cluster: a } }
  - match: { path: /b, case_sensitive: false }
    route:
      cluster: b
      timeout: 0s
      retry_policy: { retry_on: connect-failure, per_try_timeout: 1s, retry_back_off: { base_interval: 0.1s } }
");
    let routes = &rc.virtual_hosts[0].routes;
    let RouteAction::Forward(a) = &routes[0].action else {
        panic!("forward")
    };
    assert_eq!(a.timeout, Some(Duration::from_secs(15)));
    let retry = a
        .retry_policy
        .as_ref()
        .expect("inherited from the virtual host");
    assert_eq!(retry.num_retries, 3);
    assert!(retry.retry_on.contains(RetryOn::FIVE_XX) && retry.retry_on.contains(RetryOn::RESET));
    assert_eq!(retry.back_off_base, Duration::from_millis(25));
    assert_eq!(retry.back_off_max, Duration::from_millis(250));
    let RouteAction::Forward(b) = &routes[1].action else {
        panic!("forward")
    };
    assert_eq!(b.timeout, None);
    assert_eq!(routes[1].route_match.path, PathMatch::Exact("/b".into()));
    assert!(!routes[1].route_match.case_sensitive);
    let retry = b.retry_policy.as_ref().expect("route retry policy");
    assert_eq!(retry.num_retries, 1);
    assert_eq!(retry.per_try_timeout, Some(Duration::from_secs(1)));
    assert_eq!(retry.back_off_max, Duration::from_secs(1));
}

#[test]
fn weighted_clusters_rewrites_and_hashing() {
    let rc = ok(&one_route(
        "match: { safe_regex: { regex: '/api/v[0-9]+/.*' }, headers: [ { name: X-Env, string_match: { prefix: prod } }, { name: x-canary, present_match: false }, { name: x-n, range_match: { start: 1, end: 10 }, invert_match: true } ], query_parameters: [ { name: debug } ], grpc: {} }
    route:
      weighted_clusters: { clusters: [ { name: a, weight: 30 }, { name: b, weight: 70, host_rewrite_literal: b.internal } ] }
      regex_rewrite: { pattern: { regex: '^/api/(v[0-9]+)/' }, substitution: '/\\1/' }
      host_rewrite_header: X-Host
      hash_policy: [ { header: { header_name: X-User } }, { connection_properties: { source_ip: true }, terminal: true }, { cookie: { name: sid } } ]
      priority: HIGH
      idle_timeout: 0s
      max_stream_duration: { max_stream_duration: 2s, grpc_timeout_header_max: 0s }
      max_grpc_timeout: 1s
      upgrade_configs: [ { upgrade_type: WebSocket } ]",
    ));
    let route = &rc.virtual_hosts[0].routes[0];
    let PathMatch::Regex(r) = &route.route_match.path else {
        panic!("regex")
    };
    assert!(r.is_full_match("/api/v2/x"));
    let [env, canary, n] = route.route_match.headers.as_slice() else {
        panic!("3 headers")
    };
    assert_eq!(env.name, "x-env");
    assert!(
        matches!(&env.rule, HeaderMatchRule::Value(m) if m.pattern == StringPattern::Prefix("prod".into()))
    );
    assert!(env.matches(Some("production")) && !env.matches(None));
    assert!(canary.matches(None) && !canary.matches(Some("1")));
    assert!(n.matches(Some("11")) && !n.matches(Some("5")));
    assert!(route.route_match.grpc);
    assert_eq!(route.route_match.query_parameters[0].value, None);
    let RouteAction::Forward(f) = &route.action else {
        panic!("forward")
    };
    // `0s` is kept: it turns the connection manager's idle timeout off on this route.
    assert_eq!(f.idle_timeout, Some(Duration::ZERO));
    let limits = f.stream_duration.expect("max_stream_duration");
    assert_eq!(limits.max, Some(Duration::from_secs(2)));
    assert_eq!(limits.grpc_timeout_header_max, Some(Duration::ZERO));
    assert_eq!(limits.grpc_timeout_header_offset, None);
    assert_eq!(f.max_grpc_timeout, Some(Duration::from_secs(1)));
    let ClusterSpecifier::Weighted(w) = &f.cluster else {
        panic!("weighted")
    };
    assert_eq!(w.total_weight, 100);
    assert_eq!(w.clusters[1].target, WeightedTarget::Cluster("b".into()));
    assert_eq!(
        w.clusters[1].host_rewrite_literal.as_deref(),
        Some("b.internal")
    );
    let Some(PathRewrite::Regex(rw)) = &f.path_rewrite else {
        panic!("regex rewrite")
    };
    assert_eq!(
        rw.pattern.replace_all("/api/v2/x", &rw.substitution),
        "/v2/x"
    );
    assert_eq!(f.host_rewrite, HostRewrite::Header("x-host".into()));
    assert_eq!(f.hash_policy[0].source, HashSource::Header("x-user".into()));
    assert_eq!(f.hash_policy[1].source, HashSource::SourceIp);
    assert!(f.hash_policy[1].terminal);
    assert_eq!(
        f.hash_policy[2].source,
        HashSource::Cookie {
            name: "sid".into(),
            ttl: None,
            path: String::new()
        }
    );
    assert_eq!(f.priority, outrider_model::Priority::High);
    assert_eq!(f.upgrades, [("websocket".to_string(), true)]);
    assert_eq!(rc.cluster_names().collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn redirect_direct_response_and_headers() {
    let rc = ok("name: r
virtual_hosts:
- name: v
  domains: ['*']
  routes:
  - { match: { prefix: /old }, redirect: { https_redirect: true, prefix_rewrite: /new, response_code: PERMANENT_REDIRECT } }
  - { match: { path_separated_prefix: /health }, direct_response: { status: 200, body: { inline_string: ok } } }
  - { match: { prefix: / }, route: { cluster_header: X-Cluster } }
");
    let routes = &rc.virtual_hosts[0].routes;
    let RouteAction::Redirect(r) = &routes[0].action else {
        panic!("redirect")
    };
    assert_eq!(r.scheme.as_deref(), Some("https"));
    assert_eq!(r.path, Some(RedirectPath::PrefixRewrite("/new".into())));
    assert_eq!(r.response_code, 308);
    let RouteAction::DirectResponse(d) = &routes[1].action else {
        panic!("direct")
    };
    assert_eq!((d.status, d.body.as_deref()), (200, Some(b"ok".as_slice())));
    let RouteAction::Forward(f) = &routes[2].action else {
        panic!("forward")
    };
    assert_eq!(f.cluster, ClusterSpecifier::Header("x-cluster".into()));
    assert_eq!(rc.cluster_names().count(), 0);
}

#[test]
fn invalid_route_configurations() {
    let cases: &[(String, &str)] = &[
        (
            "name: r\nvirtual_hosts: [ { name: a, domains: [foo.com], routes: [] }, { name: b, domains: [FOO.com], routes: [] } ]".into(),
            "virtual_hosts[1].domains[0]: Only unique values for domains are permitted. Duplicate entry of domain foo.com in route r",
        ),
        (
            "name: r\nvirtual_hosts: [ { name: a, domains: ['*.x'], routes: [] }, { name: b, domains: ['*.x'], routes: [] } ]".into(),
            "virtual_hosts[1].domains[0]: Only unique values for domains are permitted. Duplicate entry of domain *.x in route r",
        ),
        (
            "name: r\nvirtual_hosts: [ { name: a, domains: ['*'], routes: [] }, { name: b, domains: ['*'], routes: [] } ]".into(),
            "virtual_hosts[1].domains[0]: Only a single wildcard domain is permitted in route r",
        ),
        ("name: r\nvirtual_hosts: [ { name: a, domains: [] } ]".into(), "virtual_hosts[0].domains: at least one domain is required"),
        ("name: r\nvirtual_hosts: [ { domains: [a] } ]".into(), "virtual_hosts[0].name: must not be empty"),
        (one_route("match: { prefix: / }"), "virtual_hosts[0].routes[0].action: one of route, redirect or direct_response is required"),
        (one_route("route: { cluster: c }"), "virtual_hosts[0].routes[0].match: is required"),
        (one_route("match: {}\n    route: { cluster: c }"), "virtual_hosts[0].routes[0].match.path_specifier: one of prefix, path, safe_regex or path_separated_prefix is required"),
        (
            one_route("match: { path_separated_prefix: /a/ }\n    route: { cluster: c }"),
            "virtual_hosts[0].routes[0].match.path_separated_prefix: must be at least 2 characters, contain no '?' or '#' and not end with '/'",
        ),
        (
            one_route("match: { prefix: / }\n    route: { weighted_clusters: { clusters: [ { name: a, weight: 0 } ] } }"),
            "virtual_hosts[0].routes[0].route.weighted_clusters.clusters: Sum of weights in the weighted_cluster must be greater than 0.",
        ),
        (
            one_route("match: { prefix: / }\n    route: { weighted_clusters: { clusters: [ { name: a, cluster_header: x, weight: 1 } ] } }"),
            "virtual_hosts[0].routes[0].route.weighted_clusters.clusters[0].name: Only one of name or cluster_header can be specified",
        ),
        (
            one_route("match: { prefix: / }\n    route: { cluster: c, prefix_rewrite: /x, regex_rewrite: { pattern: { regex: a }, substitution: b } }"),
            "virtual_hosts[0].routes[0].route.regex_rewrite: Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy",
        ),
        (
            one_route("match: { prefix: / }\n    route: { cluster: c, retry_policy: { retry_back_off: { base_interval: 1s, max_interval: 0.5s } } }"),
            "virtual_hosts[0].routes[0].route.retry_policy.retry_back_off.max_interval: must be greater than or equal to the base_interval",
        ),
        (
            one_route("match: { prefix: / }\n    route: { cluster: c, retry_policy: { retry_back_off: {} } }"),
            "virtual_hosts[0].routes[0].route.retry_policy.retry_back_off.base_interval: is required",
        ),
        (
            one_route("match: { prefix: / }\n    route: { cluster: c, retry_policy: { retry_host_predicate: [ { name: envoy.retry_host_predicates.omit_canary_hosts } ] } }"),
            "virtual_hosts[0].routes[0].route.retry_policy.retry_host_predicate[0]: unsupported retry host predicate \"envoy.retry_host_predicates.omit_canary_hosts\" (only previous_hosts is supported)",
        ),
        (
            one_route("match: { prefix: / }\n    route: { cluster: c, request_mirror_policies: [ { cluster: m } ] }"),
            "virtual_hosts[0].routes[0].route.request_mirror_policies: not supported",
        ),
        (
            one_route("match: { prefix: / }\n    direct_response: { status: 100 }"),
            "virtual_hosts[0].routes[0].direct_response.status: must be between 200 and 599",
        ),
        (
            format!("max_direct_response_body_size_bytes: 2\n{}", one_route("match: { prefix: / }\n    direct_response: { status: 200, body: { inline_string: abc } }")),
            "virtual_hosts[0].routes[0].direct_response.body: response body size is 3 bytes; maximum is 2",
        ),
        (
            one_route("match: { prefix: /, headers: [ { name: x, range_match: { start: 5, end: 5 } } ] }\n    route: { cluster: c }"),
            "virtual_hosts[0].routes[0].match.headers[0].range_match: start must be less than end",
        ),
        (
            one_route("match: { prefix: /, headers: [ { name: '' } ] }\n    route: { cluster: c }"),
            "virtual_hosts[0].routes[0].match.headers[0].name: must not be empty",
        ),
        (
            one_route("match: { prefix: /, runtime_fraction: { default_value: { numerator: 1 } } }\n    route: { cluster: c }"),
            "virtual_hosts[0].routes[0].match.runtime_fraction: not supported",
        ),
        (
            one_route("match: { prefix: / }\n    route: { cluster: c }\n    request_headers_to_add: [ { header: { key: x-ip, value: '%UPSTREAM_METADATA([\"a\"])%' } } ]"),
            "virtual_hosts[0].routes[0].request_headers_to_add[0].header.value: not supported yet: command operator %UPSTREAM_METADATA%",
        ),
        (
            one_route("match: { prefix: / }\n    route: { cluster: c }\n    request_headers_to_add: [ { header: { key: ':path', value: x } } ]"),
            "virtual_hosts[0].routes[0].request_headers_to_add[0].header.key: ':'-prefixed or host headers may not be modified",
        ),
        (
            one_route("match: { prefix: / }\n    route: { cluster: c, hash_policy: [ { cookie: { name: s, ttl: 1s, path: \"/\\u0001\" } } ] }"),
            "virtual_hosts[0].routes[0].route.hash_policy[0].cookie.path: must not contain control characters (it is sent in Set-Cookie)",
        ),
        (
            one_route("match: { prefix: / }\n    request_headers_to_remove: [ host ]\n    route: { cluster: c }"),
            "virtual_hosts[0].routes[0].request_headers_to_remove[0]: ':'-prefixed or host headers may not be removed",
        ),
        (
            one_route("match: { prefix: / }\n    route: { cluster: '' }"),
            "virtual_hosts[0].routes[0].route.cluster: must not be empty",
        ),
        (
            "name: r\nvhds: { config_source: { ads: {} } }".into(),
            "vhds: not supported",
        ),
    ];
    for (yaml, expected) in cases {
        assert_eq!(
            routes(yaml).map(|_| ()),
            Err(expected.to_string()),
            "{yaml}"
        );
    }
}
