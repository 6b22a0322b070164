//! Circuit-breaker thresholds of a cluster, per routing priority (`cluster.v3.CircuitBreakers`).

use envoy_types::pb::envoy::config::cluster::v3::{self as pb, circuit_breakers};

use crate::error::{Result, ValidationError, Within, reject_if_set};
use crate::proto_value::u32_or;
use crate::route_action::Priority;

/// Limits for one routing priority. Envoy's defaults: 1024 connections, 1024 pending
/// requests, 1024 requests, 3 concurrent retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub max_connections: u32,
    pub max_pending_requests: u32,
    pub max_requests: u32,
    pub max_retries: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CircuitBreakers {
    pub default: Thresholds,
    pub high: Thresholds,
}

impl CircuitBreakers {
    pub fn for_priority(&self, priority: Priority) -> &Thresholds {
        match priority {
            Priority::Default => &self.default,
            Priority::High => &self.high,
        }
    }

    pub(crate) fn from_proto(proto: &pb::CircuitBreakers) -> Result<Self> {
        let pb::CircuitBreakers {
            thresholds,
            per_host_thresholds,
        } = proto;
        reject_if_set!(per_host_thresholds);
        let mut result = Self::default();
        let mut seen = [false; 2];
        for (i, t) in thresholds.iter().enumerate() {
            let priority =
                Priority::from_proto(t.priority, "priority").within_index("thresholds", i)?;
            let slot = match priority {
                Priority::Default => 0,
                Priority::High => 1,
            };
            let converted = thresholds_from_proto(t).within_index("thresholds", i)?;
            // Envoy uses the first entry for a priority; later duplicates have no effect.
            if let Some(false) = seen.get(slot).copied() {
                if let Some(s) = seen.get_mut(slot) {
                    *s = true;
                }
                match priority {
                    Priority::Default => result.default = converted,
                    Priority::High => result.high = converted,
                }
            }
        }
        Ok(result)
    }
}

fn thresholds_from_proto(proto: &circuit_breakers::Thresholds) -> Result<Thresholds> {
    let circuit_breakers::Thresholds {
        priority: _,
        max_connections,
        max_pending_requests,
        max_requests,
        max_retries,
        retry_budget,
        track_remaining,
        max_connection_pools,
    } = proto;
    reject_if_set!(retry_budget, max_connection_pools);
    if *track_remaining {
        return Err(ValidationError::not_enforced(
            "track_remaining",
            "the circuit breakers' remaining_* gauges are not published",
        ));
    }
    let d = Thresholds::default();
    Ok(Thresholds {
        max_connections: u32_or(max_connections, d.max_connections),
        max_pending_requests: u32_or(max_pending_requests, d.max_pending_requests),
        max_requests: u32_or(max_requests, d.max_requests),
        max_retries: u32_or(max_retries, d.max_retries),
    })
}
