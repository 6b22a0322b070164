//! Where each field of the cluster-side model types is acted on, checked when the crate
//! builds (`outrider_model::acted_on!`): clusters, endpoints, health checks, outlier
//! detection, circuit breakers, load balancing, DNS. The listener and HTTP side is checked in
//! `crates/dataplane/src/model_coverage.rs`. Paths are relative to this file; a file listed
//! for a field acts on it (or copies it, under the same name, into what acts on it).

use outrider_model::{
    CircuitBreakers, Cluster, ClusterLoadAssignment, CommonLbConfig, ConfigSource, Discovery,
    DnsSettings, DropOverload, EndpointAddress, EndpointHealthCheck, GrpcHealthCheck, HealthCheck,
    HttpHealthCheck, LbEndpoint, LbPolicy, Locality, LocalityLbEndpoints, OutlierDetection,
    TcpHealthCheck, TcpKeepalive, Thresholds, UpstreamHttpOptions, UpstreamTls, acted_on,
};

// Built into `client` by the model (`tls.rs`), which the connections use.
acted_on!(UpstreamTls {
    sni: ["../crates/model/src/tls.rs"],
    common: ["../crates/model/src/tls.rs"],
    client: ["../crates/dataplane/src/pool/connect.rs"],
});

acted_on!(Cluster {
    // ConnectOptions::of -> the TLS handshake after the TCP connect (HTTP pools, tcp_proxy).
    tls: ["../crates/dataplane/src/pool/connect.rs"],
    // Read through Cluster::name() (model cluster.rs), which keys the cluster in the tables
    // (snapshot.rs: routes, tcp_proxy and EDS find it by name); the key names
    // cluster.<name>.* stats unless alt_stat_name is set (admin stats/collect.rs).
    name: ["../crates/model/src/cluster.rs"],
    // Decides where endpoints come from: kept / reset on update (snapshot), DNS refresh
    // loop (dns_discovery), LRS cluster_service_name (load_report).
    discovery: [
        "../crates/tables/src/snapshot.rs",
        "../crates/dns/src/refresh.rs",
        "../crates/report/src/load_report.rs",
    ],
    // ConnectOptions::of -> connect deadline for HTTP pools and tcp_proxy; LRS/event gRPC
    // channel connect_timeout.
    connect_timeout: [
        "../crates/dataplane/src/pool/connect.rs",
        "../crates/report/src/channel.rs"
    ],
    // Hash tables built per policy (lb_tables), per-scope picker chosen (balancer).
    lb_policy: [
        "../crates/tables/src/lb_tables.rs",
        "../crates/upstream/src/balancer.rs"
    ],
    // Panic threshold / locality weighting / pending-host exclusion into HealthConfig and
    // LocalityPicker (balancer); locality weights folded into rings and Maglev (lb_tables).
    common_lb: [
        "../crates/upstream/src/balancer.rs",
        "../crates/tables/src/lb_tables.rs"
    ],
    // try_request (forward), connection / pending limits handed to the pools (attempt).
    // Dump: admin/clusters.rs, admin/diagnose.rs.
    circuit_breakers: [
        "../crates/dataplane/src/request/forward.rs",
        "../crates/dataplane/src/request/attempt.rs",
    ],
    // Counters and crossings (record), detector loop started/stopped (runner), stale
    // FAILED_OUTLIER_CHECK cleared when removed (snapshot).
    outlier_detection: [
        "../crates/upstream/src/outlier/record.rs",
        "../crates/upstream/src/outlier/runner.rs",
        "../crates/tables/src/snapshot.rs",
    ],
    // Sessions per host (supervisor); new hosts start FAILED+PENDING_ACTIVE_HC (snapshot);
    // warming waits for the first round (config_cache); x-envoy-immediate-health-check-fail
    // honoured only with checks (attempt).
    health_checks: [
        "../crates/health-check/src/supervisor.rs",
        "../crates/tables/src/snapshot.rs",
        "../crates/xds/src/config_cache.rs",
        "../crates/dataplane/src/request/attempt.rs",
    ],
    // cluster.http.protocol (worker_context: h1/h2/downstream pool), .common (pool/lifetime:
    // idle timeout, max duration, max requests), .http2 (pool/http2: windows, keepalive).
    http: [
        "../crates/dataplane/src/worker_context.rs",
        "../crates/dataplane/src/pool/lifetime.rs",
        "../crates/dataplane/src/pool/http2.rs",
    ],
    // STATIC / DNS endpoints built into the EndpointSet (snapshot); host names resolved
    // (dns refresh).
    load_assignment: [
        "../crates/tables/src/snapshot.rs",
        "../crates/dns/src/refresh.rs"
    ],
    // SO_KEEPALIVE on pool and tcp_proxy sockets (connect), on LRS/event channels
    // (report/channel), on the ADS channel of the ADS cluster (proxy.rs).
    tcp_keepalive: [
        "../crates/dataplane/src/pool/connect.rs",
        "../crates/report/src/channel.rs",
        "proxy.rs",
    ],
    // Replaces the name in cluster.<name>.* stats. Dump: admin/clusters.rs
    // (observability_name).
    alt_stat_name: ["../crates/admin/src/stats/collect.rs"],
    // Whether EDS/DNS updates keep a removed host that passes health checks
    // (endpoint_policy in snapshot.rs -> EndpointSet::build).
    ignore_health_on_host_removal: ["../crates/tables/src/snapshot.rs"],
});

