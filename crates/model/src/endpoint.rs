//! `ClusterLoadAssignment`: the endpoints of a cluster, from EDS or a cluster's `load_assignment`.

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3::{
    self as pb, cluster_load_assignment, endpoint, lb_endpoint::HostIdentifier,
};

use crate::address::{EndpointAddress, HostnamePolicy, tcp_address};
use crate::error::{
    Result, ValidationError, Within, convert_each, non_empty, reject_if_set, required,
};
use crate::proto_value::{enum_value, fractional_per_million, opt_positive_duration, u32_in};

/// Envoy's default overprovisioning factor (percent).
pub const DEFAULT_OVERPROVISIONING_FACTOR: u32 = 140;
/// Envoy's highest endpoint priority (PGV `lte: 128`).
const MAX_PRIORITY: u32 = 128;

/// A validated `ClusterLoadAssignment`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterLoadAssignment {
    pub cluster_name: String,
    /// The proto's `endpoints`: one entry per locality and priority. Priorities are contiguous
    /// from 0.
    pub localities: Vec<LocalityLbEndpoints>,
    /// Percent; healthy-host ratios are multiplied by it before priority spill-over (default 140).
    pub overprovisioning_factor: u32,
    /// At most one category, as Envoy.
    pub drop_overloads: Vec<DropOverload>,
    pub weighted_priority_health: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalityLbEndpoints {
    pub locality: Locality,
    pub priority: u32,
    /// `None` when unset: the locality then gets no traffic under locality-weighted balancing.
    pub load_balancing_weight: Option<u32>,
    pub lb_endpoints: Vec<LbEndpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Locality {
    pub region: String,
    pub zone: String,
    pub sub_zone: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbEndpoint {
    pub address: EndpointAddress,
    /// `endpoint.hostname`: used as the Host header with `auto_host_rewrite` and for health checks.
    pub hostname: String,
    pub health_status: HealthStatus,
    /// ≥ 1; 1 when unset.
    pub load_balancing_weight: u32,
    pub health_check: EndpointHealthCheck,
}

/// `endpoint.health_check_config`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointHealthCheck {
    /// Health-check this port instead of the endpoint's.
    pub port: Option<u16>,
    /// Host header for HTTP checks instead of the endpoint's hostname.
    pub hostname: String,
    pub disable_active_health_check: bool,
}

/// The health an endpoint is given by the control plane (`core.v3.HealthStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HealthStatus {
    #[default]
    Unknown,
    Healthy,
    Unhealthy,
    Draining,
    Timeout,
    Degraded,
}

impl HealthStatus {
    /// Envoy routes to UNKNOWN and HEALTHY (and DEGRADED as a last resort); the others are
    /// `/failed_eds_health`.
    pub fn is_eds_unhealthy(self) -> bool {
        matches!(self, Self::Unhealthy | Self::Draining | Self::Timeout)
    }

