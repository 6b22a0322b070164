//! The reporters against a real conformance server over real sockets: host events arrive with
//! every field, in batches, and survive a server restart; losses are counted; load reports carry
//! exactly the requests the endpoints' counters recorded since the previous report.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::config::cluster::v3 as cluster_pb;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, Node, SocketAddress, address};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterStats;
use envoy_types::pb::envoy::data::cluster::v3 as outlier_pb;
use envoy_types::pb::envoy::data::core::v3 as health_pb;
use envoy_types::pb::google::protobuf::{Timestamp, UInt64Value};
use outrider_model::{Cluster, EndpointAddress};
use outrider_report::{GrpcTarget, ReportConfig, ReportStats, Reporter};
use outrider_tables::{Change, EndpointState, Tables};
use outrider_upstream::events::{
    EjectionAction, EjectionDetail, EjectionType, EventBus, HealthCheckFailureType,
    HealthCheckerType, HealthEvent, HealthTransition, HostEvent, OutlierEvent,
};
use outrider_xds::Backoff;
use xds_conformance::{Behavior, ManagementServer, ServerOptions};

const WAIT: Duration = Duration::from_secs(10);

/// A static plaintext HTTP/2 cluster with these endpoints (one locality per `(zone, addr)`).
fn static_cluster(name: &str, endpoints: &[(&str, std::net::SocketAddr)]) -> Change {
    let localities: Vec<String> = endpoints
        .iter()
        .map(|(zone, addr)| {
            format!(
                "{{ locality: {{ zone: {zone} }}, lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: '{}', port_value: {} }} }} }} }}] }}",
                addr.ip(),
                addr.port()
            )
        })
        .collect();
    let yaml = format!(
        "name: {name}\ntype: STATIC\nconnect_timeout: 1s\nhttp2_protocol_options: {{}}\nload_assignment: {{ cluster_name: {name}, endpoints: [{}] }}\n",
        localities.join(", ")
    );
    let proto: cluster_pb::Cluster = outrider_envoy_json::from_yaml_str(&yaml).expect("YAML");
    Change::UpsertCluster(Arc::new(Cluster::from_proto(&proto).expect("cluster")))
}

fn node() -> Node {
    Node {
        id: "report-test".into(),
        cluster: "tests".into(),
        ..Node::default()
    }
}

/// Reconnects fast, so a test does not wait out Envoy's 500 ms..30 s.
fn fast_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(10), Duration::from_millis(100))
}

fn start(config: ReportConfig, tables: &Arc<Tables>, bus: &EventBus) -> Arc<ReportStats> {
    let reporter = Reporter::with_backoff(config, tables.clone(), bus, node(), fast_backoff());
    let stats = reporter.stats();
    tokio::spawn(reporter.run());
    stats
}

/// Waits (checking every 10 ms) until `condition` holds; false after `WAIT`.
async fn eventually(condition: impl FnMut() -> bool) -> bool {
    eventually_within(WAIT, condition).await
}

