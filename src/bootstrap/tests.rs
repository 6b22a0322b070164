use outrider_dataplane::GlobalConnectionLimit;

use super::*;

/// The shape of bootstrap go-control-plane's and Envoy's examples use.
const ENVOY_BOOTSTRAP: &str = r#"
node:
  id: test-id
  cluster: test-cluster
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 9901 } }
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services:
    - envoy_grpc: { cluster_name: xds_cluster }
  cds_config: { resource_api_version: V3, ads: {} }
  lds_config: { resource_api_version: V3, ads: {}, initial_fetch_timeout: 3s }
static_resources:
  clusters:
  - name: xds_cluster
    type: STRICT_DNS
    connect_timeout: 0.25s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: xds_cluster
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: localhost, port_value: 18000 } } }
"#;

fn check_yaml(yaml: &str, overrides: &Overrides) -> Result<LoadedBootstrap, (String, String)> {
    let proto: Bootstrap = outrider_envoy_json::from_yaml_str(yaml).expect("parses");
    check(proto, overrides)
}

#[test]
fn reads_an_envoy_ads_bootstrap() {
    let loaded = check_yaml(ENVOY_BOOTSTRAP, &Overrides::default()).expect("valid");
    let ads = loaded.ads.expect("ADS configured");
    assert_eq!(ads.uri, "http://localhost:18000");
    assert_eq!(ads.cluster, "xds_cluster");
    assert_eq!(ads.connect_timeout, Duration::from_millis(250));
    assert!(!ads.delta);
    assert_eq!(
        ads.lds.expect("lds").initial_fetch_timeout,
        Some(Duration::from_secs(3))
    );
    assert_eq!(
        ads.cds.expect("cds").initial_fetch_timeout,
        Some(Duration::from_secs(15))
    );
    assert_eq!(
        loaded.admin_address,
        Some("127.0.0.1:9901".parse().expect("addr"))
    );
    assert_eq!(loaded.node.id, "test-id");
    assert_eq!(loaded.node.user_agent_name, "outrider");
    assert_eq!(loaded.static_clusters.len(), 1);
}

#[test]
fn reads_camel_case_json_with_legacy_http2_options_and_delta() {
    let json = r#"{
      "dynamicResources": {
        "adsConfig": {"apiType": "DELTA_GRPC", "transportApiVersion": "V3",
                      "grpcServices": [{"envoyGrpc": {"clusterName": "xds"}}]},
        "cdsConfig": {"ads": {}, "resourceApiVersion": "V3"}
      },
      "staticResources": {"clusters": [{
        "name": "xds", "type": "STATIC", "connectTimeout": "1s", "http2ProtocolOptions": {},
        "loadAssignment": {"clusterName": "xds", "endpoints": [{"lbEndpoints": [{"endpoint":
          {"address": {"socketAddress": {"address": "127.0.0.1", "portValue": 5678}}}}]}]}
      }]}
    }"#;
    let loaded = check_yaml(json, &Overrides::default()).expect("valid");
    let ads = loaded.ads.expect("ADS");
    assert!(ads.delta);
    assert_eq!(ads.uri, "http://127.0.0.1:5678");
    assert!(ads.lds.is_none());
}

#[test]
fn command_line_overrides_node_and_mode() {
    let overrides = Overrides {
        service_node: Some("n2".into()),
        service_cluster: Some("c2".into()),
        delta: true,
    };
    let loaded = check_yaml(ENVOY_BOOTSTRAP, &overrides).expect("valid");
    assert_eq!(
        (loaded.node.id.as_str(), loaded.node.cluster.as_str()),
        ("n2", "c2")
    );
    assert!(loaded.ads.expect("ads").delta);
}

#[test]
fn errors_name_the_field_path() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "connect_timeout: 0.25s",
            "connect_timeout: 0s",
            "static_resources.clusters[0].connect_timeout",
        ),
        (
            "explicit_http_config: { http2_protocol_options: {} }",
            "explicit_http_config: { http_protocol_options: {} }",
            "static_resources.clusters[0]",
        ),
        (
            "cluster_name: xds_cluster }",
            "cluster_name: nope }",
            "dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name",
        ),
        (
            "api_type: GRPC",
            "api_type: REST",
            "dynamic_resources.ads_config.api_type",
        ),
        (
            "lds_config: { resource_api_version: V3, ads: {}",
            "lds_config: { resource_api_version: V3, path: /x",
            "dynamic_resources.lds_config.path",
        ),
        (
            "address: 127.0.0.1, port_value: 9901",
            "address: localhost, port_value: 9901",
            "admin.address",
        ),
    ];
    for (from, to, path) in cases {
        assert!(ENVOY_BOOTSTRAP.contains(from), "{from}");
        let yaml = ENVOY_BOOTSTRAP.replace(from, to);
        let (got, reason) = check_yaml(&yaml, &Overrides::default()).expect_err(to);
        assert_eq!(&got, path, "{to}: {reason}");
        assert!(!reason.is_empty());
    }
}

