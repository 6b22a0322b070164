//! Envoy's `ssl.*` counters of TLS handshakes, a listener's (`listener.<name>.ssl.*`) or a
//! cluster's (`cluster.<name>.ssl.*`): shared by the workers, since a handshake is a
//! connection's event, not a request's.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use tokio_rustls::rustls::{self, CertificateError, HandshakeKind, ProtocolVersion};

/// The suites rustls offers, with Envoy's (BoringSSL's) names for `ssl.ciphers.*`.
const CIPHERS: [(u16, &str); 9] = [
    (0x1301, "TLS_AES_128_GCM_SHA256"),
    (0x1302, "TLS_AES_256_GCM_SHA384"),
    (0x1303, "TLS_CHACHA20_POLY1305_SHA256"),
    (0xc02b, "ECDHE-ECDSA-AES128-GCM-SHA256"),
    (0xc02c, "ECDHE-ECDSA-AES256-GCM-SHA384"),
    (0xcca9, "ECDHE-ECDSA-CHACHA20-POLY1305"),
    (0xc02f, "ECDHE-RSA-AES128-GCM-SHA256"),
    (0xc030, "ECDHE-RSA-AES256-GCM-SHA384"),
    (0xcca8, "ECDHE-RSA-CHACHA20-POLY1305"),
];

const VERSIONS: [(ProtocolVersion, &str); 2] = [
    (ProtocolVersion::TLSv1_2, "TLSv1.2"),
    (ProtocolVersion::TLSv1_3, "TLSv1.3"),
];

/// BoringSSL's name of a suite rustls offers.
pub(crate) fn cipher_name(code: u16) -> Option<&'static str> {
    CIPHERS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, name)| *name)
}

/// `TLSv1.2`, `TLSv1.3`.
pub(crate) fn version_name(version: ProtocolVersion) -> Option<&'static str> {
    VERSIONS
        .iter()
        .find(|(v, _)| *v == version)
        .map(|(_, name)| *name)
}

/// One scope's counters.
#[derive(Debug, Default)]
pub struct TlsCounters {
    handshake: AtomicU64,
    connection_error: AtomicU64,
    no_certificate: AtomicU64,
    fail_verify_no_cert: AtomicU64,
    fail_verify_error: AtomicU64,
    fail_verify_san: AtomicU64,
    session_reused: AtomicU64,
    versions: [AtomicU64; VERSIONS.len()],
    ciphers: [AtomicU64; CIPHERS.len()],
}

impl TlsCounters {
    /// A handshake that succeeded, as Envoy logs it (`no_certificate`: the peer showed none).
    pub(crate) fn handshake_done(&self, session: &rustls::CommonState) {
        self.handshake.fetch_add(1, Relaxed);
        if session.handshake_kind() == Some(HandshakeKind::Resumed) {
            self.session_reused.fetch_add(1, Relaxed);
        }
        if session.peer_certificates().is_none() {
            self.no_certificate.fetch_add(1, Relaxed);
        }
        if let Some(version) = session.protocol_version()
            && let Some(i) = VERSIONS.iter().position(|(v, _)| *v == version)
        {
            self.versions[i].fetch_add(1, Relaxed);
        }
        if let Some(suite) = session.negotiated_cipher_suite() {
            let code = u16::from(suite.suite());
            if let Some(i) = CIPHERS.iter().position(|(c, _)| *c == code) {
                self.ciphers[i].fetch_add(1, Relaxed);
            }
        }
    }

    /// A handshake that failed: a client certificate refused (by kind), else a connection
    /// error.
    pub(crate) fn handshake_failed(&self, error: &io::Error) {
        let rustls_error = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        let counter = match rustls_error {
            Some(rustls::Error::NoCertificatesPresented) => &self.fail_verify_no_cert,
            Some(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )) => &self.fail_verify_san,
            Some(rustls::Error::InvalidCertificate(_)) => &self.fail_verify_error,
            _ => &self.connection_error,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Every counter by its name under the scope (`ssl.handshake`, ...); the per-version and
    /// per-cipher ones once they have counted, as Envoy creates them when first seen.
    pub fn values(&self) -> Vec<(String, u64)> {
        let fixed = [
            ("ssl.handshake", &self.handshake),
            ("ssl.connection_error", &self.connection_error),
            ("ssl.no_certificate", &self.no_certificate),
            ("ssl.fail_verify_no_cert", &self.fail_verify_no_cert),
            ("ssl.fail_verify_error", &self.fail_verify_error),
            ("ssl.fail_verify_san", &self.fail_verify_san),
            ("ssl.session_reused", &self.session_reused),
        ];
        let mut values: Vec<(String, u64)> = fixed
            .iter()
            .map(|(name, counter)| ((*name).to_string(), counter.load(Relaxed)))
            .collect();
        let seen = |prefix: &str, names: &[&str], counters: &[AtomicU64]| {
            names
                .iter()
                .zip(counters)
                .map(|(name, counter)| (format!("{prefix}.{name}"), counter.load(Relaxed)))
                .filter(|(_, value)| *value > 0)
                .collect::<Vec<_>>()
        };
        let versions: Vec<&str> = VERSIONS.iter().map(|(_, n)| *n).collect();
        let ciphers: Vec<&str> = CIPHERS.iter().map(|(_, n)| *n).collect();
        values.extend(seen("ssl.versions", &versions, &self.versions));
        values.extend(seen("ssl.ciphers", &ciphers, &self.ciphers));
        values
    }
}

/// The counters of every listener (by its stat name) or cluster (by name), created on first
/// use.
#[derive(Debug, Clone, Default)]
pub struct TlsStatsRegistry(Arc<Mutex<BTreeMap<String, Arc<TlsCounters>>>>);

impl TlsStatsRegistry {
    /// The counters of `scope`, shared with every other user of that name.
    pub(crate) fn scope(&self, scope: &str) -> Arc<TlsCounters> {
        let mut scopes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        scopes.entry(scope.to_string()).or_default().clone()
    }

    /// Every scope with its counters, by name.
    pub fn all(&self) -> Vec<(String, Arc<TlsCounters>)> {
        let scopes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        scopes.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_certificates_are_told_apart() {
        let counters = TlsCounters::default();
        let wrap = |e: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, e);
        counters.handshake_failed(&wrap(rustls::Error::NoCertificatesPresented));
        counters.handshake_failed(&wrap(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        )));
        counters.handshake_failed(&wrap(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        )));
        counters.handshake_failed(&io::Error::other("reset"));
        let values: BTreeMap<String, u64> = counters.values().into_iter().collect();
        for name in [
            "ssl.fail_verify_no_cert",
            "ssl.fail_verify_san",
            "ssl.fail_verify_error",
            "ssl.connection_error",
        ] {
            assert_eq!(values[name], 1, "{name}");
        }
        assert_eq!(values["ssl.handshake"], 0);
        assert!(
            !values.contains_key("ssl.versions.TLSv1.3"),
            "none seen yet"
        );
    }
}
