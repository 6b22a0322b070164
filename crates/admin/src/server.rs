//! The admin server: hyper 1 over HTTP/1.1 and h2c on one port, gRPC (CSDS) and the admin pages
//! told apart by `content-type`, on its own OS thread with its own current-thread runtime so that
//! admin work never competes with the data plane's workers.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_server::ClientStatusDiscoveryServiceServer;
use http::{Request, Response, header};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic::codegen::Service;

use crate::csds::ClientStatusService;
use crate::{AdminState, admin_pages};

/// How long a shutdown waits for responses in flight (the `OK` of `/quitquitquit`, a large
/// dump) before closing connections; CSDS streams never end on their own.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

type AdminBody = Either<Full<Bytes>, tonic::body::Body>;

/// The running admin server on its own thread.
#[derive(Debug)]
pub struct AdminHandle {
    /// The bound address (the caller may have bound port 0).
    pub local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<io::Result<()>>>,
    state: AdminState,
}

impl AdminHandle {
    /// Asks the server to stop: it stops accepting, lets responses in flight finish (for a
    /// bounded time), and its thread ends. Returns at once; [`AdminHandle::join`] waits.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Waits for the server thread to end (after [`AdminHandle::shutdown`]).
    pub fn join(mut self) -> io::Result<()> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("admin server thread panicked")),
            None => Ok(()),
        }
    }

    /// Becomes `true` when an operator POSTs `/quitquitquit`.
    pub fn quit_requested(&self) -> watch::Receiver<bool> {
        self.state.control.quit_requested()
    }
}

impl Drop for AdminHandle {
    /// A dropped handle stops the server rather than leaving a thread nobody can stop.
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// Runs the admin server on its own OS thread with its own current-thread tokio runtime, so an
/// expensive admin request never stalls traffic. Returns once the listener is being served.
pub fn spawn(listener: std::net::TcpListener, state: AdminState) -> io::Result<AdminHandle> {
    let local_addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("outrider-admin")
        .build()?;
    let listener = {
        let _context = runtime.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    let (shutdown, mut shutdown_rx) = watch::channel(false);
    let thread_state = state.clone();
    let thread = std::thread::Builder::new()
        .name("outrider-admin".to_string())
        .spawn(move || {
            runtime.block_on(serve(listener, thread_state, async move {
                // An error means the handle is gone, which also means stop.
                let _ = shutdown_rx.wait_for(|stop| *stop).await;
            }))
        })?;
    Ok(AdminHandle {
        local_addr,
        shutdown,
        thread: Some(thread),
        state,
    })
}

/// The admin server on the caller's runtime, until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let csds = ClientStatusService::new(state.clone()).into_server();
    tracing::info!(address = %listener.local_addr()?, "admin server listening");
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: the next accept may work; a
                        // short pause keeps a persistent error from spinning this thread.
                        tracing::warn!(error = %e, "admin accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let state = state.clone();
                let csds = csds.clone();
                let service = service_fn(move |request| {
                    dispatch(request, state.clone(), csds.clone())
                });
                let connection = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned();
                let connection = graceful.watch(connection);
                connections.spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(%peer, error = %e, "admin connection ended with an error");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("admin connections still open after the grace period; closing them");
    }
    connections.shutdown().await;
    Ok(())
}

/// gRPC (by `content-type`, as gRPC requires it) goes to CSDS, everything else to the admin
/// pages.
async fn dispatch(
    request: Request<Incoming>,
    state: AdminState,
    mut csds: ClientStatusDiscoveryServiceServer<ClientStatusService>,
) -> Result<Response<AdminBody>, Infallible> {
    let path_and_query = request.uri().path_and_query().map_or("/", |p| p.as_str());
    if !state.path_allowed(path_and_query) {
        tracing::debug!(path = path_and_query, "admin path not in admin.allow_paths");
        let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
        *response.status_mut() = hyper::StatusCode::FORBIDDEN;
        return Ok(response);
    }
    let is_grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"));
    if is_grpc {
        std::future::poll_fn(|cx| Service::<Request<Incoming>>::poll_ready(&mut csds, cx)).await?;
        let response = csds.call(request).await?;
        return Ok(response.map(Either::Right));
    }
    if let Some(response) =
        admin_pages::diagnose_page(&state, request.uri().path(), request.uri().query()).await
    {
        return Ok(response.map(Either::Left));
    }
    let response = admin_pages::handle(
        &state,
        request.method(),
        request.uri().path(),
        request.uri().query(),
    );
    Ok(response.map(Either::Left))
}
