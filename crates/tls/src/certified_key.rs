//! A certificate chain and its private key, checked to belong together, as a handshake uses
//! them.

use std::sync::Arc;

use rustls::sign::CertifiedKey;

use crate::error::TlsError;
use crate::pem;
use crate::provider::provider;

/// The chain (PEM, leaf first) and key (PEM) of one `TlsCertificate`. Neither its expiry nor
/// its names are checked: Envoy serves an expired certificate, or one without the name a
/// client asks for, and leaves the verdict to the client.
pub fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain =
        pem::certificates(chain_pem).map_err(|e| TlsError::at("certificate_chain", e.message))?;
    let key = pem::private_key(key_pem).map_err(|e| TlsError::at("private_key", e.message))?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::at("private_key", format!("unsupported private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|_| {
        TlsError::at(
            "private_key",
            "the private key does not match the certificate chain's first certificate",
        )
    })?;
    Ok(Arc::new(certified))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(key: &rcgen::KeyPair) -> String {
        rcgen::CertificateParams::new(vec!["a.example".to_string()])
            .expect("params")
            .self_signed(key)
            .expect("cert")
            .pem()
    }

    #[test]
    fn a_key_must_belong_to_its_certificate() {
        let key = rcgen::KeyPair::generate().expect("key");
        let other = rcgen::KeyPair::generate().expect("key");
        let cert = self_signed(&key);
        assert!(certified_key(cert.as_bytes(), key.serialize_pem().as_bytes()).is_ok());
        let mismatch = certified_key(cert.as_bytes(), other.serialize_pem().as_bytes())
            .expect_err("another key");
        assert_eq!(mismatch.field, Some("private_key"));
        let no_chain =
            certified_key(b"", key.serialize_pem().as_bytes()).expect_err("no certificate");
        assert_eq!(no_chain.field, Some("certificate_chain"));
    }
}
