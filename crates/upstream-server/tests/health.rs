//! The scripted health endpoints: `/healthz` over HTTP/1.1 and h2c, the gRPC health check, and
//! checks that wait for the test to answer them.

mod common;

use common::{BOTH, Proto, TestClient, eventually};
use http::StatusCode;
use outrider_upstream_server::{HealthAnswer, UpstreamConfig, UpstreamServer};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn server() -> UpstreamServer {
    UpstreamServer::start_local(UpstreamConfig::new("hc"))
        .await
        .expect("server starts")
}

#[tokio::test]
async fn healthz_answers_from_the_script_and_is_not_traffic() {
    for proto in BOTH {
        let server = server().await;
        server.set_failing(true);
        let client = TestClient::new(proto);
        let url = server.url("/healthz");
        assert_eq!(client.get(&url).await.status, StatusCode::OK, "{proto:?}");
        server.queue_health([HealthAnswer::Status(503), HealthAnswer::Degraded]);
        assert_eq!(
            client.get(&url).await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let degraded = client.get(&url).await;
        assert_eq!(degraded.status, StatusCode::OK);
        assert_eq!(degraded.header("x-envoy-degraded"), Some("true"));
        assert_eq!(degraded.header("x-upstream-name"), Some("hc"));
        // Back to the standing answer.
        let reply = client.get(&url).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("x-envoy-degraded"), None);
        assert_eq!(server.health_checks_answered(), 4);
        assert_eq!(server.requests_served(), 0, "health checks are not traffic");
        let seen = server.last_health_request().expect("a request");
        assert_eq!(seen.method, "GET");
        assert_eq!(seen.path, "/healthz");
        assert!(seen.authority.is_some());
        assert_eq!(seen.grpc_service, None);
    }
}

#[tokio::test]
async fn without_a_standing_answer_checks_wait_for_one() {
    let server = server().await;
    server.set_health(None);
    let url = server.url("/healthz");
    let pending = tokio::spawn(async move { TestClient::new(Proto::Http1).get(&url).await });
    eventually("the check to wait", || server.health_checks_waiting() == 1).await;
    assert_eq!(server.health_checks_answered(), 0);
    server.queue_health([HealthAnswer::Status(500)]);
    let reply = pending.await.expect("client task");
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(server.health_checks_waiting(), 0);
    assert_eq!(server.health_checks_answered(), 1);
}

#[tokio::test]
async fn a_reset_answer_closes_the_connection() {
    let server = server().await;
    server.queue_health([HealthAnswer::Reset]);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let uri = server.url("/healthz").parse().expect("uri");
    assert!(client.get(uri).await.is_err(), "no response");
    assert_eq!(server.health_checks_answered(), 1);
}

#[tokio::test]
async fn grpc_health_checks_follow_the_same_script() {
    let server = server().await;
    let channel = Channel::from_shared(server.url(""))
        .expect("url")
        .connect()
        .await
        .expect("connects");
    let mut client = HealthClient::new(channel);
    let check = |service: &str| HealthCheckRequest {
        service: service.to_string(),
    };
    let response = client.check(check("api")).await.expect("check");
    assert_eq!(response.get_ref().status(), ServingStatus::Serving);
    let seen = server.last_health_request().expect("a request");
    assert_eq!(seen.grpc_service.as_deref(), Some("api"));
    assert_eq!(seen.path, "/grpc.health.v1.Health/Check");

    server.queue_health([HealthAnswer::Status(503), HealthAnswer::Degraded]);
    let response = client.check(check("")).await.expect("check");
    assert_eq!(response.get_ref().status(), ServingStatus::NotServing);
    let response = client.check(check("")).await.expect("check");
    assert_eq!(response.get_ref().status(), ServingStatus::Serving);

    server.queue_health([HealthAnswer::Reset]);
    assert!(client.check(check("")).await.is_err());
    assert_eq!(server.health_checks_answered(), 4);
    assert_eq!(server.requests_served(), 0);
}
