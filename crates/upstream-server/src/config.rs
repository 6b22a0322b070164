//! [`UpstreamConfig`]: an upstream's name and its initial failure injection and latency.

use std::time::Duration;

use crate::Error;

/// How an [`crate::UpstreamServer`] behaves when it starts. The failure settings can be changed
/// later on the running server.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    /// Sent as `x-upstream-name` on every response and in the `/` and `/echo` bodies.
    pub name: String,
    /// Share of requests, in `[0, 1]`, answered with `fail_status` (chosen at random).
    pub fail_ratio: f64,
    /// Status of an injected failure (gRPC requests get `grpc-status: 14` instead).
    pub fail_status: u16,
    /// Added before every response.
    pub latency: Option<Duration>,
    /// Deterministic alternative to `fail_ratio`: the n-th, 2n-th, ... request fails.
    pub fail_every: Option<u32>,
    /// Serve TLS (HTTP/2 or HTTP/1.1 by ALPN) instead of plaintext.
    pub tls: Option<UpstreamTls>,
}

/// An upstream's TLS server side.
#[derive(Debug, Clone)]
pub struct UpstreamTls(pub std::sync::Arc<outrider_tls::rustls::ServerConfig>);

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl UpstreamTls {
    /// TLS with certificate `cert_pem` (chain) and `key_pem`, offering h2 and http/1.1; with
    /// `client_ca_pem`, a client certificate from that CA is required.
    pub fn new(cert_pem: &str, key_pem: &str, client_ca_pem: Option<&str>) -> Result<Self, String> {
        let key = outrider_tls::certified_key(cert_pem.as_bytes(), key_pem.as_bytes())
            .map_err(|e| e.to_string())?;
        let client_auth = match client_ca_pem {
            Some(ca) => Some(outrider_tls::ClientAuth {
                roots: outrider_tls::certificates(ca.as_bytes()).map_err(|e| e.to_string())?,
                required: true,
                san_check: None,
            }),
            None => None,
        };
        let configs = outrider_tls::ServerConfigs::build(&outrider_tls::ServerSettings {
            crypto: outrider_tls::provider(),
            certificates: vec![key],
            min_version: outrider_tls::TlsVersion::Tls12,
            max_version: outrider_tls::TlsVersion::Tls13,
            alpn_protocols: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            client_auth,
            full_scan_certs_on_sni_mismatch: false,
            prefer_client_ciphers: false,
        })
        .map_err(|e| e.to_string())?;
        Ok(UpstreamTls(
            configs.for_client(None::<std::iter::Empty<&[u8]>>),
        ))
    }
}

impl UpstreamConfig {
    /// A healthy upstream called `name`: no failures, no added latency, failures would be 503.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            fail_ratio: 0.0,
            fail_status: 503,
            latency: None,
            fail_every: None,
            tls: None,
        }
    }

    /// Serves TLS.
    pub fn with_tls(mut self, tls: UpstreamTls) -> Self {
        self.tls = Some(tls);
        self
    }

    pub fn with_fail_ratio(mut self, ratio: f64) -> Self {
        self.fail_ratio = ratio;
        self
    }

    pub fn with_fail_status(mut self, status: u16) -> Self {
        self.fail_status = status;
        self
    }

    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = Some(latency);
        self
    }

    pub fn with_fail_every(mut self, n: u32) -> Self {
        self.fail_every = Some(n);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        validate_ratio(self.fail_ratio)?;
        validate_status(self.fail_status)?;
        if self.fail_every == Some(0) {
            return Err(Error::InvalidConfig(
                "fail_every: must be > 0 (use None for no failures)".into(),
            ));
        }
        if self.name.is_empty() || http::HeaderValue::from_str(&self.name).is_err() {
            return Err(Error::InvalidConfig(format!(
                "name {:?}: must be a non-empty, valid header value",
                self.name
            )));
        }
        Ok(())
    }
}

pub(crate) fn validate_ratio(ratio: f64) -> Result<(), Error> {
    // Written so that NaN is rejected too.
    if (0.0..=1.0).contains(&ratio) {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "fail_ratio: {ratio} is not in [0, 1]"
        )))
    }
}

pub(crate) fn validate_status(status: u16) -> Result<(), Error> {
    // 1xx cannot be a final response.
    if (200..=999).contains(&status) {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "fail_status: {status} is not a final status (200..=999)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_healthy() {
        let config = UpstreamConfig::new("a");
        assert_eq!(config.fail_status, 503);
        assert_eq!(config.fail_ratio, 0.0);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn rejects_bad_values() {
        assert!(
            UpstreamConfig::new("a")
                .with_fail_ratio(1.5)
                .validate()
                .is_err()
        );
        assert!(
            UpstreamConfig::new("a")
                .with_fail_ratio(f64::NAN)
                .validate()
                .is_err()
        );
        assert!(
            UpstreamConfig::new("a")
                .with_fail_status(101)
                .validate()
                .is_err()
        );
        assert!(
            UpstreamConfig::new("a")
                .with_fail_every(0)
                .validate()
                .is_err()
        );
        assert!(UpstreamConfig::new("").validate().is_err());
        assert!(UpstreamConfig::new("a\nb").validate().is_err());
    }
}
