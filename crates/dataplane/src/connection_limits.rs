//! When a downstream HTTP connection stops taking requests although its client has not
//! finished: the listener drains, or the connection manager's
//! `common_http_protocol_options` retire it after `max_requests_per_connection` requests, at
//! `max_connection_duration`, or after `idle_timeout` without requests (HTTP/1.1 idle
//! connections are also closed by hyper's own header timer; this one covers HTTP/2). hyper's graceful shutdown then does what Envoy's drain
//! sequence does: HTTP/1.1 answers what is in flight with `connection: close`, HTTP/2 sends
//! GOAWAY, and the connection closes once its streams are done.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use outrider_model::HttpConnectionManager;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

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

/// Whether a connection has requests in flight, and since when it has had none: its
/// `idle_timeout` runs from then (Envoy: "no active requests"). Two cells per request, no
/// timer: the connection's one timer checks them when it fires.
pub(crate) struct Activity {
    active: Cell<u32>,
    idle_since: Cell<Instant>,
}

impl Activity {
    pub(crate) fn new() -> Rc<Self> {
        Rc::new(Activity {
            active: Cell::new(0),
            idle_since: Cell::new(Instant::now()),
        })
    }

    /// A request began; it is in flight until the guard drops: when its response head is
    /// out, or when it is abandoned (an HTTP/2 stream still sending its body keeps its
    /// stream when GOAWAY comes, so counting it done then retires nothing early).
    pub(crate) fn request_started(self: &Rc<Self>) -> InFlight {
        self.active.set(self.active.get() + 1);
        InFlight(self.clone())
    }
}

/// A request counted in its connection's [`Activity`].
pub(crate) struct InFlight(Rc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let active = activity.active.get().saturating_sub(1);
        activity.active.set(active);
        if active == 0 {
            activity.idle_since.set(Instant::now());
        }
    }
}

impl Activity {
    /// Resolves once the connection has had no request in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        let mut deadline = self.idle_since.get() + timeout;
        loop {
            tokio::time::sleep_until(deadline).await;
            if self.active.get() > 0 {
                deadline = Instant::now() + timeout;
                continue;
            }
            let due = self.idle_since.get() + timeout;
            if due <= Instant::now() {
                return;
            }
            deadline = due;
        }
    }
}

/// A connection's request-count, age and idle limits, watched by a task of their own so that
/// the connection's wakes never poll their timers; the task ends with the connection.
pub(crate) struct LimitWatch {
    reached: oneshot::Receiver<()>,
    task: JoinHandle<()>,
}

impl LimitWatch {
    /// Resolves when a limit is reached (counted in the connection manager's
    /// `downstream_cx_max_requests_reached` / `_max_duration_reached` / `_idle_timeout`).
    pub(crate) async fn reached(&mut self) {
        let _ = (&mut self.reached).await;
    }
}

impl Drop for LimitWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches the limits that apply (`None` when none does).
pub(crate) fn watch_limits(
    budget: Option<Rc<RequestBudget>>,
    max_duration: Option<Duration>,
    idle: Option<(Rc<Activity>, Duration)>,
    stats: Rc<HttpStats>,
) -> Option<LimitWatch> {
    if budget.is_none() && max_duration.is_none() && idle.is_none() {
        return None;
    }
    let (tell, reached) = oneshot::channel();
    let task = tokio::task::spawn_local(async move {
        let spent = async {
            match &budget {
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
        let quiet = async {
            match &idle {
                Some((activity, timeout)) => activity.idle_for(*timeout).await,
                None => std::future::pending().await,
            }
        };
        let counters = stats.local();
        let counter = tokio::select! {
            () = spent => &counters.downstream_cx_max_requests_reached,
            () = aged => &counters.downstream_cx_max_duration_reached,
            () = quiet => &counters.downstream_cx_idle_timeout,
        };
        counter.fetch_add(1, Relaxed);
        let _ = tell.send(());
    });
    Some(LimitWatch { reached, task })
}
