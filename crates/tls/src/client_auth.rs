//! Client certificates as a `DownstreamTlsContext` asks for them: requested whenever a CA is
//! configured, required with `require_client_certificate` (or SAN matchers), verified against
//! the CA and then against the SAN matchers.

use std::fmt::Debug;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};

use crate::error::TlsError;
use crate::provider::provider;
use crate::sans::PeerSans;

/// Envoy's SAN matchers (`match_typed_subject_alt_names`), as the model evaluates them.
pub trait SanCheck: Send + Sync + Debug {
    /// Whether a peer certificate with these names is accepted.
    fn accepts(&self, sans: &PeerSans) -> bool;
}

/// How client certificates are checked.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    /// The CA certificates a client's chain must lead to.
    pub roots: Vec<CertificateDer<'static>>,
    /// A client without a certificate is refused (else it is let in unverified).
    pub required: bool,
    pub san_check: Option<Arc<dyn SanCheck>>,
}

impl ClientAuth {
    pub(crate) fn verifier(&self) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(self.roots.iter().cloned());
        if added == 0 {
            return Err(TlsError::at("trusted_ca", "no usable CA certificate"));
        }
        let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
        let builder = if self.required {
            builder
        } else {
            builder.allow_unauthenticated()
        };
        let inner = builder
            .build()
            .map_err(|e| TlsError::at("trusted_ca", e.to_string()))?;
        Ok(Arc::new(SanCheckingVerifier {
            inner,
            san_check: self.san_check.clone(),
        }))
    }
}

/// The SAN matchers' verdict on a peer certificate whose chain has been verified.
pub(crate) fn check_sans(
    check: Option<&dyn SanCheck>,
    end_entity: &CertificateDer<'_>,
) -> Result<(), rustls::Error> {
    let Some(check) = check else {
        return Ok(());
    };
    let sans = PeerSans::of(end_entity)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    if check.accepts(&sans) {
        Ok(())
    } else {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ))
    }
}

/// rustls's chain verification, then the SAN matchers.
#[derive(Debug)]
struct SanCheckingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    san_check: Option<Arc<dyn SanCheck>>,
}

impl ClientCertVerifier for SanCheckingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_sans(self.san_check.as_deref(), end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
