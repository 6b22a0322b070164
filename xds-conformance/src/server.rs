//! The management server: a tonic ADS service on a TCP listener, and the handle tests script it
//! with (snapshots, misbehaviour, the request/response log).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::event_reporting::v3::event_reporting_service_server::EventReportingServiceServer;
use envoy_types::pb::envoy::service::load_stats::v3::load_reporting_service_server::LoadReportingServiceServer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::behavior::{Behavior, ServerOptions};
use crate::events_service::{EventsService, EventsState};
use crate::lrs_service::{LrsService, LrsState};
use crate::recorder::{Protocol, RecordedRequest, RecordedResponse, Recorder, StreamInfo};
use crate::shared::{Shared, StreamCommand};
use crate::snapshot::Snapshot;
use crate::{delta, sotw};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding the listen address failed.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    /// The listener has no local address.
    #[error("cannot read the listener's address: {0}")]
    LocalAddr(#[source] std::io::Error),
    /// Called outside a tokio runtime.
    #[error("the server must be started from within a tokio runtime")]
    NoRuntime,
}

/// How long `shutdown` waits for connections to close before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A running ADS management server. Cheap to clone; every clone drives the same server. The
/// server stops with [`ManagementServer::shutdown`] or when the last clone is dropped.
#[derive(Clone)]
pub struct ManagementServer {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// The reporting services (host events, load reports) on the same gRPC server.
    events: Arc<EventsState>,
    lrs: Arc<LrsState>,
    addr: SocketAddr,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let task = self.task.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(task) = task.take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for ManagementServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagementServer")
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

impl ManagementServer {
    /// Starts a server on `127.0.0.1:0` (a free port) on the current tokio runtime.
    pub async fn start(options: ServerOptions) -> Result<ManagementServer, ServerError> {
        let address = "127.0.0.1:0";
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| ServerError::Bind {
                address: address.to_string(),
                source,
            })?;
        ManagementServer::start_on(listener, options)
    }

