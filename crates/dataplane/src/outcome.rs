//! What one upstream attempt came to, recorded in the endpoint's state for the outlier detector
//! (XDS-SPEC §2: a 5xx bumps the 5xx counter, 502/503/504 also the gateway counter, any other
//! status resets both; without split mode a timeout counts as 504 and a connect failure as 503).

use std::sync::atomic::Ordering::Relaxed;

use outrider_tables::EndpointState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Status(u16),
    ConnectFailure,
    Timeout,
    Reset,
}

impl Outcome {
    /// The status the outlier detector sees when local-origin errors are not split out.
    fn as_status(self) -> u16 {
        match self {
            Outcome::Status(status) => status,
            Outcome::ConnectFailure | Outcome::Reset => 503,
            Outcome::Timeout => 504,
        }
    }
}

pub(crate) fn record(endpoint: &EndpointState, outcome: Outcome) {
    endpoint.rq_total.fetch_add(1, Relaxed);
    endpoint.outlier.interval_requests.fetch_add(1, Relaxed);
    let status = outcome.as_status();
    if status >= 500 {
        endpoint.rq_error.fetch_add(1, Relaxed);
        endpoint.outlier.consecutive_5xx.fetch_add(1, Relaxed);
        if matches!(status, 502..=504) {
            endpoint
                .outlier
                .consecutive_gateway_failure
                .fetch_add(1, Relaxed);
        } else {
            endpoint
                .outlier
                .consecutive_gateway_failure
                .store(0, Relaxed);
        }
    } else {
        endpoint.rq_success.fetch_add(1, Relaxed);
        endpoint.outlier.interval_successes.fetch_add(1, Relaxed);
        endpoint.outlier.consecutive_5xx.store(0, Relaxed);
        endpoint
            .outlier
            .consecutive_gateway_failure
            .store(0, Relaxed);
    }
    match outcome {
        Outcome::ConnectFailure | Outcome::Timeout | Outcome::Reset => {
            endpoint
                .outlier
                .consecutive_local_origin_failure
                .fetch_add(1, Relaxed);
            if outcome == Outcome::Timeout {
                endpoint.rq_timeout.fetch_add(1, Relaxed);
            }
        }
        Outcome::Status(_) => endpoint
            .outlier
            .consecutive_local_origin_failure
            .store(0, Relaxed),
    }
}
