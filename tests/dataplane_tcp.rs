//! `envoy.filters.network.tcp_proxy` through the real binary: bytes both ways between a client
//! and a TCP echo server, half-close passed on (the client stops writing and still reads the
//! rest of the echo), and a cluster without endpoints closing the connection.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::xds_proxy::{XdsProxy, cluster, endpoints, tcp_echo_server, tcp_listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xds_conformance::Snapshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_proxy_carries_bytes_both_ways_and_half_close() {
    let (echo, accepted) = tcp_echo_server().await;
    let snapshot = Snapshot::new("1")
        .with(cluster("echo", ""))
        .with(endpoints("echo", &[echo]))
        .with(cluster("void", ""))
        .with(endpoints("void", &[]))
        .with(tcp_listener("tcp", "echo"))
        .with(tcp_listener("tcp_void", "void"));
    let proxy = XdsProxy::start("tcp", snapshot, &["--concurrency", "1"]).await;
    let addr: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("tcp").await).into();

    // Interactive: each message comes back before the next is sent.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    for message in [&b"ping"[..], b"not HTTP at all\r\n\r\n", &[0u8, 255, 7]] {
        stream.write_all(message).await.expect("write");
        let mut back = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut back))
            .await
            .expect("echo in time")
            .expect("read");
        assert_eq!(back, message);
    }
    drop(stream);
    assert_eq!(accepted.load(Ordering::Relaxed), 1, "through the proxy");

    // Half-close: 256 KiB written, then the write side shut; the whole echo still arrives,
    // then the end of stream.
    let payload: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let sent = payload.clone();
    let writing = tokio::spawn(async move {
        writer.write_all(&sent).await.expect("write");
        writer.shutdown().await.expect("shutdown");
        // Keep the write half alive: dropping it must not be what ends the exchange.
        writer
    });
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut received))
        .await
        .expect("the echo and its end in time")
        .expect("read");
    let _writer = writing.await.expect("writer");
    assert_eq!(received.len(), payload.len());
    assert!(received == payload, "the echo differs");

    // No endpoint: the proxy closes the connection without a byte.
    let void: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("tcp_void").await).into();
    let mut stream = TcpStream::connect(void).await.expect("connect");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "closed without data: {read:?}"
    );
}
