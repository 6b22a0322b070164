//! A filter chain's `DownstreamTlsContext`: certificates and keys read and checked when the
//! listener is validated, so a bad one is refused with its path (Envoy's NACK), and what is
//! accepted reaches the data plane built.

use envoy_types::pb::envoy::config::listener::v3 as pb;
use outrider_model::{Listener, TlsVersion};

struct Pki {
    cert: String,
    key: String,
    other_key: String,
}

fn pki() -> Pki {
    let key = rcgen::KeyPair::generate().expect("key");
    let other = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["server.example".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    Pki {
        cert: format!("{:?}", cert.pem()),
        key: format!("{:?}", key.serialize_pem()),
        other_key: format!("{:?}", other.serialize_pem()),
    }
}

/// A listener whose one chain terminates TLS with `context` (YAML of the DownstreamTlsContext,
/// indented for its place).
fn listener(context: &str) -> Result<Listener, String> {
    let yaml = format!(
        "name: t
address: {{ socket_address: {{ address: 127.0.0.1, port_value: 9443 }} }}
filter_chains:
- transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
{context}
  transport_socket_connect_timeout: 3s
  filters:
  - name: envoy.filters.network.tcp_proxy
    typed_config: {{ '@type': type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c }}
"
    );
    let proto: pb::Listener =
        outrider_envoy_json::from_yaml_str(&yaml).expect("test YAML is a valid Listener");
    Listener::from_proto(&proto).map_err(|e| e.to_string())
}

fn certificates(chain: &str, key: &str) -> String {
    format!(
        "      common_tls_context:
        alpn_protocols: [h2, http/1.1]
        tls_certificates: [ {{ certificate_chain: {{ inline_string: {chain} }}, private_key: {{ inline_string: {key} }} }} ]
"
    )
}

#[test]
fn a_tls_chain_is_accepted_with_its_certificate_loaded() {
    let pki = pki();
    let listener = listener(&certificates(&pki.cert, &pki.key)).expect("valid");
    let chain = &listener.filter_chains[0];
    let tls = chain.tls.as_ref().expect("TLS");
    assert_eq!(tls.common.alpn_protocols, ["h2", "http/1.1"]);
    assert_eq!(
        (tls.common.min_version, tls.common.max_version),
        (TlsVersion::Tls12, TlsVersion::Tls13)
    );
    assert_eq!(tls.common.certificates.len(), 1);
    assert_eq!(
        chain.handshake_timeout,
        Some(std::time::Duration::from_secs(3))
    );
    // Equal configurations stay equal (an unchanged listener is not rebuilt).
    assert_eq!(
        listener,
        self::listener(&certificates(&pki.cert, &pki.key)).expect("valid")
    );
}

#[test]
fn bad_tls_material_is_refused_with_its_path() {
    let pki = pki();
    let at = "filter_chains[0].transport_socket.typed_config.common_tls_context";
    let cases = [
        (
            certificates(&pki.cert, &pki.other_key),
            format!(
                "{at}.tls_certificates[0].private_key: the private key does not match the certificate chain's first certificate"
            ),
        ),
        (
            certificates("not-a-certificate", &pki.key),
            format!("{at}.tls_certificates[0].certificate_chain: no PEM certificate found"),
        ),
        (
            certificates(&pki.cert, "not-a-key"),
            format!("{at}.tls_certificates[0].private_key: no PEM private key found"),
        ),
        (
            format!(
                "{}        validation_context: {{ trusted_ca: {{ inline_string: junk }} }}\n",
                certificates(&pki.cert, &pki.key)
            ),
            format!("{at}.validation_context.trusted_ca: no PEM certificate found"),
        ),
        (
            format!(
                "{}        validation_context: {{ system_root_certs: {{}} }}\n",
                certificates(&pki.cert, &pki.key)
            ),
            format!(
                "{at}.validation_context.system_root_certs: not supported yet: client certificates are verified against trusted_ca only"
            ),
        ),
    ];
    let with_params = |params: &str| {
        certificates(&pki.cert, &pki.key).replace(
            "        alpn_protocols: [h2, http/1.1]\n",
            &format!(
                "        alpn_protocols: [h2, http/1.1]\n        tls_params: {{ {params} }}\n"
            ),
        )
    };
    let cases = cases.into_iter().chain([
        (
            with_params("cipher_suites: [ECDHE-RSA-AES128-GCM-SHA256, NOT-A-SUITE]"),
            format!("{at}.tls_params.cipher_suites: unknown cipher suite NOT-A-SUITE"),
        ),
        (
            with_params("ecdh_curves: [P-521]"),
            format!(
                "{at}.tls_params.ecdh_curves: P-521 is not offered (X25519, P-256 and P-384 are)"
            ),
        ),
    ]);
    for (context, expected) in cases {
        assert_eq!(listener(&context), Err(expected.clone()), "{expected}");
    }
}
