//! `OutlierState`: one host's outcome counters, written by the data plane on every attempt, and
//! its ejection state, written by the outlier detector on the control thread.

use std::sync::atomic::{AtomicU32, AtomicU64};

/// Outlier-detection state of one host. Counters are relaxed atomics: the detector reads them
/// once per interval (or when a consecutive threshold is crossed), never in lock step with the
/// data plane.
#[derive(Debug, Default)]
pub struct OutlierState {
    pub consecutive_5xx: AtomicU32,
    pub consecutive_gateway_failure: AtomicU32,
    pub consecutive_local_origin_failure: AtomicU32,
    /// Requests and successes in the current interval (external origin only in split mode).
    pub interval_requests: AtomicU64,
    pub interval_successes: AtomicU64,
    /// How many times this host has been ejected (Envoy's `num_ejections`).
    pub num_ejections: AtomicU32,
    /// Milliseconds since the Unix epoch of the last ejection; 0 = never.
    pub last_ejection_ms: AtomicU64,
}
