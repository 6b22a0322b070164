//! HTTP details through the real binary: HTTP/1.1 and h2c downstream, request smuggling and
//! oversized headers refused (raw sockets, to see exactly what goes over the wire),
//! HTTP/1.0 only where accepted (426), `x-forwarded-for` passed on, `x-request-id` (and in
//! responses when asked), `via`, `x-envoy-upstream-service-time`, no
//! route and redirects, host port and dot stripping, route header mutations, internal-only
//! headers and `require_tls`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::raw_http::{raw_exchange, raw_exchange_within, status_line};
use common::xds_proxy::{
    XdsProxy, backend_snapshot, cluster, endpoints, get, get_with, h2c_client, http_listener,
    http1_client, http2_cluster, routes, yaml,
};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use outrider_upstream_server::echo::EchoedRequest;
use outrider_upstream_server::{UpstreamConfig, UpstreamServer};
use xds_conformance::Snapshot;

fn echoed(body: &str) -> EchoedRequest {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("echo JSON: {e}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_versions_headers_smuggling_limits_and_local_answers() {
    let (backend, snapshot) = backend_snapshot().await;
    let snapshot = snapshot
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(http_listener(
            "http10",
            0,
            "http10",
            "      http_protocol_options: { accept_http_10: true }\n      via: outrider-edge\n      always_set_request_id_in_response: true",
        ))
        .with(routes(
            r#"  - match: { prefix: /old }
    redirect: { path_redirect: /new }
  - match: { prefix: /echo }
    route: { cluster: backend }
  - match: { prefix: /status }
    route: { cluster: backend }"#,
        ));
    let proxy = XdsProxy::start("http", snapshot, &["--concurrency", "1"]).await;
    let ingress: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("ingress").await).into();
    let http10: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("http10").await).into();
    let base = format!("http://{ingress}");

    // HTTP/1.1 and h2c downstream both reach the upstream.
    for (client, version) in [(http1_client(), "HTTP/1.1"), (h2c_client(), "HTTP/2.0")] {
        let answer = get(&client, &format!("{base}/echo")).await;
        assert_eq!(answer.status, 200, "{version}: {answer:?}");
        let seen = echoed(&answer.body);
        assert_eq!(seen.upstream, "backend");
        // The upstream sees the client's authority, not the endpoint's address.
        assert_eq!(
            seen.authority.as_deref(),
            Some(ingress.to_string().as_str()),
            "{version}: {seen:?}"
        );
        // Envoy's header on every proxied response.
        let service_time = answer.header("x-envoy-upstream-service-time");
        assert!(
            service_time.is_some_and(|t| t.parse::<u64>().is_ok()),
            "{version}: {answer:?}"
        );
    }
    let client = http1_client();

    // x-request-id: generated when absent (a UUID), kept when present.
    let generated = echoed(&get(&client, &format!("{base}/echo")).await.body);
    let id = generated.header("x-request-id").expect("x-request-id");
    assert_eq!(id.len(), 36, "{id}");
    let kept = echoed(
        &get_with(
            &client,
            &format!("{base}/echo"),
            &[("x-request-id", "mine")],
        )
        .await
        .body,
    );
    assert_eq!(kept.header_all("x-request-id"), ["mine"]);
    // By default the response does not get it, nor a via.
    let plain = get(&client, &format!("{base}/echo")).await;
    assert_eq!(plain.header("x-request-id"), None);
    assert_eq!(plain.header("via"), None);

    // `via` goes on the request and the response, after what is there; with
    // `always_set_request_id_in_response` the response carries the request's id, local replies
    // included.
    let other = format!("http://{http10}");
    let answer = get_with(
        &client,
        &format!("{other}/echo"),
        &[("via", "1.1 client"), ("x-request-id", "abc")],
    )
    .await;
    let upstream_saw = echoed(&answer.body);
    assert_eq!(
        upstream_saw.header_all("via"),
        ["1.1 client, outrider-edge"]
    );
    assert_eq!(answer.header("via"), Some("outrider-edge"));
    assert_eq!(answer.header("x-request-id"), Some("abc"));
    let missing = get(&client, &format!("{other}/nowhere")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("via"), Some("outrider-edge"));
    let generated_id = missing.header("x-request-id").expect("the generated id");
    assert_eq!(generated_id.len(), 36, "{generated_id}");

    // x-forwarded-for is passed on untouched without use_remote_address (see
    // dataplane_client_address.rs for the edge). Without internal_address_config no request is internal (Envoy
    // since 1.33): a client's x-envoy-internal, x-envoy-* controls and client-certificate
    // header never reach the upstream.
    let spoofed = [
        ("x-forwarded-for", "10.0.0.1"),
        ("x-envoy-internal", "true"),
        ("x-envoy-retry-on", "5xx"),
        ("x-forwarded-client-cert", "By=spiffe://spoofed"),
    ];
    let inner = echoed(
        &get_with(&client, &format!("{base}/echo"), &spoofed)
            .await
            .body,
    );
    assert_eq!(inner.header_all("x-forwarded-for"), ["10.0.0.1"]);
    for (name, _) in &spoofed[1..] {
        assert_eq!(inner.header(name), None, "{name} reached the upstream");
    }
    let bare = echoed(&get(&client, &format!("{base}/echo")).await.body);
    assert_eq!(bare.header("x-forwarded-for"), None);

    // No route: 404. Redirect: 301 with the new location.
    let answer = get(&client, &format!("{base}/nowhere")).await;
    assert_eq!(answer.status, 404, "{answer:?}");
    let answer = get(&client, &format!("{base}/old")).await;
    assert_eq!(answer.status, 301, "{answer:?}");
    let location = answer.header("location").unwrap_or_default();
    assert!(location.ends_with("/new"), "{location}");

    // expect: 100-continue is answered by the proxy (100, then the response) and not passed
    // on, as Envoy does without proxy_100_continue.
    let expecting = format!(
        "POST /echo HTTP/1.1\r\nHost: {ingress}\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
    );
    let (continued, _) =
        tokio::task::block_in_place(|| raw_exchange(ingress, expecting.as_bytes()));
    assert_eq!(
        status_line(&continued),
        "HTTP/1.1 100 Continue",
        "{continued}"
    );
    let body = continued
        .split_once("\r\n\r\n{")
        .map(|(_, json)| format!("{{{json}"));
    let seen = echoed(&body.unwrap_or_default());
    assert_eq!(seen.header("expect"), None);
    assert_eq!(seen.body.as_deref(), Some("hi"));

    let served_before = backend.requests_served();
    let raw = tokio::task::spawn_blocking(move || {
        // Smuggling: Content-Length and Transfer-Encoding together. Refused with a 400 and
        // closed, as Envoy refuses it: neither it nor the request hidden after the chunked
        // body reaches the upstream.
        let smuggle = format!(
            "POST /echo HTTP/1.1\r\nHost: {ingress}\r\nContent-Length: 4\r\n\
             Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /status/299 HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        let smuggled = raw_exchange(ingress, smuggle.as_bytes());

        // Headers over max_request_headers_kb (Envoy's default, 60 KiB): 431 and closed.
        let big = format!(
            "GET /echo HTTP/1.1\r\nHost: {ingress}\r\nx-big: {}\r\n\r\n",
            "a".repeat(70 * 1024)
        );
        let too_big = raw_exchange(ingress, big.as_bytes());

        // Below the limit passes.
        let fits = format!(
            "GET /echo HTTP/1.1\r\nHost: {ingress}\r\nConnection: close\r\nx-big: {}\r\n\r\n",
            "a".repeat(40 * 1024)
        );
        let fits = raw_exchange(ingress, fits.as_bytes());

        // HTTP/1.0: Envoy's 426 (and close) unless the listener accepts it.
        let old = b"GET /echo HTTP/1.0\r\nHost: x\r\n\r\n";
        let refused = raw_exchange(ingress, old);
        let accepted = raw_exchange(http10, old);
        (smuggled, too_big, fits, refused, accepted)
    })
    .await
    .expect("raw exchanges");
    let (
        (smuggled, smuggled_closed),
        (too_big, too_big_closed),
        (fits, _),
        (refused, refused_closed),
        (accepted, _),
    ) = raw;
    assert!(
        status_line(&refused).ends_with(" 426 Upgrade Required"),
        "{refused}"
    );
    assert!(refused_closed, "the connection closes after the 426");
    assert!(status_line(&accepted).ends_with(" 200 OK"), "{accepted}");
    assert_eq!(
        status_line(&too_big),
        "HTTP/1.1 431 Request Header Fields Too Large",
        "{too_big}"
    );
    assert!(too_big_closed, "the connection stays open: {too_big}");
    assert_eq!(status_line(&fits), "HTTP/1.1 200 OK", "{fits}");
    let head = smuggled.split_once("\r\n\r\n").unwrap_or_default().0;
    assert!(status_line(&smuggled).contains(" 400 "), "{smuggled}");
    assert!(
        head.to_ascii_lowercase().contains("\r\nconnection: close"),
        "{smuggled}"
    );
    assert!(smuggled_closed, "the connection stays open: {smuggled}");
    assert_eq!(
        backend.requests_for("/status/299"),
        0,
        "a request was smuggled"
    );
    assert_eq!(
        backend.requests_served(),
        served_before + 2,
        "the request that fits and the accepted HTTP/1.0 one reached the upstream, nothing \
         else"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_upstreams_get_the_client_authority() {
    let backend = UpstreamServer::start_local(UpstreamConfig::new("h2-backend"))
        .await
        .expect("upstream");
    let snapshot = Snapshot::new("1")
        .with(common::xds_proxy::http2_cluster("backend"))
        .with(endpoints("backend", &[backend.addr()]))
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(
            r#"  - match: { prefix: /renamed }
    route: { cluster: backend, prefix_rewrite: /echo, host_rewrite_literal: rewritten.test }
  - match: { prefix: / }
    route: { cluster: backend }"#,
        ));
    let proxy = XdsProxy::start("h2-authority", snapshot, &["--concurrency", "1"]).await;
    let ingress: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("ingress").await).into();

    for (client, version) in [(http1_client(), "HTTP/1.1"), (h2c_client(), "HTTP/2.0")] {
        let answer = get(&client, &format!("http://{ingress}/echo")).await;
        assert_eq!(answer.status, 200, "{version}: {answer:?}");
        let seen = echoed(&answer.body);
        assert_eq!(seen.version, "HTTP/2.0", "{version}: {seen:?}");
        // `:authority` is what the client asked for, not the endpoint's address, and no Host
        // header contradicts it.
        assert_eq!(
            seen.authority.as_deref(),
            Some(ingress.to_string().as_str()),
            "{version}: {seen:?}"
        );
        assert_eq!(seen.header("host"), None, "{version}: {seen:?}");

        let renamed = echoed(
            &get(&client, &format!("http://{ingress}/renamed"))
                .await
                .body,
        );
        assert_eq!(
            renamed.authority.as_deref(),
            Some("rewritten.test"),
            "{version}: {renamed:?}"
        );
    }
    // Both downstream connections' requests went over one upstream connection.
    let last = echoed(
        &get(&http1_client(), &format!("http://{ingress}/echo"))
            .await
            .body,
    );
    assert_eq!(last.connection, 1, "{last:?}");
}

