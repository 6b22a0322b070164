//! Failure injection (deterministic, random, toggled at runtime), added latency, config
//! validation and shutdown, seen from a real client.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{BOTH, Proto, TestClient};
use http::{Request, StatusCode};
use http_body_util::Full;
use outrider_upstream_server::{Error, UpstreamConfig, UpstreamServer};

#[tokio::test]
async fn fail_every_fails_exactly_every_nth_request() {
    for proto in BOTH {
        let server = UpstreamServer::start_local(UpstreamConfig::new("a").with_fail_every(4))
            .await
            .expect("server starts");
        let client = TestClient::new(proto);
        let mut failed_at = Vec::new();
        for i in 1..=20 {
            let reply = client.get(&server.url("/")).await;
            if reply.status != StatusCode::OK {
                assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
                assert_eq!(reply.header("x-upstream-injected-failure"), Some("true"));
                assert_eq!(reply.header("x-upstream-name"), Some("a"));
                failed_at.push(i);
            }
        }
        assert_eq!(failed_at, vec![4, 8, 12, 16, 20], "{proto:?}");
        assert_eq!(server.requests_served(), 20);
        assert_eq!(server.failures_injected(), 5);
        // Early failures still leave the connection usable.
        assert_eq!(server.connections_accepted(), 1);
    }
}

#[tokio::test]
async fn fail_ratio_fails_about_that_share() {
    let server = UpstreamServer::start_local(UpstreamConfig::new("a").with_fail_ratio(0.3))
        .await
        .expect("server starts");
    let client = TestClient::new(Proto::H2c);
    let mut failures = 0;
    for _ in 0..1000 {
        if client.get(&server.url("/")).await.status == StatusCode::SERVICE_UNAVAILABLE {
            failures += 1;
        }
    }
    // 300 expected, standard deviation about 14.5: this bound is 7 deviations wide.
    assert!((200..=400).contains(&failures), "{failures} failures");
    assert_eq!(server.failures_injected(), failures);
}

#[tokio::test]
async fn failures_toggle_at_runtime() {
    let server = UpstreamServer::start_local(UpstreamConfig::new("a"))
        .await
        .expect("server starts");
    let client = TestClient::new(Proto::Http1);
    assert_eq!(client.get(&server.url("/")).await.status, StatusCode::OK);

    server.set_failing(true);
    for _ in 0..5 {
        let reply = client.get(&server.url("/echo")).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.text(), "injected failure from a\n");
    }
    server.set_fail_status(500).expect("valid status");
    assert_eq!(
        client.get(&server.url("/")).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert!(server.set_fail_status(42).is_err());

    server.set_failing(false);
    assert_eq!(client.get(&server.url("/")).await.status, StatusCode::OK);

    server.set_fail_ratio(1.0);
    assert_eq!(
        client.get(&server.url("/")).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    server.set_fail_ratio(0.0);
    assert_eq!(client.get(&server.url("/")).await.status, StatusCode::OK);

    // "Every n-th" counts from the moment it is set.
    server.set_fail_every(Some(3));
    let statuses: Vec<u16> = {
        let mut statuses = Vec::new();
        for _ in 0..6 {
            statuses.push(client.get(&server.url("/")).await.status.as_u16());
        }
        statuses
    };
    assert_eq!(statuses, vec![200, 200, 500, 200, 200, 500]);
    server.set_fail_every(None);
    for _ in 0..5 {
        assert_eq!(client.get(&server.url("/")).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn injected_failures_on_grpc_are_unavailable() {
    let server = UpstreamServer::start_local(UpstreamConfig::new("a"))
        .await
        .expect("server starts");
    server.set_failing(true);
    let request = Request::post(server.url("/pkg.Svc/Method"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
        .expect("valid request");
    let reply = TestClient::new(Proto::H2c).send(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("grpc-status"), Some("14"));
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn latency_is_added_to_every_response() {
    let latency = Duration::from_millis(60);
    let server = UpstreamServer::start_local(UpstreamConfig::new("a").with_latency(latency))
        .await
        .expect("server starts");
    for proto in BOTH {
        let started = tokio::time::Instant::now();
        let reply = TestClient::new(proto).get(&server.url("/")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(started.elapsed() >= latency);
    }
}

#[tokio::test]
async fn invalid_configs_are_refused() {
    for config in [
        UpstreamConfig::new("a").with_fail_ratio(-0.1),
        UpstreamConfig::new("a").with_fail_status(99),
        UpstreamConfig::new("a").with_fail_every(0),
        UpstreamConfig::new("bad\r\nname"),
    ] {
        let result = UpstreamServer::start_local(config.clone()).await;
        assert!(
            matches!(result, Err(Error::InvalidConfig(_))),
            "{config:?} was accepted"
        );
    }
}

#[test]
fn starting_outside_a_runtime_is_an_error_not_a_panic() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let result = UpstreamServer::start_std(listener, UpstreamConfig::new("a"));
    assert!(matches!(result, Err(Error::NoRuntime)));
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_then_refuses_connections() {
    let server = UpstreamServer::start_local(UpstreamConfig::new("a"))
        .await
        .expect("server starts");
    let addr = server.addr();
    let url = server.url("/delay/200");
    let in_flight = tokio::spawn(async move { TestClient::new(Proto::Http1).get(&url).await });
    common::eventually("the request to arrive", || server.requests_served() == 1).await;
    server.shutdown().await;
    let reply = in_flight.await.expect("client task");
    assert_eq!(reply.status, StatusCode::OK);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let server = UpstreamServer::start_local(UpstreamConfig::new("a"))
        .await
        .expect("server starts");
    let addr = server.addr();
    drop(server);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
