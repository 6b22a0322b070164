//! Load-balancing policy of a cluster (`lb_policy` with its `*_lb_config`) and the parts of
//! `common_lb_config` we honour.

use envoy_types::pb::envoy::config::cluster::v3::LoadBalancingPolicy;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    self, LbConfig, LbPolicy as PbLbPolicy, common_lb_config, ring_hash_lb_config,
};

use crate::error::{Result, ValidationError, Within, reject_if_set};
use crate::proto_value::{enum_value, percent_or, u32_in, u64_or};

const DEFAULT_MIN_RING_SIZE: u64 = 1024;
const MAX_RING_SIZE: u64 = 8_388_608;
const DEFAULT_MAGLEV_TABLE_SIZE: u64 = 65_537;
const MAX_MAGLEV_TABLE_SIZE: u64 = 5_000_011;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbPolicy {
    RoundRobin,
    /// Power of `choice_count` choices (default 2).
    LeastRequest {
        choice_count: u32,
    },
    Random,
    RingHash {
        minimum_ring_size: u64,
        maximum_ring_size: u64,
        hash_function: RingHashFunction,
    },
    /// `table_size` is prime.
    Maglev {
        table_size: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingHashFunction {
    XxHash,
    MurmurHash2,
}

/// The `common_lb_config` settings we honour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommonLbConfig {
    /// Percent (default 50): below this share of healthy hosts, balance over all hosts.
    pub healthy_panic_threshold: f64,
    /// Weigh localities by their `load_balancing_weight`.
    pub locality_weighted: bool,
    /// New hosts get no traffic until their first health check passes.
    pub ignore_new_hosts_until_first_hc: bool,
}

impl Default for CommonLbConfig {
    fn default() -> Self {
        Self {
            healthy_panic_threshold: 50.0,
            locality_weighted: false,
            ignore_new_hosts_until_first_hc: false,
        }
    }
}

pub(crate) fn lb_policy(
    policy: i32,
    config: &Option<LbConfig>,
    load_balancing_policy: &Option<LoadBalancingPolicy>,
) -> Result<LbPolicy> {
    reject_if_set!(load_balancing_policy);
    // Envoy reads only the `*_lb_config` matching `lb_policy`; another one is ignored.
    Ok(match enum_value::<PbLbPolicy>(policy, "lb_policy")? {
        PbLbPolicy::RoundRobin => {
            if let Some(LbConfig::RoundRobinLbConfig(c)) = config {
                let cluster::RoundRobinLbConfig { slow_start_config } = c;
                if slow_start_config.is_some() {
                    return Err(ValidationError::unsupported(
                        "round_robin_lb_config.slow_start_config",
                    ));
                }
            }
            LbPolicy::RoundRobin
        }
        PbLbPolicy::LeastRequest => {
            let choice_count = match config {
                Some(LbConfig::LeastRequestLbConfig(c)) => {
                    least_request(c).within("least_request_lb_config")?
                }
                _ => 2,
            };
            LbPolicy::LeastRequest { choice_count }
        }
        PbLbPolicy::Random => LbPolicy::Random,
        PbLbPolicy::RingHash => match config {
            Some(LbConfig::RingHashLbConfig(c)) => ring_hash(c).within("ring_hash_lb_config")?,
            _ => LbPolicy::RingHash {
                minimum_ring_size: DEFAULT_MIN_RING_SIZE,
                maximum_ring_size: MAX_RING_SIZE,
                hash_function: RingHashFunction::XxHash,
            },
        },
        PbLbPolicy::Maglev => {
            let table_size = match config {
                Some(LbConfig::MaglevLbConfig(cluster::MaglevLbConfig { table_size })) => {
                    let size = u64_or(table_size, DEFAULT_MAGLEV_TABLE_SIZE);
                    if size > MAX_MAGLEV_TABLE_SIZE || !is_prime(size) {
                        return Err(ValidationError::new(
                            "maglev_lb_config.table_size",
                            format!(
                                "must be a prime number no larger than {MAX_MAGLEV_TABLE_SIZE}"
                            ),
                        ));
                    }
                    size
                }
                _ => DEFAULT_MAGLEV_TABLE_SIZE,
            };
            LbPolicy::Maglev { table_size }
        }
        PbLbPolicy::ClusterProvided => {
            return Err(ValidationError::new(
                "lb_policy",
                "CLUSTER_PROVIDED is not supported",
            ));
        }
        PbLbPolicy::LoadBalancingPolicyConfig => {
            return Err(ValidationError::new(
                "lb_policy",
                "LOAD_BALANCING_POLICY_CONFIG is not supported",
            ));
        }
    })
}

fn least_request(proto: &cluster::LeastRequestLbConfig) -> Result<u32> {
    let cluster::LeastRequestLbConfig {
        choice_count,
        active_request_bias,
        slow_start_config,
    } = proto;
    reject_if_set!(active_request_bias, slow_start_config);
    u32_in(choice_count, "choice_count", 2..=u32::MAX, 2)
}

fn ring_hash(proto: &cluster::RingHashLbConfig) -> Result<LbPolicy> {
    let cluster::RingHashLbConfig {
        minimum_ring_size,
        hash_function,
        maximum_ring_size,
    } = proto;
    let min = u64_or(minimum_ring_size, DEFAULT_MIN_RING_SIZE);
    let max = u64_or(maximum_ring_size, MAX_RING_SIZE);
    if min > MAX_RING_SIZE {
        return Err(ValidationError::new(
            "minimum_ring_size",
            format!("must be at most {MAX_RING_SIZE}"),
        ));
    }
    if max > MAX_RING_SIZE {
        return Err(ValidationError::new(
            "maximum_ring_size",
            format!("must be at most {MAX_RING_SIZE}"),
        ));
    }
    if min > max {
        return Err(ValidationError::new(
            "minimum_ring_size",
            format!("ring hash: minimum_ring_size ({min}) > maximum_ring_size ({max})"),
        ));
    }
    let hash_function =
        match enum_value::<ring_hash_lb_config::HashFunction>(*hash_function, "hash_function")? {
            ring_hash_lb_config::HashFunction::XxHash => RingHashFunction::XxHash,
            ring_hash_lb_config::HashFunction::MurmurHash2 => RingHashFunction::MurmurHash2,
        };
    Ok(LbPolicy::RingHash {
        minimum_ring_size: min,
        maximum_ring_size: max,
        hash_function,
    })
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    (2..)
        .take_while(|d| *d <= n / *d)
        .all(|d| !n.is_multiple_of(d))
}

pub(crate) fn common_lb_config(proto: &cluster::CommonLbConfig) -> Result<CommonLbConfig> {
    let cluster::CommonLbConfig {
        healthy_panic_threshold,
        // Batches host-set updates in time; the resulting host set is the same.
        update_merge_window: _,
        ignore_new_hosts_until_first_hc,
        close_connections_on_host_set_change,
        consistent_hashing_lb_config,
        override_host_status,
        locality_config_specifier,
    } = proto;
    reject_if_set!(
        close_connections_on_host_set_change,
        consistent_hashing_lb_config,
        override_host_status
    );
    let locality_weighted = match locality_config_specifier {
        Some(common_lb_config::LocalityConfigSpecifier::LocalityWeightedLbConfig(_)) => true,
        // Zone-aware routing needs the bootstrap's local cluster; without one Envoy does not
        // apply it either.
        Some(common_lb_config::LocalityConfigSpecifier::ZoneAwareLbConfig(_)) | None => false,
    };
    Ok(CommonLbConfig {
        healthy_panic_threshold: percent_or(
            healthy_panic_threshold,
            "healthy_panic_threshold",
            50.0,
        )?,
        locality_weighted,
        ignore_new_hosts_until_first_hc: *ignore_new_hosts_until_first_hc,
    })
}

#[cfg(test)]
mod tests {
    use super::is_prime;

    #[test]
    fn primes() {
        assert!(is_prime(65_537));
        assert!(is_prime(5_000_011));
        assert!(!is_prime(65_536));
        assert!(!is_prime(1));
    }
}
