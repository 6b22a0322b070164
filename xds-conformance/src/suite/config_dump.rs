//! Typed, read-only views over an Envoy `/config_dump` document (XDS-SPEC §3): dynamic clusters
//! (active and warming, with `version_info`, `error_state`, `client_status`), listeners (active,
//! warming, draining, error), route configurations and endpoints.
//!
//! Envoy prints proto3 JSON, which leaves default values out: a missing `version_info` is `""`
//! and a missing `client_status` is unknown. Only what the checks need is typed; the resource
//! itself stays JSON.

use std::fmt::Write as _;

use serde_json::Value;

const CLUSTERS: &str = "type.googleapis.com/envoy.admin.v3.ClustersConfigDump";
const ENDPOINTS: &str = "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump";
const LISTENERS: &str = "type.googleapis.com/envoy.admin.v3.ListenersConfigDump";
const ROUTES: &str = "type.googleapis.com/envoy.admin.v3.RoutesConfigDump";

/// A `/config_dump` that is not the expected shape.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// Not JSON.
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// No `configs` array.
    #[error("no \"configs\" array at the top level")]
    NoConfigs,
}

/// An `UpdateFailureState`: the last rejected update of a resource.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorState {
    /// Why it was rejected.
    pub details: String,
    /// The rejected version.
    pub version_info: String,
    /// The rejected resource, if the client shows it.
    pub failed_configuration: Option<Value>,
    /// When (RFC 3339), if shown.
    pub last_update_attempt: Option<String>,
}

/// A dynamic cluster, active or warming.
#[derive(Clone, Debug, PartialEq)]
pub struct DynamicCluster {
    /// The cluster's name (from the cluster, else from the rejected configuration).
    pub name: String,
    /// The version the cluster came with.
    pub version_info: String,
    /// The cluster in use (absent if only a rejection is known).
    pub cluster: Option<Value>,
    /// The last rejection.
    pub error_state: Option<ErrorState>,
    /// `client_status` by name, if shown.
    pub client_status: Option<String>,
    /// Listed in `dynamic_warming_clusters`.
    pub warming: bool,
}

impl DynamicCluster {
    /// A field of the cluster in use (`connect_timeout`).
    pub fn field(&self, key: &str) -> Option<&Value> {
        self.cluster.as_ref()?.get(key)
    }
}

/// One state (active, warming, draining) of a dynamic listener.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenerState {
    /// The version the listener came with.
    pub version_info: String,
    /// The listener.
    pub listener: Value,
}

/// A dynamic listener with its states.
#[derive(Clone, Debug, PartialEq)]
pub struct DynamicListener {
    /// The listener's name.
    pub name: String,
    /// Serving.
    pub active: Option<ListenerState>,
    /// Waiting for its dependencies.
    pub warming: Option<ListenerState>,
    /// Being drained.
    pub draining: Option<ListenerState>,
    /// The last rejection.
    pub error_state: Option<ErrorState>,
    /// `client_status` by name, if shown.
    pub client_status: Option<String>,
}

/// A dynamic route configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct DynamicRouteConfig {
    /// The route configuration's name.
    pub name: String,
    /// Its version.
    pub version_info: String,
    /// The route configuration.
    pub route_config: Value,
    /// `client_status` by name, if shown.
    pub client_status: Option<String>,
}

/// A dynamic endpoint configuration (a `ClusterLoadAssignment`).
#[derive(Clone, Debug, PartialEq)]
pub struct DynamicEndpointConfig {
    /// `cluster_name` of the assignment (the EDS service name).
    pub name: String,
    /// Its version.
    pub version_info: String,
    /// The assignment.
    pub endpoint_config: Value,
    /// `client_status` by name, if shown.
    pub client_status: Option<String>,
}

impl DynamicEndpointConfig {
    /// How many `lb_endpoints` it holds across localities.
    pub fn endpoint_count(&self) -> usize {
        array(&self.endpoint_config, "endpoints")
            .iter()
            .map(|locality| array(locality, "lb_endpoints").len())
            .sum()
    }
}

/// A parsed `/config_dump`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigDump {
    configs: Vec<Value>,
}

impl ConfigDump {
    /// Parses the JSON text of a dump.
    pub fn parse(text: &str) -> Result<ConfigDump, DumpError> {
        ConfigDump::from_value(serde_json::from_str(text)?)
    }

