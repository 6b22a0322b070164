//! The detector end to end within the crate: outcomes recorded as the data plane records them,
//! detector passes at chosen times, and what comes out (flags, events, stats).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

use outrider_model::Cluster;
use outrider_tables::{Change, ClusterEntry, EndpointState, HealthFlags, Tables};
use serde_json::{Value, json};
use tokio::sync::broadcast::Receiver;

use super::detector::{Detector, distinct_hosts};
use super::ejection::Now;
use super::{Outcome, record, uneject_after_health_check};
use crate::events::{
    EjectionAction, EjectionDetail, EjectionType, EventBus, HostEvent, OutlierEvent,
};

/// A STATIC cluster `c` of `n` hosts `10.0.0.<i>:80` with `outlier_detection: od`.
fn cluster(n: usize, od: Value) -> Arc<ClusterEntry> {
    let hosts: Vec<Value> = (1..=n)
        .map(|i| {
            json!({ "endpoint": { "address": { "socket_address": {
                "address": format!("10.0.0.{i}"), "port_value": 80 } } } })
        })
        .collect();
    let value = json!({
        "name": "c",
        "type": "STATIC",
        "load_assignment": { "cluster_name": "c", "endpoints": [{ "lb_endpoints": hosts }] },
        "outlier_detection": od,
    });
    let proto = outrider_envoy_json::from_value(&value).expect("cluster JSON");
    let config = Cluster::from_proto(&proto).expect("valid cluster");
    let tables = Tables::new();
    tables.apply([Change::UpsertCluster(Arc::new(config))]);
    Arc::clone(tables.load().cluster("c").expect("cluster c"))
}

/// The test's view of one cluster: its detector, hosts in address order, and events.
struct Fixture {
    entry: Arc<ClusterEntry>,
    detector: Detector,
    hosts: Vec<Arc<EndpointState>>,
    bus: EventBus,
    events: Receiver<Arc<HostEvent>>,
}

impl Fixture {
    fn new(n: usize, od: Value) -> Self {
        let entry = cluster(n, od);
        let config = entry
            .config
            .outlier_detection
            .clone()
            .expect("outlier detection");
        let mut hosts = distinct_hosts(&entry.endpoints);
        hosts.sort_by_key(|h| h.address.to_string());
        let bus = EventBus::new(1024);
        let events = bus.subscribe();
        Self {
            detector: Detector::new("c".into(), config, 7),
            entry,
            hosts,
            bus,
            events,
        }
    }

    fn host(&self, i: usize) -> &EndpointState {
        &self.hosts[i]
    }

    fn record(&self, i: usize, outcome: Outcome, times: usize) {
        for _ in 0..times {
            record(&self.entry, self.host(i), outcome);
        }
    }

    fn crossed(&self, ms: u64) {
        let hosts = distinct_hosts(&self.entry.endpoints);
        self.detector
            .on_crossed(&hosts, &self.entry.state, &self.bus, at(ms));
    }

    fn interval(&self, ms: u64) {
        let hosts = distinct_hosts(&self.entry.endpoints);
        self.detector
            .on_interval(&hosts, &self.entry.state, &self.bus, at(ms));
    }

    fn ejected(&self) -> Vec<usize> {
        (0..self.hosts.len())
            .filter(|i| {
                let h = self.host(*i);
                let flagged = h.health_flags().contains(HealthFlags::FAILED_OUTLIER_CHECK);
                assert_eq!(flagged, h.outlier.is_ejected(), "flag and state agree");
                flagged
            })
            .collect()
    }

    fn events(&mut self) -> Vec<OutlierEvent> {
        let mut out = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            if let HostEvent::Outlier(e) = &*event {
                out.push(e.clone());
            }
        }
        out
    }

    /// `(type, action, host index, enforced)` of the events since the last call.
    fn actions(&mut self) -> Vec<(EjectionType, EjectionAction, usize, bool)> {
        let hosts: Vec<String> = self.hosts.iter().map(|h| h.address.to_string()).collect();
        self.events()
            .into_iter()
            .map(|e| {
                let i = hosts
                    .iter()
                    .position(|a| *a == e.address.to_string())
                    .expect("a host of the cluster");
                (e.ejection_type, e.action, i, e.enforced)
            })
            .collect()
    }

    fn stat(&self, name: &str) -> u64 {
        self.entry
            .state
            .outlier
            .stats
            .values()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no stat {name}"))
    }
}

fn at(ms: u64) -> Now {
    Now {
        ms,
        wall: SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
    }
}

use EjectionAction::{Eject, Uneject};
use EjectionType::*;

