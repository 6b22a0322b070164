//! Tables behaviour: publication, EDS fan-out, endpoint-state survival and structural sharing.

use std::sync::Arc;

use envoy_types::pb::envoy::config::{
    cluster::v3 as cluster_pb, endpoint::v3 as endpoint_pb, listener::v3 as listener_pb,
    route::v3 as route_pb,
};
use outrider_model::{Cluster, ClusterLoadAssignment, HealthStatus, Listener, RouteConfiguration};
use outrider_tables::{Change, HealthFlags, Tables};

fn cluster(yaml: &str) -> Arc<Cluster> {
    let proto: cluster_pb::Cluster = outrider_envoy_json::from_yaml_str(yaml).expect("valid YAML");
    Arc::new(Cluster::from_proto(&proto).expect("valid cluster"))
}

fn eds_cluster(name: &str, service_name: &str) -> Arc<Cluster> {
    cluster(&format!(
        "name: {name}\ntype: EDS\neds_cluster_config: {{ service_name: '{service_name}', eds_config: {{ ads: {{}} }} }}"
    ))
}

/// An assignment with `(ip, weight, health)` endpoints in one locality.
fn assignment(name: &str, endpoints: &[(&str, u32, &str)]) -> Arc<ClusterLoadAssignment> {
    let lb: Vec<String> = endpoints
        .iter()
        .map(|(ip, w, h)| {
            format!(
                "{{ endpoint: {{ address: {{ socket_address: {{ address: '{ip}', port_value: 80 }} }} }}, load_balancing_weight: {w}, health_status: {h} }}"
            )
        })
        .collect();
    let yaml = format!(
        "cluster_name: {name}\nendpoints: [ {{ lb_endpoints: [ {} ] }} ]",
        lb.join(", ")
    );
    let proto: endpoint_pb::ClusterLoadAssignment =
        outrider_envoy_json::from_yaml_str(&yaml).expect("valid YAML");
    Arc::new(ClusterLoadAssignment::from_proto(&proto).expect("valid assignment"))
}

fn set_endpoints(resource: &str, cla: Arc<ClusterLoadAssignment>, version: &str) -> Change {
    Change::SetEndpoints {
        cluster: resource.into(),
        assignment: cla,
        version: version.into(),
    }
}

fn addr(ip: &str) -> outrider_model::EndpointAddress {
    outrider_model::EndpointAddress::Ip(format!("{ip}:80").parse().expect("socket address"))
}

#[test]
fn eds_updates_keep_endpoint_state() {
    let tables = Tables::new();
    assert_eq!(tables.load().generation(), 0);
    let generation = tables.apply([Change::UpsertCluster(eds_cluster("a", ""))]);
    assert_eq!(generation, 1);
    let snap = tables.load();
    let entry = snap.cluster("a").expect("cluster a");
    assert!(entry.endpoints.is_empty(), "no endpoints until EDS");
    assert_eq!(
        snap.clusters_for_eds_resource("a").collect::<Vec<_>>(),
        ["a"]
    );

    tables.apply([set_endpoints(
        "a",
        assignment(
            "a",
            &[("10.0.0.1", 1, "HEALTHY"), ("10.0.0.2", 1, "HEALTHY")],
        ),
        "v1",
    )]);
    let first = tables.load();
    let kept = Arc::clone(
        first
            .cluster("a")
            .expect("a")
            .endpoints
            .find(&addr("10.0.0.1"))
            .expect("endpoint"),
    );
    kept.rq_total
        .fetch_add(7, std::sync::atomic::Ordering::Relaxed);
    kept.set_flags(HealthFlags::FAILED_OUTLIER_CHECK);

    tables.apply([set_endpoints(
        "a",
        assignment(
            "a",
            &[("10.0.0.1", 5, "UNHEALTHY"), ("10.0.0.3", 1, "HEALTHY")],
        ),
        "v2",
    )]);
    let second = tables.load();
    let set = &second.cluster("a").expect("a").endpoints;
    assert_eq!(&*set.version, "v2");
    assert!(set.eds_updated_at.is_some());
    assert_eq!(set.len(), 2);
    let again = set.find(&addr("10.0.0.1")).expect("kept endpoint");
    assert!(Arc::ptr_eq(&kept, again), "a kept endpoint keeps its state");
    assert_eq!(again.rq_total.load(std::sync::atomic::Ordering::Relaxed), 7);
    assert_eq!(again.weight(), 5);
    assert_eq!(again.eds_health(), HealthStatus::Unhealthy);
    assert_eq!(
        again.health_flags(),
        HealthFlags::FAILED_OUTLIER_CHECK | HealthFlags::FAILED_EDS_HEALTH
    );
    assert_eq!(
        again.health_flags().envoy_string(),
        "/failed_outlier_check/failed_eds_health"
    );
    assert!(set.find(&addr("10.0.0.2")).is_none());
    // The previous snapshot is untouched (apart from the shared atomics).
    assert_eq!(first.cluster("a").expect("a").endpoints.len(), 2);
    assert_eq!(second.generation(), 3);
}

