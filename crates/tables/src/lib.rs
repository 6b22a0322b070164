//! The data plane's configuration tables: immutable `Snapshot`s of listeners, route
//! configurations and clusters (with endpoints) behind one `ArcSwap`, replaced whole by
//! `Tables::apply`, and the per-endpoint `EndpointState` and per-cluster `ClusterState` that
//! survive those replacements.
//!
//! Maps are persistent (`imbl`): publishing an EDS update for one cluster copies O(log n) map
//! nodes plus that cluster's endpoint set, never the other clusters.

mod change;
mod cluster_counters;
mod cluster_outlier;
mod cluster_state;
mod endpoint_set;
mod endpoint_state;
mod health_check_state;
pub mod lb_tables;
mod outlier_state;
mod sharded;
mod snapshot;
mod tables;

pub use change::Change;
pub use cluster_counters::ClusterCounters;
pub use cluster_outlier::{ClusterOutlier, EJECTION_TYPE_STAT_NAMES, OutlierStats};
pub use cluster_state::{ClusterState, ResourceCounts};
pub use endpoint_set::{EndpointSet, HostRef, LocalityEndpoints, PriorityLevel};
pub use endpoint_state::{EndpointState, HealthFlags};
pub use health_check_state::{ClusterHealthCheckState, HealthCheckResult, HealthCheckState};
pub use outlier_state::{IntervalCounts, OutlierState, SuccessRateCell};
pub use sharded::{Sharded, set_current_worker, set_worker_count};
pub use snapshot::{ClusterEntry, Snapshot};
pub use tables::Tables;
