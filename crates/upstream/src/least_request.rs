//! `LeastRequest`: LEAST_REQUEST over one scope, as Envoy does it. Equal weights: power of
//! `choice_count` choices — draw that many eligible hosts at random, take the one with the fewest
//! active requests. Unequal weights: EDF where a host's weight is `weight / (active + 1)`
//! (`active_request_bias` 1.0, the only value the model accepts), recomputed each time the host
//! is rescheduled, so busy hosts come round less often.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::atomic::Ordering;

use crate::edf::{Edf, period};
use crate::random::{DRAWS, scan_weighted};
use crate::rng::FastRng;
use outrider_tables::lb_tables::HostTable;

#[derive(Debug)]
pub(crate) enum LeastRequest {
    Choices(u32),
    Weighted(RefCell<Edf>),
}

fn active(table: &HostTable, index: usize) -> u32 {
    table
        .hosts
        .get(index)
        .map_or(0, |h| h.active_requests.load(Ordering::Relaxed))
}

impl LeastRequest {
    pub(crate) fn new(
        table: &HostTable,
        range: Range<usize>,
        choice_count: u32,
        rng: &FastRng,
    ) -> Self {
        if table.equal_weights(range.clone()) {
            return Self::Choices(choice_count.max(1));
        }
        let entries = range.filter_map(|i| {
            let weight = table.weights.get(i).copied()?;
            Some((u32::try_from(i).ok()?, weight))
        });
        Self::Weighted(RefCell::new(Edf::new(entries, rng)))
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
        match self {
            Self::Choices(choices) => {
                let mut best: Option<(usize, u32)> = None;
                let mut found = 0;
                // Ineligible draws are redrawn; bounded, then scan.
                for _ in 0..(*choices as usize).saturating_mul(DRAWS) {
                    let index = range.start + rng.below(range.len());
                    if !accept(index) {
                        continue;
                    }
                    let load = active(table, index);
                    if best.is_none_or(|(_, b)| load < b) {
                        best = Some((index, load));
                    }
                    found += 1;
                    if found == *choices {
                        break;
                    }
                }
                match best {
                    Some((index, _)) => Some(index),
                    None => scan_weighted(table, range, rng, accept),
                }
            }
            Self::Weighted(edf) => {
                let mut edf = edf.borrow_mut();
                let reschedule = |i: u32| {
                    let weight = table.weights.get(i as usize).copied().unwrap_or(1);
                    period(weight, u64::from(active(table, i as usize)) + 1)
                };
                for _ in 0..range.len().min(DRAWS) {
                    let index = edf.next(reschedule)? as usize;
                    if accept(index) {
                        return Some(index);
                    }
                }
                drop(edf);
                scan_weighted(table, range, rng, accept)
            }
        }
    }
}
