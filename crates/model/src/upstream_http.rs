//! Which HTTP protocol a cluster speaks upstream, and its HTTP options: from
//! `typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]`
//! or from the legacy cluster fields (never both, as in Envoy).

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::cluster::ClusterProtocolSelection;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{self as pb, http_protocol_options};
use envoy_types::pb::google::protobuf::{Any, UInt32Value};
use prost::Name;

use crate::error::{Result, ValidationError, Within, reject_if_set};
use crate::http_protocol::{
    CommonHttpOptions, DEFAULT_MAX_HEADERS_COUNT, Http2Options, http1_options,
    upstream_http2_options,
};
use crate::proto_value::{any_type_name, decode_any, enum_value, header_name};

/// The upstream HTTP protocol.
///
/// - `explicit_http_config.http_protocol_options` or nothing: HTTP/1.1;
/// - `explicit_http_config.http2_protocol_options` or the legacy `http2_protocol_options`:
///   HTTP/2 (prior knowledge on plaintext, ALPN `h2` on TLS);
/// - `use_downstream_protocol_config` or legacy `protocol_selection: USE_DOWNSTREAM_PROTOCOL`:
///   the protocol of the downstream request;
/// - `auto_config` picks by ALPN, which needs TLS: rejected until TLS is built (Envoy refuses
///   it on a plaintext cluster too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    Http2,
    UseDownstream,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamHttpOptions {
    pub protocol: UpstreamProtocol,
    pub common: CommonHttpOptions,
    pub http2: Http2Options,
}

impl Default for UpstreamHttpOptions {
    fn default() -> Self {
        Self {
            protocol: UpstreamProtocol::Http1,
            common: CommonHttpOptions::defaults(),
            http2: Http2Options::default(),
        }
    }
}

/// The legacy cluster-level HTTP fields.
pub(crate) struct LegacyHttpFields<'a> {
    pub http_protocol_options: &'a Option<core::Http1ProtocolOptions>,
    pub http2_protocol_options: &'a Option<core::Http2ProtocolOptions>,
    pub common_http_protocol_options: &'a Option<core::HttpProtocolOptions>,
    pub upstream_http_protocol_options: &'a Option<core::UpstreamHttpProtocolOptions>,
    pub protocol_selection: i32,
    pub max_requests_per_connection: &'a Option<UInt32Value>,
}

pub(crate) fn upstream_http_options(
    typed_extension_protocol_options: &HashMap<String, Any>,
    legacy: LegacyHttpFields<'_>,
) -> Result<UpstreamHttpOptions> {
    // Sorted, so the reported error does not depend on hash order.
    let mut keys: Vec<&String> = typed_extension_protocol_options.keys().collect();
    keys.sort();
    let mut typed = None;
    for key in keys {
        let Some(any) = typed_extension_protocol_options.get(key) else {
            continue;
        };
        let field = format!("typed_extension_protocol_options[{key}]");
        if any_type_name(any) != pb::HttpProtocolOptions::full_name() {
            return Err(ValidationError::new(
                field,
                format!("unsupported protocol options {}", any.type_url),
            ));
        }
        let options: pb::HttpProtocolOptions = decode_any(any, &field)?;
        typed = Some(typed_options(&options).within(&field)?);
    }
    let legacy_protocol_selection =
        enum_value::<ClusterProtocolSelection>(legacy.protocol_selection, "protocol_selection")?;
    let legacy_set = legacy.http_protocol_options.is_some()
        || legacy.http2_protocol_options.is_some()
        || legacy.common_http_protocol_options.is_some()
        || legacy.upstream_http_protocol_options.is_some()
        || legacy_protocol_selection != ClusterProtocolSelection::UseConfiguredProtocol;
    let mut options = match typed {
        Some(_) if legacy_set => {
            return Err(ValidationError::new(
                "typed_extension_protocol_options",
                "Both legacy and new fields set for HTTP protocol options",
            ));
        }
        Some(options) => options,
        None => legacy_options(&legacy, legacy_protocol_selection)?,
    };
    if let Some(max) = legacy.max_requests_per_connection {
        if options.common.max_requests_per_connection.is_some() {
            return Err(ValidationError::new(
                "max_requests_per_connection",
                "Only one of max_requests_per_connection from Cluster or HttpProtocolOptions can be specified",
            ));
        }
        options.common.max_requests_per_connection = Some(max.value).filter(|v| *v > 0);
    }
    Ok(options)
}

