//! `Balancer`: picks an endpoint of one cluster for one request — priority level (Envoy's
//! priority load and panic rules), then locality (when locality-weighted), then host (the
//! cluster's `lb_policy`) — reading host health live from the endpoints' atomics.
//!
//! One per cluster entry per worker (`!Sync`: cursors live in `Cell`s). Building is O(hosts)
//! (O(ring or table size) for RING_HASH and MAGLEV); a pick is O(1) or O(log hosts) and does not
//! allocate. Rebuild when the cluster entry changes: `is_current` says when.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use outrider_model::LbPolicy;
use outrider_tables::{ClusterEntry, EndpointState};

use crate::health::{NoHealthyUpstream, Source};
use crate::health_summary::{HealthConfig, HealthSummary};
use crate::host_table::HostTable;
use crate::least_request::LeastRequest;
use crate::locality::LocalityPicker;
use crate::maglev::MaglevTable;
use crate::random::RandomPick;
use crate::ring_hash::{Ring, RingConfig, normalized_weights};
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
    /// Per level; locality weights are folded into the ring.
    RingHash(Box<[Ring]>),
    /// Per level.
    Maglev(Box<[MaglevTable]>),
}

impl Policy {
    fn hashes(&self) -> bool {
        matches!(self, Self::RingHash(_) | Self::Maglev(_))
    }
}

pub struct Balancer {
    entry: Arc<ClusterEntry>,
    table: HostTable,
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
            .field("hosts", &self.table.len())
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
        let table = HostTable::new(set);
        let health = HealthSummary::new(
            &table,
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
        let levels = 0..table.levels.len();
        let policy = match config.lb_policy {
            LbPolicy::RoundRobin => Policy::RoundRobin(
                scopes
                    .iter()
                    .map(|r| RoundRobin::new(&table, r.clone(), &rng))
                    .collect(),
            ),
            LbPolicy::LeastRequest { choice_count } => Policy::LeastRequest(
                scopes
                    .iter()
                    .map(|r| LeastRequest::new(&table, r.clone(), choice_count, &rng))
                    .collect(),
            ),
            LbPolicy::Random => Policy::Random(
                scopes
                    .iter()
                    .map(|r| RandomPick::new(&table, r.clone()))
                    .collect(),
            ),
            LbPolicy::RingHash {
                minimum_ring_size,
                maximum_ring_size,
                hash_function,
            } => {
                let ring_config = RingConfig {
                    minimum_ring_size,
                    maximum_ring_size,
                    hash_function,
                };
                Policy::RingHash(
                    levels
                        .map(|l| {
                            let weights = normalized_weights(&table, l, locality_weighted);
                            Ring::new(&table, &weights, ring_config)
                        })
                        .collect(),
                )
            }
            LbPolicy::Maglev { table_size } => Policy::Maglev(
                levels
                    .map(|l| {
                        let weights = normalized_weights(&table, l, locality_weighted);
                        MaglevTable::new(&table, &weights, table_size)
                    })
                    .collect(),
            ),
        };
        let localities = (locality_weighted && !policy.hashes())
            .then(|| LocalityPicker::new(table.localities.len()));
        Self {
            entry: Arc::clone(entry),
            table,
            health,
            localities,
            policy,
            rng,
        }
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
            let refreshed = self.health.refresh_if_stale(&self.table, epoch);
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
        Err(NoHealthyUpstream::explain(self.table.hosts.iter(), avoid))
    }

    fn try_pick(&self, hash: Option<u64>, avoid: &[&Arc<EndpointState>]) -> Option<Pick> {
        if self.table.len() == 0 {
            return None;
        }
        let r = hash.unwrap_or_else(|| self.rng.next_u64());
        let choice = self.health.choose_level(r)?;
        let level = self.table.levels.get(choice.level)?;
        let locality = self.localities.as_ref().and_then(|picker| {
            picker
                .choose(level.localities.clone(), choice.source, &self.health)
                .map(|l| self.table.levels.len() + l)
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
                        endpoint: Arc::clone(self.table.hosts.get(index)?),
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
        let table = &self.table;
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
            Policy::RingHash(p) => p.get(scope)?.pick(r, &mut accept),
            Policy::Maglev(p) => p.get(scope)?.pick(r, &mut accept),
        }
    }

    fn scope_hosts(&self, scope: usize) -> Range<usize> {
        let levels = self.table.levels.len();
        if scope < levels {
            self.table.levels.get(scope).map(|l| l.hosts.clone())
        } else {
            self.table
                .localities
                .get(scope - levels)
                .map(|l| l.hosts.clone())
        }
        .unwrap_or(0..0)
    }
}