/// [`eventually`] with its own deadline.
async fn eventually_within(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

fn stat(stats: &ReportStats, name: &str) -> u64 {
    stats.value(name).expect("known stat")
}

/// 2024-01-02T03:04:05.678Z
fn time() -> SystemTime {
    UNIX_EPOCH + Duration::new(1_704_164_645, 678_000_000)
}

fn timestamp() -> Option<Timestamp> {
    Some(Timestamp {
        seconds: 1_704_164_645,
        nanos: 678_000_000,
    })
}

fn outlier(port: u16) -> HostEvent {
    HostEvent::Outlier(OutlierEvent {
        ejection_type: EjectionType::SuccessRate,
        action: EjectionAction::Eject,
        cluster_name: "backend".into(),
        address: ([10, 0, 0, 7], port).into(),
        num_ejections: 2,
        enforced: true,
        timestamp: time(),
        secs_since_last_action: Some(31),
        detail: Some(EjectionDetail::SuccessRate {
            host_success_rate: 40,
            cluster_average_success_rate: 95,
            cluster_success_rate_ejection_threshold: 60,
        }),
    })
}

fn ports(events: &[outlier_pb::OutlierDetectionEvent]) -> Vec<String> {
    events.iter().map(|e| e.upstream_url.clone()).collect()
}

fn urls(range: std::ops::RangeInclusive<u16>) -> Vec<String> {
    range.map(|p| format!("tcp://10.0.0.7:{p}")).collect()
}

#[tokio::test(flavor = "current_thread")]
async fn host_events_reach_the_server_with_every_field_batched_and_across_a_restart() {
    let server = ManagementServer::start(ServerOptions::default())
        .await
        .expect("server");
    let addr = server.addr();
    let tables = Arc::new(Tables::new());
    tables.apply([static_cluster("events", &[("z", addr)])]);
    let bus = EventBus::default();
    let config = ReportConfig {
        event_service: Some(GrpcTarget::new("events")),
        ..ReportConfig::default()
    };
    let stats = start(config, &tables, &bus);

    // The stream opens with the node, before any event.
    let first = server
        .wait_for_event_request(|_| true, WAIT)
        .await
        .expect("the stream opened");
    let identifier = first.request.identifier.expect("identifier first");
    assert_eq!(identifier.node, Some(node()));
    assert!(first.request.events.is_empty());

    bus.publish(outlier(8080));
    bus.publish(HostEvent::Health(HealthEvent {
        checker: HealthCheckerType::Http,
        cluster_name: "backend".into(),
        address: ([10, 0, 0, 8], 9090).into(),
        transition: HealthTransition::EjectUnhealthy {
            failure_type: HealthCheckFailureType::Active,
        },
        timestamp: time(),
    }));
    let events = server.wait_for_events(2, WAIT).await.expect("two events");
    assert_eq!(events.len(), 2);
    assert_eq!(
        server.outlier_events(),
        [outlier_pb::OutlierDetectionEvent {
            r#type: outlier_pb::OutlierEjectionType::SuccessRate as i32,
            timestamp: timestamp(),
            secs_since_last_action: Some(UInt64Value { value: 31 }),
            cluster_name: "backend".into(),
            upstream_url: "tcp://10.0.0.7:8080".into(),
            action: outlier_pb::Action::Eject as i32,
            num_ejections: 2,
            enforced: true,
            event: Some(
                outlier_pb::outlier_detection_event::Event::EjectSuccessRateEvent(
                    outlier_pb::OutlierEjectSuccessRate {
                        host_success_rate: 40,
                        cluster_average_success_rate: 95,
                        cluster_success_rate_ejection_threshold: 60,
                    }
                )
            ),
        }]
    );
    assert_eq!(
        server.health_check_events(),
        [health_pb::HealthCheckEvent {
            health_checker_type: health_pb::HealthCheckerType::Http as i32,
            host: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: "10.0.0.8".into(),
                    port_specifier: Some(PortSpecifier::PortValue(9090)),
                    ..SocketAddress::default()
                })),
            }),
            cluster_name: "backend".into(),
            timestamp: timestamp(),
            metadata: None,
            locality: None,
            event: Some(health_pb::health_check_event::Event::EjectUnhealthyEvent(
                health_pb::HealthCheckEjectUnhealthy {
                    failure_type: health_pb::HealthCheckFailureType::Active as i32,
                    http_status_code: 0,
                }
            )),
        }]
    );
    // Later messages carry events only.
    let requests = server.event_requests();
    assert!(requests[1..].iter().all(|r| r.request.identifier.is_none()));

    // A burst goes out in one message (the reporter runs only once the burst is published).
    let before = server.event_requests().len();
    for port in 1..=300 {
        bus.publish(outlier(port));
    }
    server.wait_for_events(302, WAIT).await.expect("the burst");
    assert_eq!(server.event_requests().len(), before + 1);
    // Counted once the transport has taken them (the server had them first).
    assert!(
        eventually(|| stat(&stats, "event_reporting.events_sent") == 302).await,
        "sent: {}",
        stat(&stats, "event_reporting.events_sent")
    );

    // The server goes away: events published meanwhile wait, and arrive once it is back (on
    // the same port), on a new stream that starts with the node again.
    server.shutdown().await;
    assert!(
        eventually(|| stat(&stats, "event_reporting.connected_state") == 0).await,
        "the reporter never noticed the server left"
    );
    for port in 401..=403 {
        bus.publish(outlier(port));
    }
    let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
    let server = ManagementServer::start_on(listener, ServerOptions::default()).expect("restart");
    server
        .wait_for_events(3, WAIT)
        .await
        .expect("buffered events");
    assert_eq!(ports(&server.outlier_events()), urls(401..=403));
    let first = &server.event_requests()[0];
    assert_eq!(
        first
            .request
            .identifier
            .as_ref()
            .and_then(|i| i.node.clone()),
        Some(node())
    );
    assert_eq!(stat(&stats, "event_reporting.events_dropped"), 0);
    assert!(stat(&stats, "event_reporting.stream_errors") >= 1);
}

