//! `HealthSummary`: the health aggregates a balancer needs — per-priority healthy / degraded
//! counts, the resulting priority loads and panic flags, and effective locality weights — cached
//! per balancer and recomputed (O(hosts), no allocation) only when health may have changed.
//!
//! Why cached: counting health at every pick means one atomic load per host, on cache lines other
//! workers write (active requests, counters): ~µs per pick at 1 000 hosts. Instead:
//! - the host a pick returns is always checked against its live flags, so an ejection takes
//!   effect on the very next pick;
//! - every host a pick looks at is compared with the class the summary counted it in; a mismatch
//!   marks the summary stale (free: the flags were loaded anyway);
//! - `ClusterState::health_epoch` (one load of a rarely written line per pick) catches changes on
//!   hosts no pick looks at, e.g. an unused priority recovering.

use std::cell::{Cell, RefCell};

use crate::health::{HostClass, Source};
use crate::priority::{LevelHealth, PriorityLoads};
use outrider_tables::lb_tables::HostTable;

#[derive(Debug, Clone, Copy)]
pub(crate) struct HealthConfig {
    pub overprovisioning_factor: u32,
    /// Percent; 0 disables panic.
    pub panic_threshold: f64,
    pub weighted_priority_health: bool,
    /// `ignore_new_hosts_until_first_hc`.
    pub exclude_pending: bool,
}

#[derive(Debug, Default)]
struct Aggregates {
    levels: Vec<LevelHealth>,
    loads: PriorityLoads,
    /// Effective weight of each locality for [healthy, degraded] hosts:
    /// `weight · min(1, factor · eligible / hosts)`, in hundredths.
    locality_weights: Vec<[u64; 2]>,
}

#[derive(Debug)]
pub(crate) struct HealthSummary {
    config: HealthConfig,
    /// The class each host was counted in.
    seen: Box<[Cell<HostClass>]>,
    stale: Cell<bool>,
    epoch: Cell<u64>,
    aggregates: RefCell<Aggregates>,
}

/// The level a pick goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LevelChoice {
    pub level: usize,
    pub source: Source,
    pub panic: bool,
}

impl HealthSummary {
    pub(crate) fn new(table: &HostTable, config: HealthConfig, epoch: u64) -> Self {
        let summary = Self {
            config,
            seen: (0..table.len())
                .map(|_| Cell::new(HostClass::Healthy))
                .collect(),
            stale: Cell::new(true),
            epoch: Cell::new(epoch),
            aggregates: RefCell::new(Aggregates {
                levels: vec![LevelHealth::default(); table.levels.len()],
                loads: PriorityLoads::default(),
                locality_weights: vec![[0; 2]; table.localities.len()],
            }),
        };
        summary.refresh(table, epoch);
        summary
    }

    /// The live class of host `index`; notes a change since the last count.
    pub(crate) fn classify(&self, table: &HostTable, index: usize) -> HostClass {
        let Some(host) = table.hosts.get(index) else {
            return HostClass::Excluded;
        };
        let class = HostClass::of(host.health_flags(), self.config.exclude_pending);
        if self.seen.get(index).is_some_and(|s| s.get() != class) {
            self.stale.set(true);
        }
        class
    }

    pub(crate) fn is_stale(&self) -> bool {
        self.stale.get()
    }

    pub(crate) fn mark_stale(&self) {
        self.stale.set(true);
    }

    /// Recomputes if a change was noticed or `epoch` moved. Returns whether it did.
    pub(crate) fn refresh_if_stale(&self, table: &HostTable, epoch: u64) -> bool {
        if !self.stale.get() && self.epoch.get() == epoch {
            return false;
        }
        self.refresh(table, epoch);
        true
    }

    /// `epoch` must have been read before this call, so a flip racing with the count moves the
    /// epoch again and is counted next time.
    fn refresh(&self, table: &HostTable, epoch: u64) {
        self.stale.set(false);
        self.epoch.set(epoch);
        let mut guard = self.aggregates.borrow_mut();
        let agg = &mut *guard;
        let factor = u128::from(self.config.overprovisioning_factor);
        for (level, health) in table.levels.iter().zip(agg.levels.iter_mut()) {
            *health = LevelHealth::default();
            for locality_index in level.localities.clone() {
                let (Some(locality), Some(out)) = (
                    table.localities.get(locality_index),
                    agg.locality_weights.get_mut(locality_index),
                ) else {
                    continue;
                };
                let (mut hosts, mut healthy, mut degraded) = (0u64, 0u64, 0u64);
                for i in locality.hosts.clone() {
                    let (Some(host), Some(seen), Some(weight)) =
                        (table.hosts.get(i), self.seen.get(i), table.weights.get(i))
                    else {
                        continue;
                    };
                    let class = HostClass::of(host.health_flags(), self.config.exclude_pending);
                    seen.set(class);
                    let basis = if self.config.weighted_priority_health {
                        u64::from(*weight)
                    } else {
                        1
                    };
                    match class {
                        HostClass::Excluded => continue,
                        HostClass::Healthy => {
                            healthy += 1;
                            health.healthy_basis += basis;
                        }
                        HostClass::Degraded => {
                            degraded += 1;
                            health.degraded_basis += basis;
                        }
                        HostClass::Unhealthy => {}
                    }
                    hosts += 1;
                    health.total_basis += basis;
                }
                health.hosts += hosts;
                health.healthy_hosts += healthy;
                health.degraded_hosts += degraded;
                let effective = |eligible: u64| -> u64 {
                    if hosts == 0 {
                        return 0;
                    }
                    let share = (factor * u128::from(eligible)).min(100 * u128::from(hosts));
                    let w = u128::from(locality.weight) * share / u128::from(hosts);
                    u64::try_from(w).unwrap_or(u64::MAX)
                };
                *out = [effective(healthy), effective(degraded)];
            }
        }
        agg.loads.recompute(
            &agg.levels,
            self.config.overprovisioning_factor,
            self.config.panic_threshold,
        );
    }

    /// The level and host source for `r` (random, or the request hash).
    pub(crate) fn choose_level(&self, r: u64) -> Option<LevelChoice> {
        let agg = self.aggregates.borrow();
        let (level, source) = agg.loads.choose(r)?;
        let panic = agg.loads.panic.get(level).copied().unwrap_or(false);
        Some(LevelChoice {
            level,
            source: if panic { Source::All } else { source },
            panic,
        })
    }

    /// Effective weight of a locality for `source` (0 for `Source::All`: panic ignores
    /// localities).
    pub(crate) fn locality_weight(&self, locality: usize, source: Source) -> u64 {
        let slot = match source {
            Source::Healthy => 0,
            Source::Degraded => 1,
            Source::All => return 0,
        };
        self.aggregates
            .borrow()
            .locality_weights
            .get(locality)
            .and_then(|w| w.get(slot).copied())
            .unwrap_or(0)
    }
}
