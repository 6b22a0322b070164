//! Issue 10's request-head findings, replayed through the real binary: a head begun and not
//! finished within `request_headers_timeout` (or `stream_idle_timeout`, which no header byte
//! resets) gets Envoy's 408 and the connection closes, counted and logged, where hyper's own
//! timer closed it without a word; an idle keep-alive connection is not held to it; heads
//! hyper's parser refuses (400, 431) are logged with `DPE` and counted in
//! `downstream_cx_protocol_error`, as Envoy logs and counts them.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::raw_http::{raw_exchange, status_line};
use common::xds_proxy::{XdsProxy, backend_snapshot, eventually, http_listener, routes};
use common::{file_access_log, log_lines, temp_dir};

/// Reads one response with a `content-length` from `stream`.
fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .and_then(|l| l.trim().parse::<usize>().ok())
                .expect("content-length");
            if body.len() >= length {
                return text;
            }
        }
        let n = stream.read(&mut buffer).expect("read");
        assert!(n > 0, "closed mid-response: {text}");
        received.extend_from_slice(&buffer[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_heads_get_a_408_and_refused_heads_are_logged() {
    let logs = temp_dir("hardening-request-heads");
    let log_path = logs.join("access.log");
    let log = file_access_log(
        "heads",
        &log_path,
        r"%RESPONSE_CODE% %RESPONSE_FLAGS% %REQ(:METHOD)% %PROTOCOL%\n",
    );
    let (_backend, snapshot) = backend_snapshot().await;
    let snapshot = snapshot
        .with(http_listener(
            "ingress",
            0,
            "ingress",
            &format!("      request_headers_timeout: 0.5s\n{log}"),
        ))
        .with(http_listener(
            "idle",
            0,
            "idle",
            "      stream_idle_timeout: 0.5s",
        ))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: backend }",
        ));
    let proxy = XdsProxy::start("hardening-request-heads", snapshot, &["--concurrency", "1"]).await;
    let ingress = SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("ingress").await));
    let idle = SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("idle").await));

    tokio::task::block_in_place(|| {
        // A head begun and never finished: Envoy's 408, then the close.
        let (response, closed) = raw_exchange(ingress, b"GET / HTTP/1.1\r\nhost: a\r\n");
        assert_eq!(
            status_line(&response),
            "HTTP/1.1 408 Request Timeout",
            "{response}"
        );
        assert!(
            response.ends_with("\r\n\r\nrequest header timeout"),
            "{response}"
        );
        assert!(closed, "the connection closes after the 408");
        // The stream idle timeout runs from the head's first byte too.
        let (response, closed) = raw_exchange(idle, b"GET / HTTP/1.1\r\nhost: a\r\nx-slow: ");
        assert_eq!(
            status_line(&response),
            "HTTP/1.1 408 Request Timeout",
            "{response}"
        );
        assert!(response.ends_with("\r\n\r\nstream timeout"), "{response}");
        assert!(closed);

        // A keep-alive connection idle between requests is not held to the head timeout
        // (its own limit is idle_timeout): a second request, well after it, is served.
        let mut stream = TcpStream::connect(ingress).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let request = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n";
        stream.write_all(request).expect("first request");
        assert!(read_response(&mut stream).starts_with("HTTP/1.1 200"));
        std::thread::sleep(Duration::from_millis(1200));
        stream.write_all(request).expect("second request");
        assert!(read_response(&mut stream).starts_with("HTTP/1.1 200"));

        // Heads hyper's parser refuses: its 400 and 431 are logged and counted.
        let (response, _) = raw_exchange(ingress, b"GET / HTTP/1.1\r\nno colon here\r\n\r\n");
        assert!(status_line(&response).contains(" 400 "), "{response}");
        let huge = format!(
            "GET / HTTP/1.1\r\nhost: a\r\nx-big: {}\r\n\r\n",
            "b".repeat(70 * 1024)
        );
        let (response, _) = raw_exchange(ingress, huge.as_bytes());
        assert!(status_line(&response).contains(" 431 "), "{response}");
    });

    assert_eq!(
        proxy
            .stat("http.ingress.downstream_rq_header_timeout")
            .await,
        Some(1)
    );
    assert_eq!(
        proxy.stat("http.idle.downstream_rq_idle_timeout").await,
        Some(1)
    );
    assert_eq!(
        proxy
            .stat("http.ingress.downstream_cx_protocol_error")
            .await,
        Some(2)
    );
    let expected = [
        "408 - - HTTP/1.1",
        "200 - GET HTTP/1.1",
        "200 - GET HTTP/1.1",
        "400 DPE - HTTP/1.1",
        "431 DPE - HTTP/1.1",
    ];
    assert!(
        eventually(Duration::from_secs(10), || log_lines(&log_path).len()
            >= expected.len())
        .await,
        "{:?}",
        log_lines(&log_path)
    );
    assert_eq!(log_lines(&log_path), expected);
}
