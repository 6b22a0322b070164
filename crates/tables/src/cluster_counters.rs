//! `ClusterCounters`: a cluster's counters with Envoy's `cluster.<name>.*` stat names. Each
//! worker increments its own shard (`ClusterState::counters.local()`); `/stats` sums them.

use std::sync::atomic::AtomicU64;

#[derive(Debug, Default)]
pub struct ClusterCounters {
    pub upstream_rq_total: AtomicU64,
    /// Requests that got a response from an upstream (any status).
    pub upstream_rq_completed: AtomicU64,
    /// Responses by status class: index 0 = 1xx … 4 = 5xx (`upstream_rq_<N>xx`).
    pub upstream_rq_by_class: [AtomicU64; 5],
    /// Requests that ran out of their route timeout waiting for an upstream.
    pub upstream_rq_timeout: AtomicU64,
    /// Attempts that ran out of their per-try timeout.
    pub upstream_rq_per_try_timeout: AtomicU64,
    pub upstream_rq_pending_total: AtomicU64,
    /// Requests refused by the `max_requests` or `max_pending_requests` breaker (Envoy counts
    /// both here).
    pub upstream_rq_pending_overflow: AtomicU64,
    pub upstream_cx_total: AtomicU64,
    /// Connection attempts that failed (refused, unreachable, timed out).
    pub upstream_cx_connect_fail: AtomicU64,
    /// Connections refused by the `max_connections` breaker.
    pub upstream_cx_overflow: AtomicU64,
    pub upstream_rq_retry: AtomicU64,
    /// Retries refused by the `max_retries` breaker.
    pub upstream_rq_retry_overflow: AtomicU64,
    /// Requests that lost their retries because their body could not be kept for them.
    pub retry_or_shadow_abandoned: AtomicU64,
    /// Picks made in panic mode (balancing over all hosts regardless of health).
    pub lb_healthy_panic: AtomicU64,
    /// Picks that found no host to send to (`UH`).
    pub upstream_cx_none_healthy: AtomicU64,
    /// Requests dropped by EDS `drop_overloads` (reported over LRS too).
    pub upstream_rq_drop_overload: AtomicU64,
    /// Connections closed for the cluster's `idle_timeout`.
    pub upstream_cx_idle_timeout: AtomicU64,
    /// Connections retired at `max_requests_per_connection`.
    pub upstream_cx_max_requests: AtomicU64,
    /// Connections retired at `max_connection_duration`.
    pub upstream_cx_max_duration_reached: AtomicU64,
}

impl ClusterCounters {
    /// The `upstream_rq_<N>xx` counter for `status`, if it is a valid HTTP status.
    pub fn by_class(&self, status: u16) -> Option<&AtomicU64> {
        let class = usize::from(status / 100);
        self.upstream_rq_by_class.get(class.checked_sub(1)?)
    }
}
