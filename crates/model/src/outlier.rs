//! Outlier detection settings of a cluster, every field resolved to Envoy's default
//! (`cluster.v3.OutlierDetection`, XDS-SPEC §2).

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3 as pb;
use envoy_types::pb::google::protobuf::UInt32Value;

use crate::error::{Result, ValidationError, reject_if_set};
use crate::proto_value::{bool_or, opt_duration, opt_positive_duration, u32_in, u32_or};

const DEFAULT_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);

/// A cluster's outlier detection, with every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierDetection {
    pub consecutive_5xx: u32,
    pub consecutive_gateway_failure: u32,
    pub consecutive_local_origin_failure: u32,
    pub interval: Duration,
    pub base_ejection_time: Duration,
    pub max_ejection_time: Duration,
    pub max_ejection_time_jitter: Duration,
    /// Percent (0..=100).
    pub max_ejection_percent: u32,
    /// Enforcement probabilities, percent (0..=100).
    pub enforcing_consecutive_5xx: u32,
    pub enforcing_consecutive_gateway_failure: u32,
    pub enforcing_consecutive_local_origin_failure: u32,
    pub enforcing_success_rate: u32,
    pub enforcing_local_origin_success_rate: u32,
    pub enforcing_failure_percentage: u32,
    pub enforcing_failure_percentage_local_origin: u32,
    pub success_rate_minimum_hosts: u32,
    pub success_rate_request_volume: u32,
    /// Thousandths: 1900 means a factor of 1.9.
    pub success_rate_stdev_factor: u32,
    /// Percent (0..=100).
    pub failure_percentage_threshold: u32,
    pub failure_percentage_minimum_hosts: u32,
    pub failure_percentage_request_volume: u32,
    pub split_external_local_origin_errors: bool,
    pub successful_active_health_check_uneject_host: bool,
    pub always_eject_one_host: bool,
}

impl Default for OutlierDetection {
    /// What `outlier_detection: {}` means.
    fn default() -> Self {
        Self {
            consecutive_5xx: 5,
            consecutive_gateway_failure: 5,
            consecutive_local_origin_failure: 5,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: DEFAULT_MAX_EJECTION_TIME,
            max_ejection_time_jitter: Duration::ZERO,
            max_ejection_percent: 10,
            enforcing_consecutive_5xx: 100,
            enforcing_consecutive_gateway_failure: 0,
            enforcing_consecutive_local_origin_failure: 100,
            enforcing_success_rate: 100,
            enforcing_local_origin_success_rate: 100,
            enforcing_failure_percentage: 0,
            enforcing_failure_percentage_local_origin: 0,
            success_rate_minimum_hosts: 5,
            success_rate_request_volume: 100,
            success_rate_stdev_factor: 1900,
            failure_percentage_threshold: 85,
            failure_percentage_minimum_hosts: 5,
            failure_percentage_request_volume: 50,
            split_external_local_origin_errors: false,
            successful_active_health_check_uneject_host: true,
            always_eject_one_host: false,
        }
    }
}

