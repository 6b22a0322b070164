//! The `envoy.filters.network.tcp_proxy` network filter.

use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{self as pb, tcp_proxy};

use crate::error::{
    Result, ValidationError, Within, convert_each, non_empty, reject_if_set, reject_timeout,
};
use crate::proto_value::{enum_value, opt_duration, u32_in};

const DEFAULT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpProxy {
    pub stat_prefix: String,
    pub cluster: TcpProxyCluster,
    /// Default 1.
    pub max_connect_attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpProxyCluster {
    Cluster(String),
    /// Each weight ≥ 1.
    Weighted(Vec<(String, u32)>),
}

impl TcpProxyCluster {
    pub fn names(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self {
            Self::Cluster(name) => Box::new(std::iter::once(name.as_str())),
            Self::Weighted(w) => Box::new(w.iter().map(|(name, _)| name.as_str())),
        }
    }
}

impl TcpProxy {
    pub(crate) fn from_proto(proto: &pb::TcpProxy) -> Result<Self> {
        let pb::TcpProxy {
            stat_prefix,
            on_demand,
            metadata_match,
            idle_timeout,
            downstream_idle_timeout,
            upstream_idle_timeout,
            access_log,
            max_connect_attempts,
            backoff_options,
            hash_policy,
            tunneling_config,
            max_downstream_connection_duration,
            // Spreads connection closes over time only.
            max_downstream_connection_duration_jitter_percentage: _,
            access_log_flush_interval: _,
            flush_access_log_on_connected: _,
            access_log_options: _,
            proxy_protocol_tlvs,
            // Only applies to `proxy_protocol_tlvs`, which are rejected.
            proxy_protocol_tlv_merge_policy: _,
            upstream_connect_mode,
            max_early_data_bytes,
            // Drain behaviour nuance: whether a draining listener closes idle TCP proxies early.
            check_drain_close: _,
            cluster_specifier,
        } = proto;
        reject_if_set!(
            on_demand,
            metadata_match,
            backoff_options,
            hash_policy,
            tunneling_config,
            proxy_protocol_tlvs,
            max_early_data_bytes,
        );
        if enum_value::<pb::UpstreamConnectMode>(*upstream_connect_mode, "upstream_connect_mode")?
            != pb::UpstreamConnectMode::Immediate
        {
            return Err(ValidationError::unsupported("upstream_connect_mode"));
        }
        non_empty(stat_prefix, "stat_prefix")?;
        let cluster = match cluster_specifier {
            Some(tcp_proxy::ClusterSpecifier::Cluster(c)) => {
                TcpProxyCluster::Cluster(non_empty(c, "cluster")?.to_string())
            }
            Some(tcp_proxy::ClusterSpecifier::WeightedClusters(tcp_proxy::WeightedCluster {
                clusters,
            })) => {
                if clusters.is_empty() {
                    return Err(ValidationError::new(
                        "weighted_clusters.clusters",
                        "at least one cluster is required",
                    ));
                }
                let clusters = convert_each(clusters, "clusters", |c| {
                    let tcp_proxy::weighted_cluster::ClusterWeight {
                        name,
                        weight,
                        metadata_match,
                    } = c;
                    reject_if_set!(metadata_match);
                    non_empty(name, "name")?;
                    if *weight == 0 {
                        return Err(ValidationError::new("weight", "must be at least 1"));
                    }
                    Ok((name.clone(), *weight))
                })
                .within("weighted_clusters")?;
                TcpProxyCluster::Weighted(clusters)
            }
            None => {
                return Err(ValidationError::new(
                    "cluster_specifier",
                    "one of cluster or weighted_clusters is required",
                ));
            }
        };
        // No timer runs on a proxied connection yet. Envoy's 1 h idle default is not applied
        // either (README), so it is accepted written out; any other is refused.
        if opt_duration(idle_timeout, "idle_timeout")?
            .is_some_and(|d| !d.is_zero() && d != DEFAULT_IDLE_TIMEOUT)
        {
            return Err(ValidationError::not_enforced(
                "idle_timeout",
                "not applied; only 0s and Envoy's default (3600s) are accepted",
            ));
        }
        for (value, field) in [
            (downstream_idle_timeout, "downstream_idle_timeout"),
            (upstream_idle_timeout, "upstream_idle_timeout"),
            (
                max_downstream_connection_duration,
                "max_downstream_connection_duration",
            ),
        ] {
            reject_timeout(value, field)?;
        }
        if !access_log.is_empty() {
            return Err(ValidationError::not_enforced(
                "access_log",
                "TCP proxy access logs are not written",
            ));
        }
        Ok(Self {
            stat_prefix: stat_prefix.clone(),
            cluster,
            max_connect_attempts: u32_in(
                max_connect_attempts,
                "max_connect_attempts",
                1..=u32::MAX,
                1,
            )?,
        })
    }
}
