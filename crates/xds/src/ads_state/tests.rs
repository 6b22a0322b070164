//! Protocol rules of XDS-SPEC §1, checked on the state machine alone: no network, no clock.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as ClusterProto;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment as ClaProto;
use envoy_types::pb::envoy::config::listener::v3::Listener as ListenerProto;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration as RouteProto;
use envoy_types::pb::envoy::service::discovery::v3::Resource;
use outrider_model::ConfigSource;
use prost::Message;

use super::*;

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

fn pack<M: Message + prost::Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

fn eds_cluster_with(name: &str, connect_timeout: &str, extra: &str) -> Any {
    let yaml = format!(
        "name: {name}\ntype: EDS\nconnect_timeout: {connect_timeout}\neds_cluster_config: {{ service_name: {name}-eds, eds_config: {{ ads: {{}}{extra} }} }}\n"
    );
    pack(&outrider_envoy_json::from_yaml_str::<ClusterProto>(&yaml).expect("test cluster"))
}

fn eds_cluster(name: &str) -> Any {
    eds_cluster_with(name, "1s", "")
}

fn static_cluster(name: &str) -> Any {
    let yaml = format!(
        "name: {name}\ntype: STATIC\nconnect_timeout: 1s\nload_assignment: {{ cluster_name: {name}, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 9 }} }} }} }}] }}] }}\n"
    );
    pack(&outrider_envoy_json::from_yaml_str::<ClusterProto>(&yaml).expect("test cluster"))
}

fn endpoints(name: &str, port: u32) -> Any {
    let yaml = format!(
        "cluster_name: {name}\nendpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }} }}] }}]\n"
    );
    pack(&outrider_envoy_json::from_yaml_str::<ClaProto>(&yaml).expect("test endpoints"))
}

fn listener(name: &str, route: &str) -> Any {
    let yaml = format!(
        r#"
name: {name}
address: {{ socket_address: {{ address: 127.0.0.1, port_value: 10000 }} }}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: ingress
      rds: {{ route_config_name: {route}, config_source: {{ ads: {{}} }} }}
      http_filters:
      - name: envoy.filters.http.router
        typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
"#
    );
    pack(&outrider_envoy_json::from_yaml_str::<ListenerProto>(&yaml).expect("test listener"))
}

fn routes(name: &str, cluster: &str) -> Any {
    let yaml = format!(
        "name: {name}\nvirtual_hosts: [{{ name: all, domains: ['*'], routes: [{{ match: {{ prefix: / }}, route: {{ cluster: {cluster} }} }}] }}]\n"
    );
    pack(&outrider_envoy_json::from_yaml_str::<RouteProto>(&yaml).expect("test routes"))
}

fn sotw(type_url: &str, version: &str, nonce: &str, resources: Vec<Any>) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: version.into(),
        resources,
        type_url: type_url.into(),
        nonce: nonce.into(),
        ..Default::default()
    }
}

fn delta(
    type_url: &str,
    nonce: &str,
    resources: Vec<(&str, &str, Any)>,
    removed: &[&str],
) -> DeltaDiscoveryResponse {
    DeltaDiscoveryResponse {
        system_version_info: format!("sys-{nonce}"),
        resources: resources
            .into_iter()
            .map(|(name, version, any)| Resource {
                name: name.into(),
                version: version.into(),
                resource: Some(any),
                ..Default::default()
            })
            .collect(),
        type_url: type_url.into(),
        removed_resources: removed.iter().map(|s| s.to_string()).collect(),
        nonce: nonce.into(),
        ..Default::default()
    }
}

/// A state machine with a controllable clock.
struct Harness {
    state: AdsState,
    now: Now,
}

impl Harness {
    fn new(delta: bool) -> Self {
        Harness::with_sources(delta, ConfigSource::default(), ConfigSource::default())
    }

    /// With `set_node_on_first_message_only: true`.
    fn node_on_first_request_only(delta: bool) -> Self {
        let mut h = Harness::new(delta);
        h.state.config.node_on_first_request_only = true;
        h
    }

    fn with_sources(delta: bool, cds: ConfigSource, lds: ConfigSource) -> Self {
        let now = Now::real();
        let config = AdsConfig {
            node: Node {
                id: "sidecar~10.0.0.1~app-1.default~default.svc.cluster.local".into(),
                cluster: "app".into(),
                user_agent_name: "outrider".into(),
                ..Default::default()
            },
            delta,
            node_on_first_request_only: false,
            lds: Some(lds),
            cds: Some(cds),
            server: "127.0.0.1:18000".into(),
        };
        Harness {
            state: AdsState::new(config, Vec::new(), Vec::new(), now),
            now,
        }
    }

    fn advance(&mut self, by: Duration) -> Step {
        self.now.instant += by;
        self.now.wall += by;
        self.state.on_timer(self.now)
    }

    fn sotw(&mut self, response: DiscoveryResponse) -> Step {
        self.state.on_sotw_response(response, self.now)
    }

    fn delta(&mut self, response: DeltaDiscoveryResponse) -> Step {
        self.state.on_delta_response(response, self.now)
    }

    fn record(&self, kind: ResourceType, name: &str) -> ResourceRecord {
        self.state.status().resources[&kind][name].clone()
    }
}

