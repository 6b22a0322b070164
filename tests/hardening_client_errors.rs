//! Issue 10's attack vectors on host health, replayed through the real binary: a request body
//! the client breaks (malformed chunked framing) is the client's error. It is answered 400
//! (`DPE`) and never counts against an endpoint: no outlier ejection, no host error, whether
//! the upstream speaks HTTP/1.1 or HTTP/2, with stream limits or without. A client that
//! goes away mid-body is logged as Envoy logs it (code 0, `DC`).

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use common::raw_http::{raw_exchange, status_line};
use common::xds_proxy::{
    XdsProxy, cluster, endpoints, eventually, get, http_listener, http1_client, routes, tally,
};
use common::{file_access_log, http_get, log_lines, temp_dir};
use outrider_upstream_server::{UpstreamConfig, UpstreamServer};
use xds_conformance::Snapshot;

/// Ejects after three consecutive 5xx, both hosts if need be, for a minute.
const OUTLIER: &str =
    "outlier_detection: { consecutive_5xx: 3, max_ejection_percent: 100, base_ejection_time: 60s }";

const HTTP2: &str = r#"typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    explicit_http_config: { http2_protocol_options: {} }"#;

/// Chunked bodies hyper's parser refuses, each after a valid head.
fn broken_bodies() -> Vec<Vec<u8>> {
    let head = "POST /echo HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n";
    let extension = format!("5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(64 * 1024));
    [
        "-1\r\n\r\n",
        "1ffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        "5\nhello\n0\n\n",
        extension.as_str(),
    ]
    .iter()
    .map(|body| format!("{head}{body}").into_bytes())
    .collect()
}

async fn broken_bodies_count_against_no_host(test: &str, protocol: &str, hcm_extra: &str) {
    let (a, b) = (
        UpstreamServer::start_local(UpstreamConfig::new("a"))
            .await
            .expect("upstream"),
        UpstreamServer::start_local(UpstreamConfig::new("b"))
            .await
            .expect("upstream"),
    );
    let snapshot = Snapshot::new("1")
        .with(cluster("backend", &format!("{OUTLIER}\n{protocol}")))
        .with(endpoints("backend", &[a.addr(), b.addr()]))
        .with(http_listener("ingress", 0, "ingress", hcm_extra))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: backend }",
        ));
    let proxy = XdsProxy::start(test, snapshot, &["--concurrency", "1"]).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("ingress").await));

    // Twice each: eight, more than enough to eject both hosts were they counted.
    for request in broken_bodies().iter().chain(broken_bodies().iter()) {
        let (response, closed) = tokio::task::block_in_place(|| raw_exchange(addr, request));
        assert!(status_line(&response).contains(" 400 "), "{response}");
        assert!(closed, "the connection closes after the 400");
    }
    assert_eq!(
        proxy
            .stat("cluster.backend.outlier_detection.ejections_enforced_total")
            .await,
        Some(0)
    );
    let (_, clusters) =
        tokio::task::block_in_place(|| http_get(proxy.admin, "/clusters")).expect("/clusters");
    for host in [a.addr(), b.addr()] {
        let errors = format!("backend::{host}::rq_error::0");
        assert!(
            clusters.lines().any(|l| l == errors),
            "{errors}:\n{clusters}"
        );
    }
    // Both hosts still serve.
    let client = http1_client();
    let mut answers = Vec::new();
    for _ in 0..8 {
        answers.push(get(&client, &format!("http://{addr}/")).await);
    }
    let counts = tally(&answers);
    assert!(counts.keys().eq(["a", "b"].iter()), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_request_body_counts_against_no_http1_host() {
    broken_bodies_count_against_no_host("hardening-body-h1", "", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_request_body_counts_against_no_http2_host() {
    broken_bodies_count_against_no_host("hardening-body-h2", HTTP2, "").await;
}

/// With every stream limit off the request has no clock to time it, but still one to learn
/// from its body that the client broke it (an HTTP/2 upstream only resets the stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_request_body_counts_against_no_http2_host_without_stream_limits() {
    let unlimited = "      stream_idle_timeout: 0s";
    broken_bodies_count_against_no_host("hardening-body-h2-unlimited", HTTP2, unlimited).await;
}

/// A client that goes away mid-body is not answered and not blamed: logged as Envoy logs a
/// stream its client abandoned (code 0, `DC`), not as a protocol error, and nothing counts
/// against the endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_mid_body_is_logged_dc_and_blames_no_host() {
    let logs = temp_dir("hardening-body-gone");
    let log_path = logs.join("access.log");
    let log = file_access_log("gone", &log_path, r"%RESPONSE_CODE% %RESPONSE_FLAGS%\n");
    let backend = UpstreamServer::start_local(UpstreamConfig::new("a"))
        .await
        .expect("upstream");
    let snapshot = Snapshot::new("1")
        .with(cluster("backend", OUTLIER))
        .with(endpoints("backend", &[backend.addr()]))
        .with(http_listener("ingress", 0, "ingress", &log))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: backend }",
        ));
    let proxy = XdsProxy::start("hardening-body-gone", snapshot, &["--concurrency", "1"]).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("ingress").await));
    tokio::task::block_in_place(|| {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nhost: a\r\ncontent-length: 100\r\n\r\n0123456789")
            .expect("a head and part of the body");
        stream.shutdown(Shutdown::Write).expect("gone");
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
    });
    assert!(
        eventually(Duration::from_secs(10), || !log_lines(&log_path).is_empty()).await,
        "nothing logged"
    );
    assert_eq!(log_lines(&log_path), ["0 DC"]);
    let (_, clusters) =
        tokio::task::block_in_place(|| http_get(proxy.admin, "/clusters")).expect("/clusters");
    let errors = format!("backend::{}::rq_error::0", backend.addr());
    assert!(
        clusters.lines().any(|l| l == errors),
        "{errors}:\n{clusters}"
    );
}
