//! When a downstream HTTP connection stops taking requests although its client has not
//! finished: the listener drains, or the connection manager's
//! `common_http_protocol_options` retire it after `max_requests_per_connection` requests or
//! at `max_connection_duration`. hyper's graceful shutdown then does what Envoy's drain
//! sequence does: HTTP/1.1 answers what is in flight with `connection: close`, HTTP/2 sends
//! GOAWAY, and the connection closes once its streams are done.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use outrider_model::HttpConnectionManager;
use tokio::sync::{Notify, watch};

use crate::http_stats::HttpStats;

/// Why a connection is retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retirement {
    /// Its listener drains: in-flight requests get `--drain-time-s`.
    Drain,
    /// `max_requests_per_connection` or `max_connection_duration`: in-flight requests get the
    /// connection manager's `drain_timeout`.
    Limit,
}

/// One connection's count against `max_requests_per_connection`.
pub(crate) struct RequestBudget {
    left: Cell<u32>,
    spent: Notify,
}

impl RequestBudget {
    /// `None` without a limit (nothing to count).
    pub(crate) fn of(hcm: &HttpConnectionManager) -> Option<Rc<Self>> {
        hcm.common.max_requests_per_connection.map(|max| {
            Rc::new(RequestBudget {
                left: Cell::new(max),
                spent: Notify::new(),
            })
        })
    }

    /// A request began; the last one allowed retires the connection after its response.
    pub(crate) fn take(&self) {
        let left = self.left.get().saturating_sub(1);
        self.left.set(left);
        if left == 0 {
            self.spent.notify_one();
        }
    }
}

/// Resolves when the connection should stop taking requests, counting a limit in the
/// connection manager's `downstream_cx_max_requests_reached` /
/// `downstream_cx_max_duration_reached`.
pub(crate) async fn retirement(
    drained: &mut watch::Receiver<bool>,
    budget: Option<&RequestBudget>,
    max_duration: Option<Duration>,
    stats: &HttpStats,
) -> Retirement {
    let spent = async {
        match budget {
            Some(budget) => budget.spent.notified().await,
            None => std::future::pending().await,
        }
    };
    let aged = async {
        match max_duration {
            Some(duration) => tokio::time::sleep(duration).await,
            None => std::future::pending().await,
        }
    };
    let counters = stats.local();
    // Polled on every wake of the connection: `biased` spares a random draw each time.
    tokio::select! {
        biased;
        _ = drained.wait_for(|d| *d) => Retirement::Drain,
        () = spent => {
            counters.downstream_cx_max_requests_reached.fetch_add(1, Relaxed);
            Retirement::Limit
        }
        () = aged => {
            counters.downstream_cx_max_duration_reached.fetch_add(1, Relaxed);
            Retirement::Limit
        }
    }
}
