//! `LocalityPicker`: locality-weighted balancing (`common_lb_config.locality_weighted_lb_config`)
//! picks a locality first, by its effective weight — `load_balancing_weight` scaled by the share
//! of its hosts that are available (times the overprovisioning factor, capped at 1), as in Envoy —
//! then a host inside it with the cluster's policy.
//!
//! Envoy schedules localities with EDF rebuilt on every health change; here effective weights
//! come from the cached health summary and change under the picker, so it uses smooth weighted
//! round robin (nginx's), which takes new weights at the next pick without rebuilding. O(number of
//! localities in the level) per pick.

use std::cell::Cell;
use std::ops::Range;

use crate::health::Source;
use crate::health_summary::HealthSummary;

#[derive(Debug)]
pub(crate) struct LocalityPicker {
    /// Smooth-WRR running credit per locality, for [healthy, degraded] picks.
    credit: Box<[[Cell<i128>; 2]]>,
}

impl LocalityPicker {
    pub(crate) fn new(localities: usize) -> Self {
        Self {
            credit: (0..localities)
                .map(|_| [Cell::new(0), Cell::new(0)])
                .collect(),
        }
    }

    /// A locality of `localities` (a level's range) for `source`, or `None` when none has
    /// effective weight (then the caller balances over the whole level, as Envoy does).
    pub(crate) fn choose(
        &self,
        localities: Range<usize>,
        source: Source,
        health: &HealthSummary,
    ) -> Option<usize> {
        let slot = match source {
            Source::Healthy => 0,
            Source::Degraded => 1,
            Source::All => return None,
        };
        let mut total: i128 = 0;
        let mut best: Option<(usize, i128)> = None;
        for l in localities {
            let weight = i128::from(health.locality_weight(l, source));
            let Some(credit) = self.credit.get(l).and_then(|c| c.get(slot)) else {
                continue;
            };
            if weight == 0 {
                // A locality that lost its weight must not come back with stale credit.
                credit.set(0);
                continue;
            }
            total += weight;
            let c = credit.get() + weight;
            credit.set(c);
            if best.is_none_or(|(_, b)| c > b) {
                best = Some((l, c));
            }
        }
        let (chosen, credit) = best?;
        if let Some(cell) = self.credit.get(chosen).and_then(|c| c.get(slot)) {
            cell.set(credit - total);
        }
        Some(chosen)
    }
}
