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

use crate::access_log::{AccessLogSink, access_log_sinks};
use crate::config_source::ConfigSource;
use crate::error::{Result, ValidationError, Within, non_empty, reject_if_set, required};
use crate::http_protocol::{
    CommonHttpOptions, Http1Options, Http2Options, http1_options, http2_options,
};
use crate::proto_value::{
    any_type_name, bool_or, decode_any, enum_value, header_value, timeout_or, u32_in,
};
use crate::route::RouteConfiguration;

const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_DELAYED_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
const ROUTER_FILTER_NAME: &str = "envoy.filters.http.router";

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConnectionManager {
    pub stat_prefix: String,
    pub codec: DownstreamCodec,
    pub routes: RouteSource,
    pub router: RouterConfig,
    pub common: CommonHttpOptions,
    pub http1: Http1Options,
    pub http2: Http2Options,
    /// Default "envoy".
    pub server_name: String,
    pub server_header_transformation: ServerHeaderTransformation,
    /// Default 60.
    pub max_request_headers_kb: u32,
    /// `None` = disabled. Default 5 min.
    pub stream_idle_timeout: Option<Duration>,
    /// `None` = disabled (the default).
    pub request_timeout: Option<Duration>,
    pub request_headers_timeout: Option<Duration>,
    pub drain_timeout: Duration,
    pub delayed_close_timeout: Option<Duration>,
    pub use_remote_address: bool,
    pub xff_num_trusted_hops: u32,
    pub skip_xff_append: bool,
    /// Value of the `via` header to append.
    pub via: Option<String>,
    /// Default true.
    pub generate_request_id: bool,
    pub preserve_external_request_id: bool,
    pub always_set_request_id_in_response: bool,
    pub proxy_100_continue: bool,
    /// Upgrade types (lower case) allowed on this listener, with `enabled`.
    pub upgrades: Vec<(String, bool)>,
    pub normalize_path: bool,
    pub merge_slashes: bool,
    pub path_with_escaped_slashes_action: EscapedSlashesAction,
    pub strip_matching_host_port: bool,
    pub strip_any_host_port: bool,
    pub strip_trailing_host_dot: bool,
    pub append_x_forwarded_port: bool,
    /// Where each request is logged, in Envoy's default format (see `access_log.rs`).
    pub access_log: Vec<AccessLogSink>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownstreamCodec {
    /// HTTP/1.1, or HTTP/2 by preface/ALPN.
    Auto,
    Http1,
    Http2,
}

/// Where the connection manager's routes come from.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteSource {
    Rds {
        route_config_name: String,
        config_source: ConfigSource,
    },
    Inline(Arc<RouteConfiguration>),
}

