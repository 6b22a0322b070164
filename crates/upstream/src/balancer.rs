//! `Balancer`: picks an endpoint of one cluster for one request — priority level (Envoy's
//! priority load and panic rules), then locality (when locality-weighted), then host (the
//! cluster's `lb_policy`) — reading host health live from the endpoints' atomics.
//!
//! One per cluster entry per worker (`!Sync`: cursors live in `Cell`s). The host table and the
//! RING_HASH and MAGLEV tables were built once when the entry was published
//! (`outrider_tables::lb_tables`) and are shared; building a balancer is O(hosts) at most
//! (health counts, EDF schedules for unequal weights) and O(levels) for the hashing policies. A
//! pick is O(1) or O(log hosts) and does not allocate. Rebuild when the cluster entry changes:
//! `is_current` says when.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use outrider_model::LbPolicy;
use outrider_tables::{ClusterEntry, EndpointState};

use outrider_tables::lb_tables::{HashTables, HostTable};

use crate::health::{NoHealthyUpstream, Source};
use crate::health_summary::{HealthConfig, HealthSummary};
use crate::least_request::LeastRequest;
use crate::locality::LocalityPicker;
use crate::random::RandomPick;
use crate::rng::FastRng;
use crate::round_robin::RoundRobin;

/// The endpoint chosen for a request.
#[derive(Debug, Clone)]
pub struct Pick {
    pub endpoint: Arc<EndpointState>,
    /// The endpoint's priority level.
    pub priority: u32,
    /// Chosen in panic mode (health ignored). Already counted in
    /// `ClusterState::counters.lb_healthy_panic`.
    pub panic: bool,
}

/// Per-scope host selection. Scopes `0..levels` are the priority levels; under locality
/// weighting, scope `levels + l` is locality `l`.
#[derive(Debug)]
enum Policy {
    RoundRobin(Box<[RoundRobin]>),
    LeastRequest(Box<[LeastRequest]>),
    Random(Box<[RandomPick]>),
    /// RING_HASH or MAGLEV: the entry's shared tables, one per level (locality weights are
    /// folded into them).
    Hashing,
}

pub struct Balancer {
    entry: Arc<ClusterEntry>,
    health: HealthSummary,
    /// Some under locality-weighted balancing (non-hashing policies).
    localities: Option<LocalityPicker>,
    policy: Policy,
    rng: FastRng,
}

impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balancer")
            .field("cluster", &self.entry.config.name)
            .field("hosts", &self.table().len())
            .field("policy", &self.entry.config.lb_policy)
            .finish_non_exhaustive()
    }
}

impl Balancer {
    /// A balancer for `entry`'s config and endpoints, seeded from the OS so each worker starts
    /// its rotations elsewhere.
    pub fn new(entry: &Arc<ClusterEntry>) -> Self {
        Self::build(entry, FastRng::from_entropy())
    }

    /// Deterministic: for tests and benchmarks.
    pub fn with_seed(entry: &Arc<ClusterEntry>, seed: u64) -> Self {
        Self::build(entry, FastRng::new(seed))
    }

    /// Whether this balancer was built for `entry`. A new entry is published whenever the
    /// cluster's config or endpoints change, so a worker keeps its balancer while this holds
    /// and rebuilds otherwise.
    pub fn is_current(&self, entry: &Arc<ClusterEntry>) -> bool {
        Arc::ptr_eq(&self.entry, entry)
    }

    fn build(entry: &Arc<ClusterEntry>, rng: FastRng) -> Self {
        let config = &entry.config;
        let set = &entry.endpoints;
        let table = &entry.lb.hosts;
        let health = HealthSummary::new(
            table,
            HealthConfig {
                overprovisioning_factor: set.overprovisioning_factor,
                panic_threshold: config.common_lb.healthy_panic_threshold,
                weighted_priority_health: set.weighted_priority_health,
                exclude_pending: config.common_lb.ignore_new_hosts_until_first_hc,
            },
            entry.state.health_epoch(),
        );
        let locality_weighted = config.common_lb.locality_weighted;
        let scopes: Vec<Range<usize>> = table
            .levels
            .iter()
            .map(|l| l.hosts.clone())
            .chain(
                table
                    .localities
                    .iter()
                    .filter(|_| locality_weighted)
                    .map(|l| l.hosts.clone()),
            )
            .collect();
        let policy = match config.lb_policy {
            LbPolicy::RoundRobin => Policy::RoundRobin(
                scopes
                    .iter()
                    .map(|r| RoundRobin::new(table, r.clone(), &rng))
                    .collect(),
            ),
            LbPolicy::LeastRequest { choice_count } => Policy::LeastRequest(
                scopes
                    .iter()
                    .map(|r| LeastRequest::new(table, r.clone(), choice_count, &rng))
                    .collect(),
            ),
            LbPolicy::Random => Policy::Random(
                scopes
                    .iter()
                    .map(|r| RandomPick::new(table, r.clone()))
                    .collect(),
            ),
            LbPolicy::RingHash { .. } | LbPolicy::Maglev { .. } => Policy::Hashing,
        };
        let hashes = matches!(policy, Policy::Hashing);
        let localities =
            (locality_weighted && !hashes).then(|| LocalityPicker::new(table.localities.len()));
        Self {
            entry: Arc::clone(entry),
            health,
            localities,
            policy,
            rng,
        }
    }