#[test]
fn one_eds_resource_feeds_every_cluster_using_it() {
    let tables = Tables::new();
    tables.apply([
        Change::UpsertCluster(eds_cluster("a", "svc")),
        Change::UpsertCluster(eds_cluster("b", "svc")),
        Change::UpsertCluster(eds_cluster("c", "")),
    ]);
    let snap = tables.load();
    let mut users: Vec<_> = snap.clusters_for_eds_resource("svc").collect();
    users.sort_unstable();
    assert_eq!(users, ["a", "b"]);
    let c_before = Arc::clone(snap.cluster("c").expect("c"));

    tables.apply([set_endpoints(
        "svc",
        assignment("svc", &[("10.0.0.1", 1, "HEALTHY")]),
        "1",
    )]);
    let snap = tables.load();
    let a = snap
        .cluster("a")
        .expect("a")
        .endpoints
        .find(&addr("10.0.0.1"))
        .expect("a has it");
    let b = snap
        .cluster("b")
        .expect("b")
        .endpoints
        .find(&addr("10.0.0.1"))
        .expect("b has it");
    assert!(
        !Arc::ptr_eq(a, b),
        "state is per cluster: outlier detection is per cluster"
    );
    // Structural sharing: the cluster the update did not touch is the same allocation.
    assert!(Arc::ptr_eq(&c_before, snap.cluster("c").expect("c")));

    // Removing a cluster unsubscribes it.
    tables.apply([Change::RemoveCluster("a".into())]);
    assert_eq!(
        tables
            .load()
            .clusters_for_eds_resource("svc")
            .collect::<Vec<_>>(),
        ["b"]
    );
    tables.apply([Change::RemoveCluster("b".into())]);
    assert_eq!(tables.load().eds_resource_names().count(), 1);
    // An update for a resource nobody uses changes nothing.
    tables.apply([set_endpoints(
        "svc",
        assignment("svc", &[("10.0.0.9", 1, "HEALTHY")]),
        "2",
    )]);
    assert!(tables.load().cluster("a").is_none());
}

#[test]
fn cluster_upserts_keep_or_reset_endpoints() {
    let tables = Tables::new();
    tables.apply([
        Change::UpsertCluster(eds_cluster("a", "svc")),
        set_endpoints("svc", assignment("svc", &[("10.0.0.1", 1, "HEALTHY")]), "1"),
    ]);
    let before = Arc::clone(&tables.load().cluster("a").expect("a").endpoints);
    assert_eq!(
        before.len(),
        1,
        "an EDS update in the same batch as the cluster applies"
    );

    // Same EDS resource (e.g. a new connect timeout): endpoints stay.
    tables.apply([Change::UpsertCluster(cluster(
        "name: a\ntype: EDS\nconnect_timeout: 2s\neds_cluster_config: { service_name: svc, eds_config: { ads: {} } }",
    ))]);
    assert!(Arc::ptr_eq(
        &before,
        &tables.load().cluster("a").expect("a").endpoints
    ));

    // Another EDS resource: empty until its first update.
    tables.apply([Change::UpsertCluster(eds_cluster("a", "other"))]);
    let snap = tables.load();
    assert!(snap.cluster("a").expect("a").endpoints.is_empty());
    assert_eq!(snap.clusters_for_eds_resource("svc").count(), 0);
    assert_eq!(
        snap.clusters_for_eds_resource("other").collect::<Vec<_>>(),
        ["a"]
    );
}

