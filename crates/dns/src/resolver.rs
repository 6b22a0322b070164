//! `run`: follows the tables and keeps one refresh loop per DNS cluster config.

use std::collections::HashMap;
use std::sync::Arc;

use outrider_model::Cluster;
use outrider_tables::{Snapshot, Tables};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

use crate::expand::{ResolvedHosts, carry_over, hostnames};
use crate::lookup::Lookup;
use crate::refresh::{dns_discovery, refresh};

/// Resolves the STRICT_DNS and LOGICAL_DNS clusters of `tables` for as long as it is polled:
/// a cluster's loop starts when it appears (resolving at once), restarts when its config
/// changes and stops when it goes. Dropping the future stops every loop.
pub async fn run<L: Lookup>(tables: Arc<Tables>, lookup: L) {
    let lookup = Arc::new(lookup);
    let mut published = tables.subscribe();
    let mut loops = ClusterLoops::default();
    loop {
        loops.sync(&tables.load_full(), &tables, &lookup);
        if published.changed().await.is_err() {
            // The tables are gone: nothing left to resolve for.
            return;
        }
    }
}

struct Running {
    config: Arc<Cluster>,
    resolved: watch::Receiver<ResolvedHosts>,
    task: AbortHandle,
}

/// The running loops, by cluster name. The `JoinSet` aborts them all when dropped.
#[derive(Default)]
struct ClusterLoops {
    running: HashMap<String, Running>,
    tasks: JoinSet<()>,
}

impl ClusterLoops {
    /// Starts, restarts and stops loops so there is one per DNS cluster config of `snapshot`.
    /// O(clusters) pointer comparisons per publication.
    fn sync<L: Lookup>(&mut self, snapshot: &Snapshot, tables: &Arc<Tables>, lookup: &Arc<L>) {
        // Reap finished and aborted loops.
        while self.tasks.try_join_next().is_some() {}
        for (name, entry) in snapshot.clusters() {
            let Some((_, settings)) = dns_discovery(&entry.config) else {
                continue;
            };
            if self
                .running
                .get(name)
                .is_some_and(|r| Arc::ptr_eq(&r.config, &entry.config))
            {
                continue;
            }
            let seed = match self.running.remove(name) {
                Some(previous) => {
                    previous.task.abort();
                    let names = entry
                        .config
                        .load_assignment
                        .as_ref()
                        .map(hostnames)
                        .unwrap_or_default();
                    carry_over(&previous.resolved.borrow(), &names, settings.lookup_family)
                }
                None => ResolvedHosts::new(),
            };
            let (report, resolved) = watch::channel(seed);
            let task = self.tasks.spawn(refresh(
                Arc::clone(tables),
                Arc::clone(&entry.config),
                Arc::clone(lookup),
                report,
            ));
            self.running.insert(
                name.to_string(),
                Running {
                    config: Arc::clone(&entry.config),
                    resolved,
                    task,
                },
            );
        }
        // Removed clusters, and clusters no longer resolved by DNS.
        self.running.retain(|name, r| {
            let current = snapshot
                .cluster(name)
                .is_some_and(|e| Arc::ptr_eq(&e.config, &r.config));
            if !current {
                r.task.abort();
            }
            current
        });
    }
}
