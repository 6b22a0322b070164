//! Real upstream servers for Outrider's demo, end-to-end tests and load benchmark.
//!
//! [`UpstreamServer`] serves HTTP/1.1 and h2c (prior knowledge) on one port with hyper. Every
//! response carries `x-upstream-name: <name>` and `server: outrider-upstream`, so a test can see
//! which upstream answered. Endpoints:
//!
//! | request | response |
//! |---|---|
//! | `GET /` (and any unmatched path) | 200 `hello from <name>\n` |
//! | `/echo` (any method) | 200 JSON describing the request as received ([`echo`]) |
//! | `/status/<code>` | that status |
//! | `/delay/<ms>` | waits, then 200 |
//! | `/bytes/<n>` | 200 with `n` bytes |
//! | `/immediate-health-check-fail` | 200 with `x-envoy-immediate-health-check-fail: true`, as an Envoy marked failed by `/healthcheck/fail` answers |
//! | `POST`/`PUT`/`PATCH` to an unmatched path | 200 with the request body echoed back |
//! | `content-type: application/grpc*` | a minimal gRPC unary echo: the request message back, trailer `grpc-status: 0`, and the request's `grpc-timeout` in `x-received-grpc-timeout` |
//! | `GET /ws` with `Upgrade: websocket` (HTTP/1.1) | a WebSocket echo |
//! | `/healthz` (any method) | the health script's answer ([`HealthAnswer`]; 200 by default) |
//! | gRPC `/grpc.health.v1.Health/Check` | SERVING or NOT_SERVING from the same script |
//!
//! The health endpoints serve active health checks: a test scripts their answers one check at
//! a time ([`UpstreamServer::queue_health`], [`UpstreamServer::set_health`]), and they are
//! neither failed by injection nor counted as requests.
//!
//! Failures can be injected at start ([`UpstreamConfig`]) and changed at runtime
//! ([`UpstreamServer::set_failing`], [`UpstreamServer::set_fail_ratio`],
//! [`UpstreamServer::set_fail_every`]): a failed HTTP request is answered with `fail_status`
//! (503 by default), a failed gRPC request with `grpc-status: 14` (UNAVAILABLE), which is what a
//! proxy's `5xx` / `unavailable` retry policies look at.
//!
//! [`GrpcUpstream`] is a tonic server with the standard `grpc.health.v1.Health` service whose
//! status a test flips at runtime (for active gRPC health checking).

mod config;
pub mod echo;
mod grpc;
mod handler;
mod health;
mod server;
mod stats;
mod websocket;

pub use config::{UpstreamConfig, UpstreamTls};
pub use grpc::{GrpcUpstream, RECEIVED_GRPC_TIMEOUT_HEADER};
pub use health::{GRPC_HEALTH_CHECK_PATH, HEALTH_PATH, HealthAnswer, HealthRequest};
pub use server::UpstreamServer;
pub use stats::PathCounts;

/// Header naming the upstream that produced a response.
pub const UPSTREAM_NAME_HEADER: &str = "x-upstream-name";
/// Value of the `server` header on every response.
pub const SERVER_HEADER_VALUE: &str = "outrider-upstream";
/// Header set (to `true`) on responses whose failure was injected, so a test can tell an injected
/// 503 from a 503 the proxy generated itself.
pub const INJECTED_FAILURE_HEADER: &str = "x-upstream-injected-failure";
/// Envoy's header by which a host asks proxies to fail it for active health checking at once;
/// `/immediate-health-check-fail` answers with it.
pub const IMMEDIATE_HEALTH_CHECK_FAIL_HEADER: &str = "x-envoy-immediate-health-check-fail";

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid upstream config: {0}")]
    InvalidConfig(String),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("listener: {0}")]
    Listener(#[source] std::io::Error),
    #[error("an upstream server must be started from within a tokio runtime")]
    NoRuntime,
}
