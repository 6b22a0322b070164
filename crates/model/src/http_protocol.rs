//! HTTP protocol options shared by upstream clusters and the HTTP connection manager
//! (`core.v3.HttpProtocolOptions`, `Http1ProtocolOptions`, `Http2ProtocolOptions`).

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{self as core, http_protocol_options};

use crate::error::{Result, ValidationError, Within, reject_if_set, required};
use crate::proto_value::{enum_value, opt_duration, opt_positive_duration, percent_or, u32_in};

/// `core.v3.HttpProtocolOptions`: connection lifetime. The header limits are accepted only at
/// the values we apply (100 headers, underscores allowed, no stream duration).
/// Envoy's default `max_headers_count`.
pub const DEFAULT_MAX_HEADERS_COUNT: u32 = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct CommonHttpOptions {
    /// Close a connection without streams after this (`None` = never).
    pub idle_timeout: Option<Duration>,
    pub max_connection_duration: Option<Duration>,
    pub max_requests_per_connection: Option<u32>,
    /// The longest a stream may last (`None`: no limit). Downstream, the connection manager
    /// answers or resets a stream that reaches it; clusters refuse it (not built upstream).
    pub max_stream_duration: Option<Duration>,
    /// Most headers a request may carry (Envoy's 100 by default); clusters refuse another
    /// value (not built for responses).
    pub max_headers_count: u32,
    /// What a connection manager does with request headers whose name has `_`. Envoy reads it
    /// only there ("no impact if added to cluster config"), so clusters accept any value.
    pub headers_with_underscores: UnderscoreHeaders,
}

/// `headers_with_underscores_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnderscoreHeaders {
    #[default]
    Allow,
    /// Answer 400 (HTTP/1 and, unlike Envoy's stream reset, HTTP/2 too).
    RejectRequest,
    /// Remove such headers before routing.
    DropHeader,
}

/// Envoy's default `max_concurrent_streams`.
pub const ENVOY_MAX_CONCURRENT_STREAMS: u32 = 2_147_483_647;

impl Default for Http2Options {
    fn default() -> Self {
        Http2Options {
            max_concurrent_streams: ENVOY_MAX_CONCURRENT_STREAMS,
            initial_stream_window_size: None,
            initial_connection_window_size: None,
            keepalive: None,
        }
    }
}

/// The HTTP/1 options we honour.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Http1Options {
    /// Downstream: accept HTTP/1.0 requests (else 426, as Envoy).
    pub accept_http_10: bool,
}

/// The HTTP/2 options we honour (the rest are codec tunables, see `http2_options`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http2Options {
    /// Envoy's default is 2^31 - 1. Downstream: advertised to clients; upstream: only the
    /// default is accepted (see `upstream_http2_options`).
    pub max_concurrent_streams: u32,
    pub initial_stream_window_size: Option<u32>,
    pub initial_connection_window_size: Option<u32>,
    /// PING every `interval`, close when no answer within `timeout`.
    pub keepalive: Option<Http2Keepalive>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http2Keepalive {
    pub interval: Option<Duration>,
    pub timeout: Duration,
}

impl CommonHttpOptions {
    /// Envoy's defaults (the idle timeout is 1 h on both sides).
    pub(crate) fn defaults() -> Self {
        Self {
            idle_timeout: Some(Duration::from_secs(3600)),
            max_connection_duration: None,
            max_requests_per_connection: None,
            max_stream_duration: None,
            max_headers_count: DEFAULT_MAX_HEADERS_COUNT,
            headers_with_underscores: UnderscoreHeaders::Allow,
        }
    }

    pub(crate) fn from_proto(proto: &core::HttpProtocolOptions) -> Result<Self> {
        let core::HttpProtocolOptions {
            idle_timeout,
            max_connection_duration,
            max_connection_duration_jitter,
            max_headers_count,
            max_response_headers_kb,
            max_stream_duration,
            headers_with_underscores_action,
            max_requests_per_connection,
        } = proto;
        reject_if_set!(max_response_headers_kb);
        let d = Self::defaults();
        // Envoy adds a random share of this to each connection's maximum duration; ours are
        // retired at exactly that duration, so only 0 is accepted.
        if percent_or(
            max_connection_duration_jitter,
            "max_connection_duration_jitter",
            0.0,
        )? > 0.0
        {
            return Err(ValidationError::not_enforced(
                "max_connection_duration_jitter",
                "connections are retired at exactly max_connection_duration; only 0 is accepted",
            ));
        }
        let zero_is_none = |d: Option<Duration>| d.filter(|d| !d.is_zero());
        let max_headers_count = u32_in(
            max_headers_count,
            "max_headers_count",
            1..=u32::MAX,
            DEFAULT_MAX_HEADERS_COUNT,
        )?;
        use http_protocol_options::HeadersWithUnderscoresAction as Action;
        let headers_with_underscores = match enum_value::<Action>(
            *headers_with_underscores_action,
            "headers_with_underscores_action",
        )? {
            Action::Allow => UnderscoreHeaders::Allow,
            Action::RejectRequest => UnderscoreHeaders::RejectRequest,
            Action::DropHeader => UnderscoreHeaders::DropHeader,
        };
        Ok(Self {
            idle_timeout: match opt_duration(idle_timeout, "idle_timeout")? {
                None => d.idle_timeout,
                Some(t) => zero_is_none(Some(t)),
            },
            max_connection_duration: zero_is_none(opt_duration(
                max_connection_duration,
                "max_connection_duration",
            )?),
            max_requests_per_connection: max_requests_per_connection
                .as_ref()
                .map(|v| v.value)
                .filter(|v| *v > 0),
            max_headers_count,
            max_stream_duration: zero_is_none(opt_duration(
                max_stream_duration,
                "max_stream_duration",
            )?),
            headers_with_underscores,
        })
    }
}

