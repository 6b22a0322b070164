//! A real admin server on 127.0.0.1:0 over a hand-built bootstrap and xDS client status, and a
//! plain HTTP/1.1 client to talk to it.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use envoy_types::pb::envoy::admin::v3::CommandLineOptions;
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use outrider_admin::{AdminState, ServerInfoSource};
use outrider_xds::{ClientStatus, ResourceRecord, ResourceStatus, ResourceType, UpdateFailure};
use prost::{Message, Name};
use serde_json::json;
use tokio::sync::oneshot;

/// 2023-11-14T22:13:20Z
pub const T0: u64 = 1_700_000_000;

pub fn at(secs_after_t0: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + secs_after_t0)
}

pub fn pack<M: Message + Name>(msg: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: msg.encode_to_vec(),
    }
}

pub fn cluster(name: &str, connect_timeout: &str) -> Cluster {
    outrider_envoy_json::from_value(&json!({
        "name": name,
        "type": "EDS",
        "connect_timeout": connect_timeout,
        "eds_cluster_config": { "eds_config": { "ads": {} } },
    }))
    .unwrap()
}

pub fn listener_with_rds(name: &str, route_name: &str) -> Listener {
    outrider_envoy_json::from_value(&json!({
        "name": name,
        "address": { "socket_address": { "address": "0.0.0.0", "port_value": 15001 } },
        "filter_chains": [{ "filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "rds": { "route_config_name": route_name, "config_source": { "ads": {} } },
                "http_filters": [{
                    "name": "envoy.filters.http.router",
                    "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
                }]
            }
        }]}]
    }))
    .unwrap()
}

pub fn bootstrap() -> Bootstrap {
    outrider_envoy_json::from_yaml_str(
        r#"
node:
  id: sidecar~10.0.0.1~app-1.default~default.svc.cluster.local
  cluster: app
static_resources:
  listeners:
  - name: static_http
    address: { socket_address: { address: 127.0.0.1, port_value: 8080 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            name: local_route
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: / }
                route: { cluster: static_cluster }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: static_cluster
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9000 } } }
  - name: xds_cluster
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: xds_cluster
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 18000 } } }
  secrets:
  - name: server-cert
    tls_certificate:
      certificate_chain: { inline_string: CERT }
      private_key: { inline_string: TOP-SECRET-KEY }
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{ envoy_grpc: { cluster_name: xds_cluster } }]
  cds_config: { ads: {} }
  lds_config: { ads: {} }
"#,
    )
    .unwrap()
}

fn acked(version: &str, resource: Any, updated: SystemTime) -> ResourceRecord {
    ResourceRecord {
        status: ResourceStatus::Acked,
        version: version.into(),
        resource: Some(resource),
        last_updated: Some(updated),
        warming: false,
        live: None,
        error: None,
    }
}

