//! Cluster conversion: defaults, accepted shapes and the exact `path: reason` of each rule.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3 as pb;
use outrider_model::{
    CircuitBreakers, Cluster, Discovery, EndpointAddress, HealthChecker, LbPolicy,
    OutlierDetection, RingHashFunction, Thresholds, TlsVersion, UpstreamProtocol,
};

fn cluster(yaml: &str) -> Result<Cluster, String> {
    let proto: pb::Cluster =
        outrider_envoy_json::from_yaml_str(yaml).expect("test YAML is a valid Cluster");
    Cluster::from_proto(&proto).map_err(|e| e.to_string())
}

fn ok(yaml: &str) -> Cluster {
    match cluster(yaml) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid cluster, got {e}\n{yaml}"),
    }
}

const EDS: &str = "
name: svc
type: EDS
eds_cluster_config: { eds_config: { ads: {} } }
";

#[test]
fn eds_cluster_defaults() {
    let c = ok(EDS);
    assert_eq!(c.name(), "svc");
    assert_eq!(c.eds_resource_name(), Some("svc"));
    assert_eq!(
        c.eds_config_source().map(|s| s.initial_fetch_timeout),
        Some(Some(Duration::from_secs(15)))
    );
    assert_eq!(c.connect_timeout, Duration::from_secs(5));
    assert_eq!(c.lb_policy, LbPolicy::RoundRobin);
    assert_eq!(c.common_lb.healthy_panic_threshold, 50.0);
    assert_eq!(c.circuit_breakers, CircuitBreakers::default());
    assert_eq!(
        c.circuit_breakers.default,
        Thresholds {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    );
    assert_eq!(c.outlier_detection, None);
    assert!(c.health_checks.is_empty());
    assert_eq!(c.http.protocol, UpstreamProtocol::Http1);
    assert_eq!(c.load_assignment, None);
}

#[test]
fn eds_service_name_and_fetch_timeout() {
    let c = ok("
name: svc
type: EDS
eds_cluster_config: { service_name: other, eds_config: { ads: {}, initial_fetch_timeout: 0s } }
");
    assert_eq!(c.eds_resource_name(), Some("other"));
    assert_eq!(
        c.eds_config_source().map(|s| s.initial_fetch_timeout),
        Some(None)
    );
    let c = ok("
name: svc
type: EDS
eds_cluster_config: { eds_config: { ads: {}, initial_fetch_timeout: 2.5s } }
");
    assert_eq!(
        c.eds_config_source().map(|s| s.initial_fetch_timeout),
        Some(Some(Duration::from_millis(2500)))
    );
}

#[test]
fn static_cluster_endpoints() {
    let c = ok("
name: s
connect_timeout: 0.25s
load_assignment:
  cluster_name: s
  endpoints:
  - locality: { region: r1, zone: z1 }
    load_balancing_weight: 3
    lb_endpoints:
    - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } } }
    - endpoint: { address: { socket_address: { address: '::1', port_value: 81 } } }
      load_balancing_weight: 7
      health_status: DRAINING
  - priority: 1
    lb_endpoints:
    - endpoint: { address: { socket_address: { address: 10.0.0.2, port_value: 80 } } }
");
    assert_eq!(c.discovery, Discovery::Static);
    assert_eq!(c.connect_timeout, Duration::from_millis(250));
    let cla = c
        .load_assignment
        .as_ref()
        .expect("static clusters keep their endpoints");
    assert_eq!(cla.overprovisioning_factor, 140);
    assert_eq!(cla.localities.len(), 2);
    let l0 = &cla.localities[0];
    assert_eq!(l0.locality.region, "r1");
    assert_eq!(l0.load_balancing_weight, Some(3));
    assert_eq!(l0.lb_endpoints[0].load_balancing_weight, 1);
    assert_eq!(
        l0.lb_endpoints[1].address,
        EndpointAddress::Ip("[::1]:81".parse().expect("socket address"))
    );
    assert_eq!(l0.lb_endpoints[1].load_balancing_weight, 7);
    assert_eq!(
        l0.lb_endpoints[1].health_status,
        outrider_model::HealthStatus::Draining
    );
    assert_eq!(cla.localities[1].priority, 1);
}

#[test]
fn static_cluster_without_load_assignment_is_empty() {
    let c = ok("name: s");
    let cla = c
        .load_assignment
        .expect("static clusters keep their endpoints");
    assert_eq!(cla.cluster_name, "s");
    assert!(cla.localities.is_empty());
}

#[test]
fn dns_clusters_take_hostnames() {
    let c = ok("
name: d
type: STRICT_DNS
dns_lookup_family: V4_ONLY
dns_refresh_rate: 10s
load_assignment:
  cluster_name: d
  endpoints:
  - lb_endpoints:
    - endpoint: { address: { socket_address: { address: Example.COM, port_value: 443 } } }
");
    let Discovery::StrictDns(dns) = &c.discovery else {
        panic!("expected STRICT_DNS, got {:?}", c.discovery)
    };
    assert_eq!(dns.refresh_rate, Duration::from_secs(10));
    assert_eq!(dns.lookup_family, outrider_model::DnsLookupFamily::V4Only);
    let cla = c
        .load_assignment
        .expect("dns clusters keep their endpoints");
    assert_eq!(
        cla.localities[0].lb_endpoints[0].address,
        EndpointAddress::Dns {
            hostname: "example.com".into(),
            port: 443
        }
    );
    let c = ok("
name: l
type: LOGICAL_DNS
load_assignment:
  cluster_name: l
  endpoints:
  - lb_endpoints:
    - endpoint: { address: { socket_address: { address: example.com, port_value: 443 } } }
");
    let Discovery::LogicalDns(dns) = &c.discovery else {
        panic!("expected LOGICAL_DNS")
    };
    assert_eq!(dns.refresh_rate, Duration::from_secs(5));
}

#[test]
fn outlier_detection_defaults_and_overrides() {
    let c = ok(&format!("{EDS}outlier_detection: {{}}"));
    assert_eq!(c.outlier_detection, Some(OutlierDetection::default()));
    let d = OutlierDetection::default();
    assert_eq!(
        (
            d.consecutive_5xx,
            d.consecutive_gateway_failure,
            d.enforcing_consecutive_gateway_failure
        ),
        (5, 5, 0)
    );
    assert_eq!(
        (d.interval, d.base_ejection_time, d.max_ejection_time),
        (
            Duration::from_secs(10),
            Duration::from_secs(30),
            Duration::from_secs(300)
        )
    );
    assert_eq!(
        (d.max_ejection_percent, d.success_rate_stdev_factor),
        (10, 1900)
    );
    assert_eq!(
        (
            d.failure_percentage_threshold,
            d.failure_percentage_request_volume
        ),
        (85, 50)
    );
    assert!(d.successful_active_health_check_uneject_host);
    assert!(!d.always_eject_one_host);

    let c = ok(&format!(
        "{EDS}outlier_detection: {{ consecutive_5xx: 3, interval: 1s, base_ejection_time: 400s, \
         max_ejection_percent: 100, always_eject_one_host: true, successful_active_health_check_uneject_host: false }}"
    ));
    let o = c.outlier_detection.expect("outlier detection is on");
    assert_eq!(o.consecutive_5xx, 3);
    assert_eq!(o.interval, Duration::from_secs(1));
    // An unset maximum never undercuts the base.
    assert_eq!(o.max_ejection_time, Duration::from_secs(400));
    assert_eq!(o.max_ejection_percent, 100);
    assert!(o.always_eject_one_host);
    assert!(!o.successful_active_health_check_uneject_host);
}

#[test]
fn circuit_breakers_per_priority() {
    let c = ok(&format!(
        "{EDS}circuit_breakers: {{ thresholds: [ {{ priority: HIGH, max_connections: 7, max_retries: 0 }}, \
         {{ max_requests: 9 }}, {{ max_requests: 10 }} ] }}"
    ));
    assert_eq!(c.circuit_breakers.high.max_connections, 7);
    assert_eq!(c.circuit_breakers.high.max_retries, 0);
    assert_eq!(c.circuit_breakers.high.max_pending_requests, 1024);
    // First entry for a priority wins, as in Envoy.
    assert_eq!(c.circuit_breakers.default.max_requests, 9);
}

#[test]
fn health_checks() {
    // One per cluster, as Envoy requires ("Multiple health checks not supported").
    let checked = |check: &str| {
        ok(&format!(
            "{EDS}health_checks:\n- timeout: 1s\n  interval: 5s\n  unhealthy_threshold: 2\n  healthy_threshold: 1\n{check}\n"
        ))
        .health_checks
        .remove(0)
    };
    let http = checked(
        "  http_health_check: { path: /healthz, expected_statuses: [ { start: 200, end: 300 } ] }",
    );
    let tcp = checked(
        "  unhealthy_interval: 10s\n  tcp_health_check: { send: { text: '000000FF' }, receive: [ { text: '01' } ] }",
    );
    let grpc = checked("  grpc_health_check: { service_name: foo }");
    assert_eq!(http.no_traffic_interval, Duration::from_secs(60));
    assert_eq!(http.unhealthy_interval, Duration::from_secs(5));
    assert_eq!(http.healthy_edge_interval, Duration::from_secs(5));
    assert!(http.reuse_connection);
    let HealthChecker::Http(h) = &http.checker else {
        panic!("http")
    };
    assert_eq!(h.path, "/healthz");
    assert_eq!(h.method, "GET");
    assert_eq!(h.expected_statuses, vec![200..300]);
    assert_eq!(tcp.unhealthy_edge_interval, Duration::from_secs(10));
    let HealthChecker::Tcp(t) = &tcp.checker else {
        panic!("tcp")
    };
    assert_eq!(t.send, vec![0, 0, 0, 255]);
    assert_eq!(t.receive, vec![vec![1]]);
    let HealthChecker::Grpc(g) = &grpc.checker else {
        panic!("grpc")
    };
    assert_eq!(g.service_name, "foo");
}

#[test]
fn upstream_tls_is_validated_and_built() {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["client.example".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    // YAML double-quoted strings take Rust's escapes of PEM text.
    let (cert_pem, key_pem) = (
        format!("{:?}", cert.pem()),
        format!("{:?}", key.serialize_pem()),
    );
    let tls = |certificate_chain: &str| {
        format!(
            "{EDS}transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
    sni: api.example.com
    common_tls_context:
      alpn_protocols: [h2, http/1.1]
      tls_certificates: [ {{ certificate_chain: {certificate_chain}, private_key: {{ inline_string: {key_pem} }} }} ]
      validation_context:
        trusted_ca: {{ inline_string: {cert_pem} }}
        match_typed_subject_alt_names: [ {{ san_type: DNS, matcher: {{ exact: api.example.com }} }} ]
"
        )
    };
    // A certificate file that is not there fails as in Envoy, naming the file.
    let err = cluster(&tls("{ filename: /nonexistent/outrider-test/c.pem }"))
        .expect_err("a missing certificate file");
    assert!(
        err.starts_with("transport_socket.typed_config.common_tls_context.tls_certificates[0].certificate_chain.filename: unable to read file /nonexistent/outrider-test/c.pem"),
        "{err}"
    );
    let valid = tls(&format!("{{ inline_string: {cert_pem} }}"));
    let c = ok(&valid);
    let tls_model = c.tls.as_ref().expect("TLS");
    assert_eq!(tls_model.sni.as_deref(), Some("api.example.com"));
    // Envoy's client default: TLS 1.2 only.
    assert_eq!(
        (tls_model.common.min_version, tls_model.common.max_version),
        (TlsVersion::Tls12, TlsVersion::Tls12)
    );
    assert_eq!(tls_model.client.http2.alpn_protocols, [b"h2".to_vec()]);
    assert_eq!(
        tls_model.client.http1.alpn_protocols,
        [b"http/1.1".to_vec()]
    );
    // The private key never shows in a debug print (logs).
    assert!(!format!("{c:?}").contains("PRIVATE KEY"), "{c:?}");
    // Active health checks would not use the TLS: refused until they do.
    let checked = format!(
        "{valid}health_checks: [ {{ timeout: 1s, interval: 5s, unhealthy_threshold: 2, healthy_threshold: 1, tcp_health_check: {{}} }} ]\n"
    );
    assert_eq!(
        cluster(&checked),
        Err("health_checks: not supported yet: active health checks do not use the cluster's TLS yet".into())
    );
    let auto = valid.replace(
        "    sni: api.example.com",
        "    auto_sni_san_validation: true",
    );
    assert_eq!(
        cluster(&auto),
        Err("transport_socket.typed_config.auto_sni_san_validation: not supported yet: the server's certificate is checked by the SAN matchers only".into())
    );
    let c = ok(&format!(
        "{EDS}transport_socket: {{ name: envoy.transport_sockets.raw_buffer }}"
    ));
    assert_eq!(c.http.protocol, UpstreamProtocol::Http1);
}

#[test]
fn cluster_fields_not_enforced_yet_are_refused_with_their_path() {
    let cases: &[(&str, &str)] = &[
        (
            "health_checks: [ { timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} }, { timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} } ]",
            "health_checks",
        ),
        (
            "close_connections_on_host_health_failure: true",
            "close_connections_on_host_health_failure",
        ),
        (
            "outlier_detection: { detect_degraded_hosts: true }",
            "outlier_detection.detect_degraded_hosts",
        ),
        (
            "http2_protocol_options: { max_concurrent_streams: 50 }",
            "http2_protocol_options.max_concurrent_streams",
        ),
        (
            "common_http_protocol_options: { max_stream_duration: 5s }",
            "common_http_protocol_options.max_stream_duration",
        ),
        (
            "common_http_protocol_options: { max_headers_count: 50 }",
            "common_http_protocol_options.max_headers_count",
        ),
        (
            "common_http_protocol_options: { max_connection_duration: 60s, max_connection_duration_jitter: { value: 10 } }",
            "common_http_protocol_options.max_connection_duration_jitter",
        ),
        (
            "upstream_http_protocol_options: { auto_sni: true }",
            "upstream_http_protocol_options.auto_sni",
        ),
        (
            "circuit_breakers: { thresholds: [ { max_requests: 10, track_remaining: true } ] }",
            "circuit_breakers.thresholds[0].track_remaining",
        ),
    ];
    // Envoy reads headers_with_underscores_action only on connection managers ("no impact if
    // added to cluster config"): accepted here as there.
    ok(&format!(
        "{EDS}common_http_protocol_options: {{ headers_with_underscores_action: REJECT_REQUEST }}\n"
    ));
    // TCP keepalive, in seconds as Envoy sets it; 0 leaves the OS default.
    let c = ok(&format!(
        "{EDS}upstream_connection_options: {{ tcp_keepalive: {{ keepalive_probes: 3, keepalive_time: 300, keepalive_interval: 0 }} }}\n"
    ));
    assert_eq!(
        c.tcp_keepalive,
        Some(outrider_model::TcpKeepalive {
            probes: Some(3),
            time: Some(Duration::from_secs(300)),
            interval: None,
        })
    );
    // respect_dns_ttl: refused where Envoy reads it (DNS clusters), ignored elsewhere as there.
    let dns = "name: d\ntype: STRICT_DNS\nrespect_dns_ttl: true\nload_assignment: { cluster_name: d, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: example.com, port_value: 80 } } } } ] } ] }\n";
    let err = cluster(dns).expect_err("respect_dns_ttl on a DNS cluster");
    assert!(
        err.starts_with("respect_dns_ttl: not supported yet: "),
        "{err}"
    );
    ok(&format!("{EDS}respect_dns_ttl: true\n"));
    for (extra, path) in cases {
        let err = cluster(&format!("{EDS}{extra}\n")).expect_err(extra);
        assert!(
            err.starts_with(&format!("{path}: not supported yet: ")),
            "{extra}: {err}"
        );
    }
}

#[test]
fn upstream_protocols() {
    let typed = |options: &str| {
        format!(
            "{EDS}typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    '@type': type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    {options}
"
        )
    };
    let c = ok(&typed(
        "explicit_http_config: { http2_protocol_options: { initial_stream_window_size: 65536 } }",
    ));
    assert_eq!(c.http.protocol, UpstreamProtocol::Http2);
    assert_eq!(c.http.http2.initial_stream_window_size, Some(65536));
    let c = ok(&typed(
        "explicit_http_config: { http_protocol_options: {} }\n    common_http_protocol_options: { idle_timeout: 30s }",
    ));
    assert_eq!(c.http.protocol, UpstreamProtocol::Http1);
    assert_eq!(c.http.common.idle_timeout, Some(Duration::from_secs(30)));
    let c = ok(&typed("use_downstream_protocol_config: {}"));
    assert_eq!(c.http.protocol, UpstreamProtocol::UseDownstream);
    // Choosing by ALPN needs TLS.
    assert_eq!(
        cluster(&typed("auto_config: {}")),
        Err("typed_extension_protocol_options[envoy.extensions.upstreams.http.v3.HttpProtocolOptions].auto_config: not supported yet: choosing the protocol by ALPN needs TLS, which is not built yet".into())
    );
    let c = ok(&format!("{EDS}http2_protocol_options: {{}}"));
    assert_eq!(c.http.protocol, UpstreamProtocol::Http2);
    let c = ok(&format!("{EDS}protocol_selection: USE_DOWNSTREAM_PROTOCOL"));
    assert_eq!(c.http.protocol, UpstreamProtocol::UseDownstream);
    assert_eq!(
        cluster(&format!("{}http2_protocol_options: {{}}", typed("use_downstream_protocol_config: {}"))),
        Err("typed_extension_protocol_options: Both legacy and new fields set for HTTP protocol options".into())
    );
}

#[test]
fn lb_policies() {
    let c = ok(&format!(
        "{EDS}lb_policy: LEAST_REQUEST\nleast_request_lb_config: {{ choice_count: 3 }}"
    ));
    assert_eq!(c.lb_policy, LbPolicy::LeastRequest { choice_count: 3 });
    let c = ok(&format!("{EDS}lb_policy: RING_HASH"));
    assert_eq!(
        c.lb_policy,
        LbPolicy::RingHash {
            minimum_ring_size: 1024,
            maximum_ring_size: 8_388_608,
            hash_function: RingHashFunction::XxHash
        }
    );
    let c = ok(&format!(
        "{EDS}lb_policy: MAGLEV\nmaglev_lb_config: {{ table_size: 251 }}"
    ));
    assert_eq!(c.lb_policy, LbPolicy::Maglev { table_size: 251 });
    let c = ok(&format!(
        "{EDS}lb_policy: RANDOM\ncommon_lb_config: {{ healthy_panic_threshold: {{ value: 0 }} }}"
    ));
    assert_eq!(c.lb_policy, LbPolicy::Random);
    assert_eq!(c.common_lb.healthy_panic_threshold, 0.0);
}

#[test]
fn invalid_clusters() {
    let cases: &[(&str, &str)] = &[
        ("name: ''", "name: must not be empty"),
        (
            &format!("{EDS}connect_timeout: 0s"),
            "connect_timeout: must be greater than 0s",
        ),
        (
            &format!("{EDS}connect_timeout: -1s"),
            "connect_timeout: must not be negative",
        ),
        (
            "name: x\ntype: ORIGINAL_DST",
            "type: ORIGINAL_DST is not supported",
        ),
        (
            "name: x\ncluster_type: { name: envoy.clusters.aggregate }",
            "cluster_type: not supported",
        ),
        ("name: x\ntype: EDS", "eds_cluster_config: is required"),
        (
            "name: x\ntype: EDS\neds_cluster_config: {}",
            "eds_cluster_config.eds_config: is required",
        ),
        (
            "name: x\ntype: EDS\neds_cluster_config: { eds_config: { api_config_source: { api_type: GRPC } } }",
            "eds_cluster_config.eds_config.api_config_source: not supported (only ads is supported)",
        ),
        (
            "name: x\ntype: EDS\neds_cluster_config: { eds_config: { path_config_source: { path: /x } } }",
            "eds_cluster_config.eds_config.path_config_source: not supported (only ads is supported)",
        ),
        (
            "name: x\ntype: EDS\neds_cluster_config: { eds_config: { self: {} } }",
            "eds_cluster_config.eds_config.self: not supported (only ads is supported)",
        ),
        (
            "name: x\ntype: EDS\neds_cluster_config: { eds_config: { ads: {}, initial_fetch_timeout: -2s } }",
            "eds_cluster_config.eds_config.initial_fetch_timeout: must not be negative",
        ),
        (
            "name: s
load_assignment:
  cluster_name: s
  endpoints:
  - lb_endpoints:
    - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } } }
    - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 81 } } }
    - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 70000 } } }",
            "load_assignment.endpoints[0].lb_endpoints[2].endpoint.address.socket_address.port_value: must be at most 65535",
        ),
        (
            "name: s
load_assignment:
  cluster_name: s
  endpoints:
  - lb_endpoints:
    - endpoint: { address: { socket_address: { address: foo.example, port_value: 80 } } }",
            "load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: \"foo.example\" is not an IP address (host names need a STRICT_DNS or LOGICAL_DNS cluster)",
        ),
        (
            "name: s
load_assignment:
  cluster_name: s
  endpoints:
  - lb_endpoints:
    - endpoint: { address: { pipe: { path: /tmp/sock } } }",
            "load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.pipe: not supported (only socket_address is supported)",
        ),
        (
            "name: s
load_assignment:
  cluster_name: s
  endpoints:
  - lb_endpoints:
    - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 80 } } }
      load_balancing_weight: 0",
            "load_assignment.endpoints[0].lb_endpoints[0].load_balancing_weight: must be at least 1",
        ),
        (
            "name: s\nload_assignment: { endpoints: [] }",
            "load_assignment.cluster_name: must not be empty",
        ),
        (
            "name: l
type: LOGICAL_DNS
load_assignment:
  cluster_name: l
  endpoints:
  - lb_endpoints:
    - endpoint: { address: { socket_address: { address: a.example, port_value: 80 } } }
    - endpoint: { address: { socket_address: { address: b.example, port_value: 80 } } }",
            "load_assignment: LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint",
        ),
        (
            "name: d\ntype: STRICT_DNS\ndns_refresh_rate: 0.001s",
            "dns_refresh_rate: must be greater than 1ms",
        ),
        (
            &format!("{EDS}outlier_detection: {{ interval: 0s }}"),
            "outlier_detection.interval: must be greater than 0s",
        ),
        (
            &format!("{EDS}outlier_detection: {{ max_ejection_percent: 101 }}"),
            "outlier_detection.max_ejection_percent: must be between 0 and 100",
        ),
        (
            &format!(
                "{EDS}outlier_detection: {{ base_ejection_time: 10s, max_ejection_time: 5s }}"
            ),
            "outlier_detection.max_ejection_time: must not be smaller than base_ejection_time",
        ),
        (
            &format!(
                "{EDS}health_checks: [ {{ interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {{}} }} ]"
            ),
            "health_checks[0].timeout: is required",
        ),
        (
            &format!(
                "{EDS}health_checks: [ {{ timeout: 1s, interval: 0s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {{}} }} ]"
            ),
            "health_checks[0].interval: must be greater than 0s",
        ),
        (
            &format!(
                "{EDS}health_checks: [ {{ timeout: 1s, interval: 1s, healthy_threshold: 1, tcp_health_check: {{}} }} ]"
            ),
            "health_checks[0].unhealthy_threshold: is required",
        ),
        (
            &format!(
                "{EDS}health_checks: [ {{ timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1 }} ]"
            ),
            "health_checks[0].health_checker: one of http_health_check, tcp_health_check or grpc_health_check is required",
        ),
        (
            &format!(
                "{EDS}health_checks: [ {{ timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, http_health_check: {{ path: /, expected_statuses: [ {{ start: 300, end: 200 }} ] }} }} ]"
            ),
            "health_checks[0].http_health_check.expected_statuses[0]: invalid status range [300, 200): need 100 <= start < end <= 600",
        ),
        (
            &format!(
                "{EDS}health_checks: [ {{ timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {{ send: {{ text: 'zz' }} }} }} ]"
            ),
            "health_checks[0].tcp_health_check.send.text: must be hex-encoded bytes",
        ),
        (
            &format!("{EDS}lb_policy: MAGLEV\nmaglev_lb_config: {{ table_size: 100 }}"),
            "maglev_lb_config.table_size: must be a prime number no larger than 5000011",
        ),
        (
            &format!(
                "{EDS}lb_policy: RING_HASH\nring_hash_lb_config: {{ minimum_ring_size: 10, maximum_ring_size: 5 }}"
            ),
            "ring_hash_lb_config.minimum_ring_size: ring hash: minimum_ring_size (10) > maximum_ring_size (5)",
        ),
        (
            &format!(
                "{EDS}lb_policy: LEAST_REQUEST\nleast_request_lb_config: {{ choice_count: 1 }}"
            ),
            "least_request_lb_config.choice_count: must be between 2 and 4294967295",
        ),
        (
            &format!("{EDS}lb_policy: CLUSTER_PROVIDED"),
            "lb_policy: CLUSTER_PROVIDED is not supported",
        ),
        (
            &format!("{EDS}common_lb_config: {{ healthy_panic_threshold: {{ value: 150 }} }}"),
            "common_lb_config.healthy_panic_threshold.value: must be between 0 and 100",
        ),
        (
            &format!(
                "{EDS}transport_socket_matches: [ {{ name: a, transport_socket: {{ name: raw }} }} ]"
            ),
            "transport_socket_matches: not supported",
        ),
        (
            &format!(
                "{EDS}transport_socket: {{ name: x, typed_config: {{ '@type': type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer }} }}\nlb_subset_config: {{ fallback_policy: ANY_ENDPOINT }}"
            ),
            "lb_subset_config: not supported",
        ),
        (
            &format!(
                "{EDS}transport_socket: {{ name: tls, typed_config: {{ '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, common_tls_context: {{ tls_params: {{ tls_minimum_protocol_version: TLSv1_0 }} }} }} }}"
            ),
            "transport_socket.typed_config.common_tls_context.tls_params.tls_minimum_protocol_version: TLS 1.0 and 1.1 are not supported",
        ),
        (
            &format!(
                "{EDS}transport_socket: {{ name: tls, typed_config: {{ '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, common_tls_context: {{ validation_context: {{ match_subject_alt_names: [ {{ exact: a }} ] }} }} }} }}"
            ),
            "transport_socket.typed_config.common_tls_context.validation_context.trusted_ca: SAN-based verification of peer certificates without trusted CA is insecure and not allowed",
        ),
        (
            &format!(
                "{EDS}transport_socket: {{ name: tls, typed_config: {{ '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, common_tls_context: {{ tls_certificate_sds_secret_configs: [ {{ name: default }} ] }} }} }}"
            ),
            "transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs: not supported",
        ),
        (
            &format!(
                "{EDS}transport_socket: {{ name: tls, typed_config: {{ '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext }} }}"
            ),
            "transport_socket.typed_config: unsupported transport socket envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        ),
        (
            &format!(
                "{EDS}typed_extension_protocol_options: {{ x: {{ '@type': type.googleapis.com/envoy.config.core.v3.Http1ProtocolOptions }} }}"
            ),
            "typed_extension_protocol_options[x]: unsupported protocol options type.googleapis.com/envoy.config.core.v3.Http1ProtocolOptions",
        ),
        (
            &format!(
                "{EDS}typed_extension_protocol_options: {{ x: {{ '@type': type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions }} }}"
            ),
            "typed_extension_protocol_options[x].upstream_protocol_options: one of explicit_http_config, use_downstream_protocol_config or auto_config is required",
        ),
        (
            "name: s
load_assignment:
  cluster_name: s
  endpoints:
  - lb_endpoints: []
  - priority: 2
    lb_endpoints: []",
            "load_assignment.endpoints[1].priority: priorities must be contiguous from 0, but priority 1 has no locality",
        ),
    ];
    for (yaml, expected) in cases {
        assert_eq!(
            cluster(yaml).as_ref().map(|_| ()),
            Err(&expected.to_string()),
            "{yaml}"
        );
    }
}

#[test]
fn durations_out_of_range_are_errors() {
    let mut proto: pb::Cluster =
        outrider_envoy_json::from_yaml_str(EDS).expect("test YAML is a valid Cluster");
    proto.connect_timeout = Some(envoy_types::pb::google::protobuf::Duration {
        seconds: i64::MAX,
        nanos: 0,
    });
    assert_eq!(
        Cluster::from_proto(&proto).map_err(|e| e.to_string()),
        Err("connect_timeout: duration out of range".into())
    );
}
