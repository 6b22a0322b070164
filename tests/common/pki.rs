//! Certificates the TLS tests make for themselves: a CA, and leaves it signs with the SANs a
//! test needs (never certificates committed by hand).

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// A certificate authority.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf this CA signs (ECDSA P-256), with `sans` (`dns:`, `uri:` or `ip:` prefixed).
    pub fn leaf(&self, sans: &[&str]) -> Leaf {
        self.leaf_with(&rcgen::PKCS_ECDSA_P256_SHA256, sans)
    }

    /// `leaf` with a key of another algorithm.
    pub fn leaf_with(&self, algorithm: &'static rcgen::SignatureAlgorithm, sans: &[&str]) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        params.subject_alt_names = sans.iter().map(|s| san(s)).collect();
        let key = KeyPair::generate_for(algorithm).expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

fn san(text: &str) -> SanType {
    match text.split_once(':') {
        Some(("dns", name)) => SanType::DnsName(name.try_into().expect("DNS SAN")),
        Some(("uri", uri)) => SanType::URI(uri.try_into().expect("URI SAN")),
        Some(("ip", ip)) => SanType::IpAddress(ip.parse().expect("IP SAN")),
        _ => panic!("SAN {text}: dns:, uri: or ip:"),
    }
}

/// PEM text as a YAML double-quoted string (Rust's escapes are YAML's for this text).
pub fn yaml_string(pem: &str) -> String {
    format!("{pem:?}")
}
