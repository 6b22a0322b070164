//! Envoy's `/clusters`: every cluster's circuit-breaker thresholds and outlier-detection figures,
//! and every host's counters, health flags, weight, locality and priority; as Envoy's
//! `cluster::host::stat::value` text lines, or `?format=json` in the shape of
//! `envoy.admin.v3.Clusters`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use outrider_tables::{ClusterEntry, EndpointState, HealthFlags, HostRef, Snapshot};
use serde_json::{Value, json};

/// Per-host counters in Envoy's order (counters, then the `rq_active`/`cx_active` gauges).
fn host_counters(host: &EndpointState) -> [(&'static str, u64, bool); 8] {
    [
        ("cx_active", host.cx_active.load(Relaxed), true),
        ("cx_connect_fail", host.cx_connect_fail.load(Relaxed), false),
        ("cx_total", host.cx_total.load(Relaxed), false),
        (
            "rq_active",
            u64::from(host.active_requests.load(Relaxed)),
            true,
        ),
        ("rq_error", host.rq_error.load(Relaxed), false),
        ("rq_success", host.rq_success.load(Relaxed), false),
        ("rq_timeout", host.rq_timeout.load(Relaxed), false),
        ("rq_total", host.rq_total.load(Relaxed), false),
    ]
}

fn sorted_clusters(snapshot: &Snapshot) -> Vec<(&str, &std::sync::Arc<ClusterEntry>)> {
    let mut clusters: Vec<_> = snapshot.clusters().collect();
    clusters.sort_by(|a, b| a.0.cmp(b.0));
    clusters
}

/// Envoy's text form.
pub(crate) fn text(snapshot: &Snapshot, is_static: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    for (name, entry) in sorted_clusters(snapshot) {
        let observability = entry.config.alt_stat_name.as_deref().unwrap_or(name);
        let _ = writeln!(out, "{name}::observability_name::{observability}");
        let breakers = &entry.config.circuit_breakers;
        for (label, t) in [
            ("default_priority", &breakers.default),
            ("high_priority", &breakers.high),
        ] {
            for (stat, value) in [
                ("max_connections", t.max_connections),
                ("max_pending_requests", t.max_pending_requests),
                ("max_requests", t.max_requests),
                ("max_retries", t.max_retries),
            ] {
                let _ = writeln!(out, "{name}::{label}::{stat}::{value}");
            }
        }
        let _ = writeln!(out, "{name}::added_via_api::{}", !is_static(name));
        if entry.config.outlier_detection.is_some() {
            let o = &entry.state.outlier;
            for (stat, cell) in [
                ("success_rate_average", &o.success_rate_average),
                (
                    "success_rate_ejection_threshold",
                    &o.success_rate_ejection_threshold,
                ),
                (
                    "local_origin_success_rate_average",
                    &o.local_origin_success_rate_average,
                ),
                (
                    "local_origin_success_rate_ejection_threshold",
                    &o.local_origin_success_rate_ejection_threshold,
                ),
            ] {
                let _ = writeln!(out, "{name}::outlier::{stat}::{}", rate_text(cell.get()));
            }
        }
        for host in entry.endpoints.hosts() {
            let address = host.host.address.to_string();
            for (stat, value, _) in host_counters(host.host) {
                let _ = writeln!(out, "{name}::{address}::{stat}::{value}");
            }
            let h = host.host;
            let _ = writeln!(out, "{name}::{address}::hostname::{}", h.hostname);
            let _ = writeln!(
                out,
                "{name}::{address}::health_flags::{}",
                h.health_flags().envoy_string()
            );
            let _ = writeln!(out, "{name}::{address}::weight::{}", h.weight());
            let _ = writeln!(out, "{name}::{address}::region::{}", host.locality.region);
            let _ = writeln!(out, "{name}::{address}::zone::{}", host.locality.zone);
            let _ = writeln!(
                out,
                "{name}::{address}::sub_zone::{}",
                host.locality.sub_zone
            );
            let _ = writeln!(out, "{name}::{address}::canary::false");
            let _ = writeln!(out, "{name}::{address}::priority::{}", host.priority);
            let _ = writeln!(
                out,
                "{name}::{address}::success_rate::{}",
                rate_text(h.outlier.success_rate.get())
            );
            let _ = writeln!(
                out,
                "{name}::{address}::local_origin_success_rate::{}",
                rate_text(h.outlier.local_origin_success_rate.get())
            );
        }
    }
    out
}

/// The `envoy.admin.v3.Clusters` JSON.
pub(crate) fn json(snapshot: &Snapshot, is_static: impl Fn(&str) -> bool) -> Value {
    let statuses: Vec<Value> = sorted_clusters(snapshot)
        .into_iter()
        .map(|(name, entry)| {
            let breakers = &entry.config.circuit_breakers;
            let thresholds: Vec<Value> = [("DEFAULT", &breakers.default), ("HIGH", &breakers.high)]
                .into_iter()
                .map(|(priority, t)| {
                    json!({
                        "priority": priority,
                        "max_connections": t.max_connections,
                        "max_pending_requests": t.max_pending_requests,
                        "max_requests": t.max_requests,
                        "max_retries": t.max_retries,
                    })
                })
                .collect();
            let hosts: Vec<Value> = entry.endpoints.hosts().map(host_json).collect();
            let mut status = json!({
                "name": name,
                "added_via_api": !is_static(name),
                "host_statuses": hosts,
                "circuit_breakers": { "thresholds": thresholds },
                "observability_name": entry.config.alt_stat_name.as_deref().unwrap_or(name),
            });
            // Envoy sets these only when the detector has a threshold.
            let o = &entry.state.outlier;
            if let Some(t) = o.success_rate_ejection_threshold.get() {
                status["success_rate_ejection_threshold"] = json!({ "value": t });
            }
            if let Some(t) = o.local_origin_success_rate_ejection_threshold.get() {
                status["local_origin_success_rate_ejection_threshold"] = json!({ "value": t });
            }
            status
        })
        .collect();
    json!({ "cluster_statuses": statuses })
}

fn host_json(view: HostRef<'_>) -> Value {
    let host = view.host;
    let stats: Vec<Value> = host_counters(host)
        .into_iter()
        .map(|(name, value, gauge)| {
            // Envoy prints uint64 as strings in proto3 JSON; gauges carry their type.
            if gauge {
                json!({ "name": name, "type": "GAUGE", "value": value.to_string() })
            } else {
                json!({ "name": name, "value": value.to_string() })
            }
        })
        .collect();
    let flags = host.health_flags();
    // As Envoy: from the EDS flags, so an endpoint without a status shows HEALTHY.
    let eds = if flags.contains(HealthFlags::FAILED_EDS_HEALTH) {
        "UNHEALTHY"
    } else if flags.contains(HealthFlags::DEGRADED_EDS_HEALTH) {
        "DEGRADED"
    } else {
        "HEALTHY"
    };
    let mut health = json!({ "eds_health_status": eds });
    for (field, flag) in [
        ("failed_active_health_check", HealthFlags::FAILED_ACTIVE_HC),
        ("failed_outlier_check", HealthFlags::FAILED_OUTLIER_CHECK),
        (
            "failed_active_degraded_check",
            HealthFlags::DEGRADED_ACTIVE_HC,
        ),
        (
            "pending_dynamic_removal",
            HealthFlags::PENDING_DYNAMIC_REMOVAL,
        ),
        ("pending_active_hc", HealthFlags::PENDING_ACTIVE_HC),
        (
            "excluded_via_immediate_hc_fail",
            HealthFlags::EXCLUDED_VIA_IMMEDIATE_HC_FAIL,
        ),
        ("active_hc_timeout", HealthFlags::ACTIVE_HC_TIMEOUT),
    ] {
        if flags.contains(flag) {
            health[field] = json!(true);
        }
    }
    let address = match host.address.ip() {
        Some(ip) => json!({ "socket_address": {
            "address": ip.ip().to_string(),
            "port_value": ip.port(),
        }}),
        None => json!({ "socket_address": {
            "address": host.address.to_string(),
            "port_value": host.address.port(),
        }}),
    };
    let mut locality = serde_json::Map::new();
    for (key, value) in [
        ("region", &view.locality.region),
        ("zone", &view.locality.zone),
        ("sub_zone", &view.locality.sub_zone),
    ] {
        if !value.is_empty() {
            locality.insert(key.to_string(), json!(value));
        }
    }
    let mut status = json!({
        "address": address,
        "stats": stats,
        "health_status": health,
        "weight": host.weight(),
        "hostname": host.hostname.as_ref(),
        "priority": view.priority,
        "locality": locality,
    });
    if let Some(rate) = host.outlier.success_rate.get() {
        status["success_rate"] = json!({ "value": rate });
    }
    if let Some(rate) = host.outlier.local_origin_success_rate.get() {
        status["local_origin_success_rate"] = json!({ "value": rate });
    }
    status
}

/// Envoy prints an unavailable rate as -1.
fn rate_text(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-1".to_string(), |r| r.to_string())
}
