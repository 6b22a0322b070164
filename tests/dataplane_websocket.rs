//! WebSocket through the real binary: the HTTP/1.1 upgrade reaches the upstream's `/ws` echo,
//! the 101 comes back with its `Upgrade` headers, and frames flow both ways over the tunnel;
//! an upgrade that neither the route nor the listener enables is refused with Envoy's 403; the
//! stream idle timeout closes a silent tunnel.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::websocket::handshake;
use common::xds_proxy::{
    XdsProxy, cluster, endpoints, eventually, get, http_listener, http1_client, routes,
};
use common::{file_access_log, log_lines, temp_dir};
use outrider_upstream_server::{UpstreamConfig, UpstreamServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xds_conformance::Snapshot;

/// A masked client frame (RFC 6455 §5.2) with a short payload.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let len = u8::try_from(payload.len()).expect("short payload");
    assert!(len < 126);
    let mut frame = vec![0x80 | opcode, 0x80 | len];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Reads one unmasked server frame with a short payload: (opcode, payload).
async fn server_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut header))
        .await
        .expect("a frame in time")
        .expect("read");
    let len = usize::from(header[1] & 0x7f);
    assert!(len < 126, "short frames only");
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.expect("payload");
    (header[0] & 0x0f, payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_tunnel_frames_both_ways() {
    let backend = UpstreamServer::start_local(UpstreamConfig::new("backend"))
        .await
        .expect("upstream");
    let logs = temp_dir("websocket-access-log");
    let format = r"%RESPONSE_CODE% %REQ(:PATH)% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT%\n";
    let access_log = file_access_log("tunnels", &logs.join("access.log"), format);
    let snapshot = Snapshot::new("1")
        .with(cluster("backend", ""))
        .with(endpoints("backend", &[backend.addr()]))
        .with(http_listener("ingress", 0, "ingress", &access_log))
        .with(http_listener(
            "edge",
            0,
            "edge",
            "      upgrade_configs: [{ upgrade_type: websocket }]",
        ))
        .with(routes(
            r#"  - match: { path: /ws }
    route: { cluster: backend, upgrade_configs: [{ upgrade_type: websocket }] }
  - match: { path: /plain-ws }
    route: { cluster: backend, prefix_rewrite: /ws }
  - match: { path: /idle-ws }
    route:
      cluster: backend
      prefix_rewrite: /ws
      idle_timeout: 0.3s
      upgrade_configs: [{ upgrade_type: websocket }]
  - match: { path: /off-ws }
    route:
      cluster: backend
      prefix_rewrite: /ws
      upgrade_configs: [{ upgrade_type: websocket, enabled: false }]
  - match: { prefix: / }
    route: { cluster: backend }"#,
        ));
    let proxy = XdsProxy::start("websocket", snapshot, &["--concurrency", "1"]).await;
    let ingress: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("ingress").await).into();
    let edge: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("edge").await).into();

    // Enabled on the route: the upstream's 101, then an echo of every frame.
    let (head, mut stream) = handshake(ingress, "/ws").await;
    let lower = head.to_ascii_lowercase();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(lower.contains("\r\nupgrade: websocket\r\n"), "{head}");
    assert!(lower.contains("\r\nconnection: upgrade\r\n"), "{head}");
    // RFC 6455's own example key and answer: the upstream's handshake came through intact.
    assert!(
        lower.contains("\r\nsec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
        "{head}"
    );
    // What went through the tunnel each way, counted as the access log must count it.
    let (mut sent, mut received) = (0, 0);
    for message in ["hello", "through the proxy", "third"] {
        let frame = client_frame(0x1, message.as_bytes());
        stream.write_all(&frame).await.expect("send");
        sent += frame.len();
        let (opcode, payload) = server_frame(&mut stream).await;
        assert_eq!((opcode, payload.as_slice()), (0x1, message.as_bytes()));
        received += 2 + payload.len();
    }
    // A close is answered with a close, then the tunnel ends.
    let close = client_frame(0x8, &1000u16.to_be_bytes());
    stream.write_all(&close).await.expect("close");
    sent += close.len();
    let (opcode, payload) = server_frame(&mut stream).await;
    assert_eq!(opcode, 0x8);
    received += 2 + payload.len();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "the tunnel closes: {read:?} {rest:?}"
    );
    drop(stream);
    // Logged when the tunnel closed, as Envoy logs an upgraded stream at its end: the 101,
    // with the tunnel's bytes each way.
    let log = logs.join("access.log");
    let tunnel_entries = |flag: &str| -> Vec<String> {
        let mut lines = log_lines(&log);
        lines.retain(|line| line.starts_with(&format!("101 /ws {flag} ")));
        lines
    };
    assert!(
        eventually(Duration::from_secs(10), || !tunnel_entries("-").is_empty()).await,
        "no entry for the tunnel: {:?}",
        log_lines(&log)
    );
    assert_eq!(
        tunnel_entries("-"),
        [format!("101 /ws - {sent} {received}")]
    );

    // Enabled on the listener only: the route inherits it.
    let (head, _) = handshake(edge, "/plain-ws").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // Neither enables it: Envoy's 403, and the upstream never sees the request.
    let before = backend.requests_for("/ws");
    let (head, _) = handshake(ingress, "/plain-ws").await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    // The route disables it, whatever the listener says.
    let (head, _) = handshake(edge, "/off-ws").await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert_eq!(backend.requests_for("/ws"), before);

    // The route's idle timeout goes on applying to the tunnel: traffic keeps it open, silence
    // closes it.
    let (head, mut stream) = handshake(ingress, "/idle-ws").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for _ in 0..4 {
        // Three 0.15 s gaps, longer together than the timeout.
        tokio::time::sleep(Duration::from_millis(150)).await;
        stream
            .write_all(&client_frame(0x1, b"still here"))
            .await
            .expect("send");
        let (opcode, _) = server_frame(&mut stream).await;
        assert_eq!(opcode, 0x1);
    }
    let quiet = std::time::Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "an idle tunnel stays open: {read:?}"
    );
    assert!(
        quiet.elapsed() >= Duration::from_millis(250),
        "{:?}",
        quiet.elapsed()
    );
    // Logged (as forwarded, so `/ws`) with Envoy's flag for a stream idle timeout.
    assert!(
        eventually(Duration::from_secs(10), || !tunnel_entries("SI").is_empty()).await,
        "no SI entry for the idle tunnel: {:?}",
        log_lines(&log)
    );

    // Plain requests on the same listener are unaffected.
    let answer = get(&http1_client(), &format!("http://{ingress}/echo")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

/// A tunnel outlives its HTTP exchange but not its listener: once the listener is removed it
/// keeps working for the drain time, then closes (as Envoy closes upgraded streams).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_tunnels_close_after_the_drain_time() {
    let backend = UpstreamServer::start_local(UpstreamConfig::new("backend"))
        .await
        .expect("upstream");
    let snapshot = Snapshot::new("1")
        .with(cluster("backend", ""))
        .with(endpoints("backend", &[backend.addr()]))
        .with(http_listener(
            "ingress",
            0,
            "ingress",
            "      upgrade_configs: [{ upgrade_type: websocket }]",
        ))
        .with(routes(
            "  - match: { prefix: / }\n    route: { cluster: backend }",
        ));
    let proxy = XdsProxy::start(
        "websocket-drain",
        snapshot,
        &["--concurrency", "1", "--drain-time-s", "2"],
    )
    .await;
    let ingress: SocketAddr = ([127, 0, 0, 1], proxy.listener_port("ingress").await).into();
    let (head, mut stream) = handshake(ingress, "/ws").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let echoes = async |stream: &mut TcpStream, message: &str| {
        stream
            .write_all(&client_frame(0x1, message.as_bytes()))
            .await
            .expect("send");
        let (opcode, payload) = server_frame(stream).await;
        assert_eq!((opcode, payload.as_slice()), (0x1, message.as_bytes()));
    };
    echoes(&mut stream, "before").await;

    proxy.server.update_snapshot(|snapshot| {
        snapshot.set_version("2");
        snapshot.remove(xds_conformance::type_url::LISTENER, "ingress");
    });
    proxy.wait_for_version("lds", "2").await;
    let removed_at = std::time::Instant::now();
    // Still a working tunnel during the drain time...
    echoes(&mut stream, "draining").await;
    // ...then closed, well before the upstream would have closed it.
    let mut rest = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(end, Ok(Ok(0)) | Ok(Err(_))),
        "the tunnel outlives the drain time: {end:?}"
    );
    assert!(
        removed_at.elapsed() >= Duration::from_millis(1500),
        "closed before the drain time: {:?}",
        removed_at.elapsed()
    );
}
