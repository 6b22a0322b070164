//! `Session`: the task that checks one host with one of its cluster's health checks, forever:
//! checks, feeds the state machine, writes the host's flags and state, counts Envoy's stats,
//! publishes events, un-ejects outliers, and waits for the next check. Meanwhile it takes the
//! data plane's `x-envoy-immediate-health-check-fail` signals and fails the host at once.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outrider_model::HealthCheck;
use outrider_tables::{Change, ClusterEntry, ClusterState, EndpointState, HealthFlags, Tables};
use outrider_upstream::events::{EventBus, HealthCheckerType, HealthEvent, HostEvent};

use crate::checker::Checker;
use crate::first_round::FirstRoundTicket;
use crate::interval::{base_interval, initial_delay, with_jitter};
use crate::outcome::{CheckOutcome, FailureKind};
use crate::state_machine::{CheckerState, HostView, Step};

/// The flags a session writes (`EXCLUDED_VIA_IMMEDIATE_HC_FAIL` is not implemented).
const OWNED: HealthFlags = HealthFlags::from_bits(
    HealthFlags::FAILED_ACTIVE_HC.bits()
        | HealthFlags::DEGRADED_ACTIVE_HC.bits()
        | HealthFlags::PENDING_ACTIVE_HC.bits()
        | HealthFlags::ACTIVE_HC_TIMEOUT.bits(),
);

/// Flags whose change a balancer must see.
const BALANCING: HealthFlags = HealthFlags::from_bits(
    HealthFlags::FAILED_ACTIVE_HC.bits()
        | HealthFlags::DEGRADED_ACTIVE_HC.bits()
        | HealthFlags::PENDING_ACTIVE_HC.bits(),
);

/// The bit of health check `index` in a host's checker masks (the 32nd and later share one).
pub(crate) fn checker_bit(index: usize) -> u32 {
    1 << index.min(31)
}

/// The bits of the first `count` health checks.
pub(crate) fn checker_bits(count: usize) -> u32 {
    (0..count.min(32)).fold(0, |bits, i| bits | checker_bit(i))
}

pub(crate) struct Session {
    pub(crate) cluster: Arc<str>,
    /// Position of `config` in the cluster's `health_checks`.
    pub(crate) index: usize,
    pub(crate) config: HealthCheck,
    pub(crate) endpoint: Arc<EndpointState>,
    pub(crate) cluster_state: Arc<ClusterState>,
    pub(crate) tables: Arc<Tables>,
    pub(crate) bus: EventBus,
    /// Held until this session's first check completes.
    pub(crate) first_round: Option<FirstRoundTicket>,
}

impl Session {
    pub(crate) async fn run(mut self) {
        let Some(address) = self.endpoint.address.ip() else {
            return;
        };
        let Some(mut checker) = Checker::new(&self.config, &self.cluster, &self.endpoint) else {
            return;
        };
        let kind = checker.kind();
        let mut machine = CheckerState::new(
            self.config.healthy_threshold,
            self.config.unhealthy_threshold,
        );
        let delay = initial_delay(&self.config, rand::random);
        if !delay.is_zero() {
            let sleep = tokio::time::sleep(delay);
            self.failing_on_signal(sleep, &mut machine, kind, address)
                .await;
        }
        loop {
            self.cluster_state
                .health_check
                .attempt
                .fetch_add(1, Ordering::Relaxed);
            self.endpoint
                .health_check
                .attempts
                .fetch_add(1, Ordering::Relaxed);
            // Boxed: the checkers' futures hold whole requests and connections.
            let check = tokio::time::timeout(self.config.timeout, Box::pin(checker.check()));
            let outcome = match self
                .failing_on_signal(check, &mut machine, kind, address)
                .await
            {
                Ok(outcome) => outcome,
                Err(_) => {
                    checker.reset();
                    CheckOutcome::Failed {
                        kind: FailureKind::Timeout,
                        retriable: false,
                        reason: format!("no answer within {:?}", self.config.timeout),
                    }
                }
            };
            let step = self.apply(&mut machine, &outcome, kind, address);
            // The first round of the cluster waits for this session's first result only.
            self.first_round.take();
            let base = base_interval(
                &self.config,
                step.result,
                step.transition,
                self.traffic_seen(),
            );
            let sleep = tokio::time::sleep(with_jitter(base, &self.config, rand::random));
            self.failing_on_signal(sleep, &mut machine, kind, address)
                .await;
        }
    }

