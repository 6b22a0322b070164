//! The `envoy.filters.network.http_connection_manager` network filter: HTTP codec, timeouts,
//! request-id and forwarding headers, HTTP filters (only the router) and the route source
//! (RDS or inline).

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::extensions::filters::http::router::v3 as router_pb;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    self as pb, http_connection_manager as hcm, http_filter,
};
use prost::Name;

use crate::access_log::{AccessLogs, access_logs};
use crate::cluster::DEFAULT_PER_CONNECTION_BUFFER_LIMIT_BYTES;
use crate::config_source::ConfigSource;
use crate::error::{Result, ValidationError, Within, non_empty, reject_if_set, required};
use crate::http_protocol::{
    CommonHttpOptions, Http1Options, Http2Options, http1_options, http2_options,
};
use crate::internal_address::InternalAddresses;
use crate::proto_value::{
    any_type_name, bool_or, decode_any, enum_value, header_value, opt_duration, timeout_or, u32_in,
};
use crate::route::RouteConfiguration;

const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_DELAYED_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
const ROUTER_FILTER_NAME: &str = "envoy.filters.http.router";

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConnectionManager {
    pub stat_prefix: String,
    pub routes: RouteSource,
    /// HTTP filters left out because their absence changes nothing a client or upstream sees
    /// ([`HARMLESS_HTTP_FILTERS`]); logged when the listener starts, listed by `validate`.
    pub skipped_filters: Vec<SkippedFilter>,
    pub common: CommonHttpOptions,
    pub http1: Http1Options,
    /// Downstream HTTP/2: streams per connection, windows, PING keepalive.
    pub http2: Http2Options,
    /// Default "envoy".
    pub server_name: String,
    pub server_header_transformation: ServerHeaderTransformation,
    /// Default 60.
    pub max_request_headers_kb: u32,
    pub request_headers_timeout: Option<Duration>,
    /// `stream_idle_timeout`: a stream with no activity either way for this long is answered
    /// 408/504 ("stream timeout"), or reset once its response has begun. Envoy's 5 min by
    /// default; `None` for `0s`. A route's `idle_timeout` replaces it.
    pub stream_idle_timeout: Option<Duration>,
    /// `request_timeout`: the whole request must arrive within this ("request timeout");
    /// `None` (Envoy's default) for none.
    pub request_timeout: Option<Duration>,
    /// `use_remote_address`: this proxy is the edge. The peer's address is appended to
    /// `x-forwarded-for`, requests from outside the internal addresses get
    /// `x-envoy-external-address`, a new `x-request-id` and an untrusted
    /// `x-forwarded-proto` replaced.
    pub use_remote_address: bool,
    /// `xff_num_trusted_hops`: addresses at the end of `x-forwarded-for` appended by proxies
    /// this one trusts; the client's address is the one before them.
    pub xff_num_trusted_hops: u32,
    /// `preserve_external_request_id`: an edge request keeps the client's `x-request-id`.
    pub preserve_external_request_id: bool,
    pub skip_xff_append: bool,
    /// `append_x_forwarded_port`: `x-forwarded-port` set to the listener's port when absent
    /// (at the edge, also replacing an untrusted one).
    pub append_x_forwarded_port: bool,
    /// `internal_address_config`: whose requests keep the `x-envoy-*` controls.
    pub internal_addresses: InternalAddresses,
    /// Default true.
    pub generate_request_id: bool,
    /// Appended to the `via` header of every request and response (`None`: not added).
    pub via: Option<String>,
    /// Copy the request's `x-request-id` into every response.
    pub always_set_request_id_in_response: bool,
    /// Remove the port from the request's host before routing and forwarding: any port
    /// (`strip_any_host_port`) or only the listener's own (`strip_matching_host_port`).
    pub strip_host_port: StripHostPort,
    /// `strip_trailing_host_dot`: `example.com.` is routed and forwarded as `example.com`.
    pub strip_trailing_host_dot: bool,
    /// `normalize_path`: RFC 3986 normalisation of the path before routing (default false,
    /// as Envoy without its runtime override).
    pub normalize_path: bool,
    /// `merge_slashes`: runs of `/` in the path become one before routing.
    pub merge_slashes: bool,
    /// `path_with_escaped_slashes_action` (`IMPLEMENTATION_SPECIFIC_DEFAULT` is Envoy's
    /// `KEEP_UNCHANGED`).
    pub escaped_slashes: EscapedSlashes,
    /// The router's `suppress_envoy_headers`: no `x-envoy-upstream-service-time`,
    /// `x-envoy-expected-rq-timeout-ms` or `x-envoy-overloaded`.
    pub suppress_envoy_headers: bool,
    /// Upgrade types (lower case) allowed on this listener, with `enabled`.
    pub upgrades: Vec<(String, bool)>,
    /// Where and how each request is logged (see `access_log.rs`).
    pub access_log: AccessLogs,
    /// The listener's `per_connection_buffer_limit_bytes` (1 MiB by default), set by the
    /// listener this connection manager serves: the largest request body kept for a retry
    /// when neither the route nor its virtual host sets `per_request_buffer_limit_bytes`.
    pub connection_buffer_limit: u32,
}

