//! Decoding an xDS `Any` into its Envoy message and validating it into the model.

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as ClusterProto;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment as ClaProto;
use envoy_types::pb::envoy::config::listener::v3::Listener as ListenerProto;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration as RouteProto;
use envoy_types::pb::google::protobuf::Any;
use outrider_model::{Cluster, ClusterLoadAssignment, Listener, RouteConfiguration};
use prost::Message;

use crate::ResourceType;

/// A resource that passed validation, ready for the tables.
#[derive(Debug, Clone)]
pub enum Validated {
    Cluster(Arc<Cluster>),
    Endpoints(Arc<ClusterLoadAssignment>),
    Listener(Arc<Listener>),
    Routes(Arc<RouteConfiguration>),
}

/// A resource decoded from its `Any` but not yet validated: validation is skipped when the bytes
/// are the same as the version already in use.
pub enum Decoded {
    Cluster(Box<ClusterProto>),
    Endpoints(Box<ClaProto>),
    Listener(Box<ListenerProto>),
    Routes(Box<RouteProto>),
}

impl Decoded {
    /// Decodes one resource of a response. `Err` when not even the name can be read: then the
    /// resource cannot be attributed and only the response as a whole can be NACKed.
    pub fn decode(kind: ResourceType, any: &Any) -> Result<Decoded, String> {
        if any.type_url != kind.type_url() {
            return Err(format!(
                "resource of type {} in a {} response",
                any.type_url,
                kind.type_url()
            ));
        }
        let bytes = any.value.as_slice();
        let error = |e: prost::DecodeError| format!("cannot decode {}: {e}", kind.type_url());
        Ok(match kind {
            ResourceType::Cluster => {
                Decoded::Cluster(Box::new(ClusterProto::decode(bytes).map_err(error)?))
            }
            ResourceType::ClusterLoadAssignment => {
                Decoded::Endpoints(Box::new(ClaProto::decode(bytes).map_err(error)?))
            }
            ResourceType::Listener => {
                Decoded::Listener(Box::new(ListenerProto::decode(bytes).map_err(error)?))
            }
            ResourceType::RouteConfiguration => {
                Decoded::Routes(Box::new(RouteProto::decode(bytes).map_err(error)?))
            }
        })
    }

    /// The resource's name (a ClusterLoadAssignment is named by its `cluster_name`).
    pub fn name(&self) -> &str {
        match self {
            Decoded::Cluster(p) => &p.name,
            Decoded::Endpoints(p) => &p.cluster_name,
            Decoded::Listener(p) => &p.name,
            Decoded::Routes(p) => &p.name,
        }
    }

    /// Validates into the model; the error is `"<field path>: <reason>"`.
    pub fn validate(&self) -> Result<Validated, String> {
        match self {
            Decoded::Cluster(p) => Cluster::from_proto(p).map(|c| Validated::Cluster(Arc::new(c))),
            Decoded::Endpoints(p) => {
                ClusterLoadAssignment::from_proto(p).map(|c| Validated::Endpoints(Arc::new(c)))
            }
            Decoded::Listener(p) => {
                Listener::from_proto(p).map(|l| Validated::Listener(Arc::new(l)))
            }
            Decoded::Routes(p) => {
                RouteConfiguration::from_proto(p).map(|r| Validated::Routes(Arc::new(r)))
            }
        }
        .map_err(|e| e.to_string())
    }
}

/// Decodes and validates one resource exactly as a response's resource is: the entry point for
/// fuzzing and for checking a resource offline. The error names the resource when it can.
pub fn check_resource(kind: ResourceType, bytes: &[u8]) -> Result<(), String> {
    let any = Any {
        type_url: kind.type_url().to_string(),
        value: bytes.to_vec(),
    };
    let decoded = Decoded::decode(kind, &any)?;
    decoded
        .validate()
        .map(|_| ())
        .map_err(|reason| format!("{}: {reason}", decoded.name()))
}