    /// Awaits `work` (a check, or the wait for the next one), failing the host each time the
    /// data plane signals `x-envoy-immediate-health-check-fail` meanwhile. As in Envoy, the
    /// signal neither cancels a check in flight nor moves the next one.
    async fn failing_on_signal<F: Future>(
        &self,
        work: F,
        machine: &mut CheckerState,
        kind: HealthCheckerType,
        address: SocketAddr,
    ) -> F::Output {
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                output = &mut work => return output,
                () = self.endpoint.health_check.immediate_fail_signalled() => {
                    self.apply(machine, &CheckOutcome::immediate_fail(), kind, address);
                }
            }
        }
    }

    /// Everything one result changes; returns the state machine's step.
    fn apply(
        &self,
        machine: &mut CheckerState,
        outcome: &CheckOutcome,
        kind: HealthCheckerType,
        address: SocketAddr,
    ) -> Step {
        let state = &self.endpoint.health_check;
        let bit = checker_bit(self.index);
        let flags = self.endpoint.health_flags();
        let view = HostView {
            failed: state.failed_checkers.load(Ordering::Acquire) & bit != 0,
            degraded: state.degraded_checkers.load(Ordering::Acquire) & bit != 0,
            pending: flags.contains(HealthFlags::PENDING_ACTIVE_HC),
            timed_out: flags.contains(HealthFlags::ACTIVE_HC_TIMEOUT),
        };
        let step = machine.on_outcome(view, outcome);
        set_bit(&state.failed_checkers, bit, step.view.failed);
        set_bit(&state.degraded_checkers, bit, step.view.degraded);
        let after = publish_flags(&self.endpoint, step.view);
        // Kept only while it passed its checks after EDS dropped it: now it goes.
        let removable = HealthFlags::FAILED_ACTIVE_HC | HealthFlags::PENDING_DYNAMIC_REMOVAL;
        if after.contains(removable) && !flags.contains(HealthFlags::FAILED_ACTIVE_HC) {
            self.tables.apply([Change::RemovePendingHost {
                cluster: Arc::clone(&self.cluster),
                host: Arc::clone(&self.endpoint),
            }]);
        }
        if (flags.bits() ^ after.bits()) & BALANCING.bits() != 0 {
            self.cluster_state.note_health_change();
            if let Some(entry) = self.tables.load().cluster(&self.cluster)
                && Arc::ptr_eq(&entry.state, &self.cluster_state)
            {
                recount_gauges(entry);
            }
        }
        let stats = &self.cluster_state.health_check;
        let now = now_ms();
        match outcome {
            CheckOutcome::Passed { degraded } => {
                stats.success.fetch_add(1, Ordering::Relaxed);
                state.record_success(now, *degraded);
                self.uneject_outlier();
            }
            CheckOutcome::Failed { kind, reason, .. } => {
                stats.failure.fetch_add(1, Ordering::Relaxed);
                if kind.is_network() {
                    stats.network_failure.fetch_add(1, Ordering::Relaxed);
                } else if *kind == FailureKind::Passive {
                    stats.passive_failure.fetch_add(1, Ordering::Relaxed);
                }
                tracing::debug!(
                    cluster = %self.cluster,
                    host = %address,
                    reason = %reason,
                    "health check failed"
                );
                state.record_failure(now, *kind == FailureKind::Timeout, reason.clone());
            }
        }
        for transition in &step.events {
            self.bus.publish(HostEvent::Health(HealthEvent {
                checker: kind,
                cluster_name: self.cluster.to_string(),
                address,
                transition: transition.clone(),
                timestamp: SystemTime::now(),
            }));
        }
        step
    }

    /// A passing check lifts an outlier ejection at once when the cluster says so
    /// (`successful_active_health_check_uneject_host`, on by default).
    fn uneject_outlier(&self) {
        if !self
            .endpoint
            .health_flags()
            .contains(HealthFlags::FAILED_OUTLIER_CHECK)
        {
            return;
        }
        let snapshot = self.tables.load();
        let Some(entry) = snapshot.cluster(&self.cluster) else {
            return;
        };
        let uneject = entry
            .config
            .outlier_detection
            .as_ref()
            .is_some_and(|o| o.successful_active_health_check_uneject_host);
        if uneject {
            outrider_upstream::outlier::uneject_after_health_check(
                &self.cluster,
                &entry.state,
                &self.endpoint,
                &self.bus,
            );
        }
    }

    /// Whether the cluster has carried traffic (Envoy leaves the `no_traffic_*` intervals once
    /// it has); remembered per cluster once any of its hosts has seen a request.
    fn traffic_seen(&self) -> bool {
        let stats = &self.cluster_state.health_check;
        if stats.traffic_seen() {
            return true;
        }
        let used = self.endpoint.rq_total.load(Ordering::Relaxed) > 0
            || self.endpoint.cx_total.load(Ordering::Relaxed) > 0;
        if used {
            stats.note_traffic();
        }
        used
    }
}

