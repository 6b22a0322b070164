//! Every load-balancing policy's distribution, seen through the real binary with one worker (so
//! one balancer sees every request): weighted round robin, least request against a slow
//! endpoint, random, ring hash and Maglev with a header hash policy, and weighted clusters on a
//! route. Bounds are loose enough for randomness and tight enough to tell the policies apart.

mod common;

use std::time::Duration;

use common::xds_proxy::{
    Answer, XdsProxy, cluster, endpoints, get, get_with, http_listener, http1_client, routes,
    tally, weighted_endpoints,
};
use outrider_upstream_server::{UpstreamConfig, UpstreamServer};
use xds_conformance::Snapshot;

async fn upstream(name: &str) -> UpstreamServer {
    UpstreamServer::start_local(UpstreamConfig::new(name))
        .await
        .expect("upstream")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_lb_policy_spreads_requests_as_envoy_does() {
    let (a, b, c) = (
        upstream("a").await,
        upstream("b").await,
        upstream("c").await,
    );
    let slow = UpstreamServer::start_local(
        UpstreamConfig::new("slow").with_latency(Duration::from_millis(200)),
    )
    .await
    .expect("upstream");
    let three = [a.addr(), b.addr(), c.addr()];
    let snapshot = Snapshot::new("1")
        .with(cluster("rr", "lb_policy: ROUND_ROBIN"))
        .with(weighted_endpoints("rr", &[(a.addr(), 1), (b.addr(), 3)]))
        .with(cluster("lr", "lb_policy: LEAST_REQUEST"))
        .with(endpoints("lr", &[slow.addr(), a.addr(), b.addr()]))
        .with(cluster("random", "lb_policy: RANDOM"))
        .with(endpoints("random", &three))
        .with(cluster("ring", "lb_policy: RING_HASH"))
        .with(endpoints("ring", &three))
        .with(cluster("maglev", "lb_policy: MAGLEV"))
        .with(endpoints("maglev", &three))
        .with(cluster("split_a", ""))
        .with(endpoints("split_a", &[a.addr()]))
        .with(cluster("split_b", ""))
        .with(endpoints("split_b", &[b.addr()]))
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(
            r#"  - match: { prefix: /rr }
    route: { cluster: rr }
  - match: { prefix: /lr }
    route: { cluster: lr }
  - match: { prefix: /random }
    route: { cluster: random }
  - match: { prefix: /ring }
    route: { cluster: ring, hash_policy: [{ header: { header_name: x-user } }] }
  - match: { prefix: /maglev }
    route: { cluster: maglev, hash_policy: [{ header: { header_name: x-user } }] }
  - match: { prefix: /split }
    route:
      weighted_clusters:
        clusters: [{ name: split_a, weight: 20 }, { name: split_b, weight: 80 }]"#,
        ));
    let proxy = XdsProxy::start("policies", snapshot, &["--concurrency", "1"]).await;
    let base = format!("http://127.0.0.1:{}", proxy.listener_port("ingress").await);
    let client = http1_client();

    // Weighted round robin, 1:3: smooth weighted rotation, so 200 requests split 50/150 give
    // or take the rotation's starting point.
    let mut answers = Vec::new();
    for _ in 0..200 {
        answers.push(get(&client, &format!("{base}/rr")).await);
    }
    let counts = tally(&answers);
    assert!(answers.iter().all(|r| r.status == 200), "{counts:?}");
    assert!((40..=60).contains(&counts["a"]), "{counts:?}");
    assert!((140..=160).contains(&counts["b"]), "{counts:?}");

    // Random: every endpoint used, roughly a third each (expected 100, sd ≈ 8).
    let mut answers = Vec::new();
    for _ in 0..300 {
        answers.push(get(&client, &format!("{base}/random")).await);
    }
    let counts = tally(&answers);
    assert_eq!(counts.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert!(
        counts.values().all(|n| (60..=140).contains(n)),
        "{counts:?}"
    );

    // Least request (power of two choices): with eight requests always in flight, the slow
    // endpoint holds more of them, so it is chosen only when both draws land on it (1 in 9),
    // against 1 in 3 under round robin or random.
    let mut load = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        let url = format!("{base}/lr");
        load.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..25 {
                answers.push(get(&client, &url).await);
            }
            answers
        }));
    }
    let mut answers: Vec<Answer> = Vec::new();
    for task in load {
        answers.extend(task.await.expect("load task"));
    }
    let counts = tally(&answers);
    assert!(answers.iter().all(|r| r.status == 200), "{counts:?}");
    let slow_share = counts.get("slow").copied().unwrap_or(0);
    // Round robin or random would give it about 67; the bound leaves room for a loaded CI box.
    assert!(slow_share < 50, "slow got {slow_share} of 200: {counts:?}");
    assert!(counts["a"] > 60 && counts["b"] > 60, "{counts:?}");

    // Ring hash and Maglev: one user always lands on one endpoint; many users spread.
    for policy in ["ring", "maglev"] {
        let url = format!("{base}/{policy}");
        for user in ["alice", "bob", "carol"] {
            let mut answers = Vec::new();
            for _ in 0..10 {
                answers.push(get_with(&client, &url, &[("x-user", user)]).await);
            }
            let counts = tally(&answers);
            assert_eq!(counts.len(), 1, "{policy} {user}: {counts:?}");
        }
        let mut answers = Vec::new();
        for user in 0..60 {
            let user = format!("user-{user}");
            answers.push(get_with(&client, &url, &[("x-user", &user)]).await);
        }
        let counts = tally(&answers);
        assert_eq!(
            counts.keys().collect::<Vec<_>>(),
            ["a", "b", "c"],
            "{policy}"
        );
    }

    // Weighted clusters 20/80 over 300 requests (expected 60/240, sd ≈ 7).
    let mut answers = Vec::new();
    for _ in 0..300 {
        answers.push(get(&client, &format!("{base}/split")).await);
    }
    let counts = tally(&answers);
    assert!((35..=85).contains(&counts["a"]), "{counts:?}");
    assert_eq!(counts["a"] + counts["b"], 300, "{counts:?}");
}

