//! Load-balancer pick cost per policy at 10 and 1 000 endpoints, all healthy and with 20 %
//! ejected by outlier detection (below the panic threshold, so picks skip them); what a worker's
//! first request after an update pays (`lb_build`: a balancer for the new entry and one pick);
//! and what publishing the entry pays once, on the control thread (`lb_publish`: its
//! load-balancing tables).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use envoy_types::pb::envoy::config::cluster::v3 as cluster_pb;
use outrider_model::Cluster;
use outrider_tables::lb_tables::LbTables;
use outrider_tables::{Change, ClusterEntry, HealthFlags, Tables};
use outrider_upstream::Balancer;

const POLICIES: [&str; 5] = [
    "ROUND_ROBIN",
    "LEAST_REQUEST",
    "RANDOM",
    "RING_HASH",
    "MAGLEV",
];

/// A STATIC cluster of `n` equally weighted endpoints in one locality.
fn entry(policy: &str, n: usize) -> Arc<ClusterEntry> {
    let endpoints: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{{ endpoint: {{ address: {{ socket_address: {{ address: '10.0.{}.{}', port_value: 8080 }} }} }} }}",
                i / 250,
                i % 250 + 1
            )
        })
        .collect();
    let yaml = format!(
        "name: c\ntype: STATIC\nlb_policy: {policy}\nload_assignment: {{ cluster_name: c, endpoints: [ {{ locality: {{ zone: z }}, lb_endpoints: [ {} ] }} ] }}",
        endpoints.join(", ")
    );
    let proto: cluster_pb::Cluster =
        outrider_envoy_json::from_yaml_str(&yaml).expect("valid cluster YAML");
    let tables = Tables::new();
    tables.apply([Change::UpsertCluster(Arc::new(
        Cluster::from_proto(&proto).expect("valid cluster"),
    ))]);
    Arc::clone(tables.load().cluster("c").expect("cluster c"))
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("lb_pick");
    for policy in POLICIES {
        for n in [10, 1000] {
            for ejected in [false, true] {
                let e = entry(policy, n);
                if ejected {
                    for h in e.endpoints.endpoints().step_by(5) {
                        h.set_flags(HealthFlags::FAILED_OUTLIER_CHECK);
                    }
                    e.state.note_health_change();
                }
                let balancer = Balancer::with_seed(&e, 1);
                let hashing = matches!(policy, "RING_HASH" | "MAGLEV");
                let mut key = 0u64;
                let label = format!("{n}/{}", if ejected { "20%_ejected" } else { "healthy" });
                group.bench_function(BenchmarkId::new(policy, label), |b| {
                    b.iter(|| {
                        key = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
                        let hash = hashing.then_some(key);
                        black_box(balancer.pick(black_box(hash), &[]).expect("a host"))
                    })
                });
            }
        }
    }
    group.finish();
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("lb_build");
    group.sample_size(20);
    for policy in POLICIES {
        let e = entry(policy, 1000);
        let hash = matches!(policy, "RING_HASH" | "MAGLEV").then_some(0x9E37_79B9_7F4A_7C15);
        group.bench_function(BenchmarkId::new(policy, 1000), |b| {
            b.iter(|| {
                let balancer = Balancer::with_seed(&e, 1);
                black_box(balancer.pick(hash, &[]).expect("a host"))
            })
        });
    }
    group.finish();
}

fn publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("lb_publish");
    group.sample_size(20);
    for policy in POLICIES {
        let e = entry(policy, 1000);
        group.bench_function(BenchmarkId::new(policy, 1000), |b| {
            b.iter(|| black_box(LbTables::build(&e.config, &e.endpoints)))
        });
    }
    group.finish();
}

criterion_group!(benches, pick, build, publish);
criterion_main!(benches);
