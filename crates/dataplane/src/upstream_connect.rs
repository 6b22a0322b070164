//! Opening a TCP connection to an upstream host, the one way every user (the HTTP/1.1 and
//! HTTP/2 pools, the TCP proxy) does it: within the cluster's connect timeout, `TCP_NODELAY`,
//! and counted where Envoy counts it — `upstream_cx_total` / `upstream_cx_connect_fail` for the
//! cluster, `cx_total` / `cx_connect_fail` / `cx_active` for the host.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use outrider_tables::{ClusterState, EndpointState};
use tokio::net::TcpStream;

/// An open connection in the host's `cx_active`, until dropped with the connection.
pub(crate) struct OpenConnection(Arc<EndpointState>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.cx_active.fetch_sub(1, Relaxed);
    }
}

/// Connects to `address` (of `host`, in cluster `cluster`) within `timeout`. The error says why,
/// for logs and local replies.
pub(crate) async fn connect(
    address: SocketAddr,
    timeout: Duration,
    cluster: &ClusterState,
    host: &Arc<EndpointState>,
) -> Result<(TcpStream, OpenConnection), String> {
    let counters = cluster.counters.local();
    counters.upstream_cx_total.fetch_add(1, Relaxed);
    host.cx_total.fetch_add(1, Relaxed);
    let connected = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connect timeout".to_string()),
    };
    match connected {
        Ok(stream) => {
            // Requests and responses go out whole: no waiting for more to coalesce.
            let _ = stream.set_nodelay(true);
            host.cx_active.fetch_add(1, Relaxed);
            Ok((stream, OpenConnection(host.clone())))
        }
        Err(reason) => {
            counters.upstream_cx_connect_fail.fetch_add(1, Relaxed);
            host.cx_connect_fail.fetch_add(1, Relaxed);
            Err(reason)
        }
    }
}
