//! The connection manager's and the routes' stream timeouts through the real binary, seen by
//! the client: `stream_idle_timeout` and a route's `idle_timeout`, `request_timeout`,
//! `max_stream_duration` (connection manager and route, the route one switching the route
//! `timeout` off), `grpc-timeout` as a stream's limit, and a response that stalls after its
//! head being cut off.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::raw_http::{raw_exchange, raw_exchange_within, status_line};
use common::xds_proxy::{
    XdsProxy, backend_snapshot, cluster, endpoints, get, get_with, h2c_client, http_listener,
    http1_client, http2_cluster, routes,
};
use outrider_upstream_server::{RECEIVED_GRPC_TIMEOUT_HEADER, UpstreamConfig, UpstreamServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROUTES: &str = r#"  - match: { prefix: /no-idle/ }
    route: { cluster: backend, prefix_rewrite: /, timeout: 0s, idle_timeout: 0s }
  - match: { prefix: /route-idle/ }
    route: { cluster: backend, prefix_rewrite: /, timeout: 0s, idle_timeout: 0.3s }
  - match: { prefix: /duration/ }
    route: { cluster: backend, prefix_rewrite: /, max_stream_duration: { max_stream_duration: 0.3s } }
  - match: { prefix: /new-timeouts/ }
    route: { cluster: backend, prefix_rewrite: /, timeout: 0.1s, max_stream_duration: { max_stream_duration: 5s } }
  - match: { prefix: /slow-grpc/ }
    route: { cluster: slow, timeout: 0s, max_stream_duration: { grpc_timeout_header_max: 0s } }
  - match: { prefix: /capped-grpc/ }
    route: { cluster: backend-h2, max_stream_duration: { grpc_timeout_header_max: 1s } }
  - match: { prefix: /stalling/ }
    route: { cluster: stalling, timeout: 0s }
  - match: { prefix: / }
    route: { cluster: backend, timeout: 0s }"#;

/// An upstream that answers every request with a head promising 100 bytes, sends 5, and
/// then sends nothing more while the connection lasts.
async fn stalling_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                let head = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello";
                if stream.write_all(head).await.is_ok() {
                    // Hold the connection open without a byte more until the proxy gives up.
                    let _ = stream.read(&mut buffer).await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_limits_answer_before_the_response() {
    let (_backend, snapshot) = backend_snapshot().await;
    let backend_h2 = UpstreamServer::start_local(UpstreamConfig::new("backend-h2"))
        .await
        .expect("upstream");
    let slow = UpstreamServer::start_local(
        UpstreamConfig::new("slow").with_latency(Duration::from_secs(3)),
    )
    .await
    .expect("upstream");
    let stalling = stalling_upstream().await;
    let snapshot = snapshot
        .with(http2_cluster("slow"))
        .with(endpoints("slow", &[slow.addr()]))
        .with(http2_cluster("backend-h2"))
        .with(endpoints("backend-h2", &[backend_h2.addr()]))
        .with(cluster("stalling", ""))
        .with(endpoints("stalling", &[stalling]))
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(http_listener(
            "idle",
            0,
            "idle",
            "      stream_idle_timeout: 0.3s",
        ))
        .with(http_listener(
            "request",
            0,
            "request",
            "      request_timeout: 0.3s",
        ))
        .with(http_listener(
            "duration",
            0,
            "duration",
            "      common_http_protocol_options: { max_stream_duration: 0.3s }",
        ))
        .with(routes(ROUTES));
    let proxy = XdsProxy::start("stream-timeouts", snapshot, &["--concurrency", "1"]).await;
    let ingress_port: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("ingress").await).into();
    let idle_port: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("idle").await).into();
    let request_port: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("request").await).into();
    let duration_port = proxy.listener_port("duration").await;
    let ingress = format!("http://{ingress_port}");
    let idle = format!("http://{idle_port}");
    let duration = format!("http://127.0.0.1:{duration_port}");
    let client = http1_client();

    // Idle: the whole request is in, the upstream is silent: 504 "stream timeout".
    let started = Instant::now();
    let answer = get(&client, &format!("{idle}/delay/3000")).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (504, "stream timeout")
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        proxy.stat("http.idle.downstream_rq_idle_timeout").await,
        Some(1)
    );
    // A route's idle_timeout of 0 turns the listener's off; a route's own applies anywhere.
    let answer = get(&client, &format!("{idle}/no-idle/delay/600")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let answer = get(&client, &format!("{ingress}/route-idle/delay/3000")).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (504, "stream timeout")
    );
    // Without the whole request, idle gets 408 and the connection closes.
    let partial = b"POST /echo HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\nab";
    let (response, closed) = tokio::task::block_in_place(|| raw_exchange(idle_port, partial));
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 408 Request Timeout",
        "{response}"
    );
    assert!(response.ends_with("stream timeout"), "{response}");
    assert!(closed, "the connection stayed open after a 408");

    // Request timeout: the body never completes: 408 "request timeout", closed.
    let (response, closed) = tokio::task::block_in_place(|| raw_exchange(request_port, partial));
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 408 Request Timeout",
        "{response}"
    );
    assert!(response.ends_with("request timeout"), "{response}");
    assert!(closed, "the connection stayed open after a 408");
    assert_eq!(
        proxy.stat("http.request.downstream_rq_timeout").await,
        Some(1)
    );
    // A request that arrived whole is not timed out by it, however slow the upstream.
    let whole =
        b"POST /delay/600 HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\nconnection: close\r\n\r\nab";
    let (response, _) = tokio::task::block_in_place(|| raw_exchange(request_port, whole));
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");

    // Maximum stream duration, from the connection manager and from a route.
    let answer = get(&client, &format!("{duration}/delay/3000")).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (504, "downstream duration timeout")
    );
    assert_eq!(
        proxy
            .stat("http.duration.downstream_rq_max_duration_reached")
            .await,
        Some(1)
    );
    let answer = get(&client, &format!("{ingress}/duration/delay/3000")).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (504, "downstream duration timeout")
    );
    // With max_stream_duration on the route, its 0.1 s timeout does not apply (Envoy's
    // "new timeouts").
    let answer = get(&client, &format!("{ingress}/new-timeouts/delay/500")).await;
    assert_eq!(answer.status, 200, "{answer:?}");

    // grpc-timeout as the stream's limit: DEADLINE_EXCEEDED from the proxy...
    let grpc = [
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("grpc-timeout", "200m"),
    ];
    let h2 = h2c_client();
    let started = Instant::now();
    let answer = get_with(&h2, &format!("{ingress}/slow-grpc/x.Echo/Call"), &grpc).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("grpc-status"), Some("4"), "{answer:?}");
    assert_eq!(
        answer.header("grpc-message"),
        Some("downstream duration timeout")
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // ... and the upstream told what is left of it, capped by the route.
    let long = [
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("grpc-timeout", "10S"),
    ];
    let answer = get_with(&h2, &format!("{ingress}/capped-grpc/x.Echo/Call"), &long).await;
    assert_eq!(
        answer.header(RECEIVED_GRPC_TIMEOUT_HEADER),
        Some("1000m"),
        "{answer:?}"
    );

    // After the head, an idle stream is cut off: the client never gets the promised body.
    let stalled = b"GET /stalling/ HTTP/1.1\r\nhost: a\r\n\r\n";
    let started = Instant::now();
    let (response, closed) = tokio::task::block_in_place(|| raw_exchange(idle_port, stalled));
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
    assert!(response.ends_with("hello"), "{response}");
    assert!(closed, "the stalled response was not cut off");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Under Envoy's 5 min default the same response just waits.
    let (response, closed) = tokio::task::block_in_place(|| {
        raw_exchange_within(ingress_port, stalled, Duration::from_millis(900))
    });
    assert!(response.ends_with("hello"), "{response}");
    assert!(!closed, "cut off without an idle timeout");
}
