//! Test clusters: STATIC clusters built from Envoy JSON and published through `Tables`, as the
//! data plane will see them, plus pick-counting helpers.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3 as cluster_pb;
use outrider_model::Cluster;
use outrider_tables::{Change, ClusterEntry, EndpointState, HealthFlags, Tables};
use outrider_upstream::Balancer;
use serde_json::{Value, json};

/// One locality of the assignment.
#[derive(Clone)]
pub struct Locality {
    pub priority: u32,
    pub zone: &'static str,
    pub weight: Option<u32>,
    /// (address, weight, EDS health status).
    pub hosts: Vec<(String, u32, &'static str)>,
}

/// `n` equally weighted healthy hosts `10.<priority>.<zone index>.<i>:80`.
pub fn locality(priority: u32, zone: &'static str, n: usize) -> Locality {
    weighted(priority, zone, &vec![1; n])
}

/// Hosts with the given weights.
pub fn weighted(priority: u32, zone: &'static str, weights: &[u32]) -> Locality {
    let zone_octet = zone.bytes().next().unwrap_or(b'a');
    Locality {
        priority,
        zone,
        weight: None,
        hosts: weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                (
                    format!("10.{priority}.{zone_octet}.{}", i + 1),
                    *w,
                    "HEALTHY",
                )
            })
            .collect(),
    }
}

impl Locality {
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = Some(weight);
        self
    }

    /// Sets the EDS health of the first `n` hosts.
    pub fn with_status(mut self, n: usize, status: &'static str) -> Self {
        for h in self.hosts.iter_mut().take(n) {
            h.2 = status;
        }
        self
    }
}

/// A STATIC cluster `c` with `lb_policy` and extra top-level fields (`lb_config`s,
/// `common_lb_config`), and `policy` for the assignment (`overprovisioning_factor`, …).
pub fn entry(
    lb_policy: &str,
    extra: Value,
    assignment_policy: Value,
    localities: &[Locality],
) -> Arc<ClusterEntry> {
    let tables = Tables::new();
    tables.apply([Change::UpsertCluster(cluster(
        lb_policy,
        extra,
        assignment_policy,
        localities,
    ))]);
    Arc::clone(tables.load().cluster("c").expect("cluster c"))
}

pub fn cluster(
    lb_policy: &str,
    extra: Value,
    assignment_policy: Value,
    localities: &[Locality],
) -> Arc<Cluster> {
    let endpoints: Vec<Value> = localities
        .iter()
        .map(|l| {
            let mut v = json!({
                "priority": l.priority,
                "locality": { "zone": l.zone },
                "lb_endpoints": l.hosts.iter().map(|(ip, w, status)| json!({
                    "endpoint": { "address": { "socket_address": { "address": ip, "port_value": 80 } } },
                    "load_balancing_weight": w,
                    "health_status": status,
                })).collect::<Vec<_>>(),
            });
            if let (Some(w), Some(obj)) = (l.weight, v.as_object_mut()) {
                obj.insert("load_balancing_weight".into(), json!(w));
            }
            v
        })
        .collect();
    let mut value = json!({
        "name": "c",
        "type": "STATIC",
        "lb_policy": lb_policy,
        "load_assignment": {
            "cluster_name": "c",
            "endpoints": endpoints,
            "policy": assignment_policy,
        },
    });
    if let (Some(obj), Value::Object(extra)) = (value.as_object_mut(), extra) {
        obj.extend(extra);
    }
    let proto: cluster_pb::Cluster =
        outrider_envoy_json::from_value(&value).expect("valid cluster JSON");
    Arc::new(Cluster::from_proto(&proto).expect("valid cluster"))
}

/// Every endpoint of the entry, in assignment order.
pub fn hosts(entry: &ClusterEntry) -> Vec<Arc<EndpointState>> {
    entry.endpoints.endpoints().cloned().collect()
}

pub fn host(entry: &ClusterEntry, ip: &str) -> Arc<EndpointState> {
    hosts(entry)
        .into_iter()
        .find(|h| h.address.to_string() == format!("{ip}:80"))
        .expect("host")
}

pub fn eject(host: &EndpointState) {
    host.set_flags(HealthFlags::FAILED_OUTLIER_CHECK);
}

pub fn uneject(host: &EndpointState) {
    host.clear_flags(HealthFlags::FAILED_OUTLIER_CHECK);
}

/// Picks `n` times (no hash, nothing avoided) and counts picks per address (`ip` only).
pub fn count(balancer: &Balancer, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let pick = balancer.pick(None, &[]).expect("a host");
        *counts.entry(ip(&pick.endpoint)).or_insert(0) += 1;
    }
    counts
}

pub fn ip(host: &EndpointState) -> String {
    host.address
        .ip()
        .map(|a| a.ip().to_string())
        .unwrap_or_default()
}

/// Picks landing on addresses starting with `prefix` (e.g. `10.1.` for priority 1).
pub fn share(counts: &BTreeMap<String, usize>, prefix: &str) -> usize {
    counts
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| *v)
        .sum()
}

pub fn assert_near(actual: usize, expected: f64, tolerance: f64, what: &str) {
    let a = actual as f64;
    assert!(
        (a - expected).abs() <= tolerance,
        "{what}: {actual} not within {tolerance} of {expected}"
    );
}

/// Every policy, with its lb_policy name and extra config.
pub fn policies() -> Vec<(&'static str, Value)> {
    vec![
        ("ROUND_ROBIN", json!({})),
        ("LEAST_REQUEST", json!({})),
        ("RANDOM", json!({})),
        ("RING_HASH", json!({})),
        ("MAGLEV", json!({})),
    ]
}
