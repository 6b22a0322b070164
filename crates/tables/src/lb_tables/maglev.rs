//! `MaglevTable`: MAGLEV consistent hashing over one priority level (Eisenbud et al., NSDI '16),
//! weighted. Each host walks its own permutation of the table (`offset` and `skip` from two
//! xxHash64 seeds of its address, as Envoy) and claims the next free slot on each of its turns; a
//! host of weight w gets a turn in w/w_max of the rounds, so slots follow weights. Build
//! O(table size · log), lookup O(1).
//!
//! The table holds every host of the level; a pick takes the slot of the request hash and walks
//! on to the first eligible host. Envoy rebuilds the table on each health change, which spreads
//! an ejected host's keys evenly; walking sends them to the next slot's host instead — slots are
//! interleaved pseudo-randomly, so that is close to even — and an ejection takes effect at once
//! without a rebuild. Keys of other hosts never move.

use super::first_accepted;
use super::hash::{host_key, xxhash64};
use super::host_table::HostTable;

#[derive(Debug, Default)]
pub struct MaglevTable {
    /// Host index per slot; `table_size` (prime) slots.
    slots: Box<[u32]>,
}

const EMPTY: u32 = u32::MAX;

struct Permutation {
    index: u32,
    offset: u64,
    skip: u64,
    next: u64,
    weight: f64,
    claimed: u64,
}

impl MaglevTable {
    /// `weights`: the level's hosts and shares (see `ring_hash::normalized_weights`).
    pub(crate) fn new(table: &HostTable, weights: &[(usize, f64)], table_size: u64) -> Self {
        let size = table_size.max(2);
        let max_weight = weights.iter().map(|(_, w)| *w).fold(0.0, f64::max);
        if max_weight <= 0.0 {
            return Self::default();
        }
        let mut key = String::new();
        let mut hosts: Vec<Permutation> = weights
            .iter()
            .filter(|(_, w)| *w > 0.0)
            .filter_map(|(i, w)| {
                let host = table.hosts.get(*i)?;
                host_key(host, &mut key);
                Some(Permutation {
                    index: u32::try_from(*i).ok()?,
                    offset: xxhash64(key.as_bytes(), 0) % size,
                    skip: xxhash64(key.as_bytes(), 1) % (size - 1) + 1,
                    next: 0,
                    weight: *w / max_weight,
                    claimed: 0,
                })
            })
            .collect();
        let Ok(len) = usize::try_from(size) else {
            return Self::default();
        };
        let mut slots = vec![EMPTY; len];
        let mut filled = 0usize;
        let mut round = 0u64;
        while filled < len {
            round += 1;
            for p in &mut hosts {
                // A host's turns so far may not exceed round · relative weight.
                if p.claimed as f64 >= round as f64 * p.weight {
                    continue;
                }
                // The permutation visits every slot (size is prime, skip in 1..size), so a free
                // one is found while any remains.
                loop {
                    let slot = ((p.offset + p.next * p.skip) % size) as usize;
                    p.next += 1;
                    if let Some(s) = slots.get_mut(slot)
                        && *s == EMPTY
                    {
                        *s = p.index;
                        p.claimed += 1;
                        filled += 1;
                        break;
                    }
                }
                if filled == len {
                    break;
                }
            }
        }
        Self {
            slots: slots.into(),
        }
    }

    /// The host of `hash`'s slot, or the next eligible one after it.
    pub fn pick(&self, hash: u64, accept: &mut impl FnMut(usize) -> bool) -> Option<usize> {
        let len = self.slots.len();
        if len == 0 {
            return None;
        }
        first_accepted(&self.slots, (hash % len as u64) as usize, accept)
    }
}
