//! Retry policy of a route or virtual host (`route.v3.RetryPolicy`).

use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::{self as route, retry_policy};

use crate::error::{Result, ValidationError, Within, reject_if_set, reject_timeout};
use crate::proto_value::{any_type_name, opt_duration, opt_positive_duration, u32_or};

/// Envoy's default back-off base interval when no `retry_back_off` is configured.
pub const DEFAULT_RETRY_BASE_INTERVAL: Duration = Duration::from_millis(25);
/// The only retry host predicate we implement.
const PREVIOUS_HOSTS_PREDICATE: &str =
    "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate";

/// The set of `retry_on` conditions (Envoy's `x-envoy-retry-on` and `x-envoy-retry-grpc-on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RetryOn(u32);

impl RetryOn {
    pub const FIVE_XX: Self = Self(1 << 0);
    pub const GATEWAY_ERROR: Self = Self(1 << 1);
    pub const CONNECT_FAILURE: Self = Self(1 << 2);
    pub const RETRIABLE_4XX: Self = Self(1 << 3);
    pub const REFUSED_STREAM: Self = Self(1 << 4);
    pub const RETRIABLE_STATUS_CODES: Self = Self(1 << 5);
    pub const RESET: Self = Self(1 << 6);
    pub const RETRIABLE_HEADERS: Self = Self(1 << 7);
    pub const ENVOY_RATELIMITED: Self = Self(1 << 8);
    pub const RESET_BEFORE_REQUEST: Self = Self(1 << 9);
    pub const HTTP3_POST_CONNECT_FAILURE: Self = Self(1 << 10);
    pub const GRPC_CANCELLED: Self = Self(1 << 16);
    pub const GRPC_DEADLINE_EXCEEDED: Self = Self(1 << 17);
    pub const GRPC_RESOURCE_EXHAUSTED: Self = Self(1 << 18);
    pub const GRPC_UNAVAILABLE: Self = Self(1 << 19);
    pub const GRPC_INTERNAL: Self = Self(1 << 20);

    const NAMES: [(&'static str, Self); 16] = [
        ("5xx", Self::FIVE_XX),
        ("gateway-error", Self::GATEWAY_ERROR),
        ("connect-failure", Self::CONNECT_FAILURE),
        ("retriable-4xx", Self::RETRIABLE_4XX),
        ("refused-stream", Self::REFUSED_STREAM),
        ("retriable-status-codes", Self::RETRIABLE_STATUS_CODES),
        ("reset", Self::RESET),
        ("retriable-headers", Self::RETRIABLE_HEADERS),
        ("envoy-ratelimited", Self::ENVOY_RATELIMITED),
        ("reset-before-request", Self::RESET_BEFORE_REQUEST),
        (
            "http3-post-connect-failure",
            Self::HTTP3_POST_CONNECT_FAILURE,
        ),
        ("cancelled", Self::GRPC_CANCELLED),
        ("deadline-exceeded", Self::GRPC_DEADLINE_EXCEEDED),
        ("resource-exhausted", Self::GRPC_RESOURCE_EXHAUSTED),
        ("unavailable", Self::GRPC_UNAVAILABLE),
        ("internal", Self::GRPC_INTERNAL),
    ];

    /// Parses a comma-separated list. Unknown tokens are ignored, exactly as Envoy's
    /// `RetryStateImpl::parseRetryOn` (which accepts the config and drops them).
    pub fn parse(list: &str) -> Self {
        list.split(',')
            .map(str::trim)
            .filter_map(|token| Self::NAMES.iter().find(|(n, _)| *n == token))
            .fold(Self::default(), |acc, (_, bit)| acc | *bit)
    }

    /// The conditions the request path acts on; the others are rejected in configuration
    /// (a request's own `x-envoy-retry-on` may name them, and they then do nothing).
    pub const ENFORCED: Self = Self(
        Self::FIVE_XX.0
            | Self::GATEWAY_ERROR.0
            | Self::CONNECT_FAILURE.0
            | Self::RETRIABLE_4XX.0
            | Self::RETRIABLE_STATUS_CODES.0
            | Self::RESET.0,
    );

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Every condition of `self` is in `set`.
    pub fn within_set(self, set: Self) -> bool {
        self.0 & !set.0 == 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The condition names in this set, in a stable order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(_, bit)| self.contains(*bit))
            .map(|(name, _)| name)
    }
}

impl std::ops::BitOr for RetryOn {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// A validated retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub retry_on: RetryOn,
    /// Default 1.
    pub num_retries: u32,
    /// `None`: each try may use the whole route timeout.
    pub per_try_timeout: Option<Duration>,
    /// Exponential back-off: base (default 25 ms, at least 1 ms) and cap (default 10 × base).
    pub back_off_base: Duration,
    pub back_off_max: Duration,
    /// Extra status codes retried with `retriable-status-codes`.
    pub retriable_status_codes: Vec<u16>,
    /// The `previous_hosts` predicate: a retry goes to a host not tried yet, if there is one
    /// (without it a retry may land on the same host, as in Envoy).
    pub avoid_previous_hosts: bool,
}

