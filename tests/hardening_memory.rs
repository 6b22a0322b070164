//! Issue 10's slow-client memory finding, replayed through the real binary: request bodies
//! kept for retries (a route retry policy keeps each body, up to 1 MiB, until its response)
//! take memory while their requests last, and after a burst of them the proxy's resident
//! memory comes back to within 20 % of where it was; and the bodies kept at once by every
//! worker stay within a budget (`outrider.retry_buffer_budget_bytes`), past which a request
//! loses its retries, counted in `retry_or_shadow_abandoned` as Envoy counts a body over its
//! buffer limit.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::xds_proxy::{eventually, proxy_to_backend, proxy_to_backend_with};

/// POSTs a 1 MiB body to `path` and returns the status line.
fn post_mib(addr: SocketAddr, path: &str) -> String {
    let body = vec![b'x'; 1024 * 1024];
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: a\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(&body).expect("body");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_kept_for_retries_comes_back_after_a_burst() {
    let (proxy, addr, _backend) = proxy_to_backend(
        "hardening-memory",
        "{ cluster: backend, retry_policy: { retry_on: 5xx, num_retries: 1 } }",
    )
    .await;
    // Measured once a first request has been through (its connections and pools exist).
    let first = tokio::task::block_in_place(|| post_mib(addr, "/delay/10"));
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let start = proxy.process.rss_kib();

    // Two bursts of 24 clients whose 1 MiB bodies are held while the upstream takes 300 ms
    // (the first burst teaches the allocator to keep such blocks, the second fills them).
    let mut peak = start;
    for _ in 0..2 {
        let clients: Vec<_> = (0..24)
            .map(|_| std::thread::spawn(move || post_mib(addr, "/delay/300")))
            .collect();
        for client in clients {
            let status = client.join().expect("client");
            assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        }
        peak = peak.max(proxy.process.rss_kib());
    }
    assert!(
        peak > start + 10 * 1024,
        "the bodies took no memory: {start} -> {peak} KiB"
    );
    let settled = eventually(Duration::from_secs(10), || {
        proxy.process.rss_kib() <= start * 12 / 10
    })
    .await;
    assert!(
        settled,
        "resident memory stayed up: {start} KiB at start, {peak} KiB at peak, {} KiB now",
        proxy.process.rss_kib()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_past_the_retry_budget_lose_their_retries() {
    // Room for one 1 MiB body, not two.
    let budget = "
layered_runtime:
  layers:
  - name: budget
    static_layer:
      outrider.retry_buffer_budget_bytes: 1500000
";
    let route = "{ cluster: backend, retry_policy: { retry_on: 5xx, num_retries: 1 } }";
    let (proxy, addr, _backend) =
        proxy_to_backend_with("hardening-retry-budget", route, "2", budget).await;
    let retried = "cluster.backend.upstream_rq_retry";
    let abandoned = "cluster.backend.retry_or_shadow_abandoned";

    // Alone, a failing request's body is kept and retried once.
    let status = tokio::task::block_in_place(|| post_mib(addr, "/status/503"));
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
    assert_eq!(proxy.stat(retried).await, Some(1));
    assert_eq!(proxy.stat(abandoned).await, Some(0));
    // Its kept body goes when its request ends, which may be a moment after the client has
    // the whole response.
    assert!(
        eventually(Duration::from_secs(10), || {
            proxy.stat_blocking("http.ingress.downstream_rq_active") == Some(0)
        })
        .await,
        "the first request never ended"
    );

    // While a slow request's body holds the budget, the next body is streamed: no retry.
    let slow = std::thread::spawn(move || post_mib(addr, "/delay/2000"));
    assert!(
        eventually(Duration::from_secs(10), || {
            proxy.stat_blocking("cluster.backend.upstream_rq_active") == Some(1)
        })
        .await,
        "the slow request never reached the upstream"
    );
    let status = tokio::task::block_in_place(|| post_mib(addr, "/status/503"));
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
    assert_eq!(
        proxy.stat(retried).await,
        Some(1),
        "retried past the budget"
    );
    assert_eq!(proxy.stat(abandoned).await, Some(1));
    let slow = slow.join().expect("slow client");
    assert!(slow.starts_with("HTTP/1.1 200"), "{slow}");
    assert!(
        eventually(Duration::from_secs(10), || {
            proxy.stat_blocking("http.ingress.downstream_rq_active") == Some(0)
        })
        .await,
        "the slow request never ended"
    );

    // The budget is back: kept and retried again.
    let status = tokio::task::block_in_place(|| post_mib(addr, "/status/503"));
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
    assert_eq!(proxy.stat(retried).await, Some(2));
}
