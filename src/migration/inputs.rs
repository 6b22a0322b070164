//! What `outrider validate` reads: a bootstrap, one xDS resource (with its `@type`), a
//! directory of them, or an Envoy `/config_dump`; each becomes documents, each with the check
//! Outrider applies to it (the bootstrap's, or the model's conversion of the resource).

use std::path::Path;

use envoy_types::pb::envoy::admin::v3::{
    BootstrapConfigDump, ClustersConfigDump, ConfigDump, EndpointsConfigDump, ListenersConfigDump,
    RoutesConfigDump,
};
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::google::protobuf::Any;
use outrider_envoy_json::{JsonError, descriptor, from_value, to_value, upper_case_enums};
use outrider_model::{
    Cluster, ClusterLoadAssignment, Listener, RouteConfiguration, ValidationError,
};
use prost::{Message, Name};
use prost_reflect::MessageDescriptor;
use serde_json::Value;

use crate::bootstrap::{self, Overrides};

/// Accepted: the exact paths of ignored fields, with why. Refused: a field path and why.
type Checked = Result<Vec<(String, String)>, (String, String)>;

/// One thing to report on.
pub(super) struct Document {
    pub label: String,
    pub message: MessageDescriptor,
    /// Envoy's canonical JSON of it (defaults left out).
    pub value: Value,
    pub check: Box<dyn Fn(&Value) -> Checked>,
}

/// Why the bootstrap sections Outrider does not act on are harmless.
const BOOTSTRAP_IGNORED: &str = "a bootstrap section that changes neither the configuration \
    Outrider takes nor how it serves requests (stats, watchdogs, tracing without an HTTP \
    tracer, …)";

/// The documents in `source`.
pub(super) fn documents(source: &Path, overrides: &Overrides) -> Result<Vec<Document>, String> {
    if source.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(source)
            .map_err(|e| format!("{}: {e}", source.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| {
                path.extension()
                    .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
            })
            .collect();
        files.sort();
        let mut documents = Vec::new();
        for file in files {
            documents.extend(file_documents(&file, overrides)?);
        }
        return Ok(documents);
    }
    file_documents(source, overrides)
}

fn file_documents(file: &Path, overrides: &Overrides) -> Result<Vec<Document>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let value =
        outrider_envoy_json::yaml_value(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let name = file.display().to_string();
    if value.get("configs").is_some() {
        return Ok(match parse::<ConfigDump>(value) {
            Ok(dump) => dump_documents(&dump, overrides),
            Err(e) => vec![unreadable(&name, e)],
        });
    }
    if let Some(type_url) = value.get("@type").and_then(Value::as_str) {
        let type_name = type_url.rsplit('/').next().unwrap_or(type_url).to_string();
        let mut value = value;
        if let Value::Object(map) = &mut value {
            map.remove("@type");
        }
        return Ok(vec![resource_from_value(&type_name, value, &name)]);
    }
    Ok(vec![match parse::<Bootstrap>(value) {
        Ok(proto) => bootstrap_document("bootstrap", &proto, overrides),
        Err(e) => unreadable("bootstrap", e),
    }])
}

/// `value` as message `M`, as Envoy's loader reads it (enum names in any case).
fn parse<M: Message + Name + Default>(mut value: Value) -> Result<M, JsonError> {
    upper_case_enums(&descriptor(&M::full_name())?, &mut value);
    from_value(&value)
}

fn field_error(e: JsonError) -> (String, String) {
    match e {
        JsonError::Field { path, reason } => (path, reason),
        other => (String::new(), other.to_string()),
    }
}

fn bootstrap_document(label: &str, proto: &Bootstrap, overrides: &Overrides) -> Document {
    let overrides = overrides.clone();
    match to_value(proto) {
        Ok(value) => Document {
            label: label.to_string(),
            message: message_of::<Bootstrap>(),
            value,
            check: Box::new(move |value| {
                let proto: Bootstrap = from_value(value).map_err(field_error)?;
                let loaded = bootstrap::check(proto, &overrides)?;
                Ok(loaded
                    .ignored
                    .iter()
                    .map(|path| (path.to_string(), BOOTSTRAP_IGNORED.to_string()))
                    .collect())
            }),
        },
        Err(e) => unreadable(label, e),
    }
}

