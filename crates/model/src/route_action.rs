//! Route actions: forwarding to clusters (weights, rewrites, timeouts, retries, hashing),
//! redirects and direct responses.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::RoutingPriority;
use envoy_types::pb::envoy::config::route::v3::{
    self as pb, redirect_action, route_action, weighted_cluster,
};

use crate::data_source::DataSource;
use crate::error::{Result, ValidationError, Within, convert_each, non_empty, reject_if_set};
use crate::header_mutation::{MessageHeaderMutations, message_header_mutations};
use crate::matcher::{RegexSubstitution, regex_substitution};
use crate::proto_value::{
    bool_or, enum_value, header_name, header_value, opt_duration, timeout_or,
};
use crate::retry::RetryPolicy;

/// Envoy's default route timeout.
pub const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

/// Forward the request upstream (`route` action).
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardAction {
    pub cluster: ClusterSpecifier,
    /// Status when the cluster does not exist (503 by default; 404 or 500).
    pub cluster_not_found_response_code: u16,
    /// `None` = no timeout (proto `0s`); 15 s when unset.
    pub timeout: Option<Duration>,
    /// The route's retry policy, or else the virtual host's.
    pub retry_policy: Option<RetryPolicy>,
    /// `per_request_buffer_limit_bytes` of the route, else of the virtual host: the largest
    /// request body kept so that a retry can send it again. `None`: the connection's limit
    /// ([`HttpConnectionManager::connection_buffer_limit`]).
    ///
    /// [`HttpConnectionManager::connection_buffer_limit`]: crate::HttpConnectionManager
    pub retry_buffer_limit: Option<u32>,
    pub path_rewrite: Option<PathRewrite>,
    pub host_rewrite: HostRewrite,
    pub append_x_forwarded_host: bool,
    pub hash_policy: Vec<HashPolicy>,
    pub priority: Priority,
    /// Upgrade types (lower case, e.g. `websocket`) enabled or disabled on this route,
    /// overriding the connection manager's.
    pub upgrades: Vec<(String, bool)>,
    /// `idle_timeout`: replaces the connection manager's `stream_idle_timeout` on this route;
    /// `Some(ZERO)` turns the stream idle timeout off.
    pub idle_timeout: Option<Duration>,
    /// `max_stream_duration`. When present, even empty, the route `timeout` is not used
    /// (Envoy's "new timeouts"): the stream's duration limit and `grpc-timeout` govern.
    pub stream_duration: Option<StreamDuration>,
    /// Legacy `max_grpc_timeout` (without `max_stream_duration`): a gRPC request's timeout is
    /// its `grpc-timeout`, capped at this (`ZERO`: no cap).
    pub max_grpc_timeout: Option<Duration>,
    /// Legacy `grpc_timeout_offset`, taken off `grpc-timeout` when smaller than it.
    pub grpc_timeout_offset: Option<Duration>,
}

/// A route's `max_stream_duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamDuration {
    /// Replaces the connection manager's `max_stream_duration`; `Some(ZERO)` removes the
    /// limit on this route.
    pub max: Option<Duration>,
    /// A request's `grpc-timeout` becomes its duration limit, capped at this (`ZERO`: no
    /// cap). Without it `grpc-timeout` is not read.
    pub grpc_timeout_header_max: Option<Duration>,
    /// Taken off the `grpc-timeout` limit (down to 0).
    pub grpc_timeout_header_offset: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSpecifier {
    Cluster(String),
    /// The cluster is named by this request header (lower case).
    Header(String),
    Weighted(WeightedClusters),
}

