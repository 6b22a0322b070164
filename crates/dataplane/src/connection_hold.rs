//! What an open downstream HTTP connection holds: its place under the global connection
//! limit and its count in `downstream_cx_active`. hyper lets go of a connection it hands to
//! an upgrade (a WebSocket tunnel) while the socket stays open, so the tunnel keeps a share
//! of the hold until it closes, as Envoy counts a tunnelled connection until it ends.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::downstream_connections::ConnectionSlot;
use crate::http_stats::HttpStats;

/// Shared by the connection and any tunnel taken from it; released when the last goes.
#[derive(Clone)]
pub(crate) struct ConnectionHold {
    _held: Arc<Held>,
}

struct Held {
    stats: HttpStats,
    _slot: ConnectionSlot,
}

impl ConnectionHold {
    /// Counts the connection in `downstream_cx_total` / `downstream_cx_active` (on this
    /// worker's shard; the tunnel that may release it runs on the same worker).
    pub(crate) fn new(stats: HttpStats, slot: ConnectionSlot) -> Self {
        let counters = stats.local();
        counters.downstream_cx_total.fetch_add(1, Relaxed);
        counters.downstream_cx_active.fetch_add(1, Relaxed);
        ConnectionHold {
            _held: Arc::new(Held { stats, _slot: slot }),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stats
            .local()
            .downstream_cx_active
            .fetch_sub(1, Relaxed);
    }
}