/// One keep-alive request: the connection stays open after its response.
const KEEP_ALIVE: &[u8] = b"GET /echo HTTP/1.1\r\nHost: idle\r\n\r\n";

/// The HCM's `common_http_protocol_options.idle_timeout` closes an idle HTTP/1.1 keep-alive
/// connection; by default (Envoy's 1 h) it stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_downstream_connections_close_at_the_idle_timeout() {
    let (_backend, snapshot) = backend_snapshot().await;
    let snapshot = snapshot
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(http_listener(
            "short-idle",
            0,
            "short_idle",
            "      common_http_protocol_options: { idle_timeout: 0.3s }",
        ))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: backend }",
        ));
    let proxy = XdsProxy::start("idle-timeout", snapshot, &["--concurrency", "1"]).await;
    let short: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("short-idle").await).into();
    let default: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("ingress").await).into();

    let (response, closed) = tokio::task::block_in_place(|| raw_exchange(short, KEEP_ALIVE));
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
    assert!(closed, "the idle connection was not closed within 5 s");

    // Three times the short timeout, and still open.
    let (response, closed) = tokio::task::block_in_place(|| {
        raw_exchange_within(default, KEEP_ALIVE, Duration::from_millis(900))
    });
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
    assert!(!closed, "closed at once with the default idle timeout");
}

