//! Gathering every stat: clusters from the tables (per-worker counter shards summed, gauges
//! from the live resource counts and endpoint health), the xDS client's update counters, and
//! the sources the binary registers (connection managers, reporters).

use std::sync::atomic::{AtomicU64, Ordering};

use outrider_tables::{ClusterCounters, ClusterEntry, ClusterState, Snapshot};
use outrider_xds::{ClientStatus, ResourceType};

use super::stat::{Stat, StatKind};
use crate::AdminState;

pub(crate) fn collect(state: &AdminState) -> Vec<Stat> {
    let mut stats = Vec::new();
    if let Some(tables) = &state.tables {
        let snapshot = tables.load_full();
        cluster_stats(&snapshot, &mut stats);
    }
    control_plane_stats(&state.xds.load(), &mut stats);
    for source in &state.stats_sources {
        stats.extend(source());
    }
    stats
}

/// Reads one counter of a shard.
type CounterOf = fn(&ClusterCounters) -> &AtomicU64;

/// Envoy's counter names, in the order of `ClusterCounters`.
const CLUSTER_COUNTERS: [(&str, CounterOf); 18] = [
    ("upstream_rq_total", |c| &c.upstream_rq_total),
    ("upstream_rq_completed", |c| &c.upstream_rq_completed),
    ("upstream_rq_timeout", |c| &c.upstream_rq_timeout),
    ("upstream_rq_per_try_timeout", |c| {
        &c.upstream_rq_per_try_timeout
    }),
    ("upstream_rq_pending_total", |c| {
        &c.upstream_rq_pending_total
    }),
    ("upstream_rq_pending_overflow", |c| {
        &c.upstream_rq_pending_overflow
    }),
    ("upstream_cx_total", |c| &c.upstream_cx_total),
    ("upstream_cx_connect_fail", |c| &c.upstream_cx_connect_fail),
    ("upstream_cx_overflow", |c| &c.upstream_cx_overflow),
    ("upstream_rq_retry", |c| &c.upstream_rq_retry),
    ("upstream_rq_retry_overflow", |c| {
        &c.upstream_rq_retry_overflow
    }),
    ("retry_or_shadow_abandoned", |c| {
        &c.retry_or_shadow_abandoned
    }),
    ("lb_healthy_panic", |c| &c.lb_healthy_panic),
    ("upstream_cx_none_healthy", |c| &c.upstream_cx_none_healthy),
    ("upstream_rq_drop_overload", |c| {
        &c.upstream_rq_drop_overload
    }),
    ("upstream_cx_idle_timeout", |c| &c.upstream_cx_idle_timeout),
    ("upstream_cx_max_requests", |c| &c.upstream_cx_max_requests),
    ("upstream_cx_max_duration_reached", |c| {
        &c.upstream_cx_max_duration_reached
    }),
];

fn cluster_stats(snapshot: &Snapshot, stats: &mut Vec<Stat>) {
    for (name, entry) in snapshot.clusters() {
        let name = entry.config.alt_stat_name.as_deref().unwrap_or(name);
        let counters = &entry.state.counters;
        for (stat, counter) in CLUSTER_COUNTERS {
            stats.push(Stat::cluster(
                name,
                stat,
                StatKind::Counter,
                counters.total(counter),
            ));
        }
        for class in 1u8..=5 {
            let value = counters.total(|c| &c.upstream_rq_by_class[usize::from(class - 1)]);
            stats.push(Stat::cluster_class(name, "upstream_rq", class, value));
        }
        resource_gauges(name, &entry.state, stats);
        membership_gauges(name, entry, stats);
        if entry.config.outlier_detection.is_some() {
            for (stat, value) in entry.state.outlier.stats.values() {
                // `ejections_active` is Envoy's one gauge among them.
                let kind = if stat == "ejections_active" {
                    StatKind::Gauge
                } else {
                    StatKind::Counter
                };
                stats.push(Stat::cluster(
                    name,
                    &format!("outlier_detection.{stat}"),
                    kind,
                    value,
                ));
            }
        }
        if !entry.config.health_checks.is_empty() {
            health_check_stats(name, &entry.state, stats);
        }
    }
}