#[test]
fn load_reports_file_path_and_reason() {
    let dir = std::env::temp_dir().join(format!("outrider-bootstrap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        ENVOY_BOOTSTRAP.replace("connect_timeout: 0.25s", "connect_timout: 1s"),
    )
    .expect("write");
    let error = load(&file, &Overrides::default()).expect_err("typo");
    assert_eq!(
        error.to_string(),
        format!(
            "{}: static_resources.clusters[0].connect_timout: unknown field",
            file.display()
        )
    );
    let missing = load(&dir.join("missing.yaml"), &Overrides::default()).expect_err("missing");
    assert!(missing.to_string().contains("cannot read"), "{missing}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn harmless_sections_are_listed_and_unbuilt_ones_refused() {
    let yaml = format!("{ENVOY_BOOTSTRAP}\nstats_flush_interval: 5s\n");
    let loaded = check_yaml(&yaml, &Overrides::default()).expect("still valid");
    assert_eq!(loaded.ignored, ["stats_flush_interval"]);
    let plain = check_yaml(ENVOY_BOOTSTRAP, &Overrides::default()).expect("valid");
    assert!(plain.ignored.is_empty(), "{:?}", plain.ignored);

    // Each of these would change what runs: refused with its path until it is built.
    let cases = [
        (
            "layered_runtime: { layers: [{ name: static, static_layer: { re2.max_program_size.error_level: 100 } }] }",
            "layered_runtime.layers[0].static_layer.re2.max_program_size.error_level",
        ),
        (
            "layered_runtime: { layers: [{ name: static, static_layer: { outrider: { no_such_key: 1 } } }] }",
            "layered_runtime.layers[0].static_layer.outrider.no_such_key",
        ),
        ("header_prefix: x-acme", "header_prefix"),
        (
            "cluster_manager: { local_cluster_name: me }",
            "cluster_manager.local_cluster_name",
        ),
    ];
    for (extra, path) in cases {
        let (got, reason) = check_yaml(
            &format!("{ENVOY_BOOTSTRAP}\n{extra}\n"),
            &Overrides::default(),
        )
        .expect_err(extra);
        assert_eq!(got, path, "{extra}: {reason}");
        assert!(reason.starts_with("not supported yet: "), "{reason}");
    }
    let allow = ENVOY_BOOTSTRAP.replace(
        "admin:\n",
        "admin:\n  allow_paths: [ { exact: /ready }, { prefix: /stats } ]\n",
    );
    assert_ne!(
        allow, ENVOY_BOOTSTRAP,
        "the test bootstrap has an admin section"
    );
    let loaded = check_yaml(&allow, &Overrides::default()).expect("allow_paths");
    assert_eq!(loaded.admin_allow_paths.len(), 2);
    let bad = allow.replace("{ prefix: /stats }", "{ prefix: '' }");
    let (got, _) = check_yaml(&bad, &Overrides::default()).expect_err("an empty prefix");
    assert_eq!(got, "admin.allow_paths[1].prefix");
    // Istio's bootstrap logs admin requests to /dev/null: what we do.
    let null_log = ENVOY_BOOTSTRAP.replace(
        "admin:\n",
        "admin:\n  access_log: [ { name: envoy.access_loggers.file, typed_config: { '@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: /dev/null } } ]\n",
    );
    check_yaml(&null_log, &Overrides::default()).expect("an admin log to /dev/null");
    let real_log = null_log.replace("path: /dev/null", "path: /tmp/admin.log");
    let (got, _) = check_yaml(&real_log, &Overrides::default()).expect_err("a real admin log");
    assert_eq!(got, "admin.access_log");
    // Istio's bootstrap keeps its xDS connection alive this way: accepted, and applied.
    let keepalive = ENVOY_BOOTSTRAP.replacen(
        "    connect_timeout: 0.25s\n",
        "    connect_timeout: 0.25s\n    upstream_connection_options: { tcp_keepalive: { keepalive_time: 300 } }\n",
        1,
    );
    assert_ne!(
        keepalive, ENVOY_BOOTSTRAP,
        "the test bootstrap has that line"
    );
    let loaded = check_yaml(&keepalive, &Overrides::default()).expect("tcp_keepalive");
    assert!(loaded.static_clusters[0].tcp_keepalive.is_some());
    // Envoy refuses an ADS source without transport_api_version: V3 too.
    let auto = ENVOY_BOOTSTRAP.replace("    transport_api_version: V3\n", "");
    assert_ne!(auto, ENVOY_BOOTSTRAP);
    let (got, _) = check_yaml(&auto, &Overrides::default()).expect_err("AUTO");
    assert_eq!(got, "dynamic_resources.ads_config.transport_api_version");
}

#[test]
fn the_no_healthy_upstream_header_is_on_unless_a_runtime_layer_turns_it_off() {
    let on = check_yaml(ENVOY_BOOTSTRAP, &Overrides::default()).expect("valid");
    assert!(on.explain_no_healthy_upstream);
    let layers = "layered_runtime: { layers: [ { name: a, static_layer: { outrider.no_healthy_upstream_header: true } }, { name: b, static_layer: { outrider.no_healthy_upstream_header: false } } ] }";
    let off = check_yaml(
        &format!("{ENVOY_BOOTSTRAP}\n{layers}\n"),
        &Overrides::default(),
    )
    .expect("valid");
    assert!(!off.explain_no_healthy_upstream, "the later layer wins");
    assert!(
        off.ignored.is_empty(),
        "our own runtime keys are acted on: {:?}",
        off.ignored
    );
    let bad = "layered_runtime: { layers: [ { name: a, static_layer: { outrider.no_healthy_upstream_header: 'no' } } ] }";
    let (path, _) = check_yaml(
        &format!("{ENVOY_BOOTSTRAP}\n{bad}\n"),
        &Overrides::default(),
    )
    .expect_err("not a bool");
    assert_eq!(
        path,
        "layered_runtime.layers[0].static_layer.outrider.no_healthy_upstream_header"
    );
}

/// The reporting fields of `cluster_manager`, all pointing at the ADS cluster.
const CLUSTER_MANAGER: &str = r#"
cluster_manager:
  outlier_detection:
    event_log_path: /var/log/outrider/outlier.log
    event_service:
      grpc_service:
        envoy_grpc: { cluster_name: xds_cluster }
        initial_metadata: [{ key: X-Token, value: secret }]
  load_stats_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{ envoy_grpc: { cluster_name: xds_cluster } }]
"#;

fn with_cluster_manager(cluster_manager: &str) -> String {
    format!("{ENVOY_BOOTSTRAP}{cluster_manager}")
}

#[test]
fn reads_the_reporting_fields_of_cluster_manager() {
    let loaded = check_yaml(
        &with_cluster_manager(CLUSTER_MANAGER),
        &Overrides::default(),
    )
    .expect("valid");
    let report = &loaded.report;
    assert_eq!(
        report.event_log_path.as_deref(),
        Some(Path::new("/var/log/outrider/outlier.log"))
    );
    let events = report.event_service.as_ref().expect("event service");
    assert_eq!(events.cluster, "xds_cluster");
    assert_eq!(
        events.initial_metadata,
        [("x-token".to_string(), "secret".to_string())]
    );
    let lrs = report.load_stats.as_ref().expect("LRS");
    assert_eq!(lrs.cluster, "xds_cluster");
    assert!(lrs.initial_metadata.is_empty());
    assert!(loaded.ignored.is_empty(), "{:?}", loaded.ignored);

    // DELTA_GRPC is accepted for LRS, as Envoy does.
    let delta =
        with_cluster_manager(&CLUSTER_MANAGER.replace("api_type: GRPC", "api_type: DELTA_GRPC"));
    let loaded = check_yaml(&delta, &Overrides::default()).expect("valid");
    assert!(loaded.report.load_stats.is_some());

    // Without cluster_manager nothing reports.
    let plain = check_yaml(ENVOY_BOOTSTRAP, &Overrides::default()).expect("valid");
    assert!(plain.report.is_empty());
}

#[test]
fn the_rest_of_cluster_manager_is_listed_as_ignored_or_refused() {
    let yaml = with_cluster_manager(&CLUSTER_MANAGER.replace(
        "    grpc_services: [{ envoy_grpc: { cluster_name: xds_cluster } }]",
        "    request_timeout: 1s\n    grpc_services: [{ envoy_grpc: { cluster_name: xds_cluster }, timeout: 5s }]",
    ));
    let loaded = check_yaml(&yaml, &Overrides::default()).expect("still valid");
    assert_eq!(
        loaded.ignored,
        [
            "cluster_manager.load_stats_config.request_timeout",
            "cluster_manager.load_stats_config.grpc_services[0].timeout",
        ]
    );
    // The server would see another :authority: refused.
    let authority = with_cluster_manager(&CLUSTER_MANAGER.replace(
        "    grpc_services: [{ envoy_grpc: { cluster_name: xds_cluster } }]",
        "    grpc_services: [{ envoy_grpc: { cluster_name: xds_cluster, authority: lrs.example } }]",
    ));
    let (path, _) = check_yaml(&authority, &Overrides::default()).expect_err("authority");
    assert_eq!(
        path,
        "cluster_manager.load_stats_config.grpc_services[0].envoy_grpc.authority"
    );
}

#[test]
fn reporting_errors_name_the_field_path() {
    let event_service = "cluster_manager.outlier_detection.event_service.grpc_service";
    let lrs = "cluster_manager.load_stats_config";
    let cases: Vec<(String, String)> = vec![
        (
            CLUSTER_MANAGER.replace(
                "        envoy_grpc: { cluster_name: xds_cluster }\n",
                "        google_grpc: { target_uri: 'x:1', stat_prefix: x }\n",
            ),
            format!("{event_service}.google_grpc"),
        ),
        (
            CLUSTER_MANAGER.replace(
                "      grpc_service:\n        envoy_grpc: { cluster_name: xds_cluster }\n        initial_metadata: [{ key: X-Token, value: secret }]\n",
                "      {}\n",
            ),
            event_service.to_string(),
        ),
        (
            CLUSTER_MANAGER.replace(
                "        envoy_grpc: { cluster_name: xds_cluster }\n",
                "        envoy_grpc: { cluster_name: nope }\n",
            ),
            format!("{event_service}.envoy_grpc.cluster_name"),
        ),
        (
            CLUSTER_MANAGER.replace("value: secret", "value: \"s\\u00e9cret\""),
            format!("{event_service}.initial_metadata[0]"),
        ),
        (
            CLUSTER_MANAGER.replace("api_type: GRPC", "api_type: REST"),
            format!("{lrs}.api_type"),
        ),
        (
            CLUSTER_MANAGER.replace("    transport_api_version: V3\n", ""),
            format!("{lrs}.transport_api_version"),
        ),
        (
            CLUSTER_MANAGER.replace(
                "[{ envoy_grpc: { cluster_name: xds_cluster } }]",
                "[{ envoy_grpc: { cluster_name: xds_cluster } }, { envoy_grpc: { cluster_name: xds_cluster } }]",
            ),
            format!("{lrs}.grpc_services"),
        ),
        (
            CLUSTER_MANAGER.replace(
                "[{ envoy_grpc: { cluster_name: xds_cluster } }]",
                "[{ google_grpc: { target_uri: 'x:1', stat_prefix: x } }]",
            ),
            format!("{lrs}.grpc_services[0].google_grpc"),
        ),
        (
            CLUSTER_MANAGER.replace(
                "    grpc_services: [{ envoy_grpc: { cluster_name: xds_cluster } }]",
                "    cluster_names: [xds_cluster]\n    grpc_services: [{ envoy_grpc: { cluster_name: xds_cluster } }]",
            ),
            format!("{lrs}.cluster_names"),
        ),
    ];
    for (cluster_manager, path) in cases {
        assert_ne!(
            cluster_manager, CLUSTER_MANAGER,
            "{path}: the case changes nothing"
        );
        let (got, reason) = check_yaml(
            &with_cluster_manager(&cluster_manager),
            &Overrides::default(),
        )
        .expect_err(&path);
        assert_eq!(got, path, "{reason}");
        assert!(!reason.is_empty());
    }

    // The reporting cluster must speak HTTP/2, as the ADS one must.
    let http1 = format!(
        "{ENVOY_BOOTSTRAP}  - name: plain\n    type: STATIC\n    load_assignment: {{ cluster_name: plain, endpoints: [] }}\n{}",
        CLUSTER_MANAGER.replace(
            "grpc_services: [{ envoy_grpc: { cluster_name: xds_cluster } }]",
            "grpc_services: [{ envoy_grpc: { cluster_name: plain } }]",
        )
    );
    let (path, reason) = check_yaml(&http1, &Overrides::default()).expect_err("HTTP/1 cluster");
    assert_eq!(path, "static_resources.clusters[1]");
    assert!(reason.contains("load reporting"), "{reason}");
}

#[test]
fn a_static_listener_without_a_name_gets_one_as_in_envoy() {
    let yaml = format!(
        "{ENVOY_BOOTSTRAP}  listeners:
  - address: {{ socket_address: {{ address: 127.0.0.1, port_value: 10000 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {{ '@type': type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: xds_cluster }}
"
    );
    let loaded = check_yaml(&yaml, &Overrides::default()).expect("a nameless static listener");
    let name = loaded.static_listeners[0].name();
    assert_eq!(name.len(), 36, "a UUID: {name}");
    assert_eq!(name.matches('-').count(), 4, "{name}");
}

/// The overload manager as far as it is built: the global downstream connection limit, from
/// its resource monitor or from Istio's runtime key; the rest is refused with its path.
#[test]
fn overload_manager_gives_the_global_connection_limit_or_is_refused() {
    let monitor = |max: i64| {
        format!(
            "overload_manager:
  refresh_interval: 0.25s
  resource_monitors:
  - name: envoy.resource_monitors.global_downstream_max_connections
    typed_config:
      '@type': type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig
      max_active_downstream_connections: {max}"
        )
    };
    let load = |extra: &str| {
        check_yaml(
            &format!("{ENVOY_BOOTSTRAP}\n{extra}\n"),
            &Overrides::default(),
        )
    };
    let limited = load(&monitor(1000)).expect("valid");
    assert_eq!(
        limited.max_downstream_connections,
        Some(GlobalConnectionLimit {
            max: 1000,
            counts_exempt: false
        })
    );
    assert_eq!(limited.ignored, ["overload_manager.refresh_interval"]);
    let istio = "layered_runtime: { layers: [{ name: global config, static_layer: { overload.global_downstream_max_connections: '250000' } }] }";
    assert_eq!(
        load(istio).expect("valid").max_downstream_connections,
        Some(GlobalConnectionLimit {
            max: 250_000,
            counts_exempt: true
        })
    );
    assert_eq!(
        load(ENVOY_BOOTSTRAP)
            .expect("valid")
            .max_downstream_connections,
        None
    );

    let refused = [
        (monitor(0), "overload_manager.resource_monitors[0].typed_config.max_active_downstream_connections"),
        (
            "overload_manager: { actions: [{ name: envoy.overload_actions.stop_accepting_requests }] }".to_string(),
            "overload_manager.actions",
        ),
        (
            "overload_manager: { resource_monitors: [{ name: envoy.resource_monitors.fixed_heap }] }".to_string(),
            "overload_manager.resource_monitors[0].name",
        ),
        (
            "layered_runtime: { layers: [{ name: s, static_layer: { overload.global_downstream_max_connections: lots } }] }".to_string(),
            "layered_runtime.layers[0].static_layer.overload.global_downstream_max_connections",
        ),
    ];
    for (extra, path) in refused {
        let (got, reason) = load(&extra).expect_err(&extra);
        assert_eq!(got, path, "{extra}: {reason}");
    }
}

/// Per-listener connection limits come from Envoy's runtime keys, flat or nested, the last
/// layer winning; a value that is no count is refused with its path.
#[test]
fn listener_connection_limits_come_from_the_static_runtime() {
    let load = |extra: &str| {
        check_yaml(
            &format!("{ENVOY_BOOTSTRAP}\n{extra}\n"),
            &Overrides::default(),
        )
    };
    let layers = r#"layered_runtime:
  layers:
  - name: first
    static_layer:
      envoy.resource_limits.listener.ingress.connection_limit: 10
      envoy.resource_limits.listener.edge.connection_limit: "20"
  - name: second
    static_layer:
      envoy: { resource_limits: { listener: { ingress: { connection_limit: 30 } } } }
      overload: { global_downstream_max_connections: 40 }"#;
    let loaded = load(layers).expect("valid");
    assert_eq!(
        loaded
            .listener_connection_limits
            .into_iter()
            .collect::<Vec<_>>(),
        [("edge".to_string(), 20), ("ingress".to_string(), 30)]
    );
    assert_eq!(loaded.max_downstream_connections.map(|l| l.max), Some(40));
    let refused = "layered_runtime: { layers: [{ name: s, static_layer: { envoy.resource_limits.listener.a.connection_limit: -1 } }] }";
    let (path, _) = load(refused).expect_err("a negative limit");
    assert_eq!(
        path,
        "layered_runtime.layers[0].static_layer.envoy.resource_limits.listener.a.connection_limit"
    );
}