fn legacy_options(
    legacy: &LegacyHttpFields<'_>,
    selection: ClusterProtocolSelection,
) -> Result<UpstreamHttpOptions> {
    let mut options = UpstreamHttpOptions {
        protocol: match (selection, legacy.http2_protocol_options) {
            (ClusterProtocolSelection::UseDownstreamProtocol, _) => UpstreamProtocol::UseDownstream,
            (_, Some(_)) => UpstreamProtocol::Http2,
            (_, None) => UpstreamProtocol::Http1,
        },
        ..UpstreamHttpOptions::default()
    };
    if let Some(h1) = legacy.http_protocol_options {
        upstream_http1_options(h1).within("http_protocol_options")?;
    }
    if let Some(h2) = legacy.http2_protocol_options {
        options.http2 = upstream_http2_options(h2).within("http2_protocol_options")?;
    }
    if let Some(c) = legacy.common_http_protocol_options {
        options.common = upstream_common(c).within("common_http_protocol_options")?;
    }
    if let Some(u) = legacy.upstream_http_protocol_options {
        upstream_sni_options(u).within("upstream_http_protocol_options")?;
    }
    Ok(options)
}

/// A cluster's `common_http_protocol_options`. Its `max_stream_duration` would bound each
/// upstream request (Envoy's `UMSDR` flag), which is not built.
fn upstream_common(proto: &core::HttpProtocolOptions) -> Result<CommonHttpOptions> {
    let common = CommonHttpOptions::from_proto(proto)?;
    // hyper's HTTP/1 client stops at 100 response headers, Envoy's default.
    if common.max_headers_count != DEFAULT_MAX_HEADERS_COUNT {
        return Err(ValidationError::not_enforced(
            "max_headers_count",
            "HTTP/1 upstream responses are held to 100 headers; only 100 is accepted",
        ));
    }
    if common.max_stream_duration.is_some() {
        return Err(ValidationError::not_enforced(
            "max_stream_duration",
            "upstream requests are not limited by duration",
        ));
    }
    Ok(common)
}

