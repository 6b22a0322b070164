//! Priority load and panic mode, as Envoy computes them (`LoadBalancerBase`): how much of the
//! traffic (in percent) each priority level gets for its healthy and for its degraded hosts, and
//! which levels are in panic.
//!
//! - A level's availability is `min(100, overprovisioning_factor · healthy / total)` (percent,
//!   integer division), the same for degraded hosts. The sum over levels, capped at 100, is the
//!   normalized total availability (NTA).
//! - Load goes to levels in order: each takes `min(left, availability · 100 / NTA)` for healthy
//!   hosts, then what is left is spread the same way over degraded hosts; rounding leftovers go
//!   to the first level with healthy (else degraded) hosts.
//! - Panic: never while NTA is 100. Otherwise a level is in panic when its healthy + degraded
//!   share of hosts is below `healthy_panic_threshold`; a level in panic balances over all its
//!   hosts. When every level is in panic, load follows host counts instead of availability.
//! - Threshold 0 disables panic; with nothing available then, P0 gets the load and the pick
//!   finds no host (503 `UH`).

use std::num::NonZeroU32;

use crate::health::Source;

/// One level's health, as counted by the balancer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LevelHealth {
    /// Hosts that are not excluded.
    pub hosts: u64,
    pub healthy_hosts: u64,
    pub degraded_hosts: u64,
    /// The basis of availability: host counts, or the sums of host weights under
    /// `weighted_priority_health`.
    pub total_basis: u64,
    pub healthy_basis: u64,
    pub degraded_basis: u64,
}

/// Per-level load (percent) for healthy and degraded hosts, and panic flags. Reused across
/// recomputations so refreshing does not allocate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PriorityLoads {
    pub healthy: Vec<u32>,
    pub degraded: Vec<u32>,
    pub panic: Vec<bool>,
}

impl PriorityLoads {
    /// Recomputes for `levels` (index = priority). `factor`: overprovisioning factor (percent);
    /// `panic_threshold`: percent, 0 disables panic.
    pub(crate) fn recompute(&mut self, levels: &[LevelHealth], factor: u32, panic_threshold: f64) {
        let n = levels.len();
        for v in [&mut self.healthy, &mut self.degraded] {
            v.clear();
            v.resize(n, 0);
        }
        self.panic.clear();
        self.panic.resize(n, false);
        if n == 0 {
            return;
        }
        let availability = |part: u64, total: u64| -> u32 {
            if total == 0 {
                return 0;
            }
            let percent = u128::from(factor) * u128::from(part) / u128::from(total);
            // Capped at 100, so the conversion cannot fail.
            u32::try_from(percent.min(100)).unwrap_or(100)
        };
        let health = |l: &LevelHealth| availability(l.healthy_basis, l.total_basis);
        let degraded = |l: &LevelHealth| availability(l.degraded_basis, l.total_basis);
        let nta = levels
            .iter()
            .map(|l| health(l) + degraded(l))
            .sum::<u32>()
            .min(100);

        if let Some(nta) = NonZeroU32::new(nta) {
            let mut left = 100;
            let first_healthy = distribute(&mut self.healthy, levels, health, nta, &mut left);
            let first_degraded = distribute(&mut self.degraded, levels, degraded, nta, &mut left);
            // Rounding leftovers. NTA > 0 means some level has healthy or degraded availability.
            if let Some(h) = first_healthy.and_then(|i| self.healthy.get_mut(i)) {
                *h += left;
            } else if let Some(d) = first_degraded.and_then(|i| self.degraded.get_mut(i)) {
                *d += left;
            }
        }

        if panic_threshold <= 0.0 {
            if nta == 0 {
                // Loads must add up to 100; the pick then finds nobody in P0.
                self.healthy[0] = 100;
            }
            return;
        }
        if nta == 100 {
            return;
        }
        for (i, l) in levels.iter().enumerate() {
            self.panic[i] = in_panic(l, panic_threshold);
        }
        if self.panic.iter().all(|p| *p) {
            self.total_panic(levels);
        }
    }

