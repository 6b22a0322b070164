//! gRPC: a real tonic client against the minimal unary echo of `UpstreamServer` and against the
//! `grpc.health.v1.Health` service of `GrpcUpstream`.

mod common;

use bytes::Bytes;
use common::{Proto, TestClient};
use http::{Request, StatusCode};
use http_body_util::Full;
use outrider_upstream_server::{GrpcUpstream, UpstreamConfig, UpstreamServer};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

async fn channel(url: String) -> Channel {
    Channel::from_shared(url)
        .expect("valid url")
        .connect()
        .await
        .expect("connects")
}

#[tokio::test]
async fn tonic_unary_call_is_echoed() {
    let server = UpstreamServer::start_local(UpstreamConfig::new("grpc-a"))
        .await
        .expect("server starts");
    let mut grpc = tonic::client::Grpc::new(channel(server.url("")).await);
    grpc.ready().await.expect("ready");
    let message = HealthCheckRequest {
        service: "echo me".into(),
    };
    let response = grpc
        .unary(
            tonic::Request::new(message.clone()),
            http::uri::PathAndQuery::from_static("/test.Echo/Echo"),
            tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckRequest>::default(),
        )
        .await
        .expect("unary call succeeds");
    assert_eq!(
        response
            .metadata()
            .get("x-upstream-name")
            .map(|v| v.to_str().ok()),
        Some(Some("grpc-a"))
    );
    assert_eq!(response.into_inner(), message);
    assert_eq!(server.requests_for("/test.Echo/Echo"), 1);
}

#[tokio::test]
async fn raw_grpc_request_gets_the_message_and_an_ok_trailer() {
    let server = UpstreamServer::start_local(UpstreamConfig::new("a"))
        .await
        .expect("server starts");
    let framed = Bytes::from_static(&[0, 0, 0, 0, 3, 1, 2, 3]);
    let request = Request::post(server.url("/pkg.Svc/Method"))
        .header("content-type", "application/grpc+proto")
        .header("te", "trailers")
        .body(Full::new(framed.clone()))
        .expect("valid request");
    let reply = TestClient::new(Proto::H2c).send(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/grpc+proto"));
    assert_eq!(reply.body, framed);
    let trailers = reply.trailers.expect("trailers");
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );

    // A body that is not one length-prefixed message is an INTERNAL error.
    let request = Request::post(server.url("/pkg.Svc/Method"))
        .header("content-type", "application/grpc")
        .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 9, 1])))
        .expect("valid request");
    let reply = TestClient::new(Proto::H2c).send(request).await;
    assert_eq!(reply.header("grpc-status"), Some("13"));
}

#[tokio::test]
async fn health_service_reports_and_flips_status() {
    let upstream = GrpcUpstream::start_local().await.expect("starts");
    let mut client = HealthClient::new(channel(upstream.url()).await);
    let check = |service: &str| {
        tonic::Request::new(HealthCheckRequest {
            service: service.into(),
        })
    };
    let status = |response: tonic::Response<HealthCheckResponse>| response.into_inner().status;

    let response = client.check(check("")).await.expect("check");
    assert_eq!(status(response), ServingStatus::Serving as i32);

    let mut watch = client.watch(check("")).await.expect("watch").into_inner();
    let first = watch.message().await.expect("stream").expect("message");
    assert_eq!(first.status, ServingStatus::Serving as i32);

    upstream.set_serving(false).await;
    let response = client.check(check("")).await.expect("check");
    assert_eq!(status(response), ServingStatus::NotServing as i32);
    let changed = watch.message().await.expect("stream").expect("message");
    assert_eq!(changed.status, ServingStatus::NotServing as i32);

    // Unknown services are NOT_FOUND until a test declares them.
    let unknown = client
        .check(check("my.Service"))
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    upstream.set_service_serving("my.Service", true).await;
    let response = client.check(check("my.Service")).await.expect("check");
    assert_eq!(status(response), ServingStatus::Serving as i32);

    assert_eq!(upstream.checks_served(), 5);
    drop(watch);
    upstream.shutdown().await;
}
