//! Host selection of each policy on a healthy single-priority cluster: distributions, load
//! awareness, and retries avoiding endpoints already tried.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use outrider_upstream::Balancer;
use serde_json::json;
use support::*;

#[test]
fn round_robin_visits_every_host_once_per_cycle() {
    let e = entry("ROUND_ROBIN", json!({}), json!({}), &[locality(0, "a", 4)]);
    let b = Balancer::with_seed(&e, 1);
    for _ in 0..50 {
        let cycle: BTreeSet<String> = (0..4)
            .map(|_| ip(&b.pick(None, &[]).expect("host").endpoint))
            .collect();
        assert_eq!(cycle.len(), 4, "each cycle of 4 picks covers the 4 hosts");
    }
}

#[test]
fn weighted_round_robin_keeps_exact_proportions() {
    let weights = [1u32, 2, 3, 4];
    let e = entry(
        "ROUND_ROBIN",
        json!({}),
        json!({}),
        &[weighted(0, "a", &weights)],
    );
    let b = Balancer::with_seed(&e, 7);
    let cycles = 100;
    let counts = count(&b, cycles * 10);
    for (i, w) in weights.iter().enumerate() {
        let got = counts
            .get(&format!("10.0.97.{}", i + 1))
            .copied()
            .unwrap_or(0);
        let want = cycles * *w as usize;
        assert!(
            got.abs_diff(want) <= 1,
            "host {i} (weight {w}): {got} picks, want {want}"
        );
    }
}

#[test]
fn workers_start_their_rotation_at_different_hosts() {
    let e = entry("ROUND_ROBIN", json!({}), json!({}), &[locality(0, "a", 8)]);
    let firsts: BTreeSet<String> = (0..16)
        .map(|seed| {
            let b = Balancer::with_seed(&e, seed);
            ip(&b.pick(None, &[]).expect("host").endpoint)
        })
        .collect();
    assert!(
        firsts.len() > 3,
        "seeds spread the starting host: {firsts:?}"
    );
}

#[test]
fn least_request_prefers_the_less_loaded() {
    let e = entry(
        "LEAST_REQUEST",
        json!({}),
        json!({}),
        &[locality(0, "a", 10)],
    );
    // Host i has i requests in flight.
    for (i, h) in hosts(&e).iter().enumerate() {
        h.active_requests.store(i as u32, Ordering::Relaxed);
    }
    let b = Balancer::with_seed(&e, 3);
    let n = 20_000;
    let counts = count(&b, n);
    let at = |i: usize| {
        counts
            .get(&format!("10.0.97.{}", i + 1))
            .copied()
            .unwrap_or(0)
    };
    // Power of two choices: host i wins when it is drawn and the other draw is busier:
    // P = (2·(9 − i) + 1) / 100.
    for i in 0..10 {
        let expected = n as f64 * (2.0 * (9 - i) as f64 + 1.0) / 100.0;
        assert_near(
            at(i),
            expected,
            n as f64 * 0.015,
            &format!("host with {i} active"),
        );
    }
}

#[test]
fn least_request_with_choice_count_picks_the_idlest_of_more() {
    let extra = json!({ "least_request_lb_config": { "choice_count": 10 } });
    let e = entry("LEAST_REQUEST", extra, json!({}), &[locality(0, "a", 4)]);
    for (i, h) in hosts(&e).iter().enumerate() {
        h.active_requests
            .store(if i == 2 { 0 } else { 5 }, Ordering::Relaxed);
    }
    let b = Balancer::with_seed(&e, 3);
    let counts = count(&b, 1000);
    // The idle host is missed only when none of 10 draws from 4 hosts hit it: (3/4)^10 ≈ 5.6 %.
    assert!(
        counts.get("10.0.97.3").copied().unwrap_or(0) > 900,
        "{counts:?}"
    );
}

