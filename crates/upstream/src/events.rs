//! Host events: outlier ejections and un-ejections, and active health-check transitions, as the
//! outlier detector and health checker produce them. The reporters (EventReportingService,
//! `event_log_path`) and the admin interface subscribe. Fields follow Envoy's
//! `envoy.data.cluster.v3.OutlierDetectionEvent` and `envoy.data.core.v3.HealthCheckEvent`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use tokio::sync::broadcast;

/// Envoy's `OutlierEjectionType` (the discriminants are the proto's numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EjectionType {
    Consecutive5xx = 0,
    ConsecutiveGatewayFailure = 1,
    SuccessRate = 2,
    ConsecutiveLocalOriginFailure = 3,
    SuccessRateLocalOrigin = 4,
    FailurePercentage = 5,
    FailurePercentageLocalOrigin = 6,
}

impl EjectionType {
    /// Envoy's enum value name (`CONSECUTIVE_5XX`, ...).
    pub fn envoy_name(self) -> &'static str {
        match self {
            Self::Consecutive5xx => "CONSECUTIVE_5XX",
            Self::ConsecutiveGatewayFailure => "CONSECUTIVE_GATEWAY_FAILURE",
            Self::SuccessRate => "SUCCESS_RATE",
            Self::ConsecutiveLocalOriginFailure => "CONSECUTIVE_LOCAL_ORIGIN_FAILURE",
            Self::SuccessRateLocalOrigin => "SUCCESS_RATE_LOCAL_ORIGIN",
            Self::FailurePercentage => "FAILURE_PERCENTAGE",
            Self::FailurePercentageLocalOrigin => "FAILURE_PERCENTAGE_LOCAL_ORIGIN",
        }
    }

    /// Every type, by proto number.
    pub const ALL: [Self; 7] = [
        Self::Consecutive5xx,
        Self::ConsecutiveGatewayFailure,
        Self::SuccessRate,
        Self::ConsecutiveLocalOriginFailure,
        Self::SuccessRateLocalOrigin,
        Self::FailurePercentage,
        Self::FailurePercentageLocalOrigin,
    ];

    /// The type with this proto number.
    pub fn from_number(number: u8) -> Option<Self> {
        Self::ALL.get(usize::from(number)).copied()
    }

    /// The proto number (also the index of the per-type outlier stats).
    pub fn number(self) -> u8 {
        self as u8
    }

    /// The name in Envoy's stat names (`ejections_enforced_<name>`): `consecutive_5xx`, ...
    pub fn stat_name(self) -> &'static str {
        outrider_tables::EJECTION_TYPE_STAT_NAMES
            .get(usize::from(self.number()))
            .copied()
            .unwrap_or("unknown")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EjectionAction {
    Eject = 0,
    Uneject = 1,
}

/// The detector-specific part of an ejection event.
#[derive(Debug, Clone, PartialEq)]
pub enum EjectionDetail {
    /// Consecutive 5xx, gateway or local-origin failures (Envoy's empty `eject_consecutive_event`).
    Consecutive,
    /// Percentages, as Envoy reports them (whole numbers, 0..=100).
    SuccessRate {
        host_success_rate: u32,
        cluster_average_success_rate: u32,
        cluster_success_rate_ejection_threshold: u32,
    },
    FailurePercentage {
        host_success_rate: u32,
    },
}

/// One ejection or un-ejection.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierEvent {
    pub ejection_type: EjectionType,
    pub action: EjectionAction,
    pub cluster_name: String,
    pub address: SocketAddr,
    /// How many times the host has been ejected, this one included.
    pub num_ejections: u32,
    /// Whether the ejection took effect (enforcing percentage and `max_ejection_percent` allow
    /// detecting without ejecting).
    pub enforced: bool,
    pub timestamp: SystemTime,
    /// Seconds since the previous ejection or un-ejection of this host (`None`: there was none).
    pub secs_since_last_action: Option<u64>,
    /// `None` for un-ejections.
    pub detail: Option<EjectionDetail>,
}

impl OutlierEvent {
    /// Envoy's `upstream_url`.
    pub fn upstream_url(&self) -> String {
        format!("tcp://{}", self.address)
    }
}

/// Envoy's `HealthCheckerType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheckerType {
    Http = 0,
    Tcp = 1,
    Grpc = 2,
}

/// Envoy's `HealthCheckFailureType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheckFailureType {
    Active = 0,
    Passive = 1,
    Network = 2,
    NetworkTimeout = 3,
}

/// What happened to the host (Envoy's `HealthCheckEvent.event` oneof).
#[derive(Debug, Clone, PartialEq)]
pub enum HealthTransition {
    /// Crossed the unhealthy threshold.
    EjectUnhealthy {
        failure_type: HealthCheckFailureType,
    },
    /// Crossed the healthy threshold (`first_check`: it is the host's first check).
    AddHealthy {
        first_check: bool,
    },
    /// One failed check that did not (yet) change the host's health.
    Failure {
        failure_type: HealthCheckFailureType,
        first_check: bool,
    },
    Degraded,
    NoLongerDegraded,
}

/// One health-check transition.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthEvent {
    pub checker: HealthCheckerType,
    pub cluster_name: String,
    pub address: SocketAddr,
    pub transition: HealthTransition,
    pub timestamp: SystemTime,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HostEvent {
    Outlier(OutlierEvent),
    Health(HealthEvent),
}

/// Fan-out of host events to every subscriber. Publishing never blocks: a subscriber that falls
/// more than the capacity behind loses the oldest events and learns how many (`Lagged`).
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<HostEvent>>,
    published: Arc<AtomicU64>,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        Self {
            sender: broadcast::channel(capacity.max(1)).0,
            published: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn publish(&self, event: HostEvent) {
        self.published.fetch_add(1, Ordering::Relaxed);
        // No subscriber is not an error: nobody asked for events.
        let _ = self.sender.send(Arc::new(event));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<HostEvent>> {
        self.sender.subscribe()
    }

    /// Events published since start.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(4096)
    }
}
