//! DNS clusters end to end: the real binary resolves a STRICT_DNS and a LOGICAL_DNS cluster
//! whose endpoint is `localhost:<port>` of a real upstream on 127.0.0.1, and serves through them.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::xds_proxy::{XdsProxy, http_listener, routes, yaml};
use common::{http_get, wait_for};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use outrider_upstream_server::{UpstreamConfig, UpstreamServer};
use xds_conformance::Snapshot;

/// A `kind` DNS cluster with the one endpoint `localhost:port`, IPv4 only (localhost may also
/// be ::1, where the upstream does not listen).
fn localhost_cluster(name: &str, kind: &str, port: u16) -> Cluster {
    yaml(&format!(
        r#"
name: {name}
type: {kind}
connect_timeout: 1s
dns_lookup_family: V4_ONLY
load_assignment:
  cluster_name: {name}
  endpoints:
  - lb_endpoints:
    - endpoint: {{ address: {{ socket_address: {{ address: localhost, port_value: {port} }} }} }}
"#
    ))
}

/// Waits until `GET path` answers 200, and returns the body.
async fn first_success(proxy: SocketAddr, path: &'static str) -> Option<String> {
    tokio::task::spawn_blocking(move || {
        wait_for(Duration::from_secs(10), || match http_get(proxy, path) {
            Ok((200, body)) => Some(body),
            _ => None,
        })
    })
    .await
    .expect("poll task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_and_logical_dns_clusters_resolve_and_serve() {
    let strict = UpstreamServer::start_local(UpstreamConfig::new("strict-upstream"))
        .await
        .expect("upstream");
    let logical = UpstreamServer::start_local(UpstreamConfig::new("logical-upstream"))
        .await
        .expect("upstream");
    let snapshot = Snapshot::new("1")
        .with(localhost_cluster("strict", "STRICT_DNS", strict.addr().port()))
        .with(localhost_cluster(
            "logical",
            "LOGICAL_DNS",
            logical.addr().port(),
        ))
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(
            "  - match: { prefix: /strict }\n    route: { cluster: strict }\n  - match: { prefix: /logical }\n    route: { cluster: logical }",
        ));
    let proxy = XdsProxy::start("dataplane-dns", snapshot, &["--concurrency", "1"]).await;
    let ingress: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("ingress").await).into();

    for (path, upstream) in [
        ("/strict", "strict-upstream"),
        ("/logical", "logical-upstream"),
    ] {
        let body = first_success(ingress, path).await.unwrap_or_else(|| {
            panic!(
                "{path} never answered 200; stderr:\n{}",
                proxy.process.stderr()
            )
        });
        assert_eq!(body, format!("hello from {upstream}\n"));
        // Resolved once, the cluster keeps serving.
        for _ in 0..5 {
            let (status, body) = http_get(ingress, path).expect("request");
            assert_eq!((status, body), (200, format!("hello from {upstream}\n")));
        }
    }
    assert!(strict.requests_served() >= 6);
    assert!(logical.requests_served() >= 6);
}
