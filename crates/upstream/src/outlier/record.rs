//! The data plane's half of outlier detection: what one attempt to a host came to, counted in
//! the host's `OutlierState` (XDS-SPEC §2). Runs on every attempt: atomics only, no locks, no
//! allocation; crossing a consecutive-failure threshold marks the host and wakes the detector.
//!
//! As Envoy: a 5xx bumps the 5xx counter; 502/503/504 also the gateway counter (another 5xx
//! resets the gateway counter); any other status resets both. Without
//! `split_external_local_origin_errors` a timeout counts as 504 and a connect failure or reset as
//! 503. With it, those local-origin errors feed only the local-origin counters (consecutive and
//! success rate), and an established connection counts as a local-origin success.

use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::Relaxed;

use outrider_model::OutlierDetection;
use outrider_tables::{ClusterEntry, EndpointState, OutlierState};

/// Crossed-threshold marks in `OutlierState` (handled in this order, as Envoy posts them).
pub(crate) const CROSSED_GATEWAY: u8 = 1;
pub(crate) const CROSSED_5XX: u8 = 2;
pub(crate) const CROSSED_LOCAL_ORIGIN: u8 = 4;

/// What one attempt to an upstream host came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The host answered with this HTTP status.
    Response(u16),
    /// A TCP proxy connection was established; nothing more will be learnt about it (Envoy's
    /// `LOCAL_ORIGIN_CONNECT_SUCCESS_FINAL`).
    Connected,
    ConnectFailure,
    Timeout,
    /// The connection or stream failed without a response.
    Reset,
}

impl Outcome {
    /// The status outlier detection sees when local-origin errors are not split out.
    pub fn as_status(self) -> u16 {
        match self {
            Self::Response(status) => status,
            Self::Connected => 200,
            Self::ConnectFailure | Self::Reset => 503,
            Self::Timeout => 504,
        }
    }
}

/// Records `outcome` of an attempt to `endpoint` of `cluster`: the host's request stats, and,
/// when the cluster has outlier detection, its outlier counters.
pub fn record(cluster: &ClusterEntry, endpoint: &EndpointState, outcome: Outcome) {
    count_request(endpoint, outcome);
    let Some(config) = &cluster.config.outlier_detection else {
        return;
    };
    let state = &endpoint.outlier;
    let crossed = if config.split_external_local_origin_errors {
        match outcome {
            Outcome::Response(status) => {
                // The connection worked (Envoy reports LOCAL_ORIGIN_CONNECT_SUCCESS when the
                // pool hands it over), then the host answered.
                local_origin_success(state);
                external(state, config, status)
            }
            Outcome::Connected => {
                local_origin_success(state);
                0
            }
            Outcome::ConnectFailure | Outcome::Timeout | Outcome::Reset => {
                local_origin_failure(state, config)
            }
        }
    } else {
        external(state, config, outcome.as_status())
    };
    // Rare: once per crossing, not per failure after it.
    if crossed != 0 && state.mark_crossed(crossed) {
        cluster.state.outlier.wake();
    }
}

/// The host's own request stats (`/clusters` rq_total, rq_success, rq_error, rq_timeout).
fn count_request(endpoint: &EndpointState, outcome: Outcome) {
    endpoint.rq_total.fetch_add(1, Relaxed);
    if is_5xx(outcome.as_status()) {
        endpoint.rq_error.fetch_add(1, Relaxed);
    } else {
        endpoint.rq_success.fetch_add(1, Relaxed);
    }
    if outcome == Outcome::Timeout {
        endpoint.rq_timeout.fetch_add(1, Relaxed);
    }
}

/// Envoy's `putHttpResponseCode`. Returns the consecutive thresholds this status crossed.
fn external(state: &OutlierState, config: &OutlierDetection, status: u16) -> u8 {
    if !is_5xx(status) {
        state.external.add(true);
        reset(&state.consecutive_5xx);
        reset(&state.consecutive_gateway_failure);
        return 0;
    }
    state.external.add(false);
    let mut crossed = 0;
    if matches!(status, 502..=504) {
        if bump(&state.consecutive_gateway_failure) == config.consecutive_gateway_failure {
            crossed |= CROSSED_GATEWAY;
        }
    } else {
        reset(&state.consecutive_gateway_failure);
    }
    if bump(&state.consecutive_5xx) == config.consecutive_5xx {
        crossed |= CROSSED_5XX;
    }
    crossed
}

fn local_origin_success(state: &OutlierState) {
    state.local_origin.add(true);
    reset(&state.consecutive_local_origin_failure);
}

fn local_origin_failure(state: &OutlierState, config: &OutlierDetection) -> u8 {
    state.local_origin.add(false);
    if bump(&state.consecutive_local_origin_failure) == config.consecutive_local_origin_failure {
        CROSSED_LOCAL_ORIGIN
    } else {
        0
    }
}

fn is_5xx(status: u16) -> bool {
    (500..600).contains(&status)
}

/// Adds one; returns the new count. Exactly one caller sees any given value, so exactly one
/// reports the crossing even when workers race.
fn bump(counter: &AtomicU32) -> u32 {
    counter.fetch_add(1, Relaxed).wrapping_add(1)
}

