//! `Cluster`: an upstream service, how its endpoints are found, balanced, protected
//! (circuit breakers, outlier detection, health checks) and reached (TLS, HTTP protocol).

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::{self as pb, cluster};

use crate::address::HostnamePolicy;
use crate::circuit_breaker::CircuitBreakers;
use crate::config_source::ConfigSource;
use crate::endpoint::ClusterLoadAssignment;
use crate::error::{
    Result, ValidationError, Within, convert_each, non_empty, reject_if_set, required,
};
use crate::health_check::HealthCheck;
use crate::lb_policy::{CommonLbConfig, LbPolicy, common_lb_config, lb_policy};
use crate::outlier::OutlierDetection;
use crate::proto_value::{enum_value, opt_duration, positive_duration_or};
use crate::tls::upstream_transport_socket;
use crate::upstream_http::{LegacyHttpFields, UpstreamHttpOptions, upstream_http_options};

/// Envoy's default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Envoy's default per-connection buffer limit (1 MiB).
pub const DEFAULT_PER_CONNECTION_BUFFER_LIMIT_BYTES: u32 = 1024 * 1024;
const DEFAULT_DNS_REFRESH_RATE: Duration = Duration::from_millis(5000);

/// A validated cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub name: String,
    pub discovery: Discovery,
    pub connect_timeout: Duration,
    pub lb_policy: LbPolicy,
    pub common_lb: CommonLbConfig,
    pub circuit_breakers: CircuitBreakers,
    /// `None`: outlier detection is off (the proto field is absent).
    pub outlier_detection: Option<OutlierDetection>,
    pub health_checks: Vec<HealthCheck>,
    pub http: UpstreamHttpOptions,
    /// `transport_socket`: TLS to the endpoints (`None`: plaintext).
    pub tls: Option<crate::tls::UpstreamTls>,
    /// The endpoints of STATIC and DNS clusters (`None` for EDS clusters, whose endpoints come
    /// from EDS; Envoy ignores `load_assignment` there).
    pub load_assignment: Option<ClusterLoadAssignment>,
    /// `upstream_connection_options.tcp_keepalive`: SO_KEEPALIVE on upstream connections.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// `alt_stat_name`: the name used in stats instead of `name`.
    pub alt_stat_name: Option<String>,
    /// `ignore_health_on_host_removal`: a host that EDS (or DNS) no longer lists is dropped at
    /// once. When false (the default) and the cluster checks health, it stays, flagged
    /// `pending_dynamic_removal`, until it fails a check.
    pub ignore_health_on_host_removal: bool,
}

/// TCP keepalive on a connection (`core.v3.TcpKeepalive`); `None` fields keep the OS default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpKeepalive {
    pub probes: Option<u32>,
    pub time: Option<Duration>,
    pub interval: Option<Duration>,
}

