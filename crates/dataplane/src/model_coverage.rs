//! Where each field of the model types the data plane serves with is acted on, checked when
//! the crate builds (`outrider_model::acted_on!`): each type is taken apart without `..`, so a
//! field added to the model does not build until it is listed with the files that act on it,
//! and each listed file must name the field. A field nothing acts on must say why (`unread`) —
//! the model should then reject it or list it as harmless instead of keeping it. The cluster
//! side is checked in the root crate's `src/model_coverage.rs`.
//!
//! This closes the chain the model starts: an Envoy field is converted, rejected or listed as
//! harmless (`outrider_model::IGNORED_FIELDS`), and a converted field is acted on here.

use outrider_model::{
    AccessLog, AccessLogs, CertificateKeyPair, CertificateValidation, CommonHttpOptions, CommonTls,
    DirectResponse, DownstreamTls, FilterChain, FilterChainMatch, ForwardAction, HashPolicy,
    HeaderMutations, HeaderToAdd, Http1Options, Http2Keepalive, Http2Options,
    HttpConnectionManager, InternalAddresses, Listener, LogFormat, MessageHeaderMutations,
    RedirectAction, RetryPolicy, Route, RouteConfiguration, RouteMatch, SanMatcher, TcpProxy,
    VirtualHost, WeightedCluster, WeightedClusters, acted_on,
};

acted_on!(HttpConnectionManager {
    stat_prefix: ["http_server.rs"],
    routes: ["request/route.rs"],
    // Gathered by the model's Listener::skipped_filters(), which listener_manager.rs logs
    // when the listener starts.
    skipped_filters: ["../../model/src/listener.rs"],
    common: ["http_server.rs", "request/timeouts.rs"],
    http1: ["request/admit.rs"],
    http2: ["http_server.rs"],
    server_name: ["http_server.rs"],
    server_header_transformation: ["http_server.rs"],
    max_request_headers_kb: ["http_server.rs", "request/admit.rs"],
    request_headers_timeout: ["http_server.rs"],
    stream_idle_timeout: ["request/timeouts.rs"],
    request_timeout: ["request/timeouts.rs"],
    use_remote_address: ["request/client.rs"],
    xff_num_trusted_hops: ["request/client.rs"],
    preserve_external_request_id: ["request/mod.rs"],
    skip_xff_append: ["request/client.rs"],
    append_x_forwarded_port: ["request/client.rs"],
    internal_addresses: ["request/client.rs"],
    generate_request_id: ["request/mod.rs"],
    via: ["http_server.rs", "request/client.rs"],
    always_set_request_id_in_response: ["http_server.rs"],
    strip_host_port: ["request/host.rs"],
    strip_trailing_host_dot: ["request/host.rs"],
    normalize_path: ["request/path.rs"],
    merge_slashes: ["request/path.rs"],
    escaped_slashes: ["request/path.rs"],
    suppress_envoy_headers: ["request/upstream_headers.rs", "request/error.rs"],
    upgrades: ["upgrade.rs"],
    access_log: ["http_server.rs", "access_log.rs"],
    connection_buffer_limit: ["request/forward.rs"],
});

acted_on!(CommonHttpOptions {
    idle_timeout: ["http_server.rs", "pool/lifetime.rs"],
    max_connection_duration: ["http_server.rs", "pool/lifetime.rs"],
    max_requests_per_connection: ["connection_limits.rs", "pool/lifetime.rs"],
    max_stream_duration: ["request/timeouts.rs"],
    max_headers_count: ["http_server.rs", "request/admit.rs"],
    headers_with_underscores: ["request/admit.rs"],
});

acted_on!(Http1Options {
    accept_http_10: ["request/admit.rs"],
});

acted_on!(Http2Options {
    max_concurrent_streams: ["http_server.rs"],
    initial_stream_window_size: ["http_server.rs", "pool/http2.rs"],
    initial_connection_window_size: ["http_server.rs", "pool/http2.rs"],
    keepalive: ["http_server.rs", "pool/http2.rs"],
});

acted_on!(Http2Keepalive {
    interval: ["http_server.rs", "pool/http2.rs"],
    timeout: ["http_server.rs", "pool/http2.rs"],
});

