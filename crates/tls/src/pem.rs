//! PEM as Envoy reads it from a `DataSource`: a certificate chain (leaf first), a private key
//! (PKCS#1, PKCS#8 or SEC1), a bundle of CA certificates.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::TlsError;

/// Every certificate in `pem`, in order; at least one.
pub fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(format!("invalid PEM: {e}")))?;
    if certificates.is_empty() {
        return Err(TlsError::new("no PEM certificate found"));
    }
    Ok(certificates)
}

/// The first private key in `pem`.
pub fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::new("no PEM private key found"),
        other => TlsError::new(format!("invalid PEM private key: {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_is_read_and_garbage_refused() {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["a.example".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let chain = format!("{}{}", cert.pem(), cert.pem());
        assert_eq!(certificates(chain.as_bytes()).expect("chain").len(), 2);
        assert!(private_key(key.serialize_pem().as_bytes()).is_ok());
        let none = certificates(b"not pem").expect_err("nothing");
        assert_eq!(none.message, "no PEM certificate found");
        assert!(
            private_key(cert.pem().as_bytes()).is_err(),
            "a certificate is no key"
        );
    }
}
