//! The sections of `/config_dump`, built from the bootstrap and the xDS client's status as the
//! envoy-types `envoy.admin.v3.*ConfigDump` messages, in Envoy's order.
//!
//! Envoy's order is that of its config tracker's keys: `bootstrap`, `clusters`, `endpoint` (only
//! with `?include_eds`), `listeners`, `scoped_routes`, `routes`, `secrets`.

use std::time::SystemTime;

use envoy_types::pb::envoy::admin::v3::clusters_config_dump::{DynamicCluster, StaticCluster};
use envoy_types::pb::envoy::admin::v3::endpoints_config_dump::{
    DynamicEndpointConfig, StaticEndpointConfig,
};
use envoy_types::pb::envoy::admin::v3::listeners_config_dump::{
    DynamicListener, DynamicListenerState, StaticListener,
};
use envoy_types::pb::envoy::admin::v3::routes_config_dump::{
    DynamicRouteConfig, StaticRouteConfig,
};
use envoy_types::pb::envoy::admin::v3::secrets_config_dump::StaticSecret;
use envoy_types::pb::envoy::admin::v3::{
    BootstrapConfigDump, ClustersConfigDump, EndpointsConfigDump, ListenersConfigDump,
    RoutesConfigDump, ScopedRoutesConfigDump, SecretsConfigDump,
};
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use envoy_types::pb::google::protobuf::{Any, Timestamp};
use outrider_xds::{ClientStatus, ResourceRecord, ResourceType};
use prost::{Message, Name};
use regex::Regex;

use crate::xds_record::{client_status, last_updated, pack, printable_error_state, timestamp};

/// `?name_regex=`: Envoy matches the whole name (RE2 full match), and an empty pattern matches
/// everything.
#[derive(Debug, Clone, Default)]
pub(crate) struct NameFilter(Option<Regex>);

impl NameFilter {
    pub(crate) fn new(pattern: &str) -> Result<Self, regex::Error> {
        if pattern.is_empty() {
            return Ok(NameFilter(None));
        }
        Regex::new(&format!("^(?:{pattern})$")).map(|re| NameFilter(Some(re)))
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        self.0.as_ref().is_none_or(|re| re.is_match(name))
    }
}

/// What a dump is built from: one consistent snapshot of each input.
pub(crate) struct DumpInputs<'a> {
    pub bootstrap: &'a Bootstrap,
    pub status: &'a ClientStatus,
    /// When the bootstrap was loaded: the `last_updated` of everything static.
    pub started: SystemTime,
}

/// Every section of the dump, each packed as an `Any` of its `*ConfigDump` type.
pub(crate) fn sections(inputs: &DumpInputs<'_>, names: &NameFilter, include_eds: bool) -> Vec<Any> {
    let mut out = vec![pack(&bootstrap(inputs)), pack(&clusters(inputs, names))];
    // Envoy adds the endpoint section only when the cluster manager has active clusters.
    if include_eds && has_clusters(inputs) {
        out.push(pack(&endpoints(inputs, names)));
    }
    out.push(pack(&listeners(inputs, names)));
    out.push(pack(&ScopedRoutesConfigDump::default()));
    out.push(pack(&routes(inputs, names)));
    out.push(pack(&secrets(inputs, names)));
    out
}

fn bootstrap(inputs: &DumpInputs<'_>) -> BootstrapConfigDump {
    BootstrapConfigDump {
        bootstrap: Some(inputs.bootstrap.clone()),
        last_updated: Some(timestamp(inputs.started)),
    }
}

fn static_clusters<'a>(inputs: &DumpInputs<'a>) -> &'a [Cluster] {
    inputs
        .bootstrap
        .static_resources
        .as_ref()
        .map_or(&[], |resources| resources.clusters.as_slice())
}

fn has_clusters(inputs: &DumpInputs<'_>) -> bool {
    !static_clusters(inputs).is_empty()
        || inputs
            .status
            .records(ResourceType::Cluster)
            .any(|(_, record)| record.resource.is_some() && !record.warming)
}

