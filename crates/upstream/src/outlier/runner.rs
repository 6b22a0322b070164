//! The outlier-detection task of the control thread: follows the tables and keeps one detector
//! loop per cluster that has outlier detection, ticking at its `interval` and woken at once by
//! the data plane when a host crosses a consecutive-failure threshold. A loop restarts when the
//! cluster's outlier settings change and stops when the cluster (or its outlier detection)
//! goes; ejection state lives in the hosts, so endpoint and config updates keep it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use outrider_model::{Cluster, OutlierDetection};
use outrider_tables::{ClusterState, HealthFlags, Snapshot, Tables};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};

use super::detector::{Detector, distinct_hosts};
use super::ejection::Now;
use crate::events::EventBus;

/// Runs outlier detection for every cluster of `tables` until the tables are dropped,
/// publishing ejections and un-ejections on `bus`.
pub async fn run(tables: Arc<Tables>, bus: EventBus) {
    let mut published = tables.subscribe();
    let mut loops = DetectorLoops::default();
    loop {
        loops.sync(&tables.load_full(), &tables, &bus);
        if published.changed().await.is_err() {
            // The tables are gone: nothing left to watch.
            return;
        }
    }
}

struct Running {
    config: Arc<Cluster>,
    state: Arc<ClusterState>,
    task: AbortHandle,
}

/// The running loops, by cluster name. The `JoinSet` aborts them all when dropped.
#[derive(Default)]
struct DetectorLoops {
    running: HashMap<Arc<str>, Running>,
    tasks: JoinSet<()>,
}

impl DetectorLoops {
    /// Starts, restarts and stops loops so there is one per cluster with outlier detection.
    /// O(clusters) pointer comparisons per publication.
    fn sync(&mut self, snapshot: &Snapshot, tables: &Arc<Tables>, bus: &EventBus) {
        // Reap finished and aborted loops.
        while self.tasks.try_join_next().is_some() {}
        let gone: Vec<Arc<str>> = self
            .running
            .iter()
            .filter(|(name, running)| {
                !snapshot.cluster(name).is_some_and(|e| {
                    e.config.outlier_detection.is_some() && Arc::ptr_eq(&e.state, &running.state)
                })
            })
            .map(|(name, _)| Arc::clone(name))
            .collect();
        for name in gone {
            if let Some(running) = self.running.remove(&name) {
                running.task.abort();
                forget_ejections(snapshot, &name, &running.state);
            }
        }
        for (name, entry) in snapshot.clusters() {
            let Some(settings) = &entry.config.outlier_detection else {
                continue;
            };
            if let Some(running) = self.running.get_mut(name) {
                let same = Arc::ptr_eq(&running.config, &entry.config)
                    || running.config.outlier_detection.as_ref() == Some(settings);
                if same && Arc::ptr_eq(&running.state, &entry.state) {
                    // Another change of the cluster: the loop carries on with the same timer.
                    running.config = Arc::clone(&entry.config);
                    continue;
                }
                running.task.abort();
            }
            let name: Arc<str> = name.into();
            let task = self.tasks.spawn(watch_cluster(
                Arc::clone(&name),
                settings.clone(),
                Arc::clone(&entry.state),
                Arc::clone(tables),
                bus.clone(),
            ));
            self.running.insert(
                name,
                Running {
                    config: Arc::clone(&entry.config),
                    state: Arc::clone(&entry.state),
                    task,
                },
            );
        }
    }
}

/// The cluster kept its state but lost its outlier detection: its hosts are back in service
/// with a clean slate (the tables already cleared their flags), as a new Envoy cluster would
/// be. No events: nothing un-ejected them, the detector is gone.
fn forget_ejections(snapshot: &Snapshot, name: &str, state: &Arc<ClusterState>) {
    let Some(entry) = snapshot.cluster(name) else {
        return;
    };
    if !Arc::ptr_eq(&entry.state, state) || entry.config.outlier_detection.is_some() {
        return;
    }
    for host in distinct_hosts(&entry.endpoints) {
        let outlier = &host.outlier;
        if outlier.end_ejection().is_some() {
            host.clear_flags(HealthFlags::FAILED_OUTLIER_CHECK);
        }
        outlier.reset_consecutive();
        outlier.take_crossed();
        outlier.ejection_multiplier.store(0, Relaxed);
        outlier.success_rate.set(None);
        outlier.local_origin_success_rate.set(None);
    }
    state.outlier.stats.ejections_active.store(0, Relaxed);
    state.note_health_change();
}

/// Why a detector loop woke.
enum Wake {
    Interval,
    Crossed,
}

/// One cluster's detector loop.
async fn watch_cluster(
    name: Arc<str>,
    settings: OutlierDetection,
    state: Arc<ClusterState>,
    tables: Arc<Tables>,
    bus: EventBus,
) {
    // The model rejects a zero interval; the floor only keeps a timer from spinning.
    let interval = settings.interval.max(Duration::from_millis(1));
    let detector = Detector::new(Arc::clone(&name), settings, rand::random());
    let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Crossings that came while no loop ran (start, restart) are handled at once.
    let mut wake = Wake::Crossed;
    loop {
        let snapshot = tables.load_full();
        if let Some(entry) = snapshot
            .cluster(&name)
            .filter(|e| Arc::ptr_eq(&e.state, &state))
        {
            let hosts = distinct_hosts(&entry.endpoints);
            let now = Now::current();
            match wake {
                Wake::Interval => detector.on_interval(&hosts, &state, &bus, now),
                Wake::Crossed => detector.on_crossed(&hosts, &state, &bus, now),
            }
        }
        drop(snapshot);
        wake = tokio::select! {
            _ = ticks.tick() => Wake::Interval,
            () = state.outlier.woken() => Wake::Crossed,
        };
    }
}
