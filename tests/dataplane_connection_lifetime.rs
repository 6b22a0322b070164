//! Upstream connection lifetimes through the real binary: the cluster's
//! `common_http_protocol_options` `max_requests_per_connection` and `idle_timeout` retire
//! HTTP/1.1 and HTTP/2 connections, counted in Envoy's `upstream_cx_max_requests` and
//! `upstream_cx_idle_timeout`, and a retired connection really closes (`upstream_cx_active`).

mod common;

use std::time::Duration;

use common::xds_proxy::{
    XdsProxy, cluster, endpoints, eventually, get, http_listener, http1_client, routes,
};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use outrider_upstream_server::{UpstreamConfig, UpstreamServer};
use xds_conformance::Snapshot;

/// A cluster whose upstream protocol options are `protocol` (`http_protocol_options` or
/// `http2_protocol_options`) and whose common options are `common`.
fn cluster_with(name: &str, protocol: &str, common: &str) -> Cluster {
    cluster(
        name,
        &format!(
            r#"typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    common_http_protocol_options: {common}
    explicit_http_config: {{ {protocol}: {{}} }}"#
        ),
    )
}

async fn start(test: &str, cluster: Cluster, upstream: &UpstreamServer) -> (XdsProxy, String) {
    let snapshot = Snapshot::new("1")
        .with(cluster)
        .with(endpoints("backend", &[upstream.addr()]))
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: backend }",
        ));
    let proxy = XdsProxy::start(test, snapshot, &["--concurrency", "1"]).await;
    let base = format!("http://127.0.0.1:{}", proxy.listener_port("ingress").await);
    (proxy, base)
}

async fn max_requests_per_connection_retires_connections(protocol: &str, test: &str) {
    let upstream = UpstreamServer::start_local(UpstreamConfig::new("backend"))
        .await
        .expect("upstream");
    let backend = cluster_with("backend", protocol, "{ max_requests_per_connection: 2 }");
    let (proxy, base) = start(test, backend, &upstream).await;
    let client = http1_client();
    // One after the other: connections of 2, 2 and 1 requests.
    for i in 0..5 {
        let answer = get(&client, &format!("{base}/echo?n={i}")).await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    assert_eq!(upstream.requests_for("/echo"), 5);
    assert_eq!(
        proxy.stat("cluster.backend.upstream_cx_total").await,
        Some(3)
    );
    assert_eq!(
        proxy.stat("cluster.backend.upstream_cx_max_requests").await,
        Some(2)
    );
    // The retired ones close once their last response is read.
    let mut active = None;
    let closed = eventually(Duration::from_secs(5), || {
        active = proxy.stat_blocking("cluster.backend.upstream_cx_active");
        active == Some(1)
    })
    .await;
    assert!(closed, "upstream_cx_active stayed {active:?}");
}

async fn idle_timeout_closes_idle_connections(protocol: &str, test: &str) {
    let upstream = UpstreamServer::start_local(UpstreamConfig::new("backend"))
        .await
        .expect("upstream");
    let backend = cluster_with("backend", protocol, "{ idle_timeout: 0.3s }");
    let (proxy, base) = start(test, backend, &upstream).await;
    let client = http1_client();
    assert_eq!(get(&client, &format!("{base}/echo")).await.status, 200);
    // Closed between 300 and ~340 ms after its request; well within 5 s.
    let mut seen = (None, None);
    let closed = eventually(Duration::from_secs(5), || {
        seen = (
            proxy.stat_blocking("cluster.backend.upstream_cx_idle_timeout"),
            proxy.stat_blocking("cluster.backend.upstream_cx_active"),
        );
        seen == (Some(1), Some(0))
    })
    .await;
    assert!(closed, "(idle_timeout, active) stayed {seen:?}");
    // The next request opens a new connection.
    assert_eq!(get(&client, &format!("{base}/echo")).await.status, 200);
    assert_eq!(
        proxy.stat("cluster.backend.upstream_cx_total").await,
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_max_requests_per_connection() {
    max_requests_per_connection_retires_connections("http_protocol_options", "h1-max-requests")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_max_requests_per_connection() {
    max_requests_per_connection_retires_connections("http2_protocol_options", "h2-max-requests")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_idle_timeout() {
    idle_timeout_closes_idle_connections("http_protocol_options", "h1-idle-timeout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_idle_timeout() {
    idle_timeout_closes_idle_connections("http2_protocol_options", "h2-idle-timeout").await;
}
