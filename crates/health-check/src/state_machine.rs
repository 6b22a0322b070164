//! The per-host, per-health-check state machine, without I/O: it takes one check's outcome and
//! this checker's view of the host, and says how the view changes, whether that is a health
//! transition, and which events to publish. Envoy's `ActiveHealthCheckSession::handleSuccess`
//! and `setUnhealthy`.

use outrider_upstream::events::HealthTransition;

use crate::outcome::{CheckOutcome, FailureKind};

/// One checker's view of one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct HostView {
    /// Failing this health check (`/failed_active_hc`).
    pub(crate) failed: bool,
    /// Degraded by this health check (`/degraded_active_hc`).
    pub(crate) degraded: bool,
    /// New to the cluster and not checked yet (`/pending_active_hc`).
    pub(crate) pending: bool,
    /// Failed, and the last failure was a timeout (`/active_hc_timeout`).
    pub(crate) timed_out: bool,
}

/// Envoy's `HealthTransition`: what a check did to the host's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    Unchanged,
    /// Health (or degraded, or pending) flipped.
    Changed,
    /// On its way to flipping: the check disagreed with the host's health, but the threshold
    /// is not reached yet.
    ChangePending,
}

/// Envoy's `HealthState` of one check result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckResult {
    Healthy,
    Unhealthy,
}

/// What one check result does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Step {
    pub(crate) view: HostView,
    pub(crate) transition: Transition,
    pub(crate) result: CheckResult,
    /// In the order Envoy logs them.
    pub(crate) events: Vec<HealthTransition>,
}

/// Counts consecutive results against the thresholds.
#[derive(Debug, Clone)]
pub(crate) struct CheckerState {
    healthy_threshold: u32,
    unhealthy_threshold: u32,
    /// No result yet in this session: the first success marks a failed host healthy at once
    /// (Envoy: faster start-up for new hosts).
    first_check: bool,
    num_healthy: u32,
    num_unhealthy: u32,
}

impl CheckerState {
    /// A threshold of 0 behaves as 1.
    pub(crate) fn new(healthy_threshold: u32, unhealthy_threshold: u32) -> Self {
        Self {
            healthy_threshold: healthy_threshold.max(1),
            unhealthy_threshold: unhealthy_threshold.max(1),
            first_check: true,
            num_healthy: 0,
            num_unhealthy: 0,
        }
    }

    pub(crate) fn on_outcome(&mut self, view: HostView, outcome: &CheckOutcome) -> Step {
        match outcome {
            CheckOutcome::Passed { degraded } => self.on_success(view, *degraded),
            CheckOutcome::Failed {
                kind, retriable, ..
            } => self.on_failure(view, *kind, *retriable),
        }
    }

    fn on_success(&mut self, mut view: HostView, degraded: bool) -> Step {
        self.num_unhealthy = 0;
        let mut events = Vec::new();
        let mut transition = Transition::Unchanged;
        if view.failed {
            self.num_healthy = self.num_healthy.saturating_add(1);
            if self.first_check || self.num_healthy >= self.healthy_threshold {
                view.failed = false;
                view.timed_out = false;
                transition = Transition::Changed;
                events.push(HealthTransition::AddHealthy {
                    first_check: self.first_check,
                });
            } else {
                transition = Transition::ChangePending;
            }
        }
        transition = clear_pending(&mut view, transition);
        if degraded != view.degraded {
            view.degraded = degraded;
            events.push(if degraded {
                HealthTransition::Degraded
            } else {
                HealthTransition::NoLongerDegraded
            });
            // Keeps a pending threshold pending (Envoy).
            if transition == Transition::Unchanged {
                transition = Transition::Changed;
            }
        }
        self.first_check = false;
        Step {
            view,
            transition,
            result: CheckResult::Healthy,
            events,
        }
    }

    fn on_failure(&mut self, mut view: HostView, kind: FailureKind, retriable: bool) -> Step {
        self.num_healthy = 0;
        let mut events = Vec::new();
        let mut transition = Transition::Unchanged;
        let mut ejected = false;
        if !view.failed {
            self.num_unhealthy = self.num_unhealthy.saturating_add(1);
            // Envoy: anything but a network failure or timeout, unless retriable.
            let immediate = !kind.is_network() && !retriable;
            if immediate || self.num_unhealthy >= self.unhealthy_threshold {
                view.failed = true;
                transition = Transition::Changed;
                ejected = true;
                events.push(HealthTransition::EjectUnhealthy {
                    failure_type: kind.event_type(),
                });
            } else {
                transition = Transition::ChangePending;
            }
        }
        // Lets a failed host toggle between timing out and failing otherwise.
        view.timed_out = kind == FailureKind::Timeout && view.failed;
        transition = clear_pending(&mut view, transition);
        // A failure that did not change the host's health is reported on its own
        // (Envoy's `health_check_failure_event`).
        if !ejected {
            events.push(HealthTransition::Failure {
                failure_type: kind.event_type(),
                first_check: self.first_check,
            });
        }
        self.first_check = false;
        Step {
            view,
            transition,
            result: CheckResult::Unhealthy,
            events,
        }
    }
}