/// `envoy.extensions.filters.http.router.v3.Router`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouterConfig {
    pub suppress_envoy_headers: bool,
    pub respect_expected_rq_timeout: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerHeaderTransformation {
    Overwrite,
    AppendIfAbsent,
    PassThrough,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapedSlashesAction {
    /// Envoy's default (`IMPLEMENTATION_SPECIFIC_DEFAULT` is keep-unchanged).
    KeepUnchanged,
    RejectRequest,
    UnescapeAndRedirect,
    UnescapeAndForward,
}

impl HttpConnectionManager {
    pub(crate) fn from_proto(proto: &pb::HttpConnectionManager) -> Result<Self> {
        let pb::HttpConnectionManager {
            codec_type,
            stat_prefix,
            http_filters,
            add_user_agent,
            // Tracing does not change what is proxied.
            tracing: _,
            common_http_protocol_options,
            // Only refines how `max_connection_duration` closes HTTP/1 connections.
            http1_safe_max_connection_duration: _,
            http_protocol_options,
            http2_protocol_options,
            http3_protocol_options,
            server_name,
            server_header_transformation,
            scheme_header_transformation,
            max_request_headers_kb,
            stream_idle_timeout,
            // Only bounds how long a stream waits for flow-control window; h2 has its own.
            stream_flush_timeout: _,
            request_timeout,
            request_headers_timeout,
            drain_timeout,
            // Spreads drains over time only.
            drain_timeout_jitter: _,
            delayed_close_timeout,
            access_log,
            // We flush every second, as Envoy does by default.
            access_log_flush_interval: _,
            flush_access_log_on_new_request: _,
            access_log_options: _,
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
            proxy_100_continue,
            represent_ipv4_remote_address_as_ipv4_mapped_ipv6,
            upgrade_configs,
            normalize_path,
            merge_slashes,
            path_with_escaped_slashes_action,
            request_id_extension,
            local_reply_config,
            strip_matching_host_port,
            // Chooses between a reset and a 400 on malformed HTTP: error reporting only.
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
            internal_address_config,
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
        non_empty(stat_prefix, "stat_prefix")?;
        let codec = match enum_value::<hcm::CodecType>(*codec_type, "codec_type")? {
            hcm::CodecType::Auto => DownstreamCodec::Auto,
            hcm::CodecType::Http1 => DownstreamCodec::Http1,
            hcm::CodecType::Http2 => DownstreamCodec::Http2,
            hcm::CodecType::Http3 => {
                return Err(ValidationError::new("codec_type", "HTTP3 is not supported"));
            }
        };
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
        let router = http_filter_chain(http_filters)?;
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
        let path_with_escaped_slashes_action = match enum_value::<hcm::PathWithEscapedSlashesAction>(
            *path_with_escaped_slashes_action,
            "path_with_escaped_slashes_action",
        )? {
            hcm::PathWithEscapedSlashesAction::ImplementationSpecificDefault
            | hcm::PathWithEscapedSlashesAction::KeepUnchanged => {
                EscapedSlashesAction::KeepUnchanged
            }
            hcm::PathWithEscapedSlashesAction::RejectRequest => EscapedSlashesAction::RejectRequest,
            hcm::PathWithEscapedSlashesAction::UnescapeAndRedirect => {
                EscapedSlashesAction::UnescapeAndRedirect
            }
            hcm::PathWithEscapedSlashesAction::UnescapeAndForward => {
                EscapedSlashesAction::UnescapeAndForward
            }
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
        Ok(Self {
            stat_prefix: stat_prefix.clone(),
            codec,
            routes,
            router,
            common: match common_http_protocol_options {
                Some(c) => {
                    CommonHttpOptions::from_proto(c).within("common_http_protocol_options")?
                }
                None => CommonHttpOptions::defaults(),
            },
            http1: match http_protocol_options {
                Some(h) => http1_options(h).within("http_protocol_options")?,
                None => Http1Options::default(),
            },
            http2: match http2_protocol_options {
                Some(h) => http2_options(h).within("http2_protocol_options")?,
                None => Http2Options::default(),
            },
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
            stream_idle_timeout: timeout_or(
                stream_idle_timeout,
                "stream_idle_timeout",
                Some(DEFAULT_STREAM_IDLE_TIMEOUT),
            )?,
            request_timeout: timeout_or(request_timeout, "request_timeout", None)?,
            request_headers_timeout: timeout_or(
                request_headers_timeout,
                "request_headers_timeout",
                None,
            )?,
            drain_timeout: timeout_or(drain_timeout, "drain_timeout", Some(DEFAULT_DRAIN_TIMEOUT))?
                .unwrap_or(Duration::ZERO),
            delayed_close_timeout: timeout_or(
                delayed_close_timeout,
                "delayed_close_timeout",
                Some(DEFAULT_DELAYED_CLOSE_TIMEOUT),
            )?,
            use_remote_address: bool_or(use_remote_address, false),
            xff_num_trusted_hops: *xff_num_trusted_hops,
            skip_xff_append: *skip_xff_append,
            via: Some(via.clone()).filter(|v| !v.is_empty()),
            generate_request_id: bool_or(generate_request_id, true),
            preserve_external_request_id: *preserve_external_request_id,
            always_set_request_id_in_response: *always_set_request_id_in_response,
            proxy_100_continue: *proxy_100_continue,
            upgrades,
            normalize_path: bool_or(normalize_path, false),
            merge_slashes: *merge_slashes,
            path_with_escaped_slashes_action,
            strip_matching_host_port: *strip_matching_host_port,
            strip_any_host_port: matches!(
                strip_port_mode,
                Some(hcm::StripPortMode::StripAnyHostPort(true))
            ),
            strip_trailing_host_dot: *strip_trailing_host_dot,
            append_x_forwarded_port: *append_x_forwarded_port,
            access_log: access_log_sinks(access_log)?,
        })
    }
}

/// The HTTP filter chain: optional unknown filters are skipped (as Envoy does when it has no
/// implementation), the router must be last, and any other filter is an error.
fn http_filter_chain(filters: &[pb::HttpFilter]) -> Result<RouterConfig> {
    let mut router: Option<(usize, RouterConfig)> = None;
    for (i, filter) in filters.iter().enumerate() {
        let pb::HttpFilter {
            name,
            is_optional,
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
            if *is_optional {
                continue;
            }
            let what =
                type_name.map_or_else(|| format!("name {name:?}"), |any| any.type_url.clone());
            return Err(at(ValidationError::new(
                "typed_config",
                format!(
                    "unsupported HTTP filter {what} (only the router is supported; mark others is_optional)"
                ),
            )));
        }
        if *disabled {
            return Err(at(ValidationError::new(
                "disabled",
                "the router filter cannot be disabled",
            )));
        }
        if let Some((first, _)) = router {
            return Err(at(ValidationError::new(
                "typed_config",
                format!("the router is already http_filters[{first}]; it must appear once, last"),
            )));
        }
        let config = match type_name {
            Some(any) => {
                let r: router_pb::Router = decode_any(any, "typed_config").map_err(at)?;
                router_config(&r).within("typed_config").map_err(at)?
            }
            None => RouterConfig::default(),
        };
        router = Some((i, config));
    }
    // Every filter after the router was skipped as optional or rejected above, except a
    // required one: check the router is the last non-optional filter.
    match router {
        Some((_, config)) => Ok(config),
        None => Err(ValidationError::new(
            "http_filters",
            "the last HTTP filter must be the router (envoy.extensions.filters.http.router.v3.Router)",
        )),
    }
}

fn router_config(proto: &router_pb::Router) -> Result<RouterConfig> {
    let router_pb::Router {
        // Stats and tracing knobs.
        dynamic_stats: _,
        start_child_span: _,
        upstream_log: _,
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
    Ok(RouterConfig {
        suppress_envoy_headers: *suppress_envoy_headers,
        respect_expected_rq_timeout: *respect_expected_rq_timeout,
    })
}
