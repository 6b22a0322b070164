//! `GET /diagnose?cluster=NAME`: the whole "why no healthy upstream?" checklist for one cluster
//! in one answer. Is the cluster known, warming or missing, and what did the control plane last
//! say about it; how many endpoints EDS gave and when; each endpoint's state and why (ejected by
//! which detector, since when and until when; failing health checks and the last failure; EDS
//! health); whether a TCP connect to each endpoint succeeds right now; circuit-breaker
//! saturation; and what the next request would do. JSON for tools (`?format=json`), text for
//! people (rendered from the same JSON).
//!
//! Outrider only: Envoy has no such endpoint.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime};

use outrider_model::{Discovery, Priority};
use outrider_tables::{ClusterEntry, EndpointState, HealthFlags, HostRef, OutlierState};
use outrider_upstream::events::EjectionType;
use outrider_xds::{ClientStatus, ResourceRecord, ResourceStatus, ResourceType};
use serde_json::{Value, json};

use crate::AdminState;

/// How long the connect probe waits for each endpoint.
const CONNECT_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) async fn diagnose(state: &AdminState, cluster: &str) -> Value {
    let status = state.xds.load_full();
    let entry = state
        .tables
        .as_ref()
        .and_then(|t| t.load_full().cluster(cluster).cloned());
    let cds = record_json(
        status
            .records(ResourceType::Cluster)
            .find(|(n, _)| *n == cluster),
    );
    let Some(entry) = entry else {
        let warming = status
            .records(ResourceType::Cluster)
            .any(|(n, r)| n == cluster && r.warming);
        let (state_name, summary) = if warming {
            (
                "warming",
                format!(
                    "cluster {cluster} is warming: the control plane sent it, its endpoints (EDS) have not arrived yet; requests get 503 (NC)"
                ),
            )
        } else {
            (
                "missing",
                format!(
                    "cluster {cluster} is unknown to this proxy: no route can use it, requests get 503 (NC); check that the control plane sends it (CDS)"
                ),
            )
        };
        let cds = if warming {
            cds
        } else {
            json!({ "status": "never received" })
        };
        return json!({
            "cluster": cluster,
            "state": state_name,
            "control_plane": { "cds": cds, "stream": stream_json(&status) },
            "summary": [summary],
        });
    };

    let eds_record = entry.config.eds_resource_name().and_then(|name| {
        status
            .records(ResourceType::ClusterLoadAssignment)
            .find(|(n, _)| n.as_str() == name)
    });
    let hosts: Vec<HostRef<'_>> = entry.endpoints.hosts().collect();
    let probes = futures::future::join_all(hosts.iter().map(|h| probe(h.host.address.ip()))).await;
    let endpoints: Vec<Value> = hosts
        .iter()
        .zip(probes)
        .map(|(host, probe)| endpoint_json(&entry, host, probe))
        .collect();
    let next = next_request(&entry, &hosts);
    let mut summary = vec![format!(
        "cluster {cluster}: {} endpoint{} ({}), {}",
        hosts.len(),
        if hosts.len() == 1 { "" } else { "s" },
        source_name(&entry),
        next["summary"].as_str().unwrap_or_default()
    )];
    summary.extend(
        endpoints
            .iter()
            .filter_map(|e| e["summary"].as_str().map(str::to_string)),
    );
    json!({
        "cluster": cluster,
        "state": "active",
        "control_plane": {
            "cds": cds,
            "eds": record_json(eds_record),
            "stream": stream_json(&status),
        },
        "endpoints_from": source_name(&entry),
        "eds": eds_json(&entry),
        "endpoints": endpoints,
        "circuit_breakers": breakers_json(&entry),
        "next_request": next,
        "summary": summary,
    })
}

