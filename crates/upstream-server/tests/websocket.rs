//! WebSocket echo at `/ws`, driven over a raw TCP connection (handshake and frames by hand).

use outrider_upstream_server::{UpstreamConfig, UpstreamServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    assert!(payload.len() < 126);
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.expect("response head"));
    }
    String::from_utf8(head).expect("ASCII head")
}

#[tokio::test]
async fn upgrade_then_echo_ping_and_close() {
    let server = UpstreamServer::start_local(UpstreamConfig::new("ws-a"))
        .await
        .expect("server starts");
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr()
    );
    stream.write_all(handshake.as_bytes()).await.expect("write");
    let head = read_head(&mut stream).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    assert!(head.contains("x-upstream-name: ws-a"), "{head}");

    stream
        .write_all(&masked_frame(0x1, b"hello"))
        .await
        .expect("write");
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).await.expect("echo");
    assert_eq!(&reply, b"\x81\x05hello");

    stream
        .write_all(&masked_frame(0x9, b"p"))
        .await
        .expect("write");
    let mut pong = [0u8; 3];
    stream.read_exact(&mut pong).await.expect("pong");
    assert_eq!(&pong, b"\x8a\x01p");

    stream
        .write_all(&masked_frame(0x8, &1000u16.to_be_bytes()))
        .await
        .expect("write");
    let mut close = [0u8; 4];
    stream.read_exact(&mut close).await.expect("close");
    assert_eq!(close, [0x88, 2, 0x03, 0xE8]);
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.expect("eof");
    assert!(rest.is_empty());
}

#[tokio::test]
async fn wrong_version_is_refused() {
    let server = UpstreamServer::start_local(UpstreamConfig::new("a"))
        .await
        .expect("server starts");
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    let handshake = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 8\r\n\r\n";
    stream.write_all(handshake.as_bytes()).await.expect("write");
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
}
