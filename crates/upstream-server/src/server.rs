//! [`UpstreamServer`]: the accept loop, one task per connection (HTTP/1.1 or h2c, detected from
//! the first bytes), runtime control of failure injection, counters, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::echo::EchoedTls;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::Error;
use crate::config::{UpstreamConfig, validate_status};
use crate::handler::{self, ConnInfo};
use crate::health::{HealthAnswer, HealthRequest};
use crate::stats::{PathCounts, ServerState};

/// How long shutdown waits for in-flight requests before cutting connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed accept (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// A running upstream HTTP server; see the crate docs for its endpoints. Dropping it stops it
/// (in the background); [`UpstreamServer::shutdown`] stops it and waits.
pub struct UpstreamServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl UpstreamServer {
    /// Starts on `127.0.0.1:0` (a free port), on the current tokio runtime.
    pub async fn start_local(config: UpstreamConfig) -> Result<Self, Error> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Binds `addr` and starts, on the current tokio runtime.
    pub async fn bind(addr: SocketAddr, config: UpstreamConfig) -> Result<Self, Error> {
        config.validate()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        Self::start(listener, config)
    }

    /// Serves on an already bound listener, on the current tokio runtime.
    pub fn start(listener: TcpListener, config: UpstreamConfig) -> Result<Self, Error> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let addr = listener.local_addr().map_err(Error::Listener)?;
        let state = Arc::new(ServerState::new(&config));
        let (shutdown, stop) = watch::channel(false);
        let tls = config.tls.clone().map(|tls| TlsAcceptor::from(tls.0));
        let task = runtime.spawn(accept_loop(listener, state.clone(), tls, stop));
        tracing::debug!(%addr, name = %config.name, "upstream server started");
        Ok(Self {
            addr,
            state,
            shutdown,
            task: Some(task),
        })
    }

    /// Serves on a listener bound with std (e.g. before the runtime existed).
    pub fn start_std(
        listener: std::net::TcpListener,
        config: UpstreamConfig,
    ) -> Result<Self, Error> {
        listener.set_nonblocking(true).map_err(Error::Listener)?;
        let _guard = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::NoRuntime)?
            .enter();
        let listener = TcpListener::from_std(listener).map_err(Error::Listener)?;
        Self::start(listener, config)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// While `true`, every request fails with the fail status (whatever the ratio says).
    pub fn set_failing(&self, failing: bool) {
        self.state.set_failing(failing);
    }

    /// Share of requests that fail from now on. Values outside `[0, 1]` are clamped and NaN
    /// means 0, so a test cannot make the server misbehave by accident.
    pub fn set_fail_ratio(&self, ratio: f64) {
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        self.state.set_fail_ratio(ratio);
    }

    /// From now on every n-th request fails (the n-th after this call is the first);
    /// `None` or `Some(0)` turns this off.
    pub fn set_fail_every(&self, n: Option<u32>) {
        self.state.set_fail_every(n.filter(|n| *n > 0));
    }

    /// Status of injected failures from now on (200..=999).
    pub fn set_fail_status(&self, status: u16) -> Result<(), Error> {
        validate_status(status)?;
        self.state.set_fail_status(status);
        Ok(())
    }

    /// The standing answer of the health endpoints, used when no queued answer is left;
    /// `None` makes checks wait until an answer is queued. Starts as `Status(200)`.
    pub fn set_health(&self, answer: Option<HealthAnswer>) {
        self.state.health.set_standing(answer);
    }

    /// Answers for the next health checks, in order, before the standing answer.
    pub fn queue_health(&self, answers: impl IntoIterator<Item = HealthAnswer>) {
        self.state.health.queue(answers);
    }

    /// Health checks answered so far (resets included).
    pub fn health_checks_answered(&self) -> u64 {
        self.state.health.answered()
    }

    /// Health checks waiting for an answer right now.
    pub fn health_checks_waiting(&self) -> usize {
        self.state.health.waiting()
    }

    /// The last health check request received.
    pub fn last_health_request(&self) -> Option<HealthRequest> {
        self.state.health.last_request()
    }

    /// Requests received so far, failed ones included (health checks are not counted).
    pub fn requests_served(&self) -> u64 {
        self.state.requests()
    }

    /// Requests answered with an injected failure so far.
    pub fn failures_injected(&self) -> u64 {
        self.state.failures()
    }

    /// Requests received for `path` (without the query).
    pub fn requests_for(&self, path: &str) -> u64 {
        self.state.requests_for(path)
    }

    /// Requests received per path.
    pub fn path_counts(&self) -> PathCounts {
        self.state.path_counts()
    }

    /// Connections open now (an upgraded WebSocket connection no longer counts).
    pub fn active_connections(&self) -> usize {
        self.state.active_connections()
    }

    /// Connections accepted since start: with a pooling proxy in front it stays small.
    pub fn connections_accepted(&self) -> u64 {
        self.state.connections_accepted()
    }

    /// Stops accepting, lets in-flight requests finish (up to 5 s), and waits until every
    /// connection is closed.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for UpstreamServer {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<ServerState>,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let (state, stop, tls) = (state.clone(), stop.clone(), tls.clone());
                    connections.spawn(async move {
                        // Small responses should leave at once; Nagle only adds latency here.
                        let _ = stream.set_nodelay(true);
                        match tls {
                            None => serve_connection(stream, peer, None, state, stop).await,
                            Some(acceptor) => match acceptor.accept(stream).await {
                                Ok(stream) => {
                                    let tls = echoed_tls(stream.get_ref().1);
                                    serve_connection(stream, peer, Some(tls), state, stop).await;
                                }
                                Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                            },
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            // Reaps finished connections so the set does not grow with every connection ever
            // accepted.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Closing the listener first makes new connections fail fast instead of hanging.
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!(
            remaining = connections.len(),
            "connections still busy after the drain timeout; closing them"
        );
        connections.shutdown().await;
    }
}

/// What a TLS connection's handshake says, for `/echo`.
fn echoed_tls(session: &outrider_tls::rustls::ServerConnection) -> EchoedTls {
    let peer_uri_sans = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| outrider_tls::PeerSans::of(leaf).ok())
        .map(|sans| sans.uri)
        .unwrap_or_default();
    EchoedTls {
        sni: session.server_name().map(str::to_string),
        alpn: session
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        peer_uri_sans,
    }
}

async fn serve_connection<S>(
    stream: S,
    remote: SocketAddr,
    tls: Option<EchoedTls>,
    state: Arc<ServerState>,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let guard = state.open_connection();
    let info = Arc::new(ConnInfo {
        id: guard.id,
        remote,
        tls,
        shutdown: stop.clone(),
    });
    let service = service_fn(move |req| handler::handle(state.clone(), info.clone(), req));
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopped(&mut stop) => {
            // Finishes in-flight requests, then closes (GOAWAY on h2, no keep-alive on h1).
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%remote, error = %e, "connection ended with an error");
    }
    drop(guard);
}

/// Resolves once `stop` says so or its sender is gone (a dropped server stops too). The watch
/// guard is dropped inside, so callers' futures stay `Send`.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
