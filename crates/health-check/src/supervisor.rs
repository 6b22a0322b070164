//! `run`: follows the tables and keeps one session per (cluster, host, health check): started
//! when the host appears, restarted when the cluster's `health_checks` change, stopped when the
//! host or the cluster goes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use outrider_model::HealthCheck;
use outrider_tables::{ClusterEntry, ClusterState, EndpointState, HealthFlags, Snapshot, Tables};
use outrider_upstream::events::EventBus;
use tokio::task::{AbortHandle, JoinSet};

use crate::first_round::FirstRound;
use crate::session::{Session, checker_bits, recount_gauges};

/// Health-checks the hosts of every cluster in `tables` that has `health_checks`, for as long
/// as it is polled, on the caller's runtime; publishes transitions on `bus`. Dropping the
/// future stops every check.
pub async fn run(tables: Arc<Tables>, bus: EventBus) {
    let mut published = tables.subscribe();
    let mut supervisor = Supervisor {
        clusters: HashMap::new(),
        tasks: JoinSet::new(),
        tables: Arc::clone(&tables),
        bus,
    };
    loop {
        supervisor.sync(&tables.load_full());
        if published.changed().await.is_err() {
            // The tables are gone: nothing left to check.
            return;
        }
    }
}

struct Supervisor {
    clusters: HashMap<Arc<str>, ClusterSessions>,
    /// Aborts every session when dropped.
    tasks: JoinSet<()>,
    tables: Arc<Tables>,
    bus: EventBus,
}

/// The sessions of one cluster, and what they were started for.
struct ClusterSessions {
    state: Arc<ClusterState>,
    health_checks: Vec<HealthCheck>,
    /// The entry last synced: an unchanged pointer means nothing to do.
    entry: Arc<ClusterEntry>,
    /// Keyed by host (its state's address in memory): a host kept pending removal and its
    /// replacement at the same address (a new health-check port) are checked side by side.
    hosts: HashMap<HostKey, HostSessions>,
    /// Until the first round is done.
    first_round: Option<Arc<FirstRound>>,
}

/// A host, compared by identity: the very state the tables share, not its address.
#[derive(Clone)]
struct HostKey(Arc<EndpointState>);

impl PartialEq for HostKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for HostKey {}

impl std::hash::Hash for HostKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.0).hash(state);
    }
}

struct HostSessions {
    tasks: Vec<AbortHandle>,
}

impl Drop for HostSessions {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Supervisor {
    /// O(clusters) pointer comparisons per publication, plus O(hosts) for each cluster whose
    /// config or endpoints changed.
    fn sync(&mut self, snapshot: &Snapshot) {
        // Reap finished and aborted sessions.
        while self.tasks.try_join_next().is_some() {}
        for (name, entry) in snapshot.clusters() {
            if entry.config.health_checks.is_empty() {
                // The tables cleared the active-HC flags when the checks went.
                self.clusters.remove(name);
                entry.state.health_check.mark_first_round_done();
                continue;
            }
            let current = self.clusters.get(name).is_some_and(|c| {
                Arc::ptr_eq(&c.state, &entry.state) && c.health_checks == entry.config.health_checks
            });
            if !current {
                // New, re-added, or with other health checks: every session starts over. A
                // round in progress carries on with the new sessions.
                let unfinished = self
                    .clusters
                    .remove(name)
                    .filter(|c| Arc::ptr_eq(&c.state, &entry.state))
                    .and_then(|c| c.first_round.clone());
                let first_round = unfinished.or_else(|| {
                    (!entry.state.health_check.first_round_done())
                        .then(|| FirstRound::new(Arc::clone(&entry.state)))
                });
                self.clusters.insert(
                    name.into(),
                    ClusterSessions {
                        state: Arc::clone(&entry.state),
                        health_checks: entry.config.health_checks.clone(),
                        entry: Arc::clone(entry),
                        hosts: HashMap::new(),
                        first_round,
                    },
                );
            } else if self
                .clusters
                .get(name)
                .is_some_and(|c| Arc::ptr_eq(&c.entry, entry))
            {
                continue;
            }
            if let Some(cluster) = self.clusters.get_mut(name) {
                cluster.entry = Arc::clone(entry);
                sync_hosts(
                    name.into(),
                    cluster,
                    entry,
                    &mut self.tasks,
                    &self.tables,
                    &self.bus,
                );
                recount_gauges(entry);
            }
        }
        self.clusters
            .retain(|name, _| snapshot.cluster(name).is_some());
    }
}

/// Starts sessions for the hosts of `entry` that have none, and stops those of hosts it no
/// longer has.
#[expect(
    clippy::mutable_key_type,
    reason = "a HostKey hashes and compares the pointer, never the state behind it"
)]
fn sync_hosts(
    name: Arc<str>,
    cluster: &mut ClusterSessions,
    entry: &ClusterEntry,
    tasks: &mut JoinSet<()>,
    tables: &Arc<Tables>,
    bus: &EventBus,
) {
    if cluster.first_round.as_ref().is_some_and(|r| r.is_done()) {
        cluster.first_round = None;
    }
    // Held while starting sessions, so the round cannot end between two of them; dropping it
    // ends the round at once if there is nothing to check.
    let _starting = cluster.first_round.as_ref().map(|r| r.ticket());
    let mut seen: HashSet<HostKey> = HashSet::new();
    for endpoint in entry.endpoints.endpoints() {
        if endpoint.active_health_check_disabled || endpoint.address.ip().is_none() {
            continue;
        }
        let key = HostKey(Arc::clone(endpoint));
        if !seen.insert(key.clone()) || cluster.hosts.contains_key(&key) {
            continue;
        }
        reset_checker_masks(endpoint, cluster.health_checks.len());
        let handles = cluster
            .health_checks
            .iter()
            .enumerate()
            .map(|(index, config)| {
                let session = Session {
                    cluster: Arc::clone(&name),
                    index,
                    config: config.clone(),
                    endpoint: Arc::clone(endpoint),
                    cluster_state: Arc::clone(&cluster.state),
                    tables: Arc::clone(tables),
                    bus: bus.clone(),
                    first_round: cluster.first_round.as_ref().map(|r| r.ticket()),
                };
                tasks.spawn(session.run())
            })
            .collect();
        cluster.hosts.insert(key, HostSessions { tasks: handles });
    }
    // Dropping a host's sessions aborts them.
    cluster.hosts.retain(|key, _| seen.contains(key));
}

/// A host's sessions start from its current flags: failed (or degraded) for every check if it
/// is, otherwise for none.
fn reset_checker_masks(endpoint: &EndpointState, checks: usize) {
    let flags = endpoint.health_flags();
    let all = checker_bits(checks);
    let state = &endpoint.health_check;
    let failed = if flags.contains(HealthFlags::FAILED_ACTIVE_HC) {
        all
    } else {
        0
    };
    let degraded = if flags.contains(HealthFlags::DEGRADED_ACTIVE_HC) {
        all
    } else {
        0
    };
    state.failed_checkers.store(failed, Ordering::Release);
    state.degraded_checkers.store(degraded, Ordering::Release);
}
