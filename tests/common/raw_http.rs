//! HTTP/1.1 over a plain socket, to see exactly what goes over the wire (status lines,
//! closes, partial bodies).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Writes `request` on a fresh connection and reads until the proxy closes it (or 5 s pass).
/// Returns what was read and whether the connection was closed.
pub fn raw_exchange(addr: SocketAddr, request: &[u8]) -> (String, bool) {
    raw_exchange_within(addr, request, Duration::from_secs(5))
}

/// `raw_exchange`, reading for up to `wait` at a time.
pub fn raw_exchange_within(addr: SocketAddr, request: &[u8], wait: Duration) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(wait)).expect("timeout");
    stream.write_all(request).expect("write");
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let closed = loop {
        match stream.read(&mut buffer) {
            Ok(0) => break true,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            // A reset after the response (the proxy closed with unread input) is a close too.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&received).into_owned(), closed)
}

/// The first line of a raw response.
pub fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}
