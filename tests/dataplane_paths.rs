//! The request path as the connection manager leaves it, through the real binary:
//! `normalize_path`, `merge_slashes` and the escaped-slash actions decide what routing and the
//! upstream see (a route guarding `/admin` cannot be walked around with `..` or `%2F`), and
//! without them a path goes upstream exactly as sent.

mod common;

use std::net::SocketAddr;

use common::raw_http::{raw_exchange, status_line};
use common::xds_proxy::{
    XdsProxy, backend_snapshot, get, get_with, http_listener, http1_client, routes,
};

const ROUTES: &str = r#"  - match: { prefix: /admin }
    direct_response: { status: 403, body: { inline_string: admin only } }
  - match: { prefix: / }
    route: { cluster: backend }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_are_normalised_before_routing_as_configured() {
    let (backend, snapshot) = backend_snapshot().await;
    let snapshot = snapshot
        .with(http_listener("plain", 0, "plain", ""))
        .with(http_listener(
            "normalizing",
            0,
            "normalizing",
            "      normalize_path: true\n      merge_slashes: true\n      path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD",
        ))
        .with(http_listener(
            "redirecting",
            0,
            "redirecting",
            "      path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT",
        ))
        .with(http_listener(
            "rejecting",
            0,
            "rejecting",
            "      path_with_escaped_slashes_action: REJECT_REQUEST",
        ))
        .with(routes(ROUTES));
    let proxy = XdsProxy::start("paths", snapshot, &["--concurrency", "1"]).await;
    let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let plain = addr(proxy.listener_port("plain").await);
    let normalizing = addr(proxy.listener_port("normalizing").await);
    let redirecting = addr(proxy.listener_port("redirecting").await);
    let rejecting = addr(proxy.listener_port("rejecting").await);
    let client = http1_client();

    // Normalised: dot segments (plain and escaped) and escaped slashes cannot reach around
    // the /admin route, and the upstream gets the normalised path.
    for path in [
        "/public/../admin/x",
        "/public/%2e%2e/admin",
        "/public%2F..%2Fadmin",
        "//admin",
    ] {
        let answer = get(&client, &format!("http://{normalizing}{path}")).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (403, "admin only"),
            "{path}"
        );
    }
    let answer = get(
        &client,
        &format!("http://{normalizing}/a/./b/..//c?q=/../x"),
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(backend.requests_for("/a/c"), 1);

    // Without normalisation the path goes as sent, to routing and upstream alike.
    let raw = b"GET //m//x/../y HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n";
    let (response, _) = tokio::task::block_in_place(|| raw_exchange(plain, raw));
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
    assert_eq!(
        backend.requests_for("//m//x/../y"),
        1,
        "{:?}",
        backend.path_counts()
    );
    let answer = get(&client, &format!("http://{plain}/public/%2e%2e/admin")).await;
    assert_eq!(answer.status, 200, "routed on the path as sent: {answer:?}");

    // Escaped slashes redirected to, or refused.
    let answer = get(&client, &format!("http://{redirecting}/a%2Fb?x=1")).await;
    assert_eq!(answer.status, 307);
    assert_eq!(answer.header("location"), Some("/a/b?x=1"));
    assert_eq!(
        proxy
            .stat("http.redirecting.downstream_rq_redirected_with_normalized_path")
            .await,
        Some(1)
    );
    // A gRPC client cannot follow a redirect: refused instead, as a gRPC error (400 is
    // INTERNAL), as Envoy does.
    let answer = get_with(
        &client,
        &format!("http://{redirecting}/a%2Fb"),
        &[("content-type", "application/grpc")],
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("grpc-status"), Some("13"), "{answer:?}");
    assert_eq!(answer.header("location"), None);
    assert_eq!(
        proxy
            .stat("http.redirecting.downstream_rq_failed_path_normalization")
            .await,
        Some(1)
    );
    let answer = get(&client, &format!("http://{rejecting}/a%5Cb")).await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        proxy
            .stat("http.rejecting.downstream_rq_failed_path_normalization")
            .await,
        Some(1)
    );
    let answer = get(&client, &format!("http://{rejecting}/a%20b")).await;
    assert_eq!(answer.status, 200, "other escapes pass: {answer:?}");
}
