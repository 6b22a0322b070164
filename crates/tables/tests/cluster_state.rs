//! `ClusterState` lives as long as the cluster name: config and endpoint updates keep it, so
//! circuit-breaker counts and counters carry over; removing the cluster drops it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use envoy_types::pb::envoy::config::{cluster::v3 as cluster_pb, endpoint::v3 as endpoint_pb};
use outrider_model::{Cluster, ClusterLoadAssignment, Priority};
use outrider_tables::{Change, ClusterEntry, Tables};

fn cluster(yaml: &str) -> Arc<Cluster> {
    let proto: cluster_pb::Cluster = outrider_envoy_json::from_yaml_str(yaml).expect("valid YAML");
    Arc::new(Cluster::from_proto(&proto).expect("valid cluster"))
}

fn eds(lb_policy: &str) -> Change {
    Change::UpsertCluster(cluster(&format!(
        "name: a\ntype: EDS\nlb_policy: {lb_policy}\neds_cluster_config: {{ eds_config: {{ ads: {{}} }} }}"
    )))
}

fn endpoints(ips: &[&str], version: &str) -> Change {
    let lb: Vec<String> = ips
        .iter()
        .map(|ip| {
            format!("{{ endpoint: {{ address: {{ socket_address: {{ address: '{ip}', port_value: 80 }} }} }} }}")
        })
        .collect();
    let yaml = format!(
        "cluster_name: a\nendpoints: [ {{ lb_endpoints: [ {} ] }} ]",
        lb.join(", ")
    );
    let proto: endpoint_pb::ClusterLoadAssignment =
        outrider_envoy_json::from_yaml_str(&yaml).expect("valid YAML");
    Change::SetEndpoints {
        cluster: "a".into(),
        assignment: Arc::new(ClusterLoadAssignment::from_proto(&proto).expect("valid")),
        version: version.into(),
    }
}

fn entry(tables: &Tables) -> Arc<ClusterEntry> {
    Arc::clone(tables.load().cluster("a").expect("cluster a"))
}

#[test]
fn cluster_state_survives_config_and_endpoint_updates() {
    let tables = Tables::new();
    tables.apply([eds("ROUND_ROBIN")]);
    let first = entry(&tables);
    first
        .state
        .resources(Priority::Default)
        .requests
        .fetch_add(2, Ordering::Relaxed);
    first
        .state
        .counters
        .local()
        .upstream_rq_total
        .fetch_add(5, Ordering::Relaxed);

    tables.apply([endpoints(&["10.0.0.1"], "v1")]);
    let second = entry(&tables);
    assert!(
        !Arc::ptr_eq(&first, &second),
        "a new entry for new endpoints"
    );
    assert!(
        Arc::ptr_eq(&first.state, &second.state),
        "EDS keeps the state"
    );

    tables.apply([eds("RANDOM")]);
    let third = entry(&tables);
    assert!(!Arc::ptr_eq(&second.config, &third.config));
    assert!(
        Arc::ptr_eq(&first.state, &third.state),
        "UpsertCluster keeps the state"
    );
    assert_eq!(
        third
            .state
            .resources(Priority::Default)
            .requests
            .load(Ordering::Relaxed),
        2
    );
    assert_eq!(
        third
            .state
            .resources(Priority::High)
            .requests
            .load(Ordering::Relaxed),
        0
    );
    assert_eq!(third.state.counters.total(|c| &c.upstream_rq_total), 5);

    tables.apply([Change::RemoveCluster("a".into())]);
    tables.apply([eds("ROUND_ROBIN")]);
    let fresh = entry(&tables);
    assert!(
        !Arc::ptr_eq(&first.state, &fresh.state),
        "a removed cluster starts afresh"
    );
    assert_eq!(fresh.state.counters.total(|c| &c.upstream_rq_total), 0);
}

#[test]
fn updates_that_touch_host_health_move_the_health_epoch() {
    let tables = Tables::new();
    tables.apply([eds("ROUND_ROBIN"), endpoints(&["10.0.0.1"], "v1")]);
    let state = Arc::clone(&entry(&tables).state);
    let before = state.health_epoch();
    // EDS refreshes the health of kept hosts in place, under the previous set's balancers.
    tables.apply([endpoints(&["10.0.0.1", "10.0.0.2"], "v2")]);
    let after_eds = state.health_epoch();
    assert!(after_eds > before);
    tables.apply([eds("RANDOM")]);
    assert!(
        state.health_epoch() > after_eds,
        "config updates may clear orphaned flags"
    );
}
