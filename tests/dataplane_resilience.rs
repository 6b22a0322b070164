//! Timeouts, retries, circuit breaking and connect failures through the real binary, as a
//! client sees them: the status, Envoy's headers, how long it took, and which upstream answered.

mod common;

use std::time::{Duration, Instant};

use common::xds_proxy::{
    XdsProxy, closed_port, cluster, endpoints, eventually, get, get_with, http_listener,
    http1_client, routes, yaml,
};
use outrider_upstream_server::{UpstreamConfig, UpstreamServer};
use xds_conformance::Snapshot;

async fn upstream(config: UpstreamConfig) -> UpstreamServer {
    UpstreamServer::start_local(config).await.expect("upstream")
}

const ROUTES: &str = r#"  - match: { prefix: /timeout/ }
    route: { cluster: single, timeout: 0.2s, prefix_rewrite: / }
  - match: { prefix: /default/ }
    route: { cluster: single, prefix_rewrite: / }
  - match: { prefix: /no-timeout/ }
    route: { cluster: single, timeout: 0s, prefix_rewrite: / }
  - match: { prefix: /per-try/ }
    route:
      cluster: pair
      timeout: 5s
      prefix_rewrite: /
      retry_policy: { retry_on: 5xx, num_retries: 1, per_try_timeout: 0.3s }
  - match: { prefix: /teapot-retry/ }
    route:
      cluster: teapots
      prefix_rewrite: /
      retry_policy: { retry_on: retriable-status-codes, retriable_status_codes: [418], num_retries: 1 }
  - match: { prefix: /teapot/ }
    route: { cluster: teapots, prefix_rewrite: / }
  - match: { prefix: /broken/ }
    route:
      cluster: broken
      prefix_rewrite: /
      retry_policy: { retry_on: 5xx, num_retries: 1 }
  - match: { prefix: /guarded/ }
    route: { cluster: guarded, prefix_rewrite: / }
  - match: { prefix: /dead/ }
    route: { cluster: dead, prefix_rewrite: / }
  - match: { prefix: /half-dead/ }
    route:
      cluster: half_dead
      prefix_rewrite: /
      retry_policy: { retry_on: connect-failure, num_retries: 1 }
  - match: { prefix: /half-dead-gateway/ }
    route:
      cluster: half_dead
      prefix_rewrite: /
      retry_policy: { retry_on: gateway-error, num_retries: 1 }
  - match: { prefix: /half-dead-reset/ }
    route:
      cluster: half_dead
      prefix_rewrite: /
      retry_policy: { retry_on: reset, num_retries: 1 }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_retries_breakers_and_connect_failures() {
    let plain = upstream(UpstreamConfig::new("plain")).await;
    let sleepy = upstream(UpstreamConfig::new("sleepy").with_latency(Duration::from_secs(1))).await;
    let quick = upstream(UpstreamConfig::new("quick")).await;
    let teapot = upstream(UpstreamConfig::new("teapot")).await;
    teapot.set_fail_status(418).expect("status");
    teapot.set_failing(true);
    let fine = upstream(UpstreamConfig::new("fine")).await;
    let mut broken = Vec::new();
    for name in ["f1", "f2", "f3"] {
        let server = upstream(UpstreamConfig::new(name)).await;
        server.set_fail_status(503).expect("status");
        server.set_failing(true);
        broken.push(server);
    }
    let dead = closed_port();
    let snapshot = Snapshot::new("1")
        .with(cluster("single", ""))
        .with(endpoints("single", &[plain.addr()]))
        .with(cluster("pair", ""))
        .with(endpoints("pair", &[sleepy.addr(), quick.addr()]))
        .with(cluster("teapots", ""))
        .with(endpoints("teapots", &[teapot.addr(), fine.addr()]))
        .with(cluster("broken", ""))
        .with(endpoints(
            "broken",
            &broken.iter().map(UpstreamServer::addr).collect::<Vec<_>>(),
        ))
        .with(cluster(
            "guarded",
            "circuit_breakers: { thresholds: [{ max_requests: 1 }] }",
        ))
        .with(endpoints("guarded", &[plain.addr()]))
        .with(cluster("dead", ""))
        .with(endpoints("dead", &[dead]))
        .with(cluster("half_dead", ""))
        .with(endpoints("half_dead", &[dead, plain.addr()]))
        // Requests forwarded by 127.0.0.1 are internal: their x-envoy-* controls count.
        .with(http_listener(
            "ingress",
            0,
            "ingress",
            "      internal_address_config: { cidr_ranges: [ { address_prefix: 127.0.0.1, prefix_len: 32 } ] }",
        ))
        .with(routes(ROUTES));
    let proxy = XdsProxy::start("resilience", snapshot, &["--concurrency", "1"]).await;
    let base = format!("http://127.0.0.1:{}", proxy.listener_port("ingress").await);
    let client = http1_client();

    // Route timeout: a 2 s upstream behind a 0.2 s route is a 504 long before the upstream
    // would have answered.
    let started = Instant::now();
    let answer = get(&client, &format!("{base}/timeout/delay/2000")).await;
    let took = started.elapsed();
    assert_eq!(answer.status, 504, "{answer:?}");
    assert_eq!(answer.body, "upstream request timeout");
    assert!(took < Duration::from_millis(1500), "took {took:?}");

    // The upstream learns the timeout it has: Envoy's 15 s by default, none for `timeout: 0s`
    // (which disables it, as in Envoy: no 504 after 15 s).
    let expected = |path: &str| {
        let client = client.clone();
        let url = format!("{base}{path}");
        async move {
            let echo = get(&client, &url).await;
            let echoed: serde_json::Value = serde_json::from_str(&echo.body).expect("echo JSON");
            echoed["headers"]
                .as_array()
                .expect("headers")
                .iter()
                .find(|h| h[0] == "x-envoy-expected-rq-timeout-ms")
                .map(|h| h[1].as_str().unwrap_or_default().to_string())
        }
    };
    assert_eq!(expected("/default/echo").await.as_deref(), Some("15000"));
    assert_eq!(expected("/timeout/echo").await.as_deref(), Some("200"));
    assert_eq!(expected("/no-timeout/echo").await, None);

    // x-envoy-upstream-rq-timeout-ms from an internal request overrides the route's timeout,
    // both ways; from an external one (no single internal x-forwarded-for) it is removed.
    const INTERNAL: (&str, &str) = ("x-forwarded-for", "127.0.0.1");
    let started = Instant::now();
    let answer = get_with(
        &client,
        &format!("{base}/default/delay/2000"),
        &[("x-envoy-upstream-rq-timeout-ms", "100"), INTERNAL],
    )
    .await;
    assert_eq!(answer.status, 504, "{answer:?}");
    assert!(started.elapsed() < Duration::from_millis(1500));
    let external = get_with(
        &client,
        &format!("{base}/default/delay/400"),
        &[("x-envoy-upstream-rq-timeout-ms", "100")],
    )
    .await;
    assert_eq!(
        external.status, 200,
        "an external client's timeout is ignored: {external:?}"
    );
    let answer = get_with(
        &client,
        &format!("{base}/timeout/delay/400"),
        &[("x-envoy-upstream-rq-timeout-ms", "5000"), INTERNAL],
    )
    .await;
    assert_eq!(
        (answer.status, answer.upstream()),
        (200, "plain"),
        "{answer:?}"
    );

    // Per-try timeout: a try stuck on the sleepy endpoint is cut at 0.3 s and retried on the
    // quick one, well inside the route's 5 s.
    for _ in 0..4 {
        let started = Instant::now();
        let answer = get(&client, &format!("{base}/per-try/")).await;
        assert_eq!(
            (answer.status, answer.upstream()),
            (200, "quick"),
            "{answer:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(900));
    }
    assert!(
        sleepy.requests_served() >= 1,
        "the sleepy endpoint was tried"
    );

    // retriable-status-codes: 418 is retried on the other endpoint; without the policy the
    // client sees the 418s.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(get(&client, &format!("{base}/teapot/")).await.status);
    }
    assert!(statuses.contains(&418), "{statuses:?}");
    for _ in 0..4 {
        let answer = get(&client, &format!("{base}/teapot-retry/")).await;
        assert_eq!(
            (answer.status, answer.upstream()),
            (200, "fine"),
            "{answer:?}"
        );
    }

    // x-envoy-max-retries replaces the route's num_retries: with every endpoint failing, one
    // request makes 1 + 1 tries by the route, 1 + 2 with the header.
    let failures = |servers: &[UpstreamServer]| -> u64 {
        servers.iter().map(UpstreamServer::failures_injected).sum()
    };
    let answer = get(&client, &format!("{base}/broken/")).await;
    assert_eq!(answer.status, 503);
    assert_eq!(failures(&broken), 2);
    let answer = get_with(
        &client,
        &format!("{base}/broken/"),
        &[("x-envoy-max-retries", "2"), INTERNAL],
    )
    .await;
    assert_eq!(answer.status, 503);
    assert_eq!(failures(&broken), 5);
    let answer = get_with(
        &client,
        &format!("{base}/broken/"),
        &[
            ("x-envoy-max-retries", "2"),
            ("x-forwarded-for", "127.0.0.1, 127.0.0.1"),
        ],
    )
    .await;
    assert_eq!(answer.status, 503);
    assert_eq!(
        failures(&broken),
        7,
        "two hops: external, the route's one retry"
    );

    // Circuit breaker: max_requests 1, so a second request while one is in flight overflows.
    let in_flight = {
        let client = client.clone();
        let url = format!("{base}/guarded/delay/1000");
        tokio::spawn(async move { get(&client, &url).await })
    };
    assert!(
        eventually(Duration::from_secs(5), || plain.requests_for("/delay/1000")
            == 1)
        .await,
        "the first request never reached the upstream"
    );
    let overflow = get(&client, &format!("{base}/guarded/")).await;
    assert_eq!(overflow.status, 503, "{overflow:?}");
    assert_eq!(overflow.header("x-envoy-overloaded"), Some("true"));
    let first = in_flight.await.expect("first request");
    assert_eq!(first.status, 200, "{first:?}");
    let after = get(&client, &format!("{base}/guarded/")).await;
    assert_eq!(after.status, 200, "the breaker closes again: {after:?}");

    // Connect failure: 503 with Envoy's body; with retry_on connect-failure the live endpoint
    // answers every time.
    let answer = get(&client, &format!("{base}/dead/")).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(
        answer.body.starts_with("upstream connect error"),
        "{answer:?}"
    );
    for _ in 0..4 {
        let answer = get(&client, &format!("{base}/half-dead/")).await;
        assert_eq!(
            (answer.status, answer.upstream()),
            (200, "plain"),
            "{answer:?}"
        );
    }
    // Envoy retries a failed connect under gateway-error and reset too.
    for prefix in ["half-dead-gateway", "half-dead-reset"] {
        for _ in 0..4 {
            let answer = get(&client, &format!("{base}/{prefix}/")).await;
            assert_eq!(
                (answer.status, answer.upstream()),
                (200, "plain"),
                "{prefix}: {answer:?}"
            );
        }
    }
}