    /// Every level is in panic: load follows host counts, health aside.
    fn total_panic(&mut self, levels: &[LevelHealth]) {
        self.degraded.iter_mut().for_each(|d| *d = 0);
        let total: u64 = levels.iter().map(|l| l.hosts).sum();
        if total == 0 {
            // No hosts at all; the pick finds nobody.
            self.healthy.iter_mut().for_each(|h| *h = 0);
            if let Some(h) = self.healthy.first_mut() {
                *h = 100;
            }
            return;
        }
        let mut left = 100;
        let mut first_non_empty = None;
        for (i, l) in levels.iter().enumerate() {
            if first_non_empty.is_none() && l.hosts > 0 {
                first_non_empty = Some(i);
            }
            // ≤ 100 because hosts ≤ total.
            let share = u32::try_from(100 * l.hosts / total).unwrap_or(100);
            self.healthy[i] = share;
            left -= share.min(left);
        }
        if let Some(i) = first_non_empty {
            self.healthy[i] += left;
        }
    }

    /// The level and host source for `r` (any uniform `u64`, or the request's hash so a key
    /// keeps its level). `None` only when there are no levels.
    pub(crate) fn choose(&self, r: u64) -> Option<(usize, Source)> {
        let point = u32::try_from(r % 100).unwrap_or(0) + 1;
        let mut sum = 0;
        for (i, load) in self.healthy.iter().enumerate() {
            sum += load;
            if point <= sum {
                return Some((i, Source::Healthy));
            }
        }
        for (i, load) in self.degraded.iter().enumerate() {
            sum += load;
            if point <= sum {
                return Some((i, Source::Degraded));
            }
        }
        // Loads add up to 100 whenever there is a level.
        (!self.healthy.is_empty()).then_some((0, Source::Healthy))
    }
}

/// Gives each level `min(left, availability · 100 / NTA)` in order, taking it from `left`.
/// Returns the first level with any availability.
fn distribute(
    out: &mut [u32],
    levels: &[LevelHealth],
    availability: impl Fn(&LevelHealth) -> u32,
    nta: NonZeroU32,
    left: &mut u32,
) -> Option<usize> {
    let mut first = None;
    for (i, (slot, level)) in out.iter_mut().zip(levels).enumerate() {
        let a = availability(level);
        if first.is_none() && a > 0 {
            first = Some(i);
        }
        let share = (a * 100 / nta).min(*left);
        *slot = share;
        *left -= share;
    }
    first
}

