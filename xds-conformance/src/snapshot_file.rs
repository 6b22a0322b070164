//! Reading a [`Snapshot`] from a YAML (or JSON) file of Envoy-format resources.
//!
//! ```yaml
//! version: "v1"        # optional: without it each type's version is a hash of its content
//! clusters:  [ ... envoy.config.cluster.v3.Cluster ... ]
//! endpoints: [ ... envoy.config.endpoint.v3.ClusterLoadAssignment ... ]
//! listeners: [ ... envoy.config.listener.v3.Listener ... ]
//! routes:    [ ... envoy.config.route.v3.RouteConfiguration ... ]
//! secrets:   [ ... envoy.extensions.transport_sockets.tls.v3.Secret ... ]
//! resources: [ { "@type": type.googleapis.com/<any Envoy type>, name: ..., ... } ]
//! ```
//!
//! Only parse errors fail (unknown fields, wrong value types, bad durations): the server must be
//! able to serve semantically invalid resources (`connect_timeout: 0s`) so a client can NACK them.
//! CDS, EDS, LDS and RDS are always present (empty when their key is absent), so a client asking
//! for them always gets an answer.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::snapshot::{Snapshot, SnapshotResource, TypeSnapshot, content_hash};
use crate::type_url;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::google::protobuf::Any;

use crate::snapshot::{NamedResource, pack};

/// Why a snapshot file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The document is not YAML, or its top level is not the snapshot shape.
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    /// One resource does not parse as its Envoy type: `section[index].path`.
    #[error("{file}: {}: {reason}", item_path(.section, *.index, .path))]
    Resource {
        file: String,
        /// The top-level key (`clusters`, `endpoints`, …).
        section: String,
        /// The item's position in that list, from 0.
        index: usize,
        /// The field path inside the item (`load_assignment.endpoints[0]`), empty for the item.
        path: String,
        reason: String,
    },
}

fn item_path(section: &str, index: usize, path: &str) -> String {
    if path.is_empty() {
        format!("{section}[{index}]")
    } else if path.starts_with('[') {
        format!("{section}[{index}]{path}")
    } else {
        format!("{section}[{index}].{path}")
    }
}

/// The name of the file used in errors of [`Snapshot::from_yaml_str`].
const INLINE: &str = "<inline>";

const KEYS: &str = "version, clusters, endpoints, listeners, routes, secrets, resources";

impl Snapshot {
    /// Reads a snapshot document (see the module documentation).
    pub fn from_yaml_str(text: &str) -> Result<Snapshot, SnapshotFileError> {
        parse_document(text, INLINE)
    }

    /// Reads a snapshot file; errors name the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Snapshot, SnapshotFileError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SnapshotFileError::Read {
            file: file.clone(),
            source,
        })?;
        parse_document(&text, &file)
    }
}

/// Parses a snapshot document; `file` names it in errors.
pub(crate) fn parse_document(text: &str, file: &str) -> Result<Snapshot, SnapshotFileError> {
    let syntax = |message: String| SnapshotFileError::Syntax {
        file: file.to_string(),
        message,
    };
    let doc: Value = serde_yaml::from_str(text).map_err(|e| syntax(e.to_string()))?;
    let map = match doc {
        Value::Object(map) => map,
        // An empty file is an empty snapshot, not an error: a user may start from nothing.
        Value::Null => serde_json::Map::new(),
        _ => return Err(syntax(format!("expected a mapping with keys {KEYS}"))),
    };

    let version = match map.get("version") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => return Err(syntax(format!("version: expected a string, got {other}"))),
    };

    // Per type URL: the items (for the content hash) and the parsed resources.
    let mut parsed: BTreeMap<String, ParsedType> = BTreeMap::new();
    for url in type_url::PUSH_ORDER {
        parsed.insert(url.to_string(), ParsedType::default());
    }
    for (key, value) in &map {
        let items = match key.as_str() {
            "version" => continue,
            "clusters" | "endpoints" | "listeners" | "routes" | "secrets" | "resources" => {
                match value {
                    Value::Array(items) => items.as_slice(),
                    Value::Null => &[],
                    _ => return Err(syntax(format!("{key}: expected a list"))),
                }
            }
            other => return Err(syntax(format!("unknown key '{other}' (expected {KEYS})"))),
        };
        for (index, item) in items.iter().enumerate() {
            let at = |path: &str, reason: String| SnapshotFileError::Resource {
                file: file.to_string(),
                section: key.clone(),
                index,
                path: path.to_string(),
                reason,
            };
            let (name, any) = match key.as_str() {
                "clusters" => typed::<Cluster>(item).map_err(|(p, r)| at(&p, r))?,
                "endpoints" => typed::<ClusterLoadAssignment>(item).map_err(|(p, r)| at(&p, r))?,
                "listeners" => typed::<Listener>(item).map_err(|(p, r)| at(&p, r))?,
                "routes" => typed::<RouteConfiguration>(item).map_err(|(p, r)| at(&p, r))?,
                "secrets" => typed::<Secret>(item).map_err(|(p, r)| at(&p, r))?,
                _ => dynamic(item).map_err(|(p, r)| at(&p, r))?,
            };
            let entry = parsed.entry(any.type_url.clone()).or_default();
            if let Some(first) = entry.indices.get(&name) {
                return Err(at(
                    "",
                    format!("duplicate resource name '{name}' (also at index {first})"),
                ));
            }
            // The hash is over the document's JSON text, not the encoded bytes: prost encodes
            // map fields in HashMap order, which differs between two parses of the same file.
            let item_text = serde_json::to_string(item).unwrap_or_default();
            entry.hash_input.push_str(&item_text);
            entry.hash_input.push('\n');
            entry.indices.insert(name.clone(), index);
            let resource = SnapshotResource {
                any,
                version: content_hash(&[item_text.as_bytes()]),
            };
            entry.resources.insert(name, resource);
        }
    }

    let mut snapshot = Snapshot::empty();
    if let Some(v) = &version {
        snapshot.set_version(v.clone());
    }
    for (url, ty) in parsed {
        let type_version = match &version {
            Some(v) => v.clone(),
            None => content_hash(&[url.as_bytes(), ty.hash_input.as_bytes()]),
        };
        let ts = TypeSnapshot {
            version: type_version,
            resources: ty.resources,
        };
        snapshot.put_type(&url, ts);
    }
    Ok(snapshot)
}

