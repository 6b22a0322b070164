//! Envoy's `/stats` and `/stats/prometheus`: every counter and gauge with Envoy's flat name
//! (`cluster.backend.upstream_rq_2xx`) and, for Prometheus, Envoy's metric name and tags
//! (`envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="backend"}`).
//! Values are read from per-worker shards and atomics: a scrape never blocks traffic.

mod collect;
mod render;
mod stat;

pub(crate) use collect::collect;
pub(crate) use render::{prometheus, text_or_json};
pub use stat::{Stat, StatKind, StatsSource};