fn sotw_requests(step: &Step) -> Vec<&DiscoveryRequest> {
    step.requests
        .iter()
        .map(|r| match r {
            Outbound::Sotw(r) => r,
            Outbound::Delta(_) => panic!("delta request from a SotW client"),
        })
        .collect()
}

fn delta_requests(step: &Step) -> Vec<&DeltaDiscoveryRequest> {
    step.requests
        .iter()
        .map(|r| match r {
            Outbound::Delta(r) => r,
            Outbound::Sotw(_) => panic!("SotW request from a delta client"),
        })
        .collect()
}

fn change_names(step: &Step) -> Vec<String> {
    step.changes
        .iter()
        .map(|c| match c {
            Change::UpsertCluster(c) => format!("+cluster {}", c.name()),
            Change::RemoveCluster(n) => format!("-cluster {n}"),
            Change::SetEndpoints { cluster, .. } => format!("endpoints {cluster}"),
            Change::SetResolvedEndpoints { config, .. } => format!("resolved {}", config.name()),
            Change::RemovePendingHost { cluster, .. } => format!("-pending host {cluster}"),
            Change::UpsertListener(l) => format!("+listener {}", l.name()),
            Change::RemoveListener(n) => format!("-listener {n}"),
            Change::UpsertRouteConfiguration(r) => format!("+routes {}", r.name()),
            Change::RemoveRouteConfiguration(n) => format!("-routes {n}"),
        })
        .collect()
}

#[test]
fn first_requests_are_wildcard_cds_then_lds_with_the_node() {
    let mut h = Harness::new(false);
    let step = h.state.on_connected(h.now);
    let requests = sotw_requests(&step);
    assert_eq!(
        requests
            .iter()
            .map(|r| r.type_url.as_str())
            .collect::<Vec<_>>(),
        [CDS, LDS],
        "wildcard CDS then LDS; no EDS or RDS before anything references them"
    );
    let node = requests[0]
        .node
        .as_ref()
        .expect("node on the first request");
    assert_eq!(node.user_agent_name, "outrider");
    assert!(
        requests.iter().all(|r| r.resource_names.is_empty()),
        "wildcard"
    );
}

#[test]
fn the_node_is_on_every_request_unless_the_bootstrap_says_first_only() {
    for delta_mode in [false, true] {
        // Envoy's default, set_node_on_first_message_only: false.
        let mut h = Harness::new(delta_mode);
        let mut steps = vec![h.state.on_connected(h.now)];
        steps.push(if delta_mode {
            h.delta(delta(CDS, "n1", vec![("a", "1", eds_cluster("a"))], &[]))
        } else {
            h.sotw(sotw(CDS, "1", "n1", vec![eds_cluster("a")]))
        });
        let requests: Vec<&Outbound> = steps.iter().flat_map(|s| &s.requests).collect();
        assert!(
            requests.len() >= 4,
            "CDS, LDS, the CDS ACK and the EDS subscription: {requests:?}"
        );
        for request in &requests {
            let node = match request {
                Outbound::Sotw(r) => &r.node,
                Outbound::Delta(r) => &r.node,
            };
            assert!(node.is_some(), "delta {delta_mode}: no node on {request:?}");
        }

        // set_node_on_first_message_only: true: the first request of each stream only.
        let mut h = Harness::node_on_first_request_only(delta_mode);
        let mut steps = vec![h.state.on_connected(h.now)];
        steps.push(if delta_mode {
            h.delta(delta(CDS, "n1", vec![("a", "1", eds_cluster("a"))], &[]))
        } else {
            h.sotw(sotw(CDS, "1", "n1", vec![eds_cluster("a")]))
        });
        let with_node: Vec<bool> = steps
            .iter()
            .flat_map(|s| &s.requests)
            .map(|r| match r {
                Outbound::Sotw(r) => r.node.is_some(),
                Outbound::Delta(r) => r.node.is_some(),
            })
            .collect();
        assert!(with_node.len() >= 4);
        assert!(
            with_node[0],
            "delta {delta_mode}: the stream's first request"
        );
        assert!(
            with_node[1..].iter().all(|n| !n),
            "delta {delta_mode}: {with_node:?}"
        );
        h.state.on_disconnected("gone".into());
        let step = h.state.on_connected(h.now);
        let first_has_node = match &step.requests[0] {
            Outbound::Sotw(r) => r.node.is_some(),
            Outbound::Delta(r) => r.node.is_some(),
        };
        assert!(first_has_node, "delta {delta_mode}: again on a new stream");
    }
}

#[test]
fn sotw_ack_and_nack_carry_the_right_version_and_nonce() {
    // (response version, nonce, resources, expected version_info, NACK?)
    let cases: Vec<(&str, &str, Vec<Any>, &str, bool)> = vec![
        ("v1", "n1", vec![static_cluster("a")], "v1", false),
        (
            "v2",
            "n2",
            vec![static_cluster("a"), eds_cluster_with("b", "0s", "")],
            "v1",
            true,
        ),
        (
            "v3",
            "n3",
            vec![static_cluster("a"), static_cluster("b")],
            "v3",
            false,
        ),
    ];
    let mut h = Harness::new(false);
    h.state.on_connected(h.now);
    for (version, nonce, resources, expected_version, nack) in cases {
        let step = h.sotw(sotw(CDS, version, nonce, resources));
        let ack = sotw_requests(&step)[0];
        assert_eq!(ack.type_url, CDS);
        assert_eq!(ack.response_nonce, nonce);
        assert_eq!(ack.version_info, expected_version, "response {version}");
        assert_eq!(ack.error_detail.is_some(), nack, "response {version}");
    }
}