/// A cookie hash policy with a `ttl` gives a client without the cookie a generated one
/// (`Set-Cookie`, formatted as Envoy's) and hashes that value, so the client sending it back
/// stays on the endpoint that answered its first request. Without `ttl`, nothing is generated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_hash_cookies_keep_a_client_on_its_endpoint() {
    let (a, b, c) = (
        upstream("a").await,
        upstream("b").await,
        upstream("c").await,
    );
    let snapshot = Snapshot::new("1")
        .with(cluster("ring", "lb_policy: RING_HASH"))
        .with(endpoints("ring", &[a.addr(), b.addr(), c.addr()]))
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(
            r#"  - match: { prefix: /sticky }
    route: { cluster: ring, hash_policy: [{ cookie: { name: sticky, ttl: 3600s, path: / } }] }
  - match: { prefix: /session }
    route: { cluster: ring, hash_policy: [{ cookie: { name: session, ttl: 0s } }] }
  - match: { prefix: /plain }
    route: { cluster: ring, hash_policy: [{ cookie: { name: plain } }] }"#,
        ));
    let proxy = XdsProxy::start("hash-cookies", snapshot, &["--concurrency", "1"]).await;
    let base = format!("http://127.0.0.1:{}", proxy.listener_port("ingress").await);
    let client = http1_client();

    // Each fresh connection gets its own cookie (the value hashes the connection's
    // addresses), so three clients test three values.
    for _ in 0..3 {
        let client = http1_client();
        let first = get(&client, &format!("{base}/sticky")).await;
        assert_eq!(first.status, 200, "{first:?}");
        let set_cookie = first.header("set-cookie").expect("a generated cookie");
        let value = set_cookie
            .strip_prefix("sticky=\"")
            .and_then(|rest| rest.split_once('"'))
            .map(|(value, attributes)| {
                assert_eq!(attributes, "; Max-Age=3600; Path=/; HttpOnly");
                value
            })
            .unwrap_or_else(|| panic!("unexpected Set-Cookie {set_cookie}"));
        assert_eq!(value.len(), 16, "16 hex digits, as Envoy: {value}");
        // The cookie sent back, quoted or not, hashes to the first answer's endpoint.
        for cookie in [
            format!("sticky={value}"),
            format!("other=1; sticky=\"{value}\""),
        ] {
            for _ in 0..10 {
                let answer = get_with(
                    &client,
                    &format!("{base}/sticky"),
                    &[("cookie", cookie.as_str())],
                )
                .await;
                assert_eq!(answer.upstream(), first.upstream(), "{cookie}: {answer:?}");
                assert_eq!(answer.header("set-cookie"), None, "the client has it");
            }
        }
    }

    let session = get(&client, &format!("{base}/session")).await;
    let set_cookie = session.header("set-cookie").expect("a session cookie");
    assert!(
        set_cookie.starts_with("session=\"") && set_cookie.ends_with("\"; HttpOnly"),
        "no Max-Age, no Path: {set_cookie}"
    );

    let plain = get(&client, &format!("{base}/plain")).await;
    assert_eq!(plain.status, 200, "{plain:?}");
    assert_eq!(
        plain.header("set-cookie"),
        None,
        "without ttl nothing is generated"
    );
}

