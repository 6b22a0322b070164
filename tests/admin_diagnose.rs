//! `/diagnose?cluster=NAME` and `outrider diagnose` through the real binary: per endpoint the
//! state and why (EDS health, connect probe), the control plane's view, the circuit breakers and
//! what the next request would do; a missing cluster is said to be missing.

mod common;

use common::xds_proxy::{XdsProxy, closed_port, cluster, http_listener, routes, yaml};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use outrider_upstream_server::{UpstreamConfig, UpstreamServer};
use serde_json::Value;
use xds_conformance::Snapshot;

fn endpoint<'a>(report: &'a Value, address: &str) -> &'a Value {
    report["endpoints"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["address"] == address))
        .unwrap_or_else(|| panic!("{address} not in {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_explains_each_endpoint_and_the_next_request() {
    let live = UpstreamServer::start_local(UpstreamConfig::new("live"))
        .await
        .expect("upstream");
    let closed = closed_port();
    let drained = closed_port();
    let assignment: ClusterLoadAssignment = yaml(&format!(
        r#"cluster_name: backend
endpoints:
- lb_endpoints:
  - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}
  - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}
  - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}
    health_status: DRAINING
"#,
        live.addr().port(),
        closed.port(),
        drained.port()
    ));
    let snapshot = Snapshot::new("1")
        .with(cluster(
            "backend",
            "circuit_breakers: { thresholds: [{ max_requests: 7 }] }",
        ))
        .with(assignment)
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: backend }",
        ));
    let proxy = XdsProxy::start("diagnose", snapshot, &["--concurrency", "1"]).await;
    proxy.listener_port("ingress").await;

    let report = common::get_json(proxy.admin, "/diagnose?cluster=backend&format=json")
        .expect("a JSON diagnosis");
    assert_eq!(report["state"], "active", "{report:#}");
    assert_eq!(report["endpoints_from"], "EDS");
    assert_eq!(report["control_plane"]["cds"]["status"], "ACKED");
    assert_eq!(report["control_plane"]["eds"]["status"], "ACKED");
    assert_eq!(report["eds"]["version"], "1");

    let up = endpoint(&report, &live.addr().to_string());
    assert_eq!(up["state"], "healthy");
    assert_eq!(up["connect_now"]["ok"], true);
    let down = endpoint(&report, &closed.to_string());
    assert_eq!(down["state"], "healthy", "EDS does not know it is down");
    assert_eq!(down["connect_now"]["ok"], false);
    assert!(
        down["summary"]
            .as_str()
            .is_some_and(|s| s.contains("TCP connect fails now")),
        "{down:#}"
    );
    let draining = endpoint(&report, &drained.to_string());
    assert_eq!(draining["state"], "unhealthy");
    assert_eq!(draining["health_flags"], "/failed_eds_health");
    assert!(
        draining["summary"]
            .as_str()
            .is_some_and(|s| s.contains("EDS says Draining")),
        "{draining:#}"
    );

    assert_eq!(report["circuit_breakers"]["default"]["requests"][1], 7);
    assert_eq!(report["next_request"]["healthy"], 2);
    assert_eq!(report["next_request"]["total"], 3);

    // A cluster nobody sent.
    let missing = common::get_json(proxy.admin, "/diagnose?cluster=nowhere&format=json")
        .expect("a JSON diagnosis");
    assert_eq!(missing["state"], "missing", "{missing:#}");
    assert_eq!(missing["control_plane"]["cds"]["status"], "never received");
    assert!(
        missing["summary"][0]
            .as_str()
            .is_some_and(|s| s.contains("unknown to this proxy"))
    );

    // The command line asks the same admin interface and prints the text form.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_outrider"))
        .args([
            "diagnose",
            "--admin",
            &proxy.admin.to_string(),
            "--cluster",
            "backend",
        ])
        .output()
        .expect("outrider diagnose runs");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.starts_with("cluster backend: 3 endpoints (EDS), 2 of 3 healthy"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{drained} (priority 0): unhealthy: EDS says Draining"
        )),
        "{text}"
    );
}