/// Envoy's `cluster.<c>.health_check.*`.
fn health_check_stats(name: &str, state: &ClusterState, stats: &mut Vec<Stat>) {
    let hc = &state.health_check;
    let values = [
        ("attempt", &hc.attempt, StatKind::Counter),
        ("success", &hc.success, StatKind::Counter),
        ("failure", &hc.failure, StatKind::Counter),
        ("network_failure", &hc.network_failure, StatKind::Counter),
        ("passive_failure", &hc.passive_failure, StatKind::Counter),
        ("verify_cluster", &hc.verify_cluster, StatKind::Counter),
        ("healthy", &hc.healthy, StatKind::Gauge),
        ("degraded", &hc.degraded, StatKind::Gauge),
    ];
    for (stat, value, kind) in values {
        stats.push(Stat::cluster(
            name,
            &format!("health_check.{stat}"),
            kind,
            value.load(Ordering::Relaxed),
        ));
    }
}

/// In-flight counts, summed over the two routing priorities.
fn resource_gauges(name: &str, state: &ClusterState, stats: &mut Vec<Stat>) {
    let sum = |pick: fn(&outrider_tables::ResourceCounts) -> u64| {
        [
            outrider_model::Priority::Default,
            outrider_model::Priority::High,
        ]
        .into_iter()
        .map(|p| pick(state.resources(p)))
        .sum::<u64>()
    };
    let gauges = [
        (
            "upstream_cx_active",
            sum(|r| u64::from(r.connections.load(Ordering::Relaxed))),
        ),
        (
            "upstream_rq_active",
            sum(|r| u64::from(r.requests.load(Ordering::Relaxed))),
        ),
        (
            "upstream_rq_pending_active",
            sum(|r| u64::from(r.pending_requests.load(Ordering::Relaxed))),
        ),
    ];
    for (stat, value) in gauges {
        stats.push(Stat::cluster(name, stat, StatKind::Gauge, value));
    }
}

/// Envoy's `membership_total`, `membership_healthy`, `membership_degraded`.
fn membership_gauges(name: &str, entry: &ClusterEntry, stats: &mut Vec<Stat>) {
    let (mut total, mut healthy, mut degraded) = (0u64, 0u64, 0u64);
    for host in entry.endpoints.endpoints() {
        total += 1;
        if host.is_healthy() {
            if host.is_degraded() {
                degraded += 1;
            } else {
                healthy += 1;
            }
        }
    }
    for (stat, value) in [
        ("membership_total", total),
        ("membership_healthy", healthy),
        ("membership_degraded", degraded),
    ] {
        stats.push(Stat::cluster(name, stat, StatKind::Gauge, value));
    }
}

/// `control_plane.connected_state` and the update counters Envoy keeps per xDS type.
fn control_plane_stats(status: &ClientStatus, stats: &mut Vec<Stat>) {
    stats.push(Stat::plain(
        "control_plane.connected_state",
        StatKind::Gauge,
        u64::from(status.stream.connected),
    ));
    // Envoy keeps RDS and EDS counters per route configuration and per cluster; only the
    // CDS and LDS ones have a fixed name.
    let prefixes = [
        (ResourceType::Cluster, "cluster_manager.cds"),
        (ResourceType::Listener, "listener_manager.lds"),
    ];
    for (kind, prefix) in prefixes {
        let counts = status.updates.get(&kind).copied().unwrap_or_default();
        for (stat, value) in [
            ("update_attempt", counts.attempt),
            ("update_success", counts.success),
            ("update_rejected", counts.rejected),
        ] {
            stats.push(Stat::plain(
                &format!("{prefix}.{stat}"),
                StatKind::Counter,
                value,
            ));
        }
    }
}
