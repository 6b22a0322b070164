//! Ejecting and un-ejecting one host, as Envoy's `ejectHost`, `checkHostForUneject` and
//! `unejectHost` do: the `max_ejection_percent` gate, enforcement by probability, the ejection
//! time with its backoff multiplier and jitter, the stats, the health flag and the events.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

use outrider_model::OutlierDetection;
use outrider_tables::{ClusterState, EndpointState, HealthFlags};

use crate::events::{
    EjectionAction, EjectionDetail, EjectionType, EventBus, HostEvent, OutlierEvent,
};
use crate::rng::FastRng;

/// The time of a detector pass, on both clocks: `ms` (monotonic, `OutlierState::clock_ms`)
/// decides, `wall` is what events report.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    pub ms: u64,
    pub wall: SystemTime,
}

impl Now {
    pub(crate) fn current() -> Self {
        Self {
            ms: outrider_tables::OutlierState::clock_ms(),
            wall: SystemTime::now(),
        }
    }
}

/// What an ejection decision needs to know about the cluster.
pub(crate) struct ClusterContext<'a> {
    pub name: &'a str,
    pub config: &'a OutlierDetection,
    pub state: &'a ClusterState,
    /// Hosts in the cluster, every priority (what `max_ejection_percent` is a percentage of).
    pub hosts: usize,
    pub bus: &'a EventBus,
    pub now: Now,
}

/// What became of one detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Ejected,
    /// Detected, but the enforcing percentage said no (an event with `enforced: false`).
    NotEnforced,
    /// `max_ejection_percent` refused it (`ejections_overflow`).
    Overflow,
    /// Someone else ejected the host first.
    AlreadyEjected,
}

/// May one more host be ejected, with `active` already out of `hosts`? Envoy:
/// `100·(active+1)/hosts ≤ max_ejection_percent`, or none out yet and `always_eject_one_host`.
pub(crate) fn ejection_allowed(
    active: u64,
    hosts: usize,
    max_percent: u32,
    always_eject_one: bool,
) -> bool {
    // In integers, so 1 of 3 against 33 % is not decided by rounding.
    let within =
        hosts > 0 && u128::from(active + 1) * 100 <= u128::from(max_percent) * hosts as u128;
    within || (always_eject_one && active == 0)
}

/// Envoy's `featureEnabled(percent)`: true with probability `percent`/100.
pub(crate) fn enforced(roll: u64, percent: u32) -> bool {
    roll % 100 < u64::from(percent)
}

/// How long an ejection lasts, in milliseconds:
/// `min(base·multiplier, max(base, max_ejection_time)) + jitter` (the host comes back at the
/// first interval after that).
pub(crate) fn ejection_duration_ms(
    config: &OutlierDetection,
    multiplier: u32,
    jitter_ms: u64,
) -> u64 {
    let base = millis(config.base_ejection_time);
    let max = millis(config.max_ejection_time);
    base.saturating_mul(u64::from(multiplier))
        .min(base.max(max))
        .saturating_add(jitter_ms)
}

/// The multiplier after one more ejection. Envoy stops growing it once `base·multiplier`
/// reaches `max + base`, so a host that recovers is not punished for ever.
pub(crate) fn grown_multiplier(config: &OutlierDetection, multiplier: u32) -> u32 {
    let base = millis(config.base_ejection_time);
    let max = millis(config.max_ejection_time);
    if base.saturating_mul(u64::from(multiplier)) < max.saturating_add(base) {
        multiplier.saturating_add(1)
    } else {
        multiplier
    }
}

/// The multiplier at an interval check of a host in service: one less if the host has been
/// back for at least a whole interval (it was not ejected in it).
pub(crate) fn decayed_multiplier(
    multiplier: u32,
    last_unejection_ms: u64,
    now_ms: u64,
    interval_ms: u64,
) -> u32 {
    if last_unejection_ms != 0 && now_ms.saturating_sub(last_unejection_ms) >= interval_ms {
        multiplier.saturating_sub(1)
    } else {
        multiplier
    }
}

/// The enforcing percentage of a detector.
pub(crate) fn enforcing(config: &OutlierDetection, ejection_type: EjectionType) -> u32 {
    match ejection_type {
        EjectionType::Consecutive5xx => config.enforcing_consecutive_5xx,
        EjectionType::ConsecutiveGatewayFailure => config.enforcing_consecutive_gateway_failure,
        EjectionType::ConsecutiveLocalOriginFailure => {
            config.enforcing_consecutive_local_origin_failure
        }
        EjectionType::SuccessRate => config.enforcing_success_rate,
        EjectionType::SuccessRateLocalOrigin => config.enforcing_local_origin_success_rate,
        EjectionType::FailurePercentage => config.enforcing_failure_percentage,
        EjectionType::FailurePercentageLocalOrigin => {
            config.enforcing_failure_percentage_local_origin
        }
    }
}

