//! The real binary driven by the conformance management server, for data-plane tests: resource
//! builders (Envoy YAML in, protos out), a bootstrap that points at the server over ADS, and
//! helpers to find bound listeners and wait for applied versions through the admin interface.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
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

use super::{Running, TempDir, admin_address, get_json, temp_dir, wait_for};

/// A proto from Envoy YAML.
pub fn yaml<M: prost::Message + prost::Name + Default>(text: &str) -> M {
    outrider_envoy_json::from_yaml_str(text)
        .unwrap_or_else(|e| panic!("test resource: {e}\n{text}"))
}

/// An EDS cluster over ADS; `extra` is more YAML at the cluster's top level (one field per
/// line, no indentation), e.g. `lb_policy: RANDOM`.
pub fn cluster(name: &str, extra: &str) -> Cluster {
    yaml(&format!(
        "name: {name}\ntype: EDS\nconnect_timeout: 1s\neds_cluster_config: {{ eds_config: {{ ads: {{}} }} }}\n{extra}\n"
    ))
}

/// A cluster whose upstream connections speak HTTP/2 (prior knowledge), as gRPC needs.
pub fn http2_cluster(name: &str) -> Cluster {
    cluster(
        name,
        r#"typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    explicit_http_config: { http2_protocol_options: {} }"#,
    )
}

/// The endpoints of `name`, all with the default weight.
pub fn endpoints(name: &str, upstreams: &[SocketAddr]) -> ClusterLoadAssignment {
    let weighted: Vec<(SocketAddr, u32)> = upstreams.iter().map(|a| (*a, 1)).collect();
    weighted_endpoints(name, &weighted)
}