/// With the `previous_hosts` predicate a retry goes to a host not tried yet; without it a
/// retry may land on the failing host again, as in Envoy (RANDOM picks, one retry each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_avoid_tried_hosts_only_with_the_previous_hosts_predicate() {
    let failing = UpstreamServer::start_local(UpstreamConfig::new("failing").with_fail_ratio(1.0))
        .await
        .expect("upstream");
    let healthy = upstream("healthy").await;
    let snapshot = Snapshot::new("1")
        .with(cluster("pair", "lb_policy: RANDOM"))
        .with(endpoints("pair", &[failing.addr(), healthy.addr()]))
        .with(http_listener("ingress", 0, "ingress", ""))
        .with(routes(
            r#"  - match: { prefix: /avoid }
    route:
      cluster: pair
      retry_policy:
        retry_on: 5xx
        num_retries: 1
        retry_host_predicate: [{ name: envoy.retry_host_predicates.previous_hosts }]
  - match: { prefix: /same }
    route: { cluster: pair, retry_policy: { retry_on: 5xx, num_retries: 1 } }"#,
        ));
    let proxy = XdsProxy::start("previous-hosts", snapshot, &["--concurrency", "1"]).await;
    let base = format!("http://127.0.0.1:{}", proxy.listener_port("ingress").await);
    let client = http1_client();
    let mut failed = [0u32; 2];
    for (route, failures) in ["/avoid", "/same"].iter().zip(failed.iter_mut()) {
        for _ in 0..60 {
            if get(&client, &format!("{base}{route}")).await.status != 200 {
                *failures += 1;
            }
        }
    }
    assert_eq!(failed[0], 0, "a retry went back to the host that failed");
    // Without the predicate a quarter of requests meet the failing host twice: none in 60
    // happens with probability 0.75^60 (3e-8).
    assert!(
        failed[1] > 0,
        "retries never returned to the failing host: {failed:?}"
    );
}

/// `per_request_buffer_limit_bytes` (route, else virtual host) bounds the body kept for a
/// retry: a larger body is streamed to its one attempt, whose failure the client then sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_buffer_limit_decides_which_bodies_can_be_retried() {
    // Every second request fails.
    let flaky = UpstreamServer::start_local(UpstreamConfig::new("flaky").with_fail_every(2))
        .await
        .expect("upstream");
    let listener = http_listener("ingress", 0, "ingress", "");
    let snapshot = flaky_retries(&flaky, listener, "per_request_buffer_limit_bytes: 64");
    let proxy = XdsProxy::start("request-buffer-limit", snapshot, &["--concurrency", "1"]).await;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("ingress").await));
    let post = |path: &str| post_100_bytes(addr, path);
    // Request 1 passes; from then on each first attempt is an even one, and fails.
    assert_eq!(post("/warm-up"), "HTTP/1.1 200 OK");
    // 100 bytes under the route's 1 KiB: kept, the failure retried (requests 2 and 3).
    assert_eq!(post("/route-limit"), "HTTP/1.1 200 OK");
    // 100 bytes over the virtual host's 64: streamed, its failure is the answer (request 4).
    assert_eq!(post("/vhost-limit"), "HTTP/1.1 503 Service Unavailable");
    assert_eq!(flaky.requests_for("/route-limit"), 2);
    assert_eq!(flaky.requests_for("/vhost-limit"), 1);
}

