//! The subject alternative names of a certificate, as Envoy's SAN matchers see them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use x509_parser::extensions::GeneralName;

use crate::error::TlsError;

/// A certificate's DNS, URI, email and IP SANs (IPs written as text, as Envoy matches them).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PeerSans {
    pub dns: Vec<String>,
    pub uri: Vec<String>,
    pub email: Vec<String>,
    pub ip: Vec<String>,
}

impl PeerSans {
    /// The SANs of the certificate `der`; none if it has no SAN extension.
    pub fn of(der: &[u8]) -> Result<Self, TlsError> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| TlsError::new(format!("unreadable certificate: {e}")))?;
        let mut sans = PeerSans::default();
        let extension = certificate
            .subject_alternative_name()
            .map_err(|e| TlsError::new(format!("unreadable subject alternative names: {e}")))?;
        for name in extension.iter().flat_map(|e| &e.value.general_names) {
            match name {
                GeneralName::DNSName(dns) => sans.dns.push((*dns).to_string()),
                GeneralName::URI(uri) => sans.uri.push((*uri).to_string()),
                GeneralName::RFC822Name(email) => sans.email.push((*email).to_string()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_address(bytes) {
                        sans.ip.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
        Ok(sans)
    }

    /// The certificate's subject common names, which name it where it has no SAN extension.
    pub(crate) fn common_names(der: &[u8]) -> Vec<String> {
        let Ok((_, certificate)) = x509_parser::parse_x509_certificate(der) else {
            return Vec::new();
        };
        certificate
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_string))
            .collect()
    }

    pub(crate) fn has_extension(der: &[u8]) -> bool {
        x509_parser::parse_x509_certificate(der)
            .is_ok_and(|(_, c)| c.subject_alternative_name().is_ok_and(|e| e.is_some()))
    }
}

fn ip_address(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| Ipv4Addr::from(b).into()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| Ipv6Addr::from(b).into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_name_is_read() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![
            rcgen::SanType::DnsName("a.example".try_into().expect("dns")),
            rcgen::SanType::URI("spiffe://td/ns/a/sa/b".try_into().expect("uri")),
            rcgen::SanType::Rfc822Name("a@example.com".try_into().expect("email")),
            rcgen::SanType::IpAddress("10.0.0.1".parse().expect("ip")),
        ];
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let sans = PeerSans::of(cert.der()).expect("sans");
        assert_eq!(
            sans,
            PeerSans {
                dns: vec!["a.example".into()],
                uri: vec!["spiffe://td/ns/a/sa/b".into()],
                email: vec!["a@example.com".into()],
                ip: vec!["10.0.0.1".into()],
            }
        );
        assert!(PeerSans::has_extension(cert.der()));
    }
}

/// What `/certs` shows of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// Lower-case hex, no leading zeros (Envoy's form).
    pub serial_number: String,
    pub sans: PeerSans,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

impl CertificateFacts {
    /// The facts of the certificate `der`, if it parses.
    pub fn of(der: &[u8]) -> Option<Self> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
        let hex: String = certificate
            .tbs_certificate
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let serial_number = match hex.trim_start_matches('0') {
            "" => "0".to_string(),
            trimmed => trimmed.to_string(),
        };
        let validity = certificate.validity();
        Some(CertificateFacts {
            serial_number,
            sans: PeerSans::of(der).unwrap_or_default(),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }
}