#[test]
fn invalid_resources_are_rejected_one_by_one_and_the_rest_applied() {
    let mut h = Harness::new(false);
    h.state.on_connected(h.now);
    h.sotw(sotw(
        CDS,
        "1",
        "n1",
        vec![static_cluster("a"), static_cluster("b")],
    ));
    let bad_b = eds_cluster_with("b", "0s", "");
    let step = h.sotw(sotw(
        CDS,
        "2",
        "n2",
        vec![static_cluster("a"), bad_b.clone(), static_cluster("c")],
    ));
    assert_eq!(change_names(&step), ["+cluster c"]);
    let nack = sotw_requests(&step)[0];
    let detail = nack.error_detail.as_ref().expect("NACK");
    assert_eq!(detail.code, 3);
    assert!(
        detail.message.starts_with("b: connect_timeout"),
        "names the resource and the field: {}",
        detail.message
    );
    assert_eq!(nack.version_info, "1");

    let b = h.record(ResourceType::Cluster, "b");
    assert_eq!(b.status, ResourceStatus::Nacked);
    assert_eq!(b.version, "1", "the last good version stays in use");
    assert!(b.resource.is_some());
    let error = b.error.expect("error state");
    assert_eq!(error.version, "2");
    assert_eq!(error.failed, Some(bad_b));
    assert_eq!(
        h.record(ResourceType::Cluster, "c").status,
        ResourceStatus::Acked
    );
    assert_eq!(h.state.status().type_versions[&ResourceType::Cluster], "1");
}

#[test]
fn a_response_naming_a_resource_twice_is_rejected_whole() {
    let mut h = Harness::new(false);
    h.state.on_connected(h.now);
    let step = h.sotw(sotw(
        CDS,
        "1",
        "n1",
        vec![
            static_cluster("a"),
            static_cluster("z"),
            static_cluster("a"),
        ],
    ));
    assert!(step.changes.is_empty(), "nothing applied");
    let nack = sotw_requests(&step)[0];
    assert!(
        nack.error_detail
            .as_ref()
            .expect("NACK")
            .message
            .contains("duplicate")
    );
    assert!(
        h.state
            .status()
            .records(ResourceType::Cluster)
            .next()
            .is_none()
    );
}

#[test]
fn eds_subscription_is_exactly_the_referenced_names_and_clusters_warm_until_endpoints() {
    let mut h = Harness::new(false);
    h.state.on_connected(h.now);
    let step = h.sotw(sotw(
        CDS,
        "1",
        "n1",
        vec![eds_cluster("a"), eds_cluster("b")],
    ));
    assert!(
        step.changes.is_empty(),
        "EDS clusters warm until their endpoints arrive"
    );
    let requests = sotw_requests(&step);
    assert_eq!(requests.len(), 2, "the CDS ACK, then the EDS subscription");
    assert_eq!(requests[0].type_url, CDS);
    assert_eq!(requests[1].type_url, EDS);
    assert_eq!(requests[1].resource_names, ["a-eds", "b-eds"]);
    assert!(h.record(ResourceType::Cluster, "a").warming);
    assert!(!h.state.status().initialized);

    // An unrequested resource in the answer is ignored.
    let step = h.sotw(sotw(
        EDS,
        "e1",
        "n2",
        vec![endpoints("a-eds", 1), endpoints("zzz", 2)],
    ));
    assert_eq!(change_names(&step), ["+cluster a", "endpoints a-eds"]);
    assert!(sotw_requests(&step)[0].error_detail.is_none());
    assert!(!h.state.status().resources[&ResourceType::ClusterLoadAssignment].contains_key("zzz"));
    assert!(h.record(ResourceType::Cluster, "b").warming);

    // Removing cluster b shrinks the EDS subscription; its endpoints are forgotten.
    let step = h.sotw(sotw(CDS, "2", "n3", vec![eds_cluster("a")]));
    let requests = sotw_requests(&step);
    assert_eq!(requests[1].type_url, EDS);
    assert_eq!(requests[1].resource_names, ["a-eds"]);
    assert_eq!(requests[1].version_info, "e1");
    assert_eq!(requests[1].response_nonce, "n2");
}