/// Envoy's `ejectHost` for one detection (counted in `ejections_detected_<type>` here).
pub(crate) fn eject(
    cx: &ClusterContext<'_>,
    host: &EndpointState,
    ejection_type: EjectionType,
    detail: EjectionDetail,
    rng: &FastRng,
) -> Verdict {
    let stats = &cx.state.outlier.stats;
    let index = usize::from(ejection_type.number());
    if let Some(c) = stats.ejections_detected.get(index) {
        c.fetch_add(1, Relaxed);
    }
    let active = stats.ejections_active.load(Relaxed);
    if !ejection_allowed(
        active,
        cx.hosts,
        cx.config.max_ejection_percent,
        cx.config.always_eject_one_host,
    ) {
        stats.ejections_overflow.fetch_add(1, Relaxed);
        return Verdict::Overflow;
    }
    let outlier = &host.outlier;
    if !enforced(rng.next_u64(), enforcing(cx.config, ejection_type)) {
        publish(
            cx,
            host,
            ejection_type,
            EjectionAction::Eject,
            false,
            Some(detail),
        );
        return Verdict::NotEnforced;
    }
    if !outlier.begin_ejection(ejection_type.number()) {
        return Verdict::AlreadyEjected;
    }
    stats.ejections_active.fetch_add(1, Relaxed);
    stats.ejections_enforced_total.fetch_add(1, Relaxed);
    if let Some(c) = stats.ejections_enforced.get(index) {
        c.fetch_add(1, Relaxed);
    }
    outlier.num_ejections.fetch_add(1, Relaxed);
    outlier.last_ejection_ms.store(cx.now.ms, Relaxed);
    let max_jitter = millis(cx.config.max_ejection_time_jitter);
    let jitter = if max_jitter == 0 {
        0
    } else {
        rng.next_u64() % max_jitter.saturating_add(1)
    };
    outlier.ejection_jitter_ms.store(jitter, Relaxed);
    let multiplier = outlier.ejection_multiplier.load(Relaxed);
    outlier
        .ejection_multiplier
        .store(grown_multiplier(cx.config, multiplier), Relaxed);
    host.set_flags(HealthFlags::FAILED_OUTLIER_CHECK);
    cx.state.note_health_change();
    publish(
        cx,
        host,
        ejection_type,
        EjectionAction::Eject,
        true,
        Some(detail),
    );
    Verdict::Ejected
}

/// Envoy's `checkHostForUneject`, at each interval: un-ejects a host whose time is up, and
/// lets the multiplier of a host in service decay.
pub(crate) fn check_for_uneject(cx: &ClusterContext<'_>, host: &EndpointState) {
    let outlier = &host.outlier;
    let multiplier = outlier.ejection_multiplier.load(Relaxed);
    if !outlier.is_ejected() {
        let decayed = decayed_multiplier(
            multiplier,
            outlier.last_unejection_ms.load(Relaxed),
            cx.now.ms,
            millis(cx.config.interval),
        );
        if decayed != multiplier {
            outlier.ejection_multiplier.store(decayed, Relaxed);
        }
        return;
    }
    let lasts = ejection_duration_ms(
        cx.config,
        multiplier,
        outlier.ejection_jitter_ms.load(Relaxed),
    );
    let since = cx
        .now
        .ms
        .saturating_sub(outlier.last_ejection_ms.load(Relaxed));
    if since >= lasts {
        uneject(cx.name, cx.state, host, cx.bus, cx.now);
    }
}

/// Envoy's `unejectHost`: back in service at once. False if the host was not ejected.
pub(crate) fn uneject(
    cluster_name: &str,
    cluster: &ClusterState,
    host: &EndpointState,
    bus: &EventBus,
    now: Now,
) -> bool {
    let outlier = &host.outlier;
    let Some(number) = outlier.end_ejection() else {
        return false;
    };
    host.clear_flags(HealthFlags::FAILED_OUTLIER_CHECK);
    // Fresh counters, so a host one failure short of a threshold before its ejection is not
    // ejected again by a single failure.
    outlier.reset_consecutive();
    outlier.take_crossed();
    let previous_ejection = outlier.last_ejection_ms.load(Relaxed);
    outlier.last_unejection_ms.store(now.ms, Relaxed);
    let active = &cluster.outlier.stats.ejections_active;
    let _ = active.fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
    cluster.note_health_change();
    let ejection_type = EjectionType::from_number(number).unwrap_or(EjectionType::Consecutive5xx);
    bus.publish(HostEvent::Outlier(OutlierEvent {
        ejection_type,
        action: EjectionAction::Uneject,
        cluster_name: cluster_name.to_string(),
        address: address(host),
        num_ejections: outlier.num_ejections.load(Relaxed),
        enforced: true,
        timestamp: now.wall,
        secs_since_last_action: secs_since(previous_ejection, now.ms),
        detail: None,
    }));
    true
}

