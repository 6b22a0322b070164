//! `Edf`: earliest-deadline-first scheduling over weighted entries (what Envoy uses for weighted
//! round robin and weighted least request). Each entry is due every `1 / weight`; a pick takes
//! the earliest deadline and reschedules it one period later, which interleaves entries smoothly
//! and gives each a share proportional to its weight. O(log n) per pick, no allocation.
//!
//! Deadlines are fixed-point integers (`UNIT` = one time unit) so ordering is exact and ties
//! break by entry index, deterministically.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::rng::{FastRng, below_u64};

/// One unit of virtual time. 2^40 keeps periods exact to < 1 ppm for weights up to 2^20 and
/// still ≥ 256 ticks for the largest `u32` weight.
const UNIT: u128 = 1 << 40;
/// Past this, deadlines are shifted back so they never overflow.
const REBASE_AT: u64 = 1 << 62;

#[derive(Debug)]
pub(crate) struct Edf {
    /// (deadline, entry index).
    heap: BinaryHeap<Reverse<(u64, u32)>>,
}

/// The period of an entry of weight `weight / divisor` (`divisor` ≥ 1: the least-request
/// `active + 1`).
pub(crate) fn period(weight: u32, divisor: u64) -> u64 {
    let p = UNIT * u128::from(divisor.max(1)) / u128::from(weight.max(1));
    u64::try_from(p).unwrap_or(REBASE_AT).clamp(1, REBASE_AT)
}

impl Edf {
    /// `entries`: (index, weight). Each starts at a random phase within its first period, so
    /// workers (seeded differently) do not pick in lockstep; long-run shares are unaffected.
    pub(crate) fn new(entries: impl IntoIterator<Item = (u32, u32)>, rng: &FastRng) -> Self {
        let heap = entries
            .into_iter()
            .map(|(index, weight)| {
                let p = period(weight, 1);
                Reverse((below_u64(rng.next_u64(), p), index))
            })
            .collect();
        Self { heap }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Takes the entry with the earliest deadline and reschedules it `period_of(index)` later.
    pub(crate) fn next(&mut self, period_of: impl FnOnce(u32) -> u64) -> Option<u32> {
        let (index, deadline) = {
            let mut top = self.heap.peek_mut()?;
            let Reverse((deadline, index)) = *top;
            let next = deadline.saturating_add(period_of(index));
            *top = Reverse((next, index));
            (index, next)
        };
        if deadline >= REBASE_AT {
            self.rebase();
        }
        Some(index)
    }

    /// Shifts every deadline back by the earliest one: order (and so the schedule) is unchanged.
    fn rebase(&mut self) {
        let Some(Reverse((base, _))) = self.heap.peek().copied() else {
            return;
        };
        let mut entries = std::mem::take(&mut self.heap).into_vec();
        for Reverse((deadline, _)) in &mut entries {
            *deadline -= base;
        }
        // Reuses the vector: no allocation.
        self.heap = BinaryHeap::from(entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_weights_and_interleave() {
        let rng = FastRng::new(1);
        let weights = [1u32, 2, 3];
        let mut edf = Edf::new(
            weights.iter().enumerate().map(|(i, w)| (i as u32, *w)),
            &rng,
        );
        let mut counts = [0usize; 3];
        let (mut previous, mut run) = (usize::MAX, 0);
        for _ in 0..6000 {
            let i = edf
                .next(|i| period(weights[i as usize], 1))
                .expect("entries") as usize;
            counts[i] += 1;
            run = if i == previous { run + 1 } else { 1 };
            previous = i;
            assert!(run <= 2, "smooth: no entry three times in a row");
        }
        assert_eq!(counts, [1000, 2000, 3000]);
    }

    #[test]
    fn rebase_keeps_the_schedule() {
        let rng = FastRng::new(2);
        let mut edf = Edf::new([(0, 1), (1, 1)], &rng);
        // Force deadlines near the rebase point.
        let mut picks = Vec::new();
        for _ in 0..4 {
            picks.push(edf.next(|_| REBASE_AT / 2).expect("entries"));
        }
        assert_eq!(edf.len(), 2);
        assert!(picks.contains(&0) && picks.contains(&1));
    }
}
