//! `/stats` and `/stats/prometheus` through the real binary: Envoy's names and values for the
//! requests a test sent (cluster, connection manager, control plane), `?format=json` and
//! `?filter=`, and Prometheus output that a Prometheus text parser reads back whole.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::http_get;
use common::xds_proxy::{
    XdsProxy, cluster, endpoints, eventually, get, http_listener, http1_client, routes, yaml,
};
use outrider_upstream_server::{UpstreamConfig, UpstreamServer};
use xds_conformance::Snapshot;

/// `/stats` as a map from name to value.
fn stats(proxy: &XdsProxy, query: &str) -> HashMap<String, u64> {
    let (status, body) = http_get(proxy.admin, &format!("/stats{query}")).expect("/stats");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(": ")?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_requests_by_cluster_listener_and_control_plane() {
    let backend = UpstreamServer::start_local(UpstreamConfig::new("backend"))
        .await
        .expect("upstream");
    let snapshot = Snapshot::new("1")
        .with(cluster("backend", ""))
        .with(endpoints("backend", &[backend.addr()]))
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: backend }",
        ));
    // Two workers: the counts are summed over their shards.
    let proxy = XdsProxy::start("admin-stats", snapshot, &["--concurrency", "2"]).await;
    let base = format!("http://127.0.0.1:{}", proxy.listener_port("ingress").await);
    let client = http1_client();
    for _ in 0..3 {
        assert_eq!(get(&client, &format!("{base}/echo")).await.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(
            get(&client, &format!("{base}/status/503")).await.status,
            503
        );
    }

    // An invalid cluster is rejected: the CDS update counts as rejected.
    proxy.server.update_snapshot(|snapshot| {
        snapshot.set_version("2");
        snapshot.insert(&yaml::<envoy_types::pb::envoy::config::cluster::v3::Cluster>(
            "name: broken\ntype: ORIGINAL_DST\nconnect_timeout: 1s\nlb_policy: CLUSTER_PROVIDED\n",
        ));
    });
    assert!(
        eventually(Duration::from_secs(10), || {
            stats(&proxy, "")
                .get("cluster_manager.cds.update_rejected")
                .is_some_and(|n| *n >= 1)
        })
        .await,
        "the NACK is counted"
    );

    let all = stats(&proxy, "");
    let value = |name: &str| {
        all.get(name)
            .copied()
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(value("cluster.backend.upstream_rq_total"), 5);
    assert_eq!(value("cluster.backend.upstream_rq_completed"), 5);
    assert_eq!(value("cluster.backend.upstream_rq_2xx"), 3);
    assert_eq!(value("cluster.backend.upstream_rq_5xx"), 2);
    assert_eq!(value("cluster.backend.upstream_cx_connect_fail"), 0);
    assert_eq!(value("cluster.backend.membership_total"), 1);
    assert_eq!(value("cluster.backend.membership_healthy"), 1);
    assert_eq!(value("http.ingress.downstream_rq_total"), 5);
    assert_eq!(value("http.ingress.downstream_rq_2xx"), 3);
    assert_eq!(value("http.ingress.downstream_rq_5xx"), 2);
    assert_eq!(value("http.ingress.downstream_rq_active"), 0);
    assert!(value("http.ingress.downstream_cx_total") >= 1);
    assert_eq!(value("control_plane.connected_state"), 1);
    assert!(value("cluster_manager.cds.update_success") >= 1);
    assert!(value("listener_manager.lds.update_success") >= 1);

    // ?filter keeps matching names only; ?format=json lists name/value pairs.
    let filtered = stats(
        &proxy,
        "?filter=%5Ecluster%5C.backend%5C.upstream_rq_%5B0-9%5Dxx",
    );
    let mut names: Vec<&String> = filtered.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "cluster.backend.upstream_rq_1xx",
            "cluster.backend.upstream_rq_2xx",
            "cluster.backend.upstream_rq_3xx",
            "cluster.backend.upstream_rq_4xx",
            "cluster.backend.upstream_rq_5xx"
        ]
    );
    let json = common::get_json(proxy.admin, "/stats?format=json").expect("JSON stats");
    let listed = json["stats"].as_array().expect("stats array");
    assert!(
        listed
            .iter()
            .any(|s| s["name"] == "cluster.backend.upstream_rq_2xx" && s["value"] == 3)
    );

    // Prometheus: every line parses, and the tags carry what Envoy's tag extractors take out.
    let (status, text) = http_get(proxy.admin, "/stats/prometheus").expect("prometheus");
    assert_eq!(status, 200);
    let lines: Vec<std::io::Result<String>> = text.lines().map(|l| Ok(l.to_string())).collect();
    let scrape = prometheus_parse::Scrape::parse(lines.into_iter()).expect("valid exposition text");
    let sample_lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    assert_eq!(
        scrape.samples.len(),
        sample_lines,
        "every sample line parsed"
    );
    let find = |metric: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(
        find(
            "envoy_cluster_upstream_rq_xx",
            &[
                ("envoy_response_code_class", "2"),
                ("envoy_cluster_name", "backend")
            ]
        ),
        Some(3.0)
    );
    assert_eq!(
        find(
            "envoy_http_downstream_rq_total",
            &[("envoy_http_conn_manager_prefix", "ingress")]
        ),
        Some(5.0)
    );
    assert_eq!(find("envoy_control_plane_connected_state", &[]), Some(1.0));

    // /clusters: Envoy's text lines and JSON for the same host.
    let host = backend.addr();
    let (status, text) = http_get(proxy.admin, "/clusters").expect("/clusters");
    assert_eq!(status, 200);
    for line in [
        "backend::observability_name::backend".to_string(),
        "backend::default_priority::max_connections::1024".to_string(),
        "backend::high_priority::max_retries::3".to_string(),
        "backend::added_via_api::true".to_string(),
        format!("backend::{host}::rq_total::5"),
        format!("backend::{host}::rq_success::3"),
        format!("backend::{host}::rq_error::2"),
        format!("backend::{host}::cx_connect_fail::0"),
        format!("backend::{host}::health_flags::healthy"),
        format!("backend::{host}::weight::1"),
        format!("backend::{host}::priority::0"),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing in:\n{text}"
        );
    }
    let clusters = common::get_json(proxy.admin, "/clusters?format=json").expect("JSON");
    let backend_status = clusters["cluster_statuses"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == "backend"))
        .expect("backend in /clusters");
    let host_status = &backend_status["host_statuses"][0];
    assert_eq!(
        host_status["address"]["socket_address"]["port_value"],
        host.port()
    );
    assert_eq!(host_status["health_status"]["eds_health_status"], "HEALTHY");
    let rq_total = host_status["stats"]
        .as_array()
        .and_then(|stats| stats.iter().find(|s| s["name"] == "rq_total"))
        .expect("rq_total");
    assert_eq!(rq_total["value"], "5");
}