/// The dynamic records worth showing: those with an accepted version or a rejection. A record
/// that is only requested (or does not exist) has nothing to dump; CSDS shows it.
fn shown_records<'a>(
    status: &'a ClientStatus,
    kind: ResourceType,
    names: &'a NameFilter,
) -> impl Iterator<Item = (&'a String, &'a ResourceRecord)> + 'a {
    status.records(kind).filter(move |(name, record)| {
        (record.resource.is_some() || record.error.is_some()) && names.matches(name)
    })
}

fn type_version(status: &ClientStatus, kind: ResourceType) -> String {
    status.type_versions.get(&kind).cloned().unwrap_or_default()
}

fn clusters(inputs: &DumpInputs<'_>, names: &NameFilter) -> ClustersConfigDump {
    let started = Some(timestamp(inputs.started));
    let static_clusters = static_clusters(inputs)
        .iter()
        .filter(|cluster| names.matches(&cluster.name))
        .map(|cluster| StaticCluster {
            cluster: Some(pack(cluster)),
            last_updated: started,
        })
        .collect();
    let mut active = Vec::new();
    let mut warming = Vec::new();
    for (_, record) in shown_records(inputs.status, ResourceType::Cluster, names) {
        let dynamic = DynamicCluster {
            version_info: record.version.clone(),
            cluster: record.resource.clone(),
            last_updated: last_updated(record),
            error_state: record.error.as_ref().map(printable_error_state),
            client_status: client_status(record.status) as i32,
        };
        // A cluster rejected before any version was accepted has no state of its own in
        // Envoy's dump; it is listed with the active ones (where operators look for errors)
        // with only its error_state and client_status.
        if record.warming && record.resource.is_some() {
            // An update warming while the previous version serves: both are shown.
            if let Some(live) = &record.live {
                active.push(DynamicCluster {
                    version_info: live.version.clone(),
                    cluster: Some(live.resource.clone()),
                    last_updated: live.last_updated.map(timestamp),
                    error_state: None,
                    client_status: client_status(record.status) as i32,
                });
            }
            warming.push(dynamic);
        } else {
            active.push(dynamic);
        }
    }
    ClustersConfigDump {
        version_info: type_version(inputs.status, ResourceType::Cluster),
        static_clusters,
        dynamic_active_clusters: active,
        dynamic_warming_clusters: warming,
    }
}

fn endpoints(inputs: &DumpInputs<'_>, names: &NameFilter) -> EndpointsConfigDump {
    let started = Some(timestamp(inputs.started));
    let static_endpoint_configs = static_clusters(inputs)
        .iter()
        .filter_map(|cluster| {
            let mut assignment = cluster.load_assignment.clone()?;
            // Envoy names a cluster's endpoints after its EDS service name, else the cluster.
            if assignment.cluster_name.is_empty() {
                assignment.cluster_name = cluster
                    .eds_cluster_config
                    .as_ref()
                    .map(|eds| eds.service_name.clone())
                    .filter(|name| !name.is_empty())
                    .unwrap_or_else(|| cluster.name.clone());
            }
            names
                .matches(&assignment.cluster_name)
                .then(|| StaticEndpointConfig {
                    endpoint_config: Some(pack(&assignment)),
                    last_updated: started,
                })
        })
        .collect();
    let dynamic_endpoint_configs =
        shown_records(inputs.status, ResourceType::ClusterLoadAssignment, names)
            .map(|(_, record)| DynamicEndpointConfig {
                version_info: record.version.clone(),
                endpoint_config: record.resource.clone(),
                last_updated: last_updated(record),
                error_state: record.error.as_ref().map(printable_error_state),
                client_status: client_status(record.status) as i32,
            })
            .collect();
    EndpointsConfigDump {
        static_endpoint_configs,
        dynamic_endpoint_configs,
    }
}

fn static_listeners<'a>(inputs: &DumpInputs<'a>) -> &'a [Listener] {
    inputs
        .bootstrap
        .static_resources
        .as_ref()
        .map_or(&[], |resources| resources.listeners.as_slice())
}

