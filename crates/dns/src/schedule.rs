//! `RefreshSchedule`: how long a DNS cluster waits between resolution rounds, Envoy's way.

use std::time::Duration;

use outrider_model::DnsSettings;

/// The wait after each round of one cluster's refresh loop.
#[derive(Debug, Clone)]
pub(crate) struct RefreshSchedule {
    refresh_rate: Duration,
    jitter: Duration,
    /// `dns_failure_refresh_rate` (base, max).
    failure_refresh: Option<(Duration, Duration)>,
    /// Failed rounds in a row.
    failures: u32,
}

impl RefreshSchedule {
    pub(crate) fn new(settings: &DnsSettings) -> Self {
        Self {
            refresh_rate: settings.refresh_rate,
            jitter: settings.jitter,
            failure_refresh: settings.failure_refresh,
            failures: 0,
        }
    }

    /// The wait before the next round. After a success: `refresh_rate` plus `random` modulo
    /// `jitter`. After the n-th failure in a row: `base·2ⁿ⁻¹` capped at `max`, or
    /// `refresh_rate` without `dns_failure_refresh_rate` (Envoy's fixed back-off then).
    pub(crate) fn next_delay(&mut self, failed: bool, random: u64) -> Duration {
        if !failed {
            self.failures = 0;
            return self
                .refresh_rate
                .saturating_add(jitter(self.jitter, random));
        }
        self.failures = self.failures.saturating_add(1);
        let Some((base, max)) = self.failure_refresh else {
            return self.refresh_rate;
        };
        let factor = 1u32.checked_shl(self.failures - 1).unwrap_or(u32::MAX);
        base.checked_mul(factor).map_or(max, |d| d.min(max))
    }
}

/// A share of `bound` picked by `random`: in `[0, bound)`.
fn jitter(bound: Duration, random: u64) -> Duration {
    let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
    match nanos {
        0 => Duration::ZERO,
        n => Duration::from_nanos(random % n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outrider_model::DnsLookupFamily;

    fn settings(jitter: Duration, failure_refresh: Option<(Duration, Duration)>) -> DnsSettings {
        DnsSettings {
            refresh_rate: Duration::from_secs(5),
            lookup_family: DnsLookupFamily::Auto,
            jitter,
            failure_refresh,
        }
    }

    #[test]
    fn success_waits_the_refresh_rate_plus_jitter() {
        let mut s = RefreshSchedule::new(&settings(Duration::ZERO, None));
        assert_eq!(s.next_delay(false, 12345), Duration::from_secs(5));
        let mut s = RefreshSchedule::new(&settings(Duration::from_millis(100), None));
        assert_eq!(s.next_delay(false, 0), Duration::from_secs(5));
        assert_eq!(s.next_delay(false, 30_000_000), Duration::from_millis(5030));
        assert!(s.next_delay(false, u64::MAX) < Duration::from_millis(5100));
    }

    #[test]
    fn failures_back_off_exponentially_up_to_max_and_reset_on_success() {
        let (base, max) = (Duration::from_secs(1), Duration::from_secs(10));
        let mut s = RefreshSchedule::new(&settings(Duration::ZERO, Some((base, max))));
        let waits: Vec<u64> = (0..6).map(|_| s.next_delay(true, 0).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        assert_eq!(s.next_delay(false, 0), Duration::from_secs(5));
        assert_eq!(s.next_delay(true, 0), base);
        // Many failures in a row never overflow.
        for _ in 0..100 {
            assert!(s.next_delay(true, 0) <= max);
        }
    }

    #[test]
    fn failures_without_a_failure_rate_wait_the_refresh_rate() {
        let mut s = RefreshSchedule::new(&settings(Duration::from_secs(1), None));
        assert_eq!(s.next_delay(true, 999), Duration::from_secs(5));
        assert_eq!(s.next_delay(true, 999), Duration::from_secs(5));
    }
}
