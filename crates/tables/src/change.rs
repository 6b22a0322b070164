//! `Change`: one edit of the tables, produced by the xDS client from validated resources.

use std::sync::Arc;

use outrider_model::{Cluster, ClusterLoadAssignment, Listener, RouteConfiguration};

use crate::endpoint_state::EndpointState;

#[derive(Debug, Clone)]
pub enum Change {
    /// Adds or replaces a cluster. A STATIC cluster takes its endpoints from `load_assignment`
    /// (reusing the state of addresses it keeps); an EDS cluster keeps its current endpoints if
    /// it existed with the same EDS resource name, else has none until `SetEndpoints`. A DNS
    /// cluster keeps the endpoints it replaces (a new one starts with the IP addresses of its
    /// `load_assignment`) until `SetResolvedEndpoints` for this config.
    UpsertCluster(Arc<Cluster>),
    RemoveCluster(String),
    /// An EDS update. `cluster` is the EDS resource name (`service_name`, or the cluster name):
    /// it applies to every EDS cluster subscribed to it.
    SetEndpoints {
        cluster: String,
        assignment: Arc<ClusterLoadAssignment>,
        version: String,
    },
    /// A STRICT_DNS or LOGICAL_DNS cluster's `load_assignment` with its host names resolved
    /// (IP addresses only). Applied only if the cluster still has this very `config`: a
    /// resolution that raced a config change or removal is dropped.
    SetResolvedEndpoints {
        config: Arc<Cluster>,
        assignment: Arc<ClusterLoadAssignment>,
    },
    /// A host kept after EDS (or DNS) dropped it has failed a health check: it goes now, if
    /// cluster `cluster` still has this very host pending removal.
    RemovePendingHost {
        cluster: Arc<str>,
        host: Arc<EndpointState>,
    },
    UpsertListener(Arc<Listener>),
    RemoveListener(String),
    UpsertRouteConfiguration(Arc<RouteConfiguration>),
    RemoveRouteConfiguration(String),
}
