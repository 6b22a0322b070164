//! `ClusterState`: a cluster's runtime state shared by every worker — circuit-breaker resource
//! counts per routing priority, Envoy-named counters, and the health epoch that tells load
//! balancers to recompute their health aggregates. It survives `UpsertCluster` of the same name.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use outrider_model::Priority;

use crate::cluster_counters::ClusterCounters;
use crate::cluster_outlier::ClusterOutlier;
use crate::health_check_state::ClusterHealthCheckState;
use crate::sharded::Sharded;

/// Resources in use for one routing priority, checked against the circuit-breaker thresholds.
#[derive(Debug, Default)]
pub struct ResourceCounts {
    /// Open upstream connections.
    pub connections: AtomicU32,
    /// Requests waiting for a connection.
    pub pending_requests: AtomicU32,
    /// Requests in flight.
    pub requests: AtomicU32,
    /// Retries in flight.
    pub retries: AtomicU32,
}

/// Runtime state of one cluster. Keyed by cluster name in the snapshots: a config update of the
/// cluster keeps the same `Arc`, so in-flight counts stay balanced (a guard taken before the
/// update releases into the same counters) and counters keep counting.
#[derive(Debug, Default)]
pub struct ClusterState {
    default: ResourceCounts,
    high: ResourceCounts,
    /// Envoy's `cluster.<name>.*` counters, one copy per worker.
    pub counters: Sharded<ClusterCounters>,
    /// Outlier-detection stats and the detector's wake-up.
    pub outlier: ClusterOutlier,
    health_epoch: AtomicU64,
    /// Active health checking: Envoy's `health_check.*` stats and the first-round flag.
    pub health_check: ClusterHealthCheckState,
}

impl ClusterState {
    pub fn new() -> Self {
        Self::default()
    }

    /// The resource counts of one routing priority.
    pub fn resources(&self, priority: Priority) -> &ResourceCounts {
        match priority {
            Priority::Default => &self.default,
            Priority::High => &self.high,
        }
    }

    /// Changes whenever a host's health flags may have changed in a way a load balancer that
    /// caches health aggregates must see. Reading it costs one load of a rarely written line.
    pub fn health_epoch(&self) -> u64 {
        self.health_epoch.load(Ordering::Acquire)
    }

    /// To be called by whoever flips an endpoint's health flags (outlier detector, health
    /// checker, EDS), after the flip: balancers then recompute priority loads, panic mode and
    /// locality weights on their next pick. Hosts a balancer touches are re-checked at pick time
    /// anyway; this covers the ones it does not touch (an unused priority recovering).
    pub fn note_health_change(&self) {
        self.health_epoch.fetch_add(1, Ordering::AcqRel);
    }
}
