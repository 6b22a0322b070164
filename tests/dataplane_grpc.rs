//! gRPC through the real binary: a tonic client calls `grpc.health.v1.Health/Check` on a real
//! tonic server behind the proxy (HTTP/2 both sides), and sees the server's answer with its
//! status and trailers intact; a call to a cluster with no endpoints gets Envoy's trailers-only
//! `UNAVAILABLE`.

mod common;

use common::xds_proxy::{XdsProxy, endpoints, http_listener, http2_cluster, routes};
use outrider_upstream_server::GrpcUpstream;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use xds_conformance::Snapshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_pass_through_with_status_and_trailers() {
    let upstream = GrpcUpstream::start_local().await.expect("gRPC upstream");
    let snapshot = Snapshot::new("1")
        .with(http2_cluster("health"))
        .with(endpoints("health", &[upstream.addr()]))
        .with(http2_cluster("nowhere"))
        .with(endpoints("nowhere", &[]))
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(
            r#"  - match: { prefix: /grpc.health.v1.Health/, headers: [{ name: x-target, string_match: { exact: nowhere } }] }
    route: { cluster: nowhere }
  - match: { prefix: / }
    route: { cluster: health }"#,
        ));
    let proxy = XdsProxy::start("grpc", snapshot, &["--concurrency", "1"]).await;
    let port = proxy.listener_port("ingress").await;
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect to the proxy");
    let mut client = HealthClient::new(channel);

    // SERVING, then NOT_SERVING: the answer is the upstream's, message and status both.
    let response = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("Check: {e}; stderr:\n{}", proxy.process.stderr()));
    assert_eq!(response.get_ref().status(), ServingStatus::Serving);
    upstream.set_serving(false).await;
    let response = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("Check");
    assert_eq!(response.get_ref().status(), ServingStatus::NotServing);
    assert_eq!(upstream.checks_served(), 2);

    // A gRPC error from the upstream travels in the trailers: an unknown service is NOT_FOUND
    // with the server's own message.
    let status = client
        .check(HealthCheckRequest {
            service: "no.such.Service".to_string(),
        })
        .await
        .expect_err("an unknown service is an error");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(upstream.checks_served(), 3);

    // No endpoints: the proxy answers itself, trailers-only, UNAVAILABLE.
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request
        .metadata_mut()
        .insert("x-target", "nowhere".parse().expect("metadata"));
    let status = client
        .check(request)
        .await
        .expect_err("no endpoints is an error");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "no healthy upstream");
    assert_eq!(upstream.checks_served(), 3, "the upstream never saw it");
}