/// Envoy replaces a host whose health-check port changes: its checks move to the new port
/// and it waits for its first check there. Without health checks the port changes nothing.
#[test]
fn a_new_health_check_port_makes_a_new_host() {
    let tables = Tables::new();
    let checked = "health_checks: [ { timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} } ]";
    let upsert = |health_checks: &str, port: u16| {
        tables.apply([Change::UpsertCluster(cluster(&format!(
            "name: s
{health_checks}
load_assignment: {{ cluster_name: s, endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: 10.0.0.1, port_value: 80 }} }}, health_check_config: {{ port_value: {port} }} }} }} ] }} ] }}"
        )))]);
        Arc::clone(
            tables
                .load()
                .cluster("s")
                .expect("s")
                .endpoints
                .find(&addr("10.0.0.1"))
                .expect("endpoint"),
        )
    };
    let first = upsert(checked, 9000);
    assert_eq!(first.health_check_port, 9000);
    first.clear_flags(HealthFlags::FAILED_ACTIVE_HC | HealthFlags::PENDING_ACTIVE_HC);
    // The same port: the same host, its checks' verdict kept.
    assert!(Arc::ptr_eq(&first, &upsert(checked, 9000)));

    let moved = upsert(checked, 9001);
    assert!(!Arc::ptr_eq(&first, &moved), "a new host for the new port");
    assert_eq!(moved.health_check_port, 9001);
    assert_eq!(
        moved.health_flags(),
        HealthFlags::FAILED_ACTIVE_HC | HealthFlags::PENDING_ACTIVE_HC
    );

    // Without health checks, the port is not part of what a host is.
    let unchecked = upsert("", 9000);
    assert!(Arc::ptr_eq(&unchecked, &upsert("", 9001)));
}

#[test]
fn static_clusters_and_health_check_flags() {
    let tables = Tables::new();
    let with_hc = |ips: &str| {
        cluster(&format!(
            "name: s
health_checks: [ {{ timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {{}} }} ]
load_assignment: {{ cluster_name: s, endpoints: [ {{ lb_endpoints: [ {ips} ] }} ] }}"
        ))
    };
    let ep = |ip: &str| {
        format!(
            "{{ endpoint: {{ address: {{ socket_address: {{ address: '{ip}', port_value: 80 }} }} }} }}"
        )
    };
    tables.apply([Change::UpsertCluster(with_hc(&ep("10.0.0.1")))]);
    let snap = tables.load();
    let first = Arc::clone(
        snap.cluster("s")
            .expect("s")
            .endpoints
            .find(&addr("10.0.0.1"))
            .expect("endpoint"),
    );
    assert_eq!(
        first.health_flags(),
        HealthFlags::FAILED_ACTIVE_HC | HealthFlags::PENDING_ACTIVE_HC
    );
    assert!(!first.is_healthy());
    first.clear_flags(HealthFlags::ACTIVE_HC);

    tables.apply([Change::UpsertCluster(with_hc(&format!(
        "{}, {}",
        ep("10.0.0.1"),
        ep("10.0.0.2")
    )))]);
    let snap = tables.load();
    let set = &snap.cluster("s").expect("s").endpoints;
    let kept = set.find(&addr("10.0.0.1")).expect("kept");
    assert!(Arc::ptr_eq(&first, kept));
    assert!(
        kept.is_healthy(),
        "a kept host keeps its passed health check"
    );
    assert!(
        !set.find(&addr("10.0.0.2")).expect("new").is_healthy(),
        "a new host waits for its check"
    );

    // Health checks removed: their flags go too.
    tables.apply([Change::UpsertCluster(cluster(&format!(
        "name: s\nload_assignment: {{ cluster_name: s, endpoints: [ {{ lb_endpoints: [ {} ] }} ] }}",
        ep("10.0.0.2")
    )))]);
    assert!(
        tables
            .load()
            .cluster("s")
            .expect("s")
            .endpoints
            .find(&addr("10.0.0.2"))
            .expect("kept")
            .is_healthy()
    );
}

