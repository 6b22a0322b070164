//! A cluster's client side (`UpstreamTlsContext`): versions, ALPN, the client certificate, the
//! SNI sent, and how the server's certificate is checked. As Envoy: without a validation
//! context nothing is checked; with one, the chain must lead to `trusted_ca` and the SAN
//! matchers must accept the certificate; the name sent as SNI is not checked against it.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::client_auth::{SanCheck, check_sans};
use crate::error::TlsError;
use crate::provider::provider;
use crate::server::{TlsVersion, protocol_versions};

/// What an `UpstreamTlsContext` asks of the client side.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The cipher suites and groups offered (`provider_for`).
    pub crypto: Arc<CryptoProvider>,
    /// Presented when the server asks for one.
    pub certificate: Option<Arc<CertifiedKey>>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    pub alpn_protocols: Vec<Vec<u8>>,
    /// `None`: the server's certificate is not checked (Envoy without a validation context).
    pub validation: Option<ServerValidation>,
    /// Sent as SNI (`None`: no SNI).
    pub sni: Option<String>,
}

/// How the server's certificate is checked.
#[derive(Debug, Clone)]
pub struct ServerValidation {
    pub roots: Vec<CertificateDer<'static>>,
    pub san_check: Option<Arc<dyn SanCheck>>,
}

/// A cluster's TLS client: its configuration (offering the context's ALPN protocols, or what
/// an HTTP pool speaks) and the name its handshakes use.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// As configured: for the TCP proxy.
    pub config: Arc<ClientConfig>,
    /// Offering `http/1.1` (nothing if the context offers nothing): for HTTP/1.1 pools.
    pub http1: Arc<ClientConfig>,
    /// Offering `h2`, as Envoy's HTTP/2 pools do: for HTTP/2 pools.
    pub http2: Arc<ClientConfig>,
    /// The SNI, or an address (never sent) when there is none.
    pub server_name: ServerName<'static>,
}

impl ClientTls {
    pub fn build(settings: &ClientSettings) -> Result<Self, TlsError> {
        let provider = provider();
        let versions = protocol_versions(settings.min_version, settings.max_version);
        let verifier: Arc<dyn ServerCertVerifier> = match &settings.validation {
            Some(validation) => {
                let mut roots = RootCertStore::empty();
                let (added, _) = roots.add_parsable_certificates(validation.roots.iter().cloned());
                if added == 0 {
                    return Err(TlsError::at("trusted_ca", "no usable CA certificate"));
                }
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| TlsError::at("trusted_ca", e.to_string()))?;
                Arc::new(EnvoyServerVerifier {
                    webpki: Some(webpki),
                    san_check: validation.san_check.clone(),
                    provider: provider.clone(),
                })
            }
            None => Arc::new(EnvoyServerVerifier {
                webpki: None,
                san_check: None,
                provider: provider.clone(),
            }),
        };
        let builder = ClientConfig::builder_with_provider(settings.crypto.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError::new(format!("unusable TLS versions: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &settings.certificate {
            Some(certified) => {
                builder.with_client_cert_resolver(Arc::new(ClientCertificate(certified.clone())))
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = settings.alpn_protocols.clone();
        let server_name = match &settings.sni {
            Some(sni) => ServerName::try_from(sni.clone())
                .map_err(|_| TlsError::at("sni", format!("{sni} is not a valid server name")))?,
            None => {
                config.enable_sni = false;
                ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into())
            }
        };
        let with_alpn = |alpn: Vec<Vec<u8>>| {
            let mut variant = config.clone();
            variant.alpn_protocols = alpn;
            Arc::new(variant)
        };
        let http1 = match settings.alpn_protocols.is_empty() {
            true => Vec::new(),
            false => vec![b"http/1.1".to_vec()],
        };
        Ok(ClientTls {
            http1: with_alpn(http1),
            http2: with_alpn(vec![b"h2".to_vec()]),
            config: Arc::new(config),
            server_name,
        })
    }
}

/// The one client certificate (`tls_certificates[0]`), whatever the server hints.
#[derive(Debug)]
struct ClientCertificate(Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for ClientCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// rustls's chain verification without its name check, then the SAN matchers; or, without a
/// validation context, only the handshake's signatures.
#[derive(Debug)]
struct EnvoyServerVerifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    san_check: Option<Arc<dyn SanCheck>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for EnvoyServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        // The chain is checked before the name: a wrong name means a good chain.
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Ok(_)
            | Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {}
            Err(other) => return Err(other),
        }
        check_sans(self.san_check.as_deref(), end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