acted_on!(TcpKeepalive {
    // socket2 TcpKeepalive params (pool/connect.rs set_keepalive_on; listener_manager.rs
    // reuses it for listeners) and tonic tcp_keepalive_* (report/channel.rs).
    probes: [
        "../crates/dataplane/src/pool/connect.rs",
        "../crates/report/src/channel.rs"
    ],
    time: [
        "../crates/dataplane/src/pool/connect.rs",
        "../crates/report/src/channel.rs"
    ],
    interval: [
        "../crates/dataplane/src/pool/connect.rs",
        "../crates/report/src/channel.rs"
    ],
});

acted_on!(DnsSettings {
    // RefreshSchedule::next_delay.
    refresh_rate: ["../crates/dns/src/schedule.rs"],
    // record()/carry_over() -> expand.rs select_family (expand.rs names it `family`).
    lookup_family: [
        "../crates/dns/src/refresh.rs",
        "../crates/dns/src/resolver.rs"
    ],
    jitter: ["../crates/dns/src/schedule.rs"],
    // Exponential back-off after failed rounds.
    failure_refresh: ["../crates/dns/src/schedule.rs"],
});

acted_on!(Discovery::Eds {
    // Read through Cluster::eds_resource_name() (defined in model cluster.rs), which
    // tables/snapshot.rs (eds_index: which clusters an EDS update feeds) and
    // xds/config_cache.rs (EDS subscription names) call; load_report.rs reads the field
    // directly for LRS cluster_service_name.
    resource_name: [
        "../crates/model/src/cluster.rs",
        "../crates/report/src/load_report.rs"
    ],
    // Read through Cluster::eds_config_source() (model cluster.rs), which
    // xds/config_cache.rs `deadline()` uses for the warming deadline.
    config_source: ["../crates/model/src/cluster.rs"],
});

acted_on!(ClusterLoadAssignment {
    // An EDS resource is matched to its clusters by cla.cluster_name() (set_endpoints,
    // cluster warming). Proto-level uses: xds/validate.rs, admin/config_dump.rs.
    cluster_name: ["../crates/xds/src/config_cache.rs"],
    // Priorities / localities / hosts of the EndpointSet; DNS expansion keeps them.
    localities: [
        "../crates/tables/src/endpoint_set.rs",
        "../crates/dns/src/expand.rs"
    ],
    // Copied into EndpointSet (endpoint_set) and HealthConfig (balancer); priority spill-over
    // and locality effective weights computed in health_summary.rs -> priority.rs.
    overprovisioning_factor: [
        "../crates/tables/src/endpoint_set.rs",
        "../crates/upstream/src/balancer.rs",
        "../crates/upstream/src/health_summary.rs",
    ],
    // Copied into EndpointSet; requests shed with DropOverload before any resource is taken
    // (forward.rs); LRS dropped_requests (load_report.rs).
    drop_overloads: [
        "../crates/tables/src/endpoint_set.rs",
        "../crates/dataplane/src/request/forward.rs",
        "../crates/report/src/load_report.rs",
    ],
    // Health basis = host weight instead of 1 (health_summary.rs).
    weighted_priority_health: [
        "../crates/tables/src/endpoint_set.rs",
        "../crates/upstream/src/balancer.rs",
        "../crates/upstream/src/health_summary.rs",
    ],
});