acted_on!(RouteConfiguration {
    name: ["worker_context.rs"],
    virtual_hosts: ["routing/compiled.rs"],
    ignore_port_in_host_matching: ["routing/domains.rs"],
    vhost_header: ["routing/compiled.rs"],
    header_mutations: ["route_headers.rs"],
    most_specific_header_mutations_wins: ["route_headers.rs"],
    // Read in request/mod.rs, removed by request/clean.rs (which takes them as a parameter).
    internal_only_headers: ["request/mod.rs"],
});

acted_on!(VirtualHost {
    name: [unread: "names the virtual host in Envoy's stats and logs; neither is kept here"],
    domains: ["routing/compiled.rs"],
    routes: ["routing/compiled.rs"],
    retry_policy: ["request/plan.rs"],
    include_request_attempt_count: ["request/attempt.rs"],
    include_attempt_count_in_response: ["request/respond.rs"],
    header_mutations: ["route_headers.rs"],
    require_tls: ["routing/compiled.rs"],
});

acted_on!(Route {
    name: ["request/mod.rs"],
    route_match: ["routing/compiled.rs"],
    action: ["request/mod.rs"],
    header_mutations: ["route_headers.rs"],
});

acted_on!(RouteMatch {
    path: ["routing/route_match.rs"],
    case_sensitive: ["routing/route_match.rs"],
    headers: ["routing/route_match.rs"],
    query_parameters: ["routing/route_match.rs"],
    grpc: ["routing/route_match.rs"],
});

acted_on!(ForwardAction {
    // The largest body kept for a retry (RequestBody::worth_keeping).
    retry_buffer_limit: ["request/forward.rs"],
    cluster: ["request/plan.rs"],
    cluster_not_found_response_code: ["request/forward.rs"],
    timeout: ["request/timeouts.rs"],
    retry_policy: ["request/plan.rs"],
    path_rewrite: ["routing/rewrite.rs"],
    host_rewrite: ["routing/rewrite.rs"],
    append_x_forwarded_host: ["request/upstream_headers.rs"],
    hash_policy: ["request/plan.rs"],
    priority: ["request/forward.rs"],
    upgrades: ["upgrade.rs"],
    idle_timeout: ["request/timeouts.rs"],
    stream_duration: ["request/timeouts.rs"],
    max_grpc_timeout: ["request/timeouts.rs"],
    grpc_timeout_offset: ["request/timeouts.rs"],
});

acted_on!(RedirectAction {
    scheme: ["routing/redirect.rs"],
    host: ["routing/redirect.rs"],
    port: ["routing/redirect.rs"],
    path: ["routing/redirect.rs"],
    response_code: ["routing/redirect.rs"],
    strip_query: ["routing/redirect.rs"],
});

acted_on!(DirectResponse {
    status: ["request/route.rs"],
    body: ["request/route.rs"],
});

acted_on!(RetryPolicy {
    retry_on: ["request/retry.rs"],
    num_retries: ["request/retry.rs"],
    per_try_timeout: ["request/plan.rs"],
    back_off_base: ["request/retry.rs"],
    back_off_max: ["request/retry.rs"],
    retriable_status_codes: ["request/retry.rs"],
    avoid_previous_hosts: ["request/forward.rs"],
});

acted_on!(HashPolicy {
    source: ["routing/hash_policy.rs"],
    terminal: ["routing/hash_policy.rs"],
});

acted_on!(WeightedClusters {
    clusters: ["routing/weighted.rs"],
    total_weight: ["routing/weighted.rs"],
    random_value_header: ["routing/weighted.rs"],
});

acted_on!(WeightedCluster {
    target: ["routing/weighted.rs"],
    weight: ["routing/weighted.rs"],
    host_rewrite_literal: ["routing/rewrite.rs"],
    header_mutations: ["route_headers.rs"],
});

acted_on!(MessageHeaderMutations {
    request: ["route_headers.rs"],
    response: ["route_headers.rs"],
});

acted_on!(HeaderMutations {
    add: ["route_headers.rs", "../../model/src/header_mutation.rs"],
    remove: ["../../model/src/header_mutation.rs"],
});