#[test]
fn sotw_deletion_removes_missing_clusters_and_listeners_but_not_routes() {
    let mut h = Harness::new(false);
    h.state.on_connected(h.now);
    h.sotw(sotw(
        CDS,
        "1",
        "c1",
        vec![static_cluster("a"), static_cluster("b")],
    ));
    h.sotw(sotw(
        LDS,
        "1",
        "l1",
        vec![listener("l1", "r1"), listener("l2", "r2")],
    ));
    h.sotw(sotw(
        RDS,
        "1",
        "r1",
        vec![routes("r1", "a"), routes("r2", "b")],
    ));

    // A route configuration missing from a response stays.
    let step = h.sotw(sotw(RDS, "2", "r2", vec![routes("r1", "b")]));
    assert_eq!(change_names(&step), ["+routes r1"]);

    // A cluster missing from a response goes.
    let step = h.sotw(sotw(CDS, "2", "c2", vec![static_cluster("a")]));
    assert_eq!(change_names(&step), ["-cluster b"]);

    // A listener missing from a response goes, and so does the route config only it used.
    let step = h.sotw(sotw(LDS, "2", "l2", vec![listener("l1", "r1")]));
    assert_eq!(change_names(&step), ["-listener l2", "-routes r2"]);
    let requests = sotw_requests(&step);
    assert_eq!(requests[1].type_url, RDS);
    assert_eq!(requests[1].resource_names, ["r1"]);

    // An empty response removes every cluster.
    let step = h.sotw(sotw(CDS, "3", "c3", vec![]));
    assert_eq!(change_names(&step), ["-cluster a"]);
}

#[test]
fn listeners_warm_until_their_routes_arrive_and_readiness_waits_for_both() {
    let mut h = Harness::new(false);
    h.state.on_connected(h.now);
    h.sotw(sotw(CDS, "1", "c1", vec![static_cluster("a")]));
    assert!(!h.state.status().initialized, "LDS not answered yet");
    let step = h.sotw(sotw(LDS, "1", "l1", vec![listener("l1", "r1")]));
    assert!(step.changes.is_empty());
    assert!(h.record(ResourceType::Listener, "l1").warming);
    assert_eq!(
        h.record(ResourceType::RouteConfiguration, "r1").status,
        ResourceStatus::Requested
    );
    assert!(!h.state.status().initialized, "listener still warming");
    let step = h.sotw(sotw(RDS, "1", "r1", vec![routes("r1", "a")]));
    assert_eq!(
        change_names(&step),
        ["+routes r1", "+listener l1"],
        "routes before the listener"
    );
    assert!(h.state.status().initialized);
}

#[test]
fn initial_fetch_timeout_ends_warming_without_the_resource() {
    let mut h = Harness::new(false);
    h.state.on_connected(h.now);
    h.sotw(sotw(
        CDS,
        "1",
        "c1",
        vec![
            eds_cluster_with("a", "1s", ", initial_fetch_timeout: 2s"),
            eds_cluster_with("b", "1s", ", initial_fetch_timeout: 0s"),
        ],
    ));
    h.sotw(sotw(LDS, "1", "l1", vec![]));
    let step = h.advance(Duration::from_millis(1999));
    assert!(step.changes.is_empty());
    let step = h.advance(Duration::from_millis(1));
    assert_eq!(change_names(&step), ["+cluster a"], "b waits forever (0s)");
    assert_eq!(
        h.record(ResourceType::ClusterLoadAssignment, "a-eds")
            .status,
        ResourceStatus::Timeout
    );
    assert!(h.record(ResourceType::Cluster, "b").warming);
}

#[test]
fn does_not_exist_after_15s_on_a_connected_stream_and_not_rearmed_for_cached() {
    let mut h = Harness::new(false);
    h.state.on_connected(h.now);
    h.sotw(sotw(
        CDS,
        "1",
        "c1",
        vec![
            eds_cluster_with("a", "1s", ", initial_fetch_timeout: 0s"),
            eds_cluster_with("b", "1s", ", initial_fetch_timeout: 0s"),
        ],
    ));
    h.sotw(sotw(EDS, "1", "e1", vec![endpoints("a-eds", 1)]));
    h.advance(Duration::from_secs(14));
    assert_eq!(
        h.record(ResourceType::ClusterLoadAssignment, "b-eds")
            .status,
        ResourceStatus::Requested
    );
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.record(ResourceType::ClusterLoadAssignment, "b-eds")
            .status,
        ResourceStatus::DoesNotExist
    );
    assert_eq!(
        h.record(ResourceType::ClusterLoadAssignment, "a-eds")
            .status,
        ResourceStatus::Acked
    );

    // Reconnect: a-eds is cached, so no timer for it; none runs while disconnected.
    h.state.on_disconnected("gone".into());
    h.advance(Duration::from_secs(60));
    h.state.on_connected(h.now);
    h.advance(Duration::from_secs(16));
    assert_eq!(
        h.record(ResourceType::ClusterLoadAssignment, "a-eds")
            .status,
        ResourceStatus::Acked
    );
}

#[test]
fn reconnect_resends_the_last_accepted_version_without_a_nonce() {
    let mut h = Harness::new(false);
    h.state.on_connected(h.now);
    h.sotw(sotw(CDS, "7", "c1", vec![eds_cluster("a")]));
    h.sotw(sotw(EDS, "3", "e1", vec![endpoints("a-eds", 1)]));
    h.state.on_disconnected("gone".into());
    let step = h.state.on_connected(h.now);
    let requests = sotw_requests(&step);
    let kinds: Vec<(&str, &str, &str)> = requests
        .iter()
        .map(|r| {
            (
                r.type_url.as_str(),
                r.version_info.as_str(),
                r.response_nonce.as_str(),
            )
        })
        .collect();
    assert_eq!(kinds, [(CDS, "7", ""), (EDS, "3", ""), (LDS, "", "")]);
    assert_eq!(requests[1].resource_names, ["a-eds"]);
    assert!(
        step.changes.is_empty(),
        "the last good config keeps serving"
    );
}

