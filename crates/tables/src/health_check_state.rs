//! Active health checking's view of one host (`HealthCheckState`) and of one cluster
//! (`ClusterHealthCheckState`: Envoy's `health_check.*` stats and the first-round flag), written
//! by the health checker on the control thread and read by the admin interface. The data plane
//! only signals `x-envoy-immediate-health-check-fail` (`HealthCheckState::signal_immediate_fail`),
//! so plain atomics, an `ArcSwapOption` and a `Notify` are enough.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use tokio::sync::Notify;

/// What the last completed check of a host said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheckResult {
    Passed,
    /// Passed, with `x-envoy-degraded`.
    Degraded,
    Failed,
    /// Failed by timing out.
    TimedOut,
}

impl HealthCheckResult {
    fn to_u8(self) -> u8 {
        match self {
            Self::Passed => 1,
            Self::Degraded => 2,
            Self::Failed => 3,
            Self::TimedOut => 4,
        }
    }

    fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Passed),
            2 => Some(Self::Degraded),
            3 => Some(Self::Failed),
            4 => Some(Self::TimedOut),
            _ => None,
        }
    }
}

/// Active health-check state of one host.
#[derive(Debug, Default)]
pub struct HealthCheckState {
    /// `health_check_config.hostname`: the Host / `:authority` of this host's HTTP and gRPC
    /// checks instead of the cluster-level one (empty: use the cluster-level one).
    pub hostname: Box<str>,
    /// Checks passed / failed in a row (the thresholds count these).
    pub consecutive_successes: AtomicU32,
    pub consecutive_failures: AtomicU32,
    /// Checks started on this host.
    pub attempts: AtomicU64,
    /// One bit per health check of the cluster (by index, the 32nd and later share the last bit)
    /// that currently sees this host as failed / degraded: a host is failed while any check
    /// says so (Envoy: with several health checks, all must pass).
    pub failed_checkers: AtomicU32,
    pub degraded_checkers: AtomicU32,
    /// Milliseconds since the Unix epoch; 0 = never.
    last_check_ms: AtomicU64,
    last_failure_ms: AtomicU64,
    last_result: AtomicU8,
    last_failure_reason: ArcSwapOption<String>,
    /// Raised by the data plane when the host answers with
    /// `x-envoy-immediate-health-check-fail`; taken by one of the host's health-check sessions.
    immediate_fail: Notify,
}

impl HealthCheckState {
    /// `hostname`: the endpoint's `health_check_config.hostname` (may be empty).
    pub fn new(hostname: &str) -> Self {
        Self {
            hostname: hostname.into(),
            ..Self::default()
        }
    }

    /// Records a completed check that passed (`degraded`: with `x-envoy-degraded`).
    pub fn record_success(&self, now_ms: u64, degraded: bool) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.consecutive_successes.fetch_add(1, Ordering::Relaxed);
        let result = if degraded {
            HealthCheckResult::Degraded
        } else {
            HealthCheckResult::Passed
        };
        self.last_result.store(result.to_u8(), Ordering::Relaxed);
        self.last_check_ms.store(now_ms, Ordering::Release);
    }

    /// Records a completed check that failed, and why (for `/clusters` and `/diagnose`).
    pub fn record_failure(&self, now_ms: u64, timed_out: bool, reason: String) {
        self.consecutive_successes.store(0, Ordering::Relaxed);
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        let result = if timed_out {
            HealthCheckResult::TimedOut
        } else {
            HealthCheckResult::Failed
        };
        self.last_result.store(result.to_u8(), Ordering::Relaxed);
        self.last_failure_reason.store(Some(Arc::new(reason)));
        self.last_failure_ms.store(now_ms, Ordering::Relaxed);
        self.last_check_ms.store(now_ms, Ordering::Release);
    }

    /// The last completed check's result; `None` before the first one.
    pub fn last_result(&self) -> Option<HealthCheckResult> {
        HealthCheckResult::from_u8(self.last_result.load(Ordering::Relaxed))
    }

    /// When the last check completed (milliseconds since the Unix epoch); `None`: never.
    pub fn last_check_ms(&self) -> Option<u64> {
        Some(self.last_check_ms.load(Ordering::Acquire)).filter(|ms| *ms != 0)
    }

    /// When the last failed check completed; `None`: no check ever failed.
    pub fn last_failure_ms(&self) -> Option<u64> {
        Some(self.last_failure_ms.load(Ordering::Relaxed)).filter(|ms| *ms != 0)
    }

    /// Why the last failed check failed (e.g. `status 503`, `connect: Connection refused`).
    pub fn last_failure_reason(&self) -> Option<Arc<String>> {
        self.last_failure_reason.load_full()
    }

    /// The host answered a request with `x-envoy-immediate-health-check-fail`: asks its
    /// health-check session to fail it at once. Called on the request path: no allocation,
    /// and without a waiting session only an atomic update. Signals raised before a session
    /// takes them collapse into one.
    pub fn signal_immediate_fail(&self) {
        // Keeps a permit when no session is waiting (one is checking the host, say), so the
        // signal is not lost.
        self.immediate_fail.notify_one();
    }

    /// Resolves once the data plane has signalled an immediate failure, taking the signal:
    /// with several sessions on the host, one of them gets it.
    pub async fn immediate_fail_signalled(&self) {
        self.immediate_fail.notified().await;
    }
}

