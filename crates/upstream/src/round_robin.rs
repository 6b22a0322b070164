//! `RoundRobin`: ROUND_ROBIN over one scope. Equal weights: a cursor over the hosts (O(1)).
//! Unequal weights: EDF, which interleaves hosts smoothly in proportion to their weights
//! (O(log hosts)). Either way an ineligible host is passed over and keeps its turn in the
//! schedule, so the eligible hosts keep their exact proportions among themselves. Each worker
//! starts at a random point so workers do not send in lockstep.

use std::cell::{Cell, RefCell};
use std::ops::Range;

use crate::edf::{Edf, period};
use crate::random::{DRAWS, scan_weighted};
use crate::rng::FastRng;
use outrider_tables::lb_tables::HostTable;

#[derive(Debug)]
pub(crate) enum RoundRobin {
    /// Offset of the next host within the scope.
    Cursor(Cell<usize>),
    /// Entries are host indices.
    Weighted(RefCell<Edf>),
}

impl RoundRobin {
    pub(crate) fn new(table: &HostTable, range: Range<usize>, rng: &FastRng) -> Self {
        if table.equal_weights(range.clone()) {
            let start = if range.is_empty() {
                0
            } else {
                rng.below(range.len())
            };
            return Self::Cursor(Cell::new(start));
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
        let len = range.len();
        match self {
            Self::Cursor(cursor) => {
                // Walking the whole scope at worst also serves as the exhaustive fallback.
                for _ in 0..len {
                    let offset = cursor.get();
                    cursor.set(if offset + 1 >= len { 0 } else { offset + 1 });
                    let index = range.start + offset.min(len - 1);
                    if accept(index) {
                        return Some(index);
                    }
                }
                None
            }
            Self::Weighted(edf) => {
                let mut edf = edf.borrow_mut();
                let weight = |i: u32| table.weights.get(i as usize).copied().unwrap_or(1);
                for _ in 0..len.min(DRAWS) {
                    let index = edf.next(|i| period(weight(i), 1))? as usize;
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
