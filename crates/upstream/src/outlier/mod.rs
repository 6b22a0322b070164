//! Outlier detection, as Envoy's (`cluster.v3.OutlierDetection`, XDS-SPEC §2): passive health
//! checking from the outcomes of real traffic.
//!
//! - The data plane calls [`record`] after every attempt: atomics in the host's
//!   `OutlierState`, and a wake-up of the cluster's detector when a consecutive-failure
//!   threshold is crossed (the only time it does more than count).
//! - [`run`], on the control thread, keeps one detector per cluster: consecutive 5xx, gateway
//!   and local-origin failures eject at once; success rate and failure percentage (external
//!   and, in split mode, local origin) are judged at each `interval`, when hosts whose ejection
//!   time is up are put back too.
//! - Every ejection (enforced or only detected) and un-ejection is an `OutlierEvent` on the
//!   `EventBus`; the cluster's `outlier_detection.*` stats are in `ClusterState::outlier`.
//! - [`uneject_after_health_check`] is how a passing active health check puts a host back.

mod detector;
mod ejection;
mod failure_percentage;
mod record;
mod runner;
mod success_rate;
#[cfg(test)]
mod tests;

use outrider_tables::{ClusterState, EndpointState};

use crate::events::EventBus;

pub use record::{Outcome, record};
pub use runner::run;

/// How long an ejection with this multiplier and jitter lasts, in milliseconds (for the admin
/// interface's diagnosis: the host is back at the first detector interval after that).
pub fn ejection_duration_ms(
    config: &outrider_model::OutlierDetection,
    multiplier: u32,
    jitter_ms: u64,
) -> u64 {
    ejection::ejection_duration_ms(config, multiplier, jitter_ms)
}

/// Un-ejects `endpoint` of `cluster_name` at once (clears `/failed_outlier_check`, resets its
/// consecutive counters, publishes the UNEJECT event, and has the balancers recount); does
/// nothing if it is not ejected. For the active health checker when a check passes; it checks
/// the cluster's `successful_active_health_check_uneject_host` first.
pub fn uneject_after_health_check(
    cluster_name: &str,
    cluster: &ClusterState,
    endpoint: &EndpointState,
    bus: &EventBus,
) {
    ejection::uneject(
        cluster_name,
        cluster,
        endpoint,
        bus,
        ejection::Now::current(),
    );
}