#[derive(Default)]
struct ParsedType {
    resources: BTreeMap<String, SnapshotResource>,
    indices: BTreeMap<String, usize>,
    hash_input: String,
}

/// An error inside one item: (field path, reason).
type ItemError = (String, String);

/// Parses one item as `M`; an `"@type"` key is allowed when it names `M` (as in a config dump).
fn typed<M: NamedResource + Default>(item: &Value) -> Result<(String, Any), ItemError> {
    let value = strip_type(item, Some(&M::type_url()))?;
    let message = outrider_envoy_json::from_value::<M>(&value).map_err(json_error)?;
    Ok((message.resource_name().to_string(), pack(&message)))
}

/// Parses one item of the generic `resources` list by its `"@type"`; the name is its `name` field.
fn dynamic(item: &Value) -> Result<(String, Any), ItemError> {
    let Some(url) = item.get("@type").and_then(Value::as_str) else {
        return Err((
            "@type".into(),
            "missing: items of `resources` need their type URL".into(),
        ));
    };
    let full_name = url.rsplit('/').next().unwrap_or(url);
    let desc =
        outrider_envoy_json::descriptor(full_name).map_err(|e| ("@type".into(), e.to_string()))?;
    let value = strip_type(item, None)?;
    let message = outrider_envoy_json::dynamic_from_value(&desc, &value).map_err(json_error)?;
    let Some(name) = value.get("name").and_then(Value::as_str) else {
        return Err((
            "name".into(),
            "missing: a served resource needs a name".into(),
        ));
    };
    let any = Any {
        type_url: url.to_string(),
        value: prost::Message::encode_to_vec(&message),
    };
    Ok((name.to_string(), any))
}

/// The item without its `"@type"`, which must equal `expected` when given.
fn strip_type(item: &Value, expected: Option<&str>) -> Result<Value, ItemError> {
    let Value::Object(map) = item else {
        return Err((String::new(), "expected a mapping".into()));
    };
    let mut map = map.clone();
    if let Some(found) = map.remove("@type")
        && let Some(expected) = expected
        && found.as_str() != Some(expected)
    {
        return Err(("@type".into(), format!("is {found}, expected {expected}")));
    }
    Ok(Value::Object(map))
}