const ERR: Outcome = Outcome::Response(500);
const OK: Outcome = Outcome::Response(200);

#[test]
fn consecutive_5xx_ejects_at_exactly_the_threshold() {
    let mut f = Fixture::new(
        4,
        json!({ "consecutive_5xx": 3, "max_ejection_percent": 100 }),
    );
    f.record(0, ERR, 2);
    f.crossed(1_000);
    assert!(f.ejected().is_empty(), "2 of 3 is not enough");
    f.record(0, OK, 1);
    f.record(0, ERR, 2);
    f.crossed(1_000);
    assert!(f.ejected().is_empty(), "a success started the count again");
    f.record(0, ERR, 1);
    assert!(
        f.ejected().is_empty(),
        "the data plane only marks; the detector ejects"
    );
    f.crossed(1_000);
    assert_eq!(f.ejected(), [0]);
    let events = f.events();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        (e.ejection_type, e.action, e.enforced, e.num_ejections),
        (Consecutive5xx, Eject, true, 1)
    );
    assert_eq!(e.detail, Some(EjectionDetail::Consecutive));
    assert_eq!(e.cluster_name, "c");
    assert_eq!(e.upstream_url(), "tcp://10.0.0.1:80");
    assert_eq!(e.secs_since_last_action, None, "never un-ejected before");
    assert_eq!(f.stat("ejections_enforced_total"), 1);
    assert_eq!(f.stat("ejections_enforced_consecutive_5xx"), 1);
    assert_eq!(f.stat("ejections_detected_consecutive_5xx"), 1);
    assert_eq!(f.stat("ejections_active"), 1);
    assert_eq!(
        f.host(0).outlier.consecutive_5xx.load(Relaxed),
        0,
        "counted afresh after the ejection"
    );
}

#[test]
fn gateway_failures_are_detected_but_not_enforced_by_default() {
    let mut f = Fixture::new(
        4,
        json!({ "consecutive_5xx": 10, "consecutive_gateway_failure": 2, "max_ejection_percent": 100 }),
    );
    f.record(1, Outcome::Response(502), 2);
    f.crossed(0);
    assert!(f.ejected().is_empty());
    assert_eq!(f.actions(), [(ConsecutiveGatewayFailure, Eject, 1, false)]);
    assert_eq!(f.stat("ejections_detected_consecutive_gateway_failure"), 1);
    assert_eq!(f.stat("ejections_enforced_consecutive_gateway_failure"), 0);
    assert_eq!(f.stat("ejections_enforced_total"), 0);
    assert_eq!(f.host(1).outlier.num_ejections.load(Relaxed), 0);
}

#[test]
fn enforcing_zero_detects_without_ejecting() {
    let mut f = Fixture::new(
        2,
        json!({ "consecutive_5xx": 1, "enforcing_consecutive_5xx": 0, "max_ejection_percent": 100 }),
    );
    f.record(0, ERR, 1);
    f.crossed(0);
    assert!(f.ejected().is_empty());
    assert_eq!(f.actions(), [(Consecutive5xx, Eject, 0, false)]);
    assert_eq!(f.stat("ejections_detected_consecutive_5xx"), 1);
    assert_eq!(f.stat("ejections_enforced_consecutive_5xx"), 0);
    // The counter starts again: the next bout is a new detection.
    f.record(0, ERR, 1);
    f.crossed(0);
    assert_eq!(f.stat("ejections_detected_consecutive_5xx"), 2);
}

#[test]
fn a_503_streak_reports_gateway_first_then_ejects_for_5xx() {
    let mut f = Fixture::new(
        2,
        json!({ "consecutive_5xx": 2, "consecutive_gateway_failure": 2, "max_ejection_percent": 100 }),
    );
    f.record(0, Outcome::Response(503), 2);
    f.crossed(0);
    assert_eq!(
        f.actions(),
        [
            (ConsecutiveGatewayFailure, Eject, 0, false),
            (Consecutive5xx, Eject, 0, true)
        ]
    );
}

