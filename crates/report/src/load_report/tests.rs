use std::sync::atomic::Ordering::Relaxed;

use envoy_types::pb::envoy::config::cluster::v3 as cluster_pb;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint_pb;
use outrider_model::{Cluster, ClusterLoadAssignment};
use outrider_tables::{Change, Tables};

use super::*;

/// A STATIC cluster: 10.0.0.1 in zone `za` (priority 0), 10.0.0.2 in zone `zb` (priority 1).
fn two_zone_cluster(name: &str) -> Change {
    cluster(&format!(
        r#"
name: {name}
type: STATIC
connect_timeout: 1s
load_assignment:
  cluster_name: {name}
  endpoints:
  - locality: {{ region: r, zone: za }}
    lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 10.0.0.1, port_value: 80 }} }} }} }}]
  - locality: {{ region: r, zone: zb }}
    priority: 1
    lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 10.0.0.2, port_value: 80 }} }} }} }}]
"#
    ))
}

fn cluster(yaml: &str) -> Change {
    let proto: cluster_pb::Cluster = outrider_envoy_json::from_yaml_str(yaml).expect("YAML");
    Change::UpsertCluster(Arc::new(Cluster::from_proto(&proto).expect("cluster")))
}

fn endpoint(tables: &Tables, cluster: &str, ip: &str) -> Arc<EndpointState> {
    let address = EndpointAddress::Ip(format!("{ip}:80").parse().expect("address"));
    tables
        .load()
        .cluster(cluster)
        .expect("cluster")
        .endpoints
        .find(&address)
        .expect("endpoint")
        .clone()
}

/// `n` completed requests of which `errors` failed, as the data plane records them.
fn complete(endpoint: &EndpointState, n: u64, errors: u64) {
    endpoint.rq_total.fetch_add(n, Relaxed);
    endpoint.rq_error.fetch_add(errors, Relaxed);
    endpoint.rq_success.fetch_add(n - errors, Relaxed);
}

fn response(clusters: &[&str], interval_ms: i32, granular: bool) -> LoadStatsResponse {
    LoadStatsResponse {
        clusters: clusters.iter().map(|c| c.to_string()).collect(),
        send_all_clusters: false,
        load_reporting_interval: Some(DurationProto {
            seconds: i64::from(interval_ms / 1000),
            nanos: (interval_ms % 1000) * 1_000_000,
        }),
        report_endpoint_granularity: granular,
    }
}

/// (zone, priority, successful, errors, in progress, issued) of each locality entry.
fn localities(stats: &ClusterStats) -> Vec<(String, u32, u64, u64, u64, u64)> {
    stats
        .upstream_locality_stats
        .iter()
        .map(|l| {
            (
                l.locality.clone().unwrap_or_default().zone,
                l.priority,
                l.total_successful_requests,
                l.total_error_requests,
                l.total_requests_in_progress,
                l.total_issued_requests,
            )
        })
        .collect()
}

fn ms(d: &Option<DurationProto>) -> i64 {
    let d = d.expect("interval");
    d.seconds * 1000 + i64::from(d.nanos) / 1_000_000
}

