//! The operator's POST endpoints through the real binary: `/drain_listeners` (all, or
//! `?inboundonly` as Istio's agent calls it at shutdown) and `/logging?level=`.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::xds_proxy::{XdsProxy, cluster, endpoints, eventually, http_listener, routes};
use common::{http_get, http_post};
use outrider_upstream_server::{UpstreamConfig, UpstreamServer};
use xds_conformance::Snapshot;

fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_listeners_inbound_only_then_all_and_they_stay_drained() {
    let backend = UpstreamServer::start_local(UpstreamConfig::new("backend"))
        .await
        .expect("upstream");
    let mut inbound = http_listener("inbound", 0, "inbound", "");
    inbound.traffic_direction =
        envoy_types::pb::envoy::config::core::v3::TrafficDirection::Inbound as i32;
    let snapshot = Snapshot::new("1")
        .with(cluster("backend", ""))
        .with(endpoints("backend", &[backend.addr()]))
        .with(inbound)
        .with(http_listener("outbound", 0, "outbound", ""))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: backend }",
        ));
    let proxy = XdsProxy::start("drain-listeners", snapshot, &["--concurrency", "1"]).await;
    let inbound: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("inbound").await).into();
    let outbound: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("outbound").await).into();
    let admin = proxy.admin;

    // Mutating: GET is refused, as in Envoy.
    let (status, _) =
        tokio::task::block_in_place(|| http_get(admin, "/drain_listeners")).expect("admin");
    assert_eq!(status, 400);

    let (status, body) =
        tokio::task::block_in_place(|| http_post(admin, "/drain_listeners?inboundonly&graceful"))
            .expect("admin");
    assert_eq!((status, body.as_str()), (200, "OK\n"));
    assert!(
        eventually(Duration::from_secs(5), || !accepts(inbound)).await,
        "the inbound listener still accepts"
    );
    assert!(accepts(outbound), "the outbound listener keeps serving");
    let (_, listeners) =
        tokio::task::block_in_place(|| http_get(admin, "/listeners")).expect("admin");
    assert!(!listeners.contains("inbound::"), "{listeners}");
    assert!(listeners.contains("outbound::"), "{listeners}");

    tokio::task::block_in_place(|| http_post(admin, "/drain_listeners")).expect("admin");
    assert!(
        eventually(Duration::from_secs(5), || !accepts(outbound)).await,
        "the outbound listener still accepts"
    );
    // A later LDS update does not bring them back: draining precedes shutdown.
    proxy.server.update_snapshot(|snapshot| {
        snapshot.set_version("2");
        snapshot.insert(&http_listener("outbound", 0, "outbound-v2", ""));
    });
    proxy.wait_for_version("lds", "2").await;
    let (_, listeners) =
        tokio::task::block_in_place(|| http_get(admin, "/listeners")).expect("admin");
    assert_eq!(listeners.trim(), "", "{listeners}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_sets_every_loggers_level() {
    let snapshot = Snapshot::new("1").with(cluster("backend", ""));
    let proxy = XdsProxy::start("logging", snapshot, &["--concurrency", "1", "-l", "info"]).await;
    let admin = proxy.admin;
    let post = |path: &str| {
        let path = path.to_string();
        tokio::task::block_in_place(move || http_post(admin, &path)).expect("admin")
    };

    assert_eq!(
        post("/logging"),
        (200, "active loggers:\n  all: info\n".to_string())
    );
    assert!(!proxy.process.stderr().contains("DEBUG"));
    assert_eq!(
        post("/logging?level=debug"),
        (200, "active loggers:\n  all: debug\n".to_string())
    );
    // Debug lines appear: the xDS client logs each publication at debug.
    proxy.server.update_snapshot(|snapshot| {
        snapshot.set_version("2");
        snapshot.insert(&cluster("other", ""));
    });
    proxy.wait_for_version("cds", "2").await;
    assert!(
        eventually(Duration::from_secs(5), || proxy
            .process
            .stderr()
            .contains("DEBUG"))
        .await,
        "no debug line after /logging?level=debug:\n{}",
        proxy.process.stderr()
    );
    assert_eq!(post("/logging?level=loud").0, 400);
    assert_eq!(
        post("/logging?upstream=debug").0,
        400,
        "Envoy's per-logger names are not ours"
    );
    let (status, _) = tokio::task::block_in_place(|| http_get(admin, "/logging")).expect("admin");
    assert_eq!(status, 400, "mutating: GET is refused");
}

/// `admin.allow_paths`: only the paths (with their query) the matchers accept are served; the
/// rest get Envoy's 403, POST endpoints included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_serves_only_the_allowed_paths() {
    let proxy = XdsProxy::start_with(
        "admin-allow-paths",
        Snapshot::new("1"),
        &["--concurrency", "1"],
        |text| {
            let limited = text.replacen(
                "admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }",
                "admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } }, allow_paths: [ { exact: /ready }, { prefix: /stats } ] }",
                1,
            );
            assert_ne!(limited, text, "the test bootstrap's admin line");
            limited
        },
    )
    .await;
    let admin = proxy.admin;
    let get = |path: &'static str| {
        tokio::task::block_in_place(|| http_get(admin, path))
            .expect("admin")
            .0
    };
    assert!(
        eventually(Duration::from_secs(10), || get("/ready") == 200).await,
        "/ready is allowed"
    );
    assert_eq!(get("/stats"), 200);
    assert_eq!(get("/stats?format=json"), 200, "a prefix covers the query");
    assert_eq!(
        get("/ready?x=1"),
        403,
        "an exact path with a query is another path"
    );
    assert_eq!(get("/config_dump"), 403);
    assert_eq!(get("/clusters"), 403);
    let (status, _) =
        tokio::task::block_in_place(|| http_post(admin, "/quitquitquit")).expect("admin");
    assert_eq!(status, 403);
    assert_eq!(
        get("/ready"),
        200,
        "still running after a refused /quitquitquit"
    );
}