    /// The entry's hosts, flat.
    fn table(&self) -> &HostTable {
        &self.entry.lb.hosts
    }

    /// Picks an endpoint. `hash`: the route's hash-policy hash (used by RING_HASH and MAGLEV,
    /// and to choose the priority level for them; random when `None`). `avoid`: endpoints this
    /// request already tried — another eligible endpoint of the same level is preferred, and one
    /// of them is returned only when there is no other.
    pub fn pick(
        &self,
        hash: Option<u64>,
        avoid: &[&Arc<EndpointState>],
    ) -> Result<Pick, NoHealthyUpstream> {
        let epoch = self.entry.state.health_epoch();
        let counters = self.entry.state.counters.local();
        for attempt in 0..2 {
            let refreshed = self.health.refresh_if_stale(self.table(), epoch);
            let result = self.try_pick(hash, avoid);
            // The pick ran on counts that turned out to be out of date (a host it looked at
            // changed class, or it found nobody): recount and pick again, once, so a change
            // takes effect on this very pick even if nobody signalled the health epoch.
            if attempt == 0 && !refreshed && (result.is_none() || self.health.is_stale()) {
                self.health.mark_stale();
                continue;
            }
            if let Some(pick) = result {
                if pick.panic {
                    counters.lb_healthy_panic.fetch_add(1, Ordering::Relaxed);
                }
                return Ok(pick);
            }
            break;
        }
        counters
            .upstream_cx_none_healthy
            .fetch_add(1, Ordering::Relaxed);
        Err(NoHealthyUpstream::explain(self.table().hosts.iter(), avoid))
    }

    fn try_pick(&self, hash: Option<u64>, avoid: &[&Arc<EndpointState>]) -> Option<Pick> {
        let table = self.table();
        if table.is_empty() {
            return None;
        }
        let r = hash.unwrap_or_else(|| self.rng.next_u64());
        let choice = self.health.choose_level(r)?;
        let level = table.levels.get(choice.level)?;
        let locality = self.localities.as_ref().and_then(|picker| {
            picker
                .choose(level.localities.clone(), choice.source, &self.health)
                .map(|l| table.levels.len() + l)
        });
        let level_scope = choice.level;
        let scope = locality.unwrap_or(level_scope);
        // Most specific first; the request's earlier endpoints only as a last resort.
        let both = [scope, level_scope];
        let scopes = if scope == level_scope {
            &both[..1]
        } else {
            &both[..]
        };
        let no_avoid: &[&Arc<EndpointState>] = &[];
        let both_avoids = [avoid, no_avoid];
        let avoids = if avoid.is_empty() {
            &both_avoids[1..]
        } else {
            &both_avoids[..]
        };
        for avoid in avoids {
            for scope in scopes {
                if let Some(index) = self.pick_in(*scope, choice.source, r, avoid) {
                    return Some(Pick {
                        endpoint: Arc::clone(table.hosts.get(index)?),
                        priority: u32::try_from(choice.level).unwrap_or(u32::MAX),
                        panic: choice.panic,
                    });
                }
            }
        }
        None
    }

    /// A host of `scope` that `source` admits and `avoid` does not list.
    fn pick_in(
        &self,
        scope: usize,
        source: Source,
        r: u64,
        avoid: &[&Arc<EndpointState>],
    ) -> Option<usize> {
        let table = self.table();
        let range = self.scope_hosts(scope);
        let mut accept = |index: usize| {
            let class = self.health.classify(table, index);
            source.admits(class)
                && (avoid.is_empty()
                    || table
                        .hosts
                        .get(index)
                        .is_some_and(|h| !avoid.iter().any(|a| Arc::ptr_eq(a, h))))
        };
        let rng = &self.rng;
        match &self.policy {
            Policy::RoundRobin(p) => p.get(scope)?.pick(table, range, rng, &mut accept),
            Policy::LeastRequest(p) => p.get(scope)?.pick(table, range, rng, &mut accept),
            Policy::Random(p) => p.get(scope)?.pick(table, range, rng, &mut accept),
            Policy::Hashing => match &self.entry.lb.hashing {
                HashTables::RingHash(rings) => rings.get(scope)?.pick(r, &mut accept),
                HashTables::Maglev(tables) => tables.get(scope)?.pick(r, &mut accept),
                HashTables::None => None,
            },
        }
    }

    fn scope_hosts(&self, scope: usize) -> Range<usize> {
        let table = self.table();
        let levels = table.levels.len();
        if scope < levels {
            table.levels.get(scope).map(|l| l.hosts.clone())
        } else {
            table
                .localities
                .get(scope - levels)
                .map(|l| l.hosts.clone())
        }
        .unwrap_or(0..0)
    }
}
