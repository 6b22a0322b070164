//! Limits on a downstream connection through the real binary: `max_requests_per_connection`
//! (the last response says `connection: close`, HTTP/2 clients get GOAWAY and move to a new
//! connection), `max_connection_duration` and `idle_timeout` for HTTP/2, as Envoy retires
//! connections; and `max_headers_count` on a request.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::raw_http::raw_exchange;
use common::xds_proxy::{
    XdsProxy, backend_snapshot, eventually, get, get_with, h2c_client, http_listener, http1_client,
    routes,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_retired_by_request_count_and_age() {
    let (_backend, snapshot) = backend_snapshot().await;
    let snapshot = snapshot
        .with(http_listener(
            "counted",
            0,
            "counted",
            "      common_http_protocol_options: { max_requests_per_connection: 2 }",
        ))
        .with(http_listener(
            "aged",
            0,
            "aged",
            "      common_http_protocol_options: { max_connection_duration: 0.3s }",
        ))
        .with(http_listener(
            "few-headers",
            0,
            "few_headers",
            "      common_http_protocol_options: { max_headers_count: 3 }",
        ))
        .with(http_listener(
            "idle",
            0,
            "idle",
            "      common_http_protocol_options: { idle_timeout: 0.3s }",
        ))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: backend }",
        ));
    let proxy = XdsProxy::start("downstream-limits", snapshot, &["--concurrency", "1"]).await;
    let counted: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("counted").await).into();
    let aged: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("aged").await).into();

    // HTTP/1.1: two requests pipelined on one connection; the second answer closes it.
    let two = b"GET / HTTP/1.1\r\nhost: a\r\n\r\nGET / HTTP/1.1\r\nhost: a\r\n\r\n";
    let (response, closed) = tokio::task::block_in_place(|| raw_exchange(counted, two));
    assert_eq!(response.matches("HTTP/1.1 200 OK").count(), 2, "{response}");
    assert_eq!(
        response.matches("connection: close").count(),
        1,
        "{response}"
    );
    assert!(closed, "the connection outlived its last request");
    assert_eq!(
        proxy
            .stat("http.counted.downstream_cx_max_requests_reached")
            .await,
        Some(1)
    );

    // HTTP/2: the client is sent away after two streams and opens another connection.
    let h2 = h2c_client();
    let before = proxy
        .stat("http.counted.downstream_cx_total")
        .await
        .unwrap_or(0);
    for _ in 0..3 {
        let answer = get(&h2, &format!("http://{counted}/")).await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    let after = proxy
        .stat("http.counted.downstream_cx_total")
        .await
        .unwrap_or(0);
    assert_eq!(after - before, 2, "three requests, two per connection");

    // Age: an idle keep-alive connection is closed at its maximum duration.
    let started = Instant::now();
    let one = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n";
    let (response, closed) = tokio::task::block_in_place(|| raw_exchange(aged, one));
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(closed, "not closed within 5 s");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        proxy
            .stat("http.aged.downstream_cx_max_duration_reached")
            .await,
        Some(1)
    );

    // HTTP/2 at its maximum age, and after idle_timeout without requests: GOAWAY, and the
    // client's next request goes on a new connection.
    h2_retired_then_reconnected(&proxy, aged, "aged", "max_duration_reached", 2).await;
    let idle: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("idle").await).into();
    h2_retired_then_reconnected(&proxy, idle, "idle", "idle_timeout", 1).await;

    // max_headers_count, on HTTP/1.1 (hyper's parser) and HTTP/2 alike: 431 over the limit.
    let few = format!(
        "http://127.0.0.1:{}/",
        proxy.listener_port("few-headers").await
    );
    let many = [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")];
    let http1 = http1_client();
    assert_eq!(get_with(&http1, &few, &many).await.status, 431);
    assert_eq!(get_with(&h2, &few, &many).await.status, 431);
    assert_eq!(get_with(&http1, &few, &many[..1]).await.status, 200);
    assert_eq!(get_with(&h2, &few, &many[..1]).await.status, 200);
}

/// An h2c request to the listener at `addr` (stats `http.<prefix>.`), then its connection is
/// retired (counted in `downstream_cx_<counter>`, reaching `retirements`), and the same
/// client's next request is answered on a new connection.
async fn h2_retired_then_reconnected(
    proxy: &XdsProxy,
    addr: SocketAddr,
    prefix: &str,
    counter: &str,
    retirements: u64,
) {
    let url = format!("http://{addr}/");
    let client = h2c_client();
    assert_eq!(get(&client, &url).await.status, 200);
    let retired = eventually(Duration::from_secs(5), || {
        proxy.stat_blocking(&format!("http.{prefix}.downstream_cx_{counter}")) == Some(retirements)
    })
    .await;
    assert!(retired, "the HTTP/2 connection to {prefix} was not retired");
    let total = format!("http.{prefix}.downstream_cx_total");
    let before = proxy.stat(&total).await;
    assert_eq!(get(&client, &url).await.status, 200);
    assert_eq!(proxy.stat(&total).await, before.map(|n| n + 1));
}
