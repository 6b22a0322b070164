//! Active health checks through the real binary, observed the way a user sees them: which
//! upstream gets traffic. The upstream under test answers its health checks one at a time from a
//! script (`UpstreamServer::queue_health`) and otherwise holds them, so each step is exact: once
//! the next check is waiting at the upstream, the proxy has applied the previous result, and a
//! burst of requests shows whether the host is in rotation. A new health-checked cluster warms
//! (the proxy is not ready, its listener not bound) until its first round of checks is done.
//! Also: EDS health statuses.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::http_get;
use common::xds_proxy::{
    HttpClient, XdsProxy, cluster, endpoints, get, http_listener, http1_client, routes, tally, yaml,
};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use outrider_upstream_server::{HealthAnswer, UpstreamConfig, UpstreamServer};
use xds_conformance::Snapshot;

const DEADLINE: Duration = Duration::from_secs(15);
/// Requests per probe: two full rounds of round robin over four hosts. Four, so that three
/// healthy ones are enough (75 % × 1.4 overprovisioning ≥ 100 %) and a degraded host gets none.
const PROBE: usize = 8;

async fn upstream(name: &str) -> UpstreamServer {
    UpstreamServer::start_local(UpstreamConfig::new(name))
        .await
        .expect("upstream")
}

/// A cluster named `name` with one health check (`check`: the YAML of its checker, e.g.
/// `http_health_check: {...}`); intervals are 100 ms, and the timeout long enough for a check to
/// be held while the test probes.
fn checked_cluster(name: &str, thresholds: (u32, u32), check: &str, extra: &str) -> Cluster {
    let (unhealthy, healthy) = thresholds;
    cluster(
        name,
        &format!(
            "health_checks:
- timeout: 30s
  interval: 0.1s
  no_traffic_interval: 0.1s
  unhealthy_threshold: {unhealthy}
  healthy_threshold: {healthy}
  {check}
{extra}"
        ),
    )
}

/// Proxy, listener `ingress` with every path to `cluster`, and an HTTP/1.1 client.
async fn start(test: &str, snapshot: Snapshot) -> (XdsProxy, String, HttpClient) {
    let proxy = start_warming(test, snapshot).await;
    let (url, client) = bound(&proxy).await;
    (proxy, url, client)
}

/// The proxy, without waiting for the listener: it goes live only once the new cluster's
/// first round of health checks is done (Envoy's cluster warming).
async fn start_warming(test: &str, snapshot: Snapshot) -> XdsProxy {
    let snapshot = snapshot
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: checked }",
        ));
    XdsProxy::start(test, snapshot, &["--concurrency", "1"]).await
}

/// The listener's URL once it is bound, and an HTTP/1.1 client.
async fn bound(proxy: &XdsProxy) -> (String, HttpClient) {
    let base = format!("http://127.0.0.1:{}/", proxy.listener_port("ingress").await);
    (base, http1_client())
}

/// While the first round of checks is held, the new cluster warms: the proxy is not ready and
/// its listener, which routes to the cluster, is not bound.
fn assert_warming(proxy: &XdsProxy) {
    let (status, body) = http_get(proxy.admin, "/ready").expect("/ready");
    assert_eq!(status, 503, "not ready while warming: {body}");
    let (_, listeners) = http_get(proxy.admin, "/listeners").expect("/listeners");
    assert!(!listeners.contains("ingress"), "{listeners}");
}

/// Which upstreams answered `PROBE` requests (`""` for the proxy's own replies).
async fn probe(client: &HttpClient, url: &str) -> BTreeMap<String, u32> {
    let mut answers = Vec::new();
    for _ in 0..PROBE {
        answers.push(get(client, url).await);
    }
    tally(&answers)
}

