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
//! Not as in Envoy: TLS to hosts (`transport_socket`) is not used by health checks (the data
//! plane has no upstream TLS either); `x-envoy-immediate-health-check-fail` is not honoured;
//! an HTTP/2 `:authority` that cannot be a URI authority (a cluster name with `|`) is sent as
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