    /// Takes a dump's JSON value.
    pub fn from_value(value: Value) -> Result<ConfigDump, DumpError> {
        match value {
            Value::Object(mut top) => match top.remove("configs") {
                Some(Value::Array(configs)) => Ok(ConfigDump { configs }),
                _ => Err(DumpError::NoConfigs),
            },
            _ => Err(DumpError::NoConfigs),
        }
    }

    fn section(&self, type_url: &str) -> Option<&Value> {
        self.configs
            .iter()
            .find(|config| config.get("@type").and_then(Value::as_str) == Some(type_url))
    }

    /// `version_info` of the clusters section (the last accepted CDS version).
    pub fn clusters_version(&self) -> String {
        self.section(CLUSTERS)
            .map(|section| text(section, "version_info"))
            .unwrap_or_default()
    }

    /// `version_info` of the listeners section (the last accepted LDS version).
    pub fn listeners_version(&self) -> String {
        self.section(LISTENERS)
            .map(|section| text(section, "version_info"))
            .unwrap_or_default()
    }

    /// Names of the static clusters.
    pub fn static_cluster_names(&self) -> Vec<String> {
        let Some(section) = self.section(CLUSTERS) else {
            return Vec::new();
        };
        array(section, "static_clusters")
            .iter()
            .filter_map(|s| s.get("cluster"))
            .map(|c| text(c, "name"))
            .collect()
    }

    /// Every dynamic cluster, active ones first.
    pub fn dynamic_clusters(&self) -> Vec<DynamicCluster> {
        let Some(section) = self.section(CLUSTERS) else {
            return Vec::new();
        };
        let active = array(section, "dynamic_active_clusters")
            .iter()
            .map(|c| dynamic_cluster(c, false));
        let warming = array(section, "dynamic_warming_clusters")
            .iter()
            .map(|c| dynamic_cluster(c, true));
        active.chain(warming).collect()
    }

    /// The active cluster `name` (one that has a cluster in use, not only a rejection).
    pub fn active_cluster(&self, name: &str) -> Option<DynamicCluster> {
        self.dynamic_clusters()
            .into_iter()
            .find(|c| !c.warming && c.name == name && c.cluster.is_some())
    }

    /// The warming cluster `name`.
    pub fn warming_cluster(&self, name: &str) -> Option<DynamicCluster> {
        self.dynamic_clusters()
            .into_iter()
            .find(|c| c.warming && c.name == name)
    }

    /// Whether `name` is listed anywhere among the dynamic clusters with a cluster in use.
    pub fn has_cluster(&self, name: &str) -> bool {
        self.dynamic_clusters()
            .iter()
            .any(|c| c.name == name && c.cluster.is_some())
    }

    /// Every dynamic listener.
    pub fn dynamic_listeners(&self) -> Vec<DynamicListener> {
        let Some(section) = self.section(LISTENERS) else {
            return Vec::new();
        };
        array(section, "dynamic_listeners")
            .iter()
            .map(|l| DynamicListener {
                name: text(l, "name"),
                active: listener_state(l.get("active_state")),
                warming: listener_state(l.get("warming_state")),
                draining: listener_state(l.get("draining_state")),
                error_state: error_state(l.get("error_state")),
                client_status: l
                    .get("client_status")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            })
            .collect()
    }

    /// The dynamic listener `name`, whatever its state.
    pub fn listener(&self, name: &str) -> Option<DynamicListener> {
        self.dynamic_listeners()
            .into_iter()
            .find(|l| l.name == name)
    }

    /// Whether the listener `name` has an active state.
    pub fn listener_active(&self, name: &str) -> bool {
        self.listener(name).is_some_and(|l| l.active.is_some())
    }

    /// Every dynamic route configuration.
    pub fn dynamic_route_configs(&self) -> Vec<DynamicRouteConfig> {
        let Some(section) = self.section(ROUTES) else {
            return Vec::new();
        };
        array(section, "dynamic_route_configs")
            .iter()
            .filter_map(|r| {
                let route_config = r.get("route_config")?.clone();
                Some(DynamicRouteConfig {
                    name: text(&route_config, "name"),
                    version_info: text(r, "version_info"),
                    route_config,
                    client_status: r
                        .get("client_status")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                })
            })
            .collect()
    }

    /// The dynamic route configuration `name`.
    pub fn route_config(&self, name: &str) -> Option<DynamicRouteConfig> {
        self.dynamic_route_configs()
            .into_iter()
            .find(|r| r.name == name)
    }

