//! Issue 10's smaller HTTP/1.1 findings, replayed through the real binary: an upgrade to h2c
//! (what `curl --http2` sends over plain HTTP) is ignored and the request served over
//! HTTP/1.1, as Envoy's codec does, instead of being refused as an upgrade nobody enabled; a
//! request with both `Content-Length` and `Transfer-Encoding` is refused with 400, as Envoy's
//! codec refuses it, where it was forwarded chunked (pipelined behind other requests too).

mod common;

use common::raw_http::{raw_exchange, status_line};
use common::xds_proxy::proxy_to_backend;
use outrider_upstream_server::echo::EchoedRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_upgrade_is_ignored_and_served_over_http1() {
    let (_proxy, addr, _backend) =
        proxy_to_backend("hardening-h2c-upgrade", "{ cluster: backend }").await;
    let request = "GET /echo HTTP/1.1\r\nhost: a\r\nconnection: Upgrade, HTTP2-Settings, close\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";
    let (response, _) = tokio::task::block_in_place(|| raw_exchange(addr, request.as_bytes()));
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let seen: EchoedRequest = serde_json::from_str(body).expect("echo JSON");
    for header in ["upgrade", "http2-settings"] {
        assert_eq!(
            seen.header(header),
            None,
            "{header} reached the upstream: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_is_refused() {
    let (proxy, addr, _backend) = proxy_to_backend("hardening-cl-te", "{ cluster: backend }").await;
    for request in [
        "POST /echo HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /echo HTTP/1.1\r\nhost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    ] {
        let (response, closed) =
            tokio::task::block_in_place(|| raw_exchange(addr, request.as_bytes()));
        assert!(
            status_line(&response).contains(" 400 "),
            "{request:?}: {response}"
        );
        assert!(closed, "the connection closes after the 400");
    }
    // Neither reached the upstream; one of the two alone is served.
    assert_eq!(
        proxy.stat("cluster.backend.upstream_rq_total").await,
        Some(0)
    );
    let chunked = "POST /echo HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n0\r\n\r\n";
    let (response, _) = tokio::task::block_in_place(|| raw_exchange(addr, chunked.as_bytes()));
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
}

/// Pipelined heads sent in one write: each is scanned, and the refusal reaches the request
/// whose head had both headers, after the ones before it were served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_conflicting_head_is_refused_in_its_turn() {
    let (proxy, addr, _backend) =
        proxy_to_backend("hardening-cl-te-pipelined", "{ cluster: backend }").await;
    let pipelined = "GET /echo HTTP/1.1\r\nhost: a\r\n\r\n\
        GET /echo HTTP/1.1\r\nhost: a\r\n\r\n\
        POST /echo HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
    let (response, closed) =
        tokio::task::block_in_place(|| raw_exchange(addr, pipelined.as_bytes()));
    // Responses follow each other with no separator; the echoed JSON bodies say `HTTP/1.1`
    // only in quotes.
    let statuses: Vec<&str> = response
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| response[at..].split("\r\n").next())
        .collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 400 Bad Request"
        ],
        "{response}"
    );
    assert!(closed, "the connection closes after the 400");
    assert_eq!(
        proxy.stat("cluster.backend.upstream_rq_total").await,
        Some(2)
    );
}
