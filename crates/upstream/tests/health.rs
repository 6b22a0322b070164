//! Health-aware balancing: unhealthy hosts skipped, priority failover with overprovisioning,
//! degraded hosts, panic mode, locality weights, and the explanation when nothing is left.

mod support;

use outrider_tables::HealthFlags;
use outrider_upstream::Balancer;
use serde_json::json;
use support::*;

fn no_panic() -> serde_json::Value {
    json!({ "common_lb_config": { "healthy_panic_threshold": { "value": 0 } } })
}

#[test]
fn unhealthy_hosts_are_skipped_by_every_policy() {
    for (policy, extra) in policies() {
        // 10 hosts: 1 EDS-unhealthy, 1 draining; 1 ejected, 1 failing active HC below.
        let mut l = locality(0, "a", 10).with_status(1, "UNHEALTHY");
        l.hosts[1].2 = "DRAINING";
        let e = entry(policy, extra, json!({}), &[l]);
        let b = Balancer::with_seed(&e, 4);
        eject(&host(&e, "10.0.97.3"));
        host(&e, "10.0.97.4").set_flags(HealthFlags::FAILED_ACTIVE_HC);
        for key in 0..2000u64 {
            let pick = b
                .pick(Some(key.wrapping_mul(0x9E37_79B9_7F4A_7C15)), &[])
                .expect("host");
            let got = ip(&pick.endpoint);
            assert!(
                !["10.0.97.1", "10.0.97.2", "10.0.97.3", "10.0.97.4"].contains(&got.as_str()),
                "{policy} picked unhealthy {got}"
            );
            assert!(!pick.panic);
        }
    }
}

#[test]
fn an_ejection_takes_effect_on_the_next_pick() {
    for (policy, extra) in policies() {
        let e = entry(policy, extra, json!({}), &[locality(0, "a", 4)]);
        let b = Balancer::with_seed(&e, 4);
        let first = b.pick(Some(42), &[]).expect("host").endpoint;
        eject(&first);
        for key in [42, 43, 44] {
            let next = b.pick(Some(key), &[]).expect("host").endpoint;
            assert_ne!(ip(&next), ip(&first), "{policy}");
        }
    }
}

#[test]
fn no_healthy_upstream_explains_why() {
    for (policy, extra) in policies() {
        let mut extra = extra;
        if let (Some(o), serde_json::Value::Object(n)) = (extra.as_object_mut(), no_panic()) {
            o.extend(n);
        }
        let e = entry(policy, extra, json!({}), &[locality(0, "a", 3)]);
        let b = Balancer::with_seed(&e, 4);
        eject(&host(&e, "10.0.97.1"));
        eject(&host(&e, "10.0.97.2"));
        host(&e, "10.0.97.3").set_flags(HealthFlags::FAILED_ACTIVE_HC);
        let why = b
            .pick(None, &[])
            .expect_err("nothing healthy, panic disabled");
        assert_eq!(
            why.to_string(),
            "0 of 3 endpoints healthy (2 ejected by outlier detection, 1 failing active health checks)",
            "{policy}"
        );
        assert_eq!(
            (why.total, why.failed_outlier, why.failed_active_hc),
            (3, 2, 1)
        );
        assert!(e.state.counters.total(|c| &c.upstream_cx_none_healthy) >= 1);
    }
    let empty = entry("ROUND_ROBIN", json!({}), json!({}), &[]);
    let why = Balancer::with_seed(&empty, 1)
        .pick(None, &[])
        .expect_err("no hosts");
    assert_eq!(why.to_string(), "no endpoints");
}

