//! Issue 10's "done when" for connection floods, replayed through the real binary: 5 000
//! silent connections and 1 000 slowloris ones (a request head that grows by a byte a
//! second) on one listener do not stop normal traffic within the listener's connection
//! limit; connections over it are refused and counted; once the attackers leave, every place
//! comes back and the proxy's resident memory returns to within 20 % of where it was.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::allow_open_files;
use common::raw_http::raw_exchange;
use common::xds_proxy::{eventually, proxy_to_backend_with};
use tokio::io::AsyncWriteExt;

const SILENT: u64 = 5_000;
const SLOWLORIS: u64 = 1_000;
/// The listener's limit: the attackers, and ten places for everyone else.
const LIMIT: u64 = SILENT + SLOWLORIS + 10;

/// One request on a new connection (`connection: close`): what came back.
fn exchange(addr: SocketAddr) -> String {
    raw_exchange(
        addr,
        b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    )
    .0
}

/// Opens `count` slowloris connections and, until aborted, adds a byte to each one's request
/// head every second.
async fn slowloris(addr: SocketAddr, count: u64) -> tokio::task::JoinHandle<()> {
    let mut streams = Vec::new();
    for _ in 0..count {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: a\r\nx-slow: ")
            .await
            .expect("head");
        streams.push(stream);
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for stream in &mut streams {
                let _ = stream.write_all(b"a").await;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_stops_no_traffic_within_the_limit_and_memory_comes_back() {
    allow_open_files(std::process::id(), 2 * LIMIT);
    let runtime = format!(
        "
layered_runtime:
  layers:
  - name: limits
    static_layer:
      envoy.resource_limits.listener.ingress.connection_limit: {LIMIT}
"
    );
    let (proxy, addr, _backend) =
        proxy_to_backend_with("hardening-flood", "{ cluster: backend }", "2", &runtime).await;
    allow_open_files(proxy.process.pid(), 2 * LIMIT);
    let overflow = format!("listener.127.0.0.1_{}.downstream_cx_overflow", addr.port());
    // Measured once requests have been through (connections, pools and buffers exist).
    for _ in 0..20 {
        let answer = tokio::task::block_in_place(|| exchange(addr));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let start = proxy.process.rss_kib();

    let silent: Vec<TcpStream> = tokio::task::block_in_place(|| {
        (0..SILENT)
            .map(|_| TcpStream::connect(addr).expect("connect"))
            .collect()
    });
    let slow = slowloris(addr, SLOWLORIS).await;
    assert!(
        eventually(Duration::from_secs(30), || {
            proxy.stat_blocking("http.ingress.downstream_cx_active") == Some(SILENT + SLOWLORIS)
        })
        .await,
        "the attackers were not all accepted: {:?} active",
        proxy.stat("http.ingress.downstream_cx_active").await
    );
    let peak = proxy.process.rss_kib();

    // Normal traffic goes on beside them, a connection at a time.
    for _ in 0..50 {
        let answer = tokio::task::block_in_place(|| exchange(addr));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    // Twenty more silent ones: at most ten places are left, the rest is refused and counted.
    let more: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    assert!(
        eventually(Duration::from_secs(10), || {
            proxy.stat_blocking(&overflow).is_some_and(|n| n >= 10)
        })
        .await,
        "no connection over the limit was refused: {:?}",
        proxy.stat(&overflow).await
    );

    // The attackers leave: every place comes back, and the memory they took.
    slow.abort();
    let _ = slow.await;
    drop(silent);
    drop(more);
    assert!(
        eventually(Duration::from_secs(30), || {
            proxy.stat_blocking("http.ingress.downstream_cx_active") == Some(0)
        })
        .await,
        "connections still counted after the attackers left"
    );
    let answer = tokio::task::block_in_place(|| exchange(addr));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let settled = eventually(Duration::from_secs(15), || {
        proxy.process.rss_kib() <= start * 12 / 10
    })
    .await;
    assert!(
        settled,
        "resident memory stayed up: {start} KiB at start, {peak} KiB with the attackers, {} KiB now",
        proxy.process.rss_kib()
    );
}