#[tokio::test(flavor = "current_thread")]
async fn events_beyond_the_buffer_or_the_bus_are_dropped_and_counted() {
    // Nothing listens yet: the reporter buffers.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address");
    let tables = Arc::new(Tables::new());
    tables.apply([static_cluster("events", &[("z", addr)])]);
    let bus = EventBus::default();
    let config = ReportConfig {
        event_service: Some(GrpcTarget::new("events")),
        ..ReportConfig::default()
    };
    let stats = start(config, &tables, &bus);
    let capacity = outrider_report::EVENT_QUEUE_CAPACITY as u16;
    for port in 1..=capacity + 5 {
        bus.publish(outlier(port));
    }
    assert!(
        eventually(|| stat(&stats, "event_reporting.events_dropped") == 5).await,
        "dropped: {}",
        stat(&stats, "event_reporting.events_dropped")
    );
    // The server appears: the newest `capacity` events arrive, in order.
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let server = ManagementServer::start_on(listener, ServerOptions::default()).expect("server");
    server
        .wait_for_events(usize::from(capacity), WAIT)
        .await
        .expect("the buffered events");
    assert_eq!(ports(&server.outlier_events()), urls(6..=capacity + 5));

    // A reporter that falls behind the bus loses the oldest events, counted too.
    let small = EventBus::new(16);
    let config = ReportConfig {
        event_service: Some(GrpcTarget::new("events")),
        ..ReportConfig::default()
    };
    let lagging = start(config, &tables, &small);
    for port in 1..=100 {
        small.publish(outlier(port));
    }
    assert!(
        eventually(|| stat(&lagging, "event_reporting.events_dropped") == 84).await,
        "dropped: {}",
        stat(&lagging, "event_reporting.events_dropped")
    );
}