#[test]
fn a_resent_rejected_version_is_nacked_with_growing_delay_not_in_a_loop() {
    let mut h = Harness::new(false);
    h.state.on_connected(h.now);
    // LDS answered, so the only timer left is the held-back NACK.
    h.sotw(sotw(LDS, "1", "l1", vec![]));
    let bad = || sotw(CDS, "2", "n", vec![eds_cluster_with("b", "0s", "")]);
    let first = h.sotw(bad());
    assert_eq!(
        sotw_requests(&first).len(),
        1,
        "the first NACK goes at once"
    );

    let mut delays = Vec::new();
    for _ in 0..8 {
        let step = h.sotw(bad());
        assert!(step.requests.is_empty(), "a repeat is not NACKed at once");
        let due = h.state.next_deadline().expect("a NACK is pending");
        let delay = due - h.now.instant;
        delays.push(delay.as_millis());
        let step = h.advance(delay);
        let nack = sotw_requests(&step);
        assert_eq!(nack.len(), 1);
        assert!(nack[0].error_detail.is_some());
    }
    assert_eq!(delays, [500, 1000, 2000, 4000, 5000, 5000, 5000, 5000]);

    // A different response is answered at once and resets the delay.
    let step = h.sotw(sotw(CDS, "3", "n3", vec![static_cluster("b")]));
    assert_eq!(sotw_requests(&step)[0].version_info, "3");
    assert!(
        h.state
            .next_deadline()
            .is_none_or(|d| d > h.now.instant + Duration::from_secs(1))
    );
}

#[test]
fn a_rejected_version_resent_in_another_order_is_still_a_repeat() {
    // go-control-plane builds each SotW response from a Go map: every re-send of the NACKed
    // version lists its resources in a new order.
    let mut h = Harness::new(false);
    h.state.on_connected(h.now);
    h.sotw(sotw(LDS, "1", "l1", vec![]));
    let bad: Vec<Any> = (0..20)
        .map(|i| eds_cluster_with(&format!("bad-{i}"), "0s", ""))
        .collect();
    let first = h.sotw(sotw(CDS, "2", "n0", bad.clone()));
    assert_eq!(
        sotw_requests(&first).len(),
        1,
        "the first NACK goes at once"
    );

    let mut delays = Vec::new();
    for round in 1..=5usize {
        let mut shuffled = bad.clone();
        shuffled.rotate_left(round * 7 % 20);
        shuffled.swap(0, round);
        let step = h.sotw(sotw(CDS, "2", &format!("n{round}"), shuffled));
        assert!(
            step.requests.is_empty(),
            "round {round}: the same set in a new order is NACKed at once"
        );
        let due = h.state.next_deadline().expect("a NACK is pending");
        delays.push((due - h.now.instant).as_millis());
        let step = h.advance(due - h.now.instant);
        let nack = sotw_requests(&step);
        assert_eq!(nack.len(), 1);
        assert_eq!(
            nack[0].response_nonce,
            format!("n{round}"),
            "the latest nonce"
        );
        assert_eq!(nack[0].version_info, "", "the last good version (none)");
        assert!(nack[0].error_detail.is_some());
    }
    assert_eq!(delays, [500, 1000, 2000, 4000, 5000]);

    // The same set with one resource named twice is a different response (rejected whole).
    let mut doubled = bad.clone();
    doubled.push(bad[3].clone());
    let step = h.sotw(sotw(CDS, "2", "n9", doubled));
    let nack = sotw_requests(&step);
    assert_eq!(nack.len(), 1, "answered at once");
    assert!(
        nack[0]
            .error_detail
            .as_ref()
            .is_some_and(|e| e.message.contains("duplicate"))
    );
}

#[test]
fn a_resent_rejected_delta_response_in_another_order_is_still_a_repeat() {
    let mut h = Harness::new(true);
    h.state.on_connected(h.now);
    h.delta(delta(LDS, "l1", vec![], &[]));
    let bad: Vec<(String, Any)> = (0..5)
        .map(|i| {
            let name = format!("bad-{i}");
            let any = eds_cluster_with(&name, "0s", "");
            (name, any)
        })
        .collect();
    let response = |nonce: &str, order: &[usize]| {
        delta(
            CDS,
            nonce,
            order
                .iter()
                .map(|&i| (bad[i].0.as_str(), "2", bad[i].1.clone()))
                .collect(),
            &[],
        )
    };
    let first = h.delta(response("n1", &[0, 1, 2, 3, 4]));
    assert_eq!(delta_requests(&first).len(), 1);
    let step = h.delta(response("n2", &[4, 2, 0, 3, 1]));
    assert!(step.requests.is_empty(), "held back");
    let due = h.state.next_deadline().expect("a NACK is pending");
    let step = h.advance(due - h.now.instant);
    assert_eq!(delta_requests(&step)[0].response_nonce, "n2");
}

