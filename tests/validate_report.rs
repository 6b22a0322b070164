//! `outrider validate` as a migration report, through the binary: every rejection of a
//! bootstrap (not only the first) with its path and why, what is ignored as harmless and why,
//! and what is enforced; the same for a directory of xDS resources and a saved Envoy
//! `/config_dump`, as text and as `--json`.

mod common;

use std::process::Command;

use common::temp_dir;
use serde_json::Value;

fn validate(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_outrider"))
        .arg("validate")
        .args(args)
        .output()
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn json_report(path: &std::path::Path) -> (bool, Value) {
    let (ok, stdout) = validate(&["-c", path.to_str().expect("utf-8"), "--json"]);
    (ok, serde_json::from_str(&stdout).expect("a JSON report"))
}

/// `(feature or exact path, why)` of every feature with `status` in document `index`.
fn with_status(report: &Value, index: usize, status: &str) -> Vec<(String, String)> {
    report["documents"][index]["features"]
        .as_array()
        .expect("features")
        .iter()
        .filter(|f| f["status"] == status)
        .map(|f| {
            let name = if status == "rejected" {
                &f["at"]
            } else {
                &f["feature"]
            };
            (
                name.as_str().unwrap_or_default().to_string(),
                f["why"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

const BOOTSTRAP: &str = r#"
stats_flush_on_admin: true
stats_sinks:
- name: envoy.stat_sinks.statsd
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.StatsdSink
    address: { socket_address: { address: 127.0.0.1, port_value: 8125 } }
static_resources:
  listeners:
  - name: web
    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          http_protocol_options: { accept_http_10: true }
          local_reply_config: { mappers: [ { filter: { not_health_check_filter: {} }, status_code: 500 } ] }
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: / }
                decorator: { operation: front }
                route: { cluster: backend, timeout: 3s, rate_limits: [ { actions: [ { remote_address: {} } ] } ] }
          http_filters:
          - name: envoy.filters.http.cors
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors }
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: backend
    connect_timeout: 1s
    metadata: { filter_metadata: { team: { owner: web } } }
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http_protocol_options: { accept_http_10: true } }
    load_assignment:
      cluster_name: backend
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } } } ] } ]
"#;

const HCM: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";

#[test]
fn a_bootstrap_gets_every_rejection_and_every_ignored_field_with_why() {
    let dir = temp_dir("validate-report-bootstrap");
    let file = dir.join("bootstrap.yaml");
    std::fs::write(&file, BOOTSTRAP).expect("write");
    let (ok, report) = json_report(&file);
    assert!(!ok, "a refused configuration exits 1");
    assert_eq!(report["loads"], false);
    let rejected: Vec<String> = with_status(&report, 0, "rejected")
        .into_iter()
        .map(|(at, _)| at)
        .collect();
    assert_eq!(
        rejected,
        [
            format!("{HCM}.local_reply_config"),
            format!("{HCM}.route_config.virtual_hosts[0].routes[0].route.rate_limits"),
            format!("{HCM}.http_filters[0].typed_config"),
        ]
    );
    let ignored: Vec<String> = with_status(&report, 0, "ignored")
        .into_iter()
        .map(|(feature, why)| {
            assert!(!why.is_empty(), "{feature} has no reason");
            feature
        })
        .collect();
    let route = "static_resources.listeners[].filter_chains[].filters[].typed_config<HttpConnectionManager>.route_config.virtual_hosts[].routes[]";
    assert_eq!(
        ignored,
        [
            format!("{route}.decorator"),
            "static_resources.clusters[].metadata".to_string(),
            // In a map, named by its key; an upstream connection receives no HTTP/1.0 request.
            "static_resources.clusters[].typed_extension_protocol_options[envoy.extensions.upstreams.http.v3.HttpProtocolOptions]<HttpProtocolOptions>.explicit_http_config.http_protocol_options.accept_http_10".to_string(),
            "stats_sinks".to_string(),
            // A oneof's field (of `stats_flush`).
            "stats_flush_on_admin".to_string(),
        ]
    );
    let enforced: Vec<String> = with_status(&report, 0, "enforced")
        .into_iter()
        .map(|(feature, _)| feature)
        .collect();
    assert!(
        enforced.contains(&format!("{route}.route.timeout")),
        "{enforced:?}"
    );
    // The connection manager's codec acts on the same field.
    assert!(
        enforced.contains(&"static_resources.listeners[].filter_chains[].filters[].typed_config<HttpConnectionManager>.http_protocol_options.accept_http_10".to_string()),
        "{enforced:?}"
    );
    // The rejected HTTP filter is reported once, name and all.
    assert_eq!(
        enforced
            .iter()
            .filter(|f| f.ends_with("http_filters[].name"))
            .count(),
        1,
        "{enforced:?}"
    );

    // The text form says the same, rejections first.
    let (ok, text) = validate(&["-c", file.to_str().expect("utf-8")]);
    assert!(!ok);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("is refused: 3 rejected"), "{text}");
    assert!(
        lines[3].starts_with(&format!("  rejected  {HCM}.local_reply_config: ")),
        "{text}"
    );
    assert!(
        text.contains("  ignored   stats_sinks: a bootstrap section"),
        "{text}"
    );
}

