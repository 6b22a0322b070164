//! Issue 10's connection floods, replayed through the real binary: a connection accepted over
//! a limit is closed at once and counted, whether the limit is the overload manager's global
//! one (Envoy's `global_downstream_max_connections` monitor; `downstream_global_cx_overflow`)
//! or the listener's own (Envoy's runtime key
//! `envoy.resource_limits.listener.<name>.connection_limit`; `downstream_cx_overflow`); a
//! listener with `ignore_global_conn_limit` serves regardless; a connection that closes gives
//! its place back, a WebSocket tunnel only when it closes.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::websocket::handshake;
use common::xds_proxy::{
    XdsProxy, backend_snapshot, eventually, get, http_listener, http1_client, proxy_to_backend,
    routes,
};

const LIMIT: &str = "
overload_manager:
  resource_monitors:
  - name: envoy.resource_monitors.global_downstream_max_connections
    typed_config:
      '@type': type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig
      max_active_downstream_connections: 3
";

/// Sends a request on a new connection and reads what comes back before the connection
/// closes: empty when the proxy closed it without an answer.
fn exchange(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // Refused connections may already be closed: a failed write is an answer too.
    let _ = stream.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Fills `listener` (stats `http.limited.*`) with `places` silent connections, checks that
/// one more is closed unanswered and counted in `overflow`, and returns the silent ones.
async fn fill_and_overflow(
    proxy: &XdsProxy,
    listener: SocketAddr,
    places: u64,
    overflow: &str,
) -> Vec<TcpStream> {
    assert_eq!(proxy.stat(overflow).await, Some(0));
    let silent: Vec<TcpStream> = (0..places)
        .map(|_| TcpStream::connect(listener).expect("connect"))
        .collect();
    assert!(
        eventually(Duration::from_secs(10), || {
            proxy.stat_blocking("http.limited.downstream_cx_active") == Some(places)
        })
        .await,
        "the silent connections were not all accepted"
    );
    let answer = tokio::task::block_in_place(|| exchange(listener));
    assert_eq!(
        answer, "",
        "a connection over the limit is closed unanswered"
    );
    assert_eq!(proxy.stat(overflow).await, Some(1));
    silent
}

/// Once the silent connections leave, their places serve the next clients.
async fn places_come_back(proxy: &XdsProxy, listener: SocketAddr, silent: Vec<TcpStream>) {
    drop(silent);
    assert!(
        eventually(Duration::from_secs(10), || {
            proxy.stat_blocking("http.limited.downstream_cx_active") == Some(0)
        })
        .await,
        "the silent connections' places were not given back"
    );
    let answer = tokio::task::block_in_place(|| exchange(listener));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_global_limit_are_closed_and_counted() {
    let (_backend, snapshot) = backend_snapshot().await;
    let mut exempt = http_listener("exempt", 0, "exempt", "");
    exempt.ignore_global_conn_limit = true;
    let snapshot = snapshot
        .with(http_listener("limited", 0, "limited", ""))
        .with(exempt)
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: backend }",
        ));
    let proxy = XdsProxy::start_with_bootstrap(
        "hardening-connections",
        snapshot,
        &["--concurrency", "1"],
        LIMIT,
    )
    .await;
    let limited = SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("limited").await));
    let exempt = SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("exempt").await));
    let overflow = format!(
        "listener.127.0.0.1_{}.downstream_global_cx_overflow",
        limited.port()
    );
    // Three silent connections take every place; the fourth is closed and counted.
    let silent = fill_and_overflow(&proxy, limited, 3, &overflow).await;
    // The exempt listener serves all the same.
    let answer = get(&http1_client(), &format!("http://{exempt}/")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    places_come_back(&proxy, limited, silent).await;
}

/// A listener's own limit (Envoy's runtime key
/// `envoy.resource_limits.listener.<name>.connection_limit`) refuses its connections over
/// it, counted in `downstream_cx_overflow`; other listeners are not limited by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_connection_limit_closes_and_counts_its_overflow() {
    let (_backend, snapshot) = backend_snapshot().await;
    let snapshot = snapshot
        .with(http_listener("limited", 0, "limited", ""))
        .with(http_listener("other", 0, "other", ""))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: backend }",
        ));
    let runtime = "
layered_runtime:
  layers:
  - name: limits
    static_layer:
      envoy.resource_limits.listener.limited.connection_limit: 2
