//! Issue 10's connection floods, replayed through the real binary: the overload manager's
//! global downstream connection limit (as Envoy's `global_downstream_max_connections`
//! monitor) closes connections accepted over it at once and counts them per listener; a
//! listener with `ignore_global_conn_limit` serves regardless; a connection that closes gives
//! its place back.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

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
    assert_eq!(proxy.stat(&overflow).await, Some(0));

    // Three silent connections take every place.
    let silent: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(limited).expect("connect"))
        .collect();
    assert!(
        eventually(Duration::from_secs(10), || {
            proxy.stat_blocking("http.limited.downstream_cx_active") == Some(3)
        })
        .await,
        "the silent connections were not all accepted"
    );

    // The fourth is closed unanswered, and counted.
    let answer = tokio::task::block_in_place(|| exchange(limited));
    assert_eq!(
        answer, "",
        "a connection over the limit is closed unanswered"
    );
    assert_eq!(proxy.stat(&overflow).await, Some(1));
    // The exempt listener serves all the same.
    let answer = get(&http1_client(), &format!("http://{exempt}/")).await;
    assert_eq!(answer.status, 200, "{answer:?}");

    // The silent connections leave: their places serve the next clients.
    drop(silent);
    assert!(
        eventually(Duration::from_secs(10), || {
            proxy.stat_blocking("http.limited.downstream_cx_active") == Some(0)
        })
        .await,
        "the silent connections' places were not given back"
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
