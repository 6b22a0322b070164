//! Resolution of STRICT_DNS and LOGICAL_DNS clusters: one refresh loop per cluster resolves the
//! host names of its `load_assignment` and publishes the result to the tables
//! (`Change::SetResolvedEndpoints`) whenever it changes.
//!
//! As in Envoy: the first resolution happens as soon as the cluster appears; then every
//! `dns_refresh_rate` plus a random share of `dns_jitter`, or after a failure every
//! `dns_failure_refresh_rate` back-off step; `dns_lookup_family` picks the addresses; a failed
//! lookup keeps the host name's last addresses. STRICT_DNS makes every address an endpoint,
//! LOGICAL_DNS only the first.
//!
//! Not as in Envoy: `respect_dns_ttl` is not honoured (the system resolver reports no TTL, so
//! refreshes always follow `dns_refresh_rate`), and a name that stops existing keeps its last
//! addresses (the system resolver's "no such name" cannot be told from other failures).

mod expand;
mod lookup;
mod refresh;
mod resolver;
mod schedule;

pub use lookup::{Lookup, SystemLookup};
pub use resolver::run;