/// A resource given as JSON of type `type_name`.
fn resource_from_value(type_name: &str, value: Value, file: &str) -> Document {
    fn typed<M: Message + Name + Default + 'static, T: 'static>(
        value: Value,
        file: &str,
        convert: fn(&M) -> Result<T, ValidationError>,
    ) -> Document {
        match parse::<M>(value) {
            Ok(proto) => resource(&proto, convert),
            Err(e) => unreadable(file, e),
        }
    }
    match type_name {
        "envoy.config.listener.v3.Listener" => typed(value, file, Listener::from_proto),
        "envoy.config.cluster.v3.Cluster" => typed(value, file, Cluster::from_proto),
        "envoy.config.route.v3.RouteConfiguration" => {
            typed(value, file, RouteConfiguration::from_proto)
        }
        "envoy.config.endpoint.v3.ClusterLoadAssignment" => {
            typed(value, file, ClusterLoadAssignment::from_proto)
        }
        "envoy.config.bootstrap.v3.Bootstrap" => match parse::<Bootstrap>(value) {
            Ok(proto) => bootstrap_document(file, &proto, &Overrides::default()),
            Err(e) => unreadable(file, e),
        },
        other => unsupported(file, other),
    }
}

/// A resource the model converts with `convert`.
fn resource<M: Message + Name + Default + 'static, T: 'static>(
    proto: &M,
    convert: fn(&M) -> Result<T, ValidationError>,
) -> Document {
    let short = M::NAME;
    match to_value(proto) {
        Ok(value) => {
            let name = value
                .get("name")
                .or_else(|| value.get("cluster_name"))
                .and_then(Value::as_str)
                .unwrap_or("(no name)");
            Document {
                label: format!("{short} {name}"),
                message: message_of::<M>(),
                check: Box::new(move |value| {
                    let proto: M = from_value(value).map_err(field_error)?;
                    convert(&proto)
                        .map(|_| Vec::new())
                        .map_err(|e| (e.path, e.reason))
                }),
                value,
            }
        }
        Err(e) => unreadable(short, e),
    }
}

/// A resource of an Envoy `/config_dump`, given as an `Any`.
fn resource_from_any(any: &Any) -> Document {
    fn typed<M: Message + Name + Default + 'static, T: 'static>(
        any: &Any,
        convert: fn(&M) -> Result<T, ValidationError>,
    ) -> Document {
        match M::decode(any.value.as_slice()) {
            Ok(proto) => resource(&proto, convert),
            Err(e) => unreadable(M::NAME, JsonError::Decode(e.to_string())),
        }
    }
    let type_name = any.type_url.rsplit('/').next().unwrap_or(&any.type_url);
    match type_name {
        "envoy.config.listener.v3.Listener" => typed(any, Listener::from_proto),
        "envoy.config.cluster.v3.Cluster" => typed(any, Cluster::from_proto),
        "envoy.config.route.v3.RouteConfiguration" => typed(any, RouteConfiguration::from_proto),
        "envoy.config.endpoint.v3.ClusterLoadAssignment" => {
            typed(any, ClusterLoadAssignment::from_proto)
        }
        other => unsupported(other, other),
    }
}

