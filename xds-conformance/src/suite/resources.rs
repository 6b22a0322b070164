//! The Envoy resources the scenarios serve, written as Envoy YAML so they read like the configs
//! operators write: static and EDS clusters, endpoint assignments, listeners with an RDS or
//! inline route configuration, route configurations.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;

use super::Failure;

fn parse<M: prost::Message + prost::Name + Default>(yaml: &str) -> Result<M, Failure> {
    outrider_envoy_json::from_yaml_str(yaml)
        .map_err(|e| Failure::new(format!("suite bug: a {} does not parse: {e}", M::NAME)))
}

/// A `STATIC` cluster with one endpoint and the given `connect_timeout` (`"0s"` is invalid).
pub fn static_cluster_with_timeout(name: &str, connect_timeout: &str) -> Result<Cluster, Failure> {
    static_cluster_yaml(name, connect_timeout, 18081, "")
}

/// A `STATIC` cluster with one endpoint at 127.0.0.1:`port`, plus `extra`: more of the
/// cluster's fields, in YAML at the cluster's top level (`outlier_detection: {...}`).
pub fn static_cluster_at(name: &str, port: u16, extra: &str) -> Result<Cluster, Failure> {
    static_cluster_yaml(name, "1s", port, extra)
}

fn static_cluster_yaml(
    name: &str,
    connect_timeout: &str,
    port: u16,
    extra: &str,
) -> Result<Cluster, Failure> {
    parse(&format!(
        r#"
name: {name}
type: STATIC
connect_timeout: {connect_timeout}
load_assignment:
  cluster_name: {name}
  endpoints:
  - lb_endpoints:
    - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}
{extra}
"#
    ))
}

/// A valid `STATIC` cluster.
pub fn static_cluster(name: &str) -> Result<Cluster, Failure> {
    static_cluster_with_timeout(name, "1s")
}

/// A cluster every client must reject: `connect_timeout` must be greater than 0.
pub fn invalid_cluster(name: &str) -> Result<Cluster, Failure> {
    static_cluster_with_timeout(name, "0s")
}

/// An `EDS` cluster over ADS. `service_name` names its endpoints (else the cluster's name);
/// `initial_fetch_timeout` is set on its `eds_config` when given.
pub fn eds_cluster(
    name: &str,
    service_name: Option<&str>,
    initial_fetch_timeout: Option<&str>,
) -> Result<Cluster, Failure> {
    let service = service_name
        .map(|s| format!("\n  service_name: {s}"))
        .unwrap_or_default();
    let timeout = initial_fetch_timeout
        .map(|t| format!("\n    initial_fetch_timeout: {t}"))
        .unwrap_or_default();
    parse(&format!(
        r#"
name: {name}
type: EDS
connect_timeout: 1s
eds_cluster_config:{service}
  eds_config:
    ads: {{}}
    resource_api_version: V3{timeout}
"#
    ))
}

/// The endpoints of EDS name `name`: one endpoint per port on 127.0.0.1.
pub fn endpoints(name: &str, ports: &[u16]) -> Result<ClusterLoadAssignment, Failure> {
    let lb_endpoints: String = ports
        .iter()
        .map(|port| {
            format!(
                "\n    - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}"
            )
        })
        .collect();
    parse(&format!(
        r#"
cluster_name: {name}
endpoints:
  - lb_endpoints:{lb_endpoints}
"#
    ))
}

const HCM_HEAD: &str = r#"
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        http_filters:
        - name: envoy.filters.http.router
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"#;

/// An HTTP listener on 127.0.0.1:`port` whose routes come from RDS `route_name`, waiting for them
/// as long as it takes (`initial_fetch_timeout: 0s`).
pub fn rds_listener(name: &str, port: u16, route_name: &str) -> Result<Listener, Failure> {
    parse(&format!(
        r#"
name: {name}
address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
filter_chains:
  - filters:{HCM_HEAD}
        stat_prefix: {name}
        rds:
          route_config_name: {route_name}
          config_source:
            ads: {{}}
            resource_api_version: V3
            initial_fetch_timeout: 0s
"#
    ))
}

/// An HTTP listener on 127.0.0.1:`port` with an inline route configuration to `cluster`.
pub fn inline_listener(name: &str, port: u16, cluster: &str) -> Result<Listener, Failure> {
    parse(&format!(
        r#"
name: {name}
address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
filter_chains:
  - filters:{HCM_HEAD}
        stat_prefix: {name}
        route_config:
          name: {name}-inline
          virtual_hosts:
          - name: all
            domains: ["*"]
            routes:
            - match: {{ prefix: "/" }}
              route: {{ cluster: {cluster} }}
"#
    ))
}

/// A route configuration sending everything to `cluster`.
pub fn route(name: &str, cluster: &str) -> Result<RouteConfiguration, Failure> {
    parse(&format!(
        r#"
name: {name}
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: {{ prefix: "/" }}
    route: {{ cluster: {cluster} }}
"#
    ))
}

/// A TCP port free on 127.0.0.1 right now, for a listener the client may bind. Clients that
/// bind listeners (Envoy) refuse two listeners on one address, so each gets its own port.
pub fn free_port() -> Result<u16, Failure> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|e| Failure::new(format!("no free port on 127.0.0.1: {e}")))
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{
        ClusterDiscoveryType, DiscoveryType,
    };

    use super::*;

    #[test]
    fn clusters_parse() {
        let good = static_cluster("a").expect("parses");
        assert_eq!(good.connect_timeout.expect("set").seconds, 1);
        let bad = invalid_cluster("b").expect("parses");
        let timeout = bad.connect_timeout.expect("set");
        assert_eq!((timeout.seconds, timeout.nanos), (0, 0));
        let eds = eds_cluster("c", Some("c-svc"), Some("1s")).expect("parses");
        assert_eq!(
            eds.cluster_discovery_type,
            Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
        );
        let config = eds.eds_cluster_config.expect("eds config");
        assert_eq!(config.service_name, "c-svc");
        let source = config.eds_config.expect("source");
        assert_eq!(source.initial_fetch_timeout.expect("timeout").seconds, 1);
        let plain = eds_cluster("d", None, None).expect("parses");
        assert_eq!(plain.eds_cluster_config.expect("config").service_name, "");
    }

    #[test]
    fn endpoints_listeners_and_routes_parse() {
        let cla = endpoints("e", &[1, 2]).expect("parses");
        assert_eq!(cla.endpoints[0].lb_endpoints.len(), 2);
        let listener = rds_listener("l", 1234, "r").expect("parses");
        assert_eq!(listener.filter_chains[0].filters.len(), 1);
        inline_listener("l2", 1235, "a").expect("parses");
        let route = route("r", "a").expect("parses");
        assert_eq!(route.virtual_hosts[0].routes.len(), 1);
        assert_ne!(free_port().expect("port"), 0);
    }
}