#[test]
fn a_response_nothing_wants_still_gives_the_next_request_its_nonce() {
    // An empty snapshot removed every cluster, so EDS wants nothing; the server (which reads an
    // empty name list as a wildcard, as go-control-plane does) still answers with a new nonce.
    // The next EDS subscription must carry it, or that server ignores it as stale.
    let mut h = Harness::new(false);
    h.state.on_connected(h.now);
    h.sotw(sotw(CDS, "1", "c1", vec![eds_cluster("a")]));
    h.sotw(sotw(EDS, "1", "e1", vec![endpoints("a-eds", 8080)]));
    let step = h.sotw(sotw(CDS, "2", "c2", vec![]));
    let unsubscribe = sotw_requests(&step)
        .into_iter()
        .find(|r| r.type_url == EDS)
        .expect("EDS unsubscribed");
    assert!(unsubscribe.resource_names.is_empty());

    // Each is ACKed (so the server waits for a change), nothing is applied.
    let step = h.sotw(sotw(EDS, "2", "e2", vec![]));
    let ack = sotw_requests(&step);
    assert_eq!(ack.len(), 1);
    assert_eq!(
        (ack[0].version_info.as_str(), ack[0].response_nonce.as_str()),
        ("2", "e2")
    );
    assert!(ack[0].error_detail.is_none() && ack[0].resource_names.is_empty());
    let step = h.sotw(sotw(EDS, "2", "e3", vec![endpoints("other-eds", 1)]));
    assert!(step.changes.is_empty(), "nothing applied");
    assert_eq!(sotw_requests(&step)[0].response_nonce, "e3");

    let step = h.sotw(sotw(CDS, "3", "c3", vec![eds_cluster("a")]));
    let subscribe = sotw_requests(&step)
        .into_iter()
        .find(|r| r.type_url == EDS)
        .expect("EDS subscribed again");
    assert_eq!(subscribe.resource_names, ["a-eds"]);
    assert_eq!(subscribe.response_nonce, "e3", "the latest EDS nonce");
    assert!(subscribe.error_detail.is_none());
    let step = h.sotw(sotw(EDS, "3", "e4", vec![endpoints("a-eds", 8080)]));
    assert!(
        change_names(&step).contains(&"endpoints a-eds".to_string()),
        "{:?}",
        change_names(&step)
    );
}

#[test]
fn a_subscription_change_answers_a_held_back_nack_instead_of_a_second_request() {
    let mut h = Harness::new(false);
    h.state.on_connected(h.now);
    h.sotw(sotw(LDS, "1", "l1", vec![]));
    h.sotw(sotw(CDS, "1", "c1", vec![eds_cluster("a")]));
    let bad = |nonce: &str| sotw(EDS, "1", nonce, vec![endpoints("a-eds", 70000)]);
    h.sotw(bad("e1"));
    let step = h.sotw(bad("e2"));
    assert!(
        step.requests.is_empty(),
        "the repeat NACK is held back: {:?}",
        step.requests
    );
    // A new cluster changes the EDS names: that request carries the nonce and the error.
    let step = h.sotw(sotw(
        CDS,
        "2",
        "c2",
        vec![eds_cluster("a"), eds_cluster("b")],
    ));
    let eds: Vec<&DiscoveryRequest> = sotw_requests(&step)
        .into_iter()
        .filter(|r| r.type_url == EDS)
        .collect();
    assert_eq!(eds.len(), 1);
    assert_eq!(eds[0].response_nonce, "e2", "the latest nonce");
    assert!(eds[0].error_detail.is_some());
    assert!(
        h.state
            .next_deadline()
            .is_none_or(|d| d > h.now.instant + Duration::from_secs(10)),
        "no held-back NACK left to send"
    );
}

#[test]
fn a_rejected_response_sent_again_on_a_new_stream_is_nacked_with_its_reasons() {
    for delta_mode in [false, true] {
        let mut h = Harness::new(delta_mode);
        h.state.on_connected(h.now);
        let bad = |h: &mut Harness, nonce: &str| {
            if delta_mode {
                h.delta(delta(
                    CDS,
                    nonce,
                    vec![("b", "2", eds_cluster_with("b", "0s", ""))],
                    &[],
                ))
            } else {
                h.sotw(sotw(CDS, "2", nonce, vec![eds_cluster_with("b", "0s", "")]))
            }
        };
        bad(&mut h, "n1");
        h.state.on_disconnected("gone".into());
        h.state.on_connected(h.now);
        // go-control-plane sends the same version first thing on the new stream.
        let step = bad(&mut h, "m1");
        let nack = match &step.requests[..] {
            [Outbound::Sotw(r)] => (r.response_nonce.clone(), r.error_detail.clone()),
            [Outbound::Delta(r)] => (r.response_nonce.clone(), r.error_detail.clone()),
            other => panic!("delta {delta_mode}: expected one NACK at once, got {other:?}"),
        };
        assert_eq!(nack.0, "m1");
        assert!(
            nack.1
                .is_some_and(|e| e.message.contains("connect_timeout")),
            "delta {delta_mode}: the NACK carries its reasons"
        );
    }
}

#[test]
fn a_repeated_accepted_response_is_acked_without_republishing() {
    let mut h = Harness::new(false);
    h.state.on_connected(h.now);
    h.sotw(sotw(CDS, "1", "n1", vec![static_cluster("a")]));
    let step = h.sotw(sotw(CDS, "1", "n2", vec![static_cluster("a")]));
    assert!(step.changes.is_empty());
    assert_eq!(sotw_requests(&step)[0].response_nonce, "n2");
}

