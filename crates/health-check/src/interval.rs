//! How long to wait before the next check (Envoy's `HealthCheckerImplBase::interval` and
//! `intervalWithJitter`), without I/O: randomness comes in as a function.

use std::time::Duration;

use outrider_model::HealthCheck;

use crate::state_machine::{CheckResult, Transition};

/// The wait before the next check, before jitter.
///
/// Once the cluster has carried traffic: after a failed check `unhealthy_edge_interval` while
/// the host is on its way to unhealthy, else `unhealthy_interval`; after a passed check
/// `healthy_edge_interval` while on its way to healthy, else `interval`. Before any traffic:
/// `no_traffic_healthy_interval` after a pass that is not pending, else `no_traffic_interval`.
pub(crate) fn base_interval(
    config: &HealthCheck,
    result: CheckResult,
    transition: Transition,
    traffic_seen: bool,
) -> Duration {
    let pending = transition == Transition::ChangePending;
    if !traffic_seen {
        return if result == CheckResult::Healthy && !pending {
            config.no_traffic_healthy_interval
        } else {
            config.no_traffic_interval
        };
    }
    match (result, pending) {
        (CheckResult::Unhealthy, true) => config.unhealthy_edge_interval,
        (CheckResult::Unhealthy, false) => config.unhealthy_interval,
        (CheckResult::Healthy, true) => config.healthy_edge_interval,
        (CheckResult::Healthy, false) => config.interval,
    }
}

/// `base` plus Envoy's jitter: a random share of `interval_jitter_percent` of `base`, plus a
/// random share of `interval_jitter`, at millisecond granularity; never below 1 ms.
/// `random` yields uniformly distributed `u64`s.
pub(crate) fn with_jitter(
    base: Duration,
    config: &HealthCheck,
    mut random: impl FnMut() -> u64,
) -> Duration {
    let base_ms = millis(base);
    let mut total = base_ms;
    let percent_range = u64::from(config.interval_jitter_percent).saturating_mul(base_ms) / 100;
    if percent_range > 0 {
        total = total.saturating_add(random() % percent_range);
    }
    let jitter_ms = millis(config.interval_jitter);
    if jitter_ms > 0 {
        total = total.saturating_add(random() % jitter_ms);
    }
    Duration::from_millis(total.max(1))
}

/// The wait before a session's first check: a random share of `initial_jitter` (none if 0).
pub(crate) fn initial_delay(config: &HealthCheck, mut random: impl FnMut() -> u64) -> Duration {
    match millis(config.initial_jitter) {
        0 => Duration::ZERO,
        jitter => Duration::from_millis(random() % jitter),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use outrider_model::{HealthChecker, TcpHealthCheck};

    fn config() -> HealthCheck {
        HealthCheck {
            timeout: Duration::from_secs(1),
            interval: Duration::from_millis(1000),
            initial_jitter: Duration::ZERO,
            interval_jitter: Duration::ZERO,
            interval_jitter_percent: 0,
            unhealthy_threshold: 3,
            healthy_threshold: 2,
            reuse_connection: true,
            no_traffic_interval: Duration::from_millis(60_000),
            no_traffic_healthy_interval: Duration::from_millis(70_000),
            unhealthy_interval: Duration::from_millis(2000),
            unhealthy_edge_interval: Duration::from_millis(3000),
            healthy_edge_interval: Duration::from_millis(4000),
            checker: HealthChecker::Tcp(TcpHealthCheck {
                send: Vec::new(),
                receive: Vec::new(),
            }),
        }
    }

    #[test]
    fn intervals_follow_health_and_pending_transitions_once_traffic_flows() {
        let c = config();
        let ms = |r, t| base_interval(&c, r, t, true).as_millis();
        use CheckResult::{Healthy, Unhealthy};
        use Transition::{ChangePending, Changed, Unchanged};
        assert_eq!(ms(Healthy, Unchanged), 1000);
        assert_eq!(ms(Healthy, Changed), 1000);
        assert_eq!(ms(Healthy, ChangePending), 4000);
        assert_eq!(ms(Unhealthy, Unchanged), 2000);
        assert_eq!(ms(Unhealthy, Changed), 2000);
        assert_eq!(ms(Unhealthy, ChangePending), 3000);
    }

    #[test]
    fn no_traffic_intervals_apply_until_the_cluster_carries_traffic() {
        let c = config();
        let ms = |r, t| base_interval(&c, r, t, false).as_millis();
        assert_eq!(ms(CheckResult::Healthy, Transition::Unchanged), 70_000);
        assert_eq!(ms(CheckResult::Healthy, Transition::ChangePending), 60_000);
        assert_eq!(ms(CheckResult::Unhealthy, Transition::Changed), 60_000);
    }

    #[test]
    fn jitter_adds_a_share_of_the_percent_and_of_interval_jitter() {
        let mut c = config();
        assert_eq!(
            with_jitter(Duration::from_millis(1000), &c, || 7),
            Duration::from_millis(1000)
        );
        c.interval_jitter_percent = 10;
        c.interval_jitter = Duration::from_millis(50);
        // 10 % of 1000 ms = 100: 7 % 100 + 7 % 50.
        assert_eq!(
            with_jitter(Duration::from_millis(1000), &c, || 7),
            Duration::from_millis(1014)
        );
        // Upper bounds are exclusive.
        assert_eq!(
            with_jitter(Duration::from_millis(1000), &c, || 149),
            Duration::from_millis(1000 + 49 + 49)
        );
        assert_eq!(
            with_jitter(Duration::ZERO, &config(), || 0),
            Duration::from_millis(1)
        );
    }

    #[test]
    fn initial_jitter_delays_only_the_first_check() {
        let mut c = config();
        assert_eq!(initial_delay(&c, || 123), Duration::ZERO);
        c.initial_jitter = Duration::from_millis(100);
        assert_eq!(initial_delay(&c, || 123), Duration::from_millis(23));
    }
}
