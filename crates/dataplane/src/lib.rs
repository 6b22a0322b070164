//! The data plane: per-core workers that accept connections on the listeners of the tables,
//! route, balance and proxy. See `worker.rs` for the threading model.

mod access_log;
mod connection;
mod connection_lifetime;
mod drain;
mod fast_map;
mod forward;
mod headers;
mod http1_pool;
mod http2_pool;
mod http_proxy;
mod http_server;
mod http_stats;
mod internal_request;
mod listener_manager;
mod local_reply;
mod no_healthy;
mod route_headers;
pub mod routing;
mod socket;
mod tcp_proxy;
mod underscore_headers;
mod upgrade;
mod upstream_connect;
mod worker;
mod worker_context;

pub use http_stats::{HttpCounters, HttpStats, HttpStatsRegistry};
pub use listener_manager::ActiveListener;
pub use worker::{Dataplane, DataplaneOptions};