/// What the connection manager does with `%2F`, `%2f`, `%5C` and `%5c` in a request's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapedSlashes {
    KeepUnchanged,
    /// 400.
    RejectRequest,
    /// Unescaped, and the client redirected (307) to the result; gRPC requests get 400.
    UnescapeAndRedirect,
    UnescapeAndForward,
}

/// Which port, if any, is taken off the request's host (Envoy's `strip_port_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripHostPort {
    None,
    /// `strip_matching_host_port`: only the listener's port.
    Matching,
    /// `strip_any_host_port`.
    Any,
}

/// An HTTP filter we do not run because nothing observable depends on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFilter {
    /// `http_filters[i].name`.
    pub name: String,
    /// Its `typed_config` type.
    pub type_name: String,
    /// Why leaving it out is safe.
    pub why: &'static str,
}

/// The HTTP filters we leave out, by `typed_config` type, and why that is safe: each only
/// counts or exports (stats), so without it every request and response is the same. Any other
/// filter we do not implement rejects the listener, whatever its `is_optional` says: Envoy
/// skips an optional filter only when it has no such extension at all, and a user who enabled
/// RBAC or fault injection expects them to run.
pub const HARMLESS_HTTP_FILTERS: &[(&str, &str)] = &[
    (
        "envoy.extensions.filters.http.grpc_stats.v3.FilterConfig",
        "gRPC message counts in stats only",
    ),
    ("stats.PluginConfig", "Istio's request metrics only"),
];

