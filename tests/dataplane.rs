//! The data plane end to end: the real binary, configured by the conformance server, forwarding
//! to real upstream servers on 127.0.0.1. Routing, round-robin distribution, direct responses,
//! retries to another endpoint, `no healthy upstream` explained, and EDS/RDS updates under
//! continuous load with zero failed requests.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{Running, admin_address, get_json, temp_dir, wait_for};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use outrider_upstream_server::{UpstreamConfig, UpstreamServer};
use xds_conformance::{ManagementServer, ServerOptions, Snapshot};

fn yaml<M: prost::Message + prost::Name + Default>(text: &str) -> M {
    outrider_envoy_json::from_yaml_str(text).expect("test resource")
}

fn cluster(name: &str) -> Cluster {
    yaml(&format!(
        "name: {name}\ntype: EDS\nconnect_timeout: 1s\neds_cluster_config: {{ eds_config: {{ ads: {{}} }} }}\n"
    ))
}

fn endpoints(name: &str, upstreams: &[SocketAddr]) -> ClusterLoadAssignment {
    let lb: Vec<String> = upstreams
        .iter()
        .map(|a| {
            format!(
                "{{ endpoint: {{ address: {{ socket_address: {{ address: '{}', port_value: {} }} }} }} }}",
                a.ip(),
                a.port()
            )
        })
        .collect();
    yaml(&format!(
        "cluster_name: {name}\nendpoints: [{{ lb_endpoints: [{}] }}]\n",
        lb.join(", ")
    ))
}

fn listener() -> Listener {
    yaml(
        r#"
name: ingress
address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: ingress
      rds: { route_config_name: routes, config_source: { ads: {} } }
      http_filters:
      - name: envoy.filters.http.router
        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
"#,
    )
}

fn routes(backend: &str) -> RouteConfiguration {
    yaml(&format!(
        r#"
name: routes
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: {{ prefix: /direct }}
    direct_response: {{ status: 200, body: {{ inline_string: "direct" }} }}
  - match: {{ prefix: /empty }}
    route: {{ cluster: empty }}
  - match: {{ prefix: / }}
    route:
      cluster: {backend}
      retry_policy: {{ retry_on: "5xx,connect-failure", num_retries: 2 }}
"#
    ))
}

const BOOTSTRAP: &str = r#"
node: { id: dataplane-test, cluster: test }
admin: { address: { socket_address: { address: 127.0.0.1, port_value: 0 } } }
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{ envoy_grpc: { cluster_name: xds } }]
  cds_config: { ads: {} }
  lds_config: { ads: {} }
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    http2_protocol_options: {}
    load_assignment:
      cluster_name: xds
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: XDS_PORT } } } }] }]
"#;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