#[test]
fn listeners_and_route_configurations() {
    let listener: listener_pb::Listener = outrider_envoy_json::from_yaml_str(
        "name: l
address: { socket_address: { address: 0.0.0.0, port_value: 80 } }
filter_chains: [ { filters: [ { name: t, typed_config: { '@type': type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c } } ] } ]",
    )
    .expect("valid YAML");
    let routes: route_pb::RouteConfiguration = outrider_envoy_json::from_yaml_str(
        "name: r\nvirtual_hosts: [ { name: v, domains: ['*'] } ]",
    )
    .expect("valid YAML");
    let tables = Tables::new();
    tables.apply([
        Change::UpsertListener(Arc::new(
            Listener::from_proto(&listener).expect("valid listener"),
        )),
        Change::UpsertRouteConfiguration(Arc::new(
            RouteConfiguration::from_proto(&routes).expect("valid routes"),
        )),
    ]);
    let snap = tables.load();
    assert!(snap.listener("l").is_some());
    assert!(snap.route_config("r").is_some());
    assert_eq!(snap.listeners().count(), 1);
    tables.apply([
        Change::RemoveListener("l".into()),
        Change::RemoveRouteConfiguration("r".into()),
    ]);
    let after = tables.load();
    assert!(after.listener("l").is_none() && after.route_config("r").is_none());
    // The old snapshot is still whole for whoever holds it.
    assert!(snap.listener("l").is_some());
}

#[test]
fn readers_see_whole_generations_while_writers_publish() {
    let tables = Arc::new(Tables::new());
    let reader = {
        let tables = Arc::clone(&tables);
        std::thread::spawn(move || {
            let mut last = 0;
            loop {
                let snap = tables.load();
                let generation = snap.generation();
                assert!(generation >= last, "generations never go back");
                // Every published generation adds exactly one cluster.
                assert_eq!(snap.cluster_count() as u64, generation);
                last = generation;
                if generation == 200 {
                    break;
                }
            }
        })
    };
    for i in 0..200 {
        tables.apply([Change::UpsertCluster(eds_cluster(&format!("c{i}"), ""))]);
    }
    reader.join().expect("reader saw consistent snapshots");
}

/// An EDS cluster `e` with one TCP health check, `extra` added to its YAML.
fn checked_eds_cluster(extra: &str) -> Arc<Cluster> {
    cluster(&format!(
        "name: e
type: EDS
eds_cluster_config: {{ eds_config: {{ ads: {{}} }} }}
health_checks: [ {{ timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {{}} }} ]
{extra}"
    ))
}

/// The host at `ip`:80 of cluster `name`.
fn host_of(tables: &Tables, name: &str, ip: &str) -> Arc<outrider_tables::EndpointState> {
    let snapshot = tables.load();
    let entry = snapshot.cluster(name).expect("cluster");
    Arc::clone(entry.endpoints.find(&addr(ip)).expect("host"))
}

fn addresses(tables: &Tables, name: &str) -> Vec<String> {
    let snapshot = tables.load();
    let entry = snapshot.cluster(name).expect("cluster");
    entry
        .endpoints
        .endpoints()
        .map(|e| format!("{} {}", e.address, e.health_flags().envoy_string()))
        .collect()
}

