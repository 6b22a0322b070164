//! How long an upstream connection may serve, from the cluster's `HttpProtocolOptions`:
//! `idle_timeout` (Envoy's default 1 h), `max_connection_duration` and
//! `max_requests_per_connection`. A connection past a limit is retired: it takes no new request,
//! finishes the ones it carries, and closes (hyper closes a connection once the pool's last
//! handle to it is gone and its streams are done), as Envoy drains it.
//!
//! The request path pays one increment per request: time limits are checked by a sweep over
//! the pool every eighth of the shortest limit, which marks a connection used since the last
//! sweep as active then. A connection is so closed between `idle_timeout` and 9/8 of it after
//! its last request started (Envoy: after its last stream ended; a stream running longer than
//! the idle timeout retires its connection for new requests without cutting it).

use std::cell::Cell;
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering;
use std::time::Duration;

use outrider_model::Cluster;
use outrider_tables::ClusterState;
use tokio::time::Instant;

/// The cluster's connection lifetime limits, for one pool.
#[derive(Debug)]
pub(crate) struct Lifetime {
    idle_timeout: Option<Duration>,
    max_duration: Option<Duration>,
    max_requests: Option<u32>,
    /// The pool's sweep runs (from its first connection on).
    sweeping: Cell<bool>,
}

/// Why a connection was retired, counted in Envoy's stat of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retired {
    /// `upstream_cx_idle_timeout`
    IdleTimeout,
    /// `upstream_cx_max_duration_reached`
    MaxDuration,
    /// `upstream_cx_max_requests`
    MaxRequests,
}

impl Retired {
    pub(crate) fn count(self, state: &ClusterState) {
        let counters = state.counters.local();
        let counter = match self {
            Self::IdleTimeout => &counters.upstream_cx_idle_timeout,
            Self::MaxDuration => &counters.upstream_cx_max_duration_reached,
            Self::MaxRequests => &counters.upstream_cx_max_requests,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the limits need to know of one connection.
#[derive(Debug)]
pub(crate) struct Usage {
    opened: Instant,
    /// The start of the sweep period in which it last took a request.
    last_active: Instant,
    /// Took a request since the last sweep.
    used: bool,
    requests: u32,
}

impl Usage {
    /// Requests taken so far.
    pub(crate) fn requests(&self) -> u32 {
        self.requests
    }

    pub(crate) fn new() -> Self {
        let now = Instant::now();
        Usage {
            opened: now,
            last_active: now,
            used: false,
            requests: 0,
        }
    }
}

impl Lifetime {
    pub(crate) fn of(cluster: &Cluster) -> Self {
        let common = &cluster.http.common;
        Lifetime {
            idle_timeout: common.idle_timeout,
            max_duration: common.max_connection_duration,
            max_requests: common.max_requests_per_connection,
            sweeping: Cell::new(false),
        }
    }

    /// Counts a request on the connection; whether it was the connection's last one
    /// (`max_requests_per_connection`).
    pub(crate) fn take_request(&self, usage: &mut Usage) -> bool {
        usage.used = true;
        usage.requests = usage.requests.saturating_add(1);
        self.max_requests.is_some_and(|max| usage.requests >= max)
    }

    /// At a sweep: whether an open connection that carries no request now must be retired.
    pub(crate) fn expired(&self, usage: &mut Usage, now: Instant) -> Option<Retired> {
        if std::mem::take(&mut usage.used) {
            usage.last_active = now;
        }
        if self
            .max_duration
            .is_some_and(|max| now.duration_since(usage.opened) >= max)
        {
            return Some(Retired::MaxDuration);
        }
        if self
            .idle_timeout
            .is_some_and(|idle| now.duration_since(usage.last_active) >= idle)
        {
            return Some(Retired::IdleTimeout);
        }
        None
    }

    /// How often a pool is swept: an eighth of the shortest time limit; never without one.
    fn sweep_interval(&self) -> Option<Duration> {
        let shortest = match (self.idle_timeout, self.max_duration) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some((shortest / 8).max(Duration::from_millis(1)))
    }

    /// Runs `sweep` over `pool` for as long as the pool lives, if there is a time limit; the
    /// first call starts it, later ones do nothing.
    pub(crate) fn keep_sweeping<P: 'static>(&self, pool: &Rc<P>, sweep: fn(&P, Instant)) {
        if self.sweeping.replace(true) {
            return;
        }
        let Some(interval) = self.sweep_interval() else {
            return;
        };
        let pool: Weak<P> = Rc::downgrade(pool);
        tokio::task::spawn_local(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let now = ticks.tick().await;
                let Some(pool) = pool.upgrade() else {
                    return;
                };
                sweep(&pool, now);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifetime(idle: Option<u64>, duration: Option<u64>, requests: Option<u32>) -> Lifetime {
        Lifetime {
            idle_timeout: idle.map(Duration::from_secs),
            max_duration: duration.map(Duration::from_secs),
            max_requests: requests,
            sweeping: Cell::new(false),
        }
    }

    #[test]
    fn the_last_request_is_the_one_that_reaches_the_limit() {
        let limits = lifetime(None, None, Some(2));
        let mut usage = Usage::new();
        assert!(!limits.take_request(&mut usage));
        assert!(limits.take_request(&mut usage));
        assert!(!lifetime(None, None, None).take_request(&mut usage));
    }

    #[test]
    fn idle_time_counts_from_the_sweep_after_the_last_request() {
        let limits = lifetime(Some(10), None, None);
        let mut usage = Usage::new();
        let start = usage.opened;
        assert_eq!(
            limits.expired(&mut usage, start + Duration::from_secs(9)),
            None
        );
        limits.take_request(&mut usage);
        // Used since the last sweep: active as of this sweep.
        assert_eq!(
            limits.expired(&mut usage, start + Duration::from_secs(12)),
            None
        );
        assert_eq!(
            limits.expired(&mut usage, start + Duration::from_secs(21)),
            None
        );
        assert_eq!(
            limits.expired(&mut usage, start + Duration::from_secs(22)),
            Some(Retired::IdleTimeout)
        );
    }

    #[test]
    fn max_duration_counts_from_the_open_whatever_the_use() {
        let limits = lifetime(Some(100), Some(30), None);
        let mut usage = Usage::new();
        let start = usage.opened;
        limits.take_request(&mut usage);
        assert_eq!(
            limits.expired(&mut usage, start + Duration::from_secs(29)),
            None
        );
        limits.take_request(&mut usage);
        assert_eq!(
            limits.expired(&mut usage, start + Duration::from_secs(30)),
            Some(Retired::MaxDuration)
        );
    }

    #[test]
    fn sweeps_follow_the_shortest_time_limit() {
        assert_eq!(
            lifetime(Some(80), Some(16), None).sweep_interval(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            lifetime(Some(80), None, Some(3)).sweep_interval(),
            Some(Duration::from_secs(10))
        );
        assert_eq!(lifetime(None, None, Some(3)).sweep_interval(), None);
    }
}
