//! Listener conversion: filter chains, network and HTTP filters, and their error paths.

use std::time::Duration;

use envoy_types::pb::envoy::config::listener::v3 as pb;
use outrider_model::{Listener, NetworkFilter, RouteSource, TcpProxyCluster};

fn listener(yaml: &str) -> Result<Listener, String> {
    let proto: pb::Listener =
        outrider_envoy_json::from_yaml_str(yaml).expect("test YAML is a valid Listener");
    Listener::from_proto(&proto).map_err(|e| e.to_string())
}

fn ok(yaml: &str) -> Listener {
    match listener(yaml) {
        Ok(l) => l,
        Err(e) => panic!("expected a valid listener, got {e}\n{yaml}"),
    }
}

/// A listener whose single filter chain runs an HTTP connection manager with `hcm` appended.
fn http(hcm: &str) -> String {
    format!(
        "name: l
address: {{ socket_address: {{ address: 0.0.0.0, port_value: 8080 }} }}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      '@type': type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
{hcm}"
    )
}

const ROUTER: &str = "      http_filters:
      - name: envoy.filters.http.router
        typed_config: { '@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
";

#[test]
fn http_listener_with_rds() {
    let l = ok(&http(&format!(
        "      stat_prefix: ingress
      codec_type: AUTO
      rds: {{ route_config_name: routes-a, config_source: {{ ads: {{}}, initial_fetch_timeout: 3s }} }}
      stream_idle_timeout: 0s
      request_timeout: 0s
      drain_timeout: 5s
{ROUTER}"
    )));
    assert_eq!(l.name(), "l");
    assert_eq!(l.address, "0.0.0.0:8080".parse().expect("socket address"));
    let deps: Vec<_> = l
        .rds_dependencies()
        .map(|(n, s)| (n, s.initial_fetch_timeout))
        .collect();
    assert_eq!(deps, [("routes-a", Some(Duration::from_secs(3)))]);
    let NetworkFilter::HttpConnectionManager(hcm) = &l.filter_chains[0].filter else {
        panic!("expected an HTTP connection manager")
    };
    assert_eq!(hcm.max_request_headers_kb, 60);
    assert!(!hcm.use_remote_address);
    assert_eq!(hcm.xff_num_trusted_hops, 0);
    assert!(!hcm.preserve_external_request_id);
    assert!(hcm.generate_request_id);
    assert_eq!(hcm.server_name, "envoy");
    assert_eq!(hcm.common.idle_timeout, Some(Duration::from_secs(3600)));
    // `0s` turns these off.
    assert_eq!(hcm.stream_idle_timeout, None);
    assert_eq!(hcm.request_timeout, None);
    let defaults = ok(&http(&format!(
        "      stat_prefix: s\n      rds: {{ route_config_name: r, config_source: {{ ads: {{}} }} }}\n      request_timeout: 2s\n      common_http_protocol_options: {{ max_stream_duration: 9s }}\n{ROUTER}"
    )));
    let NetworkFilter::HttpConnectionManager(hcm) = &defaults.filter_chains[0].filter else {
        panic!("expected an HTTP connection manager")
    };
    assert_eq!(hcm.stream_idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(hcm.request_timeout, Some(Duration::from_secs(2)));
    assert_eq!(hcm.common.max_stream_duration, Some(Duration::from_secs(9)));
}

#[test]
fn http_listener_inline_routes_and_optional_filters() {
    let l = ok(&http(
        "      stat_prefix: ingress
      route_config:
        name: local
        virtual_hosts: [ { name: all, domains: ['*'], routes: [ { match: { prefix: / }, route: { cluster: backend } } ] } ]
      http_filters:
      - name: envoy.filters.http.grpc_stats
        typed_config: { '@type': type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig }
      - name: envoy.filters.http.router
"
    ));
    assert_eq!(l.rds_dependencies().count(), 0);
    let NetworkFilter::HttpConnectionManager(hcm) = &l.filter_chains[0].filter else {
        panic!("expected an HTTP connection manager")
    };
    let RouteSource::Inline(rc) = &hcm.routes else {
        panic!("inline routes")
    };
    assert_eq!(rc.cluster_names().collect::<Vec<_>>(), ["backend"]);
    // A stats-only filter is left out, and says so.
    assert_eq!(hcm.skipped_filters.len(), 1);
    assert_eq!(hcm.skipped_filters[0].name, "envoy.filters.http.grpc_stats");
    assert!(hcm.skipped_filters[0].why.contains("stats"));
}

#[test]
fn an_optional_filter_that_changes_requests_is_never_skipped() {
    let text = listener(&http(
        "      stat_prefix: ingress
      rds: { route_config_name: r, config_source: { ads: {} } }
      http_filters:
      - name: envoy.filters.http.rbac
        is_optional: true
        typed_config: { '@type': type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC }
      - name: envoy.filters.http.router
",
    ))
    .expect_err("RBAC is not run, so the listener is rejected");
    assert!(
        text.starts_with("filter_chains[0].filters[0].typed_config.http_filters[0].typed_config: unsupported HTTP filter type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"),
        "{text}"
    );
    assert!(
        text.contains("is_optional does not make another filter safe to skip"),
        "{text}"
    );
}

#[test]
fn tcp_proxy_listener() {
    let l = ok("name: t
address: { socket_address: { address: '::', port_value: 9000 } }
listener_filters:
# By name: the test codec's descriptor pool does not hold the inspector types.
- name: envoy.filters.listener.tls_inspector
filter_chains:
- filter_chain_match: { transport_protocol: raw_buffer, destination_port: 9000, prefix_ranges: [ { address_prefix: 10.0.0.0, prefix_len: 8 } ] }
  filters:
  - name: envoy.filters.network.tcp_proxy
    typed_config:
      '@type': type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
      stat_prefix: tcp
      weighted_clusters: { clusters: [ { name: a, weight: 1 }, { name: b, weight: 3 } ] }
default_filter_chain:
  filters:
  - name: envoy.filters.network.tcp_proxy
    typed_config:
      '@type': type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
      stat_prefix: tcp
      cluster: fallback
      idle_timeout: 0s
");
    let chain = &l.filter_chains[0];
    assert_eq!(chain.filter_chain_match.destination_port, Some(9000));
    assert!(chain.filter_chain_match.prefix_ranges[0].contains("10.9.9.9".parse().expect("ip")));
    let NetworkFilter::TcpProxy(tcp) = &chain.filter else {
        panic!("tcp proxy")
    };
    assert_eq!(
        tcp.cluster,
        TcpProxyCluster::Weighted(vec![("a".into(), 1), ("b".into(), 3)])
    );
    assert!(matches!(
        l.default_filter_chain.as_ref().map(|c| &c.filter),
        Some(NetworkFilter::TcpProxy(_))
    ));
}

/// The listener-side fields whose effect is not built: refused with their path, so what the
/// dump shows is what runs.
#[test]
fn listener_fields_not_enforced_yet_are_refused_with_their_path() {
    let hcm = |extra: &str| {
        http(&format!(
            "      stat_prefix: s\n      rds: {{ route_config_name: r, config_source: {{ ads: {{}} }} }}\n{extra}{ROUTER}"
        ))
    };
    let at = "filter_chains[0].filters[0].typed_config";
    let cases: Vec<(String, String)> = vec![
        (hcm("      codec_type: HTTP1\n"), format!("{at}.codec_type")),
        (
            hcm("      stream_flush_timeout: 30s\n"),
            format!("{at}.stream_flush_timeout"),
        ),
        (
            hcm("      drain_timeout: 1s\n"),
            format!("{at}.drain_timeout"),
        ),
        (
            hcm("      http1_safe_max_connection_duration: true\n"),
            format!("{at}.http1_safe_max_connection_duration"),
        ),
        (
            hcm(
                "      common_http_protocol_options: { max_connection_duration: 60s, max_connection_duration_jitter: { value: 10 } }\n",
            ),
            format!("{at}.common_http_protocol_options.max_connection_duration_jitter"),
        ),
        (
            hcm(
                "      access_log: [ { name: f, filter: { or_filter: { filters: [ { not_health_check_filter: {} }, { traceable_filter: {} } ] } }, typed_config: { '@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: /dev/stdout } } ]\n",
            ),
            format!("{at}.access_log[0].filter.or_filter.filters[1].traceable_filter"),
        ),
        (
            hcm(
                "      access_log: [ { name: f, typed_config: { '@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: /dev/stdout, log_format: { text_format_source: { inline_string: '%UPSTREAM_TRANSPORT_FAILURE_REASON%' } } } } ]\n",
            ),
            format!("{at}.access_log[0].typed_config.log_format.text_format_source"),
        ),
    ];
    // Envoy refuses both port-stripping modes at once.
    let both = listener(&hcm(
        "      strip_any_host_port: true\n      strip_matching_host_port: true\n",
    ))
    .expect_err("both strip modes");
    assert!(
        both.starts_with(&format!("{at}.strip_any_host_port: Error: Only one of")),
        "{both}"
    );
    // Envoy's defaults written out, and what we do anyway, are accepted.
    for extra in [
        "      stream_idle_timeout: 300s\n",
        "      stream_flush_timeout: 0s\n",
        "      delayed_close_timeout: 1s\n",
    ] {
        listener(&hcm(extra)).unwrap_or_else(|e| panic!("{extra}: {e}"));
    }
    let modify_only = hcm("").replacen(
        "filter_chains:",
        "drain_type: MODIFY_ONLY\nfilter_chains:",
        1,
    );
    listener(&modify_only).unwrap_or_else(|e| panic!("MODIFY_ONLY: {e}"));
    for (yaml, path) in &cases {
        let err = listener(yaml).expect_err(path);
        assert!(
            err.starts_with(&format!("{path}: not supported yet: ")),
            "expected {path}: {err}"
        );
    }
    // Chains matched on what TLS would tell.
    for matcher in [
        "server_names: [a.example.com]",
        "transport_protocol: tls",
        "application_protocols: [h2]",
    ] {
        let yaml = format!(
            "name: t
address: {{ socket_address: {{ address: 127.0.0.1, port_value: 9000 }} }}
filter_chains:
- filter_chain_match: {{ {matcher} }}
  filters:
  - name: envoy.filters.network.tcp_proxy
    typed_config: {{ '@type': type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c }}
"
        );
        let err = listener(&yaml).expect_err(matcher);
        assert!(
            err.starts_with("filter_chains[0].filter_chain_match."),
            "{err}"
        );
        assert!(err.contains("not supported yet"), "{err}");
    }
}

#[test]
fn invalid_listeners() {
    let cases: &[(String, &str)] = &[
        (
            "name: l\naddress: { pipe: { path: /tmp/x } }\nfilter_chains: []".into(),
            "address.pipe: not supported (only socket_address is supported)",
        ),
        (
            "name: l\naddress: { socket_address: { address: localhost, port_value: 80 } }".into(),
            "address.socket_address.address: \"localhost\" is not an IP address (host names need a STRICT_DNS or LOGICAL_DNS cluster)",
        ),
        (
            "name: l\naddress: { socket_address: { address: 0.0.0.0, port_value: 80 } }".into(),
            "filter_chains: no filter chains specified (and no default_filter_chain)",
        ),
        (
            "name: l
address: { socket_address: { address: 0.0.0.0, port_value: 80 } }
filter_chains:
- filters:
  - name: envoy.filters.network.redis_proxy
    typed_config: { '@type': type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog }"
                .into(),
            "filter_chains[0].filters[0].typed_config: unsupported network filter type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog (supported: http_connection_manager, tcp_proxy)",
        ),
        (http(&format!("      rds: {{ route_config_name: r, config_source: {{ ads: {{}} }} }}\n{ROUTER}")), "filter_chains[0].filters[0].typed_config.stat_prefix: must not be empty"),
        (http(&format!("      stat_prefix: s\n      rds: {{ route_config_name: r, config_source: {{ ads: {{}} }} }}\n      internal_address_config: {{ cidr_ranges: [ {{ address_prefix: 10.0.0.0, prefix_len: 33 }} ] }}\n{ROUTER}")), "filter_chains[0].filters[0].typed_config.internal_address_config.cidr_ranges[0].prefix_len: must be at most 32"),
        (
            http(&format!("      stat_prefix: s\n      rds: {{ route_config_name: r, config_source: {{ path: /etc/r.yaml }} }}\n{ROUTER}")),
            "filter_chains[0].filters[0].typed_config.rds.config_source.path: not supported (only ads is supported)",
        ),
        (
            http(&format!("      stat_prefix: s\n      rds: {{ route_config_name: r }}\n{ROUTER}")),
            "filter_chains[0].filters[0].typed_config.rds.config_source: is required",
        ),
        (
            http("      stat_prefix: s\n      rds: { route_config_name: r, config_source: { ads: {} } }\n"),
            "filter_chains[0].filters[0].typed_config.http_filters: the last HTTP filter must be the router (envoy.extensions.filters.http.router.v3.Router)",
        ),
        (
            http(&format!("      stat_prefix: s\n      rds: {{ route_config_name: r, config_source: {{ ads: {{}} }} }}\n{ROUTER}      - name: envoy.filters.http.cors\n        typed_config: {{ '@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog }}\n")),
            "filter_chains[0].filters[0].typed_config.http_filters[1].typed_config: unsupported HTTP filter type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog: only the router runs here, and filters that change nothing a client or upstream sees (grpc_stats, Istio stats) are left out; is_optional does not make another filter safe to skip",
        ),
        (
            http(&format!("      stat_prefix: s\n      codec_type: HTTP3\n      rds: {{ route_config_name: r, config_source: {{ ads: {{}} }} }}\n{ROUTER}")),
            "filter_chains[0].filters[0].typed_config.codec_type: HTTP3 is not supported",
        ),
        (
            http(&format!("      stat_prefix: s\n      max_request_headers_kb: 9000\n      rds: {{ route_config_name: r, config_source: {{ ads: {{}} }} }}\n{ROUTER}")),
            "filter_chains[0].filters[0].typed_config.max_request_headers_kb: must be between 1 and 8192",
        ),
        (
            http(&format!(
                "      stat_prefix: s
      route_config:
        name: local
        virtual_hosts:
        - {{ name: a, domains: [a], routes: [ {{ match: {{ prefix: / }}, route: {{ cluster: c }} }} ] }}
        - {{ name: b, domains: [b], routes: [ {{ match: {{ safe_regex: {{ regex: '(' }} }}, route: {{ cluster: c }} }} ] }}
{ROUTER}"
            )),
            "filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[1].routes[0].match.safe_regex.regex: invalid regex",
        ),
        (
            "name: l
address: { socket_address: { address: 0.0.0.0, port_value: 80 } }
filter_chains:
- filter_chain_match: { source_ports: [1, 2] }
  filters: [ { name: t, typed_config: { '@type': type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c } } ]
- filter_chain_match: { source_ports: [2, 1] }
  filters: [ { name: t, typed_config: { '@type': type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c } } ]"
                .into(),
            "filter_chains[1].filter_chain_match: multiple filter chains with the same matching rules are defined (same as filter_chains[0])",
        ),
        (
            "name: l
address: { socket_address: { address: 0.0.0.0, port_value: 80 } }
filter_chains:
- filter_chain_match: { server_names: ['a*.com'] }
  filters: [ { name: t, typed_config: { '@type': type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c } } ]"
                .into(),
            "filter_chains[0].filter_chain_match.server_names[0]: partial wildcards are not supported in \"server_names\"",
        ),
        (
            "name: l
address: { socket_address: { address: 0.0.0.0, port_value: 80 } }
filter_chains:
- filters: [ { name: t, typed_config: { '@type': type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, weighted_clusters: { clusters: [ { name: a, weight: 0 } ] } } } ]"
                .into(),
            "filter_chains[0].filters[0].typed_config.weighted_clusters.clusters[0].weight: must be at least 1",
        ),
        (
            "name: l
address: { socket_address: { address: 0.0.0.0, port_value: 80 } }
listener_filters: [ { name: o, typed_config: { '@type': type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog } } ]
filter_chains:
- filters: [ { name: t, typed_config: { '@type': type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c } } ]"
                .into(),
            "listener_filters[0].typed_config: unsupported listener filter envoy.extensions.access_loggers.stream.v3.StdoutAccessLog (supported: tls_inspector, http_inspector)",
        ),
        (
            "name: l
address: { socket_address: { address: 0.0.0.0, port_value: 80 } }
use_original_dst: true
filter_chains:
- filters: [ { name: t, typed_config: { '@type': type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c } } ]"
                .into(),
            "use_original_dst: not supported",
        ),
    ];
    for (yaml, expected) in cases {
        let got = listener(yaml).map(|_| ());
        match &got {
            // A regex error's detail comes from the regex crate: compare the stable prefix.
            Err(e) if expected.ends_with("invalid regex") => {
                assert!(e.starts_with(expected), "{e}\n{yaml}")
            }
            _ => assert_eq!(got, Err(expected.to_string()), "{yaml}"),
        }
    }
}

#[test]
fn undecodable_typed_config_is_an_error_at_its_path() {
    let mut proto: pb::Listener = outrider_envoy_json::from_yaml_str(&http(&format!(
        "      stat_prefix: s\n      rds: {{ route_config_name: r, config_source: {{ ads: {{}} }} }}\n{ROUTER}"
    )))
    .expect("test YAML is a valid Listener");
    let filter = &mut proto.filter_chains[0].filters[0];
    let Some(pb::filter::ConfigType::TypedConfig(any)) = &mut filter.config_type else {
        panic!("typed config")
    };
    any.value = vec![0xff, 0xff, 0xff];
    let err = Listener::from_proto(&proto).expect_err("garbage cannot decode");
    assert_eq!(err.path, "filter_chains[0].filters[0].typed_config");
    assert!(err.reason.starts_with("cannot decode"), "{err}");
}
