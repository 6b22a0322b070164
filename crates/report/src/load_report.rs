//! What an LRS report says, computed without I/O: which clusters the server asked for, and per
//! cluster, per (priority, locality) and optionally per endpoint, the requests since the
//! previous report. Counts are deltas of the cumulative per-endpoint atomics of the tables
//! (`EndpointState`), against the values this reporter remembered at the last report.
//!
//! Follows Envoy's `LoadStatsReporter`: a cluster starts being counted when a response first
//! names it (what it did before is not reported); a cluster that stays named keeps counting
//! across responses; locality entries with no request done or in progress are left out;
//! `load_report_interval` is the measured time since the cluster's previous report.
//! One difference: with `send_all_clusters`, a cluster added after the response is counted
//! from its creation, where Envoy drops its first interval.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::{Address, Locality as LocalityProto};
use envoy_types::pb::envoy::config::endpoint::v3::cluster_stats::DroppedRequests;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterStats, UpstreamEndpointStats, UpstreamLocalityStats,
};
use envoy_types::pb::envoy::service::load_stats::v3::LoadStatsResponse;
use envoy_types::pb::google::protobuf::Duration as DurationProto;
use outrider_model::{Discovery, EndpointAddress, Locality};
use outrider_tables::{ClusterEntry, ClusterState, EndpointState, Snapshot};

use crate::convert::socket_address;

/// The shortest reporting interval we honour: a server that sends none (or 0) must not make us
/// report in a busy loop.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// The cumulative counters of one endpoint at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    success: u64,
    error: u64,
    issued: u64,
}

impl Counts {
    fn read(endpoint: &EndpointState) -> Self {
        Self {
            success: endpoint.rq_success.load(Relaxed),
            error: endpoint.rq_error.load(Relaxed),
            // Envoy's `rq_total`; ours is counted when the attempt completes.
            issued: endpoint.rq_total.load(Relaxed),
        }
    }

    /// Counters only grow, but an endpoint is compared against its own earlier values only,
    /// so a wrap or reset yields 0 rather than garbage.
    fn since(self, earlier: Self) -> Self {
        Self {
            success: self.success.saturating_sub(earlier.success),
            error: self.error.saturating_sub(earlier.error),
            issued: self.issued.saturating_sub(earlier.issued),
        }
    }
}

/// The values an endpoint had at the last report. The `Arc` keeps the endpoint's identity: a
/// removed and re-added address is a new `EndpointState` whose counters start at 0.
#[derive(Debug)]
struct Baseline {
    endpoint: Arc<EndpointState>,
    counts: Counts,
}

/// The LRS reporter's state between reports.
#[derive(Debug)]
pub struct LoadReporter {
    send_all_clusters: bool,
    /// The clusters named by the last response (unused with `send_all_clusters`).
    named: Vec<String>,
    endpoint_granularity: bool,
    interval: Duration,
    /// When each tracked cluster's current period began.
    period_start: HashMap<String, Instant>,
    /// When the last report was sent, or the last response arrived.
    last_boundary: Instant,
    /// By endpoint identity (the address of its `EndpointState`).
    baselines: HashMap<usize, Baseline>,
    /// Requests dropped by each tracked cluster's `drop_overloads`, at the last report, by the
    /// identity of its `ClusterState` (a removed and re-added cluster starts from zero).
    dropped: HashMap<usize, (Arc<ClusterState>, u64)>,
    /// A response has arrived: reports are due.
    active: bool,
}

impl LoadReporter {
    pub fn new(now: Instant) -> Self {
        Self {
            send_all_clusters: false,
            named: Vec::new(),
            endpoint_granularity: false,
            interval: MIN_INTERVAL,
            period_start: HashMap::new(),
            last_boundary: now,
            baselines: HashMap::new(),
            dropped: HashMap::new(),
            active: false,
        }
    }

