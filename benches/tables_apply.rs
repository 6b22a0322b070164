//! Publishing one EDS update into the tables: its cost must not depend on how many other
//! clusters there are (100 vs 10 000 clusters of 10 endpoints), plus memory per cluster and
//! per endpoint.
//!
//! Memory is counted by a counting global allocator (`stats_alloc`): the bytes the tables
//! still hold after the updates, not a resident-set estimate.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use envoy_types::pb::envoy::config::cluster::v3 as cluster_pb;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint_pb;
use outrider_model::{Cluster, ClusterLoadAssignment};
use outrider_tables::{Change, EndpointState, Tables};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

const ENDPOINTS_PER_CLUSTER: usize = 10;

#[global_allocator]
static ALLOCATOR: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not freed since `region` started.
fn held(region: &Region<'_, std::alloc::System>) -> u64 {
    let change = region.change();
    (change.bytes_allocated as u64).saturating_sub(change.bytes_deallocated as u64)
}

fn template_cluster() -> Cluster {
    let proto: cluster_pb::Cluster = outrider_envoy_json::from_yaml_str(
        "name: template
type: EDS
eds_cluster_config: { eds_config: { ads: {} } }
connect_timeout: 1s
outlier_detection: {}
",
    )
    .expect("valid cluster YAML");
    Cluster::from_proto(&proto).expect("valid cluster")
}

/// The assignment of cluster `index`, with endpoint addresses shifted by `shift` (a shift of 1
/// replaces one endpoint and keeps the other nine).
fn assignment(index: usize, shift: usize) -> Arc<ClusterLoadAssignment> {
    let endpoints: Vec<String> = (0..ENDPOINTS_PER_CLUSTER)
        .map(|e| {
            let host = e + shift;
            format!(
                "{{ endpoint: {{ address: {{ socket_address: {{ address: '10.{}.{}.{}', port_value: 8080 }} }} }} }}",
                (index >> 8) & 0xff,
                index & 0xff,
                host & 0xff
            )
        })
        .collect();
    let yaml = format!(
        "cluster_name: c{index}\nendpoints: [ {{ locality: {{ zone: z }}, lb_endpoints: [ {} ] }} ]",
        endpoints.join(", ")
    );
    let proto: endpoint_pb::ClusterLoadAssignment =
        outrider_envoy_json::from_yaml_str(&yaml).expect("valid assignment YAML");
    Arc::new(ClusterLoadAssignment::from_proto(&proto).expect("valid assignment"))
}

fn clusters(count: usize) -> Vec<Arc<Cluster>> {
    let template = template_cluster();
    (0..count)
        .map(|i| {
            let mut c = template.clone();
            c.name = format!("c{i}");
            if let outrider_model::Discovery::Eds { resource_name, .. } = &mut c.discovery {
                *resource_name = c.name.clone();
            }
            Arc::new(c)
        })
        .collect()
}

fn populated(count: usize) -> Tables {
    let tables = Tables::new();
    tables.apply(clusters(count).into_iter().map(Change::UpsertCluster));
    tables.apply((0..count).map(|i| Change::SetEndpoints {
        cluster: format!("c{i}"),
        assignment: assignment(i, 0),
        version: "1".into(),
    }));
    tables
}

fn bench_apply(c: &mut Criterion) {
    report_memory();
    let mut group = c.benchmark_group("tables_apply_one_eds_update");
    for count in [100, 10_000] {
        let tables = populated(count);
        let target = count / 2;
        let updates = [assignment(target, 1), assignment(target, 0)];
        let mut flip = 0;
        group.bench_function(format!("{count}_clusters"), |b| {
            b.iter(|| {
                flip ^= 1;
                let generation = tables.apply([Change::SetEndpoints {
                    cluster: format!("c{target}"),
                    assignment: Arc::clone(&updates[flip]),
                    version: flip.to_string(),
                }]);
                black_box(generation)
            })
        });
    }
    group.finish();
}

fn report_memory() {
    const CLUSTERS: usize = 10_000;
    // Inputs are built first and kept alive, so what is counted is what the tables add: the
    // per-cluster config copies, entries and map nodes, and the per-endpoint state.
    let assignments: Vec<_> = (0..CLUSTERS).map(direct_assignment).collect();
    let template = template_cluster();
    let region = Region::new(ALLOCATOR);
    let tables = Tables::new();
    tables.apply((0..CLUSTERS).map(|i| {
        let mut c = template.clone();
        c.name = format!("c{i}");
        if let outrider_model::Discovery::Eds { resource_name, .. } = &mut c.discovery {
            *resource_name = c.name.clone();
        }
        Change::UpsertCluster(Arc::new(c))
    }));
    let with_clusters = held(&region);
    tables.apply(
        assignments
            .iter()
            .enumerate()
            .map(|(i, a)| Change::SetEndpoints {
                cluster: format!("c{i}"),
                assignment: Arc::clone(a),
                version: "1".into(),
            }),
    );
    let with_endpoints = held(&region);
    let endpoints = (CLUSTERS * ENDPOINTS_PER_CLUSTER) as u64;
    eprintln!(
        "tables memory ({CLUSTERS} EDS clusters, {endpoints} endpoints, bytes held): \
         {} B per cluster (config, entry, map share; model::Cluster is {} B inline), \
         {} B per endpoint (EndpointState is {} B + 16 B Arc header + 8 B slot)",
        with_clusters / CLUSTERS as u64,
        std::mem::size_of::<Cluster>(),
        with_endpoints.saturating_sub(with_clusters) / endpoints,
        std::mem::size_of::<EndpointState>(),
    );
    black_box(&tables);
}

/// The same shape as `assignment(index, 0)`, built without parsing.
fn direct_assignment(index: usize) -> Arc<ClusterLoadAssignment> {
    use outrider_model::{EndpointAddress, LbEndpoint, LocalityLbEndpoints};
    let mut cla = ClusterLoadAssignment::empty(&format!("c{index}"));
    cla.localities.push(LocalityLbEndpoints {
        locality: outrider_model::Locality {
            zone: "z".into(),
            ..Default::default()
        },
        priority: 0,
        load_balancing_weight: None,
        lb_endpoints: (0..ENDPOINTS_PER_CLUSTER)
            .map(|e| LbEndpoint {
                address: EndpointAddress::Ip(std::net::SocketAddr::from((
                    [10, (index >> 8) as u8, index as u8, e as u8],
                    8080,
                ))),
                hostname: String::new(),
                health_status: outrider_model::HealthStatus::Unknown,
                load_balancing_weight: 1,
                health_check: Default::default(),
            })
            .collect(),
    });
    Arc::new(cla)
}

/// What every request pays to read the configuration: one `ArcSwap` load (and, where the
/// request holds it across awaits, one `load_full`), then a cluster lookup in the 10 000-cluster
/// persistent map.
fn bench_load(c: &mut Criterion) {
    let tables = populated(10_000);
    let mut group = c.benchmark_group("tables_read_per_request");
    group.bench_function("load", |b| b.iter(|| black_box(tables.load().generation())));
    group.bench_function("load_full", |b| {
        b.iter(|| black_box(tables.load_full().generation()))
    });
    group.bench_function("load_and_find_cluster", |b| {
        b.iter(|| {
            let snapshot = tables.load();
            black_box(snapshot.cluster("c5000").map(|e| e.endpoints.len()))
        })
    });
    group.finish();
}

criterion_group!(benches, bench_apply, bench_load);
criterion_main!(benches);