";
    let proxy = XdsProxy::start_with_bootstrap(
        "hardening-listener-limit",
        snapshot,
        &["--concurrency", "2"],
        runtime,
    )
    .await;
    let limited = SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("limited").await));
    let other = SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("other").await));
    let overflow = format!(
        "listener.127.0.0.1_{}.downstream_cx_overflow",
        limited.port()
    );
    // Two silent connections take the listener's places, whichever worker accepted them.
    let silent = fill_and_overflow(&proxy, limited, 2, &overflow).await;
    // Another listener is not limited by it.
    let others: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(other).expect("connect"))
        .collect();
    let answer = tokio::task::block_in_place(|| exchange(other));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(others);
    places_come_back(&proxy, limited, silent).await;
}

/// hyper lets go of a connection it upgrades, but the socket stays open as a tunnel: each
/// WebSocket keeps its place under the limit (and in `downstream_cx_active`) until it closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_tunnels_keep_their_place_under_the_limit() {
    let (_backend, snapshot) = backend_snapshot().await;
    let snapshot = snapshot
        .with(http_listener(
            "limited",
            0,
            "limited",
            "      upgrade_configs: [{ upgrade_type: websocket }]",
        ))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: backend }",
        ));
    let proxy = XdsProxy::start_with_bootstrap(
        "hardening-tunnel-limit",
        snapshot,
        &["--concurrency", "1"],
        LIMIT,
    )
    .await;
    let limited = SocketAddr::from(([127, 0, 0, 1], proxy.listener_port("limited").await));
    let overflow = format!(
        "listener.127.0.0.1_{}.downstream_global_cx_overflow",
        limited.port()
    );

    // Three tunnels take every place.
    let mut tunnels = Vec::new();
    for _ in 0..3 {
        let (head, stream) = handshake(limited, "/ws").await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        tunnels.push(stream);
    }
    assert_eq!(
        proxy.stat("http.limited.downstream_cx_active").await,
        Some(3),
        "open tunnels are active connections"
    );
    let answer = tokio::task::block_in_place(|| exchange(limited));
    assert_eq!(
        answer, "",
        "a connection over the limit is closed unanswered"
    );
    assert_eq!(proxy.stat(&overflow).await, Some(1));

    // One tunnel closes: its place serves the next client.
    drop(tunnels.pop());
    assert!(
        eventually(Duration::from_secs(10), || {
            proxy.stat_blocking("http.limited.downstream_cx_active") == Some(2)
        })
        .await,
        "the closed tunnel's place was not given back"
    );
    let answer = tokio::task::block_in_place(|| exchange(limited));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Out of file descriptors, a listener backs off instead of spinning, logs one line for the
/// run of failures rather than one per failure, and serves again once descriptors are back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_out_of_file_descriptors_backs_off_and_recovers() {
    let (proxy, addr, _backend) =
        proxy_to_backend("hardening-fd-exhaustion", "{ cluster: backend }").await;
    // Room for ten more descriptors than the proxy has open now.
    let pid = proxy.process.pid();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc")
        .count();
    let limit = format!("--nofile={}", open + 10);
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &limit])
        .status()
        .expect("prlimit");
    assert!(status.success(), "prlimit failed");

    // Forty silent clients: the proxy runs out after about ten.
    let flood: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    assert!(
        eventually(Duration::from_secs(10), || {
            proxy
                .process
                .stderr()
                .contains("accept failing; backing off")
        })
        .await,
        "no accept failure logged: {}",
        proxy.process.stderr()
    );
    // A second of failures (a hundred or more retries without back-off) logs one line.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let logged = proxy.process.stderr().matches("accept failing").count();
    assert!(logged <= 2, "{logged} lines:\n{}", proxy.process.stderr());

    // The flood leaves: the listener accepts again and serves.
    drop(flood);
    let client = http1_client();
    let url = format!("http://{addr}/");
    let mut served = false;
    for _ in 0..50 {
        if get(&client, &url).await.status == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "never served again:\n{}", proxy.process.stderr());
    // Recovering within the 10 s does not reopen the log: still one line.
    let stderr = proxy.process.stderr();
    let logged =
        stderr.matches("accept failing").count() + stderr.matches("accepting again").count();
    assert!(logged <= 2, "{logged} lines:\n{stderr}");
}
