//! `outlier::run` on real tables: the data plane's crossing wakes the detector at once (no
//! waiting for the interval), the interval un-ejects, settings changes restart a cluster's
//! detector while hosts keep their state, and removing outlier detection puts hosts back.

mod support;

use std::sync::Arc;
use std::time::Duration;

use outrider_tables::{Change, HealthFlags, Tables};
use outrider_upstream::events::{EjectionAction, EjectionType, EventBus, HostEvent, OutlierEvent};
use outrider_upstream::outlier::{self, Outcome};
use serde_json::{Value, json};
use support::{cluster, locality};
use tokio::sync::broadcast::Receiver;

fn publish(tables: &Tables, od: Option<Value>) {
    let extra = match od {
        Some(od) => json!({ "outlier_detection": od }),
        None => json!({}),
    };
    tables.apply([Change::UpsertCluster(cluster(
        "ROUND_ROBIN",
        extra,
        json!({}),
        &[locality(0, "a", 2)],
    ))]);
}

/// The next outlier event, waiting up to 10 s.
async fn next_event(events: &mut Receiver<Arc<HostEvent>>) -> OutlierEvent {
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event within 10 s")
        .expect("the bus is open");
    match &*event {
        HostEvent::Outlier(e) => e.clone(),
        other => panic!("unexpected event {other:?}"),
    }
}

fn fail(tables: &Tables, times: usize) {
    let snapshot = tables.load();
    let entry = snapshot.cluster("c").expect("cluster c");
    let host = entry.endpoints.endpoints().next().expect("a host");
    for _ in 0..times {
        outlier::record(entry, host, Outcome::Response(503));
    }
}

fn first_host_ejected(tables: &Tables) -> bool {
    let snapshot = tables.load();
    let entry = snapshot.cluster("c").expect("cluster c");
    let host = entry.endpoints.endpoints().next().expect("a host");
    assert_eq!(
        host.health_flags()
            .contains(HealthFlags::FAILED_OUTLIER_CHECK),
        host.outlier.is_ejected()
    );
    host.outlier.is_ejected()
}

async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..1000 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn consecutive_failures_eject_at_once_and_the_interval_brings_the_host_back() {
    let tables = Arc::new(Tables::new());
    let bus = EventBus::default();
    let mut events = bus.subscribe();
    tokio::spawn(outlier::run(tables.clone(), bus.clone()));
    // A one-hour interval: only the data plane's wake-up can eject in time.
    publish(
        &tables,
        Some(json!({ "consecutive_5xx": 3, "interval": "3600s", "max_ejection_percent": 50 })),
    );
    fail(&tables, 3);
    let e = next_event(&mut events).await;
    assert_eq!(
        (e.ejection_type, e.action, e.enforced),
        (EjectionType::Consecutive5xx, EjectionAction::Eject, true)
    );
    assert!(first_host_ejected(&tables));

    // New settings (a short interval and ejection time) restart the cluster's detector; the
    // host stays ejected through the update and comes back at an interval.
    publish(
        &tables,
        Some(
            json!({ "consecutive_5xx": 3, "interval": "0.05s", "base_ejection_time": "0.1s",
                     "max_ejection_percent": 50 }),
        ),
    );
    assert!(first_host_ejected(&tables), "the update keeps the ejection");
    let e = next_event(&mut events).await;
    assert_eq!(
        (e.ejection_type, e.action, e.num_ejections),
        (EjectionType::Consecutive5xx, EjectionAction::Uneject, 1)
    );
    assert!(!first_host_ejected(&tables));

    // Ejected again: the second ejection counts.
    fail(&tables, 3);
    let e = next_event(&mut events).await;
    assert_eq!((e.action, e.num_ejections), (EjectionAction::Eject, 2));
}

#[tokio::test]
async fn removing_outlier_detection_puts_hosts_back() {
    let tables = Arc::new(Tables::new());
    let bus = EventBus::default();
    let mut events = bus.subscribe();
    tokio::spawn(outlier::run(tables.clone(), bus.clone()));
    publish(
        &tables,
        Some(json!({ "consecutive_5xx": 1, "max_ejection_percent": 50 })),
    );
    fail(&tables, 1);
    next_event(&mut events).await;
    assert!(first_host_ejected(&tables));
    publish(&tables, None);
    assert!(
        eventually(|| {
            let snapshot = tables.load();
            let entry = snapshot.cluster("c").expect("cluster c");
            entry
                .endpoints
                .endpoints()
                .all(|h| h.is_healthy() && !h.outlier.is_ejected())
                && entry
                    .state
                    .outlier
                    .stats
                    .ejections_active
                    .load(std::sync::atomic::Ordering::Relaxed)
                    == 0
        })
        .await,
        "hosts back in service once the cluster has no outlier detection"
    );
}