#[test]
fn reports_the_deltas_since_the_previous_report_per_locality_and_endpoint() {
    let tables = Tables::new();
    tables.apply([two_zone_cluster("a"), two_zone_cluster("other")]);
    let one = endpoint(&tables, "a", "10.0.0.1");
    let two = endpoint(&tables, "a", "10.0.0.2");
    // Before the server asks, nothing is reported.
    complete(&one, 100, 10);
    let t0 = Instant::now();
    let mut reporter = LoadReporter::new(t0);
    assert!(!reporter.is_active());
    reporter.on_response(&response(&["a"], 1000, true), &tables.load(), t0);
    assert!(reporter.is_active());
    assert_eq!(reporter.interval(), Duration::from_secs(1));

    complete(&one, 4, 1);
    one.active_requests.store(2, Relaxed);
    complete(&two, 5, 5);
    let reports = reporter.report(&tables.load(), t0 + Duration::from_millis(1010));
    assert_eq!(reports.len(), 1, "only the cluster the server named");
    let a = &reports[0];
    assert_eq!(a.cluster_name, "a");
    assert_eq!(a.cluster_service_name, "");
    assert_eq!(a.total_dropped_requests, 0);
    assert_eq!(ms(&a.load_report_interval), 1010);
    assert_eq!(
        localities(a),
        [("za".into(), 0, 3, 1, 2, 4), ("zb".into(), 1, 0, 5, 0, 5)]
    );
    let region = a.upstream_locality_stats[0]
        .locality
        .clone()
        .expect("locality");
    assert_eq!(region.region, "r");
    let per_endpoint = &a.upstream_locality_stats[0].upstream_endpoint_stats;
    assert_eq!(per_endpoint.len(), 1);
    assert_eq!(
        per_endpoint[0].address,
        Some(socket_address("10.0.0.1".into(), 80))
    );
    assert_eq!(
        (
            per_endpoint[0].total_successful_requests,
            per_endpoint[0].total_error_requests,
            per_endpoint[0].total_requests_in_progress,
            per_endpoint[0].total_issued_requests
        ),
        (3, 1, 2, 4)
    );

    // The next report: only what happened since; in-progress is a gauge; an idle locality is
    // left out.
    complete(&one, 1, 0);
    let reports = reporter.report(&tables.load(), t0 + Duration::from_millis(2000));
    assert_eq!(ms(&reports[0].load_report_interval), 990);
    assert_eq!(localities(&reports[0]), [("za".into(), 0, 1, 0, 2, 1)]);

    // Nothing at all: the cluster is still reported, with no locality.
    one.active_requests.store(0, Relaxed);
    let reports = reporter.report(&tables.load(), t0 + Duration::from_millis(3000));
    assert_eq!(reports.len(), 1);
    assert!(reports[0].upstream_locality_stats.is_empty());
}

#[test]
fn endpoint_stats_only_when_the_server_asks() {
    let tables = Tables::new();
    tables.apply([two_zone_cluster("a")]);
    let t0 = Instant::now();
    let mut reporter = LoadReporter::new(t0);
    reporter.on_response(&response(&["a"], 1000, false), &tables.load(), t0);
    complete(&endpoint(&tables, "a", "10.0.0.1"), 2, 0);
    let reports = reporter.report(&tables.load(), t0 + Duration::from_secs(1));
    assert_eq!(localities(&reports[0]), [("za".into(), 0, 2, 0, 0, 2)]);
    assert!(
        reports[0].upstream_locality_stats[0]
            .upstream_endpoint_stats
            .is_empty()
    );
}