/// The downstream HTTP/2 settings the connection manager asks for are the ones a client is
/// told: `max_concurrent_streams` (Envoy's 2^31 - 1 by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_are_told_the_configured_settings() {
    let (_backend, snapshot) = backend_snapshot().await;
    let snapshot = snapshot
        .with(http_listener("default", 0, "default", ""))
        .with(http_listener(
            "limited",
            0,
            "limited",
            "      http2_protocol_options: { max_concurrent_streams: 7, initial_stream_window_size: 131072 }",
        ))
        .with(routes(
            r#"  - match: { prefix: / }
    route: { cluster: backend }"#,
        ));
    let proxy = XdsProxy::start("h2-settings", snapshot, &["--concurrency", "1"]).await;
    for (listener, expected) in [("default", 2_147_483_647usize), ("limited", 7)] {
        let port = proxy.listener_port(listener).await;
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
        tokio::spawn(connection);
        let mut client = client.ready().await.expect("ready");
        let request = hyper::Request::get(format!("http://127.0.0.1:{port}/"))
            .body(())
            .expect("request");
        let (response, _) = client.send_request(request, true).expect("send");
        // The server's SETTINGS come before any answer: read once one is in.
        let response = response.await.expect("response");
        assert_eq!(response.status(), 200, "{listener}");
        assert_eq!(
            client.current_max_send_streams(),
            expected,
            "{listener}: the server's SETTINGS_MAX_CONCURRENT_STREAMS"
        );
    }
}