    /// Whether a response has set what to report.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The interval the server asked for (at least [`MIN_INTERVAL`]).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// A new `LoadStatsResponse` replaces the cluster list, interval and granularity.
    pub fn on_response(&mut self, response: &LoadStatsResponse, snapshot: &Snapshot, now: Instant) {
        let LoadStatsResponse {
            clusters,
            send_all_clusters,
            load_reporting_interval,
            report_endpoint_granularity,
        } = response;
        self.send_all_clusters = *send_all_clusters;
        self.named = clusters.clone();
        self.endpoint_granularity = *report_endpoint_granularity;
        self.interval = load_reporting_interval
            .as_ref()
            .map(duration_from_proto)
            .unwrap_or_default()
            .max(MIN_INTERVAL);
        let names = self.cluster_names(snapshot);
        let mut period_start = HashMap::with_capacity(names.len());
        for name in names {
            let start = match self.period_start.get(&name) {
                Some(start) => *start,
                None => {
                    // Newly tracked: what happened before now is not this server's business.
                    if let Some(entry) = snapshot.cluster(&name) {
                        self.latch(entry);
                    }
                    now
                }
            };
            period_start.insert(name, start);
        }
        self.period_start = period_start;
        self.prune(snapshot);
        self.last_boundary = now;
        self.active = true;
    }

    /// The report due now: one `ClusterStats` per tracked cluster that exists, by name.
    pub fn report(&mut self, snapshot: &Snapshot, now: Instant) -> Vec<ClusterStats> {
        if self.send_all_clusters {
            // Clusters come and go with CDS: track what exists now. One that is new was added
            // after the last boundary (it would have been tracked then), so all its counts
            // belong to this period.
            let names: HashSet<String> = self.cluster_names(snapshot).into_iter().collect();
            self.period_start.retain(|name, _| names.contains(name));
            for name in names {
                self.period_start.entry(name).or_insert(self.last_boundary);
            }
        }
        let mut names: Vec<&String> = self.period_start.keys().collect();
        names.sort();
        let names: Vec<String> = names.into_iter().cloned().collect();
        let mut reports = Vec::with_capacity(names.len());
        for name in names {
            // A named cluster that does not exist (yet) keeps its start, as in Envoy.
            let Some(entry) = snapshot.cluster(&name) else {
                continue;
            };
            let start = self.period_start.insert(name.clone(), now).unwrap_or(now);
            reports.push(self.cluster_stats(&name, entry, now.saturating_duration_since(start)));
        }
        self.prune(snapshot);
        self.last_boundary = now;
        reports
    }

    fn cluster_names(&self, snapshot: &Snapshot) -> Vec<String> {
        if self.send_all_clusters {
            snapshot
                .clusters()
                .map(|(name, _)| name.to_string())
                .collect()
        } else {
            self.named.clone()
        }
    }

    /// Remembers the current values of every endpoint of `entry`.
    fn latch(&mut self, entry: &ClusterEntry) {
        let state = &entry.state;
        self.dropped.insert(
            Arc::as_ptr(state) as usize,
            (state.clone(), dropped_total(state)),
        );
        for endpoint in entry.endpoints.endpoints() {
            self.baselines.insert(
                identity(endpoint),
                Baseline {
                    endpoint: endpoint.clone(),
                    counts: Counts::read(endpoint),
                },
            );
        }
    }

    /// Forgets endpoints that are gone or belong to clusters no longer tracked.
    fn prune(&mut self, snapshot: &Snapshot) {
        let live: HashSet<usize> = self
            .period_start
            .keys()
            .filter_map(|name| snapshot.cluster(name))
            .flat_map(|entry| {
                entry
                    .endpoints
                    .endpoints()
                    .map(identity)
                    .collect::<Vec<_>>()
            })
            .collect();
        self.baselines.retain(|id, _| live.contains(id));
        let clusters: HashSet<usize> = self
            .period_start
            .keys()
            .filter_map(|name| snapshot.cluster(name))
            .map(|entry| Arc::as_ptr(&entry.state) as usize)
            .collect();
        self.dropped.retain(|id, _| clusters.contains(id));
    }

    /// Requests the cluster dropped since the last report; the baseline moves to now.
    fn take_dropped(&mut self, state: &Arc<ClusterState>) -> u64 {
        let now = dropped_total(state);
        let id = Arc::as_ptr(state) as usize;
        let earlier = match self.dropped.get(&id) {
            Some((known, earlier)) if Arc::ptr_eq(known, state) => *earlier,
            // Not tracked before: everything it dropped is in this period.
            _ => 0,
        };
        self.dropped.insert(id, (state.clone(), now));
        now.saturating_sub(earlier)
    }