#[test]
fn max_ejection_percent_and_overflow() {
    // (hosts, max %, always_eject_one_host, hosts failing, ejected, overflows)
    let cases = [
        (4, 50, false, 3, 2, 1),
        (4, 100, false, 4, 4, 0),
        (5, 10, false, 2, 0, 2), // Envoy's default: 1 of 5 is already 20 %
        (5, 10, true, 2, 1, 1),
        (10, 10, false, 3, 1, 2),
    ];
    for (n, max, always, failing, want_ejected, want_overflow) in cases {
        let mut f = Fixture::new(
            n,
            json!({ "consecutive_5xx": 1, "max_ejection_percent": max, "always_eject_one_host": always }),
        );
        for i in 0..failing {
            f.record(i, ERR, 1);
        }
        f.crossed(0);
        let name = format!("{n} hosts, max {max} %, always_eject_one_host {always}");
        assert_eq!(f.ejected().len(), want_ejected, "{name}");
        assert_eq!(f.stat("ejections_overflow"), want_overflow, "{name}");
        assert_eq!(
            f.stat("ejections_detected_consecutive_5xx"),
            failing as u64,
            "{name}: an overflow is still a detection"
        );
        assert_eq!(
            f.actions().len(),
            want_ejected,
            "{name}: no event for an overflow"
        );
    }
}

#[test]
fn unejection_at_the_first_interval_after_the_ejection_time() {
    let mut f = Fixture::new(
        2,
        json!({ "consecutive_5xx": 1, "base_ejection_time": "10s", "interval": "1s", "max_ejection_percent": 50 }),
    );
    f.record(0, ERR, 1);
    f.crossed(1_000);
    f.interval(10_999);
    assert_eq!(f.ejected(), [0], "not before base_ejection_time");
    f.interval(11_000);
    assert!(f.ejected().is_empty());
    let events = f.events();
    let back = events.last().expect("events");
    assert_eq!(
        (back.ejection_type, back.action, back.num_ejections),
        (Consecutive5xx, Uneject, 1)
    );
    assert_eq!(back.secs_since_last_action, Some(10));
    assert_eq!(f.stat("ejections_active"), 0);
    // Counters start afresh after un-ejection.
    assert_eq!(f.host(0).outlier.consecutive_5xx.load(Relaxed), 0);
}

#[test]
fn repeat_offenders_stay_out_longer_and_recover_interval_by_interval() {
    let f = Fixture::new(
        2,
        json!({ "consecutive_5xx": 1, "base_ejection_time": "10s", "max_ejection_time": "25s",
                "interval": "1s", "max_ejection_percent": 50 }),
    );
    let multiplier = |f: &Fixture| f.host(0).outlier.ejection_multiplier.load(Relaxed);
    // Ejected three times in a row: 10 s, then 20 s, then capped at 25 s.
    let mut now = 0;
    for (want_multiplier, lasts) in [(1, 10_000), (2, 20_000), (3, 25_000)] {
        f.record(0, ERR, 1);
        f.crossed(now);
        assert_eq!(multiplier(&f), want_multiplier);
        f.interval(now + lasts - 1);
        assert_eq!(
            f.ejected(),
            [0],
            "ejection {want_multiplier} lasts {lasts} ms"
        );
        now += lasts;
        f.interval(now);
        assert!(f.ejected().is_empty(), "ejection {want_multiplier} is over");
    }
    // Growth stops once base·multiplier reaches max + base.
    f.record(0, ERR, 1);
    f.crossed(now);
    assert_eq!(multiplier(&f), 4);
    now += 25_000;
    f.interval(now);
    f.record(0, ERR, 1);
    f.crossed(now);
    assert_eq!(multiplier(&f), 4, "4·10 s ≥ 25 s + 10 s: no more growth");
    now += 25_000;
    f.interval(now);
    assert!(f.ejected().is_empty());
    // One less per interval in service; the interval of the un-ejection does not count.
    f.interval(now + 999);
    assert_eq!(multiplier(&f), 4);
    for (i, want) in [3, 2, 1, 0, 0].into_iter().enumerate() {
        f.interval(now + 1_000 * (i as u64 + 1));
        assert_eq!(multiplier(&f), want);
    }
    // Recovered: the next ejection is a first one again.
    f.record(0, ERR, 1);
    f.crossed(now + 10_000);
    f.interval(now + 19_999);
    assert_eq!(f.ejected(), [0]);
    f.interval(now + 20_000);
    assert!(f.ejected().is_empty());
}

#[test]
fn jitter_adds_at_most_max_ejection_time_jitter() {
    let f = Fixture::new(
        20,
        json!({ "consecutive_5xx": 1, "base_ejection_time": "1s", "max_ejection_time_jitter": "0.5s",
                "max_ejection_percent": 100 }),
    );
    for i in 0..20 {
        f.record(i, ERR, 1);
    }
    f.crossed(0);
    let jitters: Vec<u64> = (0..20)
        .map(|i| f.host(i).outlier.ejection_jitter_ms.load(Relaxed))
        .collect();
    assert!(jitters.iter().all(|j| *j <= 500), "{jitters:?}");
    assert!(jitters.iter().any(|j| *j > 0), "{jitters:?}");
    f.interval(999);
    assert_eq!(f.ejected().len(), 20, "nobody before the base time");
    f.interval(1_500);
    assert!(f.ejected().is_empty(), "everybody by base + max jitter");
}