#[test]
fn delta_subscribe_ack_remove_and_initial_versions_on_reconnect() {
    let mut h = Harness::new(true);
    let step = h.state.on_connected(h.now);
    let requests = delta_requests(&step);
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.node.is_some()));
    assert!(
        requests
            .iter()
            .all(|r| r.resource_names_subscribe.is_empty()),
        "legacy wildcard"
    );

    let step = h.delta(delta(
        CDS,
        "c1",
        vec![
            ("a", "a1", eds_cluster("a")),
            ("b", "b1", eds_cluster_with("b", "0s", "")),
        ],
        &[],
    ));
    let requests = delta_requests(&step);
    assert_eq!(requests[0].response_nonce, "c1");
    assert!(
        requests[0]
            .error_detail
            .as_ref()
            .expect("b is invalid")
            .message
            .starts_with("b: ")
    );
    assert_eq!(requests[1].type_url, EDS);
    assert_eq!(requests[1].resource_names_subscribe, ["a-eds"]);
    assert!(
        requests[1].response_nonce.is_empty(),
        "a subscription change carries no nonce"
    );

    h.delta(delta(
        EDS,
        "e1",
        vec![("a-eds", "e1", endpoints("a-eds", 1))],
        &[],
    ));

    // Add cluster c, remove a: EDS subscribe/unsubscribe carry only the change.
    let step = h.delta(delta(
        CDS,
        "c2",
        vec![("c", "c1", eds_cluster("c"))],
        &["a"],
    ));
    assert_eq!(change_names(&step), ["-cluster a"]);
    let eds = delta_requests(&step)[1];
    assert_eq!(eds.resource_names_subscribe, ["c-eds"]);
    assert_eq!(eds.resource_names_unsubscribe, ["a-eds"]);

    // Reconnect: known versions go along, the NACKed b is not among them.
    h.state.on_disconnected("gone".into());
    let step = h.state.on_connected(h.now);
    let requests = delta_requests(&step);
    let cds = requests.iter().find(|r| r.type_url == CDS).expect("CDS");
    let known: Vec<(&String, &String)> = cds.initial_resource_versions.iter().collect();
    assert_eq!(known, [(&"c".to_string(), &"c1".to_string())]);
    let eds = requests.iter().find(|r| r.type_url == EDS).expect("EDS");
    assert_eq!(eds.resource_names_subscribe, ["c-eds"]);
}

#[test]
fn delta_removed_endpoints_empty_the_cluster_and_mark_does_not_exist() {
    let mut h = Harness::new(true);
    h.state.on_connected(h.now);
    h.delta(delta(CDS, "c1", vec![("a", "1", eds_cluster("a"))], &[]));
    h.delta(delta(
        EDS,
        "e1",
        vec![("a-eds", "1", endpoints("a-eds", 1))],
        &[],
    ));
    let step = h.delta(delta(EDS, "e2", vec![], &["a-eds"]));
    assert_eq!(change_names(&step), ["endpoints a-eds"]);
    assert_eq!(
        h.record(ResourceType::ClusterLoadAssignment, "a-eds")
            .status,
        ResourceStatus::DoesNotExist
    );
}

#[test]
fn readiness_counts_a_rejected_first_response_and_initial_fetch_timeouts() {
    let mut h = Harness::with_sources(
        false,
        ConfigSource {
            initial_fetch_timeout: Some(Duration::from_secs(5)),
        },
        ConfigSource {
            initial_fetch_timeout: Some(Duration::from_secs(5)),
        },
    );
    h.state.on_connected(h.now);
    h.sotw(sotw(CDS, "1", "c1", vec![eds_cluster_with("b", "0s", "")]));
    assert!(!h.state.status().initialized);
    h.advance(Duration::from_secs(5));
    assert!(
        h.state.status().initialized,
        "LDS timed out, CDS answered (even if rejected)"
    );
}

#[test]
fn a_changed_cluster_warming_keeps_the_live_version_in_its_record() {
    let mut h = Harness::new(false);
    h.state.on_connected(h.now);
    h.sotw(sotw(CDS, "1", "c1", vec![eds_cluster("a")]));
    h.sotw(sotw(EDS, "1", "e1", vec![endpoints("a-eds", 1)]));
    assert!(h.record(ResourceType::Cluster, "a").live.is_none());

    // Version 2 points at endpoints we do not have: it warms, version 1 keeps serving.
    let changed = eds_cluster_with("a", "1s", "").value;
    let mut proto = ClusterProto::decode(changed.as_slice()).expect("cluster");
    if let Some(eds) = proto.eds_cluster_config.as_mut() {
        eds.service_name = "a-eds-v2".into();
    }
    let step = h.sotw(sotw(CDS, "2", "c2", vec![pack(&proto)]));
    assert!(step.changes.is_empty(), "nothing changes for traffic yet");
    let record = h.record(ResourceType::Cluster, "a");
    assert!(record.warming);
    assert_eq!(record.version, "2");
    let live = record.live.expect("the live version is kept");
    assert_eq!(live.version, "1");
    assert_eq!(
        sotw_requests(&step)[1].resource_names,
        ["a-eds", "a-eds-v2"],
        "both warm and live need endpoints"
    );

    let step = h.sotw(sotw(
        EDS,
        "2",
        "e2",
        vec![endpoints("a-eds", 1), endpoints("a-eds-v2", 2)],
    ));
    assert_eq!(change_names(&step), ["+cluster a", "endpoints a-eds-v2"]);
    let requests = sotw_requests(&step);
    assert_eq!(
        requests.len(),
        1,
        "the ACK carries the smaller EDS subscription: no request with the old version"
    );
    assert_eq!(requests[0].resource_names, ["a-eds-v2"]);
    assert_eq!(
        (
            requests[0].version_info.as_str(),
            requests[0].response_nonce.as_str()
        ),
        ("2", "e2")
    );
    let record = h.record(ResourceType::Cluster, "a");
    assert!(!record.warming && record.live.is_none());
}