/// Envoy's default (`ignore_health_on_host_removal: false`): a health-checked host that EDS
/// drops stays, flagged, until a check fails it; one failing its checks, or unhealthy by EDS,
/// goes at once; listed again, it is the same host, unflagged.
#[test]
fn a_removed_host_stays_while_it_passes_its_checks() {
    let tables = Tables::new();
    tables.apply([Change::UpsertCluster(checked_eds_cluster(""))]);
    let all = [
        ("10.0.0.1", 1, "HEALTHY"),
        ("10.0.0.2", 1, "HEALTHY"),
        ("10.0.0.3", 1, "HEALTHY"),
        ("10.0.0.4", 1, "UNHEALTHY"),
    ];
    tables.apply([set_endpoints("e", assignment("e", &all), "1")]);
    let host = |ip: &str| host_of(&tables, "e", ip);
    let checked = HealthFlags::FAILED_ACTIVE_HC | HealthFlags::PENDING_ACTIVE_HC;
    // .1 and .4 passed their first checks, .3 failed it, .2 is pending.
    host("10.0.0.1").clear_flags(checked);
    host("10.0.0.3").clear_flags(HealthFlags::PENDING_ACTIVE_HC);
    host("10.0.0.4").clear_flags(checked);
    let kept = host("10.0.0.1");

    tables.apply([set_endpoints("e", assignment("e", &all[1..2]), "2")]);
    assert_eq!(
        addresses(&tables, "e"),
        [
            "10.0.0.2:80 /failed_active_hc/pending_active_hc",
            "10.0.0.1:80 /pending_dynamic_removal",
        ]
    );
    // Still there after the next update that omits it.
    tables.apply([set_endpoints("e", assignment("e", &all[1..2]), "3")]);
    assert_eq!(addresses(&tables, "e").len(), 2);

    // Only a failed check removes it, and only this very host.
    let removal = Change::RemovePendingHost {
        cluster: "e".into(),
        host: Arc::clone(&kept),
    };
    tables.apply([removal.clone()]);
    assert_eq!(addresses(&tables, "e").len(), 2, "passing: kept");
    kept.set_flags(HealthFlags::FAILED_ACTIVE_HC);
    tables.apply([removal]);
    assert_eq!(
        addresses(&tables, "e"),
        ["10.0.0.2:80 /failed_active_hc/pending_active_hc"]
    );

    // Listed again before it fails: the same host, no longer pending.
    let back = host("10.0.0.2");
    back.clear_flags(checked);
    tables.apply([set_endpoints("e", assignment("e", &all[2..3]), "4")]);
    assert!(
        back.health_flags()
            .contains(HealthFlags::PENDING_DYNAMIC_REMOVAL)
    );
    tables.apply([set_endpoints("e", assignment("e", &all[1..3]), "5")]);
    assert!(Arc::ptr_eq(&back, &host("10.0.0.2")));
    assert_eq!(back.health_flags(), HealthFlags::default());

    // A cluster update starts from the listed hosts (Envoy rebuilds the cluster).
    tables.apply([set_endpoints("e", assignment("e", &all[2..3]), "6")]);
    assert_eq!(addresses(&tables, "e").len(), 2);
    tables.apply([Change::UpsertCluster(checked_eds_cluster(""))]);
    // .3, dropped at once at version 2 (failing), came back new at version 4.
    assert_eq!(
        addresses(&tables, "e"),
        ["10.0.0.3:80 /failed_active_hc/pending_active_hc"]
    );
}

/// `ignore_health_on_host_removal: true`, or no health checks: a removed host goes at once.
#[test]
fn a_removed_host_goes_at_once_when_health_is_ignored_or_unchecked() {
    for config in [
        checked_eds_cluster("ignore_health_on_host_removal: true"),
        eds_cluster("e", ""),
    ] {
        let tables = Tables::new();
        tables.apply([Change::UpsertCluster(config)]);
        let two = [("10.0.0.1", 1, "HEALTHY"), ("10.0.0.2", 1, "HEALTHY")];
        tables.apply([set_endpoints("e", assignment("e", &two), "1")]);
        for host in tables.load().cluster("e").expect("e").endpoints.endpoints() {
            host.clear_flags(HealthFlags::FAILED_ACTIVE_HC | HealthFlags::PENDING_ACTIVE_HC);
        }
        tables.apply([set_endpoints("e", assignment("e", &two[1..]), "2")]);
        assert_eq!(addresses(&tables, "e"), ["10.0.0.2:80 healthy"]);
    }
}

