//! Validated internal configuration: Envoy xDS protos are converted here, with field-path
//! errors, into small plain types. Envoy protos stop here; the data plane never sees one.
//!
//! Every conversion destructures its proto completely, so a field added to the API is a
//! compile error until it is converted, ignored with a comment saying why that is harmless,
//! or rejected (`reject_if_set!`) because ignoring it would make us behave unlike Envoy.

// Control planes still send deprecated fields (legacy header matchers, `append`, v2-era
// options); we must read them to behave as Envoy does, so their deprecation warnings are noise.
#![allow(deprecated)]

mod access_log;
mod access_log_filter;
mod address;
mod circuit_breaker;
mod cluster;
mod config_source;
#[doc(hidden)]
pub mod coverage;
mod data_source;
mod endpoint;
mod error;
mod filter_chain;
mod formatter;
mod header_mutation;
mod health_check;
mod http_connection_manager;
mod http_protocol;
mod ignored_fields;
mod internal_address;
mod lb_policy;
mod listener;
mod matcher;
mod outlier;
mod proto_value;
mod retry;
mod route;
mod route_action;
mod tcp_proxy;
mod time_format;
mod tls;
mod upstream_http;

pub use access_log::{
    AccessLog, AccessLogSink, AccessLogs, DEFAULT_FORMAT, JsonField, LogFormat, LogFormatKind,
};
pub use access_log_filter::{CompareOp, Comparison, LogFilter};
pub use address::EndpointAddress;
pub use circuit_breaker::{CircuitBreakers, Thresholds};
pub use cluster::{
    Cluster, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PER_CONNECTION_BUFFER_LIMIT_BYTES, Discovery,
    DnsLookupFamily, DnsSettings, TcpKeepalive,
};
pub use config_source::ConfigSource;
pub use data_source::DataSource;
pub use endpoint::{
    ClusterLoadAssignment, DEFAULT_OVERPROVISIONING_FACTOR, DropOverload, EndpointHealthCheck,
    HealthStatus, LbEndpoint, Locality, LocalityLbEndpoints,
};
pub use error::{ValidationError, error_chain};
pub use filter_chain::{CidrRange, FilterChain, FilterChainMatch, NetworkFilter, SourceType};
pub use formatter::{Command, Format, FormatPart, HeaderOperand};
pub use header_mutation::{
    AppendAction, HeaderMutations, HeaderText, HeaderToAdd, MessageHeaderMutations,
};
pub use health_check::{
    GrpcHealthCheck, HealthCheck, HealthChecker, HttpHealthCheck, TcpHealthCheck,
};
pub use http_connection_manager::{
    EscapedSlashes, HARMLESS_HTTP_FILTERS, HttpConnectionManager, RouteSource,
    ServerHeaderTransformation, SkippedFilter, StripHostPort,
};
pub use http_protocol::{
    CommonHttpOptions, DEFAULT_MAX_HEADERS_COUNT, Http1Options, Http2Keepalive, Http2Options,
    UnderscoreHeaders,
};
pub use ignored_fields::{IGNORED_FIELDS, IgnoredField, READ_ELSEWHERE, ignored_field};
pub use internal_address::InternalAddresses;
pub use lb_policy::{CommonLbConfig, LbPolicy, RingHashFunction};
pub use listener::Listener;
pub use matcher::{
    FullRegex, HeaderMatchRule, HeaderMatcher, QueryParameterMatcher, RegexSubstitution,
    StringMatcher, StringPattern,
};
pub use outlier::OutlierDetection;
pub use retry::{DEFAULT_RETRY_BASE_INTERVAL, RetryOn, RetryPolicy};
pub use route::{
    DomainMatcher, PathMatch, Route, RouteAction, RouteConfiguration, RouteMatch, TlsRequirement,
    VirtualHost,
};
pub use route_action::{
    ClusterSpecifier, DEFAULT_ROUTE_TIMEOUT, DirectResponse, ForwardAction, HashPolicy, HashSource,
    HostRewrite, PathRewrite, Priority, RedirectAction, RedirectPath, StreamDuration,
    WeightedCluster, WeightedClusters, WeightedTarget,
};
pub use tcp_proxy::{TcpProxy, TcpProxyCluster};
pub use time_format::{TimeFormat, TimePart};
pub use tls::{
    Built, CertificateKeyPair, CertificateValidation, CommonTls, DownstreamTls, SanMatcher,
    SanType, TlsVersion, UpstreamTls,
};
pub use upstream_http::{UpstreamHttpOptions, UpstreamProtocol};
