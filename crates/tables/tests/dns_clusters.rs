//! DNS clusters in the tables: host names wait for `SetResolvedEndpoints`, which applies only to
//! the config it was resolved for, and config updates keep the resolved endpoints.

use std::sync::Arc;

use envoy_types::pb::envoy::config::{cluster::v3 as cluster_pb, endpoint::v3 as endpoint_pb};
use outrider_model::{Cluster, ClusterLoadAssignment};
use outrider_tables::{Change, HealthFlags, Tables};

/// A STRICT_DNS cluster `dns` with endpoints `web:80` and `10.0.0.9:80`; `extra` is more YAML.
fn dns_cluster(extra: &str) -> Arc<Cluster> {
    let yaml = format!(
        "name: dns\ntype: STRICT_DNS\n{extra}\nload_assignment: {{ cluster_name: dns, endpoints: [{{ lb_endpoints: [\
         {{ endpoint: {{ address: {{ socket_address: {{ address: web, port_value: 80 }} }} }} }},\
         {{ endpoint: {{ address: {{ socket_address: {{ address: 10.0.0.9, port_value: 80 }} }} }} }}] }}] }}"
    );
    let proto: cluster_pb::Cluster = outrider_envoy_json::from_yaml_str(&yaml).expect("valid YAML");
    Arc::new(Cluster::from_proto(&proto).expect("valid cluster"))
}

/// What the resolver would publish: `ips` on port 80.
fn resolved(config: &Arc<Cluster>, ips: &[&str]) -> Change {
    let lb: Vec<String> = ips
        .iter()
        .map(|ip| {
            format!("{{ endpoint: {{ address: {{ socket_address: {{ address: '{ip}', port_value: 80 }} }} }} }}")
        })
        .collect();
    let yaml = format!(
        "cluster_name: dns\nendpoints: [{{ lb_endpoints: [{}] }}]",
        lb.join(", ")
    );
    let proto: endpoint_pb::ClusterLoadAssignment =
        outrider_envoy_json::from_yaml_str(&yaml).expect("valid YAML");
    Change::SetResolvedEndpoints {
        config: Arc::clone(config),
        assignment: Arc::new(ClusterLoadAssignment::from_proto(&proto).expect("valid")),
    }
}

fn addresses(tables: &Tables) -> Vec<String> {
    let snapshot = tables.load();
    snapshot
        .cluster("dns")
        .map(|c| {
            c.endpoints
                .endpoints()
                .map(|e| e.address.to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn host_names_serve_once_resolved_for_the_current_config() {
    let tables = Tables::new();
    let config = dns_cluster("");
    tables.apply([Change::UpsertCluster(Arc::clone(&config))]);
    // Until resolved, only the IP address can serve.
    assert_eq!(addresses(&tables), ["10.0.0.9:80"]);

    tables.apply([resolved(&config, &["10.0.0.1", "10.0.0.2", "10.0.0.9"])]);
    assert_eq!(
        addresses(&tables),
        ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.9:80"]
    );

    // Resolved for an equal but other config (a loop that raced an update): dropped.
    tables.apply([resolved(&dns_cluster(""), &["10.0.0.5"])]);
    assert_eq!(
        addresses(&tables),
        ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.9:80"]
    );

    // Resolved for a removed cluster: nothing comes back.
    tables.apply([Change::RemoveCluster("dns".into())]);
    tables.apply([resolved(&config, &["10.0.0.1"])]);
    assert!(tables.load().cluster("dns").is_none());
}

#[test]
fn config_updates_keep_resolved_endpoints_and_their_state() {
    let tables = Tables::new();
    let config = dns_cluster("");
    tables.apply([
        Change::UpsertCluster(Arc::clone(&config)),
        resolved(&config, &["10.0.0.1", "10.0.0.9"]),
    ]);
    let before = Arc::clone(&tables.load().cluster("dns").expect("cluster").endpoints);

    // The same config again (a new `Arc`): the resolved endpoints stay as they are.
    tables.apply([Change::UpsertCluster(dns_cluster(""))]);
    let after = Arc::clone(&tables.load().cluster("dns").expect("cluster").endpoints);
    assert!(Arc::ptr_eq(&before, &after));

    // A changed config serves the previous endpoints until its own resolution, which reuses
    // the state of the addresses it keeps.
    let changed = dns_cluster("connect_timeout: 2s");
    tables.apply([Change::UpsertCluster(Arc::clone(&changed))]);
    assert_eq!(addresses(&tables), ["10.0.0.1:80", "10.0.0.9:80"]);
    tables.apply([resolved(&changed, &["10.0.0.1", "10.0.0.3", "10.0.0.9"])]);
    let snapshot = tables.load();
    let now = &snapshot.cluster("dns").expect("cluster").endpoints;
    assert_eq!(now.len(), 3);
    for kept in before.endpoints() {
        let same = now.find(&kept.address).expect("kept address");
        assert!(Arc::ptr_eq(kept, same), "{} kept its state", kept.address);
    }
}

/// A health-checked STRICT_DNS cluster keeps a host its resolution drops while it passes its
/// checks, as Envoy's dynamic host list does; but a changed config starts from its own first
/// resolution (Envoy builds a new cluster), keeping nothing.
#[test]
fn resolutions_keep_dropped_healthy_hosts_until_the_config_changes() {
    let checks = "health_checks: [ { timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} } ]";
    let tables = Tables::new();
    let config = dns_cluster(checks);
    tables.apply([
        Change::UpsertCluster(Arc::clone(&config)),
        resolved(&config, &["10.0.0.1", "10.0.0.2"]),
    ]);
    let pass_checks = || {
        for host in tables
            .load()
            .cluster("dns")
            .expect("dns")
            .endpoints
            .endpoints()
        {
            host.clear_flags(HealthFlags::FAILED_ACTIVE_HC | HealthFlags::PENDING_ACTIVE_HC);
        }
    };
    pass_checks();
    tables.apply([resolved(&config, &["10.0.0.1"])]);
    assert_eq!(addresses(&tables), ["10.0.0.1:80", "10.0.0.2:80"]);

    let changed = dns_cluster(&format!("{checks}\nconnect_timeout: 2s"));
    tables.apply([Change::UpsertCluster(Arc::clone(&changed))]);
    assert_eq!(addresses(&tables), ["10.0.0.1:80"], "the pending host goes");
    pass_checks();
    tables.apply([resolved(&changed, &["10.0.0.3"])]);
    assert_eq!(
        addresses(&tables),
        ["10.0.0.3:80"],
        "nothing kept from the old config"
    );
    // From then on the config's own resolutions keep what they drop.
    pass_checks();
    tables.apply([resolved(&changed, &["10.0.0.4"])]);
    assert_eq!(addresses(&tables), ["10.0.0.4:80", "10.0.0.3:80"]);
}
