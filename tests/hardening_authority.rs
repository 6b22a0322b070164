//! Issue 10's attack vectors on the request's authority, replayed through the real binary: a
//! client must not reach a virtual host it was routed past by giving the upstream another
//! `Host` than the one routing read, nor with an authority Envoy would refuse. The routes answer 403 for `admin.internal` and send
//! everything else to an upstream that echoes what it received.

mod common;

use std::net::SocketAddr;

use common::raw_http::{raw_exchange, status_line};
use common::xds_proxy::{XdsProxy, backend_snapshot, get_with, h2c_client, http_listener, yaml};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use outrider_upstream_server::UpstreamServer;
use outrider_upstream_server::echo::EchoedRequest;

const ROUTES: &str = r#"
name: routes
virtual_hosts:
- name: admin
  domains: ["admin.internal"]
  routes:
  - match: { prefix: / }
    direct_response: { status: 403, body: { inline_string: "admins only" } }
- name: public
  domains: ["*"]
  routes:
  - match: { prefix: / }
    route: { cluster: backend }
"#;

/// The proxy, its listener, and the upstream (which must live as long as the test).
async fn proxy(test: &str) -> (XdsProxy, SocketAddr, UpstreamServer) {
    let (backend, snapshot) = backend_snapshot().await;
    let routes: RouteConfiguration = yaml(ROUTES);
    let snapshot = snapshot
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes);
    let proxy = XdsProxy::start(test, snapshot, &["--concurrency", "1"]).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("ingress").await));
    (proxy, addr, backend)
}

/// The body after the head of a raw HTTP/1.1 response.
fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

fn echoed(body: &str) -> EchoedRequest {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("echo JSON: {e}: {body}"))
}

/// HTTP/1.1: an absolute-form target is the authority (RFC 9112 §3.2.2); the client's `Host`
/// neither routes nor reaches the upstream, and two `Host` headers are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_host_cannot_differ_from_the_routed_authority() {
    let (_proxy, addr, _backend) = proxy("hardening-authority-h1").await;
    let exchange = |request: &str| {
        let (response, closed) = raw_exchange(addr, request.as_bytes());
        (response, closed)
    };
    tokio::task::block_in_place(|| {
        // Routed by the target's authority: what the upstream gets too.
        let (response, _) = exchange(
            "GET http://public.example/echo HTTP/1.1\r\nhost: admin.internal\r\nconnection: close\r\n\r\n",
        );
        assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
        let seen = echoed(body(&response));
        assert_eq!(
            seen.authority.as_deref(),
            Some("public.example"),
            "{seen:?}"
        );
        assert_eq!(seen.header_all("host"), ["public.example"], "{seen:?}");

        // The other way round, the target's authority still decides: 403.
        let (response, _) = exchange(
            "GET http://admin.internal/secret HTTP/1.1\r\nhost: public.example\r\nconnection: close\r\n\r\n",
        );
        assert!(status_line(&response).contains(" 403 "), "{response}");

        // Two Host headers: 400, and the connection closes.
        let (response, closed) = exchange(
            "GET /secret HTTP/1.1\r\nhost: public.example\r\nhost: admin.internal\r\n\r\n",
        );
        assert!(status_line(&response).contains(" 400 "), "{response}");
        assert!(closed, "the connection closes after the 400");

        // Userinfo in the target is not part of the authority: still the admin host.
        let (response, _) = exchange(
            "GET http://guest@admin.internal/secret HTTP/1.1\r\nhost: public.example\r\nconnection: close\r\n\r\n",
        );
        assert!(status_line(&response).contains(" 403 "), "{response}");

        // A target in another scheme, a Host no authority can be, or no Host at all: 400.
        for request in [
            "GET https://admin.internal/secret HTTP/1.1\r\nhost: public.example\r\n\r\n",
            "GET ftp://public.example/ HTTP/1.1\r\nhost: public.example\r\n\r\n",
            "GET /secret HTTP/1.1\r\nhost: admin.internal/x\r\nconnection: close\r\n\r\n",
            "GET /secret HTTP/1.1\r\nconnection: close\r\n\r\n",
        ] {
            let (response, _) = exchange(request);
            assert!(
                status_line(&response).contains(" 400 "),
                "{request:?}: {response}"
            );
        }
    });
}

/// HTTP/2: `:authority` is the authority; a `host` header beside it is dropped (RFC 9113
/// §8.3.1, as Envoy), so it never reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_host_header_cannot_differ_from_authority() {
    let (_proxy, addr, _backend) = proxy("hardening-authority-h2").await;
    let client = h2c_client();
    let answer = get_with(
        &client,
        &format!("http://{addr}/echo"),
        &[("host", "admin.internal")],
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = echoed(&answer.body);
    let authority = addr.to_string();
    assert_eq!(
        seen.authority.as_deref(),
        Some(authority.as_str()),
        "{seen:?}"
    );
    assert_eq!(seen.header_all("host"), [authority.as_str()], "{seen:?}");
}
