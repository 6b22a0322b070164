//! Reporting to the control plane, end to end: the real binary with a bootstrap whose
//! `cluster_manager` points LRS and the outlier event service at the conformance server, real
//! upstream servers behind it. Load reports add up to the requests the test sent; an upstream
//! that fails is ejected and the server receives the EJECT (and later UNEJECT) events, which
//! the event log also has as Envoy's JSON lines.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::temp_dir;
use common::xds_proxy::{
    XdsProxy, cluster, endpoints, eventually, get, http_listener, http1_client, routes, tally,
};
use envoy_types::pb::envoy::config::core::v3::address;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::data::cluster::v3 as outlier_pb;
use outrider_upstream_server::{UpstreamConfig, UpstreamServer};
use xds_conformance::Snapshot;

const WAIT: Duration = Duration::from_secs(15);

const LOAD_STATS: &str = r#"
cluster_manager:
  load_stats_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{ envoy_grpc: { cluster_name: xds } }]
"#;

fn snapshot(backend_extra: &str, upstreams: &[SocketAddr]) -> Snapshot {
    Snapshot::new("1")
        .with(cluster("backend", backend_extra))
        .with(endpoints("backend", upstreams))
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: backend }",
        ))
}

/// Per endpoint port: (successful, errors, in progress, issued), summed over `reports`.
type Sums = BTreeMap<u32, (u64, u64, u64, u64)>;

