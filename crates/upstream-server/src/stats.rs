//! The state a running server shares between its connections: failure injection settings that
//! can change at runtime, and the counters tests read.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::UpstreamConfig;
use crate::health::HealthScript;

/// Requests seen per path (without the query), sorted by path.
pub type PathCounts = BTreeMap<String, u64>;

/// Whether a request is answered normally or with an injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Serve,
    Fail(u16),
}

pub(crate) struct ServerState {
    pub(crate) name: String,
    pub(crate) latency: Option<Duration>,
    failing: AtomicBool,
    /// `f64` bits; atomics have no float type.
    fail_ratio_bits: AtomicU64,
    /// 0 means "not set".
    fail_every: AtomicU32,
    /// Requests since `fail_every` was last set, so "every n-th" counts from that moment.
    since_fail_every: AtomicU64,
    fail_status: AtomicU16,
    requests: AtomicU64,
    failures: AtomicU64,
    active_connections: AtomicUsize,
    connections_accepted: AtomicU64,
    // A plain mutex: it is held for one map update, never across an await, and the server is a
    // test fixture rather than the thing being measured.
    per_path: Mutex<HashMap<String, u64>>,
    /// Answers of the health endpoints (`/healthz`, gRPC health checks).
    pub(crate) health: HealthScript,
}

impl ServerState {
    pub(crate) fn new(config: &UpstreamConfig) -> Self {
        Self {
            name: config.name.clone(),
            latency: config.latency,
            failing: AtomicBool::new(false),
            fail_ratio_bits: AtomicU64::new(config.fail_ratio.to_bits()),
            fail_every: AtomicU32::new(config.fail_every.unwrap_or(0)),
            since_fail_every: AtomicU64::new(0),
            fail_status: AtomicU16::new(config.fail_status),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            active_connections: AtomicUsize::new(0),
            connections_accepted: AtomicU64::new(0),
            per_path: Mutex::new(HashMap::new()),
            health: HealthScript::default(),
        }
    }

    /// Counts a request and decides whether it fails. One atomic counter drives `fail_every`, so
    /// "every n-th request" is exact even with concurrent connections.
    pub(crate) fn admit(&self, path: &str) -> Verdict {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let seq = self.since_fail_every.fetch_add(1, Ordering::Relaxed) + 1;
        self.count_path(path);
        let every = u64::from(self.fail_every.load(Ordering::Relaxed));
        let ratio = f64::from_bits(self.fail_ratio_bits.load(Ordering::Relaxed));
        let fail = self.failing.load(Ordering::Relaxed)
            || (every > 0 && seq.is_multiple_of(every))
            || (ratio > 0.0 && rand::random::<f64>() < ratio);
        if fail {
            self.failures.fetch_add(1, Ordering::Relaxed);
            Verdict::Fail(self.fail_status.load(Ordering::Relaxed))
        } else {
            Verdict::Serve
        }
    }

    fn count_path(&self, path: &str) {
        // A poisoned lock only means another request panicked mid-update; the counts are still
        // usable.
        let mut map = self.per_path.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(path) {
            Some(n) => *n += 1,
            None => {
                map.insert(path.to_owned(), 1);
            }
        }
    }

    pub(crate) fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }

    pub(crate) fn set_fail_ratio(&self, ratio: f64) {
        self.fail_ratio_bits
            .store(ratio.to_bits(), Ordering::Relaxed);
    }

    pub(crate) fn set_fail_every(&self, every: Option<u32>) {
        self.fail_every.store(every.unwrap_or(0), Ordering::Relaxed);
        self.since_fail_every.store(0, Ordering::Relaxed);
    }

    pub(crate) fn set_fail_status(&self, status: u16) {
        self.fail_status.store(status, Ordering::Relaxed);
    }

    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub(crate) fn path_counts(&self) -> PathCounts {
        let map = self.per_path.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    pub(crate) fn requests_for(&self, path: &str) -> u64 {
        let map = self.per_path.lock().unwrap_or_else(|e| e.into_inner());
        map.get(path).copied().unwrap_or(0)
    }

    pub(crate) fn active_connections(&self) -> usize {
        self.active_connections.load(Ordering::Relaxed)
    }

    pub(crate) fn connections_accepted(&self) -> u64 {
        self.connections_accepted.load(Ordering::Relaxed)
    }

    /// Counts a new connection; the returned guard counts it closed when dropped. Returns the
    /// connection's number (starting at 1), which `/echo` reports.
    pub(crate) fn open_connection(self: &std::sync::Arc<Self>) -> ConnectionGuard {
        let id = self.connections_accepted.fetch_add(1, Ordering::Relaxed) + 1;
        self.active_connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard {
            state: self.clone(),
            id,
        }
    }
}

pub(crate) struct ConnectionGuard {
    state: std::sync::Arc<ServerState>,
    pub(crate) id: u64,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.state
            .active_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_every_fails_exactly_every_nth_request() {
        let state = ServerState::new(&UpstreamConfig::new("a").with_fail_every(3));
        let verdicts: Vec<_> = (0..9).map(|_| state.admit("/")).collect();
        let failed: Vec<_> = verdicts
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != Verdict::Serve)
            .map(|(i, _)| i + 1)
            .collect();
        assert_eq!(failed, vec![3, 6, 9]);
        assert_eq!(state.failures(), 3);
        assert_eq!(state.requests_for("/"), 9);
    }

    #[test]
    fn failing_overrides_everything_until_cleared() {
        let state = ServerState::new(&UpstreamConfig::new("a").with_fail_status(500));
        state.set_failing(true);
        assert_eq!(state.admit("/x"), Verdict::Fail(500));
        state.set_failing(false);
        assert_eq!(state.admit("/x"), Verdict::Serve);
    }

    #[test]
    fn ratio_one_always_fails_and_zero_never() {
        let state = ServerState::new(&UpstreamConfig::new("a").with_fail_ratio(1.0));
        assert!((0..100).all(|_| state.admit("/") == Verdict::Fail(503)));
        state.set_fail_ratio(0.0);
        assert!((0..100).all(|_| state.admit("/") == Verdict::Serve));
    }
}