/// Active health checking of one cluster. Counters and gauges carry Envoy's
/// `cluster.<name>.health_check.*` names; they survive config updates with the cluster state.
#[derive(Debug, Default)]
pub struct ClusterHealthCheckState {
    pub attempt: AtomicU64,
    pub success: AtomicU64,
    pub failure: AtomicU64,
    /// Failures from connection errors and timeouts.
    pub network_failure: AtomicU64,
    /// Hosts failed by the data plane because they answered with
    /// `x-envoy-immediate-health-check-fail` (also counted in `failure`).
    pub passive_failure: AtomicU64,
    /// Always 0: `service_name_matcher` is not supported.
    pub verify_cluster: AtomicU64,
    /// Gauge: checked hosts that are not failing active health checks.
    pub healthy: AtomicU64,
    /// Gauge: checked hosts that are degraded by active health checks.
    pub degraded: AtomicU64,
    /// The cluster has carried a request (Envoy switches from `no_traffic_interval` then).
    traffic_seen: AtomicBool,
    first_round_done: AtomicBool,
    first_round: Notify,
}

impl ClusterHealthCheckState {
    /// Whether the cluster has carried traffic since it was added.
    pub fn traffic_seen(&self) -> bool {
        self.traffic_seen.load(Ordering::Relaxed)
    }

    pub fn note_traffic(&self) {
        self.traffic_seen.store(true, Ordering::Relaxed);
    }

    /// Every host the cluster had when its health checks started has completed one check (or
    /// left). Envoy keeps a new health-checked cluster warming until then.
    pub fn first_round_done(&self) -> bool {
        self.first_round_done.load(Ordering::Acquire)
    }

    pub fn mark_first_round_done(&self) {
        if !self.first_round_done.swap(true, Ordering::AcqRel) {
            self.first_round.notify_waiters();
        }
    }

    /// Resolves once the first round of checks is done.
    pub async fn wait_first_round(&self) {
        loop {
            // Registered before the check, so a concurrent `mark_first_round_done` wakes it.
            let notified = self.first_round.notified();
            if self.first_round_done() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_results_and_reasons() {
        let state = HealthCheckState::new("checked.example");
        assert_eq!(&*state.hostname, "checked.example");
        assert_eq!(state.last_result(), None);
        assert_eq!(state.last_check_ms(), None);
        state.record_failure(10, true, "timed out".to_string());
        state.record_failure(20, false, "status 503".to_string());
        assert_eq!(state.consecutive_failures.load(Ordering::Relaxed), 2);
        assert_eq!(state.last_result(), Some(HealthCheckResult::Failed));
        assert_eq!(
            state.last_failure_reason().as_deref().map(String::as_str),
            Some("status 503")
        );
        state.record_success(30, true);
        assert_eq!(state.consecutive_failures.load(Ordering::Relaxed), 0);
        assert_eq!(state.consecutive_successes.load(Ordering::Relaxed), 1);
        assert_eq!(state.last_result(), Some(HealthCheckResult::Degraded));
        assert_eq!(state.last_check_ms(), Some(30));
        assert_eq!(state.last_failure_ms(), Some(20));
    }

    #[tokio::test]
    async fn first_round_wakes_waiters() {
        let state = Arc::new(ClusterHealthCheckState::default());
        let waiter = {
            let state = state.clone();
            tokio::spawn(async move { state.wait_first_round().await })
        };
        tokio::task::yield_now().await;
        assert!(!state.first_round_done());
        state.mark_first_round_done();
        waiter.await.expect("waiter");
        // Already done: returns at once.
        state.wait_first_round().await;
    }

    #[tokio::test]
    async fn immediate_fail_signals_are_kept_until_taken_and_collapse() {
        let state = Arc::new(HealthCheckState::default());
        // Raised twice before any session waits: kept, as one signal.
        state.signal_immediate_fail();
        state.signal_immediate_fail();
        state.immediate_fail_signalled().await;
        tokio::select! {
            biased;
            () = state.immediate_fail_signalled() => panic!("a second signal was kept"),
            () = std::future::ready(()) => {}
        }
        // A waiting session is woken.
        let waiter = {
            let state = state.clone();
            tokio::spawn(async move { state.immediate_fail_signalled().await })
        };
        tokio::task::yield_now().await;
        state.signal_immediate_fail();
        waiter.await.expect("waiter");
    }
}