/// Gives host `i` `requests` external-origin outcomes of which `successes` succeed.
fn traffic(f: &Fixture, i: usize, requests: usize, successes: usize) {
    f.record(i, OK, successes);
    f.record(i, Outcome::Response(500), requests - successes);
}

#[test]
fn success_rate_ejects_below_mean_minus_factor_stdev() {
    let mut f = Fixture::new(
        6,
        json!({ "consecutive_5xx": 1000, "max_ejection_percent": 100, "interval": "1s",
                "failure_percentage_request_volume": 1000 }),
    );
    // Envoy's example: {50, 100, 100, 100, 100} → threshold 52; host 5 lacks volume (99).
    for (i, successes) in [50, 100, 100, 100, 100].into_iter().enumerate() {
        traffic(&f, i, 100, successes);
    }
    traffic(&f, 5, 99, 0);
    f.interval(1_000);
    assert_eq!(f.ejected(), [0]);
    let events = f.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].ejection_type, SuccessRate);
    assert_eq!(
        events[0].detail,
        Some(EjectionDetail::SuccessRate {
            host_success_rate: 50,
            cluster_average_success_rate: 90,
            cluster_success_rate_ejection_threshold: 52,
        })
    );
    assert_eq!(f.stat("ejections_enforced_success_rate"), 1);
    // What /clusters shows for the cluster: the interval's mean and threshold.
    let o = &f.entry.state.outlier;
    assert_eq!(o.success_rate_average.get(), Some(90.0));
    let threshold = o
        .success_rate_ejection_threshold
        .get()
        .expect("a threshold");
    assert!((threshold - 52.0).abs() < 0.1, "{threshold}");
    assert_eq!(o.local_origin_success_rate_average.get(), None);
    assert_eq!(f.host(1).outlier.success_rate.get(), Some(100.0));
    assert_eq!(
        f.host(5).outlier.success_rate.get(),
        None,
        "below every volume"
    );
    // The counts were per interval: the next one starts from zero.
    f.interval(2_000);
    assert_eq!(f.ejected(), [0]);
    assert_eq!(f.host(1).outlier.success_rate.get(), None);
    assert_eq!(f.entry.state.outlier.success_rate_average.get(), None);
}

#[test]
fn success_rate_needs_minimum_hosts_with_volume() {
    let f = Fixture::new(
        5,
        json!({ "consecutive_5xx": 1000, "max_ejection_percent": 100, "success_rate_minimum_hosts": 5 }),
    );
    for (i, successes) in [50, 100, 100, 100].into_iter().enumerate() {
        traffic(&f, i, 100, successes);
    }
    traffic(&f, 4, 10, 10);
    f.interval(10_000);
    assert!(f.ejected().is_empty(), "only 4 hosts have 100 requests");
}

#[test]
fn failure_percentage_ejects_at_the_threshold_when_enforced() {
    let od = json!({ "consecutive_5xx": 1000, "max_ejection_percent": 100,
                     "failure_percentage_minimum_hosts": 3, "failure_percentage_request_volume": 20,
                     "failure_percentage_threshold": 50, "enforcing_failure_percentage": 100,
                     "enforcing_success_rate": 0 });
    let mut f = Fixture::new(3, od);
    traffic(&f, 0, 20, 10); // 50 % failures: at the threshold
    traffic(&f, 1, 20, 11);
    traffic(&f, 2, 20, 20);
    f.interval(10_000);
    assert_eq!(f.ejected(), [0]);
    let events = f.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].ejection_type, FailurePercentage);
    assert_eq!(
        events[0].detail,
        Some(EjectionDetail::FailurePercentage {
            host_success_rate: 50
        })
    );
    assert_eq!(f.stat("ejections_enforced_failure_percentage"), 1);

    // Envoy's default enforcing_failure_percentage is 0: detected, reported, not ejected.
    let mut f = Fixture::new(
        3,
        json!({ "consecutive_5xx": 1000, "max_ejection_percent": 100,
                "failure_percentage_minimum_hosts": 3, "failure_percentage_request_volume": 20 }),
    );
    traffic(&f, 0, 20, 0);
    traffic(&f, 1, 20, 20);
    traffic(&f, 2, 20, 20);
    f.interval(10_000);
    assert!(f.ejected().is_empty());
    assert_eq!(f.actions(), [(FailurePercentage, Eject, 0, false)]);
    assert_eq!(f.stat("ejections_detected_failure_percentage"), 1);
}

