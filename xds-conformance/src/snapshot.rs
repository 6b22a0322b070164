//! What the server serves: per resource type, a version string and the resources by name.
//!
//! A [`Snapshot`] is plain data. The server holds one at a time and pushes a type to a client
//! whenever that type's version (SotW) or one of its resources' versions (delta) differs from
//! what the client has, so a test changes a type's version to make the server push it.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{
    RouteConfiguration, ScopedRouteConfiguration, VirtualHost,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::google::protobuf::Any;

use crate::type_url;

/// One resource of a snapshot: the packed message and its own version (delta xDS `Resource.version`).
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotResource {
    /// The message, `type_url` = the resource type's URL.
    pub any: Any,
    /// The resource's version, by default a hash of its content, so an unchanged resource keeps
    /// its version across snapshots and delta streams do not resend it.
    pub version: String,
}

/// All resources of one type with the type's version (SotW `version_info`, delta
/// `system_version_info`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TypeSnapshot {
    /// The version of the type as a whole.
    pub version: String,
    /// The resources by name.
    pub resources: BTreeMap<String, SnapshotResource>,
}

impl TypeSnapshot {
    /// The resource names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.resources.keys().cloned().collect()
    }
}

/// Everything the server serves, by type URL.
///
/// A type that is absent is one the server knows nothing about: requests for it stay unanswered,
/// as go-control-plane leaves a watch open when it has no snapshot. A type that is present with
/// no resources is answered with an empty list (for LDS/CDS, "no listeners/clusters").
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// The version given to a type created implicitly by an insert.
    default_version: String,
    types: BTreeMap<String, TypeSnapshot>,
}

/// A message that can be served as a named xDS resource.
pub trait NamedResource: prost::Message + prost::Name + Sized {
    /// The name a client subscribes to (`cluster_name` for a `ClusterLoadAssignment`).
    fn resource_name(&self) -> &str;
}

macro_rules! named_by {
    ($ty:ty, $field:ident) => {
        impl NamedResource for $ty {
            fn resource_name(&self) -> &str {
                &self.$field
            }
        }
    };
}
named_by!(Cluster, name);
named_by!(ClusterLoadAssignment, cluster_name);
named_by!(Listener, name);
named_by!(RouteConfiguration, name);
named_by!(ScopedRouteConfiguration, name);
named_by!(VirtualHost, name);
named_by!(Secret, name);

/// Packs a message as an `Any` with `type.googleapis.com/<full name>`.
pub fn pack<M: prost::Message + prost::Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

impl Snapshot {
    /// A snapshot holding CDS, EDS, LDS and RDS at `version`, with no resources yet.
    ///
    /// Types added later by an insert (SDS, any other type URL) get the same version.
    pub fn new(version: impl Into<String>) -> Self {
        let version = version.into();
        let types = type_url::PUSH_ORDER
            .iter()
            .map(|url| {
                let ts = TypeSnapshot {
                    version: version.clone(),
                    resources: BTreeMap::new(),
                };
                ((*url).to_string(), ts)
            })
            .collect();
        Snapshot {
            default_version: version,
            types,
        }
    }

    /// A snapshot with no types at all: the server answers nothing until one is set.
    pub fn empty() -> Self {
        Snapshot::default()
    }

    /// Adds a typed resource (builder style).
    #[must_use]
    pub fn with<M: NamedResource>(mut self, resource: M) -> Self {
        self.insert(&resource);
        self
    }

    /// Adds an already packed resource under `name` (builder style); its type is `any.type_url`.
    #[must_use]
    pub fn with_any(mut self, name: impl Into<String>, any: Any) -> Self {
        self.insert_any(name, any);
        self
    }

    /// Sets one type's version (builder style), creating the type if needed.
    #[must_use]
    pub fn with_type_version(mut self, type_url: &str, version: impl Into<String>) -> Self {
        self.set_type_version(type_url, version);
        self
    }

    /// Declares a type with no resources (builder style), so its requests get an empty answer.
    #[must_use]
    pub fn with_empty_type(mut self, type_url: &str) -> Self {
        self.type_entry(type_url);
        self
    }

    /// Inserts or replaces a typed resource; returns the previous one.
    pub fn insert<M: NamedResource>(&mut self, resource: &M) -> Option<Any> {
        self.insert_any(resource.resource_name().to_string(), pack(resource))
    }

