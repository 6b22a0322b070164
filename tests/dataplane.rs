//! The data plane end to end: the real binary, configured by the conformance server, forwarding
//! to real upstream servers on 127.0.0.1. Round-robin distribution, request headers, direct
//! responses, retries to another endpoint, `no healthy upstream` explained, and EDS/RDS updates
//! under continuous load with zero failed requests.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use common::xds_proxy::{
    XdsProxy, cluster, endpoints, get, http_listener, http1_client, routes, tally,
};
use outrider_upstream_server::{UpstreamConfig, UpstreamServer};
use xds_conformance::Snapshot;

const ROUTES: &str = r#"  - match: { prefix: /direct }
    direct_response: { status: 200, body: { inline_string: "direct" } }
  - match: { prefix: /empty }
    route: { cluster: empty }
  - match: { prefix: / }
    route:
      cluster: backend
      retry_policy: { retry_on: "5xx,connect-failure", num_retries: 2 }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_balances_retries_and_follows_updates_without_dropping_requests() {
    let mut upstreams = Vec::new();
    for name in ["a", "b", "c", "d"] {
        upstreams.push(
            UpstreamServer::start_local(UpstreamConfig::new(name))
                .await
                .expect("upstream"),
        );
    }
    let addr = |i: usize| upstreams[i].addr();
    let snapshot = Snapshot::new("1")
        .with(cluster("backend", ""))
        .with(cluster("empty", ""))
        .with(endpoints("backend", &[addr(0), addr(1), addr(2)]))
        .with(endpoints("empty", &[]))
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(ROUTES));
    let proxy = XdsProxy::start("dataplane", snapshot, &["--concurrency", "2"]).await;
    let base = format!("http://127.0.0.1:{}", proxy.listener_port("ingress").await);
    let client = http1_client();

    // Round robin: 30 requests spread evenly. Each worker balances on its own (exact rotation
    // from a random start), and the client's connections may land on either worker, so each
    // endpoint gets 10 give or take one per worker.
    let mut answers = Vec::new();
    for _ in 0..30 {
        answers.push(get(&client, &format!("{base}/")).await);
    }
    assert!(answers.iter().all(|a| a.status == 200));
    let served: BTreeMap<String, u32> = tally(&answers);
    assert_eq!(served.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert!(served.values().all(|n| (8..=12).contains(n)), "{served:?}");

    // Request headers the upstream sees, and the proxy's response header.
    let echo = get(&client, &format!("{base}/echo")).await;
    assert!(echo.header("x-envoy-upstream-service-time").is_some());
    let echoed: serde_json::Value = serde_json::from_str(&echo.body).expect("echo JSON");
    let sent: Vec<&str> = echoed["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .filter_map(|h| h[0].as_str())
        .collect();
    assert!(sent.contains(&"x-request-id"), "{sent:?}");
    assert!(sent.contains(&"x-forwarded-proto"), "{sent:?}");

    // A direct response.
    let direct = get(&client, &format!("{base}/direct")).await;
    assert_eq!((direct.status, direct.body.as_str()), (200, "direct"));

    // No endpoint to pick: Envoy's 503 with the explanation header.
    let empty = get(&client, &format!("{base}/empty")).await;
    assert_eq!(
        (empty.status, empty.body.as_str()),
        (503, "no healthy upstream")
    );
    let why = empty.header("x-outrider-no-healthy-upstream").unwrap_or("");
    assert!(why.starts_with("cluster empty: no endpoints"), "{why}");

    // A failing endpoint: every request still succeeds, retried on another endpoint.
    upstreams[0].set_failing(true);
    for _ in 0..12 {
        let answer = get(&client, &format!("{base}/")).await;
        assert_eq!(answer.status, 200);
        assert_ne!(answer.upstream(), "a");
    }
    upstreams[0].set_failing(false);

    // Continuous load while endpoints and routes change: not one request may fail.
    let load = {
        let client = client.clone();
        let base = base.clone();
        tokio::spawn(async move {
            let mut failures = Vec::new();
            for i in 0..600 {
                let answer = get(&client, &format!("{base}/load/{i}")).await;
                if answer.status != 200 {
                    failures.push((i, answer.status));
                }
            }
            failures
        })
    };
    for version in 2..12 {
        let (set, names): (Vec<SocketAddr>, &[&str]) = if version % 2 == 0 {
            (vec![addr(1), addr(2), addr(3)], &["b", "c", "d"])
        } else {
            (vec![addr(0), addr(3)], &["a", "d"])
        };
        proxy.server.update_snapshot(|snapshot| {
            snapshot.set_version(version.to_string());
            snapshot.insert(&endpoints("backend", &set));
            snapshot.insert(&routes(ROUTES));
        });
        proxy.wait_for_version("eds", &version.to_string()).await;
        proxy.wait_for_version("rds", &version.to_string()).await;
        // ACKed means published: the very next requests see the new endpoints only.
        for _ in 0..6 {
            let answer = get(&client, &format!("{base}/after/{version}")).await;
            assert!(
                names.contains(&answer.upstream()),
                "version {version}: {} answered, expected one of {names:?}",
                answer.upstream()
            );
        }
    }
    let failures = load.await.expect("load task");
    assert!(
        failures.is_empty(),
        "failed requests during updates: {failures:?}"
    );
}