/// Zeroes a counter without writing to it when it already is zero: a success is the common
/// case, and a store would pull the cache line away from the other workers every time.
fn reset(counter: &AtomicU32) {
    if counter.load(Relaxed) != 0 {
        counter.store(0, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(split: bool) -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx: 3,
            consecutive_gateway_failure: 2,
            consecutive_local_origin_failure: 2,
            split_external_local_origin_errors: split,
            ..OutlierDetection::default()
        }
    }

    fn counters(s: &OutlierState) -> (u32, u32, u32) {
        (
            s.consecutive_5xx.load(Relaxed),
            s.consecutive_gateway_failure.load(Relaxed),
            s.consecutive_local_origin_failure.load(Relaxed),
        )
    }

    /// Feeds outcomes as `record` does and returns the crossings of each step.
    fn feed(split: bool, outcomes: &[Outcome]) -> (OutlierState, Vec<u8>) {
        let config = config(split);
        let state = OutlierState::default();
        let crossed = outcomes
            .iter()
            .map(|o| match (split, *o) {
                (true, Outcome::Response(s)) => {
                    local_origin_success(&state);
                    external(&state, &config, s)
                }
                (true, Outcome::Connected) => {
                    local_origin_success(&state);
                    0
                }
                (true, _) => local_origin_failure(&state, &config),
                (false, o) => external(&state, &config, o.as_status()),
            })
            .collect();
        (state, crossed)
    }

    /// (name, split mode, outcomes, counters after (5xx, gateway, local origin), crossings)
    type Case = (&'static str, bool, Vec<Outcome>, (u32, u32, u32), Vec<u8>);

    #[test]
    fn counters_and_crossings() {
        use Outcome::*;
        let cases: Vec<Case> = vec![
            (
                "three 500s cross the 5xx threshold once, the gateway one never",
                false,
                vec![Response(500), Response(500), Response(500), Response(500)],
                (4, 0, 0),
                vec![0, 0, CROSSED_5XX, 0],
            ),
            (
                "503s cross gateway at 2, 5xx at 3",
                false,
                vec![Response(503), Response(503), Response(503)],
                (3, 3, 0),
                vec![0, CROSSED_GATEWAY, CROSSED_5XX],
            ),
            (
                "a 500 resets the gateway counter but not the 5xx one",
                false,
                vec![Response(502), Response(500), Response(502)],
                (3, 1, 0),
                vec![0, 0, CROSSED_5XX],
            ),
            (
                "any non-5xx resets both",
                false,
                vec![Response(503), Response(404), Response(503)],
                (1, 1, 0),
                vec![0, 0, 0],
            ),
            (
                "without split mode, timeouts are 504 and connect failures 503",
                false,
                vec![Timeout, ConnectFailure, Reset],
                (3, 3, 0),
                vec![0, CROSSED_GATEWAY, CROSSED_5XX],
            ),
            (
                "a TCP connection is a success",
                false,
                vec![ConnectFailure, Connected, ConnectFailure],
                (1, 1, 0),
                vec![0, 0, 0],
            ),
            (
                "split mode: local-origin errors do not touch the 5xx counters",
                true,
                vec![Response(503), Timeout, ConnectFailure],
                (1, 1, 2),
                vec![0, 0, CROSSED_LOCAL_ORIGIN],
            ),
            (
                "split mode: a response resets the local-origin counter",
                true,
                vec![Timeout, Response(500), Reset],
                (1, 0, 1),
                vec![0, 0, 0],
            ),
            (
                "statuses of 600 and up are not 5xx",
                false,
                vec![Response(503), Response(600)],
                (0, 0, 0),
                vec![0, 0],
            ),
        ];
        for (name, split, outcomes, want_counters, want_crossed) in cases {
            let (state, crossed) = feed(split, &outcomes);
            assert_eq!(counters(&state), want_counters, "{name}");
            assert_eq!(crossed, want_crossed, "{name}");
        }
    }

    #[test]
    fn interval_counts_per_origin() {
        use Outcome::*;
        let outcomes = [
            Response(200),
            Response(503),
            Timeout,
            ConnectFailure,
            Connected,
        ];
        let (state, _) = feed(false, &outcomes);
        assert_eq!(
            state.external.peek(),
            (5, 2),
            "every attempt, mapped to a status"
        );
        assert_eq!(
            state.local_origin.peek(),
            (0, 0),
            "no local-origin rate without split"
        );
        let (state, _) = feed(true, &outcomes);
        assert_eq!(state.external.peek(), (2, 1), "responses only");
        assert_eq!(
            state.local_origin.peek(),
            (5, 3),
            "connection-level outcomes: 2 responses and a TCP connection succeeded"
        );
    }

    #[test]
    fn a_zero_threshold_never_fires() {
        let config = OutlierDetection {
            consecutive_5xx: 0,
            ..OutlierDetection::default()
        };
        let state = OutlierState::default();
        for _ in 0..10 {
            assert_eq!(external(&state, &config, 500), 0);
        }
    }
}