impl OutlierDetection {
    pub(crate) fn from_proto(proto: &pb::OutlierDetection) -> Result<Self> {
        let pb::OutlierDetection {
            consecutive_5xx,
            interval,
            base_ejection_time,
            max_ejection_percent,
            enforcing_consecutive_5xx,
            enforcing_success_rate,
            success_rate_minimum_hosts,
            success_rate_request_volume,
            success_rate_stdev_factor,
            consecutive_gateway_failure,
            enforcing_consecutive_gateway_failure,
            split_external_local_origin_errors,
            consecutive_local_origin_failure,
            enforcing_consecutive_local_origin_failure,
            enforcing_local_origin_success_rate,
            failure_percentage_threshold,
            enforcing_failure_percentage,
            enforcing_failure_percentage_local_origin,
            failure_percentage_minimum_hosts,
            failure_percentage_request_volume,
            max_ejection_time,
            max_ejection_time_jitter,
            successful_active_health_check_uneject_host,
            monitors,
            always_eject_one_host,
            detect_degraded_hosts,
        } = proto;
        reject_if_set!(monitors);
        if bool_or(detect_degraded_hosts, false) {
            return Err(ValidationError::not_enforced(
                "detect_degraded_hosts",
                "hosts are not marked degraded from x-envoy-degraded",
            ));
        }
        let d = Self::default();
        let percent =
            |v: &Option<UInt32Value>, field: &str, default: u32| u32_in(v, field, 0..=100, default);
        let base_ejection_time = opt_positive_duration(base_ejection_time, "base_ejection_time")?
            .unwrap_or(d.base_ejection_time);
        let max_ejection_time = match opt_positive_duration(max_ejection_time, "max_ejection_time")?
        {
            Some(max) if max < base_ejection_time => {
                return Err(ValidationError::new(
                    "max_ejection_time",
                    "must not be smaller than base_ejection_time",
                ));
            }
            Some(max) => max,
            // An unset maximum never undercuts the base ejection time.
            None => DEFAULT_MAX_EJECTION_TIME.max(base_ejection_time),
        };
        Ok(Self {
            consecutive_5xx: u32_or(consecutive_5xx, d.consecutive_5xx),
            consecutive_gateway_failure: u32_or(
                consecutive_gateway_failure,
                d.consecutive_gateway_failure,
            ),
            consecutive_local_origin_failure: u32_or(
                consecutive_local_origin_failure,
                d.consecutive_local_origin_failure,
            ),
            interval: opt_positive_duration(interval, "interval")?.unwrap_or(d.interval),
            base_ejection_time,
            max_ejection_time,
            max_ejection_time_jitter: opt_duration(
                max_ejection_time_jitter,
                "max_ejection_time_jitter",
            )?
            .unwrap_or(d.max_ejection_time_jitter),
            max_ejection_percent: percent(
                max_ejection_percent,
                "max_ejection_percent",
                d.max_ejection_percent,
            )?,
            enforcing_consecutive_5xx: percent(
                enforcing_consecutive_5xx,
                "enforcing_consecutive_5xx",
                d.enforcing_consecutive_5xx,
            )?,
            enforcing_consecutive_gateway_failure: percent(
                enforcing_consecutive_gateway_failure,
                "enforcing_consecutive_gateway_failure",
                d.enforcing_consecutive_gateway_failure,
            )?,
            enforcing_consecutive_local_origin_failure: percent(
                enforcing_consecutive_local_origin_failure,
                "enforcing_consecutive_local_origin_failure",
                d.enforcing_consecutive_local_origin_failure,
            )?,
            enforcing_success_rate: percent(
                enforcing_success_rate,
                "enforcing_success_rate",
                d.enforcing_success_rate,
            )?,
            enforcing_local_origin_success_rate: percent(
                enforcing_local_origin_success_rate,
                "enforcing_local_origin_success_rate",
                d.enforcing_local_origin_success_rate,
            )?,
            enforcing_failure_percentage: percent(
                enforcing_failure_percentage,
                "enforcing_failure_percentage",
                d.enforcing_failure_percentage,
            )?,
            enforcing_failure_percentage_local_origin: percent(
                enforcing_failure_percentage_local_origin,
                "enforcing_failure_percentage_local_origin",
                d.enforcing_failure_percentage_local_origin,
            )?,
            success_rate_minimum_hosts: u32_or(
                success_rate_minimum_hosts,
                d.success_rate_minimum_hosts,
            ),
            success_rate_request_volume: u32_or(
                success_rate_request_volume,
                d.success_rate_request_volume,
            ),
            success_rate_stdev_factor: u32_or(
                success_rate_stdev_factor,
                d.success_rate_stdev_factor,
            ),
            failure_percentage_threshold: percent(
                failure_percentage_threshold,
                "failure_percentage_threshold",
                d.failure_percentage_threshold,
            )?,
            failure_percentage_minimum_hosts: u32_or(
                failure_percentage_minimum_hosts,
                d.failure_percentage_minimum_hosts,
            ),
            failure_percentage_request_volume: u32_or(
                failure_percentage_request_volume,
                d.failure_percentage_request_volume,
            ),
            split_external_local_origin_errors: *split_external_local_origin_errors,
            successful_active_health_check_uneject_host: bool_or(
                successful_active_health_check_uneject_host,
                d.successful_active_health_check_uneject_host,
            ),
            always_eject_one_host: bool_or(always_eject_one_host, d.always_eject_one_host),
        })
    }
}