#[tokio::test(flavor = "current_thread")]
async fn events_wait_while_the_server_refuses_the_stream_and_flow_without_headers() {
    // A grpc-go server without the service: every stream is refused (UNIMPLEMENTED) before its
    // handler runs, so the events handed to it were never read.
    let server = ManagementServer::start(ServerOptions::default())
        .await
        .expect("server");
    server.set_behavior(Behavior {
        refuse_event_streams: true,
        ..Behavior::go_control_plane()
    });
    let tables = Arc::new(Tables::new());
    tables.apply([static_cluster("events", &[("z", server.addr())])]);
    let bus = EventBus::default();
    let config = ReportConfig {
        event_service: Some(GrpcTarget::new("events")),
        ..ReportConfig::default()
    };
    let stats = start(config, &tables, &bus);
    for port in 1..=3 {
        bus.publish(outlier(port));
    }
    assert!(
        eventually(|| stat(&stats, "event_reporting.stream_errors") >= 2).await,
        "the refused stream was retried"
    );
    assert_eq!(stat(&stats, "event_reporting.events_sent"), 0);
    assert_eq!(stat(&stats, "event_reporting.events_dropped"), 0);

    // The service appears, as grpc-go serves it: no response headers until the end. The
    // events that waited arrive, then a new one on the same stream.
    server.update_behavior(|b| b.refuse_event_streams = false);
    server
        .wait_for_events(3, WAIT)
        .await
        .expect("the events kept while refused");
    assert_eq!(ports(&server.outlier_events()), urls(1..=3));
    bus.publish(outlier(4));
    server.wait_for_events(4, WAIT).await.expect("a new event");
    assert_eq!(
        server.event_streams_opened(),
        1,
        "one stream, never answered"
    );
    // Up 5 s without a refusal: the events count as sent.
    assert!(
        eventually_within(Duration::from_secs(10), || stat(
            &stats,
            "event_reporting.events_sent"
        ) == 4)
        .await,
        "sent: {}",
        stat(&stats, "event_reporting.events_sent")
    );
}

fn endpoint(tables: &Tables, cluster: &str, addr: std::net::SocketAddr) -> Arc<EndpointState> {
    tables
        .load()
        .cluster(cluster)
        .expect("cluster")
        .endpoints
        .find(&EndpointAddress::Ip(addr))
        .expect("endpoint")
        .clone()
}

/// `n` completed requests of which `errors` failed, as the data plane records them.
fn complete(endpoint: &EndpointState, n: u64, errors: u64) {
    endpoint.rq_total.fetch_add(n, Relaxed);
    endpoint.rq_error.fetch_add(errors, Relaxed);
    endpoint.rq_success.fetch_add(n - errors, Relaxed);
}

/// (zone, successful, errors, in progress, issued) of a locality.
type LocalityTotals = (String, u64, u64, u64, u64);
/// (port, successful, errors, in progress, issued) of an endpoint.
type EndpointTotals = (u32, u64, u64, u64, u64);

fn totals(stats: &ClusterStats) -> (Vec<LocalityTotals>, Vec<EndpointTotals>) {
    let localities = stats
        .upstream_locality_stats
        .iter()
        .map(|l| {
            (
                l.locality.clone().unwrap_or_default().zone,
                l.total_successful_requests,
                l.total_error_requests,
                l.total_requests_in_progress,
                l.total_issued_requests,
            )
        })
        .collect();
    let endpoints = stats
        .upstream_locality_stats
        .iter()
        .flat_map(|l| l.upstream_endpoint_stats.iter())
        .map(|e| {
            let port = match e.address.as_ref().and_then(|a| a.address.as_ref()) {
                Some(address::Address::SocketAddress(s)) => match s.port_specifier {
                    Some(PortSpecifier::PortValue(p)) => p,
                    _ => 0,
                },
                _ => 0,
            };
            (
                port,
                e.total_successful_requests,
                e.total_error_requests,
                e.total_requests_in_progress,
                e.total_issued_requests,
            )
        })
        .collect();
    (localities, endpoints)
}

