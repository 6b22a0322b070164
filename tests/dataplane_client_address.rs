//! Who the client is, through the real binary, as Envoy's connection manager decides it:
//! `use_remote_address` (the edge appends to `x-forwarded-for`, sets `x-envoy-external-address`,
//! replaces `x-request-id` and an untrusted `x-forwarded-proto`), `xff_num_trusted_hops`,
//! internal requests at the edge, `preserve_external_request_id`, `append_x_forwarded_port`,
//! forwarding headers set before routing so that routes can match on them, and command
//! operators in route header values.

mod common;

use common::xds_proxy::{
    XdsProxy, backend_snapshot, get_with, http_listener, http1_client, routes,
};
use outrider_upstream_server::echo::EchoedRequest;

const ROUTES: &str = r#"  - match: { prefix: /proto, headers: [{ name: x-forwarded-proto, string_match: { exact: http } }] }
    direct_response: { status: 200, body: { inline_string: plain http } }
  - match: { prefix: /formatted }
    route: { cluster: backend, prefix_rewrite: /echo }
    request_headers_to_add:
    - header: { key: x-client-ip, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%" }
    - header: { key: x-peer, value: "%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%" }
    - header: { key: x-path, value: "%REQ(x-missing?:PATH):6% via %PROTOCOL% (100%%)" }
    - header: { key: x-started, value: "%START_TIME%" }
    - header: { key: x-empty, value: "%REQ(x-missing)%" }
    response_headers_to_add:
    - header: { key: x-served-by, value: "%HOSTNAME%" }
    - header: { key: x-port, value: "%DOWNSTREAM_LOCAL_PORT%" }
  - match: { prefix: / }
    route: { cluster: backend }"#;

fn echoed(body: &str) -> EchoedRequest {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("echo JSON: {e}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_decides_who_the_client_is() {
    let (_backend, snapshot) = backend_snapshot().await;
    let loopback_internal = "      internal_address_config: { cidr_ranges: [{ address_prefix: 127.0.0.0, prefix_len: 8 }] }";
    let snapshot = snapshot
        .with(http_listener("behind", 0, "behind", ""))
        .with(http_listener(
            "edge",
            0,
            "edge",
            "      use_remote_address: true\n      append_x_forwarded_port: true",
        ))
        .with(http_listener(
            "edge-internal",
            0,
            "edge_internal",
            &format!("      use_remote_address: true\n{loopback_internal}"),
        ))
        .with(http_listener(
            "trusted",
            0,
            "trusted",
            "      use_remote_address: true\n      xff_num_trusted_hops: 1",
        ))
        .with(http_listener(
            "preserve",
            0,
            "preserve",
            "      use_remote_address: true\n      preserve_external_request_id: true",
        ))
        .with(routes(ROUTES));
    let proxy = XdsProxy::start("client-address", snapshot, &["--concurrency", "1"]).await;
    let client = http1_client();
    let mut urls = Vec::new();
    for name in ["behind", "edge", "edge-internal", "trusted", "preserve"] {
        urls.push(format!(
            "http://127.0.0.1:{}",
            proxy.listener_port(name).await
        ));
    }
    let [behind, edge, edge_internal, trusted, preserve] = urls.as_slice() else {
        unreachable!("five listeners");
    };
    const SENT: &[(&str, &str)] = &[
        ("x-forwarded-for", "1.2.3.4"),
        ("x-forwarded-proto", "https"),
        ("x-request-id", "client-id"),
    ];
    let upstream_saw = |url: String, headers: &'static [(&'static str, &'static str)]| {
        let client = client.clone();
        async move { echoed(&get_with(&client, &url, headers).await.body) }
    };

    // The edge: our peer appended, the client named, an untrusted protocol replaced, a new id.
    let seen = upstream_saw(format!("{edge}/echo"), SENT).await;
    let xff = seen.header("x-forwarded-for").expect("x-forwarded-for");
    assert!(
        xff.starts_with("1.2.3.4, ") && xff.split(',').count() == 2,
        "{xff}"
    );
    assert_eq!(seen.header("x-envoy-external-address"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    let edge_port = edge.rsplit(':').next().expect("a port");
    assert_eq!(seen.header("x-forwarded-port"), Some(edge_port));
    let id = seen.header("x-request-id").expect("x-request-id");
    assert!(id != "client-id" && id.len() == 36, "{id}");
    assert_eq!(seen.header("x-envoy-internal"), None);

    // Internal at the edge only when nothing stands between: the controls and id stay.
    let seen = upstream_saw(
        format!("{edge_internal}/echo"),
        &[("x-request-id", "client-id")],
    )
    .await;
    assert_eq!(seen.header("x-envoy-internal"), Some("true"));
    assert_eq!(seen.header("x-envoy-external-address"), None);
    assert_eq!(seen.header("x-request-id"), Some("client-id"));
    let seen = upstream_saw(format!("{edge_internal}/echo"), SENT).await;
    assert_eq!(seen.header("x-envoy-internal"), None);
    assert_eq!(seen.header("x-envoy-external-address"), Some("127.0.0.1"));

    // One trusted hop: the client is the address before it, and its protocol is believed.
    const HOPS: &[(&str, &str)] = &[
        ("x-forwarded-for", "5.6.7.8, 9.9.9.9"),
        ("x-forwarded-proto", "https"),
    ];
    let seen = upstream_saw(format!("{trusted}/echo"), HOPS).await;
    assert_eq!(seen.header("x-envoy-external-address"), Some("9.9.9.9"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));

    let seen = upstream_saw(format!("{preserve}/echo"), SENT).await;
    assert_eq!(seen.header("x-request-id"), Some("client-id"));
    assert_eq!(seen.header("x-envoy-external-address"), Some("127.0.0.1"));

    // Behind an edge: nothing appended or named, the id kept.
    let seen = upstream_saw(format!("{behind}/echo"), SENT).await;
    assert_eq!(seen.header_all("x-forwarded-for"), ["1.2.3.4"]);
    assert_eq!(seen.header("x-envoy-external-address"), None);
    assert_eq!(seen.header("x-request-id"), Some("client-id"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-forwarded-port"), None, "not asked for");

    // Command operators in route header values: the client as decided (here the trusted
    // hop's), the peer, request headers with a fallback and a length, the protocol, the start
    // time; in the response, this host's name and the listener's port. A missing value adds
    // no header.
    let trusted_port = trusted.rsplit(':').next().expect("a port").to_string();
    let answer = get_with(&client, &format!("{trusted}/formatted"), HOPS).await;
    assert_eq!(answer.header("x-port"), Some(trusted_port.as_str()));
    assert!(
        answer.header("x-served-by").is_some_and(|h| !h.is_empty()),
        "{answer:?}"
    );
    let seen = echoed(&answer.body);
    assert_eq!(seen.header("x-client-ip"), Some("9.9.9.9"));
    assert_eq!(seen.header("x-peer"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-path"), Some("/forma via HTTP/1.1 (100%)"));
    let started = seen.header("x-started").expect("x-started");
    assert!(started.len() == 24 && started.ends_with('Z'), "{started}");
    assert_eq!(seen.header("x-empty"), None);

    // x-forwarded-proto is set before routing: a route can match on it.
    let answer = get_with(&client, &format!("{behind}/proto"), &[]).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "plain http"));
}
