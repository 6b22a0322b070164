//! ClusterLoadAssignment conversion (EDS): endpoints, priorities, policy.

use envoy_types::pb::envoy::config::endpoint::v3 as pb;
use outrider_model::{ClusterLoadAssignment, EndpointAddress, HealthStatus};

fn cla(yaml: &str) -> Result<ClusterLoadAssignment, String> {
    let proto: pb::ClusterLoadAssignment = outrider_envoy_json::from_yaml_str(yaml)
        .expect("test YAML is a valid ClusterLoadAssignment");
    ClusterLoadAssignment::from_proto(&proto).map_err(|e| e.to_string())
}

#[test]
fn eds_assignment() {
    let c = cla("cluster_name: svc
endpoints:
- locality: { zone: a }
  lb_endpoints:
  - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 8080 } }, hostname: pod-1, health_check_config: { port_value: 9090 } }
    health_status: HEALTHY
  - endpoint: { address: { socket_address: { address: 10.0.0.2, port_value: 8080 } } }
    health_status: UNHEALTHY
- priority: 1
  locality: { zone: b }
  lb_endpoints:
  - endpoint: { address: { socket_address: { address: 10.0.1.1, port_value: 8080 } } }
    health_status: DEGRADED
policy: { overprovisioning_factor: 200, drop_overloads: [ { category: lb, drop_percentage: { numerator: 5 } } ] }
")
    .expect("valid assignment");
    assert_eq!(c.cluster_name(), "svc");
    assert_eq!(c.overprovisioning_factor, 200);
    assert_eq!(c.drop_overloads[0].parts_per_million, 50_000);
    let eps: Vec<_> = c.lb_endpoints().collect();
    assert_eq!(eps.len(), 3);
    assert_eq!(
        eps[0].address,
        EndpointAddress::Ip("10.0.0.1:8080".parse().expect("address"))
    );
    assert_eq!(eps[0].hostname, "pod-1");
    assert_eq!(eps[0].health_check.port, Some(9090));
    assert_eq!(eps[0].health_status, HealthStatus::Healthy);
    assert!(eps[1].health_status.is_eds_unhealthy());
    assert_eq!(eps[2].health_status, HealthStatus::Degraded);
    assert!(!eps[2].health_status.is_eds_unhealthy());
}

#[test]
fn invalid_assignments() {
    let cases = [
        ("endpoints: []", "cluster_name: must not be empty"),
        (
            "cluster_name: c\nendpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: a.b, port_value: 1 } } } } ] } ]",
            "endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: \"a.b\" is not an IP address (host names need a STRICT_DNS or LOGICAL_DNS cluster)",
        ),
        (
            "cluster_name: c\nendpoints: [ { lb_endpoints: [ {} ] } ]",
            "endpoints[0].lb_endpoints[0].endpoint: is required",
        ),
        (
            "cluster_name: c\nendpoints: [ { lb_endpoints: [ { endpoint: {} } ] } ]",
            "endpoints[0].lb_endpoints[0].endpoint.address: is required",
        ),
        (
            "cluster_name: c\nendpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 1.2.3.4 } } } } ] } ]",
            "endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: is required",
        ),
        (
            "cluster_name: c\nendpoints: [ { priority: 1 } ]",
            "endpoints[0].priority: priorities must be contiguous from 0, but priority 0 has no locality",
        ),
        (
            "cluster_name: c\nendpoints: [ { priority: 129 } ]",
            "endpoints[0].priority: must be at most 128",
        ),
        (
            "cluster_name: c\nendpoints: [ { load_balancing_weight: 0 } ]",
            "endpoints[0].load_balancing_weight: must be at least 1",
        ),
        (
            "cluster_name: c\npolicy: { overprovisioning_factor: 0 }",
            "policy.overprovisioning_factor: must be between 1 and 4294967295",
        ),
        (
            "cluster_name: c\npolicy: { drop_overloads: [ { category: a }, { category: b } ] }",
            "policy.drop_overloads: at most one drop category is supported (as in Envoy)",
        ),
        (
            "cluster_name: c\npolicy: { drop_overloads: [ { category: '' } ] }",
            "policy.drop_overloads[0].category: must not be empty",
        ),
    ];
    for (yaml, expected) in cases {
        assert_eq!(cla(yaml).map(|_| ()), Err(expected.to_string()), "{yaml}");
    }
}