#[test]
fn a_new_response_keeps_counting_named_clusters_and_starts_new_ones() {
    let tables = Tables::new();
    tables.apply([two_zone_cluster("a"), two_zone_cluster("b")]);
    let a = endpoint(&tables, "a", "10.0.0.1");
    let b = endpoint(&tables, "b", "10.0.0.1");
    let t0 = Instant::now();
    let mut reporter = LoadReporter::new(t0);
    reporter.on_response(&response(&["a"], 1000, false), &tables.load(), t0);
    complete(&a, 7, 0);
    complete(&b, 9, 0);
    let t1 = t0 + Duration::from_millis(500);
    reporter.on_response(&response(&["a", "b"], 2000, false), &tables.load(), t1);
    assert_eq!(reporter.interval(), Duration::from_secs(2));
    complete(&b, 1, 0);
    let reports = reporter.report(&tables.load(), t0 + Duration::from_secs(2));
    let names: Vec<&str> = reports.iter().map(|r| r.cluster_name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    // `a` was named before: its period and counts run on from the first response.
    assert_eq!(ms(&reports[0].load_report_interval), 2000);
    assert_eq!(localities(&reports[0]), [("za".into(), 0, 7, 0, 0, 7)]);
    // `b` is counted from the response that named it.
    assert_eq!(ms(&reports[1].load_report_interval), 1500);
    assert_eq!(localities(&reports[1]), [("za".into(), 0, 1, 0, 0, 1)]);
}

#[test]
fn send_all_clusters_reports_every_cluster_including_ones_added_later() {
    let tables = Tables::new();
    tables.apply([two_zone_cluster("a")]);
    let t0 = Instant::now();
    let mut reporter = LoadReporter::new(t0);
    let mut all = response(&[], 1000, false);
    all.send_all_clusters = true;
    reporter.on_response(&all, &tables.load(), t0);
    tables.apply([two_zone_cluster("late")]);
    complete(&endpoint(&tables, "late", "10.0.0.2"), 3, 1);
    let reports = reporter.report(&tables.load(), t0 + Duration::from_secs(1));
    let names: Vec<&str> = reports.iter().map(|r| r.cluster_name.as_str()).collect();
    assert_eq!(names, ["a", "late"]);
    assert_eq!(ms(&reports[1].load_report_interval), 1000);
    assert_eq!(localities(&reports[1]), [("zb".into(), 1, 2, 1, 0, 3)]);
    // A removed cluster is no longer reported.
    tables.apply([Change::RemoveCluster("late".into())]);
    let reports = reporter.report(&tables.load(), t0 + Duration::from_secs(2));
    assert_eq!(reports.len(), 1);
}

#[test]
fn a_replaced_endpoint_is_counted_from_zero() {
    let tables = Tables::new();
    tables.apply([two_zone_cluster("a")]);
    let t0 = Instant::now();
    let mut reporter = LoadReporter::new(t0);
    reporter.on_response(&response(&["a"], 1000, false), &tables.load(), t0);
    complete(&endpoint(&tables, "a", "10.0.0.1"), 50, 0);
    reporter.report(&tables.load(), t0 + Duration::from_secs(1));
    // The address leaves and comes back: a new EndpointState whose counters start at 0.
    tables.apply([cluster(
        "name: a\ntype: STATIC\nload_assignment: { cluster_name: a, endpoints: [] }",
    )]);
    tables.apply([two_zone_cluster("a")]);
    complete(&endpoint(&tables, "a", "10.0.0.1"), 2, 0);
    let reports = reporter.report(&tables.load(), t0 + Duration::from_secs(2));
    assert_eq!(localities(&reports[0]), [("za".into(), 0, 2, 0, 0, 2)]);
}

#[test]
fn eds_service_name_interval_floor_and_absent_clusters() {
    let tables = Tables::new();
    let proto: cluster_pb::Cluster = outrider_envoy_json::from_yaml_str(
        "name: e\ntype: EDS\neds_cluster_config: { service_name: svc, eds_config: { ads: {} } }",
    )
    .expect("YAML");
    tables.apply([Change::UpsertCluster(Arc::new(
        Cluster::from_proto(&proto).expect("cluster"),
    ))]);
    let assignment: endpoint_pb::ClusterLoadAssignment = outrider_envoy_json::from_yaml_str(
        "cluster_name: svc\nendpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 10.0.0.9, port_value: 80 } } } }] }]",
    )
    .expect("YAML");
    tables.apply([Change::SetEndpoints {
        cluster: "svc".into(),
        assignment: Arc::new(ClusterLoadAssignment::from_proto(&assignment).expect("CLA")),
        version: "1".into(),
    }]);
    let t0 = Instant::now();
    let mut reporter = LoadReporter::new(t0);
    reporter.on_response(&response(&["e", "missing"], 0, false), &tables.load(), t0);
    assert_eq!(reporter.interval(), MIN_INTERVAL);
    let reports = reporter.report(&tables.load(), t0 + MIN_INTERVAL);
    assert_eq!(
        reports.len(),
        1,
        "a named cluster that does not exist is not reported"
    );
    assert_eq!(reports[0].cluster_service_name, "svc");

    // It appears later: counted from its creation, its period from the response.
    tables.apply([two_zone_cluster("missing")]);
    complete(&endpoint(&tables, "missing", "10.0.0.1"), 1, 0);
    let reports = reporter.report(&tables.load(), t0 + Duration::from_secs(1));
    assert_eq!(reports[1].cluster_name, "missing");
    assert_eq!(ms(&reports[1].load_report_interval), 1000);
    assert_eq!(localities(&reports[1]), [("za".into(), 0, 1, 0, 0, 1)]);
}