/// A client that has accepted CDS "v2", LDS "v1", EDS "e1", RDS "r1", with:
/// - `cds_acked` (active), `cds_warming` (warming), `cds_nacked` (v1 active, v2 rejected),
///   `cds_never` (rejected, nothing accepted before);
/// - `lds_acked` (active), `lds_warming`, `lds_rejected` (rejected, nothing accepted);
/// - EDS `cds_acked`; RDS `rds_route` (acked) and `rds_requested` (no answer yet).
pub fn client_status(initialized: bool) -> ClientStatus {
    let mut clusters = BTreeMap::new();
    clusters.insert(
        "cds_acked".to_string(),
        acked("v2", pack(&cluster("cds_acked", "1s")), at(10)),
    );
    let mut warming = acked("v2", pack(&cluster("cds_warming", "1s")), at(10));
    warming.warming = true;
    clusters.insert("cds_warming".to_string(), warming);
    let mut nacked = acked("v1", pack(&cluster("cds_nacked", "1s")), at(5));
    nacked.status = ResourceStatus::Nacked;
    nacked.error = Some(UpdateFailure {
        failed: Some(pack(&cluster("cds_nacked", "0s"))),
        version: "v2".into(),
        reason: "cds_nacked: connect_timeout: must be > 0".into(),
        time: at(10),
    });
    clusters.insert("cds_nacked".to_string(), nacked);
    clusters.insert(
        "cds_never".to_string(),
        ResourceRecord {
            status: ResourceStatus::Nacked,
            error: Some(UpdateFailure {
                failed: None,
                version: "v2".into(),
                reason: "cds_never: type: unsupported".into(),
                time: at(10),
            }),
            ..ResourceRecord::requested()
        },
    );

    let mut endpoints = BTreeMap::new();
    let assignment: ClusterLoadAssignment = outrider_envoy_json::from_value(&json!({
        "cluster_name": "cds_acked",
        "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
            "socket_address": { "address": "10.0.0.7", "port_value": 8080 } } } }] }]
    }))
    .unwrap();
    endpoints.insert(
        "cds_acked".to_string(),
        acked("e1", pack(&assignment), at(11)),
    );

    let mut listeners = BTreeMap::new();
    listeners.insert(
        "lds_acked".to_string(),
        acked(
            "v1",
            pack(&listener_with_rds("lds_acked", "rds_route")),
            at(12),
        ),
    );
    let mut warming_listener = acked(
        "v1",
        pack(&listener_with_rds("lds_warming", "rds_requested")),
        at(12),
    );
    warming_listener.warming = true;
    listeners.insert("lds_warming".to_string(), warming_listener);
    listeners.insert(
        "lds_rejected".to_string(),
        ResourceRecord {
            status: ResourceStatus::Nacked,
            error: Some(UpdateFailure {
                failed: Some(pack(&listener_with_rds("lds_rejected", ""))),
                version: "v1".into(),
                reason: "lds_rejected: rds.route_config_name: must not be empty".into(),
                time: at(12),
            }),
            ..ResourceRecord::requested()
        },
    );

    let mut routes = BTreeMap::new();
    let route: RouteConfiguration = outrider_envoy_json::from_value(&json!({
        "name": "rds_route",
        "virtual_hosts": [{ "name": "vh", "domains": ["*"],
            "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": "cds_acked" } }] }]
    }))
    .unwrap();
    routes.insert("rds_route".to_string(), acked("r1", pack(&route), at(13)));
    routes.insert("rds_requested".to_string(), ResourceRecord::requested());

    let mut resources = BTreeMap::new();
    resources.insert(ResourceType::Cluster, clusters);
    resources.insert(ResourceType::ClusterLoadAssignment, endpoints);
    resources.insert(ResourceType::Listener, listeners);
    resources.insert(ResourceType::RouteConfiguration, routes);
    let mut type_versions = BTreeMap::new();
    type_versions.insert(ResourceType::Cluster, "v2".to_string());
    type_versions.insert(ResourceType::ClusterLoadAssignment, "e1".to_string());
    type_versions.insert(ResourceType::Listener, "v1".to_string());
    type_versions.insert(ResourceType::RouteConfiguration, "r1".to_string());
    ClientStatus {
        resources,
        type_versions,
        initialized,
        ..ClientStatus::default()
    }
}

pub fn admin_state(status: ClientStatus) -> AdminState {
    let bootstrap = bootstrap();
    let node = bootstrap.node.clone().unwrap_or_default();
    AdminState::new(
        Arc::new(bootstrap),
        Arc::new(ArcSwap::from_pointee(status)),
        ServerInfoSource {
            version: "outrider/0.1.0/test".into(),
            hot_restart_version: "disabled".into(),
            command_line_options: CommandLineOptions {
                concurrency: 2,
                config_path: "/etc/outrider/bootstrap.yaml".into(),
                ..Default::default()
            },
            started: at(0),
            node,
        },
    )
}

/// A server on the test's runtime; dropping it stops the server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: AdminState,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn start(status: ClientStatus) -> TestServer {
    let state = admin_state(status);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server_state = state.clone();
    tokio::spawn(async move {
        outrider_admin::serve(listener, server_state, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    TestServer {
        addr,
        state,
        stop: Some(stop),
    }
}

/// One HTTP/1.1 request on a fresh connection: status, content-type and body.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
) -> (u16, String, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = http::Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

pub async fn get(addr: SocketAddr, path_and_query: &str) -> (u16, String) {
    let (status, _, body) = request(addr, "GET", path_and_query).await;
    (status, body)
}

/// GET a JSON page, asserting 200.
pub async fn get_json(addr: SocketAddr, path_and_query: &str) -> serde_json::Value {
    let (status, content_type, body) = request(addr, "GET", path_and_query).await;
    assert_eq!(status, 200, "GET {path_and_query}: {body}");
    assert_eq!(content_type, "application/json");
    serde_json::from_str(&body).unwrap()
}

/// The `@type` of each config in a dump.
pub fn types(dump: &serde_json::Value) -> Vec<String> {
    dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["@type"].as_str().unwrap().to_string())
        .collect()
}

pub const ADMIN: &str = "type.googleapis.com/envoy.admin.v3.";
