//! The fields the model reads past on purpose, each with why that is harmless: setting one
//! changes nothing a client or an upstream can see. `outrider validate` reports them as
//! "ignored" (rather than "enforced") when a configuration sets them.
//!
//! Every `field: _` in the model's destructuring must be listed here or in
//! [`READ_ELSEWHERE`] (a test scans the sources), so a field cannot be dropped silently.

/// A field of an Envoy message that is accepted and has no effect here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IgnoredField {
    /// The message's full name (`envoy.config.cluster.v3.Cluster`).
    pub message: &'static str,
    pub field: &'static str,
    pub why: &'static str,
    /// Ignored only within this message (the field is enforced elsewhere).
    pub within: Option<&'static str>,
}

const fn ignored(message: &'static str, field: &'static str, why: &'static str) -> IgnoredField {
    IgnoredField {
        message,
        field,
        why,
        within: None,
    }
}

/// Ignored in `message` where it is part of a `within` (and enforced elsewhere).
const fn ignored_within(
    within: &'static str,
    message: &'static str,
    field: &'static str,
    why: &'static str,
) -> IgnoredField {
    IgnoredField {
        message,
        field,
        why,
        within: Some(within),
    }
}

const CLUSTER: &str = "envoy.config.cluster.v3.Cluster";
const LISTENER: &str = "envoy.config.listener.v3.Listener";
const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER: &str = "envoy.extensions.filters.http.router.v3.Router";
const HTTP2: &str = "envoy.config.core.v3.Http2ProtocolOptions";
const HEALTH_CHECK: &str = "envoy.config.core.v3.HealthCheck";
const TCP_PROXY: &str = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
const ROUTE: &str = "envoy.config.route.v3.Route";
const VIRTUAL_HOST: &str = "envoy.config.route.v3.VirtualHost";

const METADATA: &str = "read by filters and access logs only, neither of which reads metadata here";
const STATS_ONLY: &str = "changes which stats exist or what they are called, not traffic";
const CODEC_TUNING: &str = "tunes Envoy's HTTP/2 codec; the h2 crate applies its own limits, and what is proxied is \
     the same";
const TLS_SESSION: &str = "session resumption and handshake tuning: cost only";
const HEALTH_EVENTS: &str = "health-check event logging: which hosts are healthy is the same";
const TCP_PROXY_LOG: &str = "options of `access_log`, which is refused when set";