impl ClusterSpecifier {
    /// The cluster names this specifier can route to that are known in advance.
    pub fn names(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self {
            Self::Cluster(name) => Box::new(std::iter::once(name.as_str())),
            Self::Header(_) => Box::new(std::iter::empty()),
            Self::Weighted(w) => Box::new(w.clusters.iter().filter_map(|c| match &c.target {
                WeightedTarget::Cluster(name) => Some(name.as_str()),
                WeightedTarget::Header(_) => None,
            })),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedClusters {
    pub clusters: Vec<WeightedCluster>,
    /// Sum of the weights: > 0 and ≤ u32::MAX (the deprecated `total_weight` is ignored, as in
    /// current Envoy).
    pub total_weight: u32,
    /// Take the random value from this request header (lower case) when it holds a number.
    pub random_value_header: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedCluster {
    pub target: WeightedTarget,
    pub weight: u32,
    pub host_rewrite_literal: Option<String>,
    /// Applied before the route's own when this entry is picked, as Envoy's
    /// `WeightedClusterEntry` does.
    pub header_mutations: MessageHeaderMutations,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightedTarget {
    Cluster(String),
    Header(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum PathRewrite {
    /// Replace the matched prefix (or whole matched path) with this.
    Prefix(String),
    Regex(RegexSubstitution),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HostRewrite {
    #[default]
    None,
    Literal(String),
    /// Use the chosen endpoint's hostname (DNS clusters: the resolved name).
    Auto,
    /// Use the value of this request header (lower case).
    Header(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashPolicy {
    pub source: HashSource,
    /// Stop at this policy if it produced a hash.
    pub terminal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashSource {
    /// Lower case.
    Header(String),
    /// With `ttl` set, Envoy generates the cookie when it is missing.
    Cookie {
        name: String,
        ttl: Option<Duration>,
        path: String,
    },
    SourceIp,
    QueryParameter(String),
}

/// Which circuit-breaker thresholds a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    #[default]
    Default,
    High,
}

impl Priority {
    pub(crate) fn from_proto(value: i32, field: &str) -> Result<Self> {
        Ok(match enum_value::<RoutingPriority>(value, field)? {
            RoutingPriority::Default => Self::Default,
            RoutingPriority::High => Self::High,
        })
    }
}

/// A `redirect` action.
#[derive(Debug, Clone, PartialEq)]
pub struct RedirectAction {
    /// `https` for `https_redirect`.
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<RedirectPath>,
    /// 301, 302, 303, 307 or 308.
    pub response_code: u16,
    pub strip_query: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RedirectPath {
    Path(String),
    PrefixRewrite(String),
    Regex(RegexSubstitution),
}

/// A `direct_response` action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectResponse {
    pub status: u16,
    pub body: Option<Vec<u8>>,
}

pub(crate) fn forward_action(
    proto: &pb::RouteAction,
    vhost_retry: Option<&RetryPolicy>,
    retry_buffer_limit: Option<u32>,
) -> Result<ForwardAction> {
    let pb::RouteAction {
        cluster_not_found_response_code,
        metadata_match,
        prefix_rewrite,
        regex_rewrite,
        path_rewrite_policy,
        path_rewrite,
        append_x_forwarded_host,
        timeout,
        // Checked by `reject_stream_limits`.
        idle_timeout,
        flush_timeout,
        early_data_policy,
        retry_policy,
        retry_policy_typed_config,
        request_mirror_policies,
        priority,
        rate_limits,
        // Only meaningful with `rate_limits`, which are rejected.
        include_vh_rate_limits: _,
        hash_policy,
        // Inert without the CORS filter (see `route::virtual_host`).
        cors: _,
        max_grpc_timeout,
        grpc_timeout_offset,
        upgrade_configs,
        internal_redirect_policy,
        internal_redirect_action,
        max_internal_redirects,
        hedge_policy,
        max_stream_duration,
        cluster_specifier,
        host_rewrite_specifier,
    } = proto;
    reject_if_set!(
        metadata_match,
        path_rewrite_policy,
        path_rewrite,
        flush_timeout,
        early_data_policy,
        retry_policy_typed_config,
        request_mirror_policies,
        rate_limits,
        internal_redirect_policy,
        internal_redirect_action,
        max_internal_redirects,
        hedge_policy,
    );
    let cluster = match cluster_specifier {
        Some(route_action::ClusterSpecifier::Cluster(c)) => {
            ClusterSpecifier::Cluster(non_empty(c, "cluster")?.to_string())
        }
        Some(route_action::ClusterSpecifier::ClusterHeader(h)) => {
            ClusterSpecifier::Header(header_name(h, "cluster_header")?)
        }
        Some(route_action::ClusterSpecifier::WeightedClusters(w)) => {
            ClusterSpecifier::Weighted(weighted_clusters(w).within("weighted_clusters")?)
        }
        Some(route_action::ClusterSpecifier::ClusterSpecifierPlugin(_)) => {
            return Err(ValidationError::unsupported("cluster_specifier_plugin"));
        }
        Some(route_action::ClusterSpecifier::InlineClusterSpecifierPlugin(_)) => {
            return Err(ValidationError::unsupported(
                "inline_cluster_specifier_plugin",
            ));
        }
        None => {
            return Err(ValidationError::new(
                "cluster_specifier",
                "one of cluster, cluster_header or weighted_clusters is required",
            ));
        }
    };
    let cluster_not_found_response_code =
        match enum_value::<route_action::ClusterNotFoundResponseCode>(
            *cluster_not_found_response_code,
            "cluster_not_found_response_code",
        )? {
            route_action::ClusterNotFoundResponseCode::ServiceUnavailable => 503,
            route_action::ClusterNotFoundResponseCode::NotFound => 404,
            route_action::ClusterNotFoundResponseCode::InternalServerError => 500,
        };
    let path_rewrite = match (prefix_rewrite.is_empty(), regex_rewrite) {
        (true, None) => None,
        (false, None) => {
            header_value(prefix_rewrite, "prefix_rewrite")?;
            Some(PathRewrite::Prefix(prefix_rewrite.clone()))
        }
        (true, Some(r)) => Some(PathRewrite::Regex(
            regex_substitution(r).within("regex_rewrite")?,
        )),
        (false, Some(_)) => {
            return Err(ValidationError::new(
                "regex_rewrite",
                "Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy",
            ));
        }
    };
    let host_rewrite = match host_rewrite_specifier {
        None => HostRewrite::None,
        Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(h)) => {
            header_value(h, "host_rewrite_literal")?;
            HostRewrite::Literal(h.clone())
        }
        Some(route_action::HostRewriteSpecifier::AutoHostRewrite(b)) if b.value => {
            HostRewrite::Auto
        }
        Some(route_action::HostRewriteSpecifier::AutoHostRewrite(_)) => HostRewrite::None,
        Some(route_action::HostRewriteSpecifier::HostRewriteHeader(h)) => {
            HostRewrite::Header(header_name(h, "host_rewrite_header")?)
        }
        Some(route_action::HostRewriteSpecifier::HostRewritePathRegex(_)) => {
            return Err(ValidationError::unsupported("host_rewrite_path_regex"));
        }
        // A substitution-format string: we only do literal values.
        Some(route_action::HostRewriteSpecifier::HostRewrite(_)) => {
            return Err(ValidationError::unsupported("host_rewrite"));
        }
    };
    let retry_policy = match retry_policy {
        Some(r) => Some(RetryPolicy::from_proto(r).within("retry_policy")?),
        None => vhost_retry.cloned(),
    };
    let mut upgrades: Vec<(String, bool)> = Vec::with_capacity(upgrade_configs.len());
    for (i, u) in upgrade_configs.iter().enumerate() {
        let route_action::UpgradeConfig {
            upgrade_type,
            enabled,
            connect_config,
        } = u;
        let path = format!("upgrade_configs[{i}]");
        if connect_config.is_some() {
            return Err(ValidationError::unsupported(format!(
                "{path}.connect_config"
            )));
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
                format!("Duplicate upgrade {upgrade_type}"),
            ));
        }
        upgrades.push((kind, bool_or(enabled, true)));
    }
    Ok(ForwardAction {
        cluster,
        cluster_not_found_response_code,
        timeout: timeout_or(timeout, "timeout", Some(DEFAULT_ROUTE_TIMEOUT))?,
        retry_policy,
        retry_buffer_limit,
        path_rewrite,
        host_rewrite,
        append_x_forwarded_host: *append_x_forwarded_host,
        hash_policy: convert_each(hash_policy, "hash_policy", hash_policy_entry)?,
        priority: Priority::from_proto(*priority, "priority")?,
        upgrades,
        idle_timeout: opt_duration(idle_timeout, "idle_timeout")?,
        stream_duration: max_stream_duration
            .as_ref()
            .map(stream_duration)
            .transpose()
            .within("max_stream_duration")?,
        max_grpc_timeout: opt_duration(max_grpc_timeout, "max_grpc_timeout")?,
        grpc_timeout_offset: opt_duration(grpc_timeout_offset, "grpc_timeout_offset")?,
    })
}

fn stream_duration(proto: &route_action::MaxStreamDuration) -> Result<StreamDuration> {
    let route_action::MaxStreamDuration {
        max_stream_duration,
        grpc_timeout_header_max,
        grpc_timeout_header_offset,
    } = proto;
    Ok(StreamDuration {
        max: opt_duration(max_stream_duration, "max_stream_duration")?,
        grpc_timeout_header_max: opt_duration(grpc_timeout_header_max, "grpc_timeout_header_max")?,
        grpc_timeout_header_offset: opt_duration(
            grpc_timeout_header_offset,
            "grpc_timeout_header_offset",
        )?,
    })
}

fn weighted_clusters(proto: &pb::WeightedCluster) -> Result<WeightedClusters> {
    let pb::WeightedCluster {
        clusters,
        // Deprecated; Envoy now uses the sum of the weights.
        total_weight: _,
        // Runtime overrides: we have no runtime, so the configured weights apply, as in an
        // Envoy without those runtime keys.
        runtime_key_prefix: _,
        random_value_specifier,
    } = proto;
    if clusters.is_empty() {
        return Err(ValidationError::new(
            "clusters",
            "at least one cluster is required",
        ));
    }
    let clusters = convert_each(clusters, "clusters", cluster_weight)?;
    let total: u64 = clusters.iter().map(|c| u64::from(c.weight)).sum();
    if total == 0 {
        return Err(ValidationError::new(
            "clusters",
            "Sum of weights in the weighted_cluster must be greater than 0.",
        ));
    }
    let total_weight = u32::try_from(total).map_err(|_| {
        ValidationError::new(
            "clusters",
            "the sum of the weights must not exceed 4294967295",
        )
    })?;
    let random_value_header = match random_value_specifier {
        None => None,
        Some(weighted_cluster::RandomValueSpecifier::HeaderName(h)) => {
            Some(header_name(h, "header_name")?)
        }
        Some(weighted_cluster::RandomValueSpecifier::UseHashPolicy(b)) if b.value => {
            return Err(ValidationError::unsupported("use_hash_policy"));
        }
        Some(weighted_cluster::RandomValueSpecifier::UseHashPolicy(_)) => None,
    };
    Ok(WeightedClusters {
        clusters,
        total_weight,
        random_value_header,
    })
}

fn cluster_weight(proto: &weighted_cluster::ClusterWeight) -> Result<WeightedCluster> {
    let weighted_cluster::ClusterWeight {
        name,
        cluster_header,
        weight,
        metadata_match,
        request_headers_to_add,
        request_headers_to_remove,
        response_headers_to_add,
        response_headers_to_remove,
        typed_per_filter_config,
        host_rewrite_specifier,
    } = proto;
    reject_if_set!(metadata_match, typed_per_filter_config);
    let header_mutations = message_header_mutations(
        request_headers_to_add,
        request_headers_to_remove,
        response_headers_to_add,
        response_headers_to_remove,
    )?;
    let target = match (name.is_empty(), cluster_header.is_empty()) {
        (false, true) => WeightedTarget::Cluster(name.clone()),
        (true, false) => WeightedTarget::Header(header_name(cluster_header, "cluster_header")?),
        (false, false) => {
            return Err(ValidationError::new(
                "name",
                "Only one of name or cluster_header can be specified",
            ));
        }
        (true, true) => {
            return Err(ValidationError::new(
                "name",
                "At least one of name or cluster_header need to be specified",
            ));
        }
    };
    let host_rewrite_literal = match host_rewrite_specifier {
        Some(weighted_cluster::cluster_weight::HostRewriteSpecifier::HostRewriteLiteral(h)) => {
            header_value(h, "host_rewrite_literal")?;
            Some(h.clone())
        }
        None => None,
    };
    Ok(WeightedCluster {
        target,
        weight: weight.as_ref().map_or(0, |w| w.value),
        host_rewrite_literal,
        header_mutations,
    })
}

fn hash_policy_entry(proto: &route_action::HashPolicy) -> Result<HashPolicy> {
    use route_action::hash_policy::{self, PolicySpecifier};
    let route_action::HashPolicy {
        terminal,
        policy_specifier,
    } = proto;
    let source = match policy_specifier {
        Some(PolicySpecifier::Header(hash_policy::Header {
            header_name: name,
            regex_rewrite,
        })) => {
            if regex_rewrite.is_some() {
                return Err(ValidationError::unsupported("header.regex_rewrite"));
            }
            HashSource::Header(header_name(name, "header.header_name")?)
        }
        Some(PolicySpecifier::Cookie(hash_policy::Cookie {
            name,
            ttl,
            path,
            attributes,
        })) => {
            non_empty(name, "cookie.name")?;
            if !attributes.is_empty() {
                return Err(ValidationError::unsupported("cookie.attributes"));
            }
            // Both go into the Set-Cookie header of a generated cookie.
            for (text, field) in [(name, "cookie.name"), (path, "cookie.path")] {
                if http::HeaderValue::from_str(text).is_err() {
                    return Err(ValidationError::new(
                        field,
                        "must not contain control characters (it is sent in Set-Cookie)",
                    ));
                }
            }
            HashSource::Cookie {
                name: name.clone(),
                // Envoy then generates the cookie when missing and sends it with Set-Cookie
                // (0s: a session cookie, without Max-Age).
                ttl: opt_duration(ttl, "cookie.ttl")?,
                path: path.clone(),
            }
        }
        Some(PolicySpecifier::ConnectionProperties(hash_policy::ConnectionProperties {
            source_ip,
        })) => {
            if !source_ip {
                // Envoy produces no hash from this policy then; keep it out rather than fake one.
                return Err(ValidationError::new(
                    "connection_properties.source_ip",
                    "must be true",
                ));
            }
            HashSource::SourceIp
        }
        Some(PolicySpecifier::QueryParameter(hash_policy::QueryParameter { name })) => {
            HashSource::QueryParameter(non_empty(name, "query_parameter.name")?.to_string())
        }
        Some(PolicySpecifier::FilterState(_)) => {
            return Err(ValidationError::unsupported("filter_state"));
        }
        None => {
            return Err(ValidationError::new(
                "policy_specifier",
                "one of header, cookie, connection_properties or query_parameter is required",
            ));
        }
    };
    Ok(HashPolicy {
        source,
        terminal: *terminal,
    })
}

pub(crate) fn redirect_action(proto: &pb::RedirectAction) -> Result<RedirectAction> {
    let pb::RedirectAction {
        host_redirect,
        port_redirect,
        response_code,
        strip_query,
        scheme_rewrite_specifier,
        path_rewrite_specifier,
    } = proto;
    header_value(host_redirect, "host_redirect")?;
    let port = match *port_redirect {
        0 => None,
        p => Some(
            u16::try_from(p)
                .map_err(|_| ValidationError::new("port_redirect", "must be at most 65535"))?,
        ),
    };
    let scheme = match scheme_rewrite_specifier {
        None => None,
        Some(redirect_action::SchemeRewriteSpecifier::HttpsRedirect(true)) => {
            Some("https".to_string())
        }
        Some(redirect_action::SchemeRewriteSpecifier::HttpsRedirect(false)) => None,
        Some(redirect_action::SchemeRewriteSpecifier::SchemeRedirect(s)) => {
            header_value(s, "scheme_redirect")?;
            Some(s.to_ascii_lowercase()).filter(|s| !s.is_empty())
        }
    };
    let path = match path_rewrite_specifier {
        None => None,
        Some(redirect_action::PathRewriteSpecifier::PathRedirect(p)) => {
            header_value(p, "path_redirect")?;
            Some(RedirectPath::Path(p.clone()))
        }
        Some(redirect_action::PathRewriteSpecifier::PrefixRewrite(p)) => {
            header_value(p, "prefix_rewrite")?;
            Some(RedirectPath::PrefixRewrite(p.clone()))
        }
        Some(redirect_action::PathRewriteSpecifier::RegexRewrite(r)) => Some(RedirectPath::Regex(
            regex_substitution(r).within("regex_rewrite")?,
        )),
        // A substitution-format string: we only do literal values.
        Some(redirect_action::PathRewriteSpecifier::PathRewrite(_)) => {
            return Err(ValidationError::unsupported("path_rewrite"));
        }
    };
    let response_code =
        match enum_value::<redirect_action::RedirectResponseCode>(*response_code, "response_code")?
        {
            redirect_action::RedirectResponseCode::MovedPermanently => 301,
            redirect_action::RedirectResponseCode::Found => 302,
            redirect_action::RedirectResponseCode::SeeOther => 303,
            redirect_action::RedirectResponseCode::TemporaryRedirect => 307,
            redirect_action::RedirectResponseCode::PermanentRedirect => 308,
        };
    Ok(RedirectAction {
        scheme,
        host: Some(host_redirect.clone()).filter(|h| !h.is_empty()),
        port,
        path,
        response_code,
        strip_query: *strip_query,
    })
}

pub(crate) fn direct_response(
    proto: &pb::DirectResponseAction,
    max_body: u32,
) -> Result<DirectResponse> {
    let pb::DirectResponseAction {
        status,
        body,
        body_format,
    } = proto;
    reject_if_set!(body_format);
    let status = match u16::try_from(*status) {
        Ok(s) if (200..600).contains(&s) => s,
        _ => {
            return Err(ValidationError::new(
                "status",
                "must be between 200 and 599",
            ));
        }
    };
    let body = match body {
        None => None,
        Some(b) => match DataSource::from_proto(b).within("body")? {
            DataSource::Inline(bytes) => Some(bytes),
            // Envoy reads the file once at load time; that needs I/O during validation.
            DataSource::File(_) => {
                return Err(ValidationError::new(
                    "body.filename",
                    "not supported (use inline_string or inline_bytes)",
                ));
            }
        },
    };
    if let Some(b) = &body
        && b.len() > max_body as usize
    {
        return Err(ValidationError::new(
            "body",
            format!(
                "response body size is {} bytes; maximum is {max_body}",
                b.len()
            ),
        ));
    }
    Ok(DirectResponse { status, body })
}
