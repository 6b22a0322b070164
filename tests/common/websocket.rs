//! The client side of a WebSocket opening handshake (RFC 6455 §4.1) over a raw socket.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends the opening handshake for `path`; returns the response head and the stream.
pub async fn handshake(addr: SocketAddr, path: &str) -> (String, TcpStream) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    // Read the head byte by byte so no frame byte after it is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(Duration::from_secs(5), stream.read_u8())
            .await
            .expect("the response head in time")
            .expect("read");
        head.push(byte);
        assert!(head.len() < 16 * 1024, "no end of head");
    }
    (String::from_utf8_lossy(&head).into_owned(), stream)
}