pub const IGNORED_FIELDS: &[IgnoredField] = &[
    ignored_within(
        CLUSTER,
        "envoy.config.core.v3.Http1ProtocolOptions",
        "accept_http_10",
        "governs HTTP/1.0 requests a codec receives; an upstream connection receives none \
         (Envoy's upstream codec ignores it too)",
    ),
    ignored(
        "envoy.config.route.v3.RetryPolicy",
        "host_selection_retry_max_attempts",
        "tried hosts are skipped outright and taken again only when no other host is left, \
         where Envoy's re-picks end too",
    ),
    ignored(
        "envoy.config.accesslog.v3.AccessLog",
        "name",
        "names the logger only; its typed config decides",
    ),
    ignored(
        "envoy.config.core.v3.SubstitutionFormatString",
        "content_type",
        "Envoy reads it for local replies only; access logs ignore it in Envoy too",
    ),
    ignored(
        "envoy.config.core.v3.SubstitutionFormatString",
        "json_format_options",
        "JSON keys are always written sorted, which is all it asks for",
    ),
    ignored(
        "envoy.config.core.v3.RuntimeUInt32",
        "runtime_key",
        "no Envoy runtime key can be set (the bootstrap refuses them), so the default applies, \
         as in an Envoy whose runtime lacks the key",
    ),
    ignored(
        "envoy.config.core.v3.SocketAddress",
        "ipv4_compat",
        "Linux dual-stack sockets accept IPv4 on `::` by default, which is what it asks for",
    ),
    ignored(CLUSTER, "stats_matcher", STATS_ONLY),
    ignored(
        CLUSTER,
        "per_connection_buffer_limit_bytes",
        "tunes flow control only",
    ),
    ignored(
        CLUSTER,
        "wait_for_warm_on_init",
        "only decides whether start-up waits for the cluster",
    ),
    ignored(
        CLUSTER,
        "cleanup_interval",
        "used by ORIGINAL_DST clusters only, which are refused",
    ),
    ignored(CLUSTER, "metadata", METADATA),
    ignored(
        CLUSTER,
        "lrs_server",
        "not implemented by Envoy either: load reports go to the bootstrap's LRS server",
    ),
    ignored(CLUSTER, "track_timeout_budgets", STATS_ONLY),
    ignored(CLUSTER, "track_cluster_stats", STATS_ONLY),
    ignored(
        CLUSTER,
        "preconnect_policy",
        "pre-connecting is an optimisation; the connections used are the same",
    ),
    ignored(
        "envoy.config.cluster.v3.Cluster.CommonLbConfig",
        "update_merge_window",
        "batches host-set updates in time; the host set is the same",
    ),
    ignored(
        "envoy.config.endpoint.v3.LocalityLbEndpoints",
        "metadata",
        METADATA,
    ),
    ignored(
        "envoy.config.endpoint.v3.LocalityLbEndpoints",
        "proximity",
        "not implemented by Envoy either",
    ),
    ignored(
        "envoy.config.endpoint.v3.Endpoint",
        "observability_name",
        "names the host in stats and logs only",
    ),
    ignored("envoy.config.listener.v3.FilterChain", "metadata", METADATA),
    ignored(HEALTH_CHECK, "event_log_path", HEALTH_EVENTS),
    ignored(HEALTH_CHECK, "event_logger", HEALTH_EVENTS),
    ignored(HEALTH_CHECK, "event_service", HEALTH_EVENTS),
    ignored(
        HEALTH_CHECK,
        "always_log_health_check_failures",
        HEALTH_EVENTS,
    ),
    ignored(
        HEALTH_CHECK,
        "always_log_health_check_success",
        HEALTH_EVENTS,
    ),
    ignored(
        "envoy.config.core.v3.HealthCheck.HttpHealthCheck",
        "response_buffer_size",
        "only bounds how much of the body `receive` inspects",
    ),
    ignored(HCM, "drain_timeout_jitter", "spreads drains over time only"),
    ignored(
        HCM,
        "stream_error_on_invalid_http_message",
        "a malformed HTTP/2 stream is reset, Envoy's behaviour with true (README)",
    ),
    ignored(
        HCM,
        "add_proxy_protocol_connection_state",
        "PROXY-protocol state for filters that are not built",
    ),
    ignored(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.InternalAddressConfig",
        "unix_sockets",
        "no listener is a Unix socket (refused), so no peer is one",
    ),
    ignored(ROUTER, "dynamic_stats", STATS_ONLY),
    ignored(
        ROUTER,
        "start_child_span",
        "tracing only, which is not built",
    ),
    ignored(
        ROUTER,
        "upstream_log_options",
        "options of `upstream_log`, which is refused when set",
    ),
    ignored(
        ROUTER,
        "suppress_grpc_request_failure_code_stats",
        STATS_ONLY,
    ),
    ignored(
        ROUTER,
        "reject_connect_request_early_data",
        "matters for CONNECT only, which is refused",
    ),
    ignored(
        "envoy.config.core.v3.Http1ProtocolOptions",
        "allow_absolute_url",
        "absolute URLs are accepted, as with Envoy's default",
    ),
    ignored(
        "envoy.config.core.v3.Http1ProtocolOptions",
        "override_stream_error_on_invalid_http_message",
        "how the codec reports an error (reset or 400), not what is proxied",
    ),
    ignored(
        "envoy.config.core.v3.Http1ProtocolOptions",
        "use_balsa_parser",
        "a parser choice inside Envoy",
    ),
    ignored(HTTP2, "hpack_table_size", CODEC_TUNING),
    ignored(HTTP2, "max_outbound_frames", CODEC_TUNING),
    ignored(HTTP2, "max_outbound_control_frames", CODEC_TUNING),
    ignored(
        HTTP2,
        "max_consecutive_inbound_frames_with_empty_payload",
        CODEC_TUNING,
    ),
    ignored(
        HTTP2,
        "max_inbound_priority_frames_per_stream",
        CODEC_TUNING,
    ),
    ignored(
        HTTP2,
        "max_inbound_window_update_frames_per_data_frame_sent",
        CODEC_TUNING,
    ),
    ignored(
        HTTP2,
        "stream_error_on_invalid_http_messaging",
        CODEC_TUNING,
    ),
    ignored(
        HTTP2,
        "override_stream_error_on_invalid_http_message",
        CODEC_TUNING,
    ),
    ignored(HTTP2, "use_oghttp2_codec", CODEC_TUNING),
    ignored(HTTP2, "max_metadata_size", CODEC_TUNING),
    ignored(HTTP2, "enable_huffman_encoding", CODEC_TUNING),
    ignored(HTTP2, "max_header_field_size_kb", CODEC_TUNING),
    ignored(HTTP2, "disallow_obs_text", CODEC_TUNING),
    ignored(HTTP2, "stream_reset_burst", CODEC_TUNING),
    ignored(HTTP2, "stream_reset_rate", CODEC_TUNING),
    ignored(
        "envoy.config.core.v3.KeepaliveSettings",
        "interval_jitter",
        "spreads PINGs over time only",
    ),
    ignored(LISTENER, "stats_matcher", STATS_ONLY),
    ignored(LISTENER, "metadata", METADATA),
    ignored(
        LISTENER,
        "tcp_fast_open_queue_length",
        "TCP Fast Open only shortens handshakes",
    ),
    ignored(
        LISTENER,
        "connection_balance_config",
        "how connections spread over workers; SO_REUSEPORT spreads them here",
    ),
    ignored(LISTENER, "reuse_port", "SO_REUSEPORT is always used"),
    ignored(LISTENER, "enable_reuse_port", "SO_REUSEPORT is always used"),
    ignored(
        LISTENER,
        "max_connections_to_accept_per_socket_event",
        "accept batching: performance only",
    ),
    ignored(
        LISTENER,
        "bypass_overload_manager",
        "exempts from overload actions, which the bootstrap refuses (the global connection limit has ignore_global_conn_limit)",
    ),
    ignored(
        "envoy.config.route.v3.RouteConfiguration",
        "metadata",
        METADATA,
    ),
    ignored(VIRTUAL_HOST, "virtual_clusters", STATS_ONLY),
    ignored(
        VIRTUAL_HOST,
        "cors",
        "a CORS policy acts only through the CORS HTTP filter, which is refused",
    ),
    ignored(VIRTUAL_HOST, "metadata", METADATA),
    ignored(ROUTE, "metadata", METADATA),
    ignored(ROUTE, "decorator", "tracing only, which is not built"),
    ignored(ROUTE, "tracing", "tracing only, which is not built"),
    ignored(ROUTE, "stat_prefix", STATS_ONLY),
    ignored(
        "envoy.config.route.v3.RouteAction",
        "include_vh_rate_limits",
        "matters with `rate_limits` only, which are refused",
    ),
    ignored(
        "envoy.config.route.v3.RouteAction",
        "cors",
        "a CORS policy acts only through the CORS HTTP filter, which is refused",
    ),
    ignored(
        "envoy.config.route.v3.WeightedCluster",
        "total_weight",
        "deprecated: Envoy uses the sum of the weights, as here",
    ),
    ignored(
        "envoy.config.route.v3.WeightedCluster",
        "runtime_key_prefix",
        "no Envoy runtime key can be set, so the configured weights apply, as in an Envoy \
         without those keys",
    ),
    ignored(
        TCP_PROXY,
        "max_downstream_connection_duration_jitter_percentage",
        "spreads connection closes over time only",
    ),
    ignored(TCP_PROXY, "access_log_flush_interval", TCP_PROXY_LOG),
    ignored(TCP_PROXY, "flush_access_log_on_connected", TCP_PROXY_LOG),
    ignored(TCP_PROXY, "access_log_options", TCP_PROXY_LOG),
    ignored(
        TCP_PROXY,
        "proxy_protocol_tlv_merge_policy",
        "applies to `proxy_protocol_tlvs` only, which are refused",
    ),
    ignored(
        TCP_PROXY,
        "check_drain_close",
        "whether a draining listener closes idle TCP proxies early: drain timing only",
    ),
    ignored(
        "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "max_session_keys",
        TLS_SESSION,
    ),
    ignored(
        "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "enforce_rsa_key_usage",
        "rustls always enforces RSA key usage",
    ),
    ignored(
        "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "disable_stateful_session_resumption",
        TLS_SESSION,
    ),
    ignored(
        "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "session_timeout",
        TLS_SESSION,
    ),
    ignored(
        "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
        "only_verify_leaf_cert_crl",
        "refines CRL checking only, which is refused",
    ),
];

