//! The README's flow, end to end with the real binary: `outrider demo` serves a snapshot file,
//! the proxy gets ready and dumps the configuration; an edit shows up as a new version; an invalid
//! cluster is NACKed with its reason while the previous version stays active.

mod common;

use std::time::Duration;

use common::{Running, admin_address, get_json, http_get, temp_dir, wait_for};
use serde_json::Value;

/// The section of a `/config_dump` with the given `@type` suffix.
fn section<'a>(dump: &'a Value, kind: &str) -> &'a Value {
    dump["configs"]
        .as_array()
        .and_then(|configs| {
            configs.iter().find(|c| {
                c["@type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with(&format!(".{kind}")))
            })
        })
        .unwrap_or_else(|| panic!("no {kind} in the dump: {dump}"))
}

fn active_cluster<'a>(dump: &'a Value, name: &str) -> Option<&'a Value> {
    section(dump, "ClustersConfigDump")["dynamic_active_clusters"]
        .as_array()?
        .iter()
        .find(|c| c["cluster"]["name"] == name)
}

#[test]
fn demo_serves_reloads_and_rejects_invalid_config_while_keeping_the_last_good() {
    let dir = temp_dir("demo-flow");
    let snapshot = dir.join("snapshot.yaml");
    // The listener on port 0, and no demo upstreams: this test is about configuration, and
    // must not need fixed ports (tests/dataplane.rs covers forwarding).
    let original =
        &include_str!("../examples/demo.yaml").replace("port_value: 10000", "port_value: 0");
    std::fs::write(&snapshot, original).expect("write snapshot");
    let admin_path = dir.join("admin-address");
    let demo = Running::start(
        env!("CARGO_BIN_EXE_outrider"),
        &[
            "demo",
            "--snapshot",
            snapshot.to_str().expect("utf-8 path"),
            "--xds-address",
            "127.0.0.1:0",
            "--admin-address",
            "127.0.0.1:0",
            "--admin-address-path",
            admin_path.to_str().expect("utf-8 path"),
            "--no-upstreams",
        ],
        &dir,
    );
    let admin = admin_address(&admin_path, &demo);

    let ready = wait_for(Duration::from_secs(10), || {
        http_get(admin, "/ready")
            .ok()
            .filter(|(status, _)| *status == 200)
    });
    assert_eq!(
        ready.map(|(_, body)| body),
        Some("LIVE\n".to_string()),
        "stderr:\n{}",
        demo.stderr()
    );

    let dump = get_json(admin, "/config_dump?include_eds").expect("config dump");
    for name in ["demo-backend", "demo-grpc"] {
        let cluster = active_cluster(&dump, name).unwrap_or_else(|| panic!("{name}: {dump}"));
        assert_eq!(cluster["version_info"], "1");
        assert_eq!(cluster["client_status"], "ACKED");
    }
    let listeners = &section(&dump, "ListenersConfigDump")["dynamic_listeners"];
    assert_eq!(listeners[0]["name"], "ingress");
    assert_eq!(listeners[0]["active_state"]["listener"]["name"], "ingress");
    let routes = &section(&dump, "RoutesConfigDump")["dynamic_route_configs"];
    assert_eq!(routes[0]["route_config"]["name"], "local_route");
    let endpoints = section(&dump, "EndpointsConfigDump")["dynamic_endpoint_configs"]
        .as_array()
        .expect("endpoints");
    let backend = endpoints
        .iter()
        .find(|e| e["endpoint_config"]["cluster_name"] == "demo-backend")
        .expect("demo-backend endpoints");
    let lb_endpoints = backend["endpoint_config"]["endpoints"][0]["lb_endpoints"]
        .as_array()
        .expect("lb_endpoints");
    assert_eq!(lb_endpoints.len(), 3);

    // An edit becomes a new version (the file is polled every 200 ms).
    let edited = original
        .replace("version: \"1\"", "version: \"2\"")
        .replace("lb_policy: ROUND_ROBIN", "lb_policy: LEAST_REQUEST");
    std::fs::write(&snapshot, &edited).expect("edit snapshot");
    let updated = wait_for(Duration::from_secs(5), || {
        let dump = get_json(admin, "/config_dump")?;
        let cluster = active_cluster(&dump, "demo-backend")?.clone();
        (cluster["version_info"] == "2").then_some(cluster)
    })
    .unwrap_or_else(|| panic!("version 2 never arrived; stderr:\n{}", demo.stderr()));
    assert_eq!(updated["cluster"]["lb_policy"], "LEAST_REQUEST");

    // An invalid cluster is NACKed with its reason; version 2 stays active and visible.
    let invalid = edited.replace("version: \"2\"", "version: \"3\"").replacen(
        "connect_timeout: 1s",
        "connect_timeout: 0s",
        1,
    );
    std::fs::write(&snapshot, invalid).expect("break snapshot");
    let rejected = wait_for(Duration::from_secs(5), || {
        let dump = get_json(admin, "/config_dump")?;
        let cluster = active_cluster(&dump, "demo-backend")?.clone();
        cluster.get("error_state").is_some().then_some(cluster)
    })
    .unwrap_or_else(|| panic!("no NACK shown; stderr:\n{}", demo.stderr()));
    assert_eq!(rejected["client_status"], "NACKED");
    assert_eq!(rejected["version_info"], "2", "the last good version stays");
    assert_eq!(rejected["cluster"]["connect_timeout"], "1s");
    let error = &rejected["error_state"];
    assert_eq!(error["version_info"], "3");
    let details = error["details"].as_str().expect("details");
    assert!(details.contains("connect_timeout"), "{details}");
    assert_eq!(error["failed_configuration"]["connect_timeout"], "0s");
    // The other cluster of version 3 was valid and unchanged: still active.
    assert!(active_cluster(&get_json(admin, "/config_dump").expect("dump"), "demo-grpc").is_some());
}