/// The documents of an Envoy `/config_dump`: its bootstrap and the resources it serves
/// (static ones, route configurations and endpoints included, come with the bootstrap when
/// the dump has it, and are not counted twice).
fn dump_documents(dump: &ConfigDump, overrides: &Overrides) -> Vec<Document> {
    let mut documents = Vec::new();
    let mut resources: Vec<&Any> = Vec::new();
    let has_bootstrap = dump
        .configs
        .iter()
        .any(|c| c.type_url.ends_with(".BootstrapConfigDump"));
    let mut decoded = DecodedDump::default();
    for config in &dump.configs {
        let type_name = config
            .type_url
            .rsplit('/')
            .next()
            .unwrap_or(&config.type_url);
        let bytes = config.value.as_slice();
        let failed =
            |e: prost::DecodeError| unreadable(type_name, JsonError::Decode(e.to_string()));
        match type_name {
            "envoy.admin.v3.BootstrapConfigDump" => match BootstrapConfigDump::decode(bytes) {
                Ok(BootstrapConfigDump {
                    bootstrap: Some(proto),
                    ..
                }) => {
                    documents.push(bootstrap_document("bootstrap", &proto, overrides));
                }
                Ok(_) => {}
                Err(e) => documents.push(failed(e)),
            },
            "envoy.admin.v3.ListenersConfigDump" => match ListenersConfigDump::decode(bytes) {
                Ok(d) => decoded.listeners = Some(d),
                Err(e) => documents.push(failed(e)),
            },
            "envoy.admin.v3.ClustersConfigDump" => match ClustersConfigDump::decode(bytes) {
                Ok(d) => decoded.clusters = Some(d),
                Err(e) => documents.push(failed(e)),
            },
            "envoy.admin.v3.RoutesConfigDump" => match RoutesConfigDump::decode(bytes) {
                Ok(d) => decoded.routes = Some(d),
                Err(e) => documents.push(failed(e)),
            },
            "envoy.admin.v3.EndpointsConfigDump" => match EndpointsConfigDump::decode(bytes) {
                Ok(d) => decoded.endpoints = Some(d),
                Err(e) => documents.push(failed(e)),
            },
            // An empty section says nothing is configured there.
            _ if bytes.is_empty() => {}
            other => documents.push(unsupported(other, other)),
        }
    }
    if let Some(d) = &decoded.listeners {
        if !has_bootstrap {
            resources.extend(
                d.static_listeners
                    .iter()
                    .filter_map(|l| l.listener.as_ref()),
            );
        }
        resources.extend(
            d.dynamic_listeners
                .iter()
                .filter_map(|l| l.active_state.as_ref()?.listener.as_ref()),
        );
    }
    if let Some(d) = &decoded.clusters {
        if !has_bootstrap {
            resources.extend(d.static_clusters.iter().filter_map(|c| c.cluster.as_ref()));
        }
        resources.extend(
            d.dynamic_active_clusters
                .iter()
                .filter_map(|c| c.cluster.as_ref()),
        );
    }
    if let Some(d) = &decoded.routes {
        if !has_bootstrap {
            resources.extend(
                d.static_route_configs
                    .iter()
                    .filter_map(|r| r.route_config.as_ref()),
            );
        }
        resources.extend(
            d.dynamic_route_configs
                .iter()
                .filter_map(|r| r.route_config.as_ref()),
        );
    }
    if let Some(d) = &decoded.endpoints {
        if !has_bootstrap {
            resources.extend(
                d.static_endpoint_configs
                    .iter()
                    .filter_map(|e| e.endpoint_config.as_ref()),
            );
        }
        resources.extend(
            d.dynamic_endpoint_configs
                .iter()
                .filter_map(|e| e.endpoint_config.as_ref()),
        );
    }
    documents.extend(resources.into_iter().map(resource_from_any));
    documents
}

#[derive(Default)]
struct DecodedDump {
    listeners: Option<ListenersConfigDump>,
    clusters: Option<ClustersConfigDump>,
    routes: Option<RoutesConfigDump>,
    endpoints: Option<EndpointsConfigDump>,
}

fn message_of<M: Name>() -> MessageDescriptor {
    descriptor(&M::full_name()).expect("Envoy's descriptors hold every message envoy-types has")
}

/// A document that could not be read: one rejection, at the path where reading failed.
fn unreadable(label: &str, error: JsonError) -> Document {
    let (path, reason) = field_error(error);
    failing(label, path, format!("cannot be read: {reason}"))
}

fn unsupported(label: &str, type_name: &str) -> Document {
    failing(
        label,
        String::new(),
        format!("resources of type {type_name} are not supported yet"),
    )
}

fn failing(label: &str, path: String, reason: String) -> Document {
    Document {
        label: label.to_string(),
        message: message_of::<Bootstrap>(),
        value: Value::Object(serde_json::Map::new()),
        check: Box::new(move |_| Err((path.clone(), reason.clone()))),
    }
}
