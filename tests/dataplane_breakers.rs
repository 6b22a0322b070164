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

/// HTTP/2 upstreams multiplex: one connection per endpoint serves any number of requests, so
/// `max_connections` bites when a second endpoint needs a connection of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_max_connections_holds_requests_for_a_second_endpoint_as_pending() {
    let first = UpstreamServer::start_local(UpstreamConfig::new("first"))
        .await
        .expect("upstream");
    let second = UpstreamServer::start_local(UpstreamConfig::new("second"))
        .await
        .expect("upstream");
    let mut limited = common::xds_proxy::http2_cluster("limited");
    limited.circuit_breakers = Some(common::xds_proxy::yaml(
        "thresholds: [{ max_connections: 1, max_pending_requests: 1 }]",
    ));
    let snapshot = Snapshot::new("1")
        .with(limited)
        .with(endpoints("limited", &[first.addr(), second.addr()]))
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: limited, timeout: 1s }",
        ));
    let proxy = XdsProxy::start("h2-breakers", snapshot, &["--concurrency", "1"]).await;
    let base = format!("http://127.0.0.1:{}", proxy.listener_port("ingress").await);
    let client = http1_client();

    // Round robin: the first request opens the one connection allowed, to one endpoint.
    let opened = get(&client, &format!("{base}/echo")).await;
    assert_eq!(opened.status, 200, "{opened:?}");
    let connected = opened.upstream().to_string();
    // Three at once. Round robin sends two of them to the other endpoint: one waits as
    // pending for a connection slot (until the route timeout: the open connection never
    // closes), the other finds the one pending slot taken and overflows. The third shares the
    // open connection at once.
    let mut tasks = Vec::new();
    for i in 0..3 {
        let (client, url) = (http1_client(), format!("{base}/echo?n={i}"));
        tasks.push(tokio::spawn(async move { get(&client, &url).await }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("request"));
    }
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 503, 504], "{answers:?}");
    let served = answers.iter().find(|a| a.status == 200).expect("served");
    assert_eq!(served.upstream(), connected);
    let overflowed = answers
        .iter()
        .find(|a| a.status == 503)
        .expect("overflowed");
    assert_eq!(overflowed.header("x-envoy-overloaded"), Some("true"));
    let other = if connected == "first" {
        &second
    } else {
        &first
    };
    assert_eq!(
        other.requests_for("/echo"),
        0,
        "nothing reached the endpoint without a connection"
    );
}