/// `strip_any_host_port`, `strip_matching_host_port` and `strip_trailing_host_dot`: the host
/// loses its port (any, or only the listener's own) and its trailing dot before routing, and
/// the upstream sees it without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_ports_are_stripped_as_configured() {
    let (_backend, snapshot) = backend_snapshot().await;
    let snapshot = snapshot
        .with(http_listener("any", 0, "any", "      strip_any_host_port: true"))
        .with(http_listener(
            "matching",
            0,
            "matching",
            "      strip_matching_host_port: true",
        ))
        .with(http_listener("none", 0, "none", ""))
        .with(http_listener(
            "dot",
            0,
            "dot",
            "      strip_trailing_host_dot: true\n      strip_any_host_port: true",
        ))
        // Only the bare host has a route: a port left on it finds none (404).
        .with(yaml::<RouteConfiguration>(
            "name: routes\nvirtual_hosts:\n- name: exact\n  domains: [example.com]\n  routes: [ { match: { prefix: / }, route: { cluster: backend } } ]\n",
        ));
    let proxy = XdsProxy::start("strip-port", snapshot, &["--concurrency", "1"]).await;
    let client = http1_client();
    let host_seen = |answer: &common::xds_proxy::Answer| {
        echoed(&answer.body)
            .header("host")
            .map(str::to_string)
            .unwrap_or_default()
    };
    let any = proxy.listener_port("any").await;
    let answer = get_with(
        &client,
        &format!("http://127.0.0.1:{any}/echo"),
        &[("host", "example.com:1234")],
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(host_seen(&answer), "example.com");

    let matching = proxy.listener_port("matching").await;
    let own = format!("example.com:{matching}");
    let answer = get_with(
        &client,
        &format!("http://127.0.0.1:{matching}/echo"),
        &[("host", own.as_str())],
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(host_seen(&answer), "example.com");
    let other = get_with(
        &client,
        &format!("http://127.0.0.1:{matching}/echo"),
        &[("host", "example.com:1234")],
    )
    .await;
    assert_eq!(
        other.status, 404,
        "another port stays, and no domain matches it"
    );

    let none = proxy.listener_port("none").await;
    let kept = get_with(
        &client,
        &format!("http://127.0.0.1:{none}/echo"),
        &[("host", "example.com:1234")],
    )
    .await;
    assert_eq!(
        kept.status, 404,
        "without stripping the port stays: {kept:?}"
    );
    let dot = proxy.listener_port("dot").await;
    for host in ["example.com.", "example.com.:1234"] {
        let answer = get_with(
            &client,
            &format!("http://127.0.0.1:{dot}/echo"),
            &[("host", host)],
        )
        .await;
        assert_eq!(answer.status, 200, "{host}: {answer:?}");
        assert_eq!(host_seen(&answer), "example.com", "{host}");
    }
    let dotted = get_with(
        &client,
        &format!("http://127.0.0.1:{any}/echo"),
        &[("host", "example.com.")],
    )
    .await;
    assert_eq!(
        dotted.status, 404,
        "without the option the dot stays, and no domain matches: {dotted:?}"
    );
}

/// Header mutations of the route table, virtual host and route: the upstream sees the request
/// ones, the client the response ones (on direct responses too), the table's winning a
/// conflict as in Envoy by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_header_mutations_reach_upstream_and_client() {
    let (backend, snapshot) = backend_snapshot().await;
    let overwrite = "append_action: OVERWRITE_IF_EXISTS_OR_ADD";
    let routes = |most_specific_wins: bool| {
        format!(
            r#"
name: routes
most_specific_header_mutations_wins: {most_specific_wins}
internal_only_headers: [ X-Internal-Only ]
request_headers_to_add:
- {{ header: {{ key: x-level, value: table }}, {overwrite} }}
- {{ header: {{ key: x-table-client, value: '%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%' }} }}
response_headers_to_add: [ {{ header: {{ key: x-level, value: table }}, {overwrite} }} ]
virtual_hosts:
- name: all
  domains: ['*']
  request_headers_to_add:
  - {{ header: {{ key: x-vhost, value: added }} }}
  - {{ header: {{ key: x-vhost-method, value: '%REQ(:METHOD)%' }} }}
  request_headers_to_remove: [ x-secret ]
  response_headers_to_remove: [ x-upstream-name ]
  routes:
  - match: {{ prefix: /echo }}
    route: {{ cluster: backend }}
    request_headers_to_add:
    - {{ header: {{ key: x-level, value: route }}, {overwrite} }}
    - {{ header: {{ key: x-percent, value: '100%%' }} }}
    - {{ header: {{ key: x-empty, value: '' }} }}
    - {{ header: {{ key: x-kept-empty, value: '' }}, keep_empty_value: true }}
    response_headers_to_add: [ {{ header: {{ key: x-route, value: echo }} }} ]
  - match: {{ prefix: /direct }}
    direct_response: {{ status: 200, body: {{ inline_string: hi }} }}
    response_headers_to_add: [ {{ header: {{ key: x-route, value: direct }} }} ]
  - match: {{ prefix: /weighted }}
    route:
      prefix_rewrite: /echo
      weighted_clusters:
        clusters:
        - name: backend
          weight: 1
          request_headers_to_add:
          - {{ header: {{ key: x-order, value: weighted }} }}
          - {{ header: {{ key: x-weighted-port, value: '%DOWNSTREAM_LOCAL_PORT%' }} }}
          request_headers_to_remove: [ x-drop ]
          response_headers_to_add: [ {{ header: {{ key: x-weighted, value: picked }} }} ]
          response_headers_to_remove: [ content-type ]
    request_headers_to_add: [ {{ header: {{ key: x-order, value: route }} }} ]
"#
        )
    };
    let snapshot = snapshot
        .with(http_listener("http", 0, "http", ""))
        .with(yaml::<RouteConfiguration>(&routes(false)));
    let proxy = XdsProxy::start("header-mutations", snapshot, &["--concurrency", "1"]).await;
    let port = proxy.listener_port("http").await;
    let client = http1_client();

    let answer = get_with(
        &client,
        &format!("http://127.0.0.1:{port}/echo"),
        &[
            ("x-secret", "token"),
            ("x-vhost", "client"),
            ("x-level", "client"),
            ("x-internal-only", "1"),
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = echoed(&answer.body);
    let values = |name: &str| {
        seen.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(values("x-level"), ["table"], "the table's wins");
    assert_eq!(
        values("x-vhost"),
        ["client", "added"],
        "appended by default"
    );
    assert!(values("x-secret").is_empty(), "removed: {seen:?}");
    assert!(
        values("x-internal-only").is_empty(),
        "internal_only_headers leave external requests: {seen:?}"
    );
    assert_eq!(values("x-percent"), ["100%"]);
    assert!(values("x-empty").is_empty(), "empty values are skipped");
    assert_eq!(values("x-kept-empty"), [""]);
    assert_eq!(answer.header("x-level"), Some("table"));
    assert_eq!(answer.header("x-route"), Some("echo"));
    assert_eq!(answer.upstream(), "", "the upstream's header was removed");
    // Header-value operators at the route table's and the virtual host's level.
    assert_eq!(values("x-table-client"), ["127.0.0.1"]);
    assert_eq!(values("x-vhost-method"), ["GET"]);
    assert!(answer.header("content-type").is_some(), "{answer:?}");

    let direct = get_with(&client, &format!("http://127.0.0.1:{port}/direct"), &[]).await;
    assert_eq!(direct.status, 200, "{direct:?}");
    assert_eq!(direct.body, "hi");
    assert_eq!(direct.header("x-route"), Some("direct"));
    assert_eq!(direct.header("x-level"), Some("table"));

    // The picked weighted cluster's mutations go first, then the route's.
    let weighted = get_with(
        &client,
        &format!("http://127.0.0.1:{port}/weighted"),
        &[("x-drop", "1"), ("x-keep", "1")],
    )
    .await;
    assert_eq!(weighted.status, 200, "{weighted:?}");
    assert_eq!(weighted.header("x-weighted"), Some("picked"));
    assert_eq!(
        weighted.header("content-type"),
        None,
        "the weighted cluster's response_headers_to_remove"
    );
    let seen = echoed(&weighted.body);
    assert_eq!(seen.header_all("x-order"), ["weighted", "route"]);
    assert_eq!(seen.header_all("x-weighted-port"), [port.to_string()]);
    assert!(seen.header_all("x-drop").is_empty(), "{seen:?}");
    assert_eq!(seen.header_all("x-keep"), ["1"]);

    // most_specific_header_mutations_wins: the route's value is the one the upstream sees.
    proxy.server.set_snapshot(
        Snapshot::new("2")
            .with(cluster("backend", ""))
            .with(endpoints("backend", &[backend.addr()]))
            .with(http_listener("http", 0, "http", ""))
            .with(yaml::<RouteConfiguration>(&routes(true))),
    );
    proxy.wait_for_version("rds", "2").await;
    let answer = get_with(
        &client,
        &format!("http://127.0.0.1:{port}/echo"),
        &[("x-level", "client")],
    )
    .await;
    assert_eq!(echoed(&answer.body).header_all("x-level"), ["route"]);
}

/// `require_tls`: a virtual host that wants https answers a request that did not come over
/// it (by `x-forwarded-proto`) with a 301 to the https URL; `EXTERNAL_ONLY` lets internal
/// requests through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosts_requiring_tls_redirect_plain_requests() {
    let (backend, snapshot) = backend_snapshot().await;
    let snapshot = snapshot
        .with(http_listener(
            "http",
            0,
            "http",
            "      internal_address_config: { cidr_ranges: [ { address_prefix: 127.0.0.1, prefix_len: 32 } ] }",
        ))
        .with(yaml::<RouteConfiguration>(
            r#"
name: routes
virtual_hosts:
- name: secure
  domains: [secure.example]
  require_tls: ALL
  routes: [ { match: { prefix: / }, route: { cluster: backend } } ]
- name: mixed
  domains: [mixed.example, "mixed.example:8080"]
  require_tls: EXTERNAL_ONLY
  routes: [ { match: { prefix: / }, route: { cluster: backend } } ]
"#,
        ));
    let proxy = XdsProxy::start("require-tls", snapshot, &["--concurrency", "1"]).await;
    let port = proxy.listener_port("http").await;
    let client = http1_client();
    let request = |host: &'static str, extra: &'static [(&'static str, &'static str)]| {
        let client = client.clone();
        async move {
            let mut headers = vec![("host", host)];
            headers.extend_from_slice(extra);
            get_with(
                &client,
                &format!("http://127.0.0.1:{port}/echo?q=1"),
                &headers,
            )
            .await
        }
    };

    let plain = request("secure.example", &[]).await;
    assert_eq!(plain.status, 301, "{plain:?}");
    assert_eq!(
        plain.header("location"),
        Some("https://secure.example/echo?q=1")
    );
    assert_eq!(backend.requests_served(), 0);
    let https = request("secure.example", &[("x-forwarded-proto", "https")]).await;
    assert_eq!(
        (https.status, https.upstream()),
        (200, "backend"),
        "{https:?}"
    );
    let empty = request("secure.example", &[("x-forwarded-proto", "")]).await;
    assert_eq!(empty.status, 404, "Envoy finds no route: {empty:?}");

    let external = request("mixed.example:8080", &[]).await;
    assert_eq!(external.status, 301, "{external:?}");
    assert_eq!(
        external.header("location"),
        Some("https://mixed.example:8080/echo?q=1")
    );
    let internal = request("mixed.example", &[("x-forwarded-for", "127.0.0.1")]).await;
    assert_eq!(
        (internal.status, internal.upstream()),
        (200, "backend"),
        "{internal:?}"
    );
    let spoofed = request(
        "mixed.example",
        &[("x-envoy-internal", "true"), ("x-forwarded-for", "8.8.8.8")],
    )
    .await;
    assert_eq!(spoofed.status, 301, "a client cannot say it is internal");
}

/// `auto_host_rewrite`: the upstream sees the chosen endpoint's hostname as its Host (HTTP/1.1)
/// or `:authority` (HTTP/2), the original in `x-forwarded-host` when asked; an endpoint
/// without a hostname leaves the host alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_host_rewrite_uses_the_endpoints_hostname() {
    let (backend, snapshot) = backend_snapshot().await;
    let h2 = UpstreamServer::start_local(UpstreamConfig::new("h2"))
        .await
        .expect("upstream");
    let named = |cluster: &str, addr: SocketAddr| {
        yaml::<ClusterLoadAssignment>(&format!(
            "cluster_name: {cluster}\nendpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ hostname: {cluster}.internal, address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }} }} ] }} ]",
            addr.port()
        ))
    };
    let snapshot = snapshot
        .with(cluster("named", ""))
        .with(named("named", backend.addr()))
        .with(http2_cluster("named-h2"))
        .with(named("named-h2", h2.addr()))
        .with(http_listener("http", 0, "http", ""))
        .with(routes(
            r#"  - match: { prefix: /named-h2 }
    route: { cluster: named-h2, prefix_rewrite: /echo, auto_host_rewrite: true }
  - match: { prefix: /named }
    route: { cluster: named, prefix_rewrite: /echo, auto_host_rewrite: true, append_x_forwarded_host: true }
  - match: { prefix: /nameless }
    route: { cluster: backend, prefix_rewrite: /echo, auto_host_rewrite: true }"#,
        ));
    let proxy = XdsProxy::start("auto-host", snapshot, &["--concurrency", "1"]).await;
    let port = proxy.listener_port("http").await;
    let client = http1_client();
    let seen = |path: &'static str| {
        let client = client.clone();
        async move {
            let answer = get_with(
                &client,
                &format!("http://127.0.0.1:{port}{path}"),
                &[("host", "front.example")],
            )
            .await;
            assert_eq!(answer.status, 200, "{path}: {answer:?}");
            echoed(&answer.body)
        }
    };

    let named = seen("/named").await;
    assert_eq!(named.header("host"), Some("named.internal"));
    assert_eq!(named.header_all("x-forwarded-host"), ["front.example"]);
    let over_h2 = seen("/named-h2").await;
    assert_eq!(over_h2.version, "HTTP/2.0");
    assert_eq!(over_h2.authority.as_deref(), Some("named-h2.internal"));
    let nameless = seen("/nameless").await;
    assert_eq!(nameless.header("host"), Some("front.example"));
    assert_eq!(nameless.header("x-forwarded-host"), None);
}

