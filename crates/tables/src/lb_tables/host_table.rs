//! `HostTable`: a balancer's flat copy of an endpoint set — every host once per listing,
//! priority-major then locality — with index ranges per priority level and locality, so policies
//! work on contiguous slices and the hot path follows no nested vectors.

use std::ops::Range;
use std::sync::Arc;

use crate::{EndpointSet, EndpointState};

#[derive(Debug, Clone)]
pub struct Level {
    /// Hosts of this priority.
    pub hosts: Range<usize>,
    /// Its localities, as indices into `HostTable::localities`.
    pub localities: Range<usize>,
}

#[derive(Debug, Clone)]
pub struct LocalitySlot {
    pub hosts: Range<usize>,
    /// The locality's `load_balancing_weight`; 0 when unset (no traffic under locality-weighted
    /// balancing, as in Envoy).
    pub weight: u32,
}

#[derive(Debug)]
pub struct HostTable {
    pub hosts: Box<[Arc<EndpointState>]>,
    /// `load_balancing_weight` of each host when the table was built (an EDS weight change
    /// comes with a new endpoint set, hence a new balancer).
    pub weights: Box<[u32]>,
    pub levels: Box<[Level]>,
    pub localities: Box<[LocalitySlot]>,
}

impl HostTable {
    pub(crate) fn new(set: &EndpointSet) -> Self {
        let mut hosts = Vec::with_capacity(set.len());
        let mut levels = Vec::with_capacity(set.priorities.len());
        let mut localities = Vec::new();
        for priority in &set.priorities {
            let (first_host, first_locality) = (hosts.len(), localities.len());
            for locality in &priority.localities {
                let start = hosts.len();
                hosts.extend(locality.endpoints.iter().cloned());
                localities.push(LocalitySlot {
                    hosts: start..hosts.len(),
                    weight: locality.weight.unwrap_or(0),
                });
            }
            levels.push(Level {
                hosts: first_host..hosts.len(),
                localities: first_locality..localities.len(),
            });
        }
        let weights = hosts.iter().map(|h| h.weight().max(1)).collect();
        Self {
            hosts: hosts.into(),
            weights,
            levels: levels.into(),
            localities: localities.into(),
        }
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Whether every host in `range` has the same weight (policies then skip weighting).
    pub fn equal_weights(&self, range: Range<usize>) -> bool {
        let slice = self.weights.get(range).unwrap_or_default();
        slice.windows(2).all(|w| w.first() == w.last())
    }
}