/// How the cluster finds its endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    Static,
    StrictDns(DnsSettings),
    LogicalDns(DnsSettings),
    Eds {
        /// `eds_cluster_config.service_name`, or the cluster name when empty.
        resource_name: String,
        config_source: ConfigSource,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// `dns_refresh_rate`, Envoy's 5 s when unset.
    pub refresh_rate: Duration,
    pub lookup_family: DnsLookupFamily,
    /// Upper bound of a random delay added to each refresh.
    pub jitter: Duration,
    /// Back-off after failed resolutions (base, max); `None`: use `refresh_rate`.
    pub failure_refresh: Option<(Duration, Duration)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsLookupFamily {
    /// Envoy's AUTO: IPv6 if any, else IPv4.
    Auto,
    V4Only,
    V6Only,
    V4Preferred,
    All,
}

impl Cluster {
    pub fn from_proto(proto: &pb::Cluster) -> Result<Cluster> {
        let pb::Cluster {
            transport_socket_matches,
            transport_socket_matcher,
            name,
            alt_stat_name,
            // Only chooses which stats exist.
            stats_matcher: _,
            eds_cluster_config,
            connect_timeout,
            // Tunes flow control only: what is proxied is the same.
            per_connection_buffer_limit_bytes: _,
            per_connection_buffer_high_watermark_timeout,
            lb_policy: lb_policy_value,
            load_assignment,
            health_checks,
            max_requests_per_connection,
            circuit_breakers,
            upstream_http_protocol_options,
            common_http_protocol_options,
            http_protocol_options,
            http2_protocol_options,
            typed_extension_protocol_options,
            dns_refresh_rate,
            dns_jitter,
            dns_failure_refresh_rate,
            respect_dns_ttl,
            dns_lookup_family,
            dns_resolvers,
            use_tcp_for_dns_lookups,
            dns_resolution_config,
            typed_dns_resolver_config,
            // Only decides whether server initialisation waits for this cluster.
            wait_for_warm_on_init: _,
            outlier_detection,
            // Only used by ORIGINAL_DST clusters, which are rejected.
            cleanup_interval: _,
            upstream_bind_config,
            lb_subset_config,
            common_lb_config: common_lb,
            transport_socket,
            // Read by filters, subset load balancing (rejected) and access logs only.
            metadata: _,
            protocol_selection,
            upstream_connection_options,
            close_connections_on_host_health_failure,
            ignore_health_on_host_removal,
            filters,
            load_balancing_policy,
            // Not implemented by Envoy either: load reports go to the bootstrap's LRS server.
            lrs_server: _,
            lrs_report_endpoint_metrics,
            // Stats only.
            track_timeout_budgets: _,
            track_cluster_stats: _,
            // Pre-connecting is an optimisation; the connections used are the same kind.
            preconnect_policy: _,
            connection_pool_per_downstream_connection,
            queuing_policies,
            upstream_config,
            cluster_discovery_type,
            lb_config,
        } = proto;
        reject_if_set!(
            transport_socket_matches,
            transport_socket_matcher,
            per_connection_buffer_high_watermark_timeout,
            dns_resolvers,
            use_tcp_for_dns_lookups,
            dns_resolution_config,
            typed_dns_resolver_config,
            upstream_bind_config,
            lb_subset_config,
            filters,
            connection_pool_per_downstream_connection,
            queuing_policies,
            upstream_config,
        );
        non_empty(name, "name")?;
        for (set, field, what) in [
            // Envoy reads it on DNS clusters only.
            (
                *respect_dns_ttl
                    && matches!(
                        cluster_discovery_type,
                        Some(cluster::ClusterDiscoveryType::Type(t))
                            if *t == cluster::DiscoveryType::StrictDns as i32
                                || *t == cluster::DiscoveryType::LogicalDns as i32
                    ),
                "respect_dns_ttl",
                "the system resolver gives no TTL; refreshes follow dns_refresh_rate",
            ),
            (
                *close_connections_on_host_health_failure,
                "close_connections_on_host_health_failure",
                "connections to a host that fails health checks are not closed",
            ),
            (
                !lrs_report_endpoint_metrics.is_empty(),
                "lrs_report_endpoint_metrics",
                "no ORCA metrics are read or reported",
            ),
            (
                health_checks.len() > 1,
                "health_checks",
                "Multiple health checks not supported",
            ),
        ] {
            if set {
                return Err(ValidationError::not_enforced(field, what));
            }
        }

        let discovery_type = match cluster_discovery_type {
            None => cluster::DiscoveryType::Static,
            Some(cluster::ClusterDiscoveryType::Type(t)) => enum_value(*t, "type")?,
            Some(cluster::ClusterDiscoveryType::ClusterType(_)) => {
                return Err(ValidationError::unsupported("cluster_type"));
            }
        };
        let dns = || {
            dns_settings(
                dns_refresh_rate,
                dns_jitter,
                dns_failure_refresh_rate,
                *dns_lookup_family,
            )
        };
        let static_assignment = |policy: HostnamePolicy| -> Result<ClusterLoadAssignment> {
            match load_assignment {
                Some(cla) => ClusterLoadAssignment::convert(cla, policy).within("load_assignment"),
                // Envoy accepts a STATIC or STRICT_DNS cluster without endpoints.
                None => Ok(ClusterLoadAssignment::empty(name)),
            }
        };
        let (discovery, load_assignment) = match discovery_type {
            cluster::DiscoveryType::Static => (
                Discovery::Static,
                Some(static_assignment(HostnamePolicy::IpOnly)?),
            ),
            cluster::DiscoveryType::StrictDns => (
                Discovery::StrictDns(dns()?),
                Some(static_assignment(HostnamePolicy::AllowHostname)?),
            ),
            cluster::DiscoveryType::LogicalDns => {
                let cla = static_assignment(HostnamePolicy::AllowHostname)?;
                let single = cla.localities.len() == 1
                    && cla
                        .localities
                        .first()
                        .is_some_and(|l| l.lb_endpoints.len() == 1);
                if !single {
                    return Err(ValidationError::new(
                        "load_assignment",
                        "LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint",
                    ));
                }
                (Discovery::LogicalDns(dns()?), Some(cla))
            }
            cluster::DiscoveryType::Eds => {
                let eds = required(eds_cluster_config, "eds_cluster_config")?;
                let cluster::EdsClusterConfig {
                    eds_config,
                    service_name,
                } = eds;
                let config_source = ConfigSource::from_proto(
                    required(eds_config, "eds_config").within("eds_cluster_config")?,
                )
                .within("eds_config")
                .within("eds_cluster_config")?;
                let resource_name = if service_name.is_empty() {
                    name.clone()
                } else {
                    service_name.clone()
                };
                (
                    Discovery::Eds {
                        resource_name,
                        config_source,
                    },
                    None,
                )
            }
            cluster::DiscoveryType::OriginalDst => {
                return Err(ValidationError::new(
                    "type",
                    "ORIGINAL_DST is not supported",
                ));
            }
        };

        let http = upstream_http_options(
            typed_extension_protocol_options,
            LegacyHttpFields {
                http_protocol_options,
                http2_protocol_options,
                common_http_protocol_options,
                upstream_http_protocol_options,
                protocol_selection: *protocol_selection,
                max_requests_per_connection,
            },
        )?;
        let tls = match transport_socket {
            Some(ts) => upstream_transport_socket(ts).within("transport_socket")?,
            None => None,
        };
        // Envoy checks over the cluster's TLS; ours would speak plaintext to a TLS port and
        // find every endpoint unhealthy.
        if tls.is_some() && !health_checks.is_empty() {
            return Err(ValidationError::not_enforced(
                "health_checks",
                "active health checks do not use the cluster's TLS yet",
            ));
        }
        let tcp_keepalive = match upstream_connection_options {
            Some(options) => upstream_connection(options).within("upstream_connection_options")?,
            None => None,
        };
        Ok(Cluster {
            name: name.clone(),
            discovery,
            connect_timeout: positive_duration_or(
                connect_timeout,
                "connect_timeout",
                DEFAULT_CONNECT_TIMEOUT,
            )?,
            lb_policy: lb_policy(*lb_policy_value, lb_config, load_balancing_policy)?,
            common_lb: match common_lb {
                Some(c) => common_lb_config(c).within("common_lb_config")?,
                None => CommonLbConfig::default(),
            },
            circuit_breakers: match circuit_breakers {
                Some(c) => CircuitBreakers::from_proto(c).within("circuit_breakers")?,
                None => CircuitBreakers::default(),
            },
            outlier_detection: outlier_detection
                .as_ref()
                .map(|o| OutlierDetection::from_proto(o).within("outlier_detection"))
                .transpose()?,
            health_checks: convert_each(health_checks, "health_checks", HealthCheck::from_proto)?,
            http,
            tls,
            load_assignment,
            tcp_keepalive,
            alt_stat_name: Some(alt_stat_name.clone()).filter(|n| !n.is_empty()),
            ignore_health_on_host_removal: *ignore_health_on_host_removal,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// For EDS clusters: `eds_cluster_config.service_name`, or the cluster name when empty.
    pub fn eds_resource_name(&self) -> Option<&str> {
        match &self.discovery {
            Discovery::Eds { resource_name, .. } => Some(resource_name),
            _ => None,
        }
    }

    pub fn eds_config_source(&self) -> Option<&ConfigSource> {
        match &self.discovery {
            Discovery::Eds { config_source, .. } => Some(config_source),
            _ => None,
        }
    }
}

fn dns_settings(
    refresh_rate: &Option<envoy_types::pb::google::protobuf::Duration>,
    jitter: &Option<envoy_types::pb::google::protobuf::Duration>,
    failure_refresh_rate: &Option<cluster::RefreshRate>,
    lookup_family: i32,
) -> Result<DnsSettings> {
    let ms = Duration::from_millis(1);
    let at_least_1ms = |d: Option<Duration>, field: &str| match d {
        Some(d) if d <= ms => Err(ValidationError::new(field, "must be greater than 1ms")),
        other => Ok(other),
    };
    let refresh_rate = at_least_1ms(
        opt_duration(refresh_rate, "dns_refresh_rate")?,
        "dns_refresh_rate",
    )?
    .unwrap_or(DEFAULT_DNS_REFRESH_RATE);
    let failure_refresh = match failure_refresh_rate {
        None => None,
        Some(cluster::RefreshRate {
            base_interval,
            max_interval,
        }) => {
            let f = "dns_failure_refresh_rate";
            let base = at_least_1ms(
                opt_duration(base_interval, "base_interval")?,
                "base_interval",
            )
            .within(f)?
            .ok_or_else(|| ValidationError::required("base_interval").under(f))?;
            let max = at_least_1ms(opt_duration(max_interval, "max_interval")?, "max_interval")
                .within(f)?
                .unwrap_or(base.saturating_mul(10));
            if max < base {
                return Err(ValidationError::new(
                    "dns_failure_refresh_rate.max_interval",
                    "must be greater than or equal to the base_interval",
                ));
            }
            Some((base, max))
        }
    };
    let lookup_family =
        match enum_value::<cluster::DnsLookupFamily>(lookup_family, "dns_lookup_family")? {
            cluster::DnsLookupFamily::Auto => DnsLookupFamily::Auto,
            cluster::DnsLookupFamily::V4Only => DnsLookupFamily::V4Only,
            cluster::DnsLookupFamily::V6Only => DnsLookupFamily::V6Only,
            cluster::DnsLookupFamily::V4Preferred => DnsLookupFamily::V4Preferred,
            cluster::DnsLookupFamily::All => DnsLookupFamily::All,
        };
    Ok(DnsSettings {
        refresh_rate,
        lookup_family,
        jitter: opt_duration(jitter, "dns_jitter")?.unwrap_or_default(),
        failure_refresh,
    })
}

fn upstream_connection(proto: &pb::UpstreamConnectionOptions) -> Result<Option<TcpKeepalive>> {
    let pb::UpstreamConnectionOptions {
        tcp_keepalive,
        set_local_interface_name_on_upstream_connections,
        happy_eyeballs_config,
    } = proto;
    reject_if_set!(
        set_local_interface_name_on_upstream_connections,
        happy_eyeballs_config
    );
    Ok(tcp_keepalive.as_ref().map(TcpKeepalive::from_proto))
}

impl TcpKeepalive {
    pub(crate) fn from_proto(
        proto: &envoy_types::pb::envoy::config::core::v3::TcpKeepalive,
    ) -> Self {
        let envoy_types::pb::envoy::config::core::v3::TcpKeepalive {
            keepalive_probes,
            keepalive_time,
            keepalive_interval,
        } = proto;
        // Seconds, as Envoy sets them; 0 is left to the OS, as Envoy leaves it.
        let seconds = |v: &Option<envoy_types::pb::google::protobuf::UInt32Value>| {
            v.as_ref()
                .filter(|v| v.value > 0)
                .map(|v| Duration::from_secs(u64::from(v.value)))
        };
        TcpKeepalive {
            probes: keepalive_probes
                .as_ref()
                .map(|v| v.value)
                .filter(|v| *v > 0),
            time: seconds(keepalive_time),
            interval: seconds(keepalive_interval),
        }
    }
}