/// `server` on every response, local replies included: the connection manager's name by
/// default (overwriting the upstream's), the upstream's kept with `APPEND_IF_ABSENT`,
/// nothing added with `PASS_THROUGH`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_header_as_transformed() {
    let (_backend, snapshot) = backend_snapshot().await;
    let snapshot = snapshot
        .with(http_listener(
            "overwrite",
            0,
            "overwrite",
            "      server_name: edge",
        ))
        .with(http_listener(
            "absent",
            0,
            "absent",
            "      server_name: edge\n      server_header_transformation: APPEND_IF_ABSENT",
        ))
        .with(http_listener(
            "pass",
            0,
            "pass",
            "      server_header_transformation: PASS_THROUGH",
        ))
        .with(routes(
            "  - match: { prefix: /echo }\n    route: { cluster: backend }",
        ));
    let proxy = XdsProxy::start("server-header", snapshot, &["--concurrency", "1"]).await;
    let client = http1_client();
    let upstream = outrider_upstream_server::SERVER_HEADER_VALUE;
    for (listener, proxied, local) in [
        ("overwrite", Some("edge"), Some("edge")),
        ("absent", Some(upstream), Some("edge")),
        ("pass", Some(upstream), None),
    ] {
        let port = proxy.listener_port(listener).await;
        let answer = get(&client, &format!("http://127.0.0.1:{port}/echo")).await;
        assert_eq!(answer.status, 200, "{listener}: {answer:?}");
        assert_eq!(
            answer.header("server"),
            proxied,
            "{listener}: upstream answer"
        );
        let missing = get(&client, &format!("http://127.0.0.1:{port}/nowhere")).await;
        assert_eq!(missing.status, 404, "{listener}: {missing:?}");
        assert_eq!(missing.header("server"), local, "{listener}: local reply");
    }
}

