//! Issue 11's downstream TLS through the real binary, with certificates the test makes: a TLS
//! listener serves HTTPS (HTTP/2 or HTTP/1.1 by ALPN, and a client whose ALPN shares nothing
//! with the listener's still gets through, as with Envoy), says so in `x-forwarded-proto`
//! and refuses plaintext; with
//! `require_client_certificate` and a SAN matcher, a client without a certificate, with one
//! from another CA or with the wrong SAN is refused and the right one served.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::https::{client_config, get};
use common::pki::{Ca, yaml_string};
use common::raw_http::raw_exchange;
use common::xds_proxy::{XdsProxy, cluster, endpoints, eventually, http_listener, routes, yaml};
use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use outrider_upstream_server::echo::EchoedRequest;
use outrider_upstream_server::{UpstreamConfig, UpstreamServer};
use xds_conformance::Snapshot;

const SERVER_NAME: &str = "server.example";
const CLIENT_ID: &str = "spiffe://outrider.test/ns/default/sa/client";

/// An HTTP listener whose chain terminates TLS with `context` (DownstreamTlsContext YAML).
fn tls_listener(name: &str, context: &str) -> Listener {
    tls_listener_with(name, context, "")
}

/// `tls_listener` with more connection manager YAML.
fn tls_listener_with(name: &str, context: &str, hcm_extra: &str) -> Listener {
    let mut listener = http_listener(name, 0, name, hcm_extra);
    listener.filter_chains[0].transport_socket = Some(yaml::<TransportSocket>(&format!(
        "name: envoy.transport_sockets.tls
typed_config:
  '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
{context}"
    )));
    listener
}

struct Setup {
    proxy: XdsProxy,
    ca: Ca,
    /// The listeners' access logs (`tls.log`, `mtls.log`): SNI, path, TLS version, cipher,
    /// client URI SANs.
    logs: common::TempDir,
    _backend: UpstreamServer,
}

impl Setup {
    async fn addr(&self, listener: &str) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.proxy.listener_port(listener).await))
    }
}

/// The proxy with `listeners` routing everything to one upstream server.
async fn proxy_to_backend<const N: usize>(
    test: &str,
    listeners: [Listener; N],
) -> (XdsProxy, UpstreamServer) {
    let backend = UpstreamServer::start_local(UpstreamConfig::new("backend"))
        .await
        .expect("upstream");
    let mut snapshot = Snapshot::new("1")
        .with(cluster("backend", ""))
        .with(endpoints("backend", &[backend.addr()]))
        .with(routes(
            "  - match: { prefix: /old }\n    redirect: { path_redirect: /new }\n  - match: { prefix: / }\n    route: { cluster: backend }",
        ));
    for listener in listeners {
        snapshot = snapshot.with(listener);
    }
    let proxy = XdsProxy::start(test, snapshot, &["--concurrency", "1"]).await;
    (proxy, backend)
}

