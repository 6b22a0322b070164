//! Opening a connection to an upstream host, the one way every user (the HTTP/1.1 and HTTP/2
//! pools, the TCP proxy) does it: TCP, then TLS where the cluster's `transport_socket` says
//! so, both within the cluster's connect timeout (as Envoy's, which ends when the transport
//! is up); `TCP_NODELAY`, the cluster's TCP keepalive, and counted where Envoy counts it —
//! `upstream_cx_total` / `upstream_cx_connect_fail` for the cluster, `cx_total` /
//! `cx_connect_fail` / `cx_active` for the host. A failed handshake is a failed connect.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use outrider_model::{Cluster, TcpKeepalive};
use outrider_tables::{ClusterState, EndpointState};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::maybe_tls::MaybeTls;
use crate::tls_stats::{TlsCounters, TlsStatsRegistry};

/// An upstream connection's bytes: plaintext or TLS.
pub(crate) type UpstreamIo = MaybeTls<TlsStream<TcpStream>>;

/// What a connection carries, which decides the ALPN protocols its TLS offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Carries {
    Http1,
    Http2,
    /// The TCP proxy: the context's own `alpn_protocols`.
    Bytes,
}

/// How a cluster's connections are opened.
#[derive(Debug, Clone)]
pub(crate) struct ConnectOptions {
    pub timeout: Duration,
    /// `upstream_connection_options.tcp_keepalive`.
    pub keepalive: Option<TcpKeepalive>,
    /// TLS to the endpoint.
    pub tls: Option<UpstreamTlsOptions>,
}

/// A cluster's TLS as one kind of connection uses it.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamTlsOptions {
    config: Arc<ClientConfig>,
    /// The SNI, or a name never sent.
    name: ServerName<'static>,
    /// `cluster.<name>.ssl.*`.
    counters: Arc<TlsCounters>,
}

impl ConnectOptions {
    /// `tls_stats`: where the cluster's `ssl.*` counters are.
    pub(crate) fn of(cluster: &Cluster, carries: Carries, tls_stats: &TlsStatsRegistry) -> Self {
        let tls = cluster.tls.as_ref().map(|tls| {
            let client = &tls.client;
            let config = match carries {
                Carries::Http1 => &client.http1,
                Carries::Http2 => &client.http2,
                Carries::Bytes => &client.config,
            };
            UpstreamTlsOptions {
                config: config.clone(),
                name: client.server_name.clone(),
                counters: tls_stats.scope(&cluster.name),
            }
        });
        ConnectOptions {
            timeout: cluster.connect_timeout,
            keepalive: cluster.tcp_keepalive,
            tls,
        }
    }
}

/// Turns on SO_KEEPALIVE with the given probe settings (unset ones keep the OS default), as
/// Envoy's keepalive socket options do.
pub(crate) fn set_keepalive(stream: &TcpStream, keepalive: &TcpKeepalive) -> std::io::Result<()> {
    set_keepalive_on(&socket2::SockRef::from(stream), keepalive)
}

/// [`set_keepalive`] on any socket (a listening one passes it on to what it accepts).
pub(crate) fn set_keepalive_on(
    socket: &socket2::Socket,
    keepalive: &TcpKeepalive,
) -> std::io::Result<()> {
    let mut params = socket2::TcpKeepalive::new();
    if let Some(time) = keepalive.time {
        params = params.with_time(time);
    }
    if let Some(interval) = keepalive.interval {
        params = params.with_interval(interval);
    }
    if let Some(probes) = keepalive.probes {
        params = params.with_retries(probes);
    }
    socket.set_keepalive(true)?;
    socket.set_tcp_keepalive(&params)
}

/// An open connection in the host's `cx_active`, until dropped with the connection.
pub(crate) struct OpenConnection(Arc<EndpointState>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.cx_active.fetch_sub(1, Relaxed);
    }
}

/// Connects to `address` (of `host`, in cluster `cluster`) within the options' timeout. The
/// error says why, for logs and local replies.
pub(crate) async fn connect(
    address: SocketAddr,
    options: &ConnectOptions,
    cluster: &ClusterState,
    host: &Arc<EndpointState>,
) -> Result<(UpstreamIo, OpenConnection), String> {
    let counters = cluster.counters.local();
    counters.upstream_cx_total.fetch_add(1, Relaxed);
    host.cx_total.fetch_add(1, Relaxed);
    let opened = async {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| e.to_string())?;
        // Requests and responses go out whole: no waiting for more to coalesce.
        let _ = stream.set_nodelay(true);
        if let Some(keepalive) = &options.keepalive
            && let Err(e) = set_keepalive(&stream, keepalive)
        {
            tracing::debug!(%address, error = %e, "cannot set TCP keepalive");
        }
        match &options.tls {
            None => Ok(MaybeTls::Plain(stream)),
            Some(tls) => {
                let handshake = TlsConnector::from(tls.config.clone())
                    .connect(tls.name.clone(), stream)
                    .await;
                match &handshake {
                    Ok(stream) => tls.counters.handshake_done(stream.get_ref().1),
                    Err(error) => tls.counters.handshake_failed(error),
                }
                handshake
                    .map(|tls| MaybeTls::Tls(Box::new(tls)))
                    .map_err(|e| format!("TLS error: {e}"))
            }
        }
    };
    let connected = match tokio::time::timeout(options.timeout, opened).await {
        Ok(result) => result,
        Err(_) => Err("connect timeout".to_string()),
    };
    match connected {
        Ok(stream) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_clusters_keepalive_is_set_on_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listener");
        let stream = TcpStream::connect(listener.local_addr().expect("address"))
            .await
            .expect("connect");
        let keepalive = TcpKeepalive {
            probes: Some(3),
            time: Some(Duration::from_secs(30)),
            interval: Some(Duration::from_secs(5)),
        };
        set_keepalive(&stream, &keepalive).expect("set");
        let socket = socket2::SockRef::from(&stream);
        assert!(socket.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(
            socket.tcp_keepalive_time().expect("TCP_KEEPIDLE"),
            Duration::from_secs(30)
        );
        assert_eq!(
            socket.tcp_keepalive_interval().expect("TCP_KEEPINTVL"),
            Duration::from_secs(5)
        );
        assert_eq!(socket.tcp_keepalive_retries().expect("TCP_KEEPCNT"), 3);

        // Unset fields keep the OS defaults; keepalive is on all the same.
        let other = TcpStream::connect(listener.local_addr().expect("address"))
            .await
            .expect("connect");
        let default_time = socket2::SockRef::from(&other)
            .tcp_keepalive_time()
            .expect("TCP_KEEPIDLE");
        set_keepalive(
            &other,
            &TcpKeepalive {
                probes: None,
                time: None,
                interval: None,
            },
        )
        .expect("set");
        let socket = socket2::SockRef::from(&other);
        assert!(socket.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(
            socket.tcp_keepalive_time().expect("TCP_KEEPIDLE"),
            default_time
        );
    }
}