/// `headers_with_underscores_action`: `DROP_HEADER` keeps such headers from the upstream,
/// `REJECT_REQUEST` answers 400 and closes the HTTP/1.1 connection; `ALLOW` (the default)
/// passes them on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_with_underscores_as_configured() {
    let (_backend, snapshot) = backend_snapshot().await;
    let action = |action: &str| {
        format!(
            "      common_http_protocol_options: {{ headers_with_underscores_action: {action} }}"
        )
    };
    let snapshot = snapshot
        .with(http_listener("drop", 0, "drop", &action("DROP_HEADER")))
        .with(http_listener(
            "reject",
            0,
            "reject",
            &action("REJECT_REQUEST"),
        ))
        .with(http_listener("allow", 0, "allow", ""))
        .with(routes(
            "  - match: { prefix: /echo }\n    route: { cluster: backend }",
        ));
    let proxy = XdsProxy::start("underscores", snapshot, &["--concurrency", "1"]).await;
    let client = http1_client();
    let headers = [("x_under", "1"), ("x-dash", "1")];

    let drop = proxy.listener_port("drop").await;
    let answer = get_with(&client, &format!("http://127.0.0.1:{drop}/echo"), &headers).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = echoed(&answer.body);
    assert_eq!(seen.header("x_under"), None, "dropped");
    assert_eq!(seen.header("x-dash"), Some("1"));

    let allow = proxy.listener_port("allow").await;
    let answer = get_with(&client, &format!("http://127.0.0.1:{allow}/echo"), &headers).await;
    assert_eq!(echoed(&answer.body).header("x_under"), Some("1"));

    let reject = SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("reject").await));
    let (refused, closed) = tokio::task::spawn_blocking(move || {
        raw_exchange(
            reject,
            b"GET /echo HTTP/1.1\r\nHost: x\r\nx_under: 1\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n",
        )
    })
    .await
    .expect("raw exchange");
    assert_eq!(
        status_line(&refused),
        "HTTP/1.1 400 Bad Request",
        "{refused}"
    );
    assert!(closed, "the connection closes after the 400");
    assert_eq!(
        refused.matches("HTTP/1.1 ").count(),
        1,
        "the pipelined request is not answered: {refused}"
    );
}

