//! Outlier detection through the real binary, as a client and the upstreams see it: each
//! detector ejects after exactly its number of failures (or on its success rate), an ejected
//! host gets no traffic, comes back after its ejection time (longer for a repeat offender),
//! `max_ejection_percent` keeps the rest in service, and with every host ejected the 503 says
//! which detector did it.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::xds_proxy::{
    Answer, HttpClient, XdsProxy, closed_port, cluster, endpoints, get, http_listener,
    http1_client, routes,
};
use outrider_upstream_server::{UpstreamConfig, UpstreamServer};
use xds_conformance::Snapshot;

const EXPLANATION: &str = "x-outrider-no-healthy-upstream";
/// No panic mode: with every host ejected, a request gets `503 no healthy upstream`.
const NO_PANIC: &str = "common_lb_config: { healthy_panic_threshold: { value: 0 } }";

async fn upstream(name: &str) -> UpstreamServer {
    UpstreamServer::start_local(UpstreamConfig::new(name))
        .await
        .expect("upstream")
}

/// One route per cluster: `/<cluster>/...` goes to `<cluster>` as `/...`.
fn routes_to(clusters: &[&str]) -> String {
    clusters
        .iter()
        .map(|c| {
            format!(
                "  - match: {{ prefix: /{c}/ }}\n    route: {{ cluster: {c}, prefix_rewrite: / }}"
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn start(test: &str, snapshot: Snapshot, clusters: &[&str]) -> (XdsProxy, String) {
    let snapshot = snapshot
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(&routes_to(clusters)));
    let proxy = XdsProxy::start(test, snapshot, &["--concurrency", "1"]).await;
    let base = format!("http://127.0.0.1:{}", proxy.listener_port("ingress").await);
    (proxy, base)
}

/// The explanation of a `503 no healthy upstream`, if that is what the answer is.
fn no_healthy(answer: &Answer) -> Option<&str> {
    (answer.status == 503 && answer.body == "no healthy upstream")
        .then(|| answer.header(EXPLANATION).unwrap_or(""))
}

/// Calls `probe` every 10 ms until it returns `Some`, for up to `deadline`.
async fn until<T, F: Future<Output = Option<T>>>(
    deadline: Duration,
    mut probe: impl FnMut() -> F,
) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if start.elapsed() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Requests `url` until the cluster has no healthy host; returns that answer's explanation.
async fn until_no_healthy(client: &HttpClient, url: &str) -> String {
    until(Duration::from_secs(10), || async {
        no_healthy(&get(client, url).await).map(str::to_string)
    })
    .await
    .unwrap_or_else(|| panic!("{url}: the host was never ejected"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_5xx_ejects_at_the_threshold_and_repeat_offenders_stay_out_longer() {
    let solo = upstream("solo").await;
    let od = "outlier_detection: { consecutive_5xx: 3, interval: 0.5s, base_ejection_time: 0.8s, max_ejection_percent: 100 }";
    let snapshot = Snapshot::new("1")
        .with(cluster("solo", &format!("{od}\n{NO_PANIC}")))
        .with(endpoints("solo", &[solo.addr()]));
    let (proxy, base) = start("outlier-5xx", snapshot, &["solo"]).await;
    let client = http1_client();
    let fail = format!("{base}/solo/status/500");
    let fine = format!("{base}/solo/");

    // Two failures, a success, two failures: never 3 in a row, so every request reaches it.
    for url in [&fail, &fail, &fine, &fail, &fail] {
        let answer = get(&client, url).await;
        assert_eq!(answer.upstream(), "solo", "{answer:?}");
    }
    // The third in a row reaches it too, and ejects it.
    let ejected_after = Instant::now();
    let answer = get(&client, &fail).await;
    assert_eq!((answer.status, answer.upstream()), (500, "solo"));
    assert_eq!(solo.requests_served(), 6);

    let why = until_no_healthy(&client, &fine).await;
    assert!(
        why.contains("1 ejected by outlier detection (consecutive_5xx)"),
        "{why}"
    );
    // /diagnose, /clusters and /stats tell the same story.
    let report = tokio::task::block_in_place(|| {
        common::get_json(proxy.admin, "/diagnose?cluster=solo&format=json")
    })
    .expect("a diagnosis");
    let host = &report["endpoints"][0];
    assert_eq!(host["state"], "unhealthy", "{report:#}");
    assert_eq!(host["outlier"]["detector"], "consecutive_5xx", "{report:#}");
    assert_eq!(host["outlier"]["num_ejections"], 1);
    assert!(
        report["next_request"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("503 no healthy upstream")),
        "{report:#}"
    );
    let (_, clusters) = tokio::task::block_in_place(|| common::http_get(proxy.admin, "/clusters"))
        .expect("/clusters");
    let flags = format!("solo::{}::health_flags::/failed_outlier_check", solo.addr());
    assert!(clusters.lines().any(|l| l == flags), "{clusters}");
    let (_, stats) = tokio::task::block_in_place(|| {
        common::http_get(proxy.admin, "/stats?filter=outlier_detection")
    })
    .expect("/stats");
    for line in [
        "cluster.solo.outlier_detection.ejections_active: 1",
        "cluster.solo.outlier_detection.ejections_enforced_consecutive_5xx: 1",
        "cluster.solo.outlier_detection.ejections_enforced_total: 1",
    ] {
        assert!(stats.lines().any(|l| l == line), "{line} in\n{stats}");
    }
    // The ejection is applied by the control thread, as Envoy's is by its main thread: a
    // request racing it may still go through, never more than that.
    let served = solo.requests_served();
    assert!((6..=7).contains(&served), "{served}");

    // While ejected it gets nothing; then, after the ejection time, it serves again.
    let back = until(Duration::from_secs(10), || async {
        let answer = get(&client, &fine).await;
        match no_healthy(&answer) {
            Some(_) => None,
            None => Some(answer),
        }
    })
    .await
    .expect("the host comes back after its ejection time");
    assert_eq!((back.status, back.upstream()), (200, "solo"));
    assert_eq!(
        solo.requests_served(),
        served + 1,
        "no request reached it while it was ejected"
    );
    let first = ejected_after.elapsed();
    assert!(first >= Duration::from_millis(800), "{first:?}");

    // Ejected a second time: 2 × 0.8 s now.
    let ejected_again = Instant::now();
    for _ in 0..3 {
        assert_eq!(get(&client, &fail).await.upstream(), "solo");
    }
    let why = until_no_healthy(&client, &fine).await;
    assert!(why.contains("(consecutive_5xx)"), "{why}");
    until(Duration::from_secs(10), || async {
        no_healthy(&get(&client, &fine).await)
            .is_none()
            .then_some(())
    })
    .await
    .expect("back again");
    let second = ejected_again.elapsed();
    assert!(
        second >= Duration::from_millis(1600),
        "a second ejection lasts twice the base: {second:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_failures_count_only_502_503_504_and_eject_when_enforced() {
    let enforced = upstream("enforced").await;
    let reported = upstream("reported").await;
    let snapshot = Snapshot::new("1")
        .with(cluster(
            "gw",
            &format!(
                "outlier_detection: {{ consecutive_5xx: 100, consecutive_gateway_failure: 2, enforcing_consecutive_gateway_failure: 100, max_ejection_percent: 100, base_ejection_time: 60s }}\n{NO_PANIC}"
            ),
        ))
        .with(endpoints("gw", &[enforced.addr()]))
        // Envoy's default enforcing_consecutive_gateway_failure is 0: detected, not ejected.
        .with(cluster(
            "report",
            &format!(
                "outlier_detection: {{ consecutive_5xx: 100, consecutive_gateway_failure: 2, max_ejection_percent: 100 }}\n{NO_PANIC}"
            ),
        ))
        .with(endpoints("report", &[reported.addr()]));
    let (_proxy, base) = start("outlier-gateway", snapshot, &["gw", "report"]).await;
    let client = http1_client();

    // A 500 between two 502s resets the gateway count.
    for path in ["/status/502", "/status/500", "/status/502"] {
        let answer = get(&client, &format!("{base}/gw{path}")).await;
        assert_eq!(answer.upstream(), "enforced", "{answer:?}");
    }
    // The second gateway failure in a row reaches it, and ejects it.
    let answer = get(&client, &format!("{base}/gw/status/504")).await;
    assert_eq!((answer.status, answer.upstream()), (504, "enforced"));
    let why = until_no_healthy(&client, &format!("{base}/gw/")).await;
    assert!(
        why.contains("1 ejected by outlier detection (consecutive_gateway_failure)"),
        "{why}"
    );

    for _ in 0..6 {
        let answer = get(&client, &format!("{base}/report/status/503")).await;
        assert_eq!(answer.upstream(), "reported", "never ejected: {answer:?}");
    }
    assert_eq!(reported.requests_served(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_mode_counts_connect_failures_as_local_origin_only() {
    let dead = closed_port();
    let od = "outlier_detection: { split_external_local_origin_errors: true, consecutive_5xx: 1, consecutive_local_origin_failure: 3, max_ejection_percent: 100, base_ejection_time: 60s }";
    let snapshot = Snapshot::new("1")
        .with(cluster("dead", &format!("{od}\n{NO_PANIC}")))
        .with(endpoints("dead", &[dead]));
    let (_proxy, base) = start("outlier-local-origin", snapshot, &["dead"]).await;
    let client = http1_client();
    let url = format!("{base}/dead/");
    // With consecutive_5xx 1, one connect failure would eject if it counted as a 503; in split
    // mode it takes three local-origin failures.
    for _ in 0..3 {
        let answer = get(&client, &url).await;
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(
            answer.body.starts_with("upstream connect error"),
            "still tried: {answer:?}"
        );
    }
    let why = until_no_healthy(&client, &url).await;
    assert!(
        why.contains("1 ejected by outlier detection (consecutive_local_origin_failure)"),
        "{why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_rate_ejects_the_outlier_and_failure_percentage_the_failing() {
    // Five hosts; one fails every second request: {50, 100, 100, 100, 100} → threshold 52.
    let mut hosts = Vec::new();
    for name in ["h1", "h2", "h3", "h4"] {
        hosts.push(upstream(name).await);
    }
    let flaky = UpstreamServer::start_local(UpstreamConfig::new("flaky").with_fail_every(2))
        .await
        .expect("upstream");
    let mut addrs: Vec<_> = hosts.iter().map(UpstreamServer::addr).collect();
    addrs.push(flaky.addr());
    // Failure percentage on a host of its own (enforced, minimum one host).
    let broken = UpstreamServer::start_local(UpstreamConfig::new("broken").with_fail_ratio(1.0))
        .await
        .expect("upstream");
    let snapshot = Snapshot::new("1")
        .with(cluster(
            "sr",
            "outlier_detection: { consecutive_5xx: 1000, interval: 0.3s, base_ejection_time: 60s, max_ejection_percent: 20, success_rate_minimum_hosts: 5, success_rate_request_volume: 10, failure_percentage_request_volume: 100000 }",
        ))
        .with(endpoints("sr", &addrs))
        .with(cluster(
            "fp",
            &format!(
                "outlier_detection: {{ consecutive_5xx: 1000, interval: 0.3s, base_ejection_time: 60s, max_ejection_percent: 100, failure_percentage_minimum_hosts: 1, failure_percentage_request_volume: 5, failure_percentage_threshold: 50, enforcing_failure_percentage: 100 }}\n{NO_PANIC}"
            ),
        ))
        .with(endpoints("fp", &[broken.addr()]));
    let (_proxy, base) = start("outlier-success-rate", snapshot, &["sr", "fp"]).await;
    let client = http1_client();

    // Traffic until a whole batch passes the flaky host by.
    let url = format!("{base}/sr/");
    let ejected = until(Duration::from_secs(20), || async {
        let before = flaky.requests_served();
        for _ in 0..25 {
            get(&client, &url).await;
        }
        (flaky.requests_served() == before).then_some(before)
    })
    .await
    .expect("the flaky host is ejected by success rate");
    // Once out, it gets nothing; the others serve everything.
    for _ in 0..40 {
        let answer = get(&client, &url).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_ne!(answer.upstream(), "flaky");
    }
    assert_eq!(flaky.requests_served(), ejected);

    let why = until(Duration::from_secs(10), || async {
        let answer = get(&client, &format!("{base}/fp/")).await;
        no_healthy(&answer).map(str::to_string)
    })
    .await
    .expect("the failing host is ejected by failure percentage");
    assert!(
        why.contains("1 ejected by outlier detection (failure_percentage)"),
        "{why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_ejection_percent_keeps_the_rest_in_service() {
    let mut hosts = Vec::new();
    for name in ["m1", "m2", "m3", "m4"] {
        hosts.push(upstream(name).await);
    }
    let addrs: Vec<_> = hosts.iter().map(UpstreamServer::addr).collect();
    let snapshot = Snapshot::new("1")
        .with(cluster(
            "many",
            &format!(
                "outlier_detection: {{ consecutive_5xx: 2, max_ejection_percent: 50, base_ejection_time: 60s }}\n{NO_PANIC}"
            ),
        ))
        .with(endpoints("many", &addrs));
    let (_proxy, base) = start("outlier-max-percent", snapshot, &["many"]).await;
    let client = http1_client();
    let url = format!("{base}/many/status/500");
    let served = |hosts: &[UpstreamServer]| -> Vec<u64> {
        hosts.iter().map(UpstreamServer::requests_served).collect()
    };
    // Every host fails; two may be ejected (50 % of 4), the other two overflow and stay.
    let steady = until(Duration::from_secs(10), || async {
        let before = served(&hosts);
        for _ in 0..20 {
            let answer = get(&client, &url).await;
            assert_eq!(answer.status, 500, "never no healthy upstream: {answer:?}");
        }
        let after = served(&hosts);
        let idle = before.iter().zip(&after).filter(|(b, a)| b == a).count();
        (idle == 2).then_some(after)
    })
    .await
    .expect("two hosts ejected, two left serving");
    // And it stays that way: the same two keep every request.
    for _ in 0..20 {
        get(&client, &url).await;
    }
    let after = served(&hosts);
    let idle: Vec<bool> = steady.iter().zip(&after).map(|(s, a)| s == a).collect();
    assert_eq!(
        idle.iter().filter(|i| **i).count(),
        2,
        "{steady:?} → {after:?}"
    );
}