async fn get(client: &HttpClient, url: &str) -> (u16, BTreeMap<String, String>, String) {
    let response = client
        .get(url.parse().expect("url"))
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_balances_retries_and_follows_updates_without_dropping_requests() {
    let mut upstreams = Vec::new();
    for name in ["a", "b", "c", "d"] {
        upstreams.push(
            UpstreamServer::start_local(UpstreamConfig::new(name))
                .await
                .expect("upstream"),
        );
    }
    let addr = |i: usize| upstreams[i].addr();
    let server = ManagementServer::start(ServerOptions::default())
        .await
        .expect("management server");
    server.set_snapshot(
        Snapshot::new("1")
            .with(cluster("backend"))
            .with(cluster("empty"))
            .with(endpoints("backend", &[addr(0), addr(1), addr(2)]))
            .with(endpoints("empty", &[]))
            .with(listener())
            .with(routes("backend")),
    );

    let dir = temp_dir("dataplane");
    let bootstrap = dir.join("bootstrap.yaml");
    std::fs::write(
        &bootstrap,
        BOOTSTRAP.replace("XDS_PORT", &server.addr().port().to_string()),
    )
    .expect("bootstrap");
    let admin_path = dir.join("admin");
    let proxy = Running::start(
        env!("CARGO_BIN_EXE_outrider"),
        &[
            "-c",
            bootstrap.to_str().expect("utf-8"),
            "--admin-address-path",
            admin_path.to_str().expect("utf-8"),
            "--concurrency",
            "2",
        ],
        &dir,
    );
    let admin = admin_address(&admin_path, &proxy);
    let port = wait_for(Duration::from_secs(10), || {
        let listeners = get_json(admin, "/listeners?format=json")?;
        listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"].as_u64()
    })
    .unwrap_or_else(|| panic!("the listener never bound; stderr:\n{}", proxy.stderr()));
    let base = format!("http://127.0.0.1:{port}");
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    // Round robin: 30 requests spread evenly. Each worker balances on its own (exact rotation
    // from a random start), and the client's connections may land on either worker, so each
    // endpoint gets 10 give or take one per worker.
    let mut served: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..30 {
        let (status, headers, _) = get(&client, &format!("{base}/")).await;
        assert_eq!(status, 200);
        *served
            .entry(headers["x-upstream-name"].clone())
            .or_default() += 1;
    }
    assert_eq!(served.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert!(served.values().all(|n| (8..=12).contains(n)), "{served:?}");

    // Request headers the upstream sees.
    let (_, headers, body) = get(&client, &format!("{base}/echo")).await;
    assert!(headers.contains_key("x-envoy-upstream-service-time"));
    let echoed: serde_json::Value = serde_json::from_str(&body).expect("echo JSON");
    let sent: Vec<&str> = echoed["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .filter_map(|h| h[0].as_str())
        .collect();
    assert!(sent.contains(&"x-request-id"), "{sent:?}");
    assert!(sent.contains(&"x-forwarded-proto"), "{sent:?}");

    // A direct response.
    let (status, _, body) = get(&client, &format!("{base}/direct")).await;
    assert_eq!((status, body.as_str()), (200, "direct"));

    // No endpoint to pick: Envoy's 503 with the explanation header.
    let (status, headers, body) = get(&client, &format!("{base}/empty")).await;
    assert_eq!((status, body.as_str()), (503, "no healthy upstream"));
    let why = &headers["x-outrider-no-healthy-upstream"];
    assert!(why.starts_with("cluster empty: no endpoints"), "{why}");

    // A failing endpoint: every request still succeeds, retried on another endpoint.
    upstreams[0].set_failing(true);
    for _ in 0..12 {
        let (status, headers, _) = get(&client, &format!("{base}/")).await;
        assert_eq!(status, 200);
        assert_ne!(headers["x-upstream-name"], "a");
    }
    upstreams[0].set_failing(false);

    // Continuous load while endpoints and routes change: not one request may fail.
    let load = {
        let client = client.clone();
        let base = base.clone();
        tokio::spawn(async move {
            let mut failures = Vec::new();
            for i in 0..600 {
                let (status, _, _) = get(&client, &format!("{base}/load/{i}")).await;
                if status != 200 {
                    failures.push((i, status));
                }
            }
            failures
        })
    };
    for version in 2..12 {
        let set: Vec<SocketAddr> = if version % 2 == 0 {
            vec![addr(1), addr(2), addr(3)]
        } else {
            vec![addr(0), addr(3)]
        };
        server.update_snapshot(|snapshot| {
            snapshot.set_version(version.to_string());
            snapshot.insert(&endpoints("backend", &set));
            snapshot.insert(&routes("backend"));
        });
        let seen = wait_for_eds_version(admin, &version.to_string()).await;
        assert!(
            seen,
            "EDS version {version} never applied; stderr:\n{}",
            proxy.stderr()
        );
    }
    let failures = load.await.expect("load task");
    assert!(
        failures.is_empty(),
        "failed requests during updates: {failures:?}"
    );
}

/// Waits (polling the admin interface, with a deadline) until the proxy ACKed an EDS version.
async fn wait_for_eds_version(admin: SocketAddr, version: &str) -> bool {
    let version = version.to_string();
    tokio::task::spawn_blocking(move || {
        wait_for(Duration::from_secs(10), || {
            let plane = get_json(admin, "/control_plane")?;
            (plane["types"]["eds"]["version_info"] == version.as_str()).then_some(())
        })
        .is_some()
    })
    .await
    .unwrap_or(false)
}
