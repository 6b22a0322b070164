//! A filter chain's server side: versions, ALPN, the certificate each client gets and how
//! client certificates are checked.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::version::{TLS12, TLS13};
use rustls::{ServerConfig, SignatureAlgorithm, SupportedProtocolVersion};

use crate::client_auth::ClientAuth;
use crate::error::TlsError;
use crate::sans::PeerSans;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// rustls's versions from `min` to `max`.
pub(crate) fn protocol_versions(
    min: TlsVersion,
    max: TlsVersion,
) -> Vec<&'static SupportedProtocolVersion> {
    [(TlsVersion::Tls13, &TLS13), (TlsVersion::Tls12, &TLS12)]
        .into_iter()
        .filter(|(v, _)| (min..=max).contains(v))
        .map(|(_, version)| version)
        .collect()
}

/// What a `DownstreamTlsContext` asks of the server side.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The cipher suites and groups offered (`provider_for`).
    pub crypto: Arc<rustls::crypto::CryptoProvider>,
    /// `tls_certificates`, in order (the first is the fallback).
    pub certificates: Vec<Arc<CertifiedKey>>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// `alpn_protocols`, in the server's order of preference.
    pub alpn_protocols: Vec<Vec<u8>>,
    /// `None`: no client certificate is asked for.
    pub client_auth: Option<ClientAuth>,
    /// A client whose SNI names no certificate gets the best for it among all of them (else
    /// the first).
    pub full_scan_certs_on_sni_mismatch: bool,
    /// Cipher suites by the client's preference (else the server's, Envoy's default).
    pub prefer_client_ciphers: bool,
}

/// A filter chain's server configurations: one offering its ALPN protocols, and one offering
/// none for a client whose protocols share none with them (Envoy goes on without ALPN there;
/// rustls would refuse the handshake). Both share one session cache and ticket key, so either
/// resumes the other's sessions.
#[derive(Debug, Clone)]
pub struct ServerConfigs {
    with_alpn: Arc<ServerConfig>,
    without_alpn: Arc<ServerConfig>,
}

impl ServerConfigs {
    pub fn build(settings: &ServerSettings) -> Result<Self, TlsError> {
        if settings.certificates.is_empty() {
            return Err(TlsError::at(
                "tls_certificates",
                "a server TLS context needs a certificate",
            ));
        }
        let versions = protocol_versions(settings.min_version, settings.max_version);
        let builder = ServerConfig::builder_with_provider(settings.crypto.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError::new(format!("unusable TLS versions: {e}")))?;
        let builder = match &settings.client_auth {
            None => builder.with_no_client_auth(),
            Some(auth) => builder.with_client_cert_verifier(auth.verifier()?),
        };
        let mut config = builder.with_cert_resolver(Arc::new(CertificateSelector::new(
            &settings.certificates,
            settings.full_scan_certs_on_sni_mismatch,
        )));
        // Envoy (BoringSSL) picks cipher suites by the server's preference by default.
        config.ignore_client_order = !settings.prefer_client_ciphers;
        // Envoy resumes sessions both ways by default: a stateful cache (rustls's default)
        // and tickets under a key it rotates.
        config.ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| TlsError::new(format!("no session ticket key: {e}")))?;
        let without_alpn = Arc::new(config.clone());
        config.alpn_protocols = settings.alpn_protocols.clone();
        Ok(ServerConfigs {
            with_alpn: Arc::new(config),
            without_alpn,
        })
    }

    /// The configuration for a client that offered `offered` (`None`: no ALPN extension).
    pub fn for_client<'a>(
        &self,
        offered: Option<impl Iterator<Item = &'a [u8]>>,
    ) -> Arc<ServerConfig> {
        let ours = &self.with_alpn.alpn_protocols;
        match offered {
            Some(mut offered) if !ours.is_empty() => {
                if offered.any(|p| ours.iter().any(|o| o.as_slice() == p)) {
                    self.with_alpn.clone()
                } else {
                    self.without_alpn.clone()
                }
            }
            _ => self.with_alpn.clone(),
        }
    }
}

/// Envoy's default certificate selector: by SNI among the certificates' DNS names (or subject
/// common names where a certificate has no SAN extension), exactly, then one wildcard level;
/// among the certificates for a name (or, without SNI, all of them) an ECDSA one the client
/// can verify before any other it can; else (or, with `full_scan`, after looking at all of
/// them for a client whose SNI named none) the first certificate.
#[derive(Debug)]
struct CertificateSelector {
    certificates: Vec<Selectable>,
    full_scan: bool,
}

#[derive(Debug)]
struct Selectable {
    key: Arc<CertifiedKey>,
    /// Lower case; wildcards as `*.example.com`.
    names: Vec<String>,
}

impl CertificateSelector {
    fn new(keys: &[Arc<CertifiedKey>], full_scan: bool) -> Self {
        let certificates = keys
            .iter()
            .map(|key| {
                let leaf = key.cert.first().map(|c| c.as_ref()).unwrap_or_default();
                let names = if PeerSans::has_extension(leaf) {
                    PeerSans::of(leaf).map(|s| s.dns).unwrap_or_default()
                } else {
                    PeerSans::common_names(leaf)
                };
                Selectable {
                    key: key.clone(),
                    names: names.iter().map(|n| n.to_ascii_lowercase()).collect(),
                }
            })
            .collect();
        CertificateSelector {
            certificates,
            full_scan,
        }
    }

    /// The best of `candidates` for a client that can verify `schemes`.
    fn best<'a>(
        candidates: impl Iterator<Item = &'a Selectable> + Clone,
        hello: &ClientHello<'_>,
    ) -> Option<&'a Selectable> {
        let schemes = hello.signature_schemes();
        let usable = |c: &&Selectable| c.key.key.choose_scheme(schemes).is_some();
        let ecdsa = |c: &&Selectable| c.key.key.algorithm() == SignatureAlgorithm::ECDSA;
        candidates
            .clone()
            .filter(usable)
            .find(ecdsa)
            .or_else(|| candidates.clone().find(usable))
    }
}

impl ResolvesServerCert for CertificateSelector {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = match hello.server_name() {
            Some(sni) => {
                let exact = self
                    .certificates
                    .iter()
                    .filter(|c| c.names.iter().any(|n| n == sni));
                let wildcard = sni.split_once('.').map(|(_, parent)| format!("*.{parent}"));
                let wild = self
                    .certificates
                    .iter()
                    .filter(|c| wildcard.as_ref().is_some_and(|w| c.names.contains(w)));
                Self::best(exact, &hello)
                    .or_else(|| Self::best(wild, &hello))
                    .or_else(|| {
                        self.full_scan
                            .then(|| Self::best(self.certificates.iter(), &hello))
                            .flatten()
                    })
            }
            None => Self::best(self.certificates.iter(), &hello),
        };
        chosen.or(self.certificates.first()).map(|c| c.key.clone())
    }
}