async fn setup(test: &str) -> Setup {
    let ca = Ca::new("outrider test CA");
    let server = ca.leaf(&[&format!("dns:{SERVER_NAME}")]);
    let certificate = format!(
        "  common_tls_context:
    alpn_protocols: [h2, http/1.1]
    tls_certificates:
    - certificate_chain: {{ inline_string: {} }}
      private_key: {{ inline_string: {} }}
",
        yaml_string(&server.cert),
        yaml_string(&server.key)
    );
    let mutual = format!(
        "  require_client_certificate: true
{certificate}    validation_context:
      trusted_ca: {{ inline_string: {} }}
      match_typed_subject_alt_names: [ {{ san_type: URI, matcher: {{ exact: \"{CLIENT_ID}\" }} }} ]
",
        yaml_string(&ca.pem)
    );
    let logs = common::temp_dir(test);
    let format = "%REQUESTED_SERVER_NAME% %REQ(:PATH)% %DOWNSTREAM_TLS_VERSION% %DOWNSTREAM_TLS_CIPHER% %DOWNSTREAM_PEER_URI_SAN%\\n";
    let logged = |file: &str| common::file_access_log("tls", &logs.join(file), format);
    let listeners = [
        tls_listener_with("tls", &certificate, &logged("tls.log")),
        tls_listener_with("mtls", &mutual, &logged("mtls.log")),
    ];
    let (proxy, backend) = proxy_to_backend(test, listeners).await;
    Setup {
        proxy,
        ca,
        logs,
        _backend: backend,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_listener_serves_https_by_alpn_and_refuses_plaintext() {
    let setup = setup("tls-downstream").await;
    let addr = setup.addr("tls").await;
    for (alpn, version) in [
        (&["h2", "http/1.1"][..], http::Version::HTTP_2),
        (&["http/1.1"][..], http::Version::HTTP_11),
        (&[][..], http::Version::HTTP_11),
        // Nothing in common: Envoy goes on without ALPN (rustls alone would refuse).
        (&["spdy/3"][..], http::Version::HTTP_11),
    ] {
        let config = client_config(&setup.ca.pem, alpn, None);
        let fetched = get(addr, SERVER_NAME, config, "/")
            .await
            .unwrap_or_else(|e| panic!("ALPN {alpn:?}: {e}"));
        assert_eq!(
            (fetched.status, fetched.version),
            (200, version),
            "ALPN {alpn:?}"
        );
        assert_eq!(fetched.upstream.as_deref(), Some("backend"));
    }
    // The upstream learns the client came over TLS.
    let config = client_config(&setup.ca.pem, &["h2"], None);
    let echoed = get(addr, SERVER_NAME, config, "/echo").await.expect("echo");
    let seen: EchoedRequest = serde_json::from_str(&echoed.body).expect("echo JSON");
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"), "{seen:?}");
    // A redirect keeps the connection's scheme.
    let config = client_config(&setup.ca.pem, &["http/1.1"], None);
    let moved = get(addr, SERVER_NAME, config, "/old")
        .await
        .expect("redirect");
    assert_eq!(
        (moved.status, moved.location.as_deref()),
        (301, Some("https://server.example/new"))
    );
    // The access log has what each request's connection negotiated (no client certificate).
    let log = setup.logs.join("tls.log");
    let logged = eventually(Duration::from_secs(5), || {
        common::log_lines(&log)
            .contains(&"server.example /echo TLSv1.3 TLS_AES_128_GCM_SHA256 -".to_string())
    })
    .await;
    assert!(logged, "{:?}", common::log_lines(&log));
    // `/config_dump` shows the TLS context with its private key redacted, as Envoy's.
    let (status, dump) = tokio::task::block_in_place(|| {
        common::http_get(setup.proxy.admin, "/config_dump").expect("config_dump")
    });
    assert_eq!(status, 200);
    assert!(dump.contains("DownstreamTlsContext"), "{dump}");
    assert!(
        dump.contains("[redacted]"),
        "the private key is not redacted"
    );
    assert!(
        !dump.contains("PRIVATE KEY"),
        "a private key in /config_dump"
    );
    // `/certs`: each listener's context, the mutual one with its CA.
    let (status, body) =
        tokio::task::block_in_place(|| common::http_get(setup.proxy.admin, "/certs"))
            .expect("/certs");
    assert_eq!(status, 200, "{body}");
    let certs: serde_json::Value = serde_json::from_str(&body).expect("/certs JSON");
    let contexts = certs["certificates"].as_array().expect("certificates");
    assert_eq!(contexts.len(), 2, "{certs:#}");
    for context in contexts {
        let leaf = &context["cert_chain"][0];
        assert_eq!(leaf["path"], "<inline>", "{certs:#}");
        assert_eq!(
            leaf["subject_alt_names"][0]["dns"], SERVER_NAME,
            "{certs:#}"
        );
        let days: u64 = leaf["days_until_expiration"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .expect("days as a string");
        assert!(days > 300, "{certs:#}");
        assert!(
            leaf["serial_number"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        );
    }
    let with_ca = contexts
        .iter()
        .filter(|c| c["ca_cert"].as_array().is_some_and(|a| a.len() == 1))
        .count();
    assert_eq!(with_ca, 1, "the mutual listener's CA: {certs:#}");
    // Plaintext HTTP gets no HTTP answer: the connection is closed on the bad handshake.
    let (response, closed) =
        tokio::task::block_in_place(|| raw_exchange(addr, b"GET / HTTP/1.1\r\nhost: a\r\n\r\n"));
    assert!(closed, "the connection stays open");
    // Counted as the server's side of the handshake ends, which the client may see first.
    let errors = format!("listener.127.0.0.1_{}.ssl.connection_error", addr.port());
    assert!(
        eventually(Duration::from_secs(5), || setup
            .proxy
            .stat_blocking(&errors)
            >= Some(1))
        .await,
        "{errors}"
    );
    assert!(
        !response.starts_with("HTTP/"),
        "plaintext was served: {response}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_requiring_client_certificates_checks_ca_and_san() {
    let setup = setup("tls-downstream-mutual").await;
    let addr = setup.addr("mtls").await;
    let right = setup.ca.leaf(&[&format!("uri:{CLIENT_ID}")]);
    let wrong_san = setup
        .ca
        .leaf(&["uri:spiffe://outrider.test/ns/default/sa/other"]);
    let other_ca = Ca::new("another CA");
    let foreign = other_ca.leaf(&[&format!("uri:{CLIENT_ID}")]);
    let fetch = |client: Option<(&str, &str)>| {
        let config = client_config(&setup.ca.pem, &["http/1.1"], client);
        get(addr, SERVER_NAME, config, "/")
    };
    let served = fetch(Some((&right.cert, &right.key)))
        .await
        .expect("the right client");
    assert_eq!(
        (served.status, served.upstream.as_deref()),
        (200, Some("backend"))
    );
    let log = setup.logs.join("mtls.log");
    let line = format!("server.example / TLSv1.3 TLS_AES_128_GCM_SHA256 {CLIENT_ID}");
    let logged = eventually(Duration::from_secs(5), || {
        common::log_lines(&log).contains(&line)
    })
    .await;
    assert!(logged, "{line:?} not in {:?}", common::log_lines(&log));
    for (what, client) in [
        ("no certificate", None),
        (
            "the wrong SAN",
            Some((wrong_san.cert.as_str(), wrong_san.key.as_str())),
        ),
        (
            "another CA",
            Some((foreign.cert.as_str(), foreign.key.as_str())),
        ),
    ] {
        // TLS 1.3 lets the client finish before the server has judged its certificate: the
        // refusal arrives as the request fails.
        let refused = fetch(client).await;
        assert!(refused.is_err(), "{what} was served: {refused:?}");
    }
    // Each outcome counted under Envoy's name.
    let scope = format!("listener.127.0.0.1_{}.ssl", addr.port());
    for (name, at_least) in [
        ("handshake", 1),
        ("versions.TLSv1.3", 1),
        ("ciphers.TLS_AES_128_GCM_SHA256", 1),
        ("fail_verify_no_cert", 1),
        ("fail_verify_san", 1),
        ("fail_verify_error", 1),
    ] {
        // Counted as the server's side of each handshake ends, which the client may see
        // first.
        let stat = format!("{scope}.{name}");
        assert!(
            eventually(Duration::from_secs(5), || setup.proxy.stat_blocking(&stat)
                >= Some(at_least))
            .await,
            "{stat}: {:?}",
            setup.proxy.stat(&stat).await
        );
    }
    assert_eq!(
        setup.proxy.stat(&format!("{scope}.no_certificate")).await,
        Some(0),
        "every served client showed a certificate"
    );
}

/// Several certificates: chosen by SNI (exact, then wildcard), then by what the client can
/// verify, an ECDSA one first; a client whose SNI names none gets the first, or with
/// `full_scan_certs_on_sni_mismatch` the best of all. `require_sni` refuses a client without
/// SNI; `prefer_client_ciphers` lets the client's order of cipher suites decide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_chosen_as_envoy_chooses_them() {
    let ca = Ca::new("outrider test CA");
    // Ed25519 first: the selector prefers ECDSA only when it looks at more than one.
    let first = ca.leaf_with(&rcgen::PKCS_ED25519, &["dns:first.example"]);
    let ecdsa = ca.leaf(&["dns:*.wild.example", "dns:ecdsa.example"]);
    let certificates = format!(
        "    tls_certificates:
    - certificate_chain: {{ inline_string: {} }}
      private_key: {{ inline_string: {} }}
    - certificate_chain: {{ inline_string: {} }}
      private_key: {{ inline_string: {} }}
",
        yaml_string(&first.cert),
        yaml_string(&first.key),
        yaml_string(&ecdsa.cert),
        yaml_string(&ecdsa.key)
    );
    let listeners = [
        tls_listener(
            "plain-scan",
            &format!("  common_tls_context:\n{certificates}"),
        ),
        tls_listener(
            "full-scan",
            &format!(
                "  full_scan_certs_on_sni_mismatch: true\n  require_sni: true\n  prefer_client_ciphers: true\n  common_tls_context:\n{certificates}"
            ),
        ),
    ];
    let (proxy, _backend) = proxy_to_backend("tls-certificate-choice", listeners).await;
    let plain = SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("plain-scan").await));
    let full = SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("full-scan").await));
    let config = common::https::accept_any_server(&[]);
    let presented = |addr: SocketAddr, sni: &'static str| {
        let config = config.clone();
        async move {
            get(addr, sni, config, "/")
                .await
                .unwrap_or_else(|e| panic!("{sni}: {e}"))
                .server_dns
        }
    };
    assert_eq!(presented(plain, "first.example").await, ["first.example"]);
    assert_eq!(
        presented(plain, "ecdsa.example").await,
        ["*.wild.example", "ecdsa.example"]
    );
    assert_eq!(
        presented(plain, "a.wild.example").await,
        ["*.wild.example", "ecdsa.example"]
    );
    // Named by neither: the first, unless every certificate is looked at.
    assert_eq!(presented(plain, "other.example").await, ["first.example"]);
    assert_eq!(
        presented(full, "other.example").await,
        ["*.wild.example", "ecdsa.example"]
    );

    // No SNI where the context requires one.
    let mut no_sni = (*config).clone();
    no_sni.enable_sni = false;
    let refused = get(full, "first.example", std::sync::Arc::new(no_sni), "/").await;
    assert!(refused.is_err(), "served without SNI: {refused:?}");

    // TLS 1.2, the client preferring AES-256 (the server's own order puts AES-128 first).
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ],
        ..(*outrider_tls::provider()).clone()
    };
    let tls12 = common::https::client_config_on(
        std::sync::Arc::new(provider),
        &[&rustls::version::TLS12],
        &ca.pem,
        &[],
        None,
    );
    let cipher = |addr| {
        let tls12 = tls12.clone();
        async move {
            get(addr, "ecdsa.example", tls12, "/")
                .await
                .expect("TLS 1.2")
                .cipher
        }
    };
    assert_eq!(
        cipher(plain).await,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
    );
    assert_eq!(
        cipher(full).await,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
    );
}

/// `tls_params.cipher_suites` limits TLS 1.2 to the listed suites (Istio's list, whose RSA
/// key-exchange entries rustls does not offer, is accepted for the rest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_params_cipher_suites_limit_tls12() {
    let ca = Ca::new("outrider test CA");
    let server = ca.leaf(&[&format!("dns:{SERVER_NAME}")]);
    let context = format!(
        "  common_tls_context:
    tls_params:
      tls_maximum_protocol_version: TLSv1_2
      cipher_suites: [ECDHE-ECDSA-AES256-GCM-SHA384, AES256-GCM-SHA384]
    tls_certificates:
    - certificate_chain: {{ inline_string: {} }}
      private_key: {{ inline_string: {} }}
",
        yaml_string(&server.cert),
        yaml_string(&server.key)
    );
    let (proxy, _backend) =
        proxy_to_backend("tls-cipher-suites", [tls_listener("limited", &context)]).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("limited").await));
    let offering = |suite| {
        let provider = rustls::crypto::CryptoProvider {
            cipher_suites: vec![suite],
            ..(*outrider_tls::provider()).clone()
        };
        common::https::client_config_on(
            std::sync::Arc::new(provider),
            &[&rustls::version::TLS12],
            &ca.pem,
            &[],
            None,
        )
    };
    let listed =
        offering(rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384);
    let served = get(addr, SERVER_NAME, listed, "/")
        .await
        .expect("a listed suite");
    assert_eq!(served.cipher, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
    let unlisted =
        offering(rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
    let refused = get(addr, SERVER_NAME, unlisted, "/").await;
    assert!(
        refused.is_err(),
        "an unlisted suite was negotiated: {refused:?}"
    );
}