/// The report for people: the summary (the answer and one line per endpoint), then the
/// control plane's view, the endpoints' source and the circuit breakers.
pub(crate) fn text(report: &Value) -> String {
    let mut out = String::new();
    for line in report["summary"].as_array().into_iter().flatten() {
        out.push_str(line.as_str().unwrap_or_default());
        out.push('\n');
    }
    let plane = &report["control_plane"];
    out.push_str("\ncontrol plane:\n");
    for (label, key) in [("CDS", "cds"), ("EDS", "eds")] {
        if let Some(line) = record_text(&plane[key]) {
            out.push_str(&format!("  {label}: {line}\n"));
        }
    }
    let stream = &plane["stream"];
    if stream["connected"].as_bool() == Some(true) {
        out.push_str(&format!(
            "  ADS stream connected to {}\n",
            text_of(&stream["server"])
        ));
    } else if let Some(error) = stream["last_error"].as_str() {
        out.push_str(&format!("  ADS stream down: {error}\n"));
    }
    if report["state"] == "active" {
        let eds = &report["eds"];
        let mut source = format!("endpoints: from {}", text_of(&report["endpoints_from"]));
        if let Some(version) = eds["version"].as_str().filter(|v| !v.is_empty()) {
            source.push_str(&format!(", EDS version {version}"));
        }
        if let Some(ago) = eds["updated_secs_ago"].as_u64() {
            source.push_str(&format!(", updated {ago}s ago"));
        }
        out.push_str(&format!("\n{source}\n"));
        out.push_str("circuit breakers (in use / limit):\n");
        for priority in ["default", "high"] {
            let b = &report["circuit_breakers"][priority];
            let pair = |key: &str| format!("{}/{}", b[key][0], b[key][1]);
            out.push_str(&format!(
                "  {priority}: connections {}, pending requests {}, requests {}, retries {}\n",
                pair("connections"),
                pair("pending_requests"),
                pair("requests"),
                pair("retries")
            ));
        }
        out.push_str(&format!(
            "panic threshold: {}%\n",
            report["next_request"]["panic_threshold_percent"]
        ));
    }
    out.push_str("\n(JSON with every detail: add &format=json)\n");
    out
}

/// One resource's record in one line: status, version, age, and the last rejection.
fn record_text(record: &Value) -> Option<String> {
    let status = record["status"].as_str()?;
    let mut line = status.to_string();
    if let Some(version) = record["version"].as_str().filter(|v| !v.is_empty()) {
        line.push_str(&format!(" version {version}"));
    }
    if let Some(ago) = record["last_updated_secs_ago"].as_u64() {
        line.push_str(&format!(", updated {ago}s ago"));
    }
    if record["warming"].as_bool() == Some(true) {
        line.push_str(", warming");
    }
    let rejection = &record["last_rejection"];
    if let Some(reason) = rejection["reason"].as_str() {
        line.push_str(&format!(
            "; version {} rejected {}s ago: {reason}",
            text_of(&rejection["version"]),
            rejection["secs_ago"]
        ));
    }
    Some(line)
}

fn text_of(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string)
}

fn source_name(entry: &ClusterEntry) -> &'static str {
    match entry.config.discovery {
        Discovery::Static => "static",
        Discovery::StrictDns(_) => "STRICT_DNS",
        Discovery::LogicalDns(_) => "LOGICAL_DNS",
        Discovery::Eds { .. } => "EDS",
    }
}

fn record_json(record: Option<(&String, &ResourceRecord)>) -> Value {
    let Some((_, record)) = record else {
        return json!({ "status": "not from the control plane" });
    };
    let status = match record.status {
        ResourceStatus::Requested => "REQUESTED",
        ResourceStatus::Acked => "ACKED",
        ResourceStatus::Nacked => "NACKED",
        ResourceStatus::DoesNotExist => "DOES_NOT_EXIST",
        ResourceStatus::Timeout => "TIMEOUT",
    };
    let mut out = json!({
        "status": status,
        "version": record.version,
        "warming": record.warming,
    });
    if let Some(updated) = record.last_updated {
        out["last_updated_secs_ago"] = json!(secs_since(updated));
    }
    if let Some(error) = &record.error {
        out["last_rejection"] = json!({
            "version": error.version,
            "reason": error.reason,
            "secs_ago": secs_since(error.time),
        });
    }
    out
}

fn stream_json(status: &ClientStatus) -> Value {
    json!({
        "server": status.stream.server,
        "connected": status.stream.connected,
        "last_error": status.stream.last_error,
        "last_response_secs_ago": status.stream.last_response.map(secs_since),
    })
}

fn eds_json(entry: &ClusterEntry) -> Value {
    let set = &entry.endpoints;
    json!({
        "version": set.version.as_ref(),
        "updated_secs_ago": set.eds_updated_at.map(secs_since),
        "priorities": set.priorities.len(),
    })
}

