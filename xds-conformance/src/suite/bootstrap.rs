//! The Envoy bootstrap each scenario hands its client: node, admin on 127.0.0.1:0, ADS (SotW or
//! delta) through a static HTTP/2 `xds_cluster` pointing at the scenario's server.
//!
//! It is plain Envoy JSON, so the same file starts Envoy itself.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};

use super::Mode;

/// The name of the static cluster that reaches the management server.
pub const XDS_CLUSTER: &str = "xds_cluster";

/// What varies between the bootstraps of the scenarios.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapSpec {
    /// `node.id`.
    pub node_id: String,
    /// `node.cluster`.
    pub node_cluster: String,
    /// `GRPC` or `DELTA_GRPC`.
    pub mode: Mode,
    /// The management server.
    pub xds_address: SocketAddr,
    /// `cds_config.initial_fetch_timeout` (unset: the client's default, 15 s in Envoy).
    pub cds_initial_fetch_timeout: Option<Duration>,
    /// `lds_config.initial_fetch_timeout`.
    pub lds_initial_fetch_timeout: Option<Duration>,
    /// `ads_config.set_node_on_first_message_only` (written only when true).
    pub node_on_first_message_only: bool,
    /// `cluster_manager`'s `outlier_detection.event_service` and `load_stats_config`, both
    /// through `xds_cluster` (the management server serves them beside ADS).
    pub reporting: bool,
}

impl BootstrapSpec {
    /// The bootstrap as an Envoy JSON document.
    pub fn to_value(&self) -> Value {
        let api_type = match self.mode {
            Mode::Sotw => "GRPC",
            Mode::Delta => "DELTA_GRPC",
        };
        let mut bootstrap = json!({
            "node": { "id": self.node_id, "cluster": self.node_cluster },
            "admin": {
                "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } }
            },
            "dynamic_resources": {
                "ads_config": {
                    "api_type": api_type,
                    "transport_api_version": "V3",
                    "grpc_services": [ { "envoy_grpc": { "cluster_name": XDS_CLUSTER } } ]
                },
                "cds_config": config_source(self.cds_initial_fetch_timeout),
                "lds_config": config_source(self.lds_initial_fetch_timeout)
            },
            "static_resources": {
                "clusters": [ xds_cluster(self.xds_address) ]
            }
        });
        if self.node_on_first_message_only {
            bootstrap["dynamic_resources"]["ads_config"]["set_node_on_first_message_only"] =
                Value::Bool(true);
        }
        if self.reporting {
            let service = json!({ "envoy_grpc": { "cluster_name": XDS_CLUSTER } });
            bootstrap["cluster_manager"] = json!({
                "outlier_detection": { "event_service": { "grpc_service": service } },
                "load_stats_config": {
                    "api_type": "GRPC",
                    "transport_api_version": "V3",
                    "grpc_services": [ service ]
                }
            });
        }
        bootstrap
    }

    /// The bootstrap as text (JSON, which is also YAML).
    pub fn to_text(&self) -> String {
        // Serialising a `Value` cannot fail: every key is a string.
        serde_json::to_string_pretty(&self.to_value()).unwrap_or_default()
    }
}

fn config_source(initial_fetch_timeout: Option<Duration>) -> Value {
    let mut source = json!({ "ads": {}, "resource_api_version": "V3" });
    if let Some(timeout) = initial_fetch_timeout {
        source["initial_fetch_timeout"] = Value::String(duration(timeout));
    }
    source
}

fn xds_cluster(address: SocketAddr) -> Value {
    json!({
        "name": XDS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} }
            }
        },
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [ { "lb_endpoints": [ { "endpoint": { "address": { "socket_address": {
                "address": address.ip().to_string(),
                "port_value": address.port()
            } } } } ] } ]
        }
    })
}

/// A duration in proto3 JSON (`"1.5s"`).
pub fn duration(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
    use envoy_types::pb::envoy::config::core::v3::api_config_source::ApiType;

    use super::*;

    fn spec(mode: Mode) -> BootstrapSpec {
        BootstrapSpec {
            node_id: "node-1".into(),
            node_cluster: "conformance".into(),
            mode,
            xds_address: "127.0.0.1:18000".parse().expect("address"),
            cds_initial_fetch_timeout: Some(Duration::from_millis(1500)),
            lds_initial_fetch_timeout: None,
            node_on_first_message_only: true,
            reporting: true,
        }
    }

    #[test]
    fn the_bootstrap_is_a_valid_envoy_bootstrap() {
        let bootstrap: Bootstrap =
            outrider_envoy_json::from_yaml_str(&spec(Mode::Delta).to_text()).expect("parses");
        assert_eq!(
            bootstrap.node.as_ref().map(|n| n.id.as_str()),
            Some("node-1")
        );
        let dynamic = bootstrap.dynamic_resources.expect("dynamic resources");
        let ads = dynamic.ads_config.expect("ads");
        assert_eq!(ads.api_type, ApiType::DeltaGrpc as i32);
        let cds = dynamic.cds_config.expect("cds");
        let timeout = cds.initial_fetch_timeout.expect("timeout");
        assert_eq!((timeout.seconds, timeout.nanos), (1, 500_000_000));
        assert!(
            dynamic
                .lds_config
                .expect("lds")
                .initial_fetch_timeout
                .is_none()
        );
        assert!(ads.set_node_on_first_message_only);
        let manager = bootstrap.cluster_manager.expect("cluster_manager");
        assert!(manager.load_stats_config.is_some());
        assert!(
            manager
                .outlier_detection
                .and_then(|o| o.event_service)
                .is_some()
        );
        let statics = bootstrap.static_resources.expect("static");
        assert_eq!(statics.clusters[0].name, XDS_CLUSTER);
        assert!(
            statics.clusters[0]
                .typed_extension_protocol_options
                .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
        );
    }

    #[test]
    fn sotw_asks_for_grpc() {
        assert_eq!(
            spec(Mode::Sotw).to_value()["dynamic_resources"]["ads_config"]["api_type"],
            "GRPC"
        );
        assert_eq!(duration(Duration::from_secs(1)), "1s");
    }
}
