//! Listener drain through the real binary (`--drain-time-s 5`): a listener changed while a slow
//! request is in flight on a keep-alive HTTP/1.1 connection finishes that request, answers it
//! with `connection: close` and closes; new connections already reach the new configuration on
//! the same port; a removed listener stops accepting, and a removed TCP proxy listener's
//! connections keep working during the drain time, then close.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::xds_proxy::{
    XdsProxy, closed_port, cluster, endpoints, eventually, http_listener, routes, tcp_echo_server,
    tcp_listener,
};
use outrider_upstream_server::{UpstreamConfig, UpstreamServer};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use xds_conformance::{Snapshot, type_url};

/// A keep-alive HTTP/1.1 connection driven by hand, to see exactly which connection a response
/// came on and what its headers say.
struct Connection {
    stream: BufReader<TcpStream>,
}

/// A response head (lower-case header names) and its body.
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Connection {
    async fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        Ok(Connection {
            stream: BufReader::new(TcpStream::connect(addr).await?),
        })
    }

    async fn send(&mut self, path: &str) -> std::io::Result<()> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        self.stream.get_mut().write_all(request.as_bytes()).await
    }

    /// Reads one response with a `content-length` body.
    async fn receive(&mut self) -> std::io::Result<Head> {
        let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        let read = async {
            let mut line = String::new();
            self.stream.read_line(&mut line).await?;
            let status = line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| invalid(format!("status line {line:?}")))?;
            let mut headers = Vec::new();
            loop {
                line.clear();
                self.stream.read_line(&mut line).await?;
                let Some((name, value)) = line.trim_end().split_once(':') else {
                    break;
                };
                headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
            }
            let mut head = Head {
                status,
                headers,
                body: Vec::new(),
            };
            let length: usize = head
                .header("content-length")
                .and_then(|l| l.parse().ok())
                .ok_or_else(|| invalid("no content-length".to_string()))?;
            head.body = vec![0; length];
            self.stream.read_exact(&mut head.body).await?;
            Ok(head)
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no response"))?
    }

    /// Whether the proxy closed the connection (end of stream within 5 s).
    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.stream.read_to_end(&mut rest)).await,
            Ok(Ok(0))
        )
    }
}

/// The `server` header of a new connection's answer: which listener generation served it.
/// `None` if the exchange failed (a connection caught in a closing socket's queue is reset).
async fn served_by(addr: SocketAddr) -> Option<String> {
    let mut connection = Connection::open(addr).await.ok()?;
    connection.send("/echo").await.ok()?;
    let head = connection.receive().await.ok()?;
    head.header("server").map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_listener_drains_in_flight_requests_and_removed_one_stops() {
    let backend = UpstreamServer::start_local(UpstreamConfig::new("backend"))
        .await
        .expect("upstream");
    // A fixed port, so both generations of the listener share it (SO_REUSEPORT).
    let port = closed_port().port();
    // `server_name` makes the generation visible to clients; `stat_prefix` changes with it.
    let listener = |generation: &str| {
        http_listener(
            "ingress",
            port,
            generation,
            &format!("      server_name: {generation}"),
        )
    };
    let (echo, _) = tcp_echo_server().await;
    let snapshot = Snapshot::new("1")
        .with(cluster("echo", ""))
        .with(endpoints("echo", &[echo]))
        .with(tcp_listener("tcp", "echo"))
        .with(cluster("backend", ""))
        .with(endpoints("backend", &[backend.addr()]))
        .with(listener("v1"))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: backend }",
        ));
    let proxy = XdsProxy::start(
        "drain",
        snapshot,
        &["--concurrency", "1", "--drain-time-s", "5"],
    )
    .await;
    assert_eq!(proxy.listener_port("ingress").await, port);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();

    // A keep-alive connection, used once, then a slow request in flight on it.
    let mut old = Connection::open(addr).await.expect("connect");
    old.send("/echo").await.expect("send");
    let first = old.receive().await.expect("response");
    assert_eq!((first.status, first.header("server")), (200, Some("v1")));
    assert_eq!(first.header("connection"), None, "kept alive");
    old.send("/delay/1500").await.expect("send");
    assert!(
        eventually(Duration::from_secs(5), || backend
            .requests_for("/delay/1500")
            == 1)
        .await,
        "the slow request never reached the upstream"
    );

    // Change the listener while it is in flight.
    proxy.server.update_snapshot(|snapshot| {
        snapshot.set_version("2");
        snapshot.insert(&listener("v2"));
    });
    proxy.wait_for_version("lds", "2").await;

    // New connections reach the new generation on the same port.
    let mut newest = None;
    for _ in 0..100 {
        newest = served_by(addr).await;
        if newest.as_deref() == Some("v2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        newest.as_deref(),
        Some("v2"),
        "stderr:\n{}",
        proxy.process.stderr()
    );

    // The in-flight request completes on the old generation, which closes the connection.
    let slow = old.receive().await.expect("the in-flight response");
    assert_eq!(slow.status, 200);
    assert_eq!(slow.header("server"), Some("v1"));
    assert_eq!(slow.header("connection"), Some("close"));
    assert!(old.closed().await, "the drained connection closes");

    // Removed: the port stops accepting. A TCP proxy connection of a removed listener goes on
    // working until the drain time (5 s) is over, then closes.
    let tcp: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("tcp").await).into();
    let mut tunnel = TcpStream::connect(tcp).await.expect("connect");
    let echoes = async |tunnel: &mut TcpStream| {
        tunnel.write_all(b"still here").await.ok()?;
        let mut back = [0u8; 10];
        tokio::time::timeout(Duration::from_secs(5), tunnel.read_exact(&mut back))
            .await
            .ok()?
            .ok()?;
        (&back == b"still here").then_some(())
    };
    assert!(echoes(&mut tunnel).await.is_some());
    proxy.server.update_snapshot(|snapshot| {
        snapshot.set_version("3");
        snapshot.remove(type_url::LISTENER, "ingress");
        snapshot.remove(type_url::LISTENER, "tcp");
    });
    proxy.wait_for_version("lds", "3").await;
    assert!(
        echoes(&mut tunnel).await.is_some(),
        "closed before the drain time"
    );
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the removed listener still accepts");
    let mut rest = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(15), tunnel.read_to_end(&mut rest)).await;
    assert!(
        matches!(end, Ok(Ok(0)) | Ok(Err(_))),
        "the TCP connection outlives the drain time: {end:?}"
    );
}
