//! `run` against real upstream servers through `Tables`, on a current-thread runtime like the
//! control thread's: events on the bus, the host's and the cluster's health-check state, the
//! first round, un-ejection of outliers, and sessions following hosts and config changes. Each
//! check is held by the upstream until the test answers it, so every step is exact.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3 as cluster_pb;
use outrider_model::Cluster;
use outrider_tables::{Change, EndpointState, HealthCheckResult, HealthFlags, Tables};
use outrider_upstream::events::{
    EjectionAction, EventBus, HealthCheckFailureType, HealthCheckerType, HealthTransition,
    HostEvent,
};
use outrider_upstream_server::{HealthAnswer, UpstreamConfig, UpstreamServer};
use tokio::sync::broadcast;

/// A STATIC cluster `c` over `hosts` (`extra_endpoint`: YAML added to each lb_endpoint).
fn cluster(health_checks: &str, hosts: &[SocketAddr], extra_endpoint: &str) -> Arc<Cluster> {
    let lb: Vec<String> = hosts
        .iter()
        .map(|a| {
            format!(
                "{{ endpoint: {{ address: {{ socket_address: {{ address: '{}', port_value: {} }} }} {extra_endpoint} }} }}",
                a.ip(),
                a.port()
            )
        })
        .collect();
    let yaml = format!(
        "name: c
type: STATIC
outlier_detection: {{}}
load_assignment: {{ cluster_name: c, endpoints: [{{ lb_endpoints: [{}] }}] }}
{health_checks}",
        lb.join(", ")
    );
    let proto: cluster_pb::Cluster = outrider_envoy_json::from_yaml_str(&yaml).expect("YAML");
    Arc::new(Cluster::from_proto(&proto).expect("valid cluster"))
}

const HTTP_CHECK: &str = "health_checks:
- timeout: 30s
  interval: 0.05s
  no_traffic_interval: 0.05s
  unhealthy_threshold: 2
  healthy_threshold: 2
  http_health_check: { path: /healthz }";