/// `max_request_headers_kb` below hyper's 8 KiB buffer still holds exactly: over the limit is
/// a 431 and a closed connection, under it is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_request_header_limits_hold() {
    let (_backend, snapshot) = backend_snapshot().await;
    let snapshot = snapshot
        .with(http_listener(
            "small",
            0,
            "small",
            "      max_request_headers_kb: 2",
        ))
        .with(routes(
            "  - match: { prefix: /echo }\n    route: { cluster: backend }",
        ));
    let proxy = XdsProxy::start("small-headers", snapshot, &["--concurrency", "1"]).await;
    let small = SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("small").await));
    let request = |size: usize| {
        format!(
            "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-big: {}\r\n\r\n",
            "a".repeat(size)
        )
    };
    let (over, under) = tokio::task::spawn_blocking(move || {
        (
            raw_exchange(small, request(3 * 1024).as_bytes()),
            raw_exchange(small, request(1024).as_bytes()),
        )
    })
    .await
    .expect("raw exchanges");
    assert_eq!(
        status_line(&over.0),
        "HTTP/1.1 431 Request Header Fields Too Large",
        "{}",
        over.0
    );
    assert!(over.1, "closed after the 431");
    assert_eq!(status_line(&under.0), "HTTP/1.1 200 OK", "{}", under.0);
}
