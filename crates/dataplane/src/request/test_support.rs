//! Configuration for the request path's table-driven tests, converted by the model exactly as
//! configuration from a control plane would be.

use std::sync::Arc;

use envoy_types::pb::envoy::config::listener::v3 as listener_pb;
use envoy_types::pb::envoy::config::route::v3 as route_pb;
use outrider_model::{HttpConnectionManager, Listener, NetworkFilter, RouteConfiguration};

/// The connection manager of a minimal listener; `extra` adds HCM fields (YAML at the HCM's
/// indentation, six spaces), `router` the router filter's fields.
pub(crate) fn hcm_with(extra: &str, router: &str) -> HttpConnectionManager {
    let yaml = format!(
        "name: l\naddress: {{ socket_address: {{ address: 127.0.0.1, port_value: 1 }} }}\nfilter_chains:\n- filters:\n  - name: hcm\n    typed_config:\n      '@type': type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n      stat_prefix: s\n      route_config: {{}}\n{extra}      http_filters:\n      - name: router\n        typed_config:\n          '@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n{router}"
    );
    let proto: listener_pb::Listener =
        outrider_envoy_json::from_yaml_str(&yaml).expect("valid listener YAML");
    let listener = Listener::from_proto(&proto).expect("valid listener");
    match &listener.filter_chains[0].filter {
        NetworkFilter::HttpConnectionManager(hcm) => (**hcm).clone(),
        NetworkFilter::TcpProxy(_) => panic!("an HTTP listener"),
    }
}

/// [`hcm_with`] with only HCM fields.
pub(crate) fn hcm(extra: &str) -> HttpConnectionManager {
    hcm_with(extra, "")
}

/// A route configuration with one virtual host `vh` for every domain, holding `routes`
/// (YAML list items at two spaces) and `vhost_extra` (virtual host fields at two spaces).
pub(crate) fn routes(vhost_extra: &str, routes: &str) -> Arc<RouteConfiguration> {
    let yaml =
        format!("virtual_hosts:\n- name: vh\n  domains: ['*']\n{vhost_extra}  routes:\n{routes}");
    let proto: route_pb::RouteConfiguration =
        outrider_envoy_json::from_yaml_str(&yaml).expect("valid route YAML");
    Arc::new(RouteConfiguration::from_proto(&proto).expect("valid route configuration"))
}
