//! `CheckOutcome`: what one health check came to, as the state machine needs it (Envoy's
//! success / degraded / failure with its `HealthCheckFailureType`).

pub(crate) use outrider_model::error_chain;
use outrider_upstream::events::HealthCheckFailureType;

/// Why a check failed, which decides how it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// The host answered, and the answer says unhealthy (an unexpected HTTP status, gRPC
    /// NOT_SERVING): Envoy marks a healthy host unhealthy at once, unless the status is
    /// retriable.
    Active,
    /// The data plane saw `x-envoy-immediate-health-check-fail` in an answer of the host:
    /// fails a healthy host at once, like `Active` (Envoy's PASSIVE failure type, counted in
    /// `health_check.passive_failure`).
    Passive,
    /// The connection failed, closed or was reset: counts toward `unhealthy_threshold`.
    Network,
    /// No answer within `timeout`: counts toward `unhealthy_threshold`, and sets
    /// `/active_hc_timeout` while the host stays failed.
    Timeout,
}

impl FailureKind {
    pub(crate) fn event_type(self) -> HealthCheckFailureType {
        match self {
            Self::Active => HealthCheckFailureType::Active,
            Self::Passive => HealthCheckFailureType::Passive,
            Self::Network => HealthCheckFailureType::Network,
            Self::Timeout => HealthCheckFailureType::NetworkTimeout,
        }
    }

    /// Counted in `health_check.network_failure`.
    pub(crate) fn is_network(self) -> bool {
        matches!(self, Self::Network | Self::Timeout)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CheckOutcome {
    /// `degraded`: the HTTP answer carried `x-envoy-degraded`.
    Passed { degraded: bool },
    Failed {
        kind: FailureKind,
        /// An HTTP status in `retriable_statuses`: counts toward the threshold like a network
        /// failure.
        retriable: bool,
        /// For operators (`/clusters`, `/diagnose`, logs).
        reason: String,
    },
}

impl CheckOutcome {
    pub(crate) fn passed() -> Self {
        Self::Passed { degraded: false }
    }

    pub(crate) fn network(reason: impl Into<String>) -> Self {
        Self::Failed {
            kind: FailureKind::Network,
            retriable: false,
            reason: reason.into(),
        }
    }

    pub(crate) fn active(reason: impl Into<String>) -> Self {
        Self::Failed {
            kind: FailureKind::Active,
            retriable: false,
            reason: reason.into(),
        }
    }

    /// The host answered a proxied request with `x-envoy-immediate-health-check-fail`.
    pub(crate) fn immediate_fail() -> Self {
        Self::Failed {
            kind: FailureKind::Passive,
            retriable: false,
            reason: "x-envoy-immediate-health-check-fail from the host".to_string(),
        }
    }
}