#[test]
fn weighted_least_request_divides_weight_by_load() {
    let e = entry(
        "LEAST_REQUEST",
        json!({}),
        json!({}),
        &[weighted(0, "a", &[1, 3])],
    );
    let b = Balancer::with_seed(&e, 5);
    let counts = count(&b, 4000);
    assert_near(counts["10.0.97.2"], 3000.0, 2.0, "idle: weight 3 of 4");
    // Weight 3 with 5 in flight is worth 3/6 = 0.5 against 1/1: a third of the picks.
    let heavy = host(&e, "10.0.97.2");
    heavy.active_requests.store(5, Ordering::Relaxed);
    let counts = count(&b, 3000);
    assert_near(counts["10.0.97.2"], 1000.0, 10.0, "busy heavy host");
}

#[test]
fn random_follows_weights_within_tolerance() {
    let cases: [&[u32]; 2] = [&[1, 1, 1, 1], &[1, 1, 2, 4]];
    for weights in cases {
        let e = entry("RANDOM", json!({}), json!({}), &[weighted(0, "a", weights)]);
        let b = Balancer::with_seed(&e, 11);
        let n = 40_000;
        let counts = count(&b, n);
        let total: u32 = weights.iter().sum();
        for (i, w) in weights.iter().enumerate() {
            let expected = n as f64 * f64::from(*w) / f64::from(total);
            let got = counts
                .get(&format!("10.0.97.{}", i + 1))
                .copied()
                .unwrap_or(0);
            assert_near(
                got,
                expected,
                n as f64 * 0.01,
                &format!("{weights:?} host {i}"),
            );
        }
    }
}

#[test]
fn retries_go_to_another_host_when_there_is_one() {
    for (policy, extra) in policies() {
        let e = entry(policy, extra, json!({}), &[locality(0, "a", 3)]);
        let b = Balancer::with_seed(&e, 2);
        for key in 0..50u64 {
            let first = b.pick(Some(key), &[]).expect("host").endpoint;
            let second = b.pick(Some(key), &[&first]).expect("host").endpoint;
            assert!(
                !Arc::ptr_eq(&first, &second),
                "{policy}: retry went elsewhere"
            );
            let third = b
                .pick(Some(key), &[&first, &second])
                .expect("host")
                .endpoint;
            assert!(
                !Arc::ptr_eq(&third, &first) && !Arc::ptr_eq(&third, &second),
                "{policy}: second retry went to the third host"
            );
            // All tried: fall back to one of them rather than fail.
            let fourth = b.pick(Some(key), &[&first, &second, &third]);
            assert!(
                fourth.is_ok(),
                "{policy}: falls back when every host was tried"
            );
        }
    }
}

#[test]
fn a_single_host_is_retried_when_it_is_all_there_is() {
    for (policy, extra) in policies() {
        let e = entry(policy, extra, json!({}), &[locality(0, "a", 1)]);
        let b = Balancer::with_seed(&e, 2);
        let first = b.pick(None, &[]).expect("host").endpoint;
        let again = b.pick(None, &[&first]).expect("host").endpoint;
        assert!(Arc::ptr_eq(&first, &again), "{policy}");
    }
}

#[test]
fn retries_prefer_another_locality_over_the_same_host() {
    let extra = json!({ "common_lb_config": { "locality_weighted_lb_config": {} } });
    let e = entry(
        "ROUND_ROBIN",
        extra,
        json!({}),
        &[
            locality(0, "a", 1).with_weight(100),
            locality(0, "b", 1).with_weight(1),
        ],
    );
    let b = Balancer::with_seed(&e, 2);
    let a = host(&e, "10.0.97.1");
    for _ in 0..20 {
        let retry = b.pick(None, &[&a]).expect("host").endpoint;
        assert_eq!(ip(&retry), "10.0.98.1");
    }
}

#[test]
fn skewed_weights_keep_proportions_over_long_runs() {
    // Cursors wrap and EDF deadlines keep their order however long a balancer lives.
    let e = entry(
        "ROUND_ROBIN",
        json!({}),
        json!({}),
        &[weighted(0, "a", &[1, 1000])],
    );
    let b = Balancer::with_seed(&e, 9);
    let counts = count(&b, 100_100);
    assert_near(counts["10.0.97.1"], 100.0, 1.0, "weight 1 of 1001");
}