#[test]
fn split_mode_local_origin_detectors() {
    let od = json!({ "split_external_local_origin_errors": true, "consecutive_5xx": 2,
                     "consecutive_local_origin_failure": 3, "max_ejection_percent": 100 });
    let mut f = Fixture::new(3, od);
    // Connect failures, timeouts and resets are not 5xx in split mode.
    f.record(0, Outcome::ConnectFailure, 1);
    f.record(0, Outcome::Timeout, 1);
    assert_eq!(f.host(0).outlier.consecutive_5xx.load(Relaxed), 0);
    f.crossed(0);
    assert!(f.ejected().is_empty());
    f.record(0, Outcome::Reset, 1);
    f.crossed(0);
    assert_eq!(f.ejected(), [0]);
    assert_eq!(
        f.actions(),
        [(ConsecutiveLocalOriginFailure, Eject, 0, true)]
    );
    assert_eq!(
        f.stat("ejections_enforced_consecutive_local_origin_failure"),
        1
    );

    // Local-origin success rate, judged separately from the external one.
    let od = json!({ "split_external_local_origin_errors": true, "consecutive_5xx": 1000,
                     "consecutive_local_origin_failure": 1000, "max_ejection_percent": 100,
                     "success_rate_minimum_hosts": 5, "success_rate_request_volume": 10 });
    let mut f = Fixture::new(5, od);
    for i in 0..5 {
        f.record(i, OK, 10);
    }
    f.record(0, Outcome::Timeout, 10); // 10 of 20 connections failed; its responses were fine
    f.interval(10_000);
    assert_eq!(f.ejected(), [0]);
    assert_eq!(f.actions(), [(SuccessRateLocalOrigin, Eject, 0, true)]);
    assert_eq!(
        f.host(0).outlier.success_rate.get(),
        Some(100.0),
        "its responses"
    );
    assert_eq!(
        f.host(0).outlier.local_origin_success_rate.get(),
        Some(50.0)
    );
    assert_eq!(
        f.host(1).outlier.local_origin_success_rate.get(),
        Some(100.0)
    );
}

#[test]
fn without_split_mode_local_origin_errors_are_5xx() {
    let mut f = Fixture::new(
        2,
        json!({ "consecutive_5xx": 3, "consecutive_local_origin_failure": 1, "max_ejection_percent": 50 }),
    );
    f.record(0, Outcome::ConnectFailure, 1);
    f.record(0, Outcome::Timeout, 1);
    f.record(0, Outcome::Reset, 1);
    f.crossed(0);
    assert_eq!(f.ejected(), [0]);
    let actions = f.actions();
    assert!(
        actions.contains(&(Consecutive5xx, Eject, 0, true)),
        "{actions:?}"
    );
    assert!(
        !actions.iter().any(|a| a.0 == ConsecutiveLocalOriginFailure),
        "no local-origin detector without split mode: {actions:?}"
    );
}

#[test]
fn a_passing_health_check_unejects_at_once() {
    let mut f = Fixture::new(
        2,
        json!({ "consecutive_5xx": 1, "max_ejection_percent": 50 }),
    );
    uneject_after_health_check("c", &f.entry.state, f.host(0), &f.bus);
    assert!(f.events().is_empty(), "not ejected: nothing to do");
    f.record(0, ERR, 1);
    f.crossed(outrider_tables::OutlierState::clock_ms());
    assert_eq!(f.ejected(), [0]);
    let epoch = f.entry.state.health_epoch();
    uneject_after_health_check("c", &f.entry.state, f.host(0), &f.bus);
    assert!(f.ejected().is_empty());
    assert!(f.entry.state.health_epoch() > epoch, "balancers recount");
    assert_eq!(f.stat("ejections_active"), 0);
    assert_eq!(
        f.actions(),
        [
            (Consecutive5xx, Eject, 0, true),
            (Consecutive5xx, Uneject, 0, true)
        ]
    );
}

#[test]
fn ejected_hosts_are_not_judged_and_their_crossings_are_ignored() {
    let mut f = Fixture::new(
        2,
        json!({ "consecutive_5xx": 1, "max_ejection_percent": 100, "base_ejection_time": "100s" }),
    );
    f.record(0, ERR, 1);
    f.crossed(0);
    f.events();
    // In panic mode an ejected host still gets traffic; its crossings change nothing.
    f.record(0, OK, 1);
    f.record(0, ERR, 1);
    f.crossed(10);
    assert!(f.events().is_empty());
    assert_eq!(f.stat("ejections_detected_consecutive_5xx"), 1);
}