/// A host that moves to another locality is a new host, as in Envoy.
#[test]
fn a_new_locality_makes_a_new_host() {
    let tables = Tables::new();
    tables.apply([Change::UpsertCluster(eds_cluster("e", ""))]);
    let in_zone = |zone: &str| {
        let yaml = format!(
            "cluster_name: e\nendpoints: [ {{ locality: {{ zone: {zone} }}, lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: 10.0.0.1, port_value: 80 }} }} }} }} ] }} ]"
        );
        let proto: endpoint_pb::ClusterLoadAssignment =
            outrider_envoy_json::from_yaml_str(&yaml).expect("valid YAML");
        Arc::new(ClusterLoadAssignment::from_proto(&proto).expect("valid assignment"))
    };
    let host = || host_of(&tables, "e", "10.0.0.1");
    tables.apply([set_endpoints("e", in_zone("a"), "1")]);
    let first = host();
    tables.apply([set_endpoints("e", in_zone("a"), "2")]);
    assert!(Arc::ptr_eq(&first, &host()), "same locality: same host");
    tables.apply([set_endpoints("e", in_zone("b"), "3")]);
    assert!(!Arc::ptr_eq(&first, &host()), "new locality: new host");
}

/// A new health-check port makes a new host, and the old one, passing its checks, stays
/// beside it pending removal (Envoy's `EndpointUpdateHealthCheckConfig`), until it fails one.
#[test]
fn a_host_replaced_for_its_health_check_port_stays_until_it_fails() {
    let tables = Tables::new();
    tables.apply([Change::UpsertCluster(checked_eds_cluster(""))]);
    let checked_on = |port: u16| {
        let yaml = format!(
            "cluster_name: e\nendpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: 10.0.0.1, port_value: 80 }} }}, health_check_config: {{ port_value: {port} }} }} }} ] }} ]"
        );
        let proto: endpoint_pb::ClusterLoadAssignment =
            outrider_envoy_json::from_yaml_str(&yaml).expect("valid YAML");
        Arc::new(ClusterLoadAssignment::from_proto(&proto).expect("valid assignment"))
    };
    let hosts = || -> Vec<Arc<outrider_tables::EndpointState>> {
        let snapshot = tables.load();
        snapshot
            .cluster("e")
            .expect("e")
            .endpoints
            .endpoints()
            .cloned()
            .collect()
    };
    tables.apply([set_endpoints("e", checked_on(9000), "1")]);
    let old = host_of(&tables, "e", "10.0.0.1");
    old.clear_flags(HealthFlags::FAILED_ACTIVE_HC | HealthFlags::PENDING_ACTIVE_HC);

    tables.apply([set_endpoints("e", checked_on(9001), "2")]);
    assert_eq!(
        addresses(&tables, "e"),
        [
            "10.0.0.1:80 /failed_active_hc/pending_active_hc",
            "10.0.0.1:80 /pending_dynamic_removal",
        ]
    );
    let new = Arc::clone(&hosts()[0]);
    assert_eq!(new.health_check_port, 9001);
    // The same listing again keeps both as they are.
    tables.apply([set_endpoints("e", checked_on(9001), "3")]);
    let again = hosts();
    assert!(Arc::ptr_eq(&again[0], &new) && Arc::ptr_eq(&again[1], &old));

    // A removal names one host: the new one, failing but not pending, stays.
    tables.apply([Change::RemovePendingHost {
        cluster: "e".into(),
        host: Arc::clone(&new),
    }]);
    assert_eq!(hosts().len(), 2);
    old.set_flags(HealthFlags::FAILED_ACTIVE_HC);
    tables.apply([Change::RemovePendingHost {
        cluster: "e".into(),
        host: Arc::clone(&old),
    }]);
    let left = hosts();
    assert_eq!(left.len(), 1);
    assert!(Arc::ptr_eq(&left[0], &new));
}
