//! `EndpointState`: everything the data plane, outlier detector and health checker share
//! about one upstream host, as atomics, so it survives snapshot replacement.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use outrider_model::{EndpointAddress, HealthStatus, LbEndpoint};

use crate::health_check_state::HealthCheckState;
use crate::outlier_state::OutlierState;

/// Why a host is unhealthy or degraded; the names are Envoy's `/clusters` `health_flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HealthFlags(u32);

impl HealthFlags {
    pub const FAILED_ACTIVE_HC: Self = Self(1 << 0);
    pub const FAILED_OUTLIER_CHECK: Self = Self(1 << 1);
    pub const FAILED_EDS_HEALTH: Self = Self(1 << 2);
    pub const DEGRADED_ACTIVE_HC: Self = Self(1 << 3);
    pub const DEGRADED_EDS_HEALTH: Self = Self(1 << 4);
    pub const PENDING_DYNAMIC_REMOVAL: Self = Self(1 << 5);
    pub const PENDING_ACTIVE_HC: Self = Self(1 << 6);
    pub const EXCLUDED_VIA_IMMEDIATE_HC_FAIL: Self = Self(1 << 7);
    pub const ACTIVE_HC_TIMEOUT: Self = Self(1 << 8);

    /// Flags that make a host unhealthy (not merely degraded or pending).
    pub const UNHEALTHY: Self =
        Self(Self::FAILED_ACTIVE_HC.0 | Self::FAILED_OUTLIER_CHECK.0 | Self::FAILED_EDS_HEALTH.0);
    /// Flags owned by active health checking.
    pub const ACTIVE_HC: Self = Self(
        Self::FAILED_ACTIVE_HC.0
            | Self::DEGRADED_ACTIVE_HC.0
            | Self::PENDING_ACTIVE_HC.0
            | Self::EXCLUDED_VIA_IMMEDIATE_HC_FAIL.0
            | Self::ACTIVE_HC_TIMEOUT.0,
    );
    /// Flags owned by EDS health status.
    pub const EDS: Self = Self(Self::FAILED_EDS_HEALTH.0 | Self::DEGRADED_EDS_HEALTH.0);

    const NAMES: [(&'static str, Self); 9] = [
        ("/failed_active_hc", Self::FAILED_ACTIVE_HC),
        ("/failed_outlier_check", Self::FAILED_OUTLIER_CHECK),
        ("/failed_eds_health", Self::FAILED_EDS_HEALTH),
        ("/degraded_active_hc", Self::DEGRADED_ACTIVE_HC),
        ("/degraded_eds_health", Self::DEGRADED_EDS_HEALTH),
        ("/pending_dynamic_removal", Self::PENDING_DYNAMIC_REMOVAL),
        ("/pending_active_hc", Self::PENDING_ACTIVE_HC),
        (
            "/excluded_via_immediate_hc_fail",
            Self::EXCLUDED_VIA_IMMEDIATE_HC_FAIL,
        ),
        ("/active_hc_timeout", Self::ACTIVE_HC_TIMEOUT),
    ];

    pub const fn bits(self) -> u32 {
        self.0
    }

    pub const fn from_bits(bits: u32) -> Self {
        Self(bits)
    }

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Envoy's `/clusters` rendering: `healthy`, or the flag names concatenated.
    pub fn envoy_string(self) -> String {
        if self.is_empty() {
            return "healthy".to_string();
        }
        Self::NAMES
            .iter()
            .filter(|(_, f)| self.contains(*f))
            .map(|(n, _)| *n)
            .collect()
    }
}

impl std::ops::BitOr for HealthFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// One upstream host of one cluster. Shared by every snapshot that contains it: EDS updates
/// that keep the address keep this very `Arc`, so health, outlier and load state survive.
#[derive(Debug)]
pub struct EndpointState {
    pub address: EndpointAddress,
    /// `endpoint.hostname` (Host for `auto_host_rewrite`, health-check Host).
    pub hostname: Box<str>,
    /// `health_check_config.port_value`: 0 = the endpoint's own port.
    pub health_check_port: u16,
    pub active_health_check_disabled: bool,
    weight: AtomicU32,
    eds_health: AtomicU8,
    health_flags: AtomicU32,
    pub active_requests: AtomicU32,
    pub cx_active: AtomicU64,
    pub cx_total: AtomicU64,
    /// Connection attempts to this host that failed.
    pub cx_connect_fail: AtomicU64,
    pub rq_total: AtomicU64,
    pub rq_success: AtomicU64,
    pub rq_error: AtomicU64,
    pub rq_timeout: AtomicU64,
    /// Outcome counters and ejection state (written by the data plane and outlier detector).
    pub outlier: OutlierState,
    /// Active health checking's view of this host (written by the health checker).
    pub health_check: HealthCheckState,
}

impl EndpointState {
    /// A new host. `pending_active_hc`: the cluster health-checks it, so it starts failed and
    /// pending until its first check, as in Envoy.
    pub(crate) fn new(endpoint: &LbEndpoint, pending_active_hc: bool) -> Self {
        let LbEndpoint {
            address,
            hostname,
            health_status,
            load_balancing_weight,
            health_check,
        } = endpoint;
        let hc = pending_active_hc && !health_check.disable_active_health_check;
        let initial = if hc {
            HealthFlags::FAILED_ACTIVE_HC | HealthFlags::PENDING_ACTIVE_HC
        } else {
            HealthFlags::default()
        };
        let state = Self {
            address: address.clone(),
            hostname: hostname.as_str().into(),
            health_check_port: health_check.port.unwrap_or(0),
            active_health_check_disabled: health_check.disable_active_health_check,
            weight: AtomicU32::new(*load_balancing_weight),
            eds_health: AtomicU8::new(health_to_u8(*health_status)),
            health_flags: AtomicU32::new(initial.bits()),
            active_requests: AtomicU32::new(0),
            cx_active: AtomicU64::new(0),
            cx_total: AtomicU64::new(0),
            cx_connect_fail: AtomicU64::new(0),
            rq_total: AtomicU64::new(0),
            rq_success: AtomicU64::new(0),
            rq_error: AtomicU64::new(0),
            rq_timeout: AtomicU64::new(0),
            outlier: OutlierState::default(),
            health_check: HealthCheckState::new(&health_check.hostname),
        };
        state.set_eds_health(*health_status);
        state
    }

