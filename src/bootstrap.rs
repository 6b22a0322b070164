//! Reading Envoy's `Bootstrap` (YAML or JSON) and checking it: every error names the file, the
//! field path and the reason, and is reported before anything starts.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::cluster::v3::Cluster as ClusterProto;
use envoy_types::pb::envoy::config::core::v3::api_config_source::ApiType;
use envoy_types::pb::envoy::config::core::v3::grpc_service::TargetSpecifier;
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::config::core::v3::{
    ApiConfigSource, GrpcService, Node, address, socket_address::PortSpecifier,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
};
use outrider_model::{Cluster, ConfigSource, Listener};
use outrider_report::ReportConfig;
use prost::Message;

/// The key of the upstream HTTP protocol options in `typed_extension_protocol_options`.
const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// A bootstrap that failed to load: which file, which field, why.
#[derive(Debug)]
pub struct BootstrapError {
    pub file: PathBuf,
    pub path: String,
    pub reason: String,
}

impl fmt::Display for BootstrapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.path, self.reason)
        }
    }
}

impl std::error::Error for BootstrapError {}

/// Command-line settings that override the bootstrap, as Envoy's flags do.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub service_node: Option<String>,
    pub service_cluster: Option<String>,
    pub delta: bool,
}

/// Where and how to reach the ADS server.
#[derive(Debug, Clone)]
pub struct AdsServer {
    /// The static cluster named by `ads_config.grpc_services[0].envoy_grpc.cluster_name`.
    pub cluster: String,
    /// `http://host:port` of its first endpoint.
    pub uri: String,
    pub connect_timeout: Duration,
    pub delta: bool,
    /// `ads_config.set_node_on_first_message_only` (default false: the node on every request).
    pub node_on_first_request_only: bool,
    pub lds: Option<ConfigSource>,
    pub cds: Option<ConfigSource>,
}

/// A bootstrap that passed every check.
#[derive(Debug, Clone)]
pub struct LoadedBootstrap {
    pub file: PathBuf,
    /// As read (shown by `/config_dump`), with the node as sent to the control plane.
    pub proto: Bootstrap,
    pub node: Node,
    pub admin_address: Option<SocketAddr>,
    /// `admin.allow_paths` (empty: every admin path).
    pub admin_allow_paths: Vec<outrider_model::StringMatcher>,
    pub static_clusters: Vec<Arc<Cluster>>,
    pub static_listeners: Vec<Arc<Listener>>,
    pub ads: Option<AdsServer>,
    /// Fields that are set but that we do not act on, by path (see `ignored.rs`).
    pub ignored: Vec<&'static str>,
    /// What to report to the control plane, and where (`cluster_manager`: outlier
    /// `event_service` and `event_log_path`, `load_stats_config`).
    pub report: ReportConfig,
    /// Whether 503s for want of an endpoint say why (runtime key
    /// `outrider.no_healthy_upstream_header`, default true).
    pub explain_no_healthy_upstream: bool,
    /// The overload manager's global downstream connection limit (see `overload.rs`).
    pub max_downstream_connections: Option<outrider_dataplane::GlobalConnectionLimit>,
    /// Per-listener connection limits by listener name (runtime keys, see `overload.rs`).
    pub listener_connection_limits: std::collections::BTreeMap<String, u64>,
    /// Request-body bytes kept for retries at once (runtime key
    /// `outrider.retry_buffer_budget_bytes`).
    pub retry_buffer_budget: u64,
}

/// Reads and checks a bootstrap file. YAML and JSON are both read by the YAML parser (JSON is
/// YAML), whatever the file is called.
pub fn load(file: &Path, overrides: &Overrides) -> Result<LoadedBootstrap, BootstrapError> {
    let error = |path: &str, reason: String| BootstrapError {
        file: file.to_path_buf(),
        path: path.to_string(),
        reason,
    };
    let text = std::fs::read_to_string(file).map_err(|e| error("", format!("cannot read: {e}")))?;
    let proto: Bootstrap = outrider_envoy_json::from_yaml_str(&text).map_err(|e| match e {
        outrider_envoy_json::JsonError::Field { path, reason } => error(&path, reason),
        other => error("", other.to_string()),
    })?;
    check(proto, overrides)
        .map_err(|(path, reason)| error(&path, reason))
        .map(|mut loaded| {
            loaded.file = file.to_path_buf();
            loaded
        })
}