    /// Inserts or replaces a packed resource under `name`; returns the previous one. Its version
    /// is a hash of the bytes.
    pub fn insert_any(&mut self, name: impl Into<String>, any: Any) -> Option<Any> {
        let version = content_hash(&[any.type_url.as_bytes(), &any.value]);
        self.insert_with_version(name, any, version)
    }

    /// Inserts or replaces a packed resource with an explicit per-resource version.
    pub fn insert_with_version(
        &mut self,
        name: impl Into<String>,
        any: Any,
        version: impl Into<String>,
    ) -> Option<Any> {
        let entry = self.type_entry(&any.type_url.clone());
        let resource = SnapshotResource {
            any,
            version: version.into(),
        };
        entry
            .resources
            .insert(name.into(), resource)
            .map(|old| old.any)
    }

    /// Replaces a whole type with `resources` at `version` (e.g. a new EDS state in one call).
    pub fn set_resources<M: NamedResource>(
        &mut self,
        version: impl Into<String>,
        resources: impl IntoIterator<Item = M>,
    ) {
        let packed = resources
            .into_iter()
            .map(|r| (r.resource_name().to_string(), pack(&r)));
        self.set_any_resources(&M::type_url(), version, packed);
    }

    /// Replaces a whole type with packed `(name, resource)` pairs at `version`. The type URL of
    /// each `Any` is left as given, so a test can serve a mislabelled resource on purpose.
    pub fn set_any_resources(
        &mut self,
        type_url: &str,
        version: impl Into<String>,
        resources: impl IntoIterator<Item = (String, Any)>,
    ) {
        let resources = resources
            .into_iter()
            .map(|(name, any)| {
                let version = content_hash(&[any.type_url.as_bytes(), &any.value]);
                (name, SnapshotResource { any, version })
            })
            .collect();
        let ts = TypeSnapshot {
            version: version.into(),
            resources,
        };
        self.types.insert(type_url.to_string(), ts);
    }

    /// Removes a resource; returns it.
    pub fn remove(&mut self, type_url: &str, name: &str) -> Option<Any> {
        self.types
            .get_mut(type_url)?
            .resources
            .remove(name)
            .map(|old| old.any)
    }

    /// Removes a whole type: its requests go unanswered again.
    pub fn remove_type(&mut self, type_url: &str) -> Option<TypeSnapshot> {
        self.types.remove(type_url)
    }

    /// Sets one type's version, creating the type if needed.
    pub fn set_type_version(&mut self, type_url: &str, version: impl Into<String>) {
        self.type_entry(type_url).version = version.into();
    }

    /// Sets every present type's version, and the version of types created later.
    pub fn set_version(&mut self, version: impl Into<String>) {
        let version = version.into();
        for ts in self.types.values_mut() {
            ts.version.clone_from(&version);
        }
        self.default_version = version;
    }

    /// One type, if present.
    pub fn get(&self, type_url: &str) -> Option<&TypeSnapshot> {
        self.types.get(type_url)
    }

    /// Every present type with its resources, by type URL.
    pub fn types(&self) -> impl Iterator<Item = (&str, &TypeSnapshot)> {
        self.types.iter().map(|(url, ts)| (url.as_str(), ts))
    }

    /// A type's version, if the type is present.
    pub fn version(&self, type_url: &str) -> Option<&str> {
        self.types.get(type_url).map(|ts| ts.version.as_str())
    }

    /// The resource names of a type, sorted (empty if the type is absent).
    pub fn names(&self, type_url: &str) -> Vec<String> {
        self.types
            .get(type_url)
            .map(TypeSnapshot::names)
            .unwrap_or_default()
    }

    /// One resource.
    pub fn resource(&self, type_url: &str, name: &str) -> Option<&Any> {
        self.types
            .get(type_url)?
            .resources
            .get(name)
            .map(|r| &r.any)
    }

    /// One resource's own version (the delta `Resource.version` the server sends).
    pub fn resource_version(&self, type_url: &str, name: &str) -> Option<&str> {
        self.types
            .get(type_url)?
            .resources
            .get(name)
            .map(|r| r.version.as_str())
    }