async fn upstream(name: &str) -> UpstreamServer {
    let server = UpstreamServer::start_local(UpstreamConfig::new(name))
        .await
        .expect("upstream");
    server.set_health(None);
    server
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Answers the held check with `answer`; returns once the next one is held (so the result is
/// applied) with the HTTP checker's events published meanwhile.
async fn step(
    server: &UpstreamServer,
    answer: HealthAnswer,
    events: &mut broadcast::Receiver<Arc<HostEvent>>,
) -> Vec<HealthTransition> {
    let answered = server.health_checks_answered();
    wait_until("a held check", || server.health_checks_waiting() == 1).await;
    server.queue_health([answer]);
    wait_until("the next check", || {
        server.health_checks_answered() == answered + 1 && server.health_checks_waiting() == 1
    })
    .await;
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let HostEvent::Health(health) = &*event
            && health.checker == HealthCheckerType::Http
        {
            assert_eq!(health.cluster_name, "c");
            assert_eq!(health.address, server.addr());
            seen.push(health.transition.clone());
        }
    }
    seen
}

fn host(tables: &Tables, addr: SocketAddr) -> Arc<EndpointState> {
    let snapshot = tables.load();
    let entry = snapshot.cluster("c").expect("cluster c");
    entry
        .endpoints
        .endpoints()
        .find(|e| e.address.ip() == Some(addr))
        .cloned()
        .expect("host")
}

#[tokio::test(flavor = "current_thread")]
async fn each_check_updates_flags_state_stats_and_events() {
    let a = upstream("a").await;
    let tables = Arc::new(Tables::new());
    let bus = EventBus::default();
    let mut events = bus.subscribe();
    tables.apply([Change::UpsertCluster(cluster(HTTP_CHECK, &[a.addr()], ""))]);
    let state = tables.load().cluster("c").expect("c").state.clone();
    let checking = tokio::spawn(outrider_health_check::run(tables.clone(), bus.clone()));
    let endpoint = host(&tables, a.addr());
    let flags = || endpoint.health_flags();
    let stats = &state.health_check;

    wait_until("the first check", || a.health_checks_waiting() == 1).await;
    assert_eq!(
        flags(),
        HealthFlags::FAILED_ACTIVE_HC | HealthFlags::PENDING_ACTIVE_HC
    );
    assert!(!stats.first_round_done());
    assert_eq!(endpoint.health_check.last_result(), None);

    // First check passes: healthy at once, and the cluster's first round is done.
    let seen = step(&a, HealthAnswer::Status(200), &mut events).await;
    assert_eq!(seen, [HealthTransition::AddHealthy { first_check: true }]);
    assert!(flags().is_empty());
    assert!(stats.first_round_done());
    assert_eq!(stats.success.load(Relaxed), 1);
    assert_eq!(stats.healthy.load(Relaxed), 1);
    assert_eq!(
        endpoint.health_check.last_result(),
        Some(HealthCheckResult::Passed)
    );

    // Network failures: reported one by one, then the ejection.
    let seen = step(&a, HealthAnswer::Reset, &mut events).await;
    assert_eq!(
        seen,
        [HealthTransition::Failure {
            failure_type: HealthCheckFailureType::Network,
            first_check: false
        }]
    );
    assert!(flags().is_empty());
    let seen = step(&a, HealthAnswer::Reset, &mut events).await;
    assert_eq!(
        seen,
        [HealthTransition::EjectUnhealthy {
            failure_type: HealthCheckFailureType::Network
        }]
    );
    assert_eq!(flags(), HealthFlags::FAILED_ACTIVE_HC);
    assert_eq!(stats.healthy.load(Relaxed), 0);
    assert_eq!(stats.network_failure.load(Relaxed), 2);
    assert_eq!(endpoint.health_check.consecutive_failures.load(Relaxed), 2);
    let reason = endpoint
        .health_check
        .last_failure_reason()
        .expect("a reason");
    assert!(reason.starts_with("request"), "{reason}");

    // A failure of a failed host is reported; an unexpected status is an active failure.
    let seen = step(&a, HealthAnswer::Status(500), &mut events).await;
    assert_eq!(
        seen,
        [HealthTransition::Failure {
            failure_type: HealthCheckFailureType::Active,
            first_check: false
        }]
    );
    assert_eq!(
        endpoint
            .health_check
            .last_failure_reason()
            .as_deref()
            .map(String::as_str),
        Some("status 500")
    );
    assert_eq!(stats.failure.load(Relaxed), 3);
    assert_eq!(stats.network_failure.load(Relaxed), 2);

    // healthy_threshold 2.
    assert!(
        step(&a, HealthAnswer::Status(200), &mut events)
            .await
            .is_empty()
    );
    assert_eq!(flags(), HealthFlags::FAILED_ACTIVE_HC);
    let seen = step(&a, HealthAnswer::Status(200), &mut events).await;
    assert_eq!(seen, [HealthTransition::AddHealthy { first_check: false }]);
    assert!(flags().is_empty());

    // Degraded and back.
    let seen = step(&a, HealthAnswer::Degraded, &mut events).await;
    assert_eq!(seen, [HealthTransition::Degraded]);
    assert_eq!(flags(), HealthFlags::DEGRADED_ACTIVE_HC);
    assert_eq!(stats.degraded.load(Relaxed), 1);
    let seen = step(&a, HealthAnswer::Status(200), &mut events).await;
    assert_eq!(seen, [HealthTransition::NoLongerDegraded]);
    assert_eq!(stats.degraded.load(Relaxed), 0);

    // A passing check un-ejects an outlier (successful_active_health_check_uneject_host).
    assert!(endpoint.outlier.begin_ejection(0));
    endpoint.set_flags(HealthFlags::FAILED_OUTLIER_CHECK);
    let epoch = state.health_epoch();
    let mut outlier_events = bus.subscribe();
    step(&a, HealthAnswer::Status(200), &mut events).await;
    assert!(flags().is_empty());
    assert!(state.health_epoch() > epoch);
    let unejected = std::iter::from_fn(|| outlier_events.try_recv().ok())
        .any(|e| matches!(&*e, HostEvent::Outlier(o) if o.action == EjectionAction::Uneject));
    assert!(unejected);
    assert!(stats.attempt.load(Relaxed) >= 9);
    checking.abort();
}

#[tokio::test(flavor = "current_thread")]
async fn sessions_follow_hosts_and_config() {
    let (a, b, off) = (
        upstream("a").await,
        upstream("b").await,
        upstream("off").await,
    );
    for server in [&a, &b, &off] {
        server.set_health(Some(HealthAnswer::Status(200)));
    }
    let tables = Arc::new(Tables::new());
    let bus = EventBus::default();
    tables.apply([Change::UpsertCluster(cluster(
        HTTP_CHECK,
        &[a.addr(), b.addr()],
        "",
    ))]);
    let checking = tokio::spawn(outrider_health_check::run(tables.clone(), bus.clone()));
    let state = tables.load().cluster("c").expect("c").state.clone();
    wait_until("the first round", || state.health_check.first_round_done()).await;
    assert!(host(&tables, a.addr()).is_healthy() && host(&tables, b.addr()).is_healthy());
    let seen = a.last_health_request().expect("a check");
    assert_eq!(
        seen.authority.as_deref(),
        Some("c"),
        "Host: the cluster name"
    );

    // b leaves: while a is checked five more times, b is checked at most once more (in flight).
    tables.apply([Change::UpsertCluster(cluster(HTTP_CHECK, &[a.addr()], ""))]);
    let (a_before, b_before) = (a.health_checks_answered(), b.health_checks_answered());
    wait_until("more checks of a", || {
        a.health_checks_answered() >= a_before + 5
    })
    .await;
    assert!(b.health_checks_answered() <= b_before + 1);

    // Other health checks: sessions restart with the new config.
    let other_host = HTTP_CHECK.replace(
        "{ path: /healthz }",
        "{ path: /healthz, host: checked.example }",
    );
    tables.apply([Change::UpsertCluster(cluster(&other_host, &[a.addr()], ""))]);
    wait_until("checks with the configured host", || {
        a.last_health_request()
            .is_some_and(|r| r.authority.as_deref() == Some("checked.example"))
    })
    .await;

    // A host with active health checks disabled is never checked (a is the clock).
    tables.apply([Change::UpsertCluster(cluster(
        HTTP_CHECK,
        &[off.addr()],
        ", health_check_config: { disable_active_health_check: true }",
    ))]);
    tables.apply([Change::UpsertCluster(cluster_named(
        "clock",
        HTTP_CHECK,
        &[a.addr()],
    ))]);
    let a_before = a.health_checks_answered();
    wait_until("more checks of a", || {
        a.health_checks_answered() >= a_before + 5
    })
    .await;
    assert_eq!(off.health_checks_answered(), 0);
    assert!(host(&tables, off.addr()).is_healthy());

    // Health checks removed: no more checks (b, in a cluster of its own, is the clock).
    tables.apply([Change::UpsertCluster(cluster("", &[a.addr()], ""))]);
    tables.apply([Change::RemoveCluster("clock".into())]);
    tables.apply([Change::UpsertCluster(cluster_named(
        "clock",
        HTTP_CHECK,
        &[b.addr()],
    ))]);
    let (a_before, b_before) = (a.health_checks_answered(), b.health_checks_answered());
    wait_until("more checks of b", || {
        b.health_checks_answered() >= b_before + 5
    })
    .await;
    assert!(a.health_checks_answered() <= a_before + 1);
    assert!(host(&tables, a.addr()).is_healthy());
    checking.abort();
}

/// A STATIC cluster `name` over `hosts`, without outlier detection.
fn cluster_named(name: &str, health_checks: &str, hosts: &[SocketAddr]) -> Arc<Cluster> {
    let lb: Vec<String> = hosts
        .iter()
        .map(|a| {
            format!(
                "{{ endpoint: {{ address: {{ socket_address: {{ address: '{}', port_value: {} }} }} }} }}",
                a.ip(),
                a.port()
            )
        })
        .collect();
    let yaml = format!(
        "name: {name}
type: STATIC
load_assignment: {{ cluster_name: {name}, endpoints: [{{ lb_endpoints: [{}] }}] }}
{health_checks}",
        lb.join(", ")
    );
    let proto: cluster_pb::Cluster = outrider_envoy_json::from_yaml_str(&yaml).expect("YAML");
    Arc::new(Cluster::from_proto(&proto).expect("valid cluster"))
}