#[test]
fn panic_mode_at_and_below_the_threshold() {
    // (healthy of 10, threshold, expect panic)
    let cases = [
        (5, None, false),
        (4, None, true),
        (0, None, true),
        (2, Some(20.0), false),
        (1, Some(20.0), true),
        (1, Some(0.0), false),
    ];
    for (healthy, threshold, panic) in cases {
        for (policy, extra) in policies() {
            let mut extra = extra;
            if let (Some(t), Some(o)) = (threshold, extra.as_object_mut()) {
                o.insert(
                    "common_lb_config".into(),
                    json!({ "healthy_panic_threshold": { "value": t } }),
                );
            }
            let e = entry(policy, extra, json!({}), &[locality(0, "a", 10)]);
            let b = Balancer::with_seed(&e, 8);
            for h in hosts(&e).iter().skip(healthy) {
                eject(h);
            }
            // As the outlier detector does after ejecting: a hashing pick may touch none of the
            // ejected hosts, and the panic decision must not wait until one does.
            e.state.note_health_change();
            let what = format!("{policy}: {healthy}/10 healthy, threshold {threshold:?}");
            let mut picked_unhealthy = false;
            for key in 0..400u64 {
                let pick = b
                    .pick(Some(key.wrapping_mul(0x9E37_79B9_7F4A_7C15)), &[])
                    .expect(&what);
                assert_eq!(pick.panic, panic, "{what}");
                picked_unhealthy |= !pick.endpoint.is_healthy();
            }
            assert_eq!(
                picked_unhealthy, panic,
                "{what}: panic balances over all hosts"
            );
            let counted = e.state.counters.total(|c| &c.lb_healthy_panic);
            assert_eq!(
                counted,
                if panic { 400 } else { 0 },
                "{what}: lb_healthy_panic"
            );
        }
    }
}

#[test]
fn priorities_fail_over_by_health_and_overprovisioning() {
    // (P0 hosts ejected of 10, overprovisioning factor, expected share of P0 in percent)
    let cases = [
        (0, None, 100.0),
        (2, None, 100.0), // 80 % · 1.4 = 112 → 100
        (5, None, 70.0),  // 50 % · 1.4 = 70
        (8, None, 28.0),  // 20 % · 1.4 = 28
        (10, None, 0.0),
        (5, Some(200), 100.0),
        (5, Some(100), 50.0),
    ];
    for (ejected, factor, p0_share) in cases {
        for (policy, extra) in policies() {
            let policy_json = match factor {
                Some(f) => json!({ "overprovisioning_factor": f }),
                None => json!({}),
            };
            let e = entry(
                policy,
                extra,
                policy_json,
                &[locality(0, "a", 10), locality(1, "a", 10)],
            );
            let b = Balancer::with_seed(&e, 5);
            for h in hosts(&e).iter().take(ejected) {
                eject(h);
            }
            let n = 20_000;
            let counts = count(&b, n);
            let what = format!("{policy}: {ejected} ejected, factor {factor:?}");
            assert_near(
                share(&counts, "10.0."),
                n as f64 * p0_share / 100.0,
                n as f64 * 0.02,
                &what,
            );
            assert_eq!(share(&counts, "10.0.") + share(&counts, "10.1."), n);
        }
    }
}

#[test]
fn priority_loads_follow_health_changes_both_ways() {
    let e = entry(
        "ROUND_ROBIN",
        json!({}),
        json!({}),
        &[locality(0, "a", 2), locality(1, "a", 2)],
    );
    let b = Balancer::with_seed(&e, 5);
    assert_eq!(share(&count(&b, 100), "10.0."), 100);
    let p0 = &hosts(&e)[..2];
    p0.iter().for_each(|h| eject(h));
    assert_eq!(
        share(&count(&b, 100), "10.1."),
        100,
        "all of P0 down: P1 takes over"
    );
    // P0 is no longer looked at, so its recovery is signalled through the cluster state, as the
    // outlier detector and health checker do.
    p0.iter().for_each(|h| uneject(h));
    e.state.note_health_change();
    assert_eq!(share(&count(&b, 100), "10.0."), 100, "P0 back");
}

#[test]
fn degraded_hosts_take_what_healthy_ones_cannot() {
    // 4 healthy + 6 degraded: healthy availability 56 %, degraded 84 % → 56 / 44.
    let l = locality(0, "a", 10).with_status(6, "DEGRADED");
    for (policy, extra) in policies() {
        let e = entry(policy, extra, json!({}), std::slice::from_ref(&l));
        let b = Balancer::with_seed(&e, 6);
        let n = 20_000;
        let counts = count(&b, n);
        let degraded: usize = (1..=6)
            .map(|i| counts.get(&format!("10.0.97.{i}")).copied().unwrap_or(0))
            .sum();
        assert_near(degraded, n as f64 * 0.44, n as f64 * 0.02, policy);
    }
    // All healthy but one degraded: the degraded host gets nothing.
    let e = entry(
        "ROUND_ROBIN",
        json!({}),
        json!({}),
        &[locality(0, "a", 4).with_status(1, "DEGRADED")],
    );
    let counts = count(&Balancer::with_seed(&e, 6), 400);
    assert!(!counts.contains_key("10.0.97.1"), "{counts:?}");
}

