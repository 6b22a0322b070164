//! Active health checks of upstream hosts, as Envoy does them: each cluster's `health_checks`
//! (HTTP over HTTP/1.1 or h2c, TCP with optional payloads, gRPC `grpc.health.v1`) run against
//! each of its hosts, one session per host and check, on the control thread's runtime.
//!
//! A session flips the host's `EndpointState` flags (`/failed_active_hc`,
//! `/pending_active_hc`, `/active_hc_timeout`, `/degraded_active_hc`) after Envoy's thresholds
//! (a new host is healthy after its first passing check; an unexpected HTTP status or a
//! NOT_SERVING answer ejects at once, connection failures and timeouts after
//! `unhealthy_threshold`), tells the balancers (`ClusterState::note_health_change`), keeps the
//! host's `HealthCheckState` and the cluster's `health_check.*` stats, publishes
//! `HostEvent::Health` on the event bus, and lifts outlier ejections of hosts that pass.
//!
//! Fast failure: when a proxied answer of a host carries `x-envoy-immediate-health-check-fail`
//! and its cluster has health checks, the data plane signals the host
//! (`HealthCheckState::signal_immediate_fail`); a session of the host takes the signal, while
//! it checks or waits, and fails the host at once through the same path as a check result, as
//! Envoy's PASSIVE failure (no threshold; `passive_failure`; the next check keeps its time).
//! With several health checks, the first session to take the signal applies it: one failing
//! check is enough to fail the host. On a check's own answer the header changes nothing, as in
//! Envoy's HTTP checker.
//!
//! Not as in Envoy: TLS to hosts (`transport_socket`) is not used by health checks (the data
//! plane has no upstream TLS either); a host failed by the header is not flagged
//! `/excluded_via_immediate_hc_fail`, so it still counts in priority and panic calculations; an
//! HTTP/2 `:authority` that cannot be a URI authority (a cluster name with `|`) is sent as
//! `host` with the address as `:authority`.

mod checker;
mod first_round;
mod grpc_check;
mod http_check;
mod interval;
mod outcome;
mod payload;
mod session;
mod state_machine;
mod supervisor;
mod target;
mod tcp_check;

pub use supervisor::run;