/// The endpoints of `name` with their `load_balancing_weight`s.
pub fn weighted_endpoints(name: &str, upstreams: &[(SocketAddr, u32)]) -> ClusterLoadAssignment {
    let lb: Vec<String> = upstreams
        .iter()
        .map(|(a, weight)| {
            format!(
                "{{ endpoint: {{ address: {{ socket_address: {{ address: '{}', port_value: {} }} }} }}, load_balancing_weight: {weight} }}",
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

/// An echo upstream called "backend" and a snapshot with its cluster and endpoint.
pub async fn backend_snapshot() -> (UpstreamServer, Snapshot) {
    let backend = UpstreamServer::start_local(UpstreamConfig::new("backend"))
        .await
        .expect("upstream");
    let snapshot = Snapshot::new("1")
        .with(cluster("backend", ""))
        .with(endpoints("backend", &[backend.addr()]));
    (backend, snapshot)
}

/// A backend upstream, listener `ingress` with every path routed to it (`route`: the route
/// action's YAML, e.g. `{ cluster: backend }`), the proxy on one worker, and the listener's
/// address. The upstream must live as long as the test.
pub async fn proxy_to_backend(test: &str, route: &str) -> (XdsProxy, SocketAddr, UpstreamServer) {
    proxy_to_backend_with(test, route, "1", "").await
}

/// [`proxy_to_backend`] on `workers` workers, with `bootstrap` appended to the bootstrap
/// (e.g. a `layered_runtime` block).
pub async fn proxy_to_backend_with(
    test: &str,
    route: &str,
    workers: &str,
    bootstrap: &str,
) -> (XdsProxy, SocketAddr, UpstreamServer) {
    let (backend, snapshot) = backend_snapshot().await;
    let snapshot = snapshot
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(&format!(
            "  - match: {{ prefix: / }}\n    route: {route}"
        )));
    let args = ["--concurrency", workers];
    let proxy = XdsProxy::start_with_bootstrap(test, snapshot, &args, bootstrap).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("ingress").await));
    (proxy, addr, backend)
}

/// An HTTP listener on 127.0.0.1:`port` (0 for any) whose routes come from RDS `routes`;
/// `hcm_extra` is more YAML for the HttpConnectionManager, indented by six spaces per line
/// (e.g. `"      use_remote_address: true"`).
pub fn http_listener(name: &str, port: u16, stat_prefix: &str, hcm_extra: &str) -> Listener {
    yaml(&format!(
        r#"
name: {name}
address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: {stat_prefix}
      rds: {{ route_config_name: routes, config_source: {{ ads: {{}} }} }}
      http_filters:
      - name: envoy.filters.http.router
        typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
{hcm_extra}
"#
    ))
}

/// A `tcp_proxy` listener on 127.0.0.1:0 to `cluster`.
pub fn tcp_listener(name: &str, cluster: &str) -> Listener {
    yaml(&format!(
        r#"
name: {name}
address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
filter_chains:
- filters:
  - name: envoy.filters.network.tcp_proxy
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
      stat_prefix: {name}
      cluster: {cluster}
"#
    ))
}

/// RDS `routes` with one catch-all virtual host; `routes` is the YAML list of its routes,
/// indented by two spaces (`"  - match: ..."`).
pub fn routes(routes: &str) -> RouteConfiguration {
    yaml(&format!(
        "name: routes\nvirtual_hosts:\n- name: all\n  domains: [\"*\"]\n  routes:\n{routes}\n"
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

/// The binary, its management server and its admin address. Dropping it kills the binary.
pub struct XdsProxy {
    pub server: ManagementServer,
    pub process: Running,
    pub admin: SocketAddr,
    /// Holds the bootstrap and logs; dropped (removed) after the process is killed.
    pub dir: TempDir,
}

impl XdsProxy {
    /// Serves `snapshot` from a new management server and starts the binary against it with
    /// `args` added (e.g. `["--concurrency", "1"]`).
    pub async fn start(test: &str, snapshot: Snapshot, args: &[&str]) -> XdsProxy {
        XdsProxy::start_with_bootstrap(test, snapshot, args, "").await
    }

    /// As `start`, with `extra` appended to the bootstrap: more top-level YAML (e.g. a
    /// `cluster_manager` block; the management server's static cluster is named `xds`).
    pub async fn start_with_bootstrap(
        test: &str,
        snapshot: Snapshot,
        args: &[&str],
        extra: &str,
    ) -> XdsProxy {
        XdsProxy::start_with(test, snapshot, args, |text| text + extra).await
    }

    /// As `start`, with the bootstrap's text changed by `edit` first.
    pub async fn start_with(
        test: &str,
        snapshot: Snapshot,
        args: &[&str],
        edit: impl FnOnce(String) -> String,
    ) -> XdsProxy {
        let server = ManagementServer::start(ServerOptions::default())
            .await
            .expect("management server");
        server.set_snapshot(snapshot);
        let dir = temp_dir(test);
        let bootstrap = dir.join("bootstrap.yaml");
        std::fs::write(
            &bootstrap,
            edit(BOOTSTRAP.replace("XDS_PORT", &server.addr().port().to_string())),
        )
        .expect("bootstrap");
        let admin_path = dir.join("admin");
        let mut all_args = vec![
            "-c".to_string(),
            bootstrap.to_str().expect("utf-8").to_string(),
            "--admin-address-path".to_string(),
            admin_path.to_str().expect("utf-8").to_string(),
        ];
        all_args.extend(args.iter().map(|a| a.to_string()));
        let all_args: Vec<&str> = all_args.iter().map(String::as_str).collect();
        let process = Running::start(env!("CARGO_BIN_EXE_outrider"), &all_args, &dir);
        let admin = {
            let path = admin_path.clone();
            let process_ref = &process;
            // Blocking poll of a file; short, and only at start-up.
            tokio::task::block_in_place(|| admin_address(&path, process_ref))
        };
        XdsProxy {
            server,
            process,
            admin,
            dir,
        }
    }

    /// The port listener `name` is bound to, waiting (up to 10 s) until it is.
    pub async fn listener_port(&self, name: &str) -> u16 {
        let admin = self.admin;
        let name = name.to_string();
        let port = tokio::task::spawn_blocking(move || {
            wait_for(Duration::from_secs(10), || {
                let listeners = get_json(admin, "/listeners?format=json")?;
                listeners["listener_statuses"]
                    .as_array()?
                    .iter()
                    .find(|l| l["name"] == name.as_str())?["local_address"]["socket_address"]
                    ["port_value"]
                    .as_u64()
            })
        })
        .await
        .expect("admin poll task");
        let port = port.unwrap_or_else(|| {
            panic!(
                "the listener never bound; stderr:\n{}",
                self.process.stderr()
            )
        });
        u16::try_from(port).expect("a port")
    }

    /// The value of stat `name` (a counter or gauge of `/stats`), if the proxy has it.
    pub async fn stat(&self, name: &str) -> Option<u64> {
        let (admin, name) = (self.admin, name.to_string());
        tokio::task::spawn_blocking(move || read_stat(admin, &name))
            .await
            .expect("admin task")
    }

    /// `stat` for a synchronous condition (`eventually`): a short blocking admin call.
    pub fn stat_blocking(&self, name: &str) -> Option<u64> {
        read_stat(self.admin, name)
    }

    /// Waits (up to 10 s) until the proxy has ACKed `version` of xDS type `kind` (`lds`, `cds`,
    /// `eds`, `rds`).
    pub async fn wait_for_version(&self, kind: &str, version: &str) {
        let admin = self.admin;
        let (kind_owned, version_owned) = (kind.to_string(), version.to_string());
        let seen = tokio::task::spawn_blocking(move || {
            wait_for(Duration::from_secs(10), || {
                let plane = get_json(admin, "/control_plane")?;
                (plane["types"][kind_owned.as_str()]["version_info"] == version_owned.as_str())
                    .then_some(())
            })
            .is_some()
        })
        .await
        .unwrap_or(false);
        assert!(
            seen,
            "{kind} version {version} never applied; stderr:\n{}",
            self.process.stderr()
        );
    }
}

/// The value of stat `name` from the admin interface at `admin`.
fn read_stat(admin: SocketAddr, name: &str) -> Option<u64> {
    let query = format!("/stats?filter=^{}$", name.replace('.', "%5C."));
    let (_, body) = super::http_get(admin, &query).ok()?;
    body.lines().find_map(|line| {
        let (stat, value) = line.split_once(": ")?;
        (stat == name).then(|| value.parse().ok())?
    })
}

pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// An HTTP/1.1 client with a connection pool.
pub fn http1_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An h2c (prior knowledge) client.
pub fn h2c_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// A response as a test sees it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The `x-upstream-name` of the upstream that answered (empty for local replies).
    pub fn upstream(&self) -> &str {
        self.header("x-upstream-name").unwrap_or("")
    }
}

/// `GET url` with `headers`, panicking on transport errors.
pub async fn get_with(client: &HttpClient, url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = hyper::Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Empty::new()).expect("request");
    let response = client
        .request(request)
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
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// `GET url`.
pub async fn get(client: &HttpClient, url: &str) -> Answer {
    get_with(client, url, &[]).await
}

/// How many answers each upstream gave.
pub fn tally<'a>(answers: impl IntoIterator<Item = &'a Answer>) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for answer in answers {
        *counts.entry(answer.upstream().to_string()).or_default() += 1;
    }
    counts
}

/// Waits, without blocking the runtime, until `condition` holds (checked every 10 ms), up to
/// `deadline`; returns whether it did.
pub async fn eventually(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A port on 127.0.0.1 where nothing listens (bound, then released), for connect failures.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

/// A TCP echo server on 127.0.0.1:0: writes back what it reads as it reads it, and closes its
/// side once the peer has closed its own. Counts the connections it accepted.
pub async fn tcp_echo_server() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let (mut reader, mut writer) = stream.into_split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
                let _ = writer.shutdown().await;
            });
        }
    });
    (addr, accepted)
}
