//! The reporters' own counters and gauges, with the names a stats page shows them under.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters (and two 0/1 gauges) of the event stream, the event log and the load reporter.
/// Envoy has no event stream; its names follow Envoy's pattern (`load_reporter.*` are Envoy's).
#[derive(Debug, Default)]
pub struct ReportStats {
    /// Events handed to the event stream.
    pub events_sent: AtomicU64,
    /// Events lost before they could be sent: the disconnected buffer overflowed, or the
    /// reporter fell behind the event bus.
    pub events_dropped: AtomicU64,
    /// 1 while an event stream is open.
    pub events_connected: AtomicU64,
    /// Event streams that ended with an error (or failed to open).
    pub events_stream_errors: AtomicU64,
    /// Outlier events written to `event_log_path`.
    pub event_log_written: AtomicU64,
    /// Outlier events not written: the log fell behind the bus, or the write failed.
    pub event_log_dropped: AtomicU64,
    /// Load reports sent (Envoy's `load_reporter.requests`).
    pub lrs_requests: AtomicU64,
    /// `LoadStatsResponse`s received (Envoy's `load_reporter.responses`).
    pub lrs_responses: AtomicU64,
    /// LRS streams that ended with an error or failed to open (Envoy's `load_reporter.errors`).
    pub lrs_errors: AtomicU64,
    /// 1 while an LRS stream is open.
    pub lrs_connected: AtomicU64,
}

impl ReportStats {
    /// Every value by its stat name.
    pub fn values(&self) -> Vec<(&'static str, u64)> {
        let get = |v: &AtomicU64| v.load(Ordering::Relaxed);
        vec![
            ("event_reporting.events_sent", get(&self.events_sent)),
            ("event_reporting.events_dropped", get(&self.events_dropped)),
            (
                "event_reporting.connected_state",
                get(&self.events_connected),
            ),
            (
                "event_reporting.stream_errors",
                get(&self.events_stream_errors),
            ),
            ("event_log.events_written", get(&self.event_log_written)),
            ("event_log.events_dropped", get(&self.event_log_dropped)),
            ("load_reporter.requests", get(&self.lrs_requests)),
            ("load_reporter.responses", get(&self.lrs_responses)),
            ("load_reporter.errors", get(&self.lrs_errors)),
            ("load_reporter.connected_state", get(&self.lrs_connected)),
        ]
    }

    /// One value by its stat name.
    pub fn value(&self, name: &str) -> Option<u64> {
        self.values()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn set(gauge: &AtomicU64, value: u64) {
    gauge.store(value, Ordering::Relaxed);
}