async fn wait_until(what: &str, proxy: &XdsProxy, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {what}; stderr:\n{}",
            proxy.process.stderr()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Probes until the traffic goes to exactly `expected` (the hosts still pending a first
/// check make the cluster panic until the healthy ones are checked).
async fn wait_for_traffic_to(proxy: &XdsProxy, client: &HttpClient, url: &str, expected: &[&str]) {
    let start = Instant::now();
    loop {
        let counts = probe(client, url).await;
        if counts
            .keys()
            .map(String::as_str)
            .eq(expected.iter().copied())
        {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "traffic never went to exactly {expected:?}: last {counts:?}; stderr:\n{}",
            proxy.process.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Answers the check `server` holds with `answer`, and returns once the next check is held:
/// the proxy has applied `answer` by then (one check at a time per host).
async fn step(proxy: &XdsProxy, server: &UpstreamServer, answer: HealthAnswer) {
    let answered = server.health_checks_answered();
    wait_until("a held check", proxy, || {
        server.health_checks_waiting() == 1
    })
    .await;
    server.queue_health([answer]);
    wait_until("the next check", proxy, || {
        server.health_checks_answered() == answered + 1 && server.health_checks_waiting() == 1
    })
    .await;
}

/// Whether `name` is in rotation, from one probe.
async fn in_rotation(client: &HttpClient, url: &str, name: &str) -> bool {
    let counts = probe(client, url).await;
    assert!(!counts.contains_key(""), "a local reply: {counts:?}");
    counts.contains_key(name)
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02X}")).collect()
}

/// Flags of host `addr` of cluster `checked` in the admin `/clusters` text.
fn admin_flags(proxy: &XdsProxy, addr: SocketAddr) -> String {
    let (_, body) = http_get(proxy.admin, "/clusters").expect("/clusters");
    let key = format!("checked::{addr}::health_flags::");
    body.lines()
        .find_map(|l| l.strip_prefix(key.as_str()))
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_checks_follow_envoys_thresholds() {
    let (a, b, c, d) = (
        upstream("a").await,
        upstream("b").await,
        upstream("c").await,
        upstream("d").await,
    );
    a.set_health(None);
    let snapshot = Snapshot::new("1")
        .with(checked_cluster(
            "checked",
            (3, 2),
            "http_health_check: { path: /healthz, retriable_statuses: [{ start: 503, end: 504 }] }",
            "",
        ))
        .with(endpoints(
            "checked",
            &[a.addr(), b.addr(), c.addr(), d.addr()],
        ));
    let proxy = start_warming("hc-http", snapshot).await;

    // New hosts start failed and pending; b, c and d pass their first check, a's is held, so
    // the new cluster is still warming.
    wait_until("a's first check", &proxy, || a.health_checks_waiting() == 1).await;
    let flags = tokio::task::block_in_place(|| admin_flags(&proxy, a.addr()));
    assert_eq!(flags, "/failed_active_hc/pending_active_hc");
    tokio::task::block_in_place(|| assert_warming(&proxy));
    let seen = a.last_health_request().expect("a check");
    assert_eq!(
        seen.authority.as_deref(),
        Some("checked"),
        "Host: the cluster name"
    );
    assert_eq!(
        seen.headers.get("user-agent").map(String::as_str),
        Some("Envoy/HC")
    );
    assert_eq!(seen.method, "GET");

    // A new host is healthy after its first passing check (not after healthy_threshold), and
    // with the first round done the listener goes live.
    step(&proxy, &a, HealthAnswer::Status(200)).await;
    let (url, client) = bound(&proxy).await;
    wait_for_traffic_to(&proxy, &client, &url, &["a", "b", "c", "d"]).await;

    // Retriable statuses count toward unhealthy_threshold (3): out at exactly the third.
    for _ in 0..2 {
        step(&proxy, &a, HealthAnswer::Status(503)).await;
        assert!(in_rotation(&client, &url, "a").await);
    }
    step(&proxy, &a, HealthAnswer::Status(503)).await;
    assert!(!in_rotation(&client, &url, "a").await);
    let flags = tokio::task::block_in_place(|| admin_flags(&proxy, a.addr()));
    assert_eq!(flags, "/failed_active_hc");
    // /diagnose says why, with the last failure.
    let (_, diagnosis) =
        tokio::task::block_in_place(|| http_get(proxy.admin, "/diagnose?cluster=checked"))
            .expect("/diagnose");
    let line = diagnosis
        .lines()
        .find(|l| l.trim_start().starts_with(&a.addr().to_string()))
        .unwrap_or_else(|| panic!("{diagnosis}"));
    assert!(
        line.contains("unhealthy: failing active health checks (3 in a row; last: "),
        "{line}"
    );

    // Back at exactly healthy_threshold (2).
    step(&proxy, &a, HealthAnswer::Status(200)).await;
    assert!(!in_rotation(&client, &url, "a").await);
    step(&proxy, &a, HealthAnswer::Status(200)).await;
    assert!(in_rotation(&client, &url, "a").await);

    // Any other unexpected status ejects at once (Envoy); a reset connection counts.
    step(&proxy, &a, HealthAnswer::Status(500)).await;
    assert!(!in_rotation(&client, &url, "a").await);
    step(&proxy, &a, HealthAnswer::Status(200)).await;
    step(&proxy, &a, HealthAnswer::Status(200)).await;
    assert!(in_rotation(&client, &url, "a").await);
    step(&proxy, &a, HealthAnswer::Reset).await;
    assert!(in_rotation(&client, &url, "a").await);
    step(&proxy, &a, HealthAnswer::Status(200)).await;

    // x-envoy-degraded: degraded hosts serve only when the healthy ones are not enough.
    step(&proxy, &a, HealthAnswer::Degraded).await;
    assert!(!in_rotation(&client, &url, "a").await);
    let flags = tokio::task::block_in_place(|| admin_flags(&proxy, a.addr()));
    assert_eq!(flags, "/degraded_active_hc");
    step(&proxy, &a, HealthAnswer::Status(200)).await;
    assert!(in_rotation(&client, &url, "a").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_checks_follow_envoys_thresholds() {
    let (a, b, c, d) = (
        upstream("a").await,
        upstream("b").await,
        upstream("c").await,
        upstream("d").await,
    );
    a.set_health(None);
    // The payloads speak HTTP/1.1 to the upstream's /healthz over a kept connection.
    let check = format!(
        "tcp_health_check: {{ send: {{ text: '{}' }}, receive: [{{ text: '{}' }}, {{ text: '{}' }}] }}",
        hex("GET /healthz HTTP/1.1\r\nHost: checked\r\n\r\n"),
        hex("HTTP/1.1"),
        hex(" 200 "),
    );
    let snapshot = Snapshot::new("1")
        .with(checked_cluster("checked", (2, 3), &check, ""))
        .with(endpoints(
            "checked",
            &[a.addr(), b.addr(), c.addr(), d.addr()],
        ));
    let proxy = start_warming("hc-tcp", snapshot).await;

    wait_until("a's first check", &proxy, || a.health_checks_waiting() == 1).await;
    tokio::task::block_in_place(|| assert_warming(&proxy));
    step(&proxy, &a, HealthAnswer::Status(200)).await;
    let (url, client) = bound(&proxy).await;
    wait_for_traffic_to(&proxy, &client, &url, &["a", "b", "c", "d"]).await;

    // A closed connection is a network failure: out at exactly unhealthy_threshold (2).
    step(&proxy, &a, HealthAnswer::Reset).await;
    assert!(in_rotation(&client, &url, "a").await);
    step(&proxy, &a, HealthAnswer::Reset).await;
    assert!(!in_rotation(&client, &url, "a").await);

    // Back at exactly healthy_threshold (3).
    for _ in 0..2 {
        step(&proxy, &a, HealthAnswer::Status(200)).await;
        assert!(!in_rotation(&client, &url, "a").await);
    }
    step(&proxy, &a, HealthAnswer::Status(200)).await;
    assert!(in_rotation(&client, &url, "a").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_checks_follow_envoys_thresholds() {
    let (a, b, c, d) = (
        upstream("a").await,
        upstream("b").await,
        upstream("c").await,
        upstream("d").await,
    );
    a.set_health(None);
    let snapshot = Snapshot::new("1")
        .with(checked_cluster(
            "checked",
            (2, 2),
            "grpc_health_check: { service_name: api, authority: grpc.internal }",
            r#"typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    explicit_http_config: { http2_protocol_options: {} }"#,
        ))
        .with(endpoints(
            "checked",
            &[a.addr(), b.addr(), c.addr(), d.addr()],
        ));
    let proxy = start_warming("hc-grpc", snapshot).await;

    wait_until("a's first check", &proxy, || a.health_checks_waiting() == 1).await;
    tokio::task::block_in_place(|| assert_warming(&proxy));
    let seen = a.last_health_request().expect("a check");
    assert_eq!(seen.path, "/grpc.health.v1.Health/Check");
    assert_eq!(seen.grpc_service.as_deref(), Some("api"));
    assert_eq!(seen.authority.as_deref(), Some("grpc.internal"));
    step(&proxy, &a, HealthAnswer::Status(200)).await;
    let (url, client) = bound(&proxy).await;
    wait_for_traffic_to(&proxy, &client, &url, &["a", "b", "c", "d"]).await;

    // A reset stream is a network failure: out at exactly unhealthy_threshold (2).
    step(&proxy, &a, HealthAnswer::Reset).await;
    assert!(in_rotation(&client, &url, "a").await);
    step(&proxy, &a, HealthAnswer::Reset).await;
    assert!(!in_rotation(&client, &url, "a").await);

    // Back at exactly healthy_threshold (2).
    step(&proxy, &a, HealthAnswer::Status(200)).await;
    assert!(!in_rotation(&client, &url, "a").await);
    step(&proxy, &a, HealthAnswer::Status(200)).await;
    assert!(in_rotation(&client, &url, "a").await);

    // NOT_SERVING ejects at once (Envoy: an active failure).
    step(&proxy, &a, HealthAnswer::Status(503)).await;
    assert!(!in_rotation(&client, &url, "a").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_only_checks_go_to_the_health_check_port() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    // A connect-only TCP check on a port of its own: listening = healthy.
    let (port_addr, listening) = health_port(None).await;
    let assignment = checked_on_port(&a, port_addr, Some(&b));
    let snapshot = Snapshot::new("1")
        .with(checked_cluster(
            "checked",
            (2, 1),
            "tcp_health_check: {}",
            "",
        ))
        .with(assignment);
    let (proxy, url, client) = start("hc-connect", snapshot).await;
    wait_for_traffic_to(&proxy, &client, &url, &["a", "b"]).await;
    listening.abort();
    let _ = listening.await;
    wait_for_traffic_to(&proxy, &client, &url, &["b"]).await;
    let (_, listening) = health_port(Some(port_addr)).await;
    wait_for_traffic_to(&proxy, &client, &url, &["a", "b"]).await;
    listening.abort();
}

/// Cluster `checked`'s endpoints: `checked` with its health checks on `port`, and `unchecked`
/// (if any) without a port of its own.
fn checked_on_port(
    checked: &UpstreamServer,
    port: SocketAddr,
    unchecked: Option<&UpstreamServer>,
) -> ClusterLoadAssignment {
    let other = unchecked.map_or(String::new(), |u| {
        format!(
            "  - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}\n",
            u.addr().port()
        )
    });
    yaml(&format!(
        "cluster_name: checked
endpoints:
- lb_endpoints:
  - endpoint:
      address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }}
      health_check_config: {{ port_value: {} }}
{other}",
        checked.addr().port(),
        port.port(),
    ))
}

/// A listener that accepts and drops connections, on `addr` (or a free port) until aborted.
async fn health_port(addr: Option<SocketAddr>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let addr = addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_that_time_out_fail() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let snapshot = Snapshot::new("1")
        .with(cluster(
            "checked",
            "health_checks:
- timeout: 0.2s
  interval: 0.1s
  no_traffic_interval: 0.1s
  unhealthy_threshold: 2
  healthy_threshold: 1
  http_health_check: { path: /healthz }",
        ))
        .with(endpoints("checked", &[a.addr(), b.addr()]));
    let (proxy, url, client) = start("hc-timeout", snapshot).await;
    wait_for_traffic_to(&proxy, &client, &url, &["a", "b"]).await;
    // Held checks time out: ejected after two, flagged as timing out.
    a.set_health(None);
    wait_for_traffic_to(&proxy, &client, &url, &["b"]).await;
    let flags = tokio::task::block_in_place(|| admin_flags(&proxy, a.addr()));
    assert_eq!(flags, "/failed_active_hc/active_hc_timeout");
    a.set_health(Some(HealthAnswer::Status(200)));
    wait_for_traffic_to(&proxy, &client, &url, &["a", "b"]).await;
    let flags = tokio::task::block_in_place(|| admin_flags(&proxy, a.addr()));
    assert_eq!(flags, "healthy");
}

/// `lb_endpoints` with a `health_status` each.
fn endpoints_with_status(name: &str, hosts: &[(SocketAddr, &str)]) -> ClusterLoadAssignment {
    let lb: Vec<String> = hosts
        .iter()
        .map(|(a, status)| {
            format!(
                "{{ endpoint: {{ address: {{ socket_address: {{ address: '{}', port_value: {} }} }} }}, health_status: {status} }}",
                a.ip(),
                a.port()
            )
        })
        .collect();
    yaml(&format!(
        "cluster_name: {name}\nendpoints: [{{ lb_endpoints: [{}] }}]\n",
        lb.join(", ")
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eds_health_status_decides_without_health_checks() {
    let (unhealthy, draining, degraded) = (
        upstream("unhealthy").await,
        upstream("draining").await,
        upstream("degraded").await,
    );
    let mut healthy = Vec::new();
    for i in 0..8 {
        healthy.push(upstream(&format!("h{i}")).await);
    }
    let mut hosts = vec![
        (unhealthy.addr(), "UNHEALTHY"),
        (draining.addr(), "DRAINING"),
        (degraded.addr(), "DEGRADED"),
    ];
    hosts.extend(healthy.iter().map(|h| (h.addr(), "HEALTHY")));
    let snapshot = Snapshot::new("1")
        .with(cluster("checked", ""))
        .with(endpoints_with_status("checked", &hosts));
    let (proxy, url, client) = start("hc-eds", snapshot).await;

    // 8 of 11 healthy is enough (× 1.4 overprovisioning ≥ 100 %): only they serve.
    let mut answers = Vec::new();
    for _ in 0..88 {
        answers.push(get(&client, &url).await);
    }
    let counts = tally(&answers);
    let expected: Vec<String> = (0..8).map(|i| format!("h{i}")).collect();
    assert!(counts.keys().eq(expected.iter()), "{counts:?}");

    // One healthy host of four is not: the degraded one takes its share, never the unhealthy
    // or draining ones.
    let snapshot = Snapshot::new("2")
        .with(cluster("checked", ""))
        .with(endpoints_with_status(
            "checked",
            &[
                (unhealthy.addr(), "UNHEALTHY"),
                (draining.addr(), "DRAINING"),
                (degraded.addr(), "DEGRADED"),
                (healthy[0].addr(), "HEALTHY"),
            ],
        ))
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: checked }",
        ));
    proxy.server.set_snapshot(snapshot);
    proxy.wait_for_version("eds", "2").await;
    let mut answers = Vec::new();
    for _ in 0..40 {
        answers.push(get(&client, &url).await);
    }
    let counts = tally(&answers);
    assert!(counts.keys().eq(["degraded", "h0"].iter()), "{counts:?}");
}

/// A cluster of `hosts` with an HTTP health check that runs once at start within a test (30 s
/// intervals) and brings a failed host back after one pass.
fn rarely_checked_cluster(hosts: &[SocketAddr]) -> Snapshot {
    Snapshot::new("1")
        .with(cluster(
            "checked",
            "health_checks:
- timeout: 1s
  interval: 30s
  no_traffic_interval: 30s
  unhealthy_threshold: 3
  healthy_threshold: 1
  http_health_check: { path: /healthz }",
        ))
        .with(endpoints("checked", hosts))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immediate_health_check_fail_header_fails_the_host_at_once() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let (proxy, url, client) = start(
        "hc-immediate-fail",
        rarely_checked_cluster(&[a.addr(), b.addr()]),
    )
    .await;
    wait_for_traffic_to(&proxy, &client, &url, &["a", "b"]).await;
    let checks = a.health_checks_answered() + b.health_checks_answered();

    // Whichever host answers says it is failing, and the header reaches the client as sent.
    let answer = get(&client, &format!("{url}immediate-health-check-fail")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("x-envoy-immediate-health-check-fail"),
        Some("true")
    );
    let (failed, other) = match answer.upstream() {
        "a" => (&a, &b),
        "b" => (&b, &a),
        name => panic!("answered by {name:?}"),
    };

    // Failed at once, without waiting for a check: out of rotation, the other host takes
    // every request.
    wait_until("the host to fail active health checking", &proxy, || {
        tokio::task::block_in_place(|| admin_flags(&proxy, failed.addr())) == "/failed_active_hc"
    })
    .await;
    let other_name = other.name().to_string();
    wait_for_traffic_to(&proxy, &client, &url, &[&other_name]).await;
    let counts = probe(&client, &url).await;
    assert!(counts.keys().eq([&other_name]), "{counts:?}");
    let flags = tokio::task::block_in_place(|| admin_flags(&proxy, other.addr()));
    assert_eq!(flags, "healthy");
    assert_eq!(
        a.health_checks_answered() + b.health_checks_answered(),
        checks,
        "no health check ran meanwhile"
    );
    // Counted as Envoy counts it: a failure, and a passive one.
    for stat in ["failure", "passive_failure"] {
        let name = format!("cluster.checked.health_check.{stat}");
        assert_eq!(proxy.stat(&name).await, Some(1), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immediate_health_check_fail_header_changes_nothing_without_health_checks() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let snapshot = Snapshot::new("1")
        .with(cluster("checked", ""))
        .with(endpoints("checked", &[a.addr(), b.addr()]));
    let (proxy, url, client) = start("hc-immediate-fail-unchecked", snapshot).await;
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(get(&client, &format!("{url}immediate-health-check-fail")).await);
    }
    assert!(
        answers
            .iter()
            .all(|a| a.header("x-envoy-immediate-health-check-fail") == Some("true"))
    );
    let counts = tally(&answers);
    assert!(
        counts.keys().eq(["a", "b"]),
        "both hosts said so: {counts:?}"
    );
    // Both stay in rotation.
    let counts = probe(&client, &url).await;
    assert!(counts.keys().eq(["a", "b"]), "{counts:?}");
    for host in [&a, &b] {
        let flags = tokio::task::block_in_place(|| admin_flags(&proxy, host.addr()));
        assert_eq!(flags, "healthy");
    }
}

/// `snapshot` with the listener and routes `start` adds, for a later version.
fn with_ingress(snapshot: Snapshot) -> Snapshot {
    snapshot
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: checked }",
        ))
}

fn clusters_text(proxy: &XdsProxy) -> String {
    http_get(proxy.admin, "/clusters").expect("/clusters").1
}

/// Envoy's default: a host EDS stops listing keeps serving, flagged `/pending_dynamic_removal`,
/// while it passes its checks, and goes when one fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_eds_removes_serves_until_it_fails_a_check() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let check = "http_health_check: { path: /healthz }";
    let snapshot = Snapshot::new("1")
        .with(checked_cluster("checked", (1, 1), check, ""))
        .with(endpoints("checked", &[a.addr(), b.addr()]));
    let (proxy, url, client) = start("hc-pending-removal", snapshot).await;
    wait_for_traffic_to(&proxy, &client, &url, &["a", "b"]).await;

    proxy.server.set_snapshot(with_ingress(
        Snapshot::new("2")
            .with(checked_cluster("checked", (1, 1), check, ""))
            .with(endpoints("checked", &[b.addr()])),
    ));
    proxy.wait_for_version("eds", "2").await;
    let flags = tokio::task::block_in_place(|| admin_flags(&proxy, a.addr()));
    assert_eq!(flags, "/pending_dynamic_removal");
    let counts = probe(&client, &url).await;
    assert!(counts.keys().eq(["a", "b"].iter()), "{counts:?}");

    a.set_health(Some(HealthAnswer::Status(503)));
    wait_for_traffic_to(&proxy, &client, &url, &["b"]).await;
    let key = format!("checked::{}::", a.addr());
    wait_until("the host gone from /clusters", &proxy, || {
        !clusters_text(&proxy).contains(&key)
    })
    .await;
}

/// `ignore_health_on_host_removal: true`: a host EDS stops listing goes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_health_on_host_removal_drops_a_removed_host_at_once() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let check = "http_health_check: { path: /healthz }";
    let extra = "ignore_health_on_host_removal: true";
    let snapshot = Snapshot::new("1")
        .with(checked_cluster("checked", (1, 1), check, extra))
        .with(endpoints("checked", &[a.addr(), b.addr()]));
    let (proxy, url, client) = start("hc-ignore-removal", snapshot).await;
    wait_for_traffic_to(&proxy, &client, &url, &["a", "b"]).await;

    proxy.server.set_snapshot(with_ingress(
        Snapshot::new("2")
            .with(checked_cluster("checked", (1, 1), check, extra))
            .with(endpoints("checked", &[b.addr()])),
    ));
    proxy.wait_for_version("eds", "2").await;
    let counts = probe(&client, &url).await;
    assert!(counts.keys().eq(["b"].iter()), "{counts:?}");
    let key = format!("checked::{}::", a.addr());
    assert!(!tokio::task::block_in_place(|| clusters_text(&proxy)).contains(&key));
}

/// An endpoint whose `health_check_config.port_value` changes is a new host, checked on the
/// new port; the old one, passing its checks on the old port, stays beside it pending removal
/// (as Envoy), and goes when it fails one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_move_to_a_changed_health_check_port() {
    let a = upstream("a").await;
    let (old_port, old_listener) = health_port(None).await;
    let (new_port, new_listener) = counting_port().await;
    let assignment = |port: SocketAddr| checked_on_port(&a, port, None);
    let cluster = || checked_cluster("checked", (1, 1), "tcp_health_check: {}", "");
    let snapshot = Snapshot::new("1")
        .with(cluster())
        .with(assignment(old_port));
    let (proxy, url, client) = start("hc-port-move", snapshot).await;
    wait_for_traffic_to(&proxy, &client, &url, &["a"]).await;
    assert_eq!(new_listener.accepted(), 0);

    proxy.server.set_snapshot(with_ingress(
        Snapshot::new("2")
            .with(cluster())
            .with(assignment(new_port)),
    ));
    proxy.wait_for_version("eds", "2").await;
    wait_until("a check on the new port", &proxy, || {
        new_listener.accepted() > 0
    })
    .await;
    let both = || host_flags(&proxy, a.addr());
    wait_until("the new host healthy beside the old one", &proxy, || {
        both() == ["healthy", "/pending_dynamic_removal"]
    })
    .await;
    // The old port closing fails the old host, which goes; the new one serves.
    old_listener.abort();
    let _ = old_listener.await;
    wait_until("the old host gone", &proxy, || both() == ["healthy"]).await;
    let checks = new_listener.accepted();
    wait_until("more checks on the new port", &proxy, || {
        new_listener.accepted() > checks + 2
    })
    .await;
    let counts = probe(&client, &url).await;
    assert!(counts.keys().eq(["a"].iter()), "{counts:?}");
}

/// The flags of every host at `addr` in cluster `checked`, in `/clusters` order.
fn host_flags(proxy: &XdsProxy, addr: SocketAddr) -> Vec<String> {
    let key = format!("checked::{addr}::health_flags::");
    clusters_text(proxy)
        .lines()
        .filter_map(|l| l.strip_prefix(key.as_str()).map(str::to_string))
        .collect()
}

/// A listener that counts the connections it accepts (and drops them).
struct CountingPort {
    accepted: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingPort {
    fn accepted(&self) -> u64 {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for CountingPort {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn counting_port() -> (SocketAddr, CountingPort) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    (addr, CountingPort { accepted, task })
}