/// Envoy's `isHostSetInPanic`: healthy + degraded share of the (non-excluded) hosts is below the
/// threshold. An empty level counts as 0 %.
fn in_panic(level: &LevelHealth, threshold: f64) -> bool {
    if level.hosts == 0 {
        return true;
    }
    let available =
        100.0 * (level.healthy_hosts + level.degraded_hosts) as f64 / level.hosts as f64;
    available < threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A level of `hosts` hosts, `healthy` of them healthy and `degraded` degraded, by count.
    fn level(hosts: u64, healthy: u64, degraded: u64) -> LevelHealth {
        LevelHealth {
            hosts,
            healthy_hosts: healthy,
            degraded_hosts: degraded,
            total_basis: hosts,
            healthy_basis: healthy,
            degraded_basis: degraded,
        }
    }

    struct Case {
        name: &'static str,
        levels: Vec<LevelHealth>,
        factor: u32,
        threshold: f64,
        healthy: Vec<u32>,
        degraded: Vec<u32>,
        panic: Vec<bool>,
    }

    #[test]
    fn loads_and_panic_match_envoy() {
        let case = |name, levels: Vec<LevelHealth>, threshold, healthy: Vec<u32>, panic| Case {
            name,
            degraded: vec![0; levels.len()],
            levels,
            factor: 140,
            threshold,
            healthy,
            panic,
        };
        let cases = [
            // Envoy's priority-level examples (default factor 1.4).
            case(
                "all healthy",
                vec![level(100, 100, 0), level(100, 100, 0)],
                50.0,
                vec![100, 0],
                vec![false, false],
            ),
            case(
                "72% is still 100",
                vec![level(100, 72, 0), level(100, 100, 0)],
                50.0,
                vec![100, 0],
                vec![false, false],
            ),
            case(
                "71% spills 1",
                vec![level(100, 71, 0), level(100, 100, 0)],
                50.0,
                vec![99, 1],
                vec![false, false],
            ),
            case(
                "50% / 60%",
                vec![level(100, 50, 0), level(100, 60, 0)],
                50.0,
                vec![70, 30],
                vec![false, false],
            ),
            case(
                "25% / 100%",
                vec![level(100, 25, 0), level(100, 100, 0)],
                50.0,
                vec![35, 65],
                vec![false, false],
            ),
            case(
                "0% / 100%",
                vec![level(100, 0, 0), level(100, 100, 0)],
                50.0,
                vec![0, 100],
                vec![false, false],
            ),
            // Panic examples: NTA < 100.
            case(
                "25% / 25%: total panic by host count",
                vec![level(100, 25, 0), level(100, 25, 0)],
                50.0,
                vec![50, 50],
                vec![true, true],
            ),
            case(
                "5% / 65%: only P0 panics",
                vec![level(100, 5, 0), level(100, 65, 0)],
                50.0,
                vec![8, 92],
                vec![true, false],
            ),
            case(
                "total panic weighs host counts",
                vec![level(3, 0, 0), level(1, 0, 0)],
                50.0,
                vec![75, 25],
                vec![true, true],
            ),
            // Single level around the threshold.
            case(
                "at the threshold: no panic",
                vec![level(2, 1, 0)],
                50.0,
                vec![100],
                vec![false],
            ),
            case(
                "below the threshold: panic",
                vec![level(3, 1, 0)],
                50.0,
                vec![100],
                vec![true],
            ),
            case(
                "threshold 0 disables panic",
                vec![level(10, 1, 0)],
                0.0,
                vec![100],
                vec![false],
            ),
            case(
                "threshold 0, nothing healthy",
                vec![level(3, 0, 0)],
                0.0,
                vec![100],
                vec![false],
            ),
            case(
                "no hosts at all",
                vec![level(0, 0, 0)],
                50.0,
                vec![100],
                vec![true],
            ),
            case(
                "empty P0 spills to P1",
                vec![level(0, 0, 0), level(2, 2, 0)],
                50.0,
                vec![0, 100],
                vec![false, false],
            ),
            case(
                "NTA 100 never panics",
                vec![level(10, 1, 0), level(10, 10, 0)],
                50.0,
                vec![14, 86],
                vec![false, false],
            ),
        ];
        for c in cases.into_iter().chain([
            // Envoy's degraded example: health 10/20/10 %, degraded 20/10/0 % (factor 1.0) →
            // healthy 16/28/14, degraded 28/14/0; panic disabled to see the raw split.
            Case {
                name: "degraded share",
                levels: vec![level(100, 10, 20), level(100, 20, 10), level(100, 10, 0)],
                factor: 100,
                threshold: 0.0,
                healthy: vec![16, 28, 14],
                degraded: vec![28, 14, 0],
                panic: vec![false, false, false],
            },
            Case {
                name: "degraded hosts take what healthy ones cannot",
                levels: vec![level(10, 5, 5)],
                factor: 140,
                threshold: 50.0,
                healthy: vec![70],
                degraded: vec![30],
                panic: vec![false],
            },
        ]) {
            let mut loads = PriorityLoads::default();
            loads.recompute(&c.levels, c.factor, c.threshold);
            assert_eq!(loads.healthy, c.healthy, "{}: healthy", c.name);
            assert_eq!(loads.degraded, c.degraded, "{}: degraded", c.name);
            assert_eq!(loads.panic, c.panic, "{}: panic", c.name);
            let total: u32 = loads.healthy.iter().chain(&loads.degraded).sum();
            assert_eq!(total, 100, "{}: loads add up", c.name);
        }
    }

    #[test]
    fn weighted_priority_health_uses_weights() {
        // 1 healthy host of weight 9 and 1 unhealthy of weight 1: 90 % by weight → 100 with 1.4.
        let l = LevelHealth {
            hosts: 2,
            healthy_hosts: 1,
            degraded_hosts: 0,
            total_basis: 10,
            healthy_basis: 9,
            degraded_basis: 0,
        };
        let mut loads = PriorityLoads::default();
        loads.recompute(&[l, level(1, 1, 0)], 140, 50.0);
        assert_eq!(loads.healthy, [100, 0]);
    }

    #[test]
    fn choose_follows_cumulative_loads() {
        let loads = PriorityLoads {
            healthy: vec![70, 0],
            degraded: vec![0, 30],
            panic: vec![false, false],
        };
        assert_eq!(loads.choose(0), Some((0, Source::Healthy)));
        assert_eq!(loads.choose(69), Some((0, Source::Healthy)));
        assert_eq!(loads.choose(70), Some((1, Source::Degraded)));
        assert_eq!(loads.choose(199), Some((1, Source::Degraded)));
        assert_eq!(PriorityLoads::default().choose(5), None);
    }
}
