//! Issue 10's keep-alive race, replayed through the real binary: an upstream that ends each
//! connection right after its answer (it shuts its side down, without `Connection: close`).
//! A request the proxy hands to such a kept connection that turns out never to have been
//! written goes out again on a new one, so the client sees no failure, and no retry is
//! counted. The race depends on scheduling: under load the attack run saw up to 30 % of
//! requests fail before the fix. One race is left, as in Envoy: a request already written
//! when the close arrives gets 503 (Envoy's remedy is a `retry_on: reset` policy); it hits
//! about one request in 4 000 here, so the test allows 1 %.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::xds_proxy::{XdsProxy, cluster, endpoints, get, http_listener, http1_client, routes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use xds_conformance::Snapshot;

/// An HTTP/1.1 upstream that answers one request per connection, then shuts its side down
/// without saying so beforehand (and drops what else comes). Returns its address and the
/// count of requests it answered.
async fn closing_upstream() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let answered = Arc::new(AtomicU64::new(0));
    let count = answered.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if stream.write_all(answer).await.is_ok() {
                    count.fetch_add(1, Ordering::SeqCst);
                }
                let _ = stream.shutdown().await;
                let mut rest = [0u8; 1024];
                let _ = stream.read(&mut rest).await;
                // Dropped: closed right after the answer.
            });
        }
    });
    (addr, answered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_never_written_to_a_closed_kept_connection_are_sent_again() {
    let (upstream, answered) = closing_upstream().await;
    let snapshot = Snapshot::new("1")
        .with(cluster("closing", ""))
        .with(endpoints("closing", &[upstream]))
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: closing }",
        ));
    let proxy = XdsProxy::start(
        "hardening-upstream-close",
        snapshot,
        &["--concurrency", "1"],
    )
    .await;
    let url = format!("http://127.0.0.1:{}/", proxy.listener_port("ingress").await);
    // Several clients at once, so that the proxy's one worker is busy while connections
    // close under it.
    let mut clients = Vec::new();
    for _ in 0..8 {
        let url = url.clone();
        clients.push(tokio::spawn(async move {
            let client = http1_client();
            let mut failed = Vec::new();
            for _ in 0..50 {
                let answer = get(&client, &url).await;
                if answer.status != 200 {
                    failed.push((answer.status, answer.body));
                }
            }
            failed
        }));
    }
    let mut failed = Vec::new();
    for client in clients {
        failed.extend(client.await.expect("client"));
    }
    assert!(failed.len() <= 4, "{} failed: {failed:?}", failed.len());
    assert!(
        failed
            .iter()
            .all(|(status, body)| *status == 503 && body.contains("disconnect/reset")),
        "{failed:?}"
    );
    let answers = u64::try_from(400 - failed.len()).expect("a count");
    assert_eq!(answered.load(Ordering::SeqCst), answers);
    assert_eq!(
        proxy.stat("cluster.closing.upstream_rq_retry").await,
        Some(0)
    );
}
