//! Circuit breakers: RAII guards over a cluster's shared resource counts (`ClusterState`) checked
//! against its `CircuitBreakers` thresholds for the request's routing priority. Taking a guard
//! counts the resource in; dropping it counts it out. At the limit nothing is counted, the
//! overflow counter goes up and the caller answers 503 with flag `UO`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use outrider_model::{CircuitBreakers, Priority};
use outrider_tables::{ClusterState, ResourceCounts};

/// A resource a circuit breaker limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `max_connections` (overflow: `upstream_cx_overflow`).
    Connections,
    /// `max_pending_requests` (overflow: `upstream_rq_pending_overflow`).
    PendingRequests,
    /// `max_requests` (overflow: `upstream_rq_pending_overflow`, as Envoy counts it).
    Requests,
    /// `max_retries` (overflow: `upstream_rq_retry_overflow`).
    Retries,
}

impl Resource {
    fn count(self, counts: &ResourceCounts) -> &AtomicU32 {
        match self {
            Self::Connections => &counts.connections,
            Self::PendingRequests => &counts.pending_requests,
            Self::Requests => &counts.requests,
            Self::Retries => &counts.retries,
        }
    }

    fn limit(self, breakers: &CircuitBreakers, priority: Priority) -> u32 {
        let t = breakers.for_priority(priority);
        match self {
            Self::Connections => t.max_connections,
            Self::PendingRequests => t.max_pending_requests,
            Self::Requests => t.max_requests,
            Self::Retries => t.max_retries,
        }
    }

    fn overflow(self, state: &ClusterState) -> &AtomicU64 {
        let c = state.counters.local();
        match self {
            Self::Connections => &c.upstream_cx_overflow,
            Self::PendingRequests | Self::Requests => &c.upstream_rq_pending_overflow,
            Self::Retries => &c.upstream_rq_retry_overflow,
        }
    }
}

/// One unit of a resource, held while it is in use. Holds the cluster state so it can outlive
/// the snapshot it was taken under (a config update keeps the same `ClusterState`).
#[derive(Debug)]
#[must_use = "the resource is released when the guard is dropped"]
pub struct BreakerGuard {
    state: Arc<ClusterState>,
    priority: Priority,
    resource: Resource,
}

impl BreakerGuard {
    pub fn resource(&self) -> Resource {
        self.resource
    }
}

impl Drop for BreakerGuard {
    fn drop(&mut self) {
        self.resource
            .count(self.state.resources(self.priority))
            .fetch_sub(1, Ordering::AcqRel);
    }
}

/// Takes one unit of `resource` if fewer than its limit are in use; otherwise counts the
/// overflow and returns `None`.
pub fn try_acquire(
    state: &Arc<ClusterState>,
    breakers: &CircuitBreakers,
    priority: Priority,
    resource: Resource,
) -> Option<BreakerGuard> {
    let limit = resource.limit(breakers, priority);
    let count = resource.count(state.resources(priority));
    // Compare-and-swap, so concurrent workers never take more than the limit between them and
    // a refused attempt never counts in (a fetch_add-then-undo could refuse a request that fits).
    let taken = count
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < limit).then_some(n + 1)
        })
        .is_ok();
    if !taken {
        resource.overflow(state).fetch_add(1, Ordering::Relaxed);
        return None;
    }
    Some(BreakerGuard {
        state: Arc::clone(state),
        priority,
        resource,
    })
}

/// An active request (`max_requests`).
pub fn try_request(
    state: &Arc<ClusterState>,
    breakers: &CircuitBreakers,
    priority: Priority,
) -> Option<BreakerGuard> {
    try_acquire(state, breakers, priority, Resource::Requests)
}

/// A request waiting for a connection (`max_pending_requests`).
pub fn try_pending(
    state: &Arc<ClusterState>,
    breakers: &CircuitBreakers,
    priority: Priority,
) -> Option<BreakerGuard> {
    try_acquire(state, breakers, priority, Resource::PendingRequests)
}

/// An upstream connection (`max_connections`).
pub fn try_connection(
    state: &Arc<ClusterState>,
    breakers: &CircuitBreakers,
    priority: Priority,
) -> Option<BreakerGuard> {
    try_acquire(state, breakers, priority, Resource::Connections)
}

/// A connection taken over `max_connections`. Envoy opens one anyway when its per-worker pool
/// has no connection at all to the host: otherwise requests would queue as pending with
/// nothing to wait on (a slot freed by another worker or host wakes no one in this pool). The
/// caller has counted the overflow already, through the refused `try_connection`.
pub fn connection_over_limit(state: &Arc<ClusterState>, priority: Priority) -> BreakerGuard {
    Resource::Connections
        .count(state.resources(priority))
        .fetch_add(1, Ordering::AcqRel);
    BreakerGuard {
        state: Arc::clone(state),
        priority,
        resource: Resource::Connections,
    }
}

