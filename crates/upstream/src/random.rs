//! Weighted random selection: `RandomPick` (the RANDOM policy, per scope) and `scan_weighted`,
//! the exhaustive fallback every policy uses when its cheap attempts found no eligible host.

use std::ops::Range;

use crate::rng::{FastRng, below_u64};
use outrider_tables::lb_tables::HostTable;

/// How many cheap draws before scanning: with at least half the hosts eligible (panic mode takes
/// over below that), 2^-16 of picks fall through to the O(hosts) scan.
pub(crate) const DRAWS: usize = 16;

#[derive(Debug)]
pub(crate) enum RandomPick {
    Uniform,
    /// Cumulative weights of the scope's hosts: a draw is a binary search.
    Weighted {
        cumulative: Box<[u64]>,
    },
}

impl RandomPick {
    pub(crate) fn new(table: &HostTable, range: Range<usize>) -> Self {
        if table.equal_weights(range.clone()) {
            return Self::Uniform;
        }
        let mut sum = 0u64;
        let cumulative = table
            .weights
            .get(range)
            .unwrap_or_default()
            .iter()
            .map(|w| {
                sum += u64::from(*w);
                sum
            })
            .collect();
        Self::Weighted { cumulative }
    }

    pub(crate) fn pick(
        &self,
        table: &HostTable,
        range: Range<usize>,
        rng: &FastRng,
        accept: &mut impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        if range.is_empty() {
            return None;
        }
        for _ in 0..DRAWS {
            let offset = match self {
                Self::Uniform => rng.below(range.len()),
                Self::Weighted { cumulative } => {
                    let total = cumulative.last().copied().unwrap_or(0);
                    let point = below_u64(rng.next_u64(), total);
                    cumulative.partition_point(|c| *c <= point)
                }
            };
            let index = range.start + offset;
            if index < range.end && accept(index) {
                return Some(index);
            }
        }
        scan_weighted(table, range, rng, accept)
    }
}

/// One pass over `range`: a host among the accepted ones, chosen with probability proportional
/// to its weight (weighted reservoir sampling; no allocation). O(hosts).
pub(crate) fn scan_weighted(
    table: &HostTable,
    range: Range<usize>,
    rng: &FastRng,
    accept: &mut impl FnMut(usize) -> bool,
) -> Option<usize> {
    let mut total = 0u64;
    let mut chosen = None;
    for index in range {
        if !accept(index) {
            continue;
        }
        let weight = u64::from(table.weights.get(index).copied().unwrap_or(1));
        total += weight;
        if below_u64(rng.next_u64(), total) < weight {
            chosen = Some(index);
        }
    }
    chosen
}