    /// One line per type for logs: `Cluster v2 (3), ClusterLoadAssignment v2 (3), …`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .types
            .iter()
            .map(|(url, ts)| {
                let name = type_url::short_name(url);
                format!("{name} {} ({})", ts.version, ts.resources.len())
            })
            .collect();
        parts.join(", ")
    }

    /// Replaces a whole type (used by the file loader, which computes its own versions).
    pub(crate) fn put_type(&mut self, type_url: &str, ts: TypeSnapshot) {
        self.types.insert(type_url.to_string(), ts);
    }

    fn type_entry(&mut self, type_url: &str) -> &mut TypeSnapshot {
        let version = &self.default_version;
        self.types
            .entry(type_url.to_string())
            .or_insert_with(|| TypeSnapshot {
                version: version.clone(),
                resources: BTreeMap::new(),
            })
    }
}

/// A short, stable hash of some byte strings (64-bit FNV-1a, 12 hex digits).
///
/// Stable across processes and Rust versions (unlike `DefaultHasher`), so a file that did not
/// change keeps its versions across a restart of the server.
pub fn content_hash(parts: &[&[u8]]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for part in parts {
        // The length first, so ("ab", "c") and ("a", "bc") hash differently.
        for byte in (part.len() as u64).to_le_bytes().iter().chain(part.iter()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    let mut text = format!("{hash:016x}");
    text.truncate(12);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(name: &str) -> Cluster {
        Cluster {
            name: name.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn builder_fills_types_and_versions() {
        let snap = Snapshot::new("v1")
            .with(cluster("a"))
            .with(ClusterLoadAssignment {
                cluster_name: "a".into(),
                ..Default::default()
            })
            .with(Secret {
                name: "cert".into(),
                ..Default::default()
            });
        assert_eq!(snap.version(type_url::CLUSTER), Some("v1"));
        assert_eq!(snap.version(type_url::ROUTE), Some("v1"));
        assert_eq!(snap.version(type_url::SECRET), Some("v1"));
        assert_eq!(snap.names(type_url::ENDPOINT), vec!["a".to_string()]);
        let any = snap.resource(type_url::CLUSTER, "a").expect("inserted");
        assert_eq!(any.type_url, type_url::CLUSTER);
        assert!(Snapshot::empty().get(type_url::CLUSTER).is_none());
    }

    #[test]
    fn resource_version_follows_content() {
        let mut snap = Snapshot::new("v1").with(cluster("a")).with(cluster("b"));
        let a = snap
            .resource_version(type_url::CLUSTER, "a")
            .map(str::to_string);
        let b = snap
            .resource_version(type_url::CLUSTER, "b")
            .map(str::to_string);
        assert_ne!(a, b);
        snap.insert(&cluster("a"));
        assert_eq!(
            snap.resource_version(type_url::CLUSTER, "a")
                .map(str::to_string),
            a
        );
        assert!(snap.remove(type_url::CLUSTER, "a").is_some());
        assert_eq!(snap.names(type_url::CLUSTER), vec!["b".to_string()]);
    }

    #[test]
    fn set_version_changes_every_type() {
        let mut snap = Snapshot::new("v1");
        snap.set_version("v2");
        assert!(snap.types().all(|(_, ts)| ts.version == "v2"));
        snap.set_type_version(type_url::ENDPOINT, "e3");
        assert_eq!(snap.version(type_url::ENDPOINT), Some("e3"));
    }

    #[test]
    fn set_resources_replaces_a_type() {
        let mut snap = Snapshot::new("v1").with(cluster("a"));
        snap.set_resources("c2", [cluster("b"), cluster("c")]);
        assert_eq!(snap.version(type_url::CLUSTER), Some("c2"));
        assert_eq!(snap.names(type_url::CLUSTER), ["b", "c"]);
        assert_eq!(snap.version(type_url::LISTENER), Some("v1"));
        assert!(
            snap.summary().contains("Cluster c2 (2)"),
            "{}",
            snap.summary()
        );
    }

    #[test]
    fn hash_is_stable_and_length_prefixed() {
        assert_eq!(content_hash(&[b"abc"]), content_hash(&[b"abc"]));
        assert_ne!(content_hash(&[b"ab", b"c"]), content_hash(&[b"a", b"bc"]));
        assert_eq!(content_hash(&[]).len(), 12);
    }
}