    /// The delta of one endpoint since its baseline, which moves to now.
    fn take_delta(&mut self, endpoint: &Arc<EndpointState>) -> Counts {
        let now = Counts::read(endpoint);
        let id = identity(endpoint);
        let earlier = match self.baselines.get(&id) {
            Some(b) if Arc::ptr_eq(&b.endpoint, endpoint) => b.counts,
            // Not seen before: a new endpoint, all of whose requests are in this period.
            _ => Counts::default(),
        };
        self.baselines.insert(
            id,
            Baseline {
                endpoint: endpoint.clone(),
                counts: now,
            },
        );
        now.since(earlier)
    }

    fn cluster_stats(
        &mut self,
        name: &str,
        entry: &ClusterEntry,
        interval: Duration,
    ) -> ClusterStats {
        let mut localities = Vec::new();
        for (priority, level) in entry.endpoints.priorities.iter().enumerate() {
            for locality in &level.localities {
                let mut total = Counts::default();
                let mut in_progress = 0u64;
                let mut per_endpoint = Vec::new();
                for endpoint in &locality.endpoints {
                    let delta = self.take_delta(endpoint);
                    let active = u64::from(endpoint.active_requests.load(Relaxed));
                    total.success += delta.success;
                    total.error += delta.error;
                    total.issued += delta.issued;
                    in_progress += active;
                    let busy = delta.success + delta.error + delta.issued + active != 0;
                    if self.endpoint_granularity && busy {
                        per_endpoint.push(UpstreamEndpointStats {
                            address: Some(address_proto(&endpoint.address)),
                            total_successful_requests: delta.success,
                            total_requests_in_progress: active,
                            total_error_requests: delta.error,
                            total_issued_requests: delta.issued,
                            ..UpstreamEndpointStats::default()
                        });
                    }
                }
                if total.success + total.error + total.issued + in_progress == 0 {
                    continue;
                }
                localities.push(UpstreamLocalityStats {
                    locality: Some(locality_proto(&locality.locality)),
                    total_successful_requests: total.success,
                    total_requests_in_progress: in_progress,
                    total_error_requests: total.error,
                    total_issued_requests: total.issued,
                    upstream_endpoint_stats: per_endpoint,
                    priority: u32::try_from(priority).unwrap_or(u32::MAX),
                    ..UpstreamLocalityStats::default()
                });
            }
        }
        let cluster_service_name = match &entry.config.discovery {
            Discovery::Eds { resource_name, .. } if resource_name != name => resource_name.clone(),
            _ => String::new(),
        };
        let dropped = self.take_dropped(&entry.state);
        // One category at most (as Envoy supports); drops are counted for the category in
        // force when they happened, reported under the current one.
        let dropped_requests = match entry.endpoints.drop_overloads.first() {
            Some(category) if dropped > 0 => vec![DroppedRequests {
                category: category.category.clone(),
                dropped_count: dropped,
            }],
            _ => Vec::new(),
        };
        ClusterStats {
            cluster_name: name.to_string(),
            cluster_service_name,
            upstream_locality_stats: localities,
            total_dropped_requests: dropped,
            dropped_requests,
            load_report_interval: Some(duration_proto(interval)),
        }
    }
}

/// Every request the cluster has dropped, summed over the workers' shards.
fn dropped_total(state: &ClusterState) -> u64 {
    state.counters.total(|c| &c.upstream_rq_drop_overload)
}

fn identity(endpoint: &Arc<EndpointState>) -> usize {
    Arc::as_ptr(endpoint) as usize
}

fn locality_proto(locality: &Locality) -> LocalityProto {
    LocalityProto {
        region: locality.region.clone(),
        zone: locality.zone.clone(),
        sub_zone: locality.sub_zone.clone(),
    }
}

fn address_proto(address: &EndpointAddress) -> Address {
    match address {
        EndpointAddress::Ip(socket) => socket_address(socket.ip().to_string(), socket.port()),
        EndpointAddress::Dns { hostname, port } => socket_address(hostname.clone(), *port),
    }
}

fn duration_proto(duration: Duration) -> DurationProto {
    DurationProto {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(duration.subsec_nanos()).unwrap_or(0),
    }
}

/// A proto duration; negative parts count as 0.
fn duration_from_proto(duration: &DurationProto) -> Duration {
    Duration::new(
        u64::try_from(duration.seconds).unwrap_or(0),
        u32::try_from(duration.nanos).unwrap_or(0).min(999_999_999),
    )
}

#[cfg(test)]
mod tests;
