//! `HealthCheckState`: active health checking's view of one host, written by the health checker
//! on the control thread and read by the admin interface.

use std::sync::atomic::AtomicU32;

/// Active health-check state of one host.
#[derive(Debug, Default)]
pub struct HealthCheckState {
    /// Checks passed / failed in a row (the thresholds count these).
    pub consecutive_successes: AtomicU32,
    pub consecutive_failures: AtomicU32,
}