fn backend_sums(server: &xds_conformance::ManagementServer) -> Sums {
    let mut sums = Sums::new();
    for report in server.load_reports() {
        let backend = report
            .request
            .cluster_stats
            .iter()
            .filter(|c| c.cluster_name == "backend");
        for locality in backend.flat_map(|c| c.upstream_locality_stats.iter()) {
            for endpoint in &locality.upstream_endpoint_stats {
                let port = match endpoint.address.as_ref().and_then(|a| a.address.as_ref()) {
                    Some(address::Address::SocketAddress(s)) => match s.port_specifier {
                        Some(PortSpecifier::PortValue(port)) => port,
                        _ => 0,
                    },
                    _ => 0,
                };
                let sum = sums.entry(port).or_default();
                sum.0 += endpoint.total_successful_requests;
                sum.1 += endpoint.total_error_requests;
                // A gauge: the last report's value is what matters.
                sum.2 = endpoint.total_requests_in_progress;
                sum.3 += endpoint.total_issued_requests;
            }
        }
    }
    sums
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_reports_add_up_to_the_requests_sent_through_the_proxy() {
    let good = UpstreamServer::start_local(UpstreamConfig::new("good"))
        .await
        .expect("upstream");
    let bad = UpstreamServer::start_local(UpstreamConfig::new("bad").with_fail_ratio(1.0))
        .await
        .expect("upstream");
    let proxy = XdsProxy::start_with_bootstrap(
        "report-lrs",
        snapshot("", &[good.addr(), bad.addr()]),
        &["--concurrency", "1"],
        LOAD_STATS,
    )
    .await;
    let server = &proxy.server;
    server.set_load_reporting(&["backend"], Duration::from_millis(200), false, true);

    // The stream opens with the node and the send-all feature.
    let first = server
        .wait_for_load_report(|r| r.request.node.is_some(), WAIT)
        .await
        .expect("an LRS stream");
    let node = first.request.node.expect("node");
    assert_eq!(node.id, "dataplane-test");
    assert!(
        node.client_features
            .iter()
            .any(|f| f == "envoy.lrs.supports_send_all_clusters"),
        "{:?}",
        node.client_features
    );
    // Reporting has started (the backend is reported, idle) before any traffic.
    server
        .wait_for_load_report(
            |r| {
                r.request
                    .cluster_stats
                    .iter()
                    .any(|c| c.cluster_name == "backend")
            },
            WAIT,
        )
        .await
        .unwrap_or_else(|| panic!("no report of backend; stderr:\n{}", proxy.process.stderr()));

    let base = format!("http://127.0.0.1:{}", proxy.listener_port("ingress").await);
    let client = http1_client();
    let mut answers = Vec::new();
    for _ in 0..20 {
        answers.push(get(&client, &format!("{base}/")).await);
    }
    let served = tally(&answers);
    let ok = answers.iter().filter(|a| a.status == 200).count() as u64;
    let failed = answers.iter().filter(|a| a.status == 503).count() as u64;
    assert_eq!(ok + failed, 20, "{served:?}");
    assert_eq!(served.get("good").copied().unwrap_or(0) as u64, ok);
    assert_eq!(served.get("bad").copied().unwrap_or(0) as u64, failed);

    let (good_port, bad_port) = (u32::from(good.addr().port()), u32::from(bad.addr().port()));
    let complete = eventually(WAIT, || {
        let sums = backend_sums(server);
        sums.values().map(|s| s.3).sum::<u64>() >= 20
    })
    .await;
    assert!(
        complete,
        "reports never added up: {:?}",
        backend_sums(server)
    );
    let sums = backend_sums(server);
    assert_eq!(
        sums.get(&good_port).copied().unwrap_or_default(),
        (ok, 0, 0, ok)
    );
    assert_eq!(
        sums.get(&bad_port).copied().unwrap_or_default(),
        (0, failed, 0, failed)
    );
    // The locality totals agree with the endpoints'.
    let (mut success, mut errors, mut issued) = (0, 0, 0);
    for report in server.load_reports() {
        for cluster in report
            .request
            .cluster_stats
            .iter()
            .filter(|c| c.cluster_name == "backend")
        {
            assert_eq!(cluster.total_dropped_requests, 0);
            for locality in &cluster.upstream_locality_stats {
                success += locality.total_successful_requests;
                errors += locality.total_error_requests;
                issued += locality.total_issued_requests;
            }
        }
    }
    assert_eq!((success, errors, issued), (ok, failed, 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_upstream_is_reported_ejected_and_unejected() {
    let good = UpstreamServer::start_local(UpstreamConfig::new("good"))
        .await
        .expect("upstream");
    let bad = UpstreamServer::start_local(UpstreamConfig::new("bad").with_fail_ratio(1.0))
        .await
        .expect("upstream");
    let log_dir = temp_dir("report-events-log");
    let log = log_dir.join("outlier.log");
    let extra = format!(
        r#"
cluster_manager:
  outlier_detection:
    event_log_path: {}
    event_service:
      grpc_service: {{ envoy_grpc: {{ cluster_name: xds }} }}
"#,
        log.display()
    );
    let started = SystemTime::now();
    let proxy = XdsProxy::start_with_bootstrap(
        "report-events",
        snapshot(
            "outlier_detection: { consecutive_5xx: 3, max_ejection_percent: 50, interval: 1s, base_ejection_time: 1s }",
            &[good.addr(), bad.addr()],
        ),
        &["--concurrency", "1"],
        &extra,
    )
    .await;
    let server = &proxy.server;
    let opened = server
        .wait_for_event_request(|r| r.request.identifier.is_some(), WAIT)
        .await
        .unwrap_or_else(|| panic!("no event stream; stderr:\n{}", proxy.process.stderr()));
    let node = opened
        .request
        .identifier
        .and_then(|i| i.node)
        .expect("node");
    assert_eq!(node.id, "dataplane-test");

    // Requests alternate between the endpoints until the failing one is ejected.
    let base = format!("http://127.0.0.1:{}", proxy.listener_port("ingress").await);
    let client = http1_client();
    let bad_url = format!("tcp://{}", bad.addr());
    let is_ejection = |e: &outlier_pb::OutlierDetectionEvent| {
        e.upstream_url == bad_url && e.action == outlier_pb::Action::Eject as i32 && e.enforced
    };
    for _ in 0..40 {
        if server.outlier_events().iter().any(is_ejection) {
            break;
        }
        get(&client, &format!("{base}/")).await;
    }
    server.wait_for_events(1, WAIT).await.expect("an event");
    let ejection = server
        .outlier_events()
        .into_iter()
        .find(is_ejection)
        .unwrap_or_else(|| {
            panic!(
                "no ejection of {bad_url}: {:?}; stderr:\n{}",
                server.outlier_events(),
                proxy.process.stderr()
            )
        });
    assert_eq!(
        ejection.r#type,
        outlier_pb::OutlierEjectionType::Consecutive5xx as i32
    );
    assert_eq!(ejection.cluster_name, "backend");
    assert_eq!(ejection.num_ejections, 1);
    assert_eq!(ejection.secs_since_last_action, None, "its first action");
    assert_eq!(
        ejection.event,
        Some(
            outlier_pb::outlier_detection_event::Event::EjectConsecutiveEvent(
                outlier_pb::OutlierEjectConsecutive {}
            )
        )
    );
    let at = ejection.timestamp.expect("timestamp");
    let at = UNIX_EPOCH + Duration::new(at.seconds.try_into().expect("after 1970"), 0);
    assert!(
        at + Duration::from_secs(1) >= started && at <= SystemTime::now(),
        "{at:?}"
    );

    // After base_ejection_time (1 s, checked every interval of 1 s) it comes back.
    let unejected = eventually(WAIT, || {
        server
            .outlier_events()
            .iter()
            .any(|e| e.upstream_url == bad_url && e.action == outlier_pb::Action::Uneject as i32)
    })
    .await;
    assert!(unejected, "never unejected: {:?}", server.outlier_events());
    let uneject = server
        .outlier_events()
        .into_iter()
        .find(|e| e.action == outlier_pb::Action::Uneject as i32)
        .expect("uneject");
    assert_eq!(uneject.cluster_name, "backend");
    assert!(uneject.secs_since_last_action.is_some(), "{uneject:?}");
    assert_eq!(uneject.event, None);

    // The event log has both, as Envoy's JSON lines.
    let logged = eventually(WAIT, || {
        std::fs::read_to_string(&log).is_ok_and(|text| text.contains("\"UNEJECT\""))
    })
    .await;
    assert!(logged, "event log: {:?}", std::fs::read_to_string(&log));
    let text = std::fs::read_to_string(&log).expect("event log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let eject = lines
        .iter()
        .find(|l| {
            l["action"] == "EJECT" && l["upstream_url"] == bad_url.as_str() && l["enforced"] == true
        })
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(eject["type"], "CONSECUTIVE_5XX");
    assert_eq!(eject["cluster_name"], "backend");
    assert_eq!(eject["num_ejections"], 1);
    assert_eq!(eject["eject_consecutive_event"], serde_json::json!({}));
    assert!(eject.get("secs_since_last_action").is_none());
    assert!(
        eject["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
}

/// EDS `drop_overloads`: the share of requests the control plane asks to shed is answered 503
/// `drop_overload` (flag `DO`) without reaching an upstream, counted in
/// `upstream_rq_drop_overload`, and reported over LRS by category.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_overloads_shed_requests_and_lrs_reports_them() {
    let upstream = UpstreamServer::start_local(UpstreamConfig::new("upstream"))
        .await
        .expect("upstream");
    let shedding: envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment =
        common::xds_proxy::yaml(&format!(
            "cluster_name: backend
endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }} }}] }}]
policy: {{ drop_overloads: [{{ category: throttle, drop_percentage: {{ numerator: 100, denominator: HUNDRED }} }}] }}
",
            upstream.addr().port()
        ));
    let snapshot = Snapshot::new("1")
        .with(cluster("backend", ""))
        .with(shedding)
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: backend }",
        ));
    let proxy = XdsProxy::start_with_bootstrap(
        "report-drops",
        snapshot,
        &["--concurrency", "1"],
        LOAD_STATS,
    )
    .await;
    let server = &proxy.server;
    server.set_load_reporting(&["backend"], Duration::from_millis(200), false, false);
    server
        .wait_for_load_report(
            |r| {
                r.request
                    .cluster_stats
                    .iter()
                    .any(|c| c.cluster_name == "backend")
            },
            WAIT,
        )
        .await
        .expect("reports of backend");

    let base = format!("http://127.0.0.1:{}", proxy.listener_port("ingress").await);
    let client = http1_client();
    for _ in 0..10 {
        let answer = get(&client, &format!("{base}/")).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (503, "drop_overload")
        );
    }
    assert_eq!(
        upstream.requests_served(),
        0,
        "nothing reached the upstream"
    );

    let dropped = |server: &xds_conformance::ManagementServer| {
        let mut total = 0;
        let mut by_category = 0;
        for report in server.load_reports() {
            for cluster in report
                .request
                .cluster_stats
                .iter()
                .filter(|c| c.cluster_name == "backend")
            {
                total += cluster.total_dropped_requests;
                by_category += cluster
                    .dropped_requests
                    .iter()
                    .filter(|d| d.category == "throttle")
                    .map(|d| d.dropped_count)
                    .sum::<u64>();
            }
        }
        (total, by_category)
    };
    assert!(
        eventually(WAIT, || dropped(server).0 >= 10).await,
        "{:?}",
        dropped(server)
    );
    assert_eq!(dropped(server), (10, 10));
    let (_, stats) = tokio::task::block_in_place(|| {
        common::http_get(proxy.admin, "/stats?filter=drop_overload")
    })
    .expect("/stats");
    assert!(
        stats
            .lines()
            .any(|l| l == "cluster.backend.upstream_rq_drop_overload: 10"),
        "{stats}"
    );
}