fn secs_since(time: SystemTime) -> u64 {
    SystemTime::now()
        .duration_since(time)
        .map_or(0, |d| d.as_secs())
}

/// A TCP connect to `address` right now: `(Ok(elapsed) | Err(reason))`.
async fn probe(address: Option<SocketAddr>) -> Result<Duration, String> {
    let Some(address) = address else {
        return Err("not resolved yet".to_string());
    };
    let started = Instant::now();
    match tokio::time::timeout(
        CONNECT_PROBE_TIMEOUT,
        tokio::net::TcpStream::connect(address),
    )
    .await
    {
        Ok(Ok(_)) => Ok(started.elapsed()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CONNECT_PROBE_TIMEOUT:?}")),
    }
}

fn endpoint_json(
    entry: &ClusterEntry,
    view: &HostRef<'_>,
    probe: Result<Duration, String>,
) -> Value {
    let host = view.host;
    let flags = host.health_flags();
    let address = host.address.to_string();
    let mut reasons: Vec<String> = Vec::new();
    let outlier = outlier_json(entry, &host.outlier, &mut reasons);
    let health_check = health_check_json(host, flags, &mut reasons);
    if flags.contains(HealthFlags::FAILED_EDS_HEALTH) {
        reasons.push(format!("EDS says {:?}", host.eds_health()));
    } else if flags.contains(HealthFlags::DEGRADED_EDS_HEALTH) {
        reasons.push("degraded per EDS".to_string());
    }
    let state = if !host.is_healthy() {
        "unhealthy"
    } else if host.is_degraded() {
        "degraded"
    } else {
        "healthy"
    };
    let connect = match &probe {
        Ok(elapsed) => json!({ "ok": true, "millis": elapsed.as_secs_f64() * 1000.0 }),
        Err(error) => json!({ "ok": false, "error": error }),
    };
    let mut summary = format!("  {address} (priority {}): {state}", view.priority);
    if !reasons.is_empty() {
        summary.push_str(&format!(": {}", reasons.join("; ")));
    }
    match &probe {
        Ok(_) => summary.push_str("; TCP connect ok now"),
        Err(error) => summary.push_str(&format!("; TCP connect fails now: {error}")),
    }
    json!({
        "address": address,
        "priority": view.priority,
        "weight": host.weight(),
        "state": state,
        "health_flags": flags.envoy_string(),
        "eds_health": format!("{:?}", host.eds_health()).to_uppercase(),
        "outlier": outlier,
        "health_check": health_check,
        "connect_now": connect,
        "requests": {
            "active": host.active_requests.load(Relaxed),
            "total": host.rq_total.load(Relaxed),
            "errors": host.rq_error.load(Relaxed),
            "timeouts": host.rq_timeout.load(Relaxed),
        },
        "connections": {
            "active": host.cx_active.load(Relaxed),
            "connect_failures": host.cx_connect_fail.load(Relaxed),
        },
        "summary": summary,
    })
}

fn outlier_json(entry: &ClusterEntry, outlier: &OutlierState, reasons: &mut Vec<String>) -> Value {
    let Some(config) = &entry.config.outlier_detection else {
        return json!({ "enabled": false });
    };
    let mut out = json!({
        "enabled": true,
        "ejected": outlier.is_ejected(),
        "num_ejections": outlier.num_ejections.load(Relaxed),
        "consecutive_5xx": outlier.consecutive_5xx.load(Relaxed),
        "consecutive_gateway_failure": outlier.consecutive_gateway_failure.load(Relaxed),
        "consecutive_local_origin_failure": outlier.consecutive_local_origin_failure.load(Relaxed),
        "success_rate": outlier.success_rate.get(),
    });
    if let Some(kind) = outlier.ejected_by().and_then(EjectionType::from_number) {
        let now = OutlierState::clock_ms();
        let since = outlier.last_ejection_ms.load(Relaxed);
        let lasts = outrider_upstream::outlier::ejection_duration_ms(
            config,
            outlier.ejection_multiplier.load(Relaxed),
            outlier.ejection_jitter_ms.load(Relaxed),
        );
        let until = since.saturating_add(lasts);
        let ago = now.saturating_sub(since) / 1000;
        // Ejections end at the detector's next interval after their time is up.
        let remaining = until.saturating_sub(now).div_ceil(1000);
        out["detector"] = json!(kind.stat_name());
        out["ejected_secs_ago"] = json!(ago);
        out["ejection_ends_in_secs"] = json!(remaining);
        reasons.push(format!(
            "ejected by outlier detection ({}) {ago}s ago, back in about {remaining}s (ejection #{})",
            kind.stat_name(),
            outlier.num_ejections.load(Relaxed)
        ));
    }
    out
}