fn set_bit(mask: &AtomicU32, bit: u32, on: bool) {
    if on {
        mask.fetch_or(bit, Ordering::AcqRel);
    } else {
        mask.fetch_and(!bit, Ordering::AcqRel);
    }
}

/// Writes the host's active-HC flags from every checker's masks and this checker's view, in
/// one atomic step. Repeats if another checker of the host changed a mask meanwhile, so the
/// last writer always leaves flags that match the masks. Returns the flags written.
fn publish_flags(endpoint: &EndpointState, view: HostView) -> HealthFlags {
    let state = &endpoint.health_check;
    loop {
        let failed = state.failed_checkers.load(Ordering::Acquire);
        let degraded = state.degraded_checkers.load(Ordering::Acquire);
        let mut value = HealthFlags::default();
        if failed != 0 {
            value = value | HealthFlags::FAILED_ACTIVE_HC;
        }
        if degraded != 0 {
            value = value | HealthFlags::DEGRADED_ACTIVE_HC;
        }
        if view.pending {
            value = value | HealthFlags::PENDING_ACTIVE_HC;
        }
        if view.timed_out {
            value = value | HealthFlags::ACTIVE_HC_TIMEOUT;
        }
        endpoint.replace_flags(OWNED, value);
        if state.failed_checkers.load(Ordering::Acquire) == failed
            && state.degraded_checkers.load(Ordering::Acquire) == degraded
        {
            return endpoint.health_flags();
        }
    }
}

/// Recomputes the `health_check.healthy` and `.degraded` gauges of a cluster from its hosts'
/// flags (O(hosts); done only when a host flips or the hosts change).
pub(crate) fn recount_gauges(entry: &ClusterEntry) {
    let (mut healthy, mut degraded) = (0u64, 0u64);
    for endpoint in entry.endpoints.endpoints() {
        if endpoint.active_health_check_disabled || endpoint.address.ip().is_none() {
            continue;
        }
        let flags = endpoint.health_flags();
        if !flags.contains(HealthFlags::FAILED_ACTIVE_HC) {
            healthy += 1;
        }
        if flags.contains(HealthFlags::DEGRADED_ACTIVE_HC) {
            degraded += 1;
        }
    }
    let stats = &entry.state.health_check;
    stats.healthy.store(healthy, Ordering::Relaxed);
    stats.degraded.store(degraded, Ordering::Relaxed);
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis()
        .try_into()
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checker_bits_cover_the_first_checks_and_share_the_last() {
        assert_eq!(checker_bits(0), 0);
        assert_eq!(checker_bits(2), 0b11);
        assert_eq!(checker_bit(40), 1 << 31);
        assert_eq!(checker_bits(40), u32::MAX);
    }
}