    /// Starts a server on a listener the caller bound, on the current tokio runtime.
    pub fn start_on(
        listener: TcpListener,
        options: ServerOptions,
    ) -> Result<ManagementServer, ServerError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ServerError::NoRuntime)?;
        let addr = listener.local_addr().map_err(ServerError::LocalAddr)?;
        let shared = Arc::new(Shared::new(options));
        let service = AggregatedDiscoveryServiceServer::new(AdsService {
            shared: shared.clone(),
        });
        let events = Arc::new(EventsState::new());
        let lrs = Arc::new(LrsState::new());
        let events_service = EventReportingServiceServer::new(EventsService {
            state: events.clone(),
            shared: shared.clone(),
        });
        let lrs_service = LoadReportingServiceServer::new(LrsService {
            state: lrs.clone(),
            shared: shared.clone(),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let task = runtime.spawn(async move {
            let result = tonic::transport::Server::builder()
                .add_service(service)
                .add_service(events_service)
                .add_service(lrs_service)
                .serve_with_incoming_shutdown(incoming, async {
                    // A dropped sender (handle gone) also stops the server.
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "xDS server failed");
            }
        });
        tracing::info!(%addr, "xDS management server listening");
        Ok(ManagementServer {
            inner: Arc::new(Inner {
                shared,
                events,
                lrs,
                addr,
                stop: Mutex::new(Some(stop)),
                task: Mutex::new(Some(task)),
            }),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://<addr>`, what a tonic client connects to.
    pub fn uri(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// Ends every stream with `UNAVAILABLE`, stops accepting, and waits (briefly) for the
    /// connections to close.
    pub async fn shutdown(&self) {
        // Reporting streams never end on their own; a client reconnecting meanwhile is refused.
        self.inner.events.close();
        self.inner.lrs.close();
        self.drop_streams_with(tonic::Status::unavailable("server shutting down"));
        let stop = lock(&self.inner.stop).take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let task = lock(&self.inner.task).take();
        if let Some(mut task) = task {
            // Graceful shutdown waits for clients to close their connections; one that never
            // does must not hang the caller.
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    // ---- snapshot -------------------------------------------------------------------------

    /// Replaces the snapshot; every open stream sends what changed at once.
    pub fn set_snapshot(&self, snapshot: Snapshot) {
        self.inner.shared.snapshot.send_replace(Arc::new(snapshot));
    }

    /// Changes the snapshot in place (e.g. one type's version and resources), then pushes.
    pub fn update_snapshot(&self, change: impl FnOnce(&mut Snapshot)) {
        self.inner.shared.snapshot.send_modify(|current| {
            change(Arc::make_mut(current));
        });
    }

    /// The snapshot being served.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.shared.snapshot.borrow().clone()
    }

    // ---- misbehaviour ---------------------------------------------------------------------

    /// Replaces the behaviour; every open stream re-evaluates at once.
    pub fn set_behavior(&self, behavior: Behavior) {
        self.inner.shared.behavior.send_replace(behavior);
    }

    /// Changes the behaviour in place.
    pub fn update_behavior(&self, change: impl FnOnce(&mut Behavior)) {
        self.inner.shared.behavior.send_modify(change);
    }

    /// The current behaviour.
    pub fn behavior(&self) -> Behavior {
        self.inner.shared.behavior.borrow().clone()
    }

    /// Ends every open stream now with `UNAVAILABLE`; returns how many were open. The client
    /// sees its stream end with that status; its connection stays up, so it may reconnect.
    pub fn drop_streams(&self) -> usize {
        self.drop_streams_with(tonic::Status::unavailable("dropped by the test server"))
    }

    /// Ends every open stream now with the given status; returns how many were open.
    pub fn drop_streams_with(&self, status: tonic::Status) -> usize {
        self.inner
            .shared
            .broadcast(None, || StreamCommand::Drop(status.clone()))
    }

    /// Sends `response` as is on every open SotW stream; returns on how many. It counts as the
    /// last response of its type (the client's ACK/NACK of it is in sequence); afterwards the
    /// normal rules apply, so a snapshot whose version differs is sent once the client answers.
    pub fn push_raw(&self, response: DiscoveryResponse) -> usize {
        self.inner.shared.broadcast(Some(Protocol::Sotw), || {
            StreamCommand::Raw(response.clone())
        })
    }

    /// Sends `response` as is on every open delta stream; returns on how many.
    pub fn push_raw_delta(&self, response: DeltaDiscoveryResponse) -> usize {
        self.inner.shared.broadcast(Some(Protocol::Delta), || {
            StreamCommand::RawDelta(response.clone())
        })
    }

    /// A nonce no response of this server has used, for raw responses.
    pub fn next_nonce(&self) -> String {
        self.inner.shared.next_nonce()
    }

    // ---- log ------------------------------------------------------------------------------

    /// The full log (requests, responses, streams) with its waiting methods.
    pub fn recorder(&self) -> &Recorder {
        &self.inner.shared.recorder
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.recorder().requests()
    }

    /// Every response sent so far, in send order.
    pub fn responses(&self) -> Vec<RecordedResponse> {
        self.recorder().responses()
    }

    /// Every stream so far, open or closed.
    pub fn streams(&self) -> Vec<StreamInfo> {
        self.recorder().streams()
    }

    /// How many streams have been opened so far.
    pub fn streams_opened(&self) -> usize {
        self.recorder().streams_opened()
    }

    /// Ids of the streams open now.
    pub fn open_streams(&self) -> Vec<u64> {
        self.inner.shared.open_stream_ids()
    }

    /// How many requests have arrived; a mark for "a request after this point".
    pub fn request_count(&self) -> usize {
        self.recorder().request_count()
    }

    /// How many responses have been sent; a mark for "a response after this point".
    pub fn response_count(&self) -> usize {
        self.recorder().response_count()
    }

    /// The first request (already received or still to come) matching `pred`, or `None` once
    /// `timeout` has passed.
    pub async fn wait_for_request(
        &self,
        pred: impl Fn(&RecordedRequest) -> bool,
        timeout: Duration,
    ) -> Option<RecordedRequest> {
        self.recorder().wait_for_request(pred, timeout).await
    }

    /// The first response (already sent or still to come) matching `pred`, or `None`.
    pub async fn wait_for_response(
        &self,
        pred: impl Fn(&RecordedResponse) -> bool,
        timeout: Duration,
    ) -> Option<RecordedResponse> {
        self.recorder().wait_for_response(pred, timeout).await
    }

    /// The first stream (already opened or still to come) matching `pred`, or `None`.
    pub async fn wait_for_stream(
        &self,
        pred: impl Fn(&StreamInfo) -> bool,
        timeout: Duration,
    ) -> Option<StreamInfo> {
        self.recorder().wait_for_stream(pred, timeout).await
    }
}

impl ManagementServer {
    pub(crate) fn events_state(&self) -> &EventsState {
        &self.inner.events
    }

    pub(crate) fn lrs_state(&self) -> &LrsState {
        &self.inner.lrs
    }

    /// Ends every open event-reporting and load-reporting stream now with `UNAVAILABLE` (the
    /// server stays up; clients may reconnect).
    pub fn drop_report_streams(&self) {
        self.inner.events.drop_streams();
        self.inner.lrs.drop_streams();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct AdsService {
    shared: Arc<Shared>,
}

type ResponseStream<T> = UnboundedReceiverStream<Result<T, tonic::Status>>;

impl AdsService {
    /// Registers a new stream and runs its loop; the client reads the returned responses.
    fn open<P>(
        &self,
        protocol: Protocol,
        request: tonic::Request<tonic::Streaming<P::Request>>,
    ) -> tonic::Response<ResponseStream<P::Response>>
    where
        P: crate::stream_loop::StreamProtocol + Send + 'static,
        P::Request: Send + 'static,
        P::Response: Send + 'static,
    {
        let (id, commands) = self.shared.open_stream(protocol, request.remote_addr());
        let (outbound, responses) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(crate::stream_loop::run::<P>(
            self.shared.clone(),
            id,
            request.into_inner(),
            outbound,
            commands,
        ));
        tonic::Response::new(UnboundedReceiverStream::new(responses))
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: tonic::Request<tonic::Streaming<DiscoveryRequest>>,
    ) -> Result<tonic::Response<Self::StreamAggregatedResourcesStream>, tonic::Status> {
        Ok(self.open::<sotw::SotwState>(Protocol::Sotw, request))
    }

    async fn delta_aggregated_resources(
        &self,
        request: tonic::Request<tonic::Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<tonic::Response<Self::DeltaAggregatedResourcesStream>, tonic::Status> {
        Ok(self.open::<delta::DeltaState>(Protocol::Delta, request))
    }
}