fn health_check_json(host: &EndpointState, flags: HealthFlags, reasons: &mut Vec<String>) -> Value {
    let state = &host.health_check;
    let last_failure = state.last_failure_reason().map(|r| r.as_str().to_string());
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let failure_ago = state
        .last_failure_ms()
        .map(|at| now_ms.saturating_sub(at) / 1000);
    if flags.contains(HealthFlags::PENDING_ACTIVE_HC) {
        reasons.push("waiting for its first active health check".to_string());
    } else if flags.contains(HealthFlags::FAILED_ACTIVE_HC) {
        let mut reason = format!(
            "failing active health checks ({} in a row",
            state.consecutive_failures.load(Relaxed)
        );
        if let (Some(why), Some(ago)) = (&last_failure, failure_ago) {
            reason.push_str(&format!("; last: {why}, {ago}s ago"));
        }
        reason.push(')');
        reasons.push(reason);
    }
    json!({
        "last_result": state.last_result().map(|r| format!("{r:?}").to_lowercase()),
        "last_check_secs_ago": state.last_check_ms().map(|at| now_ms.saturating_sub(at) / 1000),
        "consecutive_failures": state.consecutive_failures.load(Relaxed),
        "consecutive_successes": state.consecutive_successes.load(Relaxed),
        "last_failure": last_failure,
        "last_failure_secs_ago": failure_ago,
        "timed_out": flags.contains(HealthFlags::ACTIVE_HC_TIMEOUT),
    })
}

fn breakers_json(entry: &ClusterEntry) -> Value {
    let saturation = |priority: Priority| {
        let limits = entry.config.circuit_breakers.for_priority(priority);
        let used = entry.state.resources(priority);
        json!({
            "connections": [used.connections.load(Relaxed), limits.max_connections],
            "pending_requests": [used.pending_requests.load(Relaxed), limits.max_pending_requests],
            "requests": [used.requests.load(Relaxed), limits.max_requests],
            "retries": [used.retries.load(Relaxed), limits.max_retries],
        })
    };
    json!({
        "format": "[in use, limit]",
        "default": saturation(Priority::Default),
        "high": saturation(Priority::High),
    })
}

/// What the next request would do, from the hosts' current health (without picking: a pick
/// would count in the stats).
fn next_request(entry: &ClusterEntry, hosts: &[HostRef<'_>]) -> Value {
    let threshold = entry.config.common_lb.healthy_panic_threshold;
    let total = hosts.len();
    let usable = hosts.iter().filter(|h| h.host.is_healthy()).count();
    let first_priority = hosts
        .iter()
        .filter(|h| h.host.is_healthy())
        .map(|h| h.priority)
        .min();
    let summary = if total == 0 {
        "no endpoints: the next request gets 503 no healthy upstream (UH)".to_string()
    } else if usable == 0 && threshold > 0.0 {
        format!(
            "none healthy: below the {threshold}% panic threshold, so the next request is balanced over all {total} endpoints regardless of health (panic mode)"
        )
    } else if usable == 0 {
        "none healthy and the panic threshold is 0: the next request gets 503 no healthy upstream (UH)".to_string()
    } else {
        let percent = 100.0 * usable as f64 / total as f64;
        let panic = if percent < threshold {
            format!(
                " — below the {threshold}% panic threshold, so traffic may also go to unhealthy hosts"
            )
        } else {
            String::new()
        };
        format!(
            "{usable} of {total} healthy: the next request goes to a healthy endpoint of priority {}{panic}",
            first_priority.unwrap_or(0)
        )
    };
    json!({
        "healthy": usable,
        "total": total,
        "panic_threshold_percent": threshold,
        "summary": summary,
    })
}
