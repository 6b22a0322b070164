//! Issue 10's HTTP/2 rapid reset (CVE-2023-44487), replayed through the real binary: a client
//! that opens streams and resets each at once, while the upstream takes its time, has its
//! connection closed once its streams are mostly resets (Envoy's premature-reset limit),
//! counted in `http.<prefix>.downstream_rq_too_many_premature_resets`; other clients are
//! served as before.

mod common;

use std::time::Duration;

use common::xds_proxy::{get, h2c_client, proxy_to_backend};
use outrider_upstream_server::UpstreamServer;
use tokio::net::TcpStream;

/// Waits (up to 5 s, polling every millisecond) until the upstream has `count` requests.
async fn reached_upstream(backend: &UpstreamServer, count: u64) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while backend.requests_for("/delay/20000") < count {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_of_reset_streams_is_closed() {
    let (proxy, addr, backend) =
        proxy_to_backend("hardening-rapid-reset", "{ cluster: backend }").await;

    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let connection = tokio::spawn(connection);
    let mut sent = 0;
    // The upstream holds each request for 20 s: every stream is reset before its answer, once
    // it has reached the upstream (a stream reset before the proxy takes it up is the HTTP/2
    // codec's to refuse, with its own limit).
    for _ in 0..1000 {
        let Ok(ready) = client.ready().await else {
            break;
        };
        client = ready;
        let request = hyper::Request::get(format!("http://{addr}/delay/20000"))
            .body(())
            .expect("request");
        let Ok((_response, mut stream)) = client.send_request(request, false) else {
            break;
        };
        sent += 1;
        if !reached_upstream(&backend, sent).await {
            break;
        }
        stream.send_reset(h2::Reason::CANCEL);
    }
    // The proxy closed the connection well before the thousandth stream.
    let closed = tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("the connection was not closed");
    // Half of Envoy's 500-stream window, and a few the proxy took up before the close.
    assert!(
        (250..300).contains(&sent),
        "{sent} streams before the close: {closed:?}"
    );
    assert_eq!(
        proxy
            .stat("http.ingress.downstream_rq_too_many_premature_resets")
            .await,
        Some(1)
    );
    // Other clients are served.
    let answer = get(&h2c_client(), &format!("http://{addr}/")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
}