acted_on!(LocalityLbEndpoints {
    // Copied into LocalityEndpoints.locality; LRS upstream_locality_stats per locality
    // (load_report.rs). Dump: admin/clusters.rs.
    locality: [
        "../crates/tables/src/endpoint_set.rs",
        "../crates/report/src/load_report.rs"
    ],
    // Index of the PriorityLevel the hosts go to.
    priority: ["../crates/tables/src/endpoint_set.rs"],
    // Copied as LocalityEndpoints.weight -> host_table.rs LocalitySlot.weight, read by
    // health_summary.rs (effective locality weight), locality.rs (smooth WRR) and
    // lb_tables/ring_hash.rs normalized_weights (rings / Maglev). Those files use `weight`.
    load_balancing_weight: ["../crates/tables/src/endpoint_set.rs"],
    lb_endpoints: [
        "../crates/tables/src/endpoint_set.rs",
        "../crates/dns/src/expand.rs"
    ],
});

acted_on!(Locality {
    // Reported to the LRS server (locality_proto). Nothing else reads it: zone-aware routing
    // needs cluster_manager.local_cluster_name, which bootstrap/unenforced.rs rejects.
    // Dump: admin/clusters.rs (/clusters region/zone/sub_zone).
    region: ["../crates/report/src/load_report.rs"],
    zone: ["../crates/report/src/load_report.rs"],
    sub_zone: ["../crates/report/src/load_report.rs"],
});

acted_on!(LbEndpoint {
    // Host identity across updates (endpoint_set), copied into EndpointState (endpoint_state);
    // connected to (attempt, tcp_proxy); DNS names resolved (expand).
    address: [
        "../crates/tables/src/endpoint_set.rs",
        "../crates/tables/src/endpoint_state.rs",
        "../crates/dataplane/src/request/attempt.rs",
        "../crates/dataplane/src/tcp_proxy.rs",
        "../crates/dns/src/expand.rs",
    ],
    // Host for auto_host_rewrite (attempt -> routing/rewrite.rs auto_host); a DNS endpoint
    // defaults to its DNS name (expand). Dump: admin/clusters.rs.
    // See PARTIAL: not refreshed for a kept address (as in Envoy's in-place update).
    hostname: [
        "../crates/tables/src/endpoint_state.rs",
        "../crates/dataplane/src/request/attempt.rs",
        "../crates/dns/src/expand.rs",
    ],
    // FAILED_EDS_HEALTH / DEGRADED_EDS_HEALTH flags (new and refresh).
    health_status: ["../crates/tables/src/endpoint_state.rs"],
    // Copied into the `weight` atomic (new and refresh) -> host_table.rs weights, read by
    // round_robin/least_request/random/edf, ring_hash.rs, maglev.rs.
    load_balancing_weight: ["../crates/tables/src/endpoint_state.rs"],
    // Split into health_check_port / active_health_check_disabled / HealthCheckState
    // hostname (see EndpointHealthCheck).
    health_check: ["../crates/tables/src/endpoint_state.rs"],
});

acted_on!(EndpointHealthCheck {
    // Copied as EndpointState.health_check_port; health-check/target.rs checks that port; a
    // change makes a new host (EndpointState::keeps_identity).
    port: ["../crates/tables/src/endpoint_state.rs"],
    // Copied into HealthCheckState.hostname; target.rs makes it the check's Host/:authority
    // (before HttpHealthCheck.host / GrpcHealthCheck.authority and the cluster name).
    hostname: [
        "../crates/tables/src/endpoint_state.rs",
        "../crates/health-check/src/target.rs"
    ],
    // New host not started PENDING/FAILED_ACTIVE_HC; copied as active_health_check_disabled,
    // read by health-check/supervisor.rs + session.rs (no session) and
    // dataplane/request/attempt.rs (immediate-fail header ignored).
    disable_active_health_check: ["../crates/tables/src/endpoint_state.rs"],
});

acted_on!(DropOverload {
    // LRS dropped_requests[].category.
    category: ["../crates/report/src/load_report.rs"],
    // Drop probability per request.
    parts_per_million: ["../crates/dataplane/src/request/forward.rs"],
});

acted_on!(HealthCheck {
    // tokio::time::timeout around each check (session); gRPC request deadline (checker).
    timeout: [
        "../crates/health-check/src/session.rs",
        "../crates/health-check/src/checker.rs"
    ],
    // base_interval / with_jitter / initial_delay, called by session.rs.
    interval: ["../crates/health-check/src/interval.rs"],
    initial_jitter: ["../crates/health-check/src/interval.rs"],
    interval_jitter: ["../crates/health-check/src/interval.rs"],
    interval_jitter_percent: ["../crates/health-check/src/interval.rs"],
    // CheckerState::new(healthy_threshold, unhealthy_threshold) (session) -> transitions.
    unhealthy_threshold: [
        "../crates/health-check/src/session.rs",
        "../crates/health-check/src/state_machine.rs",
    ],
    healthy_threshold: [
        "../crates/health-check/src/session.rs",
        "../crates/health-check/src/state_machine.rs",
    ],
    // Passed to each checker, which keeps or drops its connection.
    reuse_connection: [
        "../crates/health-check/src/checker.rs",
        "../crates/health-check/src/http_check.rs",
        "../crates/health-check/src/tcp_check.rs",
        "../crates/health-check/src/grpc_check.rs",
    ],
    no_traffic_interval: ["../crates/health-check/src/interval.rs"],
    no_traffic_healthy_interval: ["../crates/health-check/src/interval.rs"],
    unhealthy_interval: ["../crates/health-check/src/interval.rs"],
    unhealthy_edge_interval: ["../crates/health-check/src/interval.rs"],
    healthy_edge_interval: ["../crates/health-check/src/interval.rs"],
    // Which checker (HTTP / TCP / gRPC) runs.
    checker: ["../crates/health-check/src/checker.rs"],
});