    pub(crate) fn from_proto(value: i32, field: &str) -> Result<Self> {
        Ok(match enum_value::<core::HealthStatus>(value, field)? {
            core::HealthStatus::Unknown => Self::Unknown,
            core::HealthStatus::Healthy => Self::Healthy,
            core::HealthStatus::Unhealthy => Self::Unhealthy,
            core::HealthStatus::Draining => Self::Draining,
            core::HealthStatus::Timeout => Self::Timeout,
            core::HealthStatus::Degraded => Self::Degraded,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropOverload {
    pub category: String,
    /// Share of requests to drop, in parts per million.
    pub parts_per_million: u32,
}

impl ClusterLoadAssignment {
    /// An EDS `ClusterLoadAssignment`: endpoints must be IP addresses.
    pub fn from_proto(proto: &pb::ClusterLoadAssignment) -> Result<Self> {
        Self::convert(proto, HostnamePolicy::IpOnly)
    }

    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// Every endpoint of every locality and priority.
    pub fn lb_endpoints(&self) -> impl Iterator<Item = &LbEndpoint> {
        self.localities.iter().flat_map(|l| l.lb_endpoints.iter())
    }

    pub(crate) fn convert(
        proto: &pb::ClusterLoadAssignment,
        policy: HostnamePolicy,
    ) -> Result<Self> {
        let pb::ClusterLoadAssignment {
            cluster_name,
            endpoints,
            named_endpoints,
            policy: lb_policy,
        } = proto;
        non_empty(cluster_name, "cluster_name")?;
        reject_if_set!(named_endpoints);
        let localities = convert_each(endpoints, "endpoints", |l| locality_endpoints(l, policy))?;
        check_contiguous_priorities(&localities)?;
        let (overprovisioning_factor, drop_overloads, weighted_priority_health) = match lb_policy {
            None => (DEFAULT_OVERPROVISIONING_FACTOR, Vec::new(), false),
            Some(p) => assignment_policy(p).within("policy")?,
        };
        Ok(Self {
            cluster_name: cluster_name.clone(),
            localities,
            overprovisioning_factor,
            drop_overloads,
            weighted_priority_health,
        })
    }
}

type PolicyParts = (u32, Vec<DropOverload>, bool);

fn assignment_policy(proto: &cluster_load_assignment::Policy) -> Result<PolicyParts> {
    let cluster_load_assignment::Policy {
        drop_overloads,
        overprovisioning_factor,
        endpoint_stale_after,
        weighted_priority_health,
    } = proto;
    if drop_overloads.len() > 1 {
        // Envoy: "Cluster drop_overloads config has N categories. Envoy only support one."
        return Err(ValidationError::new(
            "drop_overloads",
            "at most one drop category is supported (as in Envoy)",
        ));
    }
    let drop_overloads = convert_each(drop_overloads, "drop_overloads", |d| {
        let cluster_load_assignment::policy::DropOverload {
            category,
            drop_percentage,
        } = d;
        non_empty(category, "category")?;
        let parts_per_million = match drop_percentage {
            Some(p) => fractional_per_million(p, "drop_percentage")?,
            None => 0,
        };
        Ok(DropOverload {
            category: category.clone(),
            parts_per_million,
        })
    })?;
    let factor = u32_in(
        overprovisioning_factor,
        "overprovisioning_factor",
        1..=u32::MAX,
        DEFAULT_OVERPROVISIONING_FACTOR,
    )?;
    if opt_positive_duration(endpoint_stale_after, "endpoint_stale_after")?.is_some() {
        return Err(ValidationError::not_enforced(
            "endpoint_stale_after",
            "an assignment never goes stale",
        ));
    }
    Ok((factor, drop_overloads, *weighted_priority_health))
}

fn locality_endpoints(
    proto: &pb::LocalityLbEndpoints,
    policy: HostnamePolicy,
) -> Result<LocalityLbEndpoints> {
    let pb::LocalityLbEndpoints {
        locality,
        // Endpoint metadata serves subset load balancing and filters, neither of which we run.
        metadata: _,
        lb_endpoints,
        load_balancing_weight,
        priority,
        // Not implemented by Envoy either.
        proximity: _,
        lb_config,
    } = proto;
    // `load_balancer_endpoints` is not implemented by Envoy; LEDS is not supported here.
    reject_if_set!(lb_config);
    if *priority > MAX_PRIORITY {
        return Err(ValidationError::new(
            "priority",
            format!("must be at most {MAX_PRIORITY}"),
        ));
    }
    let weight = match load_balancing_weight {
        Some(w) if w.value == 0 => {
            return Err(ValidationError::new(
                "load_balancing_weight",
                "must be at least 1",
            ));
        }
        other => other.as_ref().map(|w| w.value),
    };
    let locality = locality.as_ref().map(|l| {
        let core::Locality {
            region,
            zone,
            sub_zone,
        } = l;
        Locality {
            region: region.clone(),
            zone: zone.clone(),
            sub_zone: sub_zone.clone(),
        }
    });
    Ok(LocalityLbEndpoints {
        locality: locality.unwrap_or_default(),
        priority: *priority,
        load_balancing_weight: weight,
        lb_endpoints: convert_each(lb_endpoints, "lb_endpoints", |e| lb_endpoint(e, policy))?,
    })
}

fn lb_endpoint(proto: &pb::LbEndpoint, policy: HostnamePolicy) -> Result<LbEndpoint> {
    let pb::LbEndpoint {
        health_status,
        // See `locality_endpoints`: metadata has no effect without subset load balancing,
        // bar Envoy's ring-hash key.
        metadata,
        load_balancing_weight,
        host_identifier,
    } = proto;
    // Envoy places the host on a hash ring (or Maglev table) by `envoy.lb` `hash_key` instead
    // of its address; we always hash the address.
    if metadata
        .as_ref()
        .and_then(|m| m.filter_metadata.get("envoy.lb"))
        .is_some_and(|lb| lb.fields.contains_key("hash_key"))
    {
        return Err(ValidationError::not_enforced(
            "metadata.filter_metadata.envoy.lb.hash_key",
            "hosts are hashed by address",
        ));
    }
    let endpoint = match host_identifier {
        Some(HostIdentifier::Endpoint(e)) => e,
        Some(HostIdentifier::EndpointName(_)) => {
            return Err(ValidationError::unsupported("endpoint_name"));
        }
        None => return Err(ValidationError::required("endpoint")),
    };
    let pb::Endpoint {
        address,
        health_check_config,
        hostname,
        additional_addresses,
        // Only names the host in stats and logs.
        observability_name: _,
    } = endpoint;
    if !additional_addresses.is_empty() {
        return Err(ValidationError::unsupported(
            "endpoint.additional_addresses",
        ));
    }
    let address = tcp_address(required(address, "address").within("endpoint")?, policy)
        .within("address")
        .within("endpoint")?;
    let health_check = match health_check_config {
        None => EndpointHealthCheck::default(),
        Some(c) => endpoint_health_check(c)
            .within("health_check_config")
            .within("endpoint")?,
    };
    let load_balancing_weight = match load_balancing_weight {
        None => 1,
        Some(w) if w.value == 0 => {
            return Err(ValidationError::new(
                "load_balancing_weight",
                "must be at least 1",
            ));
        }
        Some(w) => w.value,
    };
    Ok(LbEndpoint {
        address,
        hostname: hostname.clone(),
        health_status: HealthStatus::from_proto(*health_status, "health_status")?,
        load_balancing_weight,
        health_check,
    })
}

fn endpoint_health_check(proto: &endpoint::HealthCheckConfig) -> Result<EndpointHealthCheck> {
    let endpoint::HealthCheckConfig {
        port_value,
        hostname,
        address,
        disable_active_health_check,
    } = proto;
    reject_if_set!(address);
    let port = match *port_value {
        0 => None,
        p => Some(
            u16::try_from(p)
                .map_err(|_| ValidationError::new("port_value", "must be at most 65535"))?,
        ),
    };
    Ok(EndpointHealthCheck {
        port,
        hostname: hostname.clone(),
        disable_active_health_check: *disable_active_health_check,
    })
}

/// Priorities must form 0..n without gaps, so "priority p" always means the p-th set.
fn check_contiguous_priorities(localities: &[LocalityLbEndpoints]) -> Result<()> {
    // MAX_PRIORITY bounds the priorities, so this table is small and indexing is checked.
    let mut present = [false; MAX_PRIORITY as usize + 1];
    for l in localities {
        if let Some(slot) = present.get_mut(l.priority as usize) {
            *slot = true;
        }
    }
    let Some(missing) = present.iter().position(|p| !p) else {
        return Ok(());
    };
    match localities
        .iter()
        .position(|l| l.priority as usize > missing)
    {
        Some(i) => Err(ValidationError::new(
            format!("endpoints[{i}].priority"),
            format!("priorities must be contiguous from 0, but priority {missing} has no locality"),
        )),
        None => Ok(()),
    }
}

impl ClusterLoadAssignment {
    /// No endpoints (a STATIC or DNS cluster without `load_assignment`, or an EDS cluster
    /// before its first update).
    pub fn empty(cluster_name: &str) -> Self {
        Self {
            cluster_name: cluster_name.to_string(),
            localities: Vec::new(),
            overprovisioning_factor: DEFAULT_OVERPROVISIONING_FACTOR,
            drop_overloads: Vec::new(),
            weighted_priority_health: false,
        }
    }
}
