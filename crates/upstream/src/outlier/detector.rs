//! `Detector`: one cluster's outlier detector. At each interval it un-ejects hosts whose time is
//! up and runs the success-rate and failure-percentage detectors (external origin, and local
//! origin in split mode) over the interval's counts; when woken by the data plane it handles
//! the consecutive-failure thresholds hosts have crossed. All its state lives in the hosts and
//! the cluster, so a restarted detector carries on where the last one stopped.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use outrider_model::OutlierDetection;
use outrider_tables::{ClusterState, EndpointSet, EndpointState, SuccessRateCell};

use super::ejection::{self, ClusterContext, Now};
use super::failure_percentage;
use super::record::{CROSSED_5XX, CROSSED_GATEWAY, CROSSED_LOCAL_ORIGIN};
use super::success_rate::{self, Sample};
use crate::events::{EjectionDetail, EjectionType, EventBus};
use crate::rng::FastRng;

/// Which counts a success-rate pass judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    External,
    LocalOrigin,
}

impl Origin {
    fn success_rate_type(self) -> EjectionType {
        match self {
            Self::External => EjectionType::SuccessRate,
            Self::LocalOrigin => EjectionType::SuccessRateLocalOrigin,
        }
    }

    fn failure_percentage_type(self) -> EjectionType {
        match self {
            Self::External => EjectionType::FailurePercentage,
            Self::LocalOrigin => EjectionType::FailurePercentageLocalOrigin,
        }
    }

    /// Where `/clusters` finds the cluster's average and threshold for this origin.
    fn cluster_cells(self, state: &ClusterState) -> (&SuccessRateCell, &SuccessRateCell) {
        let o = &state.outlier;
        match self {
            Self::External => (&o.success_rate_average, &o.success_rate_ejection_threshold),
            Self::LocalOrigin => (
                &o.local_origin_success_rate_average,
                &o.local_origin_success_rate_ejection_threshold,
            ),
        }
    }

    fn shown_rate(self, host: &EndpointState) -> &SuccessRateCell {
        match self {
            Self::External => &host.outlier.success_rate,
            Self::LocalOrigin => &host.outlier.local_origin_success_rate,
        }
    }
}

/// One cluster's detector.
pub(crate) struct Detector {
    name: Arc<str>,
    config: OutlierDetection,
    /// Enforcement rolls and jitter.
    rng: FastRng,
}

impl Detector {
    pub(crate) fn new(name: Arc<str>, config: OutlierDetection, seed: u64) -> Self {
        Self {
            name,
            config,
            rng: FastRng::new(seed),
        }
    }

