//! `outrider diagnose --admin ADDR --cluster NAME`: asks a running Outrider's admin interface
//! for `/diagnose` and prints the answer (text, or JSON with `--json`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The admin interface's answer: the HTTP status and the body.
pub fn fetch(admin: SocketAddr, cluster: &str, json: bool) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&admin, Duration::from_secs(5))?;
    // The diagnosis probes every endpoint (1 s each at most, in parallel).
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let format = if json { "&format=json" } else { "" };
    write!(
        stream,
        "GET /diagnose?cluster={}{format} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n",
        percent_encode(cluster)
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// Query-component encoding: unreserved characters as they are, every other byte as `%XX`.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_are_encoded_for_the_query() {
        assert_eq!(
            percent_encode("outbound|80||web.default"),
            "outbound%7C80%7C%7Cweb.default"
        );
        assert_eq!(percent_encode("a b&c"), "a%20b%26c");
    }
}
