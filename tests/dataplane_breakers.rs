//! Connection and pending-request circuit breakers through the real binary: with one connection
//! and one pending slot, a second concurrent request waits for the connection and succeeds, and
//! a third overflows with Envoy's `503` and `x-envoy-overloaded`; a pool's first connection to
//! another endpoint is opened over the limit, as Envoy does.

mod common;

use std::time::Duration;

use common::xds_proxy::{
    XdsProxy, cluster, endpoints, eventually, get, http_listener, http1_client, routes,
};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
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

const ONE_CONNECTION_ONE_PENDING: &str =
    "thresholds: [{ max_connections: 1, max_pending_requests: 1 }]";

/// The proxy (one worker) in front of cluster `limited` of two upstreams, `first` and `second`.
struct TwoEndpoints {
    proxy: XdsProxy,
    /// `http://127.0.0.1:<listener port>`
    base: String,
    first: UpstreamServer,
    second: UpstreamServer,
}

impl TwoEndpoints {
    async fn start(test: &str, limited: Cluster) -> TwoEndpoints {
        let first = UpstreamServer::start_local(UpstreamConfig::new("first"))
            .await
            .expect("upstream");
        let second = UpstreamServer::start_local(UpstreamConfig::new("second"))
            .await
            .expect("upstream");
        let snapshot = Snapshot::new("1")
            .with(limited)
            .with(endpoints("limited", &[first.addr(), second.addr()]))
            .with(http_listener("ingress", 0, "ingress", ""))
            .with(routes(
                "  - match: { prefix: / }\n    route: { cluster: limited, timeout: 5s }",
            ));
        let proxy = XdsProxy::start(test, snapshot, &["--concurrency", "1"]).await;
        let base = format!("http://127.0.0.1:{}", proxy.listener_port("ingress").await);
        TwoEndpoints {
            proxy,
            base,
            first,
            second,
        }
    }
}

/// HTTP/2 upstreams multiplex: one connection per endpoint serves any number of requests. At
/// `max_connections` a worker's pool still opens its first connection to another endpoint,
/// counting `upstream_cx_overflow`: Envoy's per-worker pools do the same, so that no request
/// waits with no connection of its own to wait on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_pool_opens_its_first_connection_to_an_endpoint_over_max_connections() {
    let mut limited = common::xds_proxy::http2_cluster("limited");
    limited.circuit_breakers = Some(common::xds_proxy::yaml(ONE_CONNECTION_ONE_PENDING));
    let TwoEndpoints {
        proxy,
        base,
        first,
        second,
    } = TwoEndpoints::start("h2-breakers", limited).await;

    // Round robin: the first request opens the one connection allowed, to one endpoint.
    let opened = get(&http1_client(), &format!("{base}/echo")).await;
    assert_eq!(opened.status, 200, "{opened:?}");
    assert_eq!(
        proxy.stat("cluster.limited.upstream_cx_overflow").await,
        Some(0)
    );
    // Four at once: two share the open connection, two open the pool's first connection to
    // the other endpoint (over the limit) and share it.
    let mut tasks = Vec::new();
    for i in 0..4 {
        let (client, url) = (http1_client(), format!("{base}/echo?n={i}"));
        tasks.push(tokio::spawn(async move { get(&client, &url).await }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("request"));
    }
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    assert_eq!(
        first.requests_for("/echo") + second.requests_for("/echo"),
        5
    );
    assert!(first.requests_for("/echo") >= 2 && second.requests_for("/echo") >= 2);
    assert_eq!(
        proxy.stat("cluster.limited.upstream_cx_total").await,
        Some(2)
    );
    assert_eq!(
        proxy.stat("cluster.limited.upstream_cx_overflow").await,
        Some(1)
    );
}

/// The same rule for HTTP/1.1: with the one connection allowed idle in the pool to one
/// endpoint, a request for the other endpoint opens a connection over the limit at once
/// instead of waiting as pending for a slot that an idle keep-alive connection never frees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_pool_opens_its_first_connection_to_an_endpoint_over_max_connections() {
    let limited = cluster(
        "limited",
        &format!("circuit_breakers: {{ {ONE_CONNECTION_ONE_PENDING} }}"),
    );
    let TwoEndpoints {
        proxy,
        base,
        first,
        second,
    } = TwoEndpoints::start("h1-breakers", limited).await;
    let client = http1_client();

    // One after the other, round robin: each endpoint once, each over its own connection.
    let answers = [
        get(&client, &format!("{base}/echo")).await,
        get(&client, &format!("{base}/echo")).await,
    ];
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    assert_eq!(
        (first.requests_for("/echo"), second.requests_for("/echo")),
        (1, 1)
    );
    assert_eq!(
        proxy.stat("cluster.limited.upstream_cx_total").await,
        Some(2)
    );
    assert_eq!(
        proxy.stat("cluster.limited.upstream_cx_overflow").await,
        Some(1)
    );
    assert_eq!(
        proxy
            .stat("cluster.limited.upstream_rq_pending_overflow")
            .await,
        Some(0)
    );
    // Both connections are reused from then on: no more connections.
    for _ in 0..4 {
        assert_eq!(get(&client, &format!("{base}/echo")).await.status, 200);
    }
    assert_eq!(
        proxy.stat("cluster.limited.upstream_cx_total").await,
        Some(2)
    );
}
