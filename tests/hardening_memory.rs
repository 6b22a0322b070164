//! Issue 10's slow-client memory finding, replayed through the real binary: request bodies
//! kept for retries (a route retry policy keeps each body, up to 1 MiB, until its response)
//! take memory while their requests last, and after a burst of them the proxy's resident
//! memory comes back to within 20 % of where it was.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::xds_proxy::{eventually, proxy_to_backend};

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
