//! Issue 11's upstream TLS through the real binary, with certificates the test makes: a
//! cluster with an `UpstreamTlsContext` speaks TLS to its endpoints, sends its SNI and client
//! certificate, offers `h2` where it speaks HTTP/2, and checks the server's certificate
//! against its CA and SAN matchers (a mismatch is a failed connect, and no request reaches
//! the upstream); without a validation context any server certificate is accepted, as Envoy;
//! `cluster.<name>.ssl.*` counts the handshakes.

mod common;

use std::net::SocketAddr;

use common::pki::{Ca, Leaf, yaml_string};
use common::raw_http::{raw_exchange, status_line};
use common::xds_proxy::{XdsProxy, cluster, endpoints, http_listener, routes};
use outrider_upstream_server::echo::EchoedRequest;
use outrider_upstream_server::{UpstreamConfig, UpstreamServer, UpstreamTls};
use xds_conformance::Snapshot;

const BACKEND_ID: &str = "spiffe://outrider.test/ns/default/sa/backend";
const PROXY_ID: &str = "spiffe://outrider.test/ns/default/sa/proxy";

/// An `UpstreamTlsContext` as cluster-level YAML: SNI, client certificate, and a CA with a
/// URI SAN matcher when `validate` names the expected server identity.
fn tls_context(client: &Leaf, ca: &Ca, validate: Option<&str>) -> String {
    let validation = match validate {
        Some(identity) => format!(
            "      validation_context:
        trusted_ca: {{ inline_string: {} }}
        match_typed_subject_alt_names: [ {{ san_type: URI, matcher: {{ exact: \"{identity}\" }} }} ]
",
            yaml_string(&ca.pem)
        ),
        None => String::new(),
    };
    format!(
        "transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
    sni: backend.internal
    common_tls_context:
      tls_certificates:
      - certificate_chain: {{ inline_string: {} }}
        private_key: {{ inline_string: {} }}
{validation}",
        yaml_string(&client.cert),
        yaml_string(&client.key)
    )
}

const HTTP2: &str = "typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    '@type': type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    explicit_http_config: { http2_protocol_options: {} }
";

fn echoed(response: &str) -> EchoedRequest {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("echo JSON ({e}): {response}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clusters_speak_tls_and_check_the_servers_certificate() {
    let ca = Ca::new("outrider test CA");
    let backend_leaf = ca.leaf(&["dns:backend.internal", &format!("uri:{BACKEND_ID}")]);
    let proxy_leaf = ca.leaf(&[&format!("uri:{PROXY_ID}")]);
    // Requires a client certificate from the CA.
    let backend = UpstreamServer::start_local(UpstreamConfig::new("backend").with_tls(
        UpstreamTls::new(&backend_leaf.cert, &backend_leaf.key, Some(&ca.pem)).expect("TLS"),
    ))
    .await
    .expect("upstream");
    // A server whose certificate no one here trusts, asking for no client certificate.
    let stranger_ca = Ca::new("stranger CA");
    let stranger_leaf = stranger_ca.leaf(&["dns:stranger.internal"]);
    let stranger =
        UpstreamServer::start_local(UpstreamConfig::new("stranger").with_tls(
            UpstreamTls::new(&stranger_leaf.cert, &stranger_leaf.key, None).expect("TLS"),
        ))
        .await
        .expect("upstream");

    let verified = tls_context(&proxy_leaf, &ca, Some(BACKEND_ID));
    let snapshot = Snapshot::new("1")
        .with(cluster("tls-h1", &verified))
        .with(cluster("tls-h2", &format!("{verified}{HTTP2}")))
        .with(cluster(
            "wrong-san",
            &tls_context(
                &proxy_leaf,
                &ca,
                Some("spiffe://outrider.test/ns/default/sa/other"),
            ),
        ))
        .with(cluster("unverified", &tls_context(&proxy_leaf, &ca, None)))
        .with(cluster("plaintext", ""))
        .with(endpoints("tls-h1", &[backend.addr()]))
        .with(endpoints("tls-h2", &[backend.addr()]))
        .with(endpoints("wrong-san", &[backend.addr()]))
        .with(endpoints("unverified", &[stranger.addr()]))
        .with(endpoints("plaintext", &[backend.addr()]))
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(
            "  - match: { prefix: /h1 }
    route: { cluster: tls-h1, prefix_rewrite: /echo }
  - match: { prefix: /h2 }
    route: { cluster: tls-h2, prefix_rewrite: /echo }
  - match: { prefix: /wrong }
    route: { cluster: wrong-san, prefix_rewrite: /echo }
  - match: { prefix: /any }
    route: { cluster: unverified, prefix_rewrite: /echo }
  - match: { prefix: /plain }
    route: { cluster: plaintext, prefix_rewrite: /echo }",
        ));
    let proxy = XdsProxy::start("tls-upstream", snapshot, &["--concurrency", "1"]).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("ingress").await));
    let get = |path: &str| {
        let request = format!("GET {path} HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n");
        tokio::task::block_in_place(|| raw_exchange(addr, request.as_bytes())).0
    };

    let h1 = get("/h1");
    assert_eq!(status_line(&h1), "HTTP/1.1 200 OK", "{h1}");
    let seen = echoed(&h1);
    let tls = seen.tls.expect("the upstream saw TLS");
    assert_eq!(tls.sni.as_deref(), Some("backend.internal"));
    assert_eq!(
        tls.peer_uri_sans,
        [PROXY_ID],
        "the proxy's client certificate"
    );
    assert_eq!(seen.version, "HTTP/1.1");

    let h2 = get("/h2");
    assert_eq!(status_line(&h2), "HTTP/1.1 200 OK", "{h2}");
    let seen = echoed(&h2);
    assert_eq!(seen.version, "HTTP/2.0");
    assert_eq!(seen.tls.and_then(|t| t.alpn).as_deref(), Some("h2"));

    // No validation context: the stranger's certificate is accepted.
    let any = get("/any");
    assert_eq!(status_line(&any), "HTTP/1.1 200 OK", "{any}");
    assert_eq!(echoed(&any).upstream, "stranger");

    // The server is not who the SAN matcher expects: no request goes out.
    let before = backend.requests_for("/echo");
    let wrong = get("/wrong");
    assert_eq!(
        status_line(&wrong),
        "HTTP/1.1 503 Service Unavailable",
        "{wrong}"
    );
    assert!(
        proxy
            .stat("cluster.wrong-san.upstream_cx_connect_fail")
            .await
            >= Some(1),
        "the refused handshake is a failed connect"
    );
    // Plaintext to a TLS port gets nowhere either.
    let plain = get("/plain");
    assert_eq!(
        status_line(&plain),
        "HTTP/1.1 503 Service Unavailable",
        "{plain}"
    );
    assert_eq!(backend.requests_for("/echo"), before);

    // Each cluster's handshakes counted under Envoy's names (TLS 1.2: Envoy's client default).
    for (stat, at_least) in [
        ("cluster.tls-h1.ssl.handshake", 1),
        ("cluster.tls-h1.ssl.versions.TLSv1.2", 1),
        ("cluster.tls-h2.ssl.handshake", 1),
        ("cluster.wrong-san.ssl.fail_verify_san", 1),
    ] {
        let value = proxy.stat(stat).await;
        assert!(value >= Some(at_least), "{stat}: {value:?}");
    }
    assert_eq!(proxy.stat("cluster.wrong-san.ssl.handshake").await, Some(0));
    assert_eq!(proxy.stat("cluster.plaintext.ssl.handshake").await, None);
}