#[test]
fn resources_in_a_directory_and_in_an_envoy_config_dump() {
    let dir = temp_dir("validate-report-resources");
    let resources = dir.join("resources");
    std::fs::create_dir(&resources).expect("mkdir");
    std::fs::write(
        resources.join("listener.yaml"),
        r#""@type": type.googleapis.com/envoy.config.listener.v3.Listener
name: l
address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
reuse_port: true
filter_chains:
- filters:
  - name: tcp
    typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c }
"#,
    )
    .expect("write");
    std::fs::write(
        resources.join("cluster.json"),
        r#"{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "c", "connect_timeout": "1s", "lb_policy": "round_robin",
            "load_assignment": {"cluster_name": "c", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 1}}}}]}]}}"#,
    )
    .expect("write");
    let (ok, report) = json_report(&resources);
    assert!(ok, "{report:#}");
    let labels: Vec<&str> = report["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .filter_map(|d| d["document"].as_str())
        .collect();
    assert_eq!(labels, ["Cluster c", "Listener l"]);
    assert_eq!(
        with_status(&report, 1, "ignored"),
        [(
            "reuse_port".to_string(),
            "SO_REUSEPORT is always used".to_string()
        )]
    );

    let dump = dir.join("config_dump.json");
    std::fs::write(
        &dump,
        r#"{"configs": [
 {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "dynamic_active_clusters": [{"version_info": "1",
   "cluster": {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "svc", "type": "EDS",
               "eds_cluster_config": {"eds_config": {"ads": {}}}, "connect_timeout": "1s", "lb_policy": "MAGLEV"}}]},
 {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamic_route_configs": [{"version_info": "1",
   "route_config": {"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", "name": "r",
     "virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [{"match": {"prefix": "/"},
       "route": {"cluster": "svc", "rate_limits": [{"actions": [{"remote_address": {}}]}]}}]}]}}]},
 {"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"}
]}"#,
    )
    .expect("write");
    let (ok, report) = json_report(&dump);
    assert!(!ok);
    assert_eq!(report["documents"][0]["document"], "Cluster svc");
    assert_eq!(report["documents"][0]["loads"], true);
    assert_eq!(report["documents"][1]["document"], "RouteConfiguration r");
    assert_eq!(
        with_status(&report, 1, "rejected")
            .into_iter()
            .map(|(at, _)| at)
            .collect::<Vec<_>>(),
        ["virtual_hosts[0].routes[0].route.rate_limits"]
    );
    assert_eq!(report["summary"]["rejected"], 1);
}