fn listeners(inputs: &DumpInputs<'_>, names: &NameFilter) -> ListenersConfigDump {
    let started = Some(timestamp(inputs.started));
    let static_listeners = static_listeners(inputs)
        .iter()
        .filter(|listener| names.matches(&listener.name))
        .map(|listener| StaticListener {
            listener: Some(pack(listener)),
            last_updated: started,
        })
        .collect();
    let dynamic_listeners = shown_records(inputs.status, ResourceType::Listener, names)
        .map(|(name, record)| {
            let state = record
                .resource
                .as_ref()
                .map(|listener| DynamicListenerState {
                    version_info: record.version.clone(),
                    listener: Some(listener.clone()),
                    last_updated: last_updated(record),
                });
            let (active_state, warming_state) = if record.warming {
                // An update warming while the previous version serves: both are shown.
                let live = record.live.as_ref().map(|live| DynamicListenerState {
                    version_info: live.version.clone(),
                    listener: Some(live.resource.clone()),
                    last_updated: live.last_updated.map(timestamp),
                });
                (live, state)
            } else {
                (state, None)
            };
            DynamicListener {
                name: name.clone(),
                active_state,
                warming_state,
                draining_state: None,
                error_state: record.error.as_ref().map(printable_error_state),
                client_status: client_status(record.status) as i32,
            }
        })
        .collect();
    ListenersConfigDump {
        version_info: type_version(inputs.status, ResourceType::Listener),
        static_listeners,
        dynamic_listeners,
    }
}

fn routes(inputs: &DumpInputs<'_>, names: &NameFilter) -> RoutesConfigDump {
    // Envoy lists route configurations written inline in an HTTP connection manager as static,
    // whether the listener is static or came from LDS.
    let started = timestamp(inputs.started);
    let mut static_route_configs = Vec::new();
    let mut add_inline = |listener: &Listener, updated: Option<Timestamp>| {
        for route_config in inline_route_configs(listener) {
            if names.matches(&route_config.name) {
                static_route_configs.push(StaticRouteConfig {
                    route_config: Some(pack(&route_config)),
                    last_updated: updated,
                });
            }
        }
    };
    for listener in static_listeners(inputs) {
        add_inline(listener, Some(started));
    }
    for (_, record) in inputs.status.records(ResourceType::Listener) {
        let decoded = record
            .resource
            .as_ref()
            .and_then(|any| Listener::decode(any.value.as_slice()).ok());
        if let Some(listener) = decoded {
            add_inline(&listener, last_updated(record));
        }
    }
    let dynamic_route_configs =
        shown_records(inputs.status, ResourceType::RouteConfiguration, names)
            .map(|(_, record)| DynamicRouteConfig {
                version_info: record.version.clone(),
                route_config: record.resource.clone(),
                last_updated: last_updated(record),
                error_state: record.error.as_ref().map(printable_error_state),
                client_status: client_status(record.status) as i32,
            })
            .collect();
    RoutesConfigDump {
        static_route_configs,
        dynamic_route_configs,
    }
}

/// The route configurations written inline in the listener's HTTP connection managers.
pub(crate) fn inline_route_configs(listener: &Listener) -> Vec<RouteConfiguration> {
    let hcm_type_url = HttpConnectionManager::type_url();
    listener
        .filter_chains
        .iter()
        .chain(listener.default_filter_chain.as_ref())
        .flat_map(|chain| chain.filters.iter())
        .filter_map(|network_filter| match &network_filter.config_type {
            Some(filter::ConfigType::TypedConfig(any)) if any.type_url == hcm_type_url => {
                HttpConnectionManager::decode(any.value.as_slice()).ok()
            }
            _ => None,
        })
        .filter_map(|hcm| match hcm.route_specifier {
            Some(RouteSpecifier::RouteConfig(route_config)) => Some(route_config),
            _ => None,
        })
        .collect()
}

fn secrets(inputs: &DumpInputs<'_>, names: &NameFilter) -> SecretsConfigDump {
    let started = Some(timestamp(inputs.started));
    let static_secrets = inputs
        .bootstrap
        .static_resources
        .as_ref()
        .map_or(&[][..], |resources| resources.secrets.as_slice())
        .iter()
        .filter(|secret| names.matches(&secret.name))
        .map(|secret| StaticSecret {
            name: secret.name.clone(),
            last_updated: started,
            // Private keys and passwords are redacted when the whole dump is printed.
            secret: Some(pack(secret)),
        })
        .collect();
    SecretsConfigDump {
        static_secrets,
        dynamic_active_secrets: Vec::new(),
        dynamic_warming_secrets: Vec::new(),
    }
}
