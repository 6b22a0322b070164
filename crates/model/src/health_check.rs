//! Active health checks of a cluster (`core.v3.HealthCheck`): HTTP, TCP and gRPC.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{self as core, health_check};
use envoy_types::pb::envoy::r#type::v3::{CodecClientType, Int64Range};

use crate::error::{Result, ValidationError, Within, convert_each, reject_if_set};
use crate::header_mutation::{Formats, HeaderMutations, header_mutations};
use crate::proto_value::{
    bool_or, enum_value, header_value, opt_duration, opt_positive_duration,
    required_positive_duration,
};

/// Envoy's default interval while a cluster has no traffic.
const DEFAULT_NO_TRAFFIC_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub timeout: Duration,
    pub interval: Duration,
    pub initial_jitter: Duration,
    pub interval_jitter: Duration,
    /// Extra jitter as a percent of the interval.
    pub interval_jitter_percent: u32,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
    pub reuse_connection: bool,
    pub no_traffic_interval: Duration,
    pub no_traffic_healthy_interval: Duration,
    pub unhealthy_interval: Duration,
    pub unhealthy_edge_interval: Duration,
    pub healthy_edge_interval: Duration,
    pub checker: HealthChecker,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HealthChecker {
    Http(HttpHealthCheck),
    Tcp(TcpHealthCheck),
    Grpc(GrpcHealthCheck),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpHealthCheck {
    /// Empty: the cluster name (Envoy's default).
    pub host: String,
    pub path: String,
    pub method: String,
    /// Half-open ranges `[start, end)`; default `[200, 201)`.
    pub expected_statuses: Vec<std::ops::Range<u16>>,
    pub retriable_statuses: Vec<std::ops::Range<u16>>,
    pub http2: bool,
    pub request_headers: HeaderMutations,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpHealthCheck {
    /// Empty: connect-only check.
    pub send: Vec<u8>,
    /// Every block must be found in the response, in order.
    pub receive: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcHealthCheck {
    pub service_name: String,
    /// Empty: the cluster name.
    pub authority: String,
}

impl HealthCheck {
    pub(crate) fn from_proto(proto: &core::HealthCheck) -> Result<Self> {
        let core::HealthCheck {
            timeout,
            interval,
            initial_jitter,
            interval_jitter,
            interval_jitter_percent,
            unhealthy_threshold,
            healthy_threshold,
            alt_port,
            reuse_connection,
            no_traffic_interval,
            no_traffic_healthy_interval,
            unhealthy_interval,
            unhealthy_edge_interval,
            healthy_edge_interval,
            // Health-check event logging does not change which hosts are healthy.
            event_log_path: _,
            event_logger: _,
            event_service: _,
            always_log_health_check_failures: _,
            always_log_health_check_success: _,
            tls_options,
            transport_socket_match_criteria,
            health_checker,
        } = proto;
        reject_if_set!(alt_port, tls_options, transport_socket_match_criteria);
        let timeout = required_positive_duration(timeout, "timeout")?;
        let interval = required_positive_duration(interval, "interval")?;
        let unhealthy_threshold = unhealthy_threshold
            .as_ref()
            .ok_or_else(|| ValidationError::required("unhealthy_threshold"))?
            .value;
        let healthy_threshold = healthy_threshold
            .as_ref()
            .ok_or_else(|| ValidationError::required("healthy_threshold"))?
            .value;
        let no_traffic_interval =
            opt_positive_duration(no_traffic_interval, "no_traffic_interval")?
                .unwrap_or(DEFAULT_NO_TRAFFIC_INTERVAL);
        let unhealthy_interval =
            opt_positive_duration(unhealthy_interval, "unhealthy_interval")?.unwrap_or(interval);
        let checker = match health_checker {
            Some(health_check::HealthChecker::HttpHealthCheck(h)) => {
                HealthChecker::Http(http_check(h).within("http_health_check")?)
            }
            Some(health_check::HealthChecker::TcpHealthCheck(t)) => {
                HealthChecker::Tcp(tcp_check(t).within("tcp_health_check")?)
            }
            Some(health_check::HealthChecker::GrpcHealthCheck(g)) => {
                HealthChecker::Grpc(grpc_check(g).within("grpc_health_check")?)
            }
            Some(health_check::HealthChecker::CustomHealthCheck(_)) => {
                return Err(ValidationError::unsupported("custom_health_check"));
            }
            None => {
                return Err(ValidationError::new(
                    "health_checker",
                    "one of http_health_check, tcp_health_check or grpc_health_check is required",
                ));
            }
        };
        Ok(Self {
            timeout,
            interval,
            initial_jitter: opt_duration(initial_jitter, "initial_jitter")?.unwrap_or_default(),
            interval_jitter: opt_duration(interval_jitter, "interval_jitter")?.unwrap_or_default(),
            interval_jitter_percent: *interval_jitter_percent,
            unhealthy_threshold,
            healthy_threshold,
            reuse_connection: bool_or(reuse_connection, true),
            no_traffic_interval,
            no_traffic_healthy_interval: opt_positive_duration(
                no_traffic_healthy_interval,
                "no_traffic_healthy_interval",
            )?
            .unwrap_or(no_traffic_interval),
            unhealthy_interval,
            unhealthy_edge_interval: opt_positive_duration(
                unhealthy_edge_interval,
                "unhealthy_edge_interval",
            )?
            .unwrap_or(unhealthy_interval),
            healthy_edge_interval: opt_positive_duration(
                healthy_edge_interval,
                "healthy_edge_interval",
            )?
            .unwrap_or(interval),
            checker,
        })
    }
}

fn http_check(proto: &health_check::HttpHealthCheck) -> Result<HttpHealthCheck> {
    let health_check::HttpHealthCheck {
        host,
        path,
        send,
        receive,
        // Only bounds how much of the body `receive` inspects.
        response_buffer_size: _,
        request_headers_to_add,
        request_headers_to_remove,
        expected_statuses,
        retriable_statuses,
        codec_client_type,
        service_name_matcher,
        method,
    } = proto;
    reject_if_set!(send, receive, service_name_matcher);
    header_value(host, "host")?;
    if path.is_empty() {
        return Err(ValidationError::new("path", "must not be empty"));
    }
    header_value(path, "path")?;
    let http2 = match enum_value::<CodecClientType>(*codec_client_type, "codec_client_type")? {
        CodecClientType::Http1 => false,
        CodecClientType::Http2 => true,
        CodecClientType::Http3 => {
            return Err(ValidationError::new(
                "codec_client_type",
                "HTTP3 is not supported",
            ));
        }
    };
    let method = match enum_value::<core::RequestMethod>(*method, "method")? {
        core::RequestMethod::MethodUnspecified | core::RequestMethod::Get => "GET",
        core::RequestMethod::Head => "HEAD",
        core::RequestMethod::Post => "POST",
        core::RequestMethod::Put => "PUT",
        core::RequestMethod::Delete => "DELETE",
        core::RequestMethod::Options => "OPTIONS",
        core::RequestMethod::Trace => "TRACE",
        core::RequestMethod::Patch => "PATCH",
        core::RequestMethod::Connect => {
            return Err(ValidationError::new("method", "CONNECT is not allowed"));
        }
    };
    let mut expected = convert_each(expected_statuses, "expected_statuses", status_range)?;
    if expected.is_empty() {
        expected.push(200..201);
    }
    Ok(HttpHealthCheck {
        host: host.clone(),
        path: path.clone(),
        method: method.to_string(),
        expected_statuses: expected,
        retriable_statuses: convert_each(retriable_statuses, "retriable_statuses", status_range)?,
        http2,
        request_headers: header_mutations(
            request_headers_to_add,
            "request_headers_to_add",
            request_headers_to_remove,
            "request_headers_to_remove",
            Formats::Refused,
        )?,
    })
}

/// Envoy: `100 <= start < end <= 600`.
fn status_range(range: &Int64Range) -> Result<std::ops::Range<u16>> {
    let Int64Range { start, end } = *range;
    if !(100..=600).contains(&start) || !(100..=600).contains(&end) || start >= end {
        return Err(ValidationError::new(
            "",
            format!("invalid status range [{start}, {end}): need 100 <= start < end <= 600"),
        ));
    }
    // Both within 100..=600 (checked above), so they fit u16.
    Ok(start as u16..end as u16)
}

fn tcp_check(proto: &health_check::TcpHealthCheck) -> Result<TcpHealthCheck> {
    let health_check::TcpHealthCheck {
        send,
        receive,
        proxy_protocol_config,
    } = proto;
    reject_if_set!(proxy_protocol_config);
    let send = match send {
        Some(p) => payload(p).within("send")?,
        None => Vec::new(),
    };
    Ok(TcpHealthCheck {
        send,
        receive: convert_each(receive, "receive", payload)?,
    })
}

/// A health-check payload: `text` is hex, as in Envoy (`"000000FF"`).
fn payload(proto: &health_check::Payload) -> Result<Vec<u8>> {
    use health_check::payload::Payload;
    match &proto.payload {
        Some(Payload::Text(hex)) if hex.is_empty() => {
            Err(ValidationError::new("text", "must not be empty"))
        }
        Some(Payload::Text(hex)) => {
            decode_hex(hex).ok_or_else(|| ValidationError::new("text", "must be hex-encoded bytes"))
        }
        Some(Payload::Binary(bytes)) => Ok(bytes.clone()),
        None => Err(ValidationError::new(
            "payload",
            "one of text or binary is required",
        )),
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    hex.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |b: u8| (b as char).to_digit(16);
            Some((digit(*pair.first()?)? * 16 + digit(*pair.get(1)?)?) as u8)
        })
        .collect()
}

fn grpc_check(proto: &health_check::GrpcHealthCheck) -> Result<GrpcHealthCheck> {
    let health_check::GrpcHealthCheck {
        service_name,
        authority,
        initial_metadata,
    } = proto;
    reject_if_set!(initial_metadata);
    header_value(authority, "authority")?;
    Ok(GrpcHealthCheck {
        service_name: service_name.clone(),
        authority: authority.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_payloads() {
        assert_eq!(decode_hex("000000FF"), Some(vec![0, 0, 0, 255]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}