/// The status line of a 100-byte POST to `path`, on a connection of its own.
fn post_100_bytes(addr: std::net::SocketAddr, path: &str) -> String {
    let body = "x".repeat(100);
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: a\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let (response, _) =
        tokio::task::block_in_place(|| common::raw_http::raw_exchange(addr, request.as_bytes()));
    common::raw_http::status_line(&response).to_string()
}

/// Where neither the route nor its virtual host sets `per_request_buffer_limit_bytes`, the
/// listener's `per_connection_buffer_limit_bytes` bounds the body kept for a retry (Envoy's
/// connection buffer limit); a route's own limit still wins over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_buffer_limit_bounds_retries_where_the_route_sets_none() {
    let flaky = UpstreamServer::start_local(UpstreamConfig::new("flaky").with_fail_every(2))
        .await
        .expect("upstream");
    let mut listener = http_listener("ingress", 0, "ingress", "");
    listener.per_connection_buffer_limit_bytes =
        Some(envoy_types::pb::google::protobuf::UInt32Value { value: 64 });
    let snapshot = flaky_retries(&flaky, listener, "");
    let proxy = XdsProxy::start("connection-buffer-limit", snapshot, &["--concurrency", "1"]).await;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("ingress").await));
    // Request 1 passes; from then on each first attempt is an even one, and fails.
    assert_eq!(post_100_bytes(addr, "/warm-up"), "HTTP/1.1 200 OK");
    // Under the route's 1 KiB: kept, the failure retried (requests 2 and 3).
    assert_eq!(post_100_bytes(addr, "/route-limit"), "HTTP/1.1 200 OK");
    // 100 bytes over the listener's 64: streamed, its failure is the answer (request 4).
    assert_eq!(
        post_100_bytes(addr, "/listener-limit"),
        "HTTP/1.1 503 Service Unavailable"
    );
    assert_eq!(flaky.requests_for("/listener-limit"), 1);
    assert_eq!(flaky.requests_for("/route-limit"), 2);
    // The warm-up's body was over the listener's limit too.
    assert_eq!(
        proxy.stat("cluster.flaky.retry_or_shadow_abandoned").await,
        Some(2)
    );
}

/// `flaky` behind `listener`, on routes that retry a 5xx once: `/route-limit` keeps bodies up
/// to 1 KiB for it, every other path what `vhost_extra` (a virtual host field) says.
fn flaky_retries(
    flaky: &UpstreamServer,
    listener: envoy_types::pb::envoy::config::listener::v3::Listener,
    vhost_extra: &str,
) -> Snapshot {
    Snapshot::new("1")
        .with(cluster("flaky", ""))
        .with(endpoints("flaky", &[flaky.addr()]))
        .with(listener)
        .with(common::xds_proxy::yaml::<
            envoy_types::pb::envoy::config::route::v3::RouteConfiguration,
        >(&format!(
            r#"
name: routes
virtual_hosts:
- name: all
  domains: ["*"]
  {vhost_extra}
  retry_policy: {{ retry_on: 5xx, num_retries: 1 }}
  routes:
  - match: {{ prefix: /route-limit }}
    per_request_buffer_limit_bytes: 1024
    route: {{ cluster: flaky }}
  - match: {{ prefix: / }}
    route: {{ cluster: flaky }}
"#
        )))
}
