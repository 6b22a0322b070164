//! `ClusterState`: a cluster's runtime state shared by every worker — circuit-breaker resource
//! counts per routing priority, Envoy-named counters, and the health epoch that tells load
//! balancers to recompute their health aggregates. It survives `UpsertCluster` of the same name.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use outrider_model::Priority;

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

/// Counters with Envoy's `cluster.<name>.*` stat names. Shared by all workers: one contended
/// cache line per cluster is acceptable for now (per-worker sharding can come later).
#[derive(Debug, Default)]
pub struct ClusterCounters {
    pub upstream_rq_total: AtomicU64,
    pub upstream_rq_pending_total: AtomicU64,
    /// Requests refused by the `max_requests` or `max_pending_requests` breaker (Envoy counts
    /// both here).
    pub upstream_rq_pending_overflow: AtomicU64,
    pub upstream_cx_total: AtomicU64,
    /// Connections refused by the `max_connections` breaker.
    pub upstream_cx_overflow: AtomicU64,
    pub upstream_rq_retry: AtomicU64,
    /// Retries refused by the `max_retries` breaker.
    pub upstream_rq_retry_overflow: AtomicU64,
    /// Picks made in panic mode (balancing over all hosts regardless of health).
    pub lb_healthy_panic: AtomicU64,
    /// Picks that found no host to send to (`UH`).
    pub upstream_cx_none_healthy: AtomicU64,
}

/// Runtime state of one cluster. Keyed by cluster name in the snapshots: a config update of the
/// cluster keeps the same `Arc`, so in-flight counts stay balanced (a guard taken before the
/// update releases into the same counters) and counters keep counting.
#[derive(Debug, Default)]
pub struct ClusterState {
    default: ResourceCounts,
    high: ResourceCounts,
    pub counters: ClusterCounters,
    health_epoch: AtomicU64,
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