/// Where the connection manager's routes come from.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteSource {
    Rds {
        route_config_name: String,
        config_source: ConfigSource,
    },
    Inline(Arc<RouteConfiguration>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerHeaderTransformation {
    Overwrite,
    AppendIfAbsent,
    PassThrough,
}

impl HttpConnectionManager {
    pub(crate) fn from_proto(proto: &pb::HttpConnectionManager) -> Result<Self> {
        let pb::HttpConnectionManager {
            codec_type,
            stat_prefix,
            http_filters,
            add_user_agent,
            tracing,
            common_http_protocol_options,
            http1_safe_max_connection_duration,
            http_protocol_options,
            http2_protocol_options,
            http3_protocol_options,
            server_name,
            server_header_transformation,
            scheme_header_transformation,
            max_request_headers_kb,
            stream_idle_timeout,
            // Checked by `reject_unenforced`.
            stream_flush_timeout: _,
            request_timeout,
            request_headers_timeout,
            drain_timeout: _,
            // Spreads drains over time only.
            drain_timeout_jitter: _,
            delayed_close_timeout: _,
            access_log,
            access_log_flush_interval,
            flush_access_log_on_new_request,
            access_log_options,
            use_remote_address,
            xff_num_trusted_hops,
            original_ip_detection_extensions,
            early_header_mutation_extensions,
            internal_address_config,
            skip_xff_append,
            via,
            generate_request_id,
            preserve_external_request_id,
            always_set_request_id_in_response,
            forward_client_cert_details,
            set_current_client_cert_details,
            forward_client_cert_matcher,
            proxy_100_continue: _,
            represent_ipv4_remote_address_as_ipv4_mapped_ipv6,
            upgrade_configs,
            normalize_path,
            merge_slashes,
            path_with_escaped_slashes_action,
            request_id_extension,
            local_reply_config,
            strip_matching_host_port,
            // On malformed HTTP/2 the h2 crate resets the stream, which is Envoy's behaviour
            // with true; Envoy's default (false) ends the whole connection (README).
            stream_error_on_invalid_http_message: _,
            path_normalization_options,
            strip_trailing_host_dot,
            proxy_status_config,
            typed_header_validation_config,
            append_x_forwarded_port,
            append_local_overload,
            // PROXY-protocol state for filters we do not have.
            add_proxy_protocol_connection_state: _,
            forward_proto_config,
            route_specifier,
            strip_port_mode,
        } = proto;
        reject_if_set!(
            http3_protocol_options,
            scheme_header_transformation,
            original_ip_detection_extensions,
            early_header_mutation_extensions,
            forward_client_cert_details,
            set_current_client_cert_details,
            forward_client_cert_matcher,
            represent_ipv4_remote_address_as_ipv4_mapped_ipv6,
            request_id_extension,
            local_reply_config,
            path_normalization_options,
            proxy_status_config,
            typed_header_validation_config,
            append_local_overload,
            forward_proto_config,
        );
        if bool_or(add_user_agent, false) {
            return Err(ValidationError::unsupported("add_user_agent"));
        }
        reject_unenforced(proto)?;
        // Envoy then waits for a request to answer with `connection: close` rather than
        // closing an idle HTTP/1 connection at once, as we do.
        if *http1_safe_max_connection_duration {
            return Err(ValidationError::not_enforced(
                "http1_safe_max_connection_duration",
                "an idle HTTP/1 connection is closed when its maximum duration passes",
            ));
        }
        // Extra access-log lines (periodic, at the start of a request) that we do not write.
        if access_log_flush_interval.is_some()
            || *flush_access_log_on_new_request
            || access_log_options.is_some()
        {
            return Err(ValidationError::not_enforced(
                "access_log_options",
                "no periodic or start-of-request access-log lines are written",
            ));
        }
        non_empty(stat_prefix, "stat_prefix")?;
        match enum_value::<hcm::CodecType>(*codec_type, "codec_type")? {
            hcm::CodecType::Auto => {}
            hcm::CodecType::Http1 | hcm::CodecType::Http2 => {
                return Err(ValidationError::not_enforced(
                    "codec_type",
                    "both HTTP/1.1 and HTTP/2 are served; only AUTO is accepted",
                ));
            }
            hcm::CodecType::Http3 => {
                return Err(ValidationError::new("codec_type", "HTTP3 is not supported"));
            }
        }
        // Even without a provider Envoy's tracing rewrites the trace bit of x-request-id and adds
        // x-envoy-decorator-operation, which the upstream sees.
        if tracing.is_some() {
            return Err(ValidationError::not_enforced(
                "tracing",
                "no tracing runs (Envoy's would rewrite x-request-id and add trace headers)",
            ));
        }
        let routes = match route_specifier {
            Some(hcm::RouteSpecifier::Rds(pb::Rds {
                config_source,
                route_config_name,
            })) => {
                non_empty(route_config_name, "route_config_name").within("rds")?;
                let source = required(config_source, "config_source").within("rds")?;
                RouteSource::Rds {
                    route_config_name: route_config_name.clone(),
                    config_source: ConfigSource::from_proto(source)
                        .within("config_source")
                        .within("rds")?,
                }
            }
            Some(hcm::RouteSpecifier::RouteConfig(rc)) => RouteSource::Inline(Arc::new(
                RouteConfiguration::from_proto(rc).within("route_config")?,
            )),
            Some(hcm::RouteSpecifier::ScopedRoutes(_)) => {
                return Err(ValidationError::unsupported("scoped_routes"));
            }
            None => {
                return Err(ValidationError::new(
                    "route_specifier",
                    "one of rds or route_config is required",
                ));
            }
        };
        let (suppress_envoy_headers, skipped_filters) = http_filter_chain(http_filters)?;
        let server_header_transformation = match enum_value::<hcm::ServerHeaderTransformation>(
            *server_header_transformation,
            "server_header_transformation",
        )? {
            hcm::ServerHeaderTransformation::Overwrite => ServerHeaderTransformation::Overwrite,
            hcm::ServerHeaderTransformation::AppendIfAbsent => {
                ServerHeaderTransformation::AppendIfAbsent
            }
            hcm::ServerHeaderTransformation::PassThrough => ServerHeaderTransformation::PassThrough,
        };
        let mut upgrades: Vec<(String, bool)> = Vec::with_capacity(upgrade_configs.len());
        for (i, u) in upgrade_configs.iter().enumerate() {
            let hcm::UpgradeConfig {
                upgrade_type,
                filters,
                enabled,
            } = u;
            let path = format!("upgrade_configs[{i}]");
            if !filters.is_empty() {
                return Err(ValidationError::unsupported(format!("{path}.filters")));
            }
            let kind = upgrade_type.to_ascii_lowercase();
            if kind == "connect" {
                return Err(ValidationError::new(
                    format!("{path}.upgrade_type"),
                    "CONNECT is not supported",
                ));
            }
            if upgrades.iter().any(|(k, _)| *k == kind) {
                return Err(ValidationError::new(
                    format!("{path}.upgrade_type"),
                    format!("Error: multiple upgrade configs with the same name: '{upgrade_type}'"),
                ));
            }
            upgrades.push((kind, bool_or(enabled, true)));
        }
        header_value(server_name, "server_name")?;
        header_value(via, "via")?;
        let strip_any = matches!(
            strip_port_mode,
            Some(hcm::StripPortMode::StripAnyHostPort(true))
        );
        let strip_host_port = match (*strip_matching_host_port, strip_any) {
            (true, true) => {
                return Err(ValidationError::new(
                    "strip_any_host_port",
                    "Error: Only one of `strip_matching_host_port` or `strip_any_host_port` can be set.",
                ));
            }
            (true, false) => StripHostPort::Matching,
            (false, true) => StripHostPort::Any,
            (false, false) => StripHostPort::None,
        };
        let common = match common_http_protocol_options {
            Some(c) => CommonHttpOptions::from_proto(c).within("common_http_protocol_options")?,
            None => CommonHttpOptions::defaults(),
        };
        let http2 = match http2_protocol_options {
            Some(h2) => http2_options(h2).within("http2_protocol_options")?,
            None => Http2Options::default(),
        };
        Ok(Self {
            stat_prefix: stat_prefix.clone(),
            routes,
            skipped_filters,
            common,
            http1: match http_protocol_options {
                Some(h) => http1_options(h).within("http_protocol_options")?,
                None => Http1Options::default(),
            },
            http2,
            server_name: if server_name.is_empty() {
                "envoy".to_string()
            } else {
                server_name.clone()
            },
            server_header_transformation,
            max_request_headers_kb: u32_in(
                max_request_headers_kb,
                "max_request_headers_kb",
                1..=8192,
                60,
            )?,
            request_headers_timeout: timeout_or(
                request_headers_timeout,
                "request_headers_timeout",
                None,
            )?,
            stream_idle_timeout: timeout_or(
                stream_idle_timeout,
                "stream_idle_timeout",
                Some(DEFAULT_STREAM_IDLE_TIMEOUT),
            )?,
            request_timeout: timeout_or(request_timeout, "request_timeout", None)?,
            use_remote_address: bool_or(use_remote_address, false),
            xff_num_trusted_hops: *xff_num_trusted_hops,
            preserve_external_request_id: *preserve_external_request_id,
            skip_xff_append: *skip_xff_append,
            append_x_forwarded_port: *append_x_forwarded_port,
            internal_addresses: InternalAddresses::from_proto(internal_address_config.as_ref())
                .within("internal_address_config")?,
            generate_request_id: bool_or(generate_request_id, true),
            via: Some(via.clone()).filter(|v| !v.is_empty()),
            always_set_request_id_in_response: *always_set_request_id_in_response,
            strip_host_port,
            strip_trailing_host_dot: *strip_trailing_host_dot,
            normalize_path: bool_or(normalize_path, false),
            merge_slashes: *merge_slashes,
            escaped_slashes: escaped_slashes(*path_with_escaped_slashes_action)?,
            suppress_envoy_headers,
            upgrades,
            access_log: access_logs(access_log)?,
            // The listener sets its own (`Listener::from_proto`).
            connection_buffer_limit: DEFAULT_PER_CONNECTION_BUFFER_LIMIT_BYTES,
        })
    }
}

/// Rejects the connection manager's fields whose effect is not built yet (each names what is
/// missing). Unset, or set to what we do anyway, passes.
fn reject_unenforced(proto: &pb::HttpConnectionManager) -> Result<()> {
    // A response write blocked by a client that does not read is not timed out (README);
    // 0s (none) and Envoy's 5 min default, which it would equally leave unapplied, pass.
    if opt_duration(&proto.stream_flush_timeout, "stream_flush_timeout")?
        .is_some_and(|d| !d.is_zero() && d != DEFAULT_STREAM_IDLE_TIMEOUT)
    {
        return Err(ValidationError::not_enforced(
            "stream_flush_timeout",
            "blocked response writes are not timed out; only 0s and 300s are accepted",
        ));
    }
    for (value, field, default) in [
        (&proto.drain_timeout, "drain_timeout", DEFAULT_DRAIN_TIMEOUT),
        (
            &proto.delayed_close_timeout,
            "delayed_close_timeout",
            DEFAULT_DELAYED_CLOSE_TIMEOUT,
        ),
    ] {
        if opt_duration(value, field)?.is_some_and(|d| d != default) {
            return Err(ValidationError::not_enforced(
                field,
                "not applied; only Envoy's default is accepted",
            ));
        }
    }
    let flags = [(
        proto.proxy_100_continue,
        "proxy_100_continue",
        "the upstream's 100-continue is not relayed",
    )];
    if let Some((_, field, what)) = flags.into_iter().find(|(set, _, _)| *set) {
        return Err(ValidationError::not_enforced(field, what));
    }
    Ok(())
}

fn escaped_slashes(action: i32) -> Result<EscapedSlashes> {
    use hcm::PathWithEscapedSlashesAction as Action;
    Ok(
        match enum_value::<Action>(action, "path_with_escaped_slashes_action")? {
            Action::ImplementationSpecificDefault | Action::KeepUnchanged => {
                EscapedSlashes::KeepUnchanged
            }
            Action::RejectRequest => EscapedSlashes::RejectRequest,
            Action::UnescapeAndRedirect => EscapedSlashes::UnescapeAndRedirect,
            Action::UnescapeAndForward => EscapedSlashes::UnescapeAndForward,
        },
    )
}

/// The HTTP filter chain: the router, last, and before it only filters whose absence changes
/// nothing observable ([`HARMLESS_HTTP_FILTERS`], returned as skipped). Any other filter is an
/// error, `is_optional` or not: running without it would accept a config and not enforce it.
/// Returns the router's `suppress_envoy_headers` and the filters left out.
fn http_filter_chain(filters: &[pb::HttpFilter]) -> Result<(bool, Vec<SkippedFilter>)> {
    let mut router: Option<usize> = None;
    let mut suppress_envoy_headers = false;
    let mut skipped = Vec::new();
    for (i, filter) in filters.iter().enumerate() {
        let pb::HttpFilter {
            name,
            // Honoured only as "leave it out if we do not run it", which the harmless list
            // decides: a filter that changes requests is never left out silently.
            is_optional: _,
            disabled,
            config_type,
        } = filter;
        let at = |e: ValidationError| e.under(&format!("http_filters[{i}]"));
        non_empty(name, "name").map_err(at)?;
        let type_name = match config_type {
            Some(http_filter::ConfigType::TypedConfig(any)) => Some(any),
            Some(http_filter::ConfigType::ConfigDiscovery(_)) => {
                return Err(at(ValidationError::unsupported("config_discovery")));
            }
            None => None,
        };
        let is_router = match type_name {
            Some(any) => any_type_name(any) == router_pb::Router::full_name(),
            // Envoy still finds a filter without typed_config by its name.
            None => name == ROUTER_FILTER_NAME,
        };
        if !is_router {
            let harmless = type_name.and_then(|any| {
                HARMLESS_HTTP_FILTERS
                    .iter()
                    .find(|(type_name, _)| *type_name == any_type_name(any))
            });
            if let Some((type_name, why)) = harmless {
                skipped.push(SkippedFilter {
                    name: name.clone(),
                    type_name: (*type_name).to_string(),
                    why,
                });
                continue;
            }
            let what =
                type_name.map_or_else(|| format!("name {name:?}"), |any| any.type_url.clone());
            return Err(at(ValidationError::new(
                "typed_config",
                format!(
                    "unsupported HTTP filter {what}: only the router runs here, and filters that \
                     change nothing a client or upstream sees (grpc_stats, Istio stats) are left \
                     out; is_optional does not make another filter safe to skip"
                ),
            )));
        }
        if *disabled {
            return Err(at(ValidationError::new(
                "disabled",
                "the router filter cannot be disabled",
            )));
        }
        if let Some(first) = router {
            return Err(at(ValidationError::new(
                "typed_config",
                format!("the router is already http_filters[{first}]; it must appear once, last"),
            )));
        }
        if let Some(any) = type_name {
            let r: router_pb::Router = decode_any(any, "typed_config").map_err(at)?;
            suppress_envoy_headers = router_config(&r).within("typed_config").map_err(at)?;
        }
        router = Some(i);
    }
    match router {
        Some(i) if i + 1 == filters.len() => Ok((suppress_envoy_headers, skipped)),
        Some(i) => Err(ValidationError::new(
            format!("http_filters[{}]", i + 1),
            "the router must be the last HTTP filter",
        )),
        None => Err(ValidationError::new(
            "http_filters",
            "the last HTTP filter must be the router (envoy.extensions.filters.http.router.v3.Router)",
        )),
    }
}

/// The router's settings we act on: `suppress_envoy_headers`.
fn router_config(proto: &router_pb::Router) -> Result<bool> {
    let router_pb::Router {
        // Stats and tracing knobs.
        dynamic_stats: _,
        start_child_span: _,
        upstream_log,
        upstream_log_options: _,
        suppress_envoy_headers,
        strict_check_headers,
        respect_expected_rq_timeout,
        suppress_grpc_request_failure_code_stats: _,
        upstream_http_filters,
        // Only matters for CONNECT, which is rejected.
        reject_connect_request_early_data: _,
    } = proto;
    reject_if_set!(strict_check_headers, upstream_http_filters);
    if !upstream_log.is_empty() {
        return Err(ValidationError::not_enforced(
            "upstream_log",
            "upstream access logs are not written",
        ));
    }
    if *respect_expected_rq_timeout {
        return Err(ValidationError::not_enforced(
            "respect_expected_rq_timeout",
            "x-envoy-expected-rq-timeout-ms is not read",
        ));
    }
    Ok(*suppress_envoy_headers)
}