    /// Whether `endpoint`, at this host's address, is still this host. Envoy replaces a host
    /// whose health-check address changed (when the cluster checks health), so that its
    /// checks move to the new port and it waits for its first check there.
    pub(crate) fn keeps_identity(&self, endpoint: &LbEndpoint, health_checked: bool) -> bool {
        // Compared as the ports checked: unset (or 0) is the endpoint's own.
        let checked = |port: u16| if port == 0 { self.address.port() } else { port };
        !health_checked
            || checked(self.health_check_port) == checked(endpoint.health_check.port.unwrap_or(0))
    }

    /// Applies what a new EDS assignment says about a host we keep.
    /// Listed again, a host kept after its removal is no longer pending it.
    pub(crate) fn refresh(&self, endpoint: &LbEndpoint) {
        self.weight
            .store(endpoint.load_balancing_weight, Ordering::Relaxed);
        self.set_eds_health(endpoint.health_status);
        self.clear_flags(HealthFlags::PENDING_DYNAMIC_REMOVAL);
    }

    /// `load_balancing_weight` (≥ 1).
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    pub fn eds_health(&self) -> HealthStatus {
        health_from_u8(self.eds_health.load(Ordering::Relaxed))
    }

    pub fn health_flags(&self) -> HealthFlags {
        HealthFlags(self.health_flags.load(Ordering::Acquire))
    }

    pub fn set_flags(&self, flags: HealthFlags) {
        self.health_flags.fetch_or(flags.0, Ordering::AcqRel);
    }

    pub fn clear_flags(&self, flags: HealthFlags) {
        self.health_flags.fetch_and(!flags.0, Ordering::AcqRel);
    }

    /// No flag makes this host unhealthy.
    pub fn is_healthy(&self) -> bool {
        !self.health_flags().intersects(HealthFlags::UNHEALTHY)
    }

    pub fn is_degraded(&self) -> bool {
        self.health_flags()
            .intersects(HealthFlags::DEGRADED_ACTIVE_HC | HealthFlags::DEGRADED_EDS_HEALTH)
    }

    fn set_eds_health(&self, status: HealthStatus) {
        self.eds_health
            .store(health_to_u8(status), Ordering::Relaxed);
        let flags = if status.is_eds_unhealthy() {
            HealthFlags::FAILED_EDS_HEALTH
        } else if status == HealthStatus::Degraded {
            HealthFlags::DEGRADED_EDS_HEALTH
        } else {
            HealthFlags::default()
        };
        self.replace_flags(HealthFlags::EDS, flags);
    }

    /// Sets the bits of `mask` to `value` in one atomic step, so a reader never sees a host
    /// briefly losing (or gaining) a flag it has before and after.
    pub fn replace_flags(&self, mask: HealthFlags, value: HealthFlags) {
        let update = |bits: u32| Some((bits & !mask.0) | (value.0 & mask.0));
        // The closure always returns Some, so fetch_update cannot fail.
        let _ = self
            .health_flags
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, update);
    }
}

fn health_to_u8(status: HealthStatus) -> u8 {
    match status {
        HealthStatus::Unknown => 0,
        HealthStatus::Healthy => 1,
        HealthStatus::Unhealthy => 2,
        HealthStatus::Draining => 3,
        HealthStatus::Timeout => 4,
        HealthStatus::Degraded => 5,
    }
}

fn health_from_u8(value: u8) -> HealthStatus {
    match value {
        1 => HealthStatus::Healthy,
        2 => HealthStatus::Unhealthy,
        3 => HealthStatus::Draining,
        4 => HealthStatus::Timeout,
        5 => HealthStatus::Degraded,
        _ => HealthStatus::Unknown,
    }
}