/// The first result clears `/pending_active_hc`; that counts as a change so that balancers
/// stop excluding the host (Envoy).
fn clear_pending(view: &mut HostView, transition: Transition) -> Transition {
    if view.pending {
        view.pending = false;
        Transition::Changed
    } else {
        transition
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outrider_upstream::events::HealthCheckFailureType;

    fn pass() -> CheckOutcome {
        CheckOutcome::passed()
    }

    fn degraded() -> CheckOutcome {
        CheckOutcome::Passed { degraded: true }
    }

    fn network() -> CheckOutcome {
        CheckOutcome::network("connection refused")
    }

    fn timeout() -> CheckOutcome {
        CheckOutcome::Failed {
            kind: FailureKind::Timeout,
            retriable: false,
            reason: "timed out".into(),
        }
    }

    fn status(retriable: bool) -> CheckOutcome {
        CheckOutcome::Failed {
            kind: FailureKind::Active,
            retriable,
            reason: "status 503".into(),
        }
    }

    const NEW_HOST: HostView = HostView {
        failed: true,
        degraded: false,
        pending: true,
        timed_out: false,
    };

    const HEALTHY: HostView = HostView {
        failed: false,
        degraded: false,
        pending: false,
        timed_out: false,
    };

    /// Feeds outcomes in order; returns the views after each.
    fn run(machine: &mut CheckerState, mut view: HostView, outcomes: &[CheckOutcome]) -> Vec<Step> {
        outcomes
            .iter()
            .map(|o| {
                let step = machine.on_outcome(view, o);
                view = step.view;
                step
            })
            .collect()
    }

    #[test]
    fn a_new_host_is_healthy_after_its_first_successful_check() {
        let mut machine = CheckerState::new(3, 2);
        let step = machine.on_outcome(NEW_HOST, &pass());
        assert_eq!(step.view, HEALTHY);
        assert_eq!(step.transition, Transition::Changed);
        assert_eq!(
            step.events,
            [HealthTransition::AddHealthy { first_check: true }]
        );
    }

    #[test]
    fn a_new_host_failing_its_first_check_stays_failed_then_needs_the_threshold() {
        let mut machine = CheckerState::new(3, 2);
        let steps = run(&mut machine, NEW_HOST, &[network(), pass(), pass(), pass()]);
        // The first result clears pending: a change, though health did not flip.
        assert_eq!(steps[0].transition, Transition::Changed);
        assert!(steps[0].view.failed && !steps[0].view.pending);
        assert_eq!(
            steps[0].events,
            [HealthTransition::Failure {
                failure_type: HealthCheckFailureType::Network,
                first_check: true
            }]
        );
        assert_eq!(steps[1].transition, Transition::ChangePending);
        assert_eq!(steps[2].transition, Transition::ChangePending);
        assert!(steps[2].view.failed);
        assert_eq!(steps[3].transition, Transition::Changed);
        assert!(!steps[3].view.failed);
        assert_eq!(
            steps[3].events,
            [HealthTransition::AddHealthy { first_check: false }]
        );
    }

    #[test]
    fn network_failures_eject_at_exactly_the_unhealthy_threshold() {
        let mut machine = CheckerState::new(2, 3);
        let steps = run(&mut machine, HEALTHY, &[network(), timeout(), network()]);
        assert!(!steps[0].view.failed && !steps[1].view.failed);
        assert_eq!(steps[0].transition, Transition::ChangePending);
        assert_eq!(steps[1].transition, Transition::ChangePending);
        // Non-ejecting failures are reported one by one.
        assert_eq!(
            steps[1].events,
            [HealthTransition::Failure {
                failure_type: HealthCheckFailureType::NetworkTimeout,
                first_check: false
            }]
        );
        assert!(steps[2].view.failed);
        assert_eq!(steps[2].transition, Transition::Changed);
        assert_eq!(
            steps[2].events,
            [HealthTransition::EjectUnhealthy {
                failure_type: HealthCheckFailureType::Network
            }]
        );
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut machine = CheckerState::new(2, 3);
        let steps = run(
            &mut machine,
            HEALTHY,
            &[network(), network(), pass(), network(), network()],
        );
        assert!(steps.iter().all(|s| !s.view.failed));
        assert_eq!(steps[2].transition, Transition::Unchanged);
        assert!(steps[2].events.is_empty());
    }

    #[test]
    fn an_unexpected_status_ejects_at_once_unless_retriable() {
        let mut machine = CheckerState::new(2, 3);
        let step = machine.on_outcome(HEALTHY, &status(false));
        assert!(step.view.failed);
        assert_eq!(
            step.events,
            [HealthTransition::EjectUnhealthy {
                failure_type: HealthCheckFailureType::Active
            }]
        );

        let mut machine = CheckerState::new(2, 3);
        let steps = run(
            &mut machine,
            HEALTHY,
            &[status(true), status(true), status(true)],
        );
        assert!(!steps[1].view.failed);
        assert!(steps[2].view.failed);
    }

    #[test]
    fn an_immediate_fail_from_the_data_plane_ejects_at_once_and_needs_the_healthy_threshold() {
        let mut machine = CheckerState::new(2, 3);
        let steps = run(
            &mut machine,
            HEALTHY,
            &[CheckOutcome::immediate_fail(), pass(), pass()],
        );
        assert!(steps[0].view.failed);
        assert_eq!(steps[0].transition, Transition::Changed);
        assert_eq!(
            steps[0].events,
            [HealthTransition::EjectUnhealthy {
                failure_type: HealthCheckFailureType::Passive
            }]
        );
        assert_eq!(steps[1].transition, Transition::ChangePending);
        assert!(!steps[2].view.failed);

        // Before the session's first check: that check no longer counts as the first (Envoy),
        // so one pass is not enough.
        let mut machine = CheckerState::new(2, 3);
        let steps = run(
            &mut machine,
            NEW_HOST,
            &[CheckOutcome::immediate_fail(), pass()],
        );
        assert!(steps[0].view.failed && !steps[0].view.pending);
        assert!(steps[1].view.failed);
    }

    #[test]
    fn an_unhealthy_host_needs_the_healthy_threshold_and_failures_reset_it() {
        let mut machine = CheckerState::new(3, 1);
        let failed = HostView {
            failed: true,
            ..HEALTHY
        };
        // Not the session's first check any more.
        machine.on_outcome(failed, &network());
        let steps = run(&mut machine, failed, &[pass(), pass(), network(), pass()]);
        assert!(steps.iter().all(|s| s.view.failed));
        let steps = run(&mut machine, failed, &[network(), pass(), pass(), pass()]);
        assert!(steps[2].view.failed);
        assert!(!steps[3].view.failed);
    }

    #[test]
    fn timeouts_mark_a_failed_host_until_another_kind_of_failure_or_health() {
        let mut machine = CheckerState::new(1, 1);
        let steps = run(
            &mut machine,
            HEALTHY,
            &[timeout(), network(), timeout(), pass()],
        );
        assert!(steps[0].view.timed_out);
        assert!(!steps[1].view.timed_out);
        assert!(steps[2].view.timed_out);
        assert!(!steps[3].view.timed_out && !steps[3].view.failed);
        // A timeout on a host that is still healthy does not set the flag.
        let mut machine = CheckerState::new(1, 3);
        assert!(!machine.on_outcome(HEALTHY, &timeout()).view.timed_out);
    }

    #[test]
    fn degraded_answers_flip_the_degraded_flag_with_events() {
        let mut machine = CheckerState::new(1, 1);
        let steps = run(&mut machine, HEALTHY, &[degraded(), degraded(), pass()]);
        assert!(steps[0].view.degraded);
        assert_eq!(steps[0].events, [HealthTransition::Degraded]);
        assert_eq!(steps[0].transition, Transition::Changed);
        assert_eq!(steps[1].transition, Transition::Unchanged);
        assert!(!steps[2].view.degraded);
        assert_eq!(steps[2].events, [HealthTransition::NoLongerDegraded]);
    }

    #[test]
    fn degraded_does_not_hide_a_pending_healthy_threshold() {
        let mut machine = CheckerState::new(2, 1);
        let failed = HostView {
            failed: true,
            ..HEALTHY
        };
        machine.on_outcome(failed, &network());
        let step = machine.on_outcome(failed, &degraded());
        assert_eq!(step.transition, Transition::ChangePending);
        assert!(step.view.failed && step.view.degraded);
    }

    #[test]
    fn zero_thresholds_act_as_one() {
        let mut machine = CheckerState::new(0, 0);
        assert!(machine.on_outcome(HEALTHY, &network()).view.failed);
    }
}