/// Envoy's policy when only `x-envoy-retry-on` asks for retries: one retry, 25 ms back-off base.
impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retry_on: RetryOn::default(),
            num_retries: 1,
            per_try_timeout: None,
            back_off_base: DEFAULT_RETRY_BASE_INTERVAL,
            back_off_max: DEFAULT_RETRY_BASE_INTERVAL.saturating_mul(10),
            retriable_status_codes: Vec::new(),
            avoid_previous_hosts: false,
        }
    }
}

impl RetryPolicy {
    pub(crate) fn from_proto(proto: &route::RetryPolicy) -> Result<Self> {
        let route::RetryPolicy {
            retry_on,
            num_retries,
            per_try_timeout,
            per_try_idle_timeout,
            retry_priority,
            retry_host_predicate,
            retry_options_predicates,
            // Listed in IGNORED_FIELDS: tried hosts are skipped outright (README).
            host_selection_retry_max_attempts: _,
            retriable_status_codes,
            retry_back_off,
            rate_limited_retry_back_off,
            retriable_headers,
            retriable_request_headers,
            refresh_cluster_on_retry,
        } = proto;
        reject_if_set!(
            retry_priority,
            retry_options_predicates,
            rate_limited_retry_back_off,
            retriable_headers,
            retriable_request_headers,
            refresh_cluster_on_retry,
        );
        let mut avoid_previous_hosts = false;
        for (i, predicate) in retry_host_predicate.iter().enumerate() {
            let retry_policy::RetryHostPredicate { name, config_type } = predicate;
            let type_name = match config_type {
                Some(retry_policy::retry_host_predicate::ConfigType::TypedConfig(any)) => {
                    any_type_name(any)
                }
                // Envoy looks a predicate without typed_config up by its name.
                None if name == "envoy.retry_host_predicates.previous_hosts" => {
                    PREVIOUS_HOSTS_PREDICATE
                }
                None => "",
            };
            if type_name != PREVIOUS_HOSTS_PREDICATE {
                return Err(ValidationError::new(
                    format!("retry_host_predicate[{i}]"),
                    format!(
                        "unsupported retry host predicate {name:?} (only previous_hosts is supported)"
                    ),
                ));
            }
            avoid_previous_hosts = true;
        }
        let retriable_status_codes = retriable_status_codes
            .iter()
            .enumerate()
            .map(|(i, code)| match u16::try_from(*code) {
                Ok(c) if (100..=599).contains(&c) => Ok(c),
                _ => Err(ValidationError::new(
                    format!("retriable_status_codes[{i}]"),
                    "must be an HTTP status code (100..=599)",
                )),
            })
            .collect::<Result<Vec<_>>>()?;
        let (back_off_base, back_off_max) = match retry_back_off {
            None => (
                DEFAULT_RETRY_BASE_INTERVAL,
                DEFAULT_RETRY_BASE_INTERVAL * 10,
            ),
            Some(b) => back_off(b).within("retry_back_off")?,
        };
        let parsed = RetryOn::parse(retry_on);
        if let Some(name) = parsed
            .names()
            .find(|name| !RetryOn::parse(name).within_set(RetryOn::ENFORCED))
        {
            return Err(ValidationError::not_enforced(
                "retry_on",
                &format!("the condition {name} is not acted on"),
            ));
        }
        reject_timeout(per_try_idle_timeout, "per_try_idle_timeout")?;
        Ok(Self {
            retry_on: parsed,
            num_retries: u32_or(num_retries, 1),
            per_try_timeout: non_zero(opt_duration(per_try_timeout, "per_try_timeout")?),
            back_off_base,
            back_off_max,
            retriable_status_codes,
            avoid_previous_hosts,
        })
    }
}

/// Envoy treats a zero per-try timeout as "not set".
fn non_zero(d: Option<Duration>) -> Option<Duration> {
    d.filter(|d| !d.is_zero())
}

fn back_off(proto: &retry_policy::RetryBackOff) -> Result<(Duration, Duration)> {
    let retry_policy::RetryBackOff {
        base_interval,
        max_interval,
    } = proto;
    let min = Duration::from_millis(1);
    // Envoy rounds sub-millisecond intervals up to 1 ms.
    let base = opt_positive_duration(base_interval, "base_interval")?
        .ok_or_else(|| ValidationError::required("base_interval"))?
        .max(min);
    let max = match opt_positive_duration(max_interval, "max_interval")? {
        None => base.saturating_mul(10),
        Some(max) => {
            let max = max.max(min);
            if max < base {
                return Err(ValidationError::new(
                    "max_interval",
                    "must be greater than or equal to the base_interval",
                ));
            }
            max
        }
    };
    Ok((base, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_on_parses_http_and_grpc_and_ignores_unknown() {
        let r = RetryOn::parse("5xx, connect-failure,bogus,unavailable");
        assert!(r.contains(RetryOn::FIVE_XX));
        assert!(r.contains(RetryOn::CONNECT_FAILURE));
        assert!(r.contains(RetryOn::GRPC_UNAVAILABLE));
        assert!(!r.contains(RetryOn::RESET));
        assert_eq!(
            r.names().collect::<Vec<_>>(),
            ["5xx", "connect-failure", "unavailable"]
        );
    }
}
