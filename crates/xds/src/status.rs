//! What the xDS client knows about every resource and about its stream, published for the admin
//! interface (`/config_dump`, CSDS, `/ready`). Never read on the request path.

use std::collections::BTreeMap;
use std::time::SystemTime;

use envoy_types::pb::google::protobuf::Any;

use crate::ResourceType;

/// A consistent picture of the client, replaced whole after every change.
#[derive(Debug, Clone, Default)]
pub struct ClientStatus {
    pub stream: StreamStatus,
    /// Every resource subscribed to or received, per type, by name.
    pub resources: BTreeMap<ResourceType, BTreeMap<String, ResourceRecord>>,
    /// Last version accepted per type (SotW `version_info`; delta `system_version_info`).
    pub type_versions: BTreeMap<ResourceType, String>,
    /// The initial configuration is in: every type has been answered (or timed out) and nothing
    /// that was part of it is still warming. Once true, stays true (Envoy's init manager).
    pub initialized: bool,
    /// Responses received per type, and how they ended (Envoy's `cluster_manager.cds.*`,
    /// `listener_manager.lds.*` update counters).
    pub updates: BTreeMap<ResourceType, UpdateCounts>,
}

/// Envoy's `update_attempt` / `update_success` / `update_rejected` of one resource type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateCounts {
    pub attempt: u64,
    pub success: u64,
    pub rejected: u64,
}

impl ClientStatus {
    /// Counts a response of `kind`: accepted whole, or rejected (NACKed).
    pub(crate) fn count_update(&mut self, kind: ResourceType, accepted: bool) {
        let counts = self.updates.entry(kind).or_default();
        counts.attempt += 1;
        if accepted {
            counts.success += 1;
        } else {
            counts.rejected += 1;
        }
    }

    pub fn records(&self, kind: ResourceType) -> impl Iterator<Item = (&String, &ResourceRecord)> {
        self.resources.get(&kind).into_iter().flatten()
    }
}

/// The state of the ADS stream.
#[derive(Debug, Clone, Default)]
pub struct StreamStatus {
    /// The management server, as configured (`host:port` of the ADS cluster's endpoint).
    pub server: String,
    pub delta: bool,
    pub connected: bool,
    /// The last error that ended a stream or a connection attempt.
    pub last_error: Option<String>,
    /// When the last response was received.
    pub last_response: Option<SystemTime>,
    /// How many streams have been opened so far.
    pub streams_opened: u64,
}

/// CSDS's `ClientResourceStatus`, the subset a client can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceStatus {
    /// Subscribed, nothing received yet.
    Requested,
    /// Received and accepted.
    Acked,
    /// The last version received was rejected (the record may still hold an older accepted one).
    Nacked,
    /// The server said, or the does-not-exist timer concluded, that it does not exist.
    DoesNotExist,
    /// `initial_fetch_timeout` passed before it arrived.
    Timeout,
}

/// One resource as the client holds it.
#[derive(Debug, Clone)]
pub struct ResourceRecord {
    pub status: ResourceStatus,
    /// The version of the accepted resource (SotW: the response's `version_info`; delta: the
    /// resource's own version). Empty when nothing was accepted.
    pub version: String,
    /// The accepted resource as received. `None` until one is accepted.
    pub resource: Option<Any>,
    pub last_updated: Option<SystemTime>,
    /// Accepted but not yet in use: a cluster waiting for its endpoints, a listener for its routes.
    pub warming: bool,
    /// While a newer version warms, the older one still in use (Envoy dumps both).
    pub live: Option<LiveVersion>,
    /// The last rejection, kept until a later version is accepted.
    pub error: Option<UpdateFailure>,
}

impl ResourceRecord {
    pub fn requested() -> Self {
        ResourceRecord {
            status: ResourceStatus::Requested,
            version: String::new(),
            resource: None,
            last_updated: None,
            warming: false,
            live: None,
            error: None,
        }
    }
}

/// A version of a resource that serves while a newer one warms.
#[derive(Debug, Clone)]
pub struct LiveVersion {
    pub version: String,
    pub resource: Any,
    pub last_updated: Option<SystemTime>,
}

/// Why a version of a resource was rejected (Envoy's `UpdateFailureState`).
#[derive(Debug, Clone)]
pub struct UpdateFailure {
    pub failed: Option<Any>,
    pub version: String,
    pub reason: String,
    pub time: SystemTime,
}