acted_on!(HttpHealthCheck {
    // Target::of(endpoint, &http.host, cluster) -> Host header.
    host: ["../crates/health-check/src/checker.rs"],
    path: ["../crates/health-check/src/http_check.rs"],
    method: ["../crates/health-check/src/http_check.rs"],
    expected_statuses: ["../crates/health-check/src/http_check.rs"],
    // A failure in these ranges counts towards unhealthy_threshold instead of failing at once.
    retriable_statuses: ["../crates/health-check/src/http_check.rs"],
    // h2 prior-knowledge handshake instead of HTTP/1.1.
    http2: ["../crates/health-check/src/http_check.rs"],
    request_headers: ["../crates/health-check/src/http_check.rs"],
});

acted_on!(TcpHealthCheck {
    // Written after connect when `receive` is set; with `receive` empty the check is
    // connect-only and nothing is written -- Envoy documents the same (its connect-only
    // session closes on connect, "bytes to write ... will not be written").
    send: ["../crates/health-check/src/tcp_check.rs"],
    receive: ["../crates/health-check/src/tcp_check.rs"],
});

acted_on!(GrpcHealthCheck {
    // HealthCheckRequest.service.
    service_name: ["../crates/health-check/src/grpc_check.rs"],
    // Target::of(endpoint, &grpc.authority, cluster) -> :authority.
    authority: ["../crates/health-check/src/checker.rs"],
});

acted_on!(OutlierDetection {
    // Consecutive-error thresholds: a crossing wakes the detector.
    consecutive_5xx: ["../crates/upstream/src/outlier/record.rs"],
    consecutive_gateway_failure: ["../crates/upstream/src/outlier/record.rs"],
    consecutive_local_origin_failure: ["../crates/upstream/src/outlier/record.rs"],
    // Detector tick (runner); multiplier decay after a whole interval in service (ejection).
    interval: [
        "../crates/upstream/src/outlier/runner.rs",
        "../crates/upstream/src/outlier/ejection.rs",
    ],
    base_ejection_time: ["../crates/upstream/src/outlier/ejection.rs"],
    max_ejection_time: ["../crates/upstream/src/outlier/ejection.rs"],
    max_ejection_time_jitter: ["../crates/upstream/src/outlier/ejection.rs"],
    max_ejection_percent: ["../crates/upstream/src/outlier/ejection.rs"],
    // enforcing(): probability that a detection ejects.
    enforcing_consecutive_5xx: ["../crates/upstream/src/outlier/ejection.rs"],
    enforcing_consecutive_gateway_failure: ["../crates/upstream/src/outlier/ejection.rs"],
    enforcing_consecutive_local_origin_failure: ["../crates/upstream/src/outlier/ejection.rs"],
    enforcing_success_rate: ["../crates/upstream/src/outlier/ejection.rs"],
    enforcing_local_origin_success_rate: ["../crates/upstream/src/outlier/ejection.rs"],
    enforcing_failure_percentage: ["../crates/upstream/src/outlier/ejection.rs"],
    enforcing_failure_percentage_local_origin: ["../crates/upstream/src/outlier/ejection.rs"],
    // judge() passes these to success_rate.rs / failure_percentage.rs `outliers` (which name
    // them minimum_hosts, request_volume, stdev_factor_thousandths, threshold).
    success_rate_minimum_hosts: ["../crates/upstream/src/outlier/detector.rs"],
    success_rate_request_volume: ["../crates/upstream/src/outlier/detector.rs"],
    success_rate_stdev_factor: ["../crates/upstream/src/outlier/detector.rs"],
    failure_percentage_threshold: ["../crates/upstream/src/outlier/detector.rs"],
    failure_percentage_minimum_hosts: ["../crates/upstream/src/outlier/detector.rs"],
    failure_percentage_request_volume: ["../crates/upstream/src/outlier/detector.rs"],
    // Local-origin errors counted separately (record) and judged separately (detector).
    split_external_local_origin_errors: [
        "../crates/upstream/src/outlier/record.rs",
        "../crates/upstream/src/outlier/detector.rs",
    ],
    // A passing active check un-ejects at once (uneject_outlier).
    successful_active_health_check_uneject_host: ["../crates/health-check/src/session.rs"],
    always_eject_one_host: ["../crates/upstream/src/outlier/ejection.rs"],
});

