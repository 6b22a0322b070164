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
        }
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