pub(crate) fn http1_options(proto: &core::Http1ProtocolOptions) -> Result<Http1Options> {
    let core::Http1ProtocolOptions {
        // Envoy's default rejects nothing we would accept: absolute URLs are allowed.
        allow_absolute_url: _,
        accept_http_10,
        default_host_for_http_10,
        header_key_format,
        enable_trailers,
        allow_chunked_length,
        // Error-reporting nuance of the codec (reset vs. 400), not what is proxied.
        override_stream_error_on_invalid_http_message: _,
        send_fully_qualified_url,
        // Parser choice inside Envoy.
        use_balsa_parser: _,
        allow_custom_methods,
        ignore_http_11_upgrade,
    } = proto;
    reject_if_set!(
        header_key_format,
        enable_trailers,
        allow_chunked_length,
        send_fully_qualified_url,
        allow_custom_methods,
        ignore_http_11_upgrade,
    );
    if !default_host_for_http_10.is_empty() {
        return Err(ValidationError::not_enforced(
            "default_host_for_http_10",
            "HTTP/1.0 requests without a host get no default",
        ));
    }
    Ok(Http1Options {
        accept_http_10: *accept_http_10,
    })
}

pub(crate) fn http2_options(proto: &core::Http2ProtocolOptions) -> Result<Http2Options> {
    let core::Http2ProtocolOptions {
        // HPACK table size, frame-flood limits, codec choice, Huffman and header-size knobs
        // tune Envoy's codec; the h2 crate applies its own safe limits.
        hpack_table_size: _,
        max_concurrent_streams,
        initial_stream_window_size,
        initial_connection_window_size,
        allow_connect,
        allow_metadata,
        max_outbound_frames: _,
        max_outbound_control_frames: _,
        max_consecutive_inbound_frames_with_empty_payload: _,
        max_inbound_priority_frames_per_stream: _,
        max_inbound_window_update_frames_per_data_frame_sent: _,
        stream_error_on_invalid_http_messaging: _,
        override_stream_error_on_invalid_http_message: _,
        custom_settings_parameters,
        connection_keepalive,
        use_oghttp2_codec: _,
        max_metadata_size: _,
        enable_huffman_encoding: _,
        max_header_field_size_kb: _,
        disallow_obs_text: _,
        stream_reset_burst: _,
        stream_reset_rate: _,
    } = proto;
    reject_if_set!(allow_connect, allow_metadata, custom_settings_parameters);
    // PGV limits of the window sizes: 65535 ..= 2^31 - 1.
    let window =
        |v, field| u32_in(v, field, 65_535..=2_147_483_647, 0).map(|w| Some(w).filter(|w| *w > 0));
    let keepalive = match connection_keepalive {
        None => None,
        Some(k) => Some(keepalive(k).within("connection_keepalive")?),
    };
    let max_concurrent_streams = u32_in(
        max_concurrent_streams,
        "max_concurrent_streams",
        1..=2_147_483_647,
        ENVOY_MAX_CONCURRENT_STREAMS,
    )?;
    Ok(Http2Options {
        max_concurrent_streams,
        initial_stream_window_size: window(
            initial_stream_window_size,
            "initial_stream_window_size",
        )?,
        initial_connection_window_size: window(
            initial_connection_window_size,
            "initial_connection_window_size",
        )?,
        keepalive,
    })
}

/// The HTTP/2 options of a cluster: upstream, streams queue on one connection up to the
/// server's own limit, which is what Envoy's default `max_concurrent_streams` amounts to;
/// another value is not applied.
pub(crate) fn upstream_http2_options(proto: &core::Http2ProtocolOptions) -> Result<Http2Options> {
    let options = http2_options(proto)?;
    if options.max_concurrent_streams != ENVOY_MAX_CONCURRENT_STREAMS {
        return Err(ValidationError::not_enforced(
            "max_concurrent_streams",
            "streams per connection are not limited by it; only Envoy's default is accepted",
        ));
    }
    Ok(options)
}

fn keepalive(proto: &core::KeepaliveSettings) -> Result<Http2Keepalive> {
    let core::KeepaliveSettings {
        interval,
        timeout,
        // Spreads PINGs over time only.
        interval_jitter: _,
        connection_idle_interval,
    } = proto;
    reject_if_set!(connection_idle_interval);
    let ms = Duration::from_millis(1);
    let timeout = opt_positive_duration(timeout, "timeout")?;
    let timeout = *required(&timeout, "timeout")?;
    if timeout < ms {
        return Err(ValidationError::new("timeout", "must be at least 1ms"));
    }
    let interval = opt_duration(interval, "interval")?;
    if interval.is_some_and(|i| i < ms) {
        return Err(ValidationError::new("interval", "must be at least 1ms"));
    }
    Ok(Http2Keepalive { interval, timeout })
}