fn publish(
    cx: &ClusterContext<'_>,
    host: &EndpointState,
    ejection_type: EjectionType,
    action: EjectionAction,
    enforced: bool,
    detail: Option<EjectionDetail>,
) {
    let outlier = &host.outlier;
    cx.bus.publish(HostEvent::Outlier(OutlierEvent {
        ejection_type,
        action,
        cluster_name: cx.name.to_string(),
        address: address(host),
        num_ejections: outlier.num_ejections.load(Relaxed),
        enforced,
        timestamp: cx.now.wall,
        // Envoy reports an ejection's time since the host's last un-ejection.
        secs_since_last_action: secs_since(outlier.last_unejection_ms.load(Relaxed), cx.now.ms),
        detail,
    }));
}

/// Whole seconds from `then` (0 = never) to `now`.
fn secs_since(then_ms: u64, now_ms: u64) -> Option<u64> {
    (then_ms != 0).then(|| now_ms.saturating_sub(then_ms) / 1000)
}

/// The host's socket address (a host name not yet resolved never gets traffic, so it is never
/// ejected; it is reported as 0.0.0.0:port should it ever be).
fn address(host: &EndpointState) -> SocketAddr {
    host.address
        .ip()
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], host.address.port())))
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_ejection_percent_arithmetic() {
        // (active, hosts, max %, always_eject_one_host, allowed)
        let cases = [
            (0, 10, 10, false, true),  // 10 % of 10 hosts: the first one
            (1, 10, 10, false, false), // a second would be 20 %
            (0, 5, 10, false, false),  // one of 5 is 20 % > 10 %: Envoy ejects none
            (0, 5, 10, true, true),    // ... unless always_eject_one_host
            (1, 5, 10, true, false),   // which allows only the first
            (1, 2, 50, false, false),  // 2 of 2 is 100 %
            (0, 2, 50, false, true),   // 1 of 2 is exactly 50 %
            (0, 3, 33, false, false),  // 33.3 % > 33 %, no rounding down
            (0, 3, 34, false, true),   //
            (2, 3, 100, false, true),  // the last of 3 at 100 %
            (3, 3, 100, false, false), // nothing left to eject
            (0, 0, 100, false, false), // no hosts
            (0, 1, 0, false, false),   // max 0 %: never ...
            (0, 1, 0, true, true),     // ... but always_eject_one_host wins
        ];
        for (active, hosts, max, always, want) in cases {
            assert_eq!(
                ejection_allowed(active, hosts, max, always),
                want,
                "{active} ejected of {hosts}, max {max} %, always_eject_one_host {always}"
            );
        }
    }

    #[test]
    fn enforcing_percentages() {
        for roll in 0..1000 {
            assert!(enforced(roll, 100));
            assert!(!enforced(roll, 0));
        }
        let hits = (0..1000).filter(|r| enforced(*r, 30)).count();
        assert_eq!(hits, 300);
    }

    fn config(base_s: u64, max_s: u64) -> OutlierDetection {
        OutlierDetection {
            base_ejection_time: Duration::from_secs(base_s),
            max_ejection_time: Duration::from_secs(max_s),
            ..OutlierDetection::default()
        }
    }

    #[test]
    fn multiplier_growth_is_capped_and_the_time_with_it() {
        let c = config(30, 300);
        let mut multiplier = 0;
        let mut times = Vec::new();
        for _ in 0..14 {
            multiplier = grown_multiplier(&c, multiplier);
            times.push(ejection_duration_ms(&c, multiplier, 0) / 1000);
        }
        assert_eq!(
            times,
            [
                30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300, 300, 300
            ]
        );
        // Growth stops once base·multiplier reaches max + base (330 s).
        assert_eq!(multiplier, 11);
        assert_eq!(
            ejection_duration_ms(&c, 11, 250),
            300_250,
            "jitter comes on top"
        );
    }

    #[test]
    fn a_max_below_the_base_never_shortens_the_base() {
        let c = config(30, 10);
        assert_eq!(ejection_duration_ms(&c, 1, 0), 30_000);
        assert_eq!(ejection_duration_ms(&c, 5, 0), 30_000);
    }

    #[test]
    fn multiplier_decay() {
        // (multiplier, last un-ejection, now, interval, expected)
        let cases = [
            (3, 1_000, 11_000, 10_000, 2), // a whole interval back in service
            (3, 1_000, 10_999, 10_000, 3), // not yet
            (0, 1_000, 50_000, 10_000, 0), // never below 0
            (2, 0, 50_000, 10_000, 2),     // never un-ejected (never ejected)
        ];
        for (m, last, now, interval, want) in cases {
            assert_eq!(decayed_multiplier(m, last, now, interval), want);
        }
    }

    #[test]
    fn seconds_since_the_last_action() {
        assert_eq!(secs_since(0, 10_000), None);
        assert_eq!(secs_since(1_000, 10_999), Some(9));
    }
}
