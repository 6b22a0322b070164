//! The data plane's configuration tables: immutable `Snapshot`s of listeners, route
//! configurations and clusters (with endpoints) behind one `ArcSwap`, replaced whole by
//! `Tables::apply`, and the per-endpoint `EndpointState` that survives those replacements.
//!
//! Maps are persistent (`imbl`): publishing an EDS update for one cluster copies O(log n) map
//! nodes plus that cluster's endpoint set, never the other clusters.

mod change;
mod endpoint_set;
mod endpoint_state;
mod snapshot;
mod tables;

pub use change::Change;
pub use endpoint_set::{EndpointSet, LocalityEndpoints, PriorityLevel};
pub use endpoint_state::{EndpointState, HealthFlags, OutlierCounters};
pub use snapshot::{ClusterEntry, Snapshot};
pub use tables::Tables;