acted_on!(HeaderToAdd {
    name: ["../../model/src/header_mutation.rs"],
    value: ["route_headers.rs"],
    action: ["../../model/src/header_mutation.rs"],
    keep_empty_value: ["../../model/src/header_mutation.rs"],
});

acted_on!(InternalAddresses {
    ranges: ["../../model/src/internal_address.rs"],
});

acted_on!(Listener {
    name: ["listener_manager.rs"],
    address: ["listener_manager.rs"],
    // Names listener.<prefix>.downstream_global_cx_overflow, the one listener stat kept.
    stat_prefix: ["downstream_connections.rs"],
    filter_chains: ["filter_chain.rs"],
    default_filter_chain: ["filter_chain.rs"],
    tcp_backlog_size: ["listener_manager.rs"],
    tcp_keepalive: ["listener_manager.rs"],
    inbound: ["listener_manager.rs"],
    ignore_global_conn_limit: ["downstream_connections.rs"],
});

acted_on!(FilterChain {
    name: [unread: "names the chain in Envoy's stats and logs; neither is kept here"],
    filter_chain_match: ["filter_chain.rs"],
    tls: ["connection.rs", "http_server.rs"],
    handshake_timeout: ["connection.rs", "http_server.rs"],
    filter: ["connection.rs", "filter_chain.rs"],
});

// Built into `server` by the model (`tls.rs`), which the handshakes use.
acted_on!(DownstreamTls {
    require_client_certificate: ["../../model/src/tls.rs"],
    require_sni: ["downstream_io.rs"],
    common: ["../../model/src/tls.rs"],
    full_scan_certs_on_sni_mismatch: ["../../model/src/tls.rs"],
    prefer_client_ciphers: ["../../model/src/tls.rs"],
    server: ["downstream_io.rs"],
});

acted_on!(CommonTls {
    certificates: ["../../model/src/tls.rs"],
    validation: ["../../model/src/tls.rs"],
    alpn_protocols: ["../../model/src/tls.rs"],
    min_version: ["../../model/src/tls.rs"],
    max_version: ["../../model/src/tls.rs"],
    cipher_suites: ["../../model/src/tls.rs"],
    ecdh_curves: ["../../model/src/tls.rs"],
});

acted_on!(CertificateKeyPair {
    certificate_chain: ["../../model/src/tls.rs"],
    private_key: ["../../model/src/tls.rs"],
    loaded: ["../../model/src/tls.rs"],
});

acted_on!(CertificateValidation {
    trusted_ca: ["../../model/src/tls.rs"],
    ca_certificates: ["../../model/src/tls.rs"],
    system_root_certs: ["../../model/src/tls.rs"],
    subject_alt_names: ["../../model/src/tls.rs"],
});

acted_on!(SanMatcher {
    san_type: ["../../model/src/tls.rs"],
    matcher: ["../../model/src/tls.rs"],
});

acted_on!(FilterChainMatch {
    destination_port: ["filter_chain.rs"],
    prefix_ranges: ["filter_chain.rs"],
    direct_source_prefix_ranges: ["filter_chain.rs"],
    source_type: ["filter_chain.rs"],
    source_prefix_ranges: ["filter_chain.rs"],
    source_ports: ["filter_chain.rs"],
    server_names: ["filter_chain.rs"],
    transport_protocol: ["filter_chain.rs"],
    application_protocols: ["filter_chain.rs"],
});

acted_on!(TcpProxy {
    stat_prefix: [unread: "names tcp.<prefix>.* stats, which are not kept"],
    cluster: ["tcp_proxy.rs"],
    max_connect_attempts: ["tcp_proxy.rs"],
});

acted_on!(AccessLogs {
    logs: ["access_log.rs"],
    request_headers: ["access_log.rs"],
    response_headers: ["access_log.rs"],
});

acted_on!(AccessLog {
    sink: ["access_log.rs"],
    format: ["access_log.rs"],
    filter: ["access_log.rs"],
});

acted_on!(LogFormat {
    kind: ["access_log_format.rs"],
    omit_empty_values: ["access_log_format.rs"],
});
