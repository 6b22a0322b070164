//! Stats kept outside the tables, turned into admin `Stat`s: the HTTP connection managers'
//! `http.<stat_prefix>.*` counters and the reporters' own.

use std::sync::atomic::AtomicU64;

use outrider_admin::{Stat, StatKind};
use outrider_dataplane::{
    ActiveListener, DownstreamConnections, HttpCounters, HttpStatsRegistry, TlsStatsRegistry,
    listener_stat_name,
};
use outrider_report::ReportStats;

/// Reads one counter of a shard.
type CounterOf = fn(&HttpCounters) -> &AtomicU64;

const HTTP_COUNTERS: [(&str, StatKind, CounterOf); 15] = [
    ("downstream_cx_total", StatKind::Counter, |c| {
        &c.downstream_cx_total
    }),
    ("downstream_cx_active", StatKind::Gauge, |c| {
        &c.downstream_cx_active
    }),
    (
        "downstream_cx_max_requests_reached",
        StatKind::Counter,
        |c| &c.downstream_cx_max_requests_reached,
    ),
    (
        "downstream_cx_max_duration_reached",
        StatKind::Counter,
        |c| &c.downstream_cx_max_duration_reached,
    ),
    ("downstream_cx_idle_timeout", StatKind::Counter, |c| {
        &c.downstream_cx_idle_timeout
    }),
    ("downstream_cx_protocol_error", StatKind::Counter, |c| {
        &c.downstream_cx_protocol_error
    }),
    ("downstream_rq_total", StatKind::Counter, |c| {
        &c.downstream_rq_total
    }),
    ("downstream_rq_active", StatKind::Gauge, |c| {
        &c.downstream_rq_active
    }),
    ("downstream_rq_idle_timeout", StatKind::Counter, |c| {
        &c.downstream_rq_idle_timeout
    }),
    ("downstream_rq_timeout", StatKind::Counter, |c| {
        &c.downstream_rq_timeout
    }),
    ("downstream_rq_header_timeout", StatKind::Counter, |c| {
        &c.downstream_rq_header_timeout
    }),
    (
        "downstream_rq_max_duration_reached",
        StatKind::Counter,
        |c| &c.downstream_rq_max_duration_reached,
    ),
    (
        "downstream_rq_failed_path_normalization",
        StatKind::Counter,
        |c| &c.downstream_rq_failed_path_normalization,
    ),
    (
        "downstream_rq_redirected_with_normalized_path",
        StatKind::Counter,
        |c| &c.downstream_rq_redirected_with_normalized_path,
    ),
    (
        "downstream_rq_too_many_premature_resets",
        StatKind::Counter,
        |c| &c.downstream_rq_too_many_premature_resets,
    ),
];

pub(crate) fn http_stats(registry: &HttpStatsRegistry) -> Vec<Stat> {
    let mut stats = Vec::new();
    for (prefix, counters) in registry.all() {
        for (name, kind, counter) in HTTP_COUNTERS {
            stats.push(Stat::http(&prefix, name, kind, counters.total(counter)));
        }
        for class in 1u8..=5 {
            let value = counters.total(|c| &c.downstream_rq_by_class[usize::from(class - 1)]);
            stats.push(Stat::http_class(&prefix, "downstream_rq", class, value));
        }
    }
    stats
}

/// `listener.<listener>.downstream_global_cx_overflow` and `downstream_cx_overflow` for every
/// listener (0 until the global limit, or the listener's own, refuses one of its
/// connections).
pub(crate) fn listener_stats(
    listeners: &[ActiveListener],
    connections: &DownstreamConnections,
) -> Vec<Stat> {
    let overflow = connections.overflow();
    let mut names: Vec<String> = listeners
        .iter()
        .map(|l| listener_stat_name(&l.config, l.address))
        .collect();
    names.extend(overflow.iter().map(|(name, _)| name.clone()));
    names.sort();
    names.dedup();
    let mut stats = Vec::with_capacity(names.len() * 2);
    for name in &names {
        let counts = overflow
            .iter()
            .find_map(|(n, counts)| (n == name).then_some(*counts))
            .unwrap_or_default();
        stats.push(Stat::listener(
            name,
            "downstream_cx_overflow",
            StatKind::Counter,
            counts.listener,
        ));
        stats.push(Stat::listener(
            name,
            "downstream_global_cx_overflow",
            StatKind::Counter,
            counts.global,
        ));
    }
    stats
}

/// `listener.<name>.ssl.*` of every listener that terminates TLS.
pub(crate) fn tls_stats(registry: &TlsStatsRegistry) -> Vec<Stat> {
    registry
        .all()
        .into_iter()
        .flat_map(|(scope, counters)| {
            counters
                .values()
                .into_iter()
                .map(move |(name, value)| Stat::listener(&scope, &name, StatKind::Counter, value))
        })
        .collect()
}

/// `cluster.<name>.ssl.*` of every cluster that has made a TLS connection.
pub(crate) fn cluster_tls_stats(registry: &TlsStatsRegistry) -> Vec<Stat> {
    registry
        .all()
        .into_iter()
        .flat_map(|(cluster, counters)| {
            counters
                .values()
                .into_iter()
                .map(move |(name, value)| Stat::cluster(&cluster, &name, StatKind::Counter, value))
        })
        .collect()
}

/// `event_reporting.*`, `event_log.*`, `load_reporter.*`: counters, bar the two connection
/// states.
pub(crate) fn report_stats(stats: &ReportStats) -> Vec<Stat> {
    stats
        .values()
        .into_iter()
        .map(|(name, value)| {
            let kind = if name.ends_with("connected_state") {
                StatKind::Gauge
            } else {
                StatKind::Counter
            };
            Stat::plain(name, kind, value)
        })
        .collect()
}
