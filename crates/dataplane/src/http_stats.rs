//! Envoy's `http.<stat_prefix>.*` counters of the HTTP connection manager, one set per stat
//! prefix (listeners that share a prefix share the counters, as in Envoy), sharded per worker.
//! The registry is locked only when a worker meets a prefix for the first time; after that each
//! worker finds the counters in its own map.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use outrider_tables::Sharded;

#[derive(Debug, Default)]
pub struct HttpCounters {
    pub downstream_cx_total: AtomicU64,
    /// Incremented when a connection opens and decremented when it closes, on the same worker,
    /// so the shards' sum is the gauge.
    pub downstream_cx_active: AtomicU64,
    /// Connections retired at `max_requests_per_connection`.
    pub downstream_cx_max_requests_reached: AtomicU64,
    /// Connections retired at `max_connection_duration`.
    pub downstream_cx_max_duration_reached: AtomicU64,
    /// Connections retired after `idle_timeout` without requests.
    pub downstream_cx_idle_timeout: AtomicU64,
    pub downstream_cx_protocol_error: AtomicU64,
    pub downstream_rq_total: AtomicU64,
    pub downstream_rq_active: AtomicU64,
    /// Streams ended by `stream_idle_timeout` (or a route's `idle_timeout`).
    pub downstream_rq_idle_timeout: AtomicU64,
    /// Streams ended by `request_timeout`.
    pub downstream_rq_timeout: AtomicU64,
    pub downstream_rq_header_timeout: AtomicU64,
    /// Streams ended by their maximum duration.
    pub downstream_rq_max_duration_reached: AtomicU64,
    /// Requests refused (400) by path normalisation.
    pub downstream_rq_failed_path_normalization: AtomicU64,
    /// Requests redirected to their unescaped path (`UNESCAPE_AND_REDIRECT`).
    pub downstream_rq_redirected_with_normalized_path: AtomicU64,
    /// HTTP/2 connections closed for resetting too many streams before their answer.
    pub downstream_rq_too_many_premature_resets: AtomicU64,
    /// Responses by status class: index 0 = 1xx … 4 = 5xx (`downstream_rq_<N>xx`).
    pub downstream_rq_by_class: [AtomicU64; 5],
}

impl HttpCounters {
    pub(crate) fn count_response(&self, status: u16) {
        let class = usize::from(status / 100);
        if let Some(counter) = class
            .checked_sub(1)
            .and_then(|i| self.downstream_rq_by_class.get(i))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub type HttpStats = Arc<Sharded<HttpCounters>>;

/// Every stat prefix's counters, shared by the workers and read by `/stats`.
#[derive(Debug, Default, Clone)]
pub struct HttpStatsRegistry {
    by_prefix: Arc<Mutex<HashMap<String, HttpStats>>>,
}

impl HttpStatsRegistry {
    /// The counters of `prefix`, created on first use.
    pub(crate) fn get(&self, prefix: &str) -> HttpStats {
        let mut map = self
            .by_prefix
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(prefix.to_string()).or_default().clone()
    }

    /// Every prefix with its counters, sorted by prefix.
    pub fn all(&self) -> Vec<(String, HttpStats)> {
        let map = self
            .by_prefix
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<_> = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}