/// Checks a parsed bootstrap; errors are (field path, reason).
pub fn check(
    mut proto: Bootstrap,
    overrides: &Overrides,
) -> Result<LoadedBootstrap, (String, String)> {
    let node = node(&proto, overrides);
    proto.node = Some(node.clone());

    let admin_address = match proto.admin.as_ref().and_then(|a| a.address.as_ref()) {
        None => None,
        Some(address) => {
            Some(socket_address(address).map_err(|reason| ("admin.address".to_string(), reason))?)
        }
    };

    let admin_allow_paths = proto
        .admin
        .iter()
        .flat_map(|a| a.allow_paths.iter().enumerate())
        .map(|(i, m)| {
            outrider_model::StringMatcher::from_proto(m)
                .map_err(|e| (format!("admin.allow_paths[{i}].{}", e.path), e.reason))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let statics = proto.static_resources.clone().unwrap_or_default();
    let mut static_clusters = Vec::with_capacity(statics.clusters.len());
    for (index, cluster) in statics.clusters.iter().enumerate() {
        let converted = Cluster::from_proto(cluster).map_err(|e| {
            (
                format!("static_resources.clusters[{index}].{}", e.path),
                e.reason,
            )
        })?;
        static_clusters.push(Arc::new(converted));
    }
    let mut static_listeners = Vec::with_capacity(statics.listeners.len());
    for (index, listener) in statics.listeners.iter().enumerate() {
        // Envoy names a static listener without a name with a random UUID.
        let named;
        let listener = if listener.name.is_empty() {
            named = envoy_types::pb::envoy::config::listener::v3::Listener {
                name: random_uuid(),
                ..listener.clone()
            };
            &named
        } else {
            listener
        };
        let converted = Listener::from_proto(listener).map_err(|e| {
            (
                format!("static_resources.listeners[{index}].{}", e.path),
                e.reason,
            )
        })?;
        static_listeners.push(Arc::new(converted));
    }

    let ads = match proto.dynamic_resources.as_ref() {
        None => None,
        Some(dynamic) => {
            let config_source = |source: &Option<_>, path: &str| -> Result<_, (String, String)> {
                source
                    .as_ref()
                    .map(|s| {
                        ConfigSource::from_proto(s)
                            .map_err(|e| (format!("dynamic_resources.{path}.{}", e.path), e.reason))
                    })
                    .transpose()
            };
            let lds = config_source(&dynamic.lds_config, "lds_config")?;
            let cds = config_source(&dynamic.cds_config, "cds_config")?;
            match &dynamic.ads_config {
                Some(ads_config) => Some(ads_server(
                    ads_config,
                    &statics.clusters,
                    overrides,
                    lds,
                    cds,
                )?),
                None if lds.is_some() || cds.is_some() => {
                    return Err((
                        "dynamic_resources.ads_config".into(),
                        "required: lds_config/cds_config use ads, so an ADS server must be configured"
                            .into(),
                    ));
                }
                None => None,
            }
        }
    };

    let report = report::report_config(&proto, &statics.clusters)?;
    unenforced::check(&proto)?;
    let max_downstream_connections = overload::downstream_connection_limit(&proto)?;
    let listener_connection_limits = overload::listener_connection_limits(&proto)?;
    let retry_buffer_budget =
        runtime_flags::runtime_count(&proto, runtime_flags::RETRY_BUFFER_BUDGET_BYTES)?
            .unwrap_or(outrider_dataplane::DEFAULT_RETRY_BUFFER_BUDGET);
    let ignored = ignored::ignored_fields(&proto);
    let explain_no_healthy_upstream =
        runtime_flags::runtime_bool(&proto, runtime_flags::NO_HEALTHY_UPSTREAM_HEADER)?
            .unwrap_or(true);
    Ok(LoadedBootstrap {
        file: PathBuf::new(),
        ignored,
        explain_no_healthy_upstream,
        max_downstream_connections,
        listener_connection_limits,
        retry_buffer_budget,
        report,
        proto,
        node,
        admin_address,
        admin_allow_paths,
        static_clusters,
        static_listeners,
        ads,
    })
}

/// A random UUID (version 4) in its usual text form.
fn random_uuid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The node as sent to the control plane: the bootstrap's, with the command line's overrides
/// and our user agent.
fn node(proto: &Bootstrap, overrides: &Overrides) -> Node {
    let mut node = proto.node.clone().unwrap_or_default();
    if let Some(id) = &overrides.service_node {
        node.id = id.clone();
    }
    if let Some(cluster) = &overrides.service_cluster {
        node.cluster = cluster.clone();
    }
    node.user_agent_name = "outrider".to_string();
    node.user_agent_version_type = Some(UserAgentVersionType::UserAgentVersion(
        env!("CARGO_PKG_VERSION").to_string(),
    ));
    node
}

fn ads_server(
    ads: &ApiConfigSource,
    clusters: &[ClusterProto],
    overrides: &Overrides,
    lds: Option<ConfigSource>,
    cds: Option<ConfigSource>,
) -> Result<AdsServer, (String, String)> {
    let at = |field: &str| format!("dynamic_resources.ads_config.{field}");
    let delta = match ApiType::try_from(ads.api_type) {
        Ok(ApiType::Grpc | ApiType::AggregatedGrpc) => overrides.delta,
        Ok(ApiType::DeltaGrpc | ApiType::AggregatedDeltaGrpc) => true,
        Ok(other) => {
            return Err((
                at("api_type"),
                format!(
                    "{} is not supported: use GRPC or DELTA_GRPC",
                    other.as_str_name()
                ),
            ));
        }
        Err(_) => return Err((at("api_type"), format!("unknown value {}", ads.api_type))),
    };
    let [service] = ads.grpc_services.as_slice() else {
        return Err((
            at("grpc_services"),
            format!(
                "exactly one gRPC service is supported, got {}",
                ads.grpc_services.len()
            ),
        ));
    };
    let (index, cluster) = grpc_static_cluster(service, clusters, &at("grpc_services[0]"), "ADS")?;
    let name = &cluster.name;
    let cluster_path = format!("static_resources.clusters[{index}]");
    let endpoint = cluster
        .load_assignment
        .as_ref()
        .and_then(|la| la.endpoints.first())
        .and_then(|locality| locality.lb_endpoints.first())
        .and_then(|lb| match &lb.host_identifier {
            Some(
                envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier::Endpoint(
                    e,
                ),
            ) => e.address.as_ref(),
            _ => None,
        });
    let Some(address) = endpoint else {
        return Err((
            format!("{cluster_path}.load_assignment"),
            "the ADS cluster needs an endpoint address".into(),
        ));
    };
    let (host, port) = host_port(address).map_err(|reason| {
        (
            format!("{cluster_path}.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address"),
            reason,
        )
    })?;
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let connect_timeout = cluster
        .connect_timeout
        .as_ref()
        .map(|d| {
            Duration::new(
                d.seconds.max(0).unsigned_abs(),
                d.nanos.max(0).unsigned_abs(),
            )
        })
        .unwrap_or(Duration::from_secs(5));
    Ok(AdsServer {
        cluster: name.clone(),
        uri: format!("http://{host}:{port}"),
        connect_timeout,
        delta,
        node_on_first_request_only: ads.set_node_on_first_message_only,
        lds,
        cds,
    })
}

/// The static cluster a gRPC service names (`envoy_grpc.cluster_name`), checked as one we can
/// reach it through: HTTP/2 and plaintext. `at` is the service's field path; `purpose` names the
/// service in errors (`ADS`, `load reporting`).
fn grpc_static_cluster<'a>(
    service: &GrpcService,
    clusters: &'a [ClusterProto],
    at: &str,
    purpose: &str,
) -> Result<(usize, &'a ClusterProto), (String, String)> {
    let envoy_grpc = match &service.target_specifier {
        Some(TargetSpecifier::EnvoyGrpc(envoy_grpc)) => envoy_grpc,
        Some(TargetSpecifier::GoogleGrpc(_)) => {
            return Err((
                format!("{at}.google_grpc"),
                "google_grpc is not supported: use envoy_grpc naming a static cluster".into(),
            ));
        }
        None => {
            return Err((
                at.to_string(),
                "required: envoy_grpc naming a static cluster".into(),
            ));
        }
    };
    let name = &envoy_grpc.cluster_name;
    let Some((index, cluster)) = clusters.iter().enumerate().find(|(_, c)| &c.name == name) else {
        return Err((
            format!("{at}.envoy_grpc.cluster_name"),
            format!("no static cluster named {name:?}"),
        ));
    };
    let cluster_path = format!("static_resources.clusters[{index}]");
    if !speaks_http2(cluster) {
        return Err((
            cluster_path,
            format!(
                "cluster {name:?} serves gRPC ({purpose}) so it must enable HTTP/2: set typed_extension_protocol_options.{HTTP_PROTOCOL_OPTIONS}.explicit_http_config.http2_protocol_options"
            ),
        ));
    }
    if cluster.transport_socket.is_some() {
        return Err((
            format!("{cluster_path}.transport_socket"),
            format!("TLS to the {purpose} server is not supported yet"),
        ));
    }
    Ok((index, cluster))
}

/// HTTP/2 upstream, declared either way Envoy accepts.
fn speaks_http2(cluster: &ClusterProto) -> bool {
    #[allow(deprecated)]
    let legacy = cluster.http2_protocol_options.is_some();
    let typed = cluster
        .typed_extension_protocol_options
        .get(HTTP_PROTOCOL_OPTIONS)
        .and_then(|any| HttpProtocolOptions::decode(any.value.as_slice()).ok())
        .and_then(|options| options.upstream_protocol_options)
        .is_some_and(|options| match options {
            UpstreamProtocolOptions::ExplicitHttpConfig(explicit) => matches!(
                explicit.protocol_config,
                Some(ProtocolConfig::Http2ProtocolOptions(_))
            ),
            UpstreamProtocolOptions::UseDownstreamProtocolConfig(_) => false,
            UpstreamProtocolOptions::AutoConfig(auto) => auto.http2_protocol_options.is_some(),
        });
    legacy || typed
}

fn host_port(
    address: &envoy_types::pb::envoy::config::core::v3::Address,
) -> Result<(String, u16), String> {
    let Some(address::Address::SocketAddress(socket)) = &address.address else {
        return Err("only socket_address is supported".into());
    };
    let port = match socket.port_specifier {
        Some(PortSpecifier::PortValue(port)) => {
            u16::try_from(port).map_err(|_| format!("port_value {port} is out of range"))?
        }
        _ => return Err("port_value is required".into()),
    };
    if socket.address.is_empty() {
        return Err("socket_address.address is required".into());
    }
    Ok((socket.address.clone(), port))
}

fn socket_address(
    address: &envoy_types::pb::envoy::config::core::v3::Address,
) -> Result<SocketAddr, String> {
    let (host, port) = host_port(address)?;
    let ip: std::net::IpAddr = host
        .parse()
        .map_err(|_| format!("socket_address.address must be an IP address, got {host:?}"))?;
    Ok(SocketAddr::new(ip, port))
}

mod ignored;
mod overload;
mod report;
pub mod runtime_flags;
#[cfg(test)]
mod tests;
mod unenforced;