fn typed_options(proto: &pb::HttpProtocolOptions) -> Result<UpstreamHttpOptions> {
    let pb::HttpProtocolOptions {
        common_http_protocol_options,
        upstream_http_protocol_options,
        http_filters,
        header_validation_config,
        outlier_detection,
        request_mirror_policies,
        hash_policy,
        retry_policy,
        upstream_protocol_options,
    } = proto;
    reject_if_set!(
        http_filters,
        header_validation_config,
        outlier_detection,
        request_mirror_policies,
        hash_policy,
        retry_policy,
    );
    let mut options = UpstreamHttpOptions::default();
    if let Some(c) = common_http_protocol_options {
        options.common = upstream_common(c).within("common_http_protocol_options")?;
    }
    if let Some(u) = upstream_http_protocol_options {
        upstream_sni_options(u).within("upstream_http_protocol_options")?;
    }
    match upstream_protocol_options {
        Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(e)) => {
            use http_protocol_options::explicit_http_config::ProtocolConfig;
            let field = "explicit_http_config";
            match &e.protocol_config {
                Some(ProtocolConfig::HttpProtocolOptions(h1)) => {
                    options.protocol = UpstreamProtocol::Http1;
                    upstream_http1_options(h1)
                        .within("http_protocol_options")
                        .within(field)?;
                }
                Some(ProtocolConfig::Http2ProtocolOptions(h2)) => {
                    options.protocol = UpstreamProtocol::Http2;
                    options.http2 = upstream_http2_options(h2)
                        .within("http2_protocol_options")
                        .within(field)?;
                }
                Some(ProtocolConfig::Http3ProtocolOptions(_)) => {
                    return Err(ValidationError::unsupported(format!(
                        "{field}.http3_protocol_options"
                    )));
                }
                None => {
                    return Err(ValidationError::new(
                        format!("{field}.protocol_config"),
                        "one of http_protocol_options or http2_protocol_options is required",
                    ));
                }
            }
        }
        Some(http_protocol_options::UpstreamProtocolOptions::UseDownstreamProtocolConfig(u)) => {
            let pb::http_protocol_options::UseDownstreamHttpConfig {
                http_protocol_options,
                http2_protocol_options,
                http3_protocol_options,
            } = u;
            let field = "use_downstream_protocol_config";
            if http3_protocol_options.is_some() {
                return Err(ValidationError::unsupported(format!(
                    "{field}.http3_protocol_options"
                )));
            }
            options.protocol = UpstreamProtocol::UseDownstream;
            both_versions(&mut options, http_protocol_options, http2_protocol_options)
                .within(field)?;
        }
        Some(http_protocol_options::UpstreamProtocolOptions::AutoConfig(a)) => {
            let pb::http_protocol_options::AutoHttpConfig {
                http_protocol_options,
                http2_protocol_options,
                http3_protocol_options,
                alternate_protocols_cache_options,
            } = a;
            let field = "auto_config";
            if http3_protocol_options.is_some() {
                return Err(ValidationError::unsupported(format!(
                    "{field}.http3_protocol_options"
                )));
            }
            if alternate_protocols_cache_options.is_some() {
                return Err(ValidationError::unsupported(format!(
                    "{field}.alternate_protocols_cache_options"
                )));
            }
            both_versions(&mut options, http_protocol_options, http2_protocol_options)
                .within(field)?;
            return Err(ValidationError::not_enforced(
                field,
                "choosing the protocol by ALPN needs TLS, which is not built yet",
            ));
        }
        None => {
            return Err(ValidationError::new(
                "upstream_protocol_options",
                "one of explicit_http_config, use_downstream_protocol_config or auto_config is required",
            ));
        }
    }
    Ok(options)
}

/// A cluster's HTTP/1 options, checked as a connection manager's are. Nothing is kept: the one
/// field accepted, `accept_http_10`, governs HTTP/1.0 requests a codec receives, and an
/// upstream connection receives none (Envoy's client codec ignores it too; listed in
/// `IGNORED_FIELDS` for clusters).
fn upstream_http1_options(proto: &core::Http1ProtocolOptions) -> Result<()> {
    http1_options(proto).map(drop)
}

fn both_versions(
    options: &mut UpstreamHttpOptions,
    http1: &Option<core::Http1ProtocolOptions>,
    http2: &Option<core::Http2ProtocolOptions>,
) -> Result<()> {
    if let Some(h1) = http1 {
        upstream_http1_options(h1).within("http_protocol_options")?;
    }
    if let Some(h2) = http2 {
        options.http2 = upstream_http2_options(h2).within("http2_protocol_options")?;
    }
    Ok(())
}

/// SNI from the request's host needs TLS, which is not built yet.
fn upstream_sni_options(proto: &core::UpstreamHttpProtocolOptions) -> Result<()> {
    let core::UpstreamHttpProtocolOptions {
        auto_sni,
        auto_san_validation,
        override_auto_sni_header,
    } = proto;
    if !override_auto_sni_header.is_empty() {
        header_name(override_auto_sni_header, "override_auto_sni_header")?;
    }
    let set = [
        (*auto_sni, "auto_sni"),
        (*auto_san_validation, "auto_san_validation"),
        (
            !override_auto_sni_header.is_empty(),
            "override_auto_sni_header",
        ),
    ];
    match set.into_iter().find(|(on, _)| *on) {
        Some((_, field)) => Err(ValidationError::not_enforced(
            field,
            "upstream TLS (and so SNI) is not built yet",
        )),
        None => Ok(()),
    }
}
