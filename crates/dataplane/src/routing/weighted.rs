//! The upstream cluster of a forwarding route: a fixed name, a name read from a request header,
//! or a pick among weighted clusters with Envoy's cumulative-weight walk.

use std::borrow::Cow;

use outrider_model::{
    ClusterSpecifier, ForwardAction, WeightedCluster, WeightedClusters, WeightedTarget,
};

use super::request::RequestView;

/// The cluster a request goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterChoice<'a> {
    /// `None` when the naming header is missing: the router answers with the route's
    /// `cluster_not_found_response_code`, as for an unknown cluster.
    pub cluster: Option<Cow<'a, str>>,
    /// The weighted entry picked, whose `host_rewrite_literal` applies (see `rewrite_authority`).
    pub weighted: Option<&'a WeightedCluster>,
}

/// Chooses the cluster for `request` on `action`. `random` is the stream's random value; a
/// weighted route with `header_name` uses that header's value instead when it is a number.
/// The choice borrows only the route (a name from a header is copied), so the request can
/// change afterwards.
pub fn choose_cluster<'a>(
    action: &'a ForwardAction,
    request: &RequestView<'_>,
    random: u64,
) -> ClusterChoice<'a> {
    match &action.cluster {
        ClusterSpecifier::Cluster(name) => ClusterChoice {
            cluster: Some(Cow::Borrowed(name)),
            weighted: None,
        },
        ClusterSpecifier::Header(header) => ClusterChoice {
            cluster: header_cluster(request, header),
            weighted: None,
        },
        ClusterSpecifier::Weighted(weighted) => {
            let value = weighted
                .random_value_header
                .as_deref()
                .and_then(|h| request.first_header_value(h))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(random);
            let picked = pick_weighted(weighted, value);
            let cluster = match &picked.target {
                WeightedTarget::Cluster(name) => Some(Cow::Borrowed(name.as_str())),
                WeightedTarget::Header(header) => header_cluster(request, header),
            };
            ClusterChoice {
                cluster,
                weighted: Some(picked),
            }
        }
    }
}

/// Envoy takes the first value; an empty one names no cluster.
fn header_cluster(request: &RequestView<'_>, header: &str) -> Option<Cow<'static, str>> {
    request
        .first_header_value(header)
        .filter(|v| !v.is_empty())
        .map(|v| Cow::Owned(v.into_owned()))
}

/// The entry whose slice of `[0, total_weight)` holds `value % total_weight` (entries in
/// configuration order; zero-weight entries own no slice).
pub fn pick_weighted(weighted: &WeightedClusters, value: u64) -> &WeightedCluster {
    let target = value % u64::from(weighted.total_weight.max(1));
    let mut end = 0u64;
    for cluster in &weighted.clusters {
        end += u64::from(cluster.weight);
        if target < end {
            return cluster;
        }
    }
    // Unreachable for a validated configuration (the weights sum to `total_weight` > 0, and
    // the model rejects an empty list); the last entry is the sensible answer regardless.
    weighted
        .clusters
        .last()
        .expect("the model rejects weighted_clusters without clusters")
}
