//! What a cluster's load balancers read and never change, built once per published cluster
//! entry on the control thread (`Tables::apply`), as Envoy builds its thread-aware RING_HASH
//! and MAGLEV tables on the main thread: the flat host table, and for the hashing policies the
//! ring or Maglev table of each priority level. Workers keep only cursors, health counts and
//! random state (`outrider_upstream::Balancer`), so the first request after an update does no
//! work proportional to a table's size, and N workers share one table instead of building N.

mod hash;
mod host_table;
mod maglev;
mod ring_hash;

pub use host_table::{HostTable, Level, LocalitySlot};
pub use maglev::MaglevTable;
pub use ring_hash::Ring;

use outrider_model::{Cluster, LbPolicy};

use crate::EndpointSet;
use ring_hash::{RingConfig, normalized_weights};

/// A cluster entry's load-balancing tables.
#[derive(Debug)]
pub struct LbTables {
    pub hosts: HostTable,
    pub hashing: HashTables,
}

/// The consistent-hashing tables of the cluster's priority levels, by policy.
#[derive(Debug)]
pub enum HashTables {
    /// Not a hashing policy.
    None,
    RingHash(Box<[Ring]>),
    Maglev(Box<[MaglevTable]>),
}

/// The first host `accept` takes, walking `hosts` (host indices, by slot) from `start` round to
/// where it began: how RING_HASH and MAGLEV pass over ineligible hosts without a rebuild.
fn first_accepted(
    hosts: &[u32],
    start: usize,
    accept: &mut impl FnMut(usize) -> bool,
) -> Option<usize> {
    let len = hosts.len();
    let mut rejected = None;
    for step in 0..len {
        let index = *hosts.get((start + step) % len)? as usize;
        // Neighbouring slots often belong to the same host: judge it once.
        if rejected == Some(index) {
            continue;
        }
        if accept(index) {
            return Some(index);
        }
        rejected = Some(index);
    }
    None
}

impl LbTables {
    /// O(hosts), plus O(ring or table size) per priority level for RING_HASH and MAGLEV.
    pub fn build(config: &Cluster, endpoints: &EndpointSet) -> Self {
        let hosts = HostTable::new(endpoints);
        let locality_weighted = config.common_lb.locality_weighted;
        let levels = 0..hosts.levels.len();
        let hashing = match config.lb_policy {
            LbPolicy::RingHash {
                minimum_ring_size,
                maximum_ring_size,
                hash_function,
            } => {
                let ring_config = RingConfig {
                    minimum_ring_size,
                    maximum_ring_size,
                    hash_function,
                };
                HashTables::RingHash(
                    levels
                        .map(|l| {
                            let weights = normalized_weights(&hosts, l, locality_weighted);
                            Ring::new(&hosts, &weights, ring_config)
                        })
                        .collect(),
                )
            }
            LbPolicy::Maglev { table_size } => HashTables::Maglev(
                levels
                    .map(|l| {
                        let weights = normalized_weights(&hosts, l, locality_weighted);
                        MaglevTable::new(&hosts, &weights, table_size)
                    })
                    .collect(),
            ),
            LbPolicy::RoundRobin | LbPolicy::LeastRequest { .. } | LbPolicy::Random => {
                HashTables::None
            }
        };
        Self { hosts, hashing }
    }
}