/// The router's Envoy headers (`x-envoy-original-path` on a rewrite too), and the virtual
/// host's attempt counts, as the client and the upstream see them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_counts_and_suppressed_envoy_headers() {
    let flaky = upstream(UpstreamConfig::new("flaky")).await;
    flaky.set_fail_status(503).expect("status");
    flaky.set_failing(true);
    let fine = upstream(UpstreamConfig::new("fine")).await;
    let route_table: envoy_types::pb::envoy::config::route::v3::RouteConfiguration = yaml(
        r#"
name: routes
virtual_hosts:
- name: all
  domains: ["*"]
  include_request_attempt_count: true
  include_attempt_count_in_response: true
  routes:
  - match: { prefix: /retry/ }
    route:
      cluster: pair
      prefix_rewrite: /
      retry_policy: { retry_on: 5xx, num_retries: 1 }
  - match: { prefix: / }
    route: { cluster: fine }
"#,
    );
    let quiet: envoy_types::pb::envoy::config::listener::v3::Listener = yaml(
        r#"
name: quiet
address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: quiet
      rds: { route_config_name: routes, config_source: { ads: {} } }
      http_filters:
      - name: envoy.filters.http.router
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          suppress_envoy_headers: true
"#,
    );
    let snapshot = Snapshot::new("1")
        .with(cluster("pair", ""))
        .with(endpoints("pair", &[flaky.addr(), fine.addr()]))
        .with(cluster("fine", ""))
        .with(endpoints("fine", &[fine.addr()]))
        .with(http_listener("plain", 0, "plain", ""))
        .with(quiet)
        .with(route_table);
    let proxy = XdsProxy::start("envoy-headers", snapshot, &["--concurrency", "1"]).await;
    let plain = format!("http://127.0.0.1:{}", proxy.listener_port("plain").await);
    let quiet = format!("http://127.0.0.1:{}", proxy.listener_port("quiet").await);
    let client = http1_client();

    // Each try carries its number; the answer says how many it took.
    let mut retried = 0;
    for _ in 0..8 {
        let before = flaky.requests_served();
        let answer = get(&client, &format!("{plain}/retry/echo")).await;
        let tries = if flaky.requests_served() > before {
            "2"
        } else {
            "1"
        };
        retried += usize::from(tries == "2");
        assert_eq!(
            (answer.status, answer.upstream()),
            (200, "fine"),
            "{answer:?}"
        );
        assert_eq!(answer.header("x-envoy-attempt-count"), Some(tries));
        let echoed: serde_json::Value = serde_json::from_str(&answer.body).expect("echo JSON");
        let sent = echoed["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .find(|h| h[0] == "x-envoy-attempt-count")
            .and_then(|h| h[1].as_str())
            .map(str::to_string);
        assert_eq!(sent.as_deref(), Some(tries), "{echoed}");
        // The rewritten path's original, for the upstream.
        let original = echoed["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .find(|h| h[0] == "x-envoy-original-path")
            .and_then(|h| h[1].as_str());
        assert_eq!(original, Some("/retry/echo"), "{echoed}");
    }
    assert!(
        retried > 0,
        "round robin never reached the failing endpoint"
    );

    // suppress_envoy_headers: no x-envoy-upstream-service-time for the client, no
    // x-envoy-expected-rq-timeout-ms for the upstream; the default router adds both.
    let quiet_rewrite = get(&client, &format!("{quiet}/retry/echo")).await;
    assert_eq!(quiet_rewrite.status, 200, "{quiet_rewrite:?}");
    assert!(
        !quiet_rewrite.body.contains("x-envoy-original-path"),
        "{}",
        quiet_rewrite.body
    );
    for (base, envoy_headers) in [(&plain, true), (&quiet, false)] {
        let answer = get(&client, &format!("{base}/echo")).await;
        assert_eq!(
            answer.header("x-envoy-upstream-service-time").is_some(),
            envoy_headers,
            "{base}: {answer:?}"
        );
        assert_eq!(
            answer.body.contains("x-envoy-expected-rq-timeout-ms"),
            envoy_headers,
            "{base}: {}",
            answer.body
        );
    }
}