#[test]
fn locality_weights_split_traffic_then_hosts_share_it() {
    let extra = json!({ "common_lb_config": { "locality_weighted_lb_config": {} } });
    let l = [
        locality(0, "a", 2).with_weight(1),
        locality(0, "b", 2).with_weight(3),
        locality(0, "c", 2), // no weight: no traffic
    ];
    for (policy, _) in policies().into_iter().take(3) {
        let e = entry(policy, extra.clone(), json!({}), &l);
        let b = Balancer::with_seed(&e, 2);
        let n = 8000;
        let counts = count(&b, n);
        assert_near(
            share(&counts, "10.0.97."),
            n as f64 * 0.25,
            n as f64 * 0.02,
            policy,
        );
        assert_near(
            share(&counts, "10.0.98."),
            n as f64 * 0.75,
            n as f64 * 0.02,
            policy,
        );
        assert_eq!(
            share(&counts, "10.0.99."),
            0,
            "{policy}: unweighted locality"
        );
        // Half of b down: its weight becomes 3 · min(1, 1.4 · 1/2) = 2.1 → a gets 1/3.1.
        eject(&host(&e, "10.0.98.1"));
        let counts = count(&b, n);
        assert_near(
            share(&counts, "10.0.97."),
            n as f64 / 3.1,
            n as f64 * 0.02,
            policy,
        );
        assert_eq!(counts.get("10.0.98.1"), None);
    }
    // Without locality_weighted_lb_config, localities are flattened (Envoy ignores the weights).
    let e = entry("ROUND_ROBIN", json!({}), json!({}), &l);
    let counts = count(&Balancer::with_seed(&e, 2), 600);
    assert!(counts.values().all(|c| *c == 100), "{counts:?}");
}

#[test]
fn locality_weights_shape_hash_rings_too() {
    let extra = json!({ "common_lb_config": { "locality_weighted_lb_config": {} } });
    let l = [
        locality(0, "a", 2).with_weight(1),
        locality(0, "b", 2).with_weight(3),
    ];
    for policy in ["RING_HASH", "MAGLEV"] {
        let e = entry(policy, extra.clone(), json!({}), &l);
        let counts = count(&Balancer::with_seed(&e, 2), 8000);
        assert_near(share(&counts, "10.0.98."), 6000.0, 400.0, policy);
    }
}

#[test]
fn hosts_awaiting_their_first_check_can_be_excluded() {
    // 6 of 10 hosts new and pending their first health check.
    for (ignore, panic) in [(false, true), (true, false)] {
        let extra = json!({ "common_lb_config": { "ignore_new_hosts_until_first_hc": ignore } });
        let e = entry("ROUND_ROBIN", extra, json!({}), &[locality(0, "a", 10)]);
        for h in hosts(&e).iter().take(6) {
            h.set_flags(HealthFlags::FAILED_ACTIVE_HC | HealthFlags::PENDING_ACTIVE_HC);
        }
        e.state.note_health_change();
        let b = Balancer::with_seed(&e, 1);
        for _ in 0..100 {
            let pick = b.pick(None, &[]).expect("host");
            assert_eq!(
                pick.panic, panic,
                "ignore_new_hosts_until_first_hc: {ignore}"
            );
            if ignore {
                assert!(pick.endpoint.is_healthy(), "pending hosts are never picked");
            }
        }
    }
}

#[test]
fn config_updates_keep_the_cluster_state() {
    let tables = outrider_tables::Tables::new();
    let c = cluster("ROUND_ROBIN", json!({}), json!({}), &[locality(0, "a", 2)]);
    tables.apply([outrider_tables::Change::UpsertCluster(c)]);
    let before = std::sync::Arc::clone(tables.load().cluster("c").expect("c"));
    let b = Balancer::with_seed(&before, 1);
    assert!(b.is_current(&before));
    let c = cluster("RANDOM", json!({}), json!({}), &[locality(0, "a", 3)]);
    tables.apply([outrider_tables::Change::UpsertCluster(c)]);
    let after = std::sync::Arc::clone(tables.load().cluster("c").expect("c"));
    assert!(std::sync::Arc::ptr_eq(&before.state, &after.state));
    assert!(!b.is_current(&after), "a new entry means a new balancer");
}
