//! `Ring`: RING_HASH (Ketama-style consistent hashing) over one priority level, built as Envoy
//! builds it: host weights normalised to sum 1 (folding in locality weights under
//! locality-weighted balancing), the ring scaled so the lightest host gets
//! `ceil(min_weight · minimum_ring_size)` entries (capped at `maximum_ring_size` in total), each
//! entry hashing `"<address>_<n>"`.
//!
//! The ring holds every host of the level, healthy or not. A pick looks up the first entry at or
//! after the request hash and walks on to the first eligible host. Envoy rebuilds its ring on
//! each health change instead; walking gives the same host for every key (removing a host's
//! entries from a sorted ring sends its keys to the next entry), without rebuilding, so an
//! ejection takes effect at once. The walk is short while most hosts are eligible (panic mode
//! sees to that) and bounded by the ring size.

use std::fmt::Write as _;

use outrider_model::RingHashFunction;

use super::first_accepted;
use super::hash::{host_key, ring_hash};
use super::host_table::HostTable;

#[derive(Debug, Default)]
pub struct Ring {
    /// Sorted.
    hashes: Box<[u64]>,
    /// `hosts[i]` is the host index of `hashes[i]`.
    hosts: Box<[u32]>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct RingConfig {
    pub minimum_ring_size: u64,
    pub maximum_ring_size: u64,
    pub hash_function: RingHashFunction,
}

/// The level's hosts with their share of traffic (summing to 1; hosts with no share left out).
/// Under locality weighting a host gets `locality_share · its share within the locality`.
pub(crate) fn normalized_weights(
    table: &HostTable,
    level: usize,
    locality_weighted: bool,
) -> Vec<(usize, f64)> {
    let Some(level) = table.levels.get(level) else {
        return Vec::new();
    };
    let weight = |i: usize| f64::from(table.weights.get(i).copied().unwrap_or(1));
    let localities = table
        .localities
        .get(level.localities.clone())
        .unwrap_or_default();
    let locality_total: f64 = localities.iter().map(|l| f64::from(l.weight)).sum();
    if locality_weighted && locality_total > 0.0 {
        let mut out = Vec::new();
        for locality in localities {
            let host_total: f64 = locality.hosts.clone().map(weight).sum();
            if locality.weight == 0 || host_total <= 0.0 {
                continue;
            }
            let share = f64::from(locality.weight) / locality_total;
            out.extend(
                locality
                    .hosts
                    .clone()
                    .map(|i| (i, share * weight(i) / host_total)),
            );
        }
        return out;
    }
    let total: f64 = level.hosts.clone().map(weight).sum();
    if total <= 0.0 {
        return Vec::new();
    }
    level
        .hosts
        .clone()
        .map(|i| (i, weight(i) / total))
        .collect()
}

impl Ring {
    pub(crate) fn new(table: &HostTable, weights: &[(usize, f64)], config: RingConfig) -> Self {
        let Some(min_weight) = weights
            .iter()
            .map(|(_, w)| *w)
            .filter(|w| *w > 0.0)
            .min_by(f64::total_cmp)
        else {
            return Self::default();
        };
        let scale = ((min_weight * config.minimum_ring_size as f64).ceil() / min_weight)
            .min(config.maximum_ring_size as f64);
        let mut entries: Vec<(u64, u32)> = Vec::with_capacity(scale.ceil() as usize);
        let mut key = String::new();
        // Running totals let fractional entry counts add up across hosts, so the ring size
        // stays `ceil(scale)` and each host gets its share to within one entry.
        let (mut current, mut target) = (0.0f64, 0.0f64);
        for (index, weight) in weights {
            let (Some(host), Ok(host_index)) = (table.hosts.get(*index), u32::try_from(*index))
            else {
                continue;
            };
            target += scale * weight;
            host_key(host, &mut key);
            let base = key.len();
            let mut n = 0u64;
            while current < target {
                key.truncate(base);
                // Writing to a String cannot fail.
                let _ = write!(key, "_{n}");
                entries.push((ring_hash(config.hash_function, key.as_bytes()), host_index));
                n += 1;
                current += 1.0;
            }
        }
        entries.sort_unstable();
        Self {
            hashes: entries.iter().map(|e| e.0).collect(),
            hosts: entries.iter().map(|e| e.1).collect(),
        }
    }

    /// The first eligible host at or after `hash` on the ring.
    pub fn pick(&self, hash: u64, accept: &mut impl FnMut(usize) -> bool) -> Option<usize> {
        first_accepted(
            &self.hosts,
            self.hashes.partition_point(|h| *h < hash),
            accept,
        )
    }
}