#[tokio::test(flavor = "current_thread")]
async fn load_reports_carry_the_deltas_of_the_endpoint_counters() {
    let server = ManagementServer::start(ServerOptions::default())
        .await
        .expect("server");
    let a: std::net::SocketAddr = "10.1.0.1:81".parse().expect("address");
    let b: std::net::SocketAddr = "10.1.0.2:82".parse().expect("address");
    let tables = Arc::new(Tables::new());
    tables.apply([
        static_cluster("lrs", &[("z", server.addr())]),
        static_cluster("backend", &[("za", a), ("zb", b)]),
        static_cluster("other", &[("zo", a)]),
    ]);
    let config = ReportConfig {
        load_stats: Some(GrpcTarget::new("lrs")),
        ..ReportConfig::default()
    };
    let stats = start(config, &tables, &EventBus::default());

    // The first request: the node, with the send-all feature.
    let first = server
        .wait_for_load_report(|_| true, WAIT)
        .await
        .expect("the stream opened");
    let sent_node = first.request.node.expect("node first");
    assert_eq!(sent_node.id, "report-test");
    assert_eq!(
        sent_node.client_features,
        [outrider_report::SUPPORTS_SEND_ALL_CLUSTERS]
    );
    assert!(first.request.cluster_stats.is_empty());

    // Counts from before the server names the cluster are not reported.
    let (ea, eb) = (
        endpoint(&tables, "backend", a),
        endpoint(&tables, "backend", b),
    );
    complete(&ea, 1000, 0);
    server.set_load_reporting(&["backend"], Duration::from_millis(100), false, true);
    let report = server
        .wait_for_load_report(|r| !r.request.cluster_stats.is_empty(), WAIT)
        .await
        .expect("a report");
    assert_eq!(
        report.request.node.as_ref().map(|n| n.id.as_str()),
        Some(node().id.as_str()),
        "the node goes in every request, as Envoy's LRS client sends it"
    );
    let names: Vec<&str> = report
        .request
        .cluster_stats
        .iter()
        .map(|c| c.cluster_name.as_str())
        .collect();
    assert_eq!(names, ["backend"]);
    let interval = report.request.cluster_stats[0]
        .load_report_interval
        .expect("interval");
    assert!(
        interval.seconds > 0 || interval.nanos >= 90_000_000,
        "{interval:?}"
    );

    // Traffic between two reports: exactly those deltas, per locality and endpoint. (The
    // counters move together: the reporter runs on this thread only between awaits.)
    let mark = server.load_reports().len();
    complete(&ea, 5, 2);
    ea.active_requests.store(1, Relaxed);
    complete(&eb, 3, 0);
    let busy = server
        .wait_for_load_report(
            |r| {
                r.request
                    .cluster_stats
                    .iter()
                    .any(|c| !c.upstream_locality_stats.is_empty())
            },
            WAIT,
        )
        .await
        .expect("a report with traffic");
    assert!(server.load_reports().len() > mark);
    assert_eq!(
        totals(&busy.request.cluster_stats[0]),
        (
            vec![("za".into(), 3, 2, 1, 5), ("zb".into(), 3, 0, 0, 3)],
            vec![(81, 3, 2, 1, 5), (82, 3, 0, 0, 3)]
        )
    );
    assert_eq!(busy.request.cluster_stats[0].total_dropped_requests, 0);

    // The next report: nothing new but the request still in progress.
    let after = server.load_reports().len();
    let next = server
        .wait_for_load_reports(after + 1, WAIT)
        .await
        .expect("next report");
    assert_eq!(
        totals(&next[after].request.cluster_stats[0]),
        (vec![("za".into(), 0, 0, 1, 0)], vec![(81, 0, 0, 1, 0)])
    );

    // A new response replaces the cluster list.
    server.set_load_reporting(&["other"], Duration::from_millis(100), false, false);
    let other = server
        .wait_for_load_report(
            |r| {
                r.request
                    .cluster_stats
                    .iter()
                    .any(|c| c.cluster_name == "other")
            },
            WAIT,
        )
        .await
        .expect("a report of the new cluster");
    assert_eq!(other.request.cluster_stats.len(), 1);
    assert!(stat(&stats, "load_reporter.responses") >= 2);

    // The stream drops: the reporter reconnects and starts again with the node.
    server.drop_report_streams();
    let again = server
        .wait_for_load_report(|r| r.stream_id == 2, WAIT)
        .await
        .expect("a second stream");
    assert!(again.request.node.is_some());
    assert!(stat(&stats, "load_reporter.errors") >= 1);
}
