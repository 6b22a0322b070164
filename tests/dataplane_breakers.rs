//! Connection and pending-request circuit breakers through the real binary: with one connection
//! and one pending slot, a second concurrent request waits for the connection and succeeds, and
//! a third overflows with Envoy's `503` and `x-envoy-overloaded`.

mod common;

use std::time::Duration;

use common::xds_proxy::{
    XdsProxy, cluster, endpoints, eventually, get, http_listener, http1_client, routes,
};
use outrider_upstream_server::{UpstreamConfig, UpstreamServer};
use xds_conformance::Snapshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_queues_as_pending_then_overflows() {
    let upstream = UpstreamServer::start_local(UpstreamConfig::new("slow"))
        .await
        .expect("upstream");
    let snapshot = Snapshot::new("1")
        .with(cluster(
            "limited",
            "circuit_breakers: { thresholds: [{ max_connections: 1, max_pending_requests: 1 }] }",
        ))
        .with(endpoints("limited", &[upstream.addr()]))
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: limited }",
        ));
    let proxy = XdsProxy::start("breakers", snapshot, &["--concurrency", "1"]).await;
    let base = format!("http://127.0.0.1:{}", proxy.listener_port("ingress").await);

    // First request: takes the one connection for 600 ms.
    let first = {
        let (client, url) = (http1_client(), format!("{base}/delay/600"));
        tokio::spawn(async move { get(&client, &url).await })
    };
    assert!(
        eventually(Duration::from_secs(5), || upstream
            .requests_for("/delay/600")
            == 1)
        .await,
        "the first request never reached the upstream"
    );
    // Three more at once: no connection slot is left, one of them takes the one pending slot
    // and waits for the connection, the other two overflow at once.
    let mut waiting = Vec::new();
    for i in 0..3 {
        let (client, url) = (http1_client(), format!("{base}/delay/1?n={i}"));
        waiting.push(tokio::spawn(async move { get(&client, &url).await }));
    }
    let mut answers = Vec::new();
    for task in waiting {
        answers.push(task.await.expect("request"));
    }
    let first = first.await.expect("first");
    assert_eq!(first.status, 200);
    let served: Vec<_> = answers.iter().filter(|a| a.status == 200).collect();
    let overflowed: Vec<_> = answers.iter().filter(|a| a.status == 503).collect();
    assert_eq!((served.len(), overflowed.len()), (1, 2), "{answers:?}");
    assert_eq!(served[0].upstream(), "slow");
    assert!(
        overflowed
            .iter()
            .all(|a| a.header("x-envoy-overloaded") == Some("true"))
    );
    assert_eq!(
        upstream.requests_for("/delay/1"),
        1,
        "the overflows never reached the upstream"
    );

    let client = http1_client();
    // Afterwards the connection is free again.
    assert_eq!(get(&client, &format!("{base}/after")).await.status, 200);
}