    fn context<'a>(
        &'a self,
        hosts: usize,
        state: &'a ClusterState,
        bus: &'a EventBus,
        now: Now,
    ) -> ClusterContext<'a> {
        ClusterContext {
            name: &self.name,
            config: &self.config,
            state,
            hosts,
            bus,
            now,
        }
    }

    /// Ejects (or reports) hosts whose consecutive-failure counters crossed a threshold. As
    /// Envoy, at once rather than at the next interval; a host already ejected is left alone.
    pub(crate) fn on_crossed(
        &self,
        hosts: &[Arc<EndpointState>],
        state: &ClusterState,
        bus: &EventBus,
        now: Now,
    ) {
        let cx = self.context(hosts.len(), state, bus, now);
        recount_active(hosts, state);
        let detectors = [
            (CROSSED_GATEWAY, EjectionType::ConsecutiveGatewayFailure),
            (CROSSED_5XX, EjectionType::Consecutive5xx),
            (
                CROSSED_LOCAL_ORIGIN,
                EjectionType::ConsecutiveLocalOriginFailure,
            ),
        ];
        for host in hosts {
            let crossed = host.outlier.take_crossed();
            for (bit, ejection_type) in detectors {
                if crossed & bit == 0 || host.outlier.is_ejected() {
                    continue;
                }
                if ejection_type == EjectionType::ConsecutiveLocalOriginFailure
                    && !self.config.split_external_local_origin_errors
                {
                    continue;
                }
                ejection::eject(
                    &cx,
                    host,
                    ejection_type,
                    EjectionDetail::Consecutive,
                    &self.rng,
                );
                // Whatever came of it, the next bout of failures is counted afresh.
                let counter = match ejection_type {
                    EjectionType::ConsecutiveGatewayFailure => {
                        &host.outlier.consecutive_gateway_failure
                    }
                    EjectionType::ConsecutiveLocalOriginFailure => {
                        &host.outlier.consecutive_local_origin_failure
                    }
                    _ => &host.outlier.consecutive_5xx,
                };
                counter.store(0, Relaxed);
            }
        }
    }

    /// One interval: un-ejections, then the success-rate and failure-percentage detectors.
    pub(crate) fn on_interval(
        &self,
        hosts: &[Arc<EndpointState>],
        state: &ClusterState,
        bus: &EventBus,
        now: Now,
    ) {
        let cx = self.context(hosts.len(), state, bus, now);
        recount_active(hosts, state);
        let mut external = Vec::with_capacity(hosts.len());
        let mut local = Vec::with_capacity(hosts.len());
        for host in hosts {
            ejection::check_for_uneject(&cx, host);
            let ejected = host.outlier.is_ejected();
            let (requests, successes) = host.outlier.external.take();
            external.push(Sample {
                requests,
                successes,
                ejected,
            });
            let (requests, successes) = host.outlier.local_origin.take();
            local.push(Sample {
                requests,
                successes,
                ejected,
            });
            host.outlier.success_rate.set(None);
            host.outlier.local_origin_success_rate.set(None);
        }
        for origin in [Origin::External, Origin::LocalOrigin] {
            let (average, threshold) = origin.cluster_cells(state);
            average.set(None);
            threshold.set(None);
        }
        self.judge(&cx, hosts, &external, Origin::External);
        if self.config.split_external_local_origin_errors {
            self.judge(&cx, hosts, &local, Origin::LocalOrigin);
        }
    }

    /// Envoy's `processSuccessRateEjections` for one origin.
    fn judge(
        &self,
        cx: &ClusterContext<'_>,
        hosts: &[Arc<EndpointState>],
        samples: &[Sample],
        origin: Origin,
    ) {
        let c = &self.config;
        if hosts.len() < c.success_rate_minimum_hosts as usize
            && hosts.len() < c.failure_percentage_minimum_hosts as usize
        {
            return;
        }
        // The rate `/clusters` shows: of hosts with enough volume for either detector.
        let shown_volume = c
            .success_rate_request_volume
            .min(c.failure_percentage_request_volume);
        for (host, sample) in hosts.iter().zip(samples) {
            if !sample.ejected && sample.requests >= u64::from(shown_volume) {
                origin.shown_rate(host).set(sample.success_rate());
            }
        }
        let (stat, below) = success_rate::outliers(
            samples,
            c.success_rate_minimum_hosts,
            c.success_rate_request_volume,
            c.success_rate_stdev_factor,
        );
        let (average, threshold) = origin.cluster_cells(cx.state);
        average.set(stat.map(|s| s.mean));
        threshold.set(stat.map(|s| s.threshold));
        if let Some(stat) = stat {
            for (index, rate) in below {
                let Some(host) = hosts.get(index) else {
                    continue;
                };
                if host.outlier.is_ejected() {
                    continue;
                }
                let detail = EjectionDetail::SuccessRate {
                    host_success_rate: whole_percent(rate),
                    cluster_average_success_rate: whole_percent(stat.mean),
                    cluster_success_rate_ejection_threshold: whole_percent(stat.threshold),
                };
                ejection::eject(cx, host, origin.success_rate_type(), detail, &self.rng);
            }
        }
        let failing = failure_percentage::outliers(
            samples,
            c.failure_percentage_minimum_hosts,
            c.failure_percentage_request_volume,
            c.failure_percentage_threshold,
        );
        for (index, rate) in failing {
            let Some(host) = hosts.get(index) else {
                continue;
            };
            // Ejected by the success-rate detector a moment ago: one ejection is enough.
            if host.outlier.is_ejected() {
                continue;
            }
            let detail = EjectionDetail::FailurePercentage {
                host_success_rate: whole_percent(rate),
            };
            ejection::eject(
                cx,
                host,
                origin.failure_percentage_type(),
                detail,
                &self.rng,
            );
        }
    }
}

/// The hosts of a cluster, each once (an address listed in two localities shares one state).
pub(crate) fn distinct_hosts(endpoints: &EndpointSet) -> Vec<Arc<EndpointState>> {
    let mut hosts: Vec<Arc<EndpointState>> = endpoints.endpoints().cloned().collect();
    hosts.sort_by_key(|h| Arc::as_ptr(h) as usize);
    hosts.dedup_by(|a, b| Arc::ptr_eq(a, b));
    hosts
}

/// Sets `ejections_active` to the hosts ejected now: hosts that left the cluster while ejected
/// no longer count (Envoy decrements it when it removes them).
fn recount_active(hosts: &[Arc<EndpointState>], state: &ClusterState) {
    let active = hosts.iter().filter(|h| h.outlier.is_ejected()).count();
    state
        .outlier
        .stats
        .ejections_active
        .store(active as u64, Relaxed);
}

/// As Envoy's event fields: a percentage truncated to a whole number (negative thresholds
/// read 0).
fn whole_percent(value: f64) -> u32 {
    value as u32
}