/// A retry in flight (`max_retries`).
pub fn try_retry(
    state: &Arc<ClusterState>,
    breakers: &CircuitBreakers,
    priority: Priority,
) -> Option<BreakerGuard> {
    try_acquire(state, breakers, priority, Resource::Retries)
}

/// How many more units may be taken now (Envoy's `remaining_*` gauges); 0 means the breaker is
/// open (`*_open` gauges).
pub fn remaining(
    state: &ClusterState,
    breakers: &CircuitBreakers,
    priority: Priority,
    resource: Resource,
) -> u32 {
    let used = resource
        .count(state.resources(priority))
        .load(Ordering::Acquire);
    resource.limit(breakers, priority).saturating_sub(used)
}

#[cfg(test)]
mod tests {
    use super::*;
    use outrider_model::Thresholds;

    fn breakers() -> CircuitBreakers {
        CircuitBreakers {
            default: Thresholds {
                max_connections: 2,
                max_pending_requests: 1,
                max_requests: 3,
                max_retries: 1,
            },
            high: Thresholds::default(),
        }
    }

    fn in_use(state: &ClusterState, priority: Priority, resource: Resource) -> u32 {
        resource
            .count(state.resources(priority))
            .load(Ordering::Relaxed)
    }

    #[test]
    fn guards_count_up_and_down_and_overflow() {
        let cases = [
            (Resource::Requests, 3, "upstream_rq_pending_overflow"),
            (Resource::PendingRequests, 1, "upstream_rq_pending_overflow"),
            (Resource::Connections, 2, "upstream_cx_overflow"),
            (Resource::Retries, 1, "upstream_rq_retry_overflow"),
        ];
        for (resource, limit, overflow_name) in cases {
            let state = Arc::new(ClusterState::new());
            let b = breakers();
            let guards: Vec<_> = (0..limit)
                .map(|_| try_acquire(&state, &b, Priority::Default, resource).expect("below limit"))
                .collect();
            assert_eq!(
                in_use(&state, Priority::Default, resource),
                limit,
                "{resource:?}"
            );
            assert_eq!(remaining(&state, &b, Priority::Default, resource), 0);
            assert!(
                try_acquire(&state, &b, Priority::Default, resource).is_none(),
                "{resource:?} at its limit"
            );
            let overflow = resource.overflow(&state).load(Ordering::Relaxed);
            assert_eq!(overflow, 1, "{resource:?} counts in {overflow_name}");
            assert_eq!(
                in_use(&state, Priority::Default, resource),
                limit,
                "a refusal takes nothing"
            );
            // The other priority has its own counts and limits.
            let high = try_acquire(&state, &b, Priority::High, resource).expect("HIGH is separate");
            assert_eq!(in_use(&state, Priority::High, resource), 1);
            drop(high);
            drop(guards);
            assert_eq!(
                in_use(&state, Priority::Default, resource),
                0,
                "{resource:?} released"
            );
            assert_eq!(in_use(&state, Priority::High, resource), 0);
            assert!(try_acquire(&state, &b, Priority::Default, resource).is_some());
        }
    }

    #[test]
    fn named_helpers_and_envoy_defaults() {
        let state = Arc::new(ClusterState::new());
        let b = CircuitBreakers::default();
        let retries: Vec<_> = (0..3)
            .map(|_| try_retry(&state, &b, Priority::Default).expect("3 retries by default"))
            .collect();
        assert!(try_retry(&state, &b, Priority::Default).is_none());
        assert_eq!(state.counters.total(|c| &c.upstream_rq_retry_overflow), 1);
        drop(retries);
        let r = try_request(&state, &b, Priority::Default).expect("request");
        let p = try_pending(&state, &b, Priority::Default).expect("pending");
        let c = try_connection(&state, &b, Priority::Default).expect("connection");
        assert_eq!(
            remaining(&state, &b, Priority::Default, Resource::Requests),
            1023
        );
        assert_eq!(
            (r.resource(), p.resource(), c.resource()),
            (
                Resource::Requests,
                Resource::PendingRequests,
                Resource::Connections
            )
        );
    }

    #[test]
    fn concurrent_takers_never_exceed_the_limit() {
        let state = Arc::new(ClusterState::new());
        let b = breakers();
        let peak = AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..2000 {
                        if let Some(g) = try_request(&state, &b, Priority::Default) {
                            let now = in_use(&state, Priority::Default, Resource::Requests);
                            peak.fetch_max(now, Ordering::Relaxed);
                            drop(g);
                        }
                    }
                });
            }
        });
        assert!(peak.load(Ordering::Relaxed) <= 3);
        assert_eq!(in_use(&state, Priority::Default, Resource::Requests), 0);
    }
}