acted_on!(Thresholds {
    // Resource::limit; try_connection (pool/mod.rs), try_pending (pool/http1.rs, http2.rs),
    // try_request (request/forward.rs), try_retry (request/retry.rs); remaining_* gauges.
    // Dump: admin/clusters.rs, admin/diagnose.rs.
    max_connections: ["../crates/upstream/src/circuit_breaker.rs"],
    max_pending_requests: ["../crates/upstream/src/circuit_breaker.rs"],
    max_requests: ["../crates/upstream/src/circuit_breaker.rs"],
    max_retries: ["../crates/upstream/src/circuit_breaker.rs"],
});

acted_on!(CircuitBreakers {
    // Read by CircuitBreakers::for_priority (model), which upstream/circuit_breaker.rs
    // Resource::limit calls with the route's priority (ForwardAction.priority).
    default: ["../crates/model/src/circuit_breaker.rs"],
    high: ["../crates/model/src/circuit_breaker.rs"],
});

acted_on!(CommonLbConfig {
    // -> HealthConfig.panic_threshold -> priority.rs PriorityLoads::recompute (0 = off).
    healthy_panic_threshold: ["../crates/upstream/src/balancer.rs"],
    // LocalityPicker + per-locality scopes (balancer); locality shares folded into ring /
    // Maglev weights (lb_tables -> ring_hash.rs normalized_weights).
    locality_weighted: [
        "../crates/upstream/src/balancer.rs",
        "../crates/tables/src/lb_tables.rs"
    ],
    // -> HealthConfig.exclude_pending -> health.rs HostClass::of (PENDING_ACTIVE_HC excluded).
    ignore_new_hosts_until_first_hc: ["../crates/upstream/src/balancer.rs"],
});

acted_on!(LbPolicy::LeastRequest {
    // Power-of-N choices (equal weights): passed to LeastRequest::new, used by its pick
    // (least_request.rs).
    choice_count: ["../crates/upstream/src/balancer.rs"],
});

acted_on!(LbPolicy::RingHash {
    // Copied into RingConfig (lb_tables), ring scaled / hashed in Ring::new (ring_hash).
    minimum_ring_size: [
        "../crates/tables/src/lb_tables.rs",
        "../crates/tables/src/lb_tables/ring_hash.rs"
    ],
    maximum_ring_size: [
        "../crates/tables/src/lb_tables.rs",
        "../crates/tables/src/lb_tables/ring_hash.rs"
    ],
    hash_function: [
        "../crates/tables/src/lb_tables.rs",
        "../crates/tables/src/lb_tables/ring_hash.rs"
    ],
});

acted_on!(LbPolicy::Maglev {
    // Passed to the table's builder (lb_tables/maglev.rs).
    table_size: ["../crates/tables/src/lb_tables.rs"],
});

acted_on!(UpstreamHttpOptions {
    // HTTP/1.1, HTTP/2 or the downstream's protocol: which pool (worker_context).
    protocol: ["../crates/dataplane/src/worker_context.rs"],
    // Upstream idle timeout, max connection duration, max requests per connection.
    common: ["../crates/dataplane/src/pool/lifetime.rs"],
    // Stream / connection windows and PING keepalive of the h2 pool.
    http2: ["../crates/dataplane/src/pool/http2.rs"],
});

acted_on!(ConfigSource {
    // How long a cluster waits for its EDS (config_cache `deadline`), a listener for its RDS
    // and the first LDS/CDS responses (ads_state) before going live without them.
    initial_fetch_timeout: [
        "../crates/xds/src/config_cache.rs",
        "../crates/xds/src/ads_state.rs"
    ],
});

acted_on!(EndpointAddress::Dns {
    // Looked up (hostnames / expand_endpoint); LRS reports the unresolved name (load_report).
    hostname: [
        "../crates/dns/src/expand.rs",
        "../crates/report/src/load_report.rs"
    ],
    // Port of each resolved IP endpoint.
    port: [
        "../crates/dns/src/expand.rs",
        "../crates/report/src/load_report.rs"
    ],
});