    /// Whether the dump has an endpoints section (only with `?include_eds`).
    pub fn has_endpoints_section(&self) -> bool {
        self.section(ENDPOINTS).is_some()
    }

    /// Every dynamic endpoint configuration (only with `?include_eds`).
    pub fn dynamic_endpoint_configs(&self) -> Vec<DynamicEndpointConfig> {
        let Some(section) = self.section(ENDPOINTS) else {
            return Vec::new();
        };
        array(section, "dynamic_endpoint_configs")
            .iter()
            .map(|e| {
                let endpoint_config = e.get("endpoint_config").cloned().unwrap_or(Value::Null);
                DynamicEndpointConfig {
                    name: text(&endpoint_config, "cluster_name"),
                    version_info: text(e, "version_info"),
                    endpoint_config,
                    client_status: e
                        .get("client_status")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                }
            })
            .collect()
    }

    /// The dynamic endpoint configuration of EDS name `name`.
    pub fn endpoint_config(&self, name: &str) -> Option<DynamicEndpointConfig> {
        self.dynamic_endpoint_configs()
            .into_iter()
            .find(|e| e.name == name)
    }

    /// One line per section of what is dynamic, for failure messages:
    /// `clusters v1: active [a@v1, b@v1 (error: …)] warming [c@v2]; listeners …`.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let clusters = self.dynamic_clusters();
        let list = |warming: bool| -> Vec<String> {
            clusters
                .iter()
                .filter(|c| c.warming == warming)
                .map(|c| {
                    let mut item = format!("{}@{}", c.name, c.version_info);
                    if c.cluster.is_none() {
                        item.push_str(" (no accepted version)");
                    }
                    if let Some(e) = &c.error_state {
                        let _ = write!(
                            item,
                            " (error: {})",
                            super::admin::first_chars(&e.details, 120)
                        );
                    }
                    item
                })
                .collect()
        };
        let _ = write!(
            out,
            "clusters {:?}: active [{}] warming [{}]",
            self.clusters_version(),
            list(false).join(", "),
            list(true).join(", ")
        );
        let listeners: Vec<String> = self
            .dynamic_listeners()
            .iter()
            .map(|l| {
                let mut states = Vec::new();
                if let Some(s) = &l.active {
                    states.push(format!("active@{}", s.version_info));
                }
                if let Some(s) = &l.warming {
                    states.push(format!("warming@{}", s.version_info));
                }
                if let Some(s) = &l.draining {
                    states.push(format!("draining@{}", s.version_info));
                }
                if l.error_state.is_some() {
                    states.push("error".to_string());
                }
                format!("{} {}", l.name, states.join("+"))
            })
            .collect();
        let _ = write!(
            out,
            "; listeners {:?}: [{}]",
            self.listeners_version(),
            listeners.join(", ")
        );
        let routes: Vec<String> = self
            .dynamic_route_configs()
            .iter()
            .map(|r| format!("{}@{}", r.name, r.version_info))
            .collect();
        let _ = write!(out, "; routes [{}]", routes.join(", "));
        if self.has_endpoints_section() {
            let endpoints: Vec<String> = self
                .dynamic_endpoint_configs()
                .iter()
                .map(|e| format!("{}({})@{}", e.name, e.endpoint_count(), e.version_info))
                .collect();
            let _ = write!(out, "; endpoints [{}]", endpoints.join(", "));
        }
        out
    }
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn error_state(value: Option<&Value>) -> Option<ErrorState> {
    let value = value?;
    Some(ErrorState {
        details: text(value, "details"),
        version_info: text(value, "version_info"),
        failed_configuration: value.get("failed_configuration").cloned(),
        last_update_attempt: value
            .get("last_update_attempt")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

fn dynamic_cluster(value: &Value, warming: bool) -> DynamicCluster {
    let cluster = value.get("cluster").cloned();
    let error_state = error_state(value.get("error_state"));
    let name = cluster
        .as_ref()
        .map(|c| text(c, "name"))
        .or_else(|| {
            error_state
                .as_ref()
                .and_then(|e| e.failed_configuration.as_ref())
                .map(|c| text(c, "name"))
        })
        .unwrap_or_default();
    DynamicCluster {
        name,
        version_info: text(value, "version_info"),
        cluster,
        error_state,
        client_status: value
            .get("client_status")
            .and_then(Value::as_str)
            .map(str::to_string),
        warming,
    }
}

fn listener_state(value: Option<&Value>) -> Option<ListenerState> {
    let value = value?;
    Some(ListenerState {
        version_info: text(value, "version_info"),
        listener: value.get("listener").cloned().unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> ConfigDump {
        ConfigDump::from_value(json!({ "configs": [
            { "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump" },
            {
                "@type": CLUSTERS,
                "version_info": "v1",
                "static_clusters": [ { "cluster": { "name": "xds_cluster" } } ],
                "dynamic_active_clusters": [
                    { "version_info": "v1", "cluster": { "name": "a", "connect_timeout": "1s" } },
                    {
                        "version_info": "v1",
                        "cluster": { "name": "b", "connect_timeout": "1s" },
                        "error_state": {
                            "failed_configuration": { "name": "b", "connect_timeout": "0s" },
                            "details": "b: connect_timeout: must be > 0",
                            "version_info": "v2"
                        },
                        "client_status": "NACKED"
                    }
                ],
                "dynamic_warming_clusters": [ { "version_info": "v2", "cluster": { "name": "c" } } ]
            },
            {
                "@type": ENDPOINTS,
                "dynamic_endpoint_configs": [ { "version_info": "v1", "endpoint_config": {
                    "cluster_name": "a",
                    "endpoints": [ { "lb_endpoints": [ {}, {} ] }, { "lb_endpoints": [ {} ] } ]
                } } ]
            },
            {
                "@type": LISTENERS,
                "version_info": "v1",
                "dynamic_listeners": [
                    { "name": "l1", "active_state": { "version_info": "v1", "listener": { "name": "l1" } } },
                    { "name": "l2", "warming_state": { "version_info": "v2", "listener": { "name": "l2" } } }
                ]
            },
            {
                "@type": ROUTES,
                "dynamic_route_configs": [ { "version_info": "v1", "route_config": { "name": "r1" } } ]
            }
        ] }))
        .expect("shape")
    }

    #[test]
    fn clusters_are_read_with_state_and_errors() {
        let dump = sample();
        assert_eq!(dump.clusters_version(), "v1");
        assert_eq!(dump.static_cluster_names(), ["xds_cluster"]);
        let b = dump.active_cluster("b").expect("b active");
        assert_eq!(b.field("connect_timeout"), Some(&json!("1s")));
        let error = b.error_state.expect("error");
        assert!(error.details.contains("connect_timeout"));
        assert_eq!(error.version_info, "v2");
        assert_eq!(
            error.failed_configuration.expect("failed")["connect_timeout"],
            "0s"
        );
        assert_eq!(b.client_status.as_deref(), Some("NACKED"));
        assert!(dump.active_cluster("c").is_none());
        assert!(dump.warming_cluster("c").is_some());
        assert!(dump.has_cluster("c"));
    }

    #[test]
    fn listeners_routes_and_endpoints() {
        let dump = sample();
        assert!(dump.listener_active("l1"));
        let l2 = dump.listener("l2").expect("l2");
        assert!(l2.active.is_none() && l2.warming.is_some());
        assert_eq!(dump.route_config("r1").expect("r1").version_info, "v1");
        assert!(dump.has_endpoints_section());
        assert_eq!(dump.endpoint_config("a").expect("a").endpoint_count(), 3);
        assert!(dump.endpoint_config("b").is_none());
    }

    #[test]
    fn the_summary_names_everything_dynamic() {
        let summary = sample().summary();
        assert!(
            summary.contains("active [a@v1, b@v1 (error: b: connect_timeout"),
            "{summary}"
        );
        assert!(summary.contains("warming [c@v2]"), "{summary}");
        assert!(summary.contains("l1 active@v1, l2 warming@v2"), "{summary}");
        assert!(summary.contains("routes [r1@v1]"), "{summary}");
        assert!(summary.contains("endpoints [a(3)@v1]"), "{summary}");
    }

    #[test]
    fn missing_sections_read_as_empty() {
        let dump = ConfigDump::parse(r#"{"configs":[]}"#).expect("parses");
        assert!(dump.dynamic_clusters().is_empty());
        assert!(dump.dynamic_listeners().is_empty());
        assert_eq!(dump.clusters_version(), "");
        assert!(ConfigDump::parse("[]").is_err());
        assert!(ConfigDump::parse("nope").is_err());
    }
}
