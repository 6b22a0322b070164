//! Envoy's retry decisions: which outcomes a policy retries, how many retries a request gets
//! (bounded per cluster by the `max_retries` circuit breaker), and the back-off between them.

use std::sync::Arc;
use std::time::Duration;

use outrider_model::{CircuitBreakers, Priority, RetryOn, RetryPolicy};
use outrider_tables::ClusterState;
use outrider_upstream::outlier::Outcome;
use outrider_upstream::{BreakerGuard, try_retry};

/// The retries of one request.
pub(crate) struct Retries<'p> {
    policy: Option<&'p RetryPolicy>,
    /// Retries allowed: the policy's, or none when the body cannot be sent again.
    max: u32,
    /// Attempts made before the current one.
    done: u32,
    /// The `max_retries` breaker unit of the retry in flight.
    guard: Option<BreakerGuard>,
}

impl<'p> Retries<'p> {
    pub(crate) fn new(policy: Option<&'p RetryPolicy>, body_replayable: bool) -> Self {
        let max = match policy {
            Some(policy) if body_replayable => policy.num_retries,
            _ => 0,
        };
        Retries {
            policy,
            max,
            done: 0,
            guard: None,
        }
    }

    /// The current attempt's number, from 1.
    pub(crate) fn attempt_number(&self) -> u32 {
        self.done + 1
    }

    /// Whether a retry may still follow the current attempt.
    pub(crate) fn more_allowed(&self) -> bool {
        self.done < self.max
    }

    /// Whether the policy retries `outcome` (whether retries are left or not).
    pub(crate) fn wants(&self, outcome: Outcome) -> bool {
        self.policy.is_some_and(|p| should_retry(p, outcome))
    }

    /// Takes a retry from the cluster's `max_retries` budget: the back-off to wait before it,
    /// or `None` when the budget is spent (counted in `upstream_rq_retry_overflow`).
    pub(crate) fn take(
        &mut self,
        state: &Arc<ClusterState>,
        breakers: &CircuitBreakers,
        priority: Priority,
    ) -> Option<Duration> {
        let guard = try_retry(state, breakers, priority)?;
        self.guard = Some(guard);
        self.done += 1;
        Some(
            self.policy
                .map_or(Duration::ZERO, |p| backoff(p, self.done)),
        )
    }

    /// Gives back the budget of the retry in flight: the request is over.
    pub(crate) fn finish(&mut self) {
        self.guard = None;
    }
}

/// Envoy's retry conditions.
pub(crate) fn should_retry(policy: &RetryPolicy, outcome: Outcome) -> bool {
    let on = policy.retry_on;
    match outcome {
        // Envoy counts any reset, a failed connect included, as a 5xx and a gateway error
        // (`RetryStateImpl::wouldRetryFromReset`).
        Outcome::ConnectFailure => {
            on.contains(RetryOn::CONNECT_FAILURE)
                || on.contains(RetryOn::RESET)
                || on.contains(RetryOn::FIVE_XX)
                || on.contains(RetryOn::GATEWAY_ERROR)
        }
        Outcome::Reset => {
            on.contains(RetryOn::RESET)
                || on.contains(RetryOn::FIVE_XX)
                || on.contains(RetryOn::GATEWAY_ERROR)
        }
        Outcome::Timeout => on.contains(RetryOn::FIVE_XX) || on.contains(RetryOn::GATEWAY_ERROR),
        // A TCP proxy's outcome; an HTTP attempt never ends so.
        Outcome::Connected => false,
        Outcome::Response(status) => {
            (on.contains(RetryOn::FIVE_XX) && status >= 500)
                || (on.contains(RetryOn::GATEWAY_ERROR) && matches!(status, 502..=504))
                || (on.contains(RetryOn::RETRIABLE_4XX) && status == 409)
                || (on.contains(RetryOn::RETRIABLE_STATUS_CODES)
                    && policy.retriable_status_codes.contains(&status))
        }
    }
}

/// Envoy's jittered exponential back-off: a random wait in [0, base·2^n), capped at max.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
    let ceiling = policy
        .back_off_base
        .saturating_mul(factor)
        .min(policy.back_off_max);
    let millis = u64::try_from(ceiling.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(rand::random::<u64>() % millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(retry_on: RetryOn, codes: &[u16]) -> RetryPolicy {
        RetryPolicy {
            retry_on,
            retriable_status_codes: codes.to_vec(),
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn outcomes_each_condition_retries() {
        use Outcome::*;
        let cases: &[(RetryOn, Outcome, bool)] = &[
            (RetryOn::CONNECT_FAILURE, ConnectFailure, true),
            (RetryOn::CONNECT_FAILURE, Reset, false),
            (RetryOn::RESET, ConnectFailure, true),
            (RetryOn::RESET, Timeout, false),
            (RetryOn::FIVE_XX, Timeout, true),
            (RetryOn::FIVE_XX, Response(503), true),
            (RetryOn::FIVE_XX, Response(404), false),
            (RetryOn::GATEWAY_ERROR, Response(500), false),
            (RetryOn::GATEWAY_ERROR, Response(504), true),
            (RetryOn::RETRIABLE_4XX, Response(409), true),
            (RetryOn::RETRIABLE_4XX, Response(429), false),
            (RetryOn::RETRIABLE_STATUS_CODES, Response(418), true),
            (RetryOn::RETRIABLE_STATUS_CODES, Response(500), false),
        ];
        for (on, outcome, retried) in cases {
            assert_eq!(
                should_retry(&policy(*on, &[418]), *outcome),
                *retried,
                "{on:?} {outcome:?}"
            );
        }
    }

    #[test]
    fn a_streamed_body_gets_no_retries() {
        let policy = policy(RetryOn::FIVE_XX, &[]);
        assert!(Retries::new(Some(&policy), true).more_allowed());
        assert!(!Retries::new(Some(&policy), false).more_allowed());
        assert!(!Retries::new(None, true).more_allowed());
    }

    #[test]
    fn backoff_stays_under_the_cap() {
        let policy = RetryPolicy {
            back_off_base: Duration::from_millis(10),
            back_off_max: Duration::from_millis(30),
            ..RetryPolicy::default()
        };
        for attempt in 1..40 {
            assert!(backoff(&policy, attempt) < Duration::from_millis(30));
        }
    }
}