/// Fields destructured as `_` because another place reads or checks them (named here for the
/// source scan in the tests).
pub const READ_ELSEWHERE: &[&str] = &[
    // The circuit breaker's loop over thresholds reads it.
    "priority",
    // `reject_unenforced` refuses values other than Envoy's defaults.
    "stream_flush_timeout",
    "drain_timeout",
    "delayed_close_timeout",
    "proxy_100_continue",
    // Decided by the list of harmless filters.
    "is_optional",
    // Checked together with `listener_filters_timeout`.
    "continue_on_listener_filters_timeout",
];

/// Why `field` of `message` is ignored, if it is; `is_within` says whether the field is
/// nested in a message (by full name).
pub fn ignored_field(
    message: &str,
    field: &str,
    is_within: impl Fn(&str) -> bool,
) -> Option<&'static IgnoredField> {
    IGNORED_FIELDS
        .iter()
        .find(|f| f.message == message && f.field == field && f.within.is_none_or(&is_within))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry names a real field of a real message.
    #[test]
    fn entries_name_real_fields() {
        for entry in IGNORED_FIELDS {
            let message = outrider_envoy_json::descriptor(entry.message)
                .unwrap_or_else(|e| panic!("{}: {e}", entry.message));
            assert!(
                message.get_field_by_name(entry.field).is_some(),
                "{}.{} does not exist",
                entry.message,
                entry.field
            );
            if let Some(within) = entry.within {
                outrider_envoy_json::descriptor(within).unwrap_or_else(|e| panic!("{within}: {e}"));
            }
        }
    }

    /// Every `field: _` of the model's destructuring is listed for the message it belongs to,
    /// here or in `READ_ELSEWHERE`.
    #[test]
    fn every_skipped_field_is_listed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut unlisted = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("src") {
            let path = entry.expect("an entry").path();
            let text = std::fs::read_to_string(&path).expect("a source file");
            for (message, field) in skipped_fields(&text) {
                let listed = READ_ELSEWHERE.contains(&field.as_str())
                    || IGNORED_FIELDS.iter().any(|f| {
                        // A field ignored only within a message is converted elsewhere.
                        f.field == field
                            && f.within.is_none()
                            && message
                                .as_deref()
                                .is_some_and(|m| f.message.rsplit('.').next() == Some(m))
                    });
                if !listed {
                    unlisted.push(format!("{}: {message:?}.{field}", path.display()));
                }
            }
        }
        assert!(unlisted.is_empty(), "not in IGNORED_FIELDS: {unlisted:#?}");
    }

    /// `(message, field)` of each `field: _,` line of `source`: the message is the type named
    /// where the innermost open `{` opens (`let pb::Cluster {`, `core::DataSource {`), with a
    /// `Pb` alias prefix taken off.
    fn skipped_fields(source: &str) -> Vec<(Option<String>, String)> {
        let mut open: Vec<Option<String>> = Vec::new();
        let mut skipped = Vec::new();
        for line in source.lines() {
            let line = line.trim();
            if line.starts_with("//") {
                continue;
            }
            if let Some(field) = line.strip_suffix(": _,") {
                skipped.push((open.last().cloned().flatten(), field.to_string()));
            }
            for (at, c) in line.char_indices() {
                match c {
                    '{' => open.push(pattern_type(&line[..at])),
                    '}' => {
                        open.pop();
                    }
                    _ => {}
                }
            }
        }
        skipped
    }

    /// The type a `{` after `before` opens a pattern of, if `before` ends with one.
    fn pattern_type(before: &str) -> Option<String> {
        let path = before.trim_end().rsplit([' ', '(', '&']).next()?;
        let name = path.rsplit("::").next()?;
        let name = name.strip_prefix("Pb").unwrap_or(name);
        let valid = name.starts_with(|c: char| c.is_ascii_uppercase())
            && name.chars().all(|c| c.is_ascii_alphanumeric());
        valid.then(|| name.to_string())
    }

    #[test]
    fn skipped_fields_know_their_message() {
        let source = "let pb::Cluster {\n    name,\n    // A comment { with braces\n    metadata: _,\n    x: Some(core::DataSource {\n        filename: _,\n    }),\n    tail: _,\n} = proto;\nif a { b: _, }";
        assert_eq!(
            skipped_fields(source),
            [
                (Some("Cluster".into()), "metadata".into()),
                (Some("DataSource".into()), "filename".into()),
                (Some("Cluster".into()), "tail".into()),
            ]
        );
    }
}
