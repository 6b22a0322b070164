//! The data plane: per-core workers that accept connections on the listeners of the tables,
//! route, balance and proxy. See `worker.rs` for the threading model.

mod access_log;
mod access_log_filter;
mod access_log_format;
mod codec_sniff;
mod connection;
mod connection_hold;
mod connection_limits;
mod downstream_connections;
mod downstream_io;
mod drain;
mod fast_map;
mod filter_chain;
mod formatter;
mod framing_conflict;
mod head_refusal;
mod head_timer;
mod headers;
mod http_server;
mod http_stats;
mod listener_manager;
mod local_exec;
mod local_reply;
mod maybe_tls;
mod memory_bursts;
mod model_coverage;
mod no_healthy;
mod pool;
mod premature_resets;
mod request;
mod retry_buffers;
mod route_headers;
pub mod routing;
mod socket;
mod start_time;
mod stream_body;
mod stream_clock;
mod tcp_proxy;
mod tls_stats;
mod underscore_headers;
mod upgrade;
mod worker;
mod worker_context;
mod worker_handle;
mod write_through;

pub use downstream_connections::{
    DownstreamConnections, GlobalConnectionLimit, listener_stat_name,
};
pub use http_stats::{HttpCounters, HttpStats, HttpStatsRegistry};
pub use listener_manager::ActiveListener;
pub use memory_bursts::heap_trim_due;
pub use tls_stats::{TlsCounters, TlsStatsRegistry};
pub use worker::{DEFAULT_RETRY_BUFFER_BUDGET, Dataplane, DataplaneOptions};
