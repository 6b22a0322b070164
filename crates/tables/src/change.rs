//! `Change`: one edit of the tables, produced by the xDS client from validated resources.

use std::sync::Arc;

use outrider_model::{Cluster, ClusterLoadAssignment, Listener, RouteConfiguration};

#[derive(Debug, Clone)]
pub enum Change {
    /// Adds or replaces a cluster. STATIC and DNS clusters take their endpoints from
    /// `load_assignment` (reusing the state of addresses they keep); an EDS cluster keeps its
    /// current endpoints if it existed with the same EDS resource name, else has none until
    /// `SetEndpoints`.
    UpsertCluster(Arc<Cluster>),
    RemoveCluster(String),
    /// An EDS update. `cluster` is the EDS resource name (`service_name`, or the cluster name):
    /// it applies to every EDS cluster subscribed to it.
    SetEndpoints {
        cluster: String,
        assignment: Arc<ClusterLoadAssignment>,
        version: String,
    },
    UpsertListener(Arc<Listener>),
    RemoveListener(String),
    UpsertRouteConfiguration(Arc<RouteConfiguration>),
    RemoveRouteConfiguration(String),
}