#[test]
fn a_listener_waits_for_the_clusters_its_routes_use_to_stop_warming() {
    let mut h = Harness::new(false);
    h.state.on_connected(h.now);
    h.sotw(sotw(
        CDS,
        "1",
        "c1",
        vec![eds_cluster_with("new", "1s", ", initial_fetch_timeout: 0s")],
    ));
    h.sotw(sotw(LDS, "1", "l1", vec![listener("l", "r")]));
    let step = h.sotw(sotw(RDS, "1", "r1", vec![routes("r", "new")]));
    assert_eq!(
        change_names(&step),
        ["+routes r"],
        "cluster `new` still warms"
    );
    assert!(h.record(ResourceType::Listener, "l").warming);

    let step = h.sotw(sotw(EDS, "1", "e1", vec![endpoints("new-eds", 1)]));
    assert_eq!(
        change_names(&step),
        ["+cluster new", "endpoints new-eds", "+listener l"],
        "the cluster and its endpoints go live before the listener, in one publication"
    );
    assert!(!h.record(ResourceType::Listener, "l").warming);

    // A route to a cluster nobody declared does not hold a listener back (Envoy answers 503).
    let step = h.sotw(sotw(
        LDS,
        "2",
        "l2",
        vec![listener("l", "r"), listener("m", "r2")],
    ));
    assert!(step.changes.is_empty());
    let step = h.sotw(sotw(
        RDS,
        "2",
        "r2",
        vec![routes("r", "new"), routes("r2", "typo")],
    ));
    assert_eq!(change_names(&step), ["+routes r2", "+listener m"]);
}

#[test]
fn a_new_health_checked_cluster_warms_until_its_first_round_of_checks() {
    let mut h = Harness::new(false);
    h.state.on_connected(h.now);
    let checked = {
        let yaml = "name: checked\ntype: STATIC\nconnect_timeout: 1s\nload_assignment: { cluster_name: checked, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9 } } } }] }] }\nhealth_checks: [{ timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} }]\n";
        pack(&outrider_envoy_json::from_yaml_str::<ClusterProto>(yaml).expect("test cluster"))
    };
    let step = h.sotw(sotw(CDS, "1", "c1", vec![checked]));
    // Live in the tables at once, so the health checker sees its hosts, but still warming.
    assert_eq!(change_names(&step), ["+cluster checked"]);
    assert!(h.record(ResourceType::Cluster, "checked").warming);
    assert_eq!(
        h.state.awaiting_health_checks().collect::<Vec<_>>(),
        ["checked"]
    );
    h.sotw(sotw(LDS, "1", "l1", vec![listener("l", "r")]));
    let step = h.sotw(sotw(RDS, "1", "r1", vec![routes("r", "checked")]));
    assert_eq!(change_names(&step), ["+routes r"], "the listener waits");
    assert!(!h.state.status().initialized);

    let now = h.now;
    let step = h.state.on_health_checked("checked", now);
    assert_eq!(change_names(&step), ["+listener l"]);
    assert!(!h.record(ResourceType::Cluster, "checked").warming);
    assert!(h.state.status().initialized);
    // Only once: a second report changes nothing.
    assert!(h.state.on_health_checked("checked", now).changes.is_empty());
}

#[test]
fn a_health_check_round_that_never_ends_stops_holding_listeners_after_15s() {
    let mut h = Harness::new(false);
    h.state.on_connected(h.now);
    let checked = {
        let yaml = "name: checked\ntype: STATIC\nconnect_timeout: 1s\nload_assignment: { cluster_name: checked, endpoints: [] }\nhealth_checks: [{ timeout: 1s, interval: 1s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {} }]\n";
        pack(&outrider_envoy_json::from_yaml_str::<ClusterProto>(yaml).expect("test cluster"))
    };
    h.sotw(sotw(CDS, "1", "c1", vec![checked]));
    h.sotw(sotw(LDS, "1", "l1", vec![listener("l", "r")]));
    h.sotw(sotw(RDS, "1", "r1", vec![routes("r", "checked")]));
    assert!(h.record(ResourceType::Listener, "l").warming);
    let step = h.advance(Duration::from_secs(15));
    assert!(change_names(&step).contains(&"+listener l".to_string()));
    assert!(!h.record(ResourceType::Cluster, "checked").warming);
}
