//! Every endpoint of the upstream server, over HTTP/1.1 and h2c, with a real hyper client.

mod common;

use bytes::Bytes;
use common::{BOTH, Proto, TestClient, eventually};
use http::{Request, StatusCode};
use http_body_util::Full;
use outrider_upstream_server::echo::EchoedRequest;
use outrider_upstream_server::{UpstreamConfig, UpstreamServer};

async fn server(name: &str) -> UpstreamServer {
    UpstreamServer::start_local(UpstreamConfig::new(name))
        .await
        .expect("server starts")
}

#[tokio::test]
async fn root_says_hello_with_identifying_headers() {
    let server = server("a").await;
    for proto in BOTH {
        let reply = TestClient::new(proto).get(&server.url("/")).await;
        assert_eq!(reply.status, StatusCode::OK, "{proto:?}");
        assert_eq!(reply.text(), "hello from a\n");
        assert_eq!(reply.header("x-upstream-name"), Some("a"));
        assert_eq!(reply.header("server"), Some("outrider-upstream"));
        assert_eq!(reply.header("x-upstream-injected-failure"), None);
    }
    // Any path without an endpoint answers too, so routing tests can use arbitrary prefixes.
    let reply = TestClient::new(Proto::Http1)
        .get(&server.url("/service-a/anything"))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "hello from a\n");
}

#[tokio::test]
async fn echo_describes_the_request_as_received() {
    let server = server("echoer").await;
    for (proto, version) in [(Proto::Http1, "HTTP/1.1"), (Proto::H2c, "HTTP/2.0")] {
        let client = TestClient::new(proto);
        let request = Request::post(server.url("/echo?x=1&y=two"))
            .header("x-request-id", "abc-123")
            .header("x-forwarded-for", "10.0.0.1")
            .header("x-multi", "one")
            .header("x-multi", "two")
            .body(Full::new(Bytes::from_static(b"payload")))
            .expect("valid request");
        let reply = client.send(request).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let echoed: EchoedRequest = serde_json::from_slice(&reply.body).expect("echo JSON");
        assert_eq!(echoed.upstream, "echoer");
        assert_eq!(echoed.method, "POST");
        assert_eq!(echoed.path, "/echo");
        assert_eq!(echoed.query.as_deref(), Some("x=1&y=two"));
        assert_eq!(echoed.version, version, "{proto:?}");
        assert_eq!(echoed.authority, Some(server.addr().to_string()));
        assert_eq!(echoed.header("x-request-id"), Some("abc-123"));
        assert_eq!(echoed.header("X-Forwarded-For"), Some("10.0.0.1"));
        assert_eq!(echoed.header_all("x-multi"), vec!["one", "two"]);
        assert_eq!(echoed.body_length, 7);
        assert_eq!(echoed.body.as_deref(), Some("payload"));
        assert!(echoed.remote_addr.starts_with("127.0.0.1:"));

        // A keep-alive client reuses its connection, and /echo shows it.
        let again = client.get(&server.url("/echo")).await;
        let again: EchoedRequest = serde_json::from_slice(&again.body).expect("echo JSON");
        assert_eq!(again.connection, echoed.connection, "{proto:?}");
        assert_eq!(again.method, "GET");
        assert_eq!(again.query, None);
    }
    assert_eq!(server.requests_for("/echo"), 4);
    assert_eq!(server.connections_accepted(), 2);
}

#[tokio::test]
async fn status_answers_the_requested_code() {
    let server = server("a").await;
    for proto in BOTH {
        let client = TestClient::new(proto);
        for code in [200u16, 204, 418, 500, 503] {
            let reply = client.get(&server.url(&format!("/status/{code}"))).await;
            assert_eq!(reply.status.as_u16(), code, "{proto:?}");
            assert_eq!(reply.header("x-upstream-name"), Some("a"));
        }
        for bad in ["abc", "101", "1000", ""] {
            let reply = client.get(&server.url(&format!("/status/{bad}"))).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "/status/{bad}");
        }
    }
}

#[tokio::test]
async fn immediate_health_check_fail_answers_with_envoys_header() {
    let server = server("a").await;
    for proto in BOTH {
        let reply = TestClient::new(proto)
            .get(&server.url("/immediate-health-check-fail"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{proto:?}");
        assert_eq!(
            reply.header("x-envoy-immediate-health-check-fail"),
            Some("true")
        );
        assert_eq!(reply.header("x-upstream-name"), Some("a"));
    }
    // Other answers do not carry it.
    let reply = TestClient::new(Proto::Http1).get(&server.url("/")).await;
    assert_eq!(reply.header("x-envoy-immediate-health-check-fail"), None);
}

#[tokio::test]
async fn delay_waits_then_answers() {
    let server = server("a").await;
    for proto in BOTH {
        let started = tokio::time::Instant::now();
        let reply = TestClient::new(proto).get(&server.url("/delay/50")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(started.elapsed() >= std::time::Duration::from_millis(50));
    }
    let reply = TestClient::new(Proto::Http1)
        .get(&server.url("/delay/999999999"))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bytes_returns_exactly_n_bytes() {
    let server = server("a").await;
    for proto in BOTH {
        let client = TestClient::new(proto);
        for n in [0usize, 1, 1024, 65_536, 200_000] {
            let reply = client.get(&server.url(&format!("/bytes/{n}"))).await;
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(reply.body.len(), n, "{proto:?} /bytes/{n}");
            assert_eq!(
                reply.header("content-type"),
                Some("application/octet-stream")
            );
        }
        let reply = client.get(&server.url("/bytes/-1")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn post_echoes_the_body_back() {
    let server = server("a").await;
    let body = Bytes::from(vec![7u8; 100_000]);
    for proto in BOTH {
        let request = Request::post(server.url("/upload"))
            .header("content-type", "application/x-test")
            .body(Full::new(body.clone()))
            .expect("valid request");
        let reply = TestClient::new(proto).send(request).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, body, "{proto:?}");
        assert_eq!(reply.header("content-type"), Some("application/x-test"));
    }
}

#[tokio::test]
async fn counts_requests_per_path_and_connections() {
    let server = server("a").await;
    let client = TestClient::new(Proto::Http1);
    for _ in 0..3 {
        client.get(&server.url("/bytes/10")).await;
    }
    client.get(&server.url("/?q=ignored")).await;
    let counts = server.path_counts();
    assert_eq!(counts.get("/bytes/10"), Some(&3));
    assert_eq!(counts.get("/"), Some(&1));
    assert_eq!(server.requests_served(), 4);
    assert_eq!(server.connections_accepted(), 1);
    assert_eq!(server.active_connections(), 1);
    drop(client);
    eventually("the connection to close", || {
        server.active_connections() == 0
    })
    .await;
}