fn json_error(e: outrider_envoy_json::JsonError) -> ItemError {
    match e {
        outrider_envoy_json::JsonError::Field { path, reason } => (path, reason),
        other => (String::new(), other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"
version: "v1"
clusters:
- name: backend
  connect_timeout: 0s   # invalid for Envoy, still served
  type: EDS
  eds_cluster_config: { eds_config: { ads: {} } }
endpoints:
- cluster_name: backend
  endpoints:
  - lb_endpoints:
    - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }
listeners:
- name: ingress
  address: { socket_address: { address: 0.0.0.0, port_value: 10000 } }
secrets:
- name: cert
  generic_secret: { secret: { inline_string: hunter2 } }
resources:
- "@type": type.googleapis.com/envoy.config.route.v3.VirtualHost
  name: vh
  domains: ["*"]
"#;

    #[test]
    fn reads_every_section() {
        let snap = Snapshot::from_yaml_str(DOC).expect("valid document");
        assert_eq!(snap.version(type_url::CLUSTER), Some("v1"));
        assert_eq!(snap.version(type_url::ROUTE), Some("v1"));
        assert_eq!(snap.names(type_url::CLUSTER), vec!["backend".to_string()]);
        assert_eq!(snap.names(type_url::ENDPOINT), vec!["backend".to_string()]);
        assert_eq!(snap.names(type_url::LISTENER), vec!["ingress".to_string()]);
        assert!(snap.names(type_url::ROUTE).is_empty());
        assert_eq!(snap.names(type_url::VIRTUAL_HOST), vec!["vh".to_string()]);
        assert_eq!(snap.version(type_url::VIRTUAL_HOST), Some("v1"));
        assert_eq!(snap.names(type_url::SECRET), vec!["cert".to_string()]);
        let any = snap
            .resource(type_url::CLUSTER, "backend")
            .expect("cluster");
        let cluster: Cluster = prost::Message::decode(any.value.as_slice()).expect("decodes");
        let timeout = cluster.connect_timeout.expect("set");
        assert_eq!((timeout.seconds, timeout.nanos), (0, 0));
    }

    #[test]
    fn versions_are_content_hashes_without_version_key() {
        let a = Snapshot::from_yaml_str("clusters: [{name: a}]\nlisteners: []").expect("valid");
        let b = Snapshot::from_yaml_str("clusters: [{name: b}]").expect("valid");
        let a2 = Snapshot::from_yaml_str("clusters: [{name: a}]").expect("valid");
        assert_ne!(a.version(type_url::CLUSTER), b.version(type_url::CLUSTER));
        assert_eq!(a.version(type_url::CLUSTER), a2.version(type_url::CLUSTER));
        // An untouched type keeps its version, so only the changed type is pushed.
        assert_eq!(a.version(type_url::LISTENER), b.version(type_url::LISTENER));
        assert_ne!(a.version(type_url::LISTENER), a.version(type_url::CLUSTER));
    }

    #[test]
    fn errors_name_file_section_index_and_path() {
        let text = "clusters:\n- name: ok\n- name: bad\n  connect_timeout: soon\n";
        let err = parse_document(text, "snap.yaml").expect_err("bad duration");
        let SnapshotFileError::Resource {
            file,
            section,
            index,
            path,
            ..
        } = &err
        else {
            panic!("expected a resource error, got {err}");
        };
        assert_eq!(
            (file.as_str(), section.as_str(), *index, path.as_str()),
            ("snap.yaml", "clusters", 1, "connect_timeout")
        );
        assert!(
            err.to_string()
                .starts_with("snap.yaml: clusters[1].connect_timeout: "),
            "{err}"
        );

        let err = parse_document("endpoints:\n- cluster_name: a\n  endpointz: []\n", "f")
            .expect_err("unknown field");
        assert_eq!(err.to_string(), "f: endpoints[0].endpointz: unknown field");
    }

    #[test]
    fn shape_errors() {
        let cases = [
            ("clusters: {name: a}", "f: clusters: expected a list"),
            ("klusters: []", "f: unknown key 'klusters'"),
            ("- a", "f: expected a mapping"),
            (
                "clusters: [{name: a}, {name: a}]",
                "f: clusters[1]: duplicate resource name 'a' (also at index 0)",
            ),
            (
                "clusters: [{'@type': type.googleapis.com/envoy.config.listener.v3.Listener}]",
                "f: clusters[0].@type: is",
            ),
            ("resources: [{name: a}]", "f: resources[0].@type: missing"),
            (
                "resources: [{'@type': type.googleapis.com/no.Such}]",
                "f: resources[0].@type: unknown message type no.Such",
            ),
            ("clusters: [[1]]", "f: clusters[0]: expected a mapping"),
        ];
        for (text, prefix) in cases {
            let err = parse_document(text, "f").expect_err(text);
            assert!(err.to_string().starts_with(prefix), "{text}: {err}");
        }
    }

    #[test]
    fn empty_document_is_an_empty_snapshot_with_core_types() {
        let snap = Snapshot::from_yaml_str("").expect("empty is fine");
        assert!(snap.names(type_url::CLUSTER).is_empty());
        assert!(snap.version(type_url::CLUSTER).is_some());
    }

    #[test]
    fn from_file_names_the_file() {
        let err = Snapshot::from_file("/nonexistent/snap.yaml").expect_err("missing file");
        assert!(
            err.to_string().starts_with("/nonexistent/snap.yaml: "),
            "{err}"
        );
    }
}
