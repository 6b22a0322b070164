//! Runs [`AdsState`] over one tonic ADS stream: connects, reconnects with jittered backoff,
//! applies each step's changes to the tables (one publication) before sending its ACKs, and
//! publishes the client status for the admin interface.

use std::future::Future;
use std::sync::Arc;

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use outrider_model::error_chain;
use outrider_tables::Tables;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Endpoint;

use crate::ads_state::{AdsState, Now, Outbound, Step};
use crate::backoff::Backoff;
use crate::response_stream::ResponseStream;
use crate::status::ClientStatus;

/// The xDS client task: owns the state machine and the stream.
pub struct AdsClient {
    state: AdsState,
    endpoint: Endpoint,
    tables: Arc<Tables>,
    status: Arc<ArcSwap<ClientStatus>>,
    backoff: Backoff,
    /// Run once, when the initial configuration is in.
    on_initialized: Option<Box<dyn FnOnce() + Send>>,
}

/// The two request channels of a stream; only the one of the stream's mode is used.
enum Sender {
    Sotw(mpsc::UnboundedSender<DiscoveryRequest>),
    Delta(mpsc::UnboundedSender<DeltaDiscoveryRequest>),
}

impl AdsClient {
    pub fn new(
        state: AdsState,
        endpoint: Endpoint,
        tables: Arc<Tables>,
        status: Arc<ArcSwap<ClientStatus>>,
    ) -> Self {
        AdsClient {
            state,
            endpoint,
            tables,
            status,
            backoff: Backoff::envoy_default(),
            on_initialized: None,
        }
    }

    /// Runs `callback` once, as soon as the initial configuration is in (every wildcard
    /// subscription answered, nothing warming): the status's `initialized`.
    pub fn on_initialized(mut self, callback: impl FnOnce() + Send + 'static) -> Self {
        self.on_initialized = Some(Box::new(callback));
        self
    }

    /// Runs until `shutdown` completes. While disconnected the tables keep the last good
    /// configuration, and the state machine's timers keep running.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        self.publish_status();
        loop {
            let ended = tokio::select! {
                ended = self.run_stream() => ended,
                () = &mut shutdown => return,
            };
            tracing::warn!(error = %ended, "xDS stream ended; reconnecting");
            self.state.on_disconnected(ended);
            self.publish_status();
            let until = Instant::now() + self.backoff.next_delay();
            tokio::select! {
                () = self.run_timers_until(until) => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// One stream, from connect to its end; returns why it ended.
    async fn run_stream(&mut self) -> String {
        let channel = match self.endpoint.connect().await {
            Ok(channel) => channel,
            Err(e) => return format!("connecting to {}: {}", self.endpoint.uri(), error_chain(&e)),
        };
        let mut client = AggregatedDiscoveryServiceClient::new(channel);
        let first = self.state.on_connected(Now::real());
        // The first requests go in the channel before the call starts, and the responses are
        // read beside the timers without waiting for the server's headers: a grpc-go server
        // sends those only with its first response, which may be a long time coming.
        if self.state.is_delta() {
            let (tx, rx) = mpsc::unbounded_channel();
            let sender = Sender::Delta(tx);
            self.execute(first, &sender);
            let inbound = ResponseStream::new(async move {
                client
                    .delta_aggregated_resources(UnboundedReceiverStream::new(rx))
                    .await
            });
            self.serve_stream(inbound, &sender, AdsState::on_delta_response)
                .await
        } else {
            let (tx, rx) = mpsc::unbounded_channel();
            let sender = Sender::Sotw(tx);
            self.execute(first, &sender);
            let inbound = ResponseStream::new(async move {
                client
                    .stream_aggregated_resources(UnboundedReceiverStream::new(rx))
                    .await
            });
            self.serve_stream(inbound, &sender, AdsState::on_sotw_response)
                .await
        }
    }

    /// Feeds a stream's responses and the timers to the state machine until the stream ends;
    /// returns why it ended.
    async fn serve_stream<R: Send + 'static>(
        &mut self,
        mut inbound: ResponseStream<R>,
        sender: &Sender,
        on_response: fn(&mut AdsState, R, Now) -> Step,
    ) -> String {
        tracing::info!(server = %self.endpoint.uri(), delta = self.state.is_delta(), "ADS stream started");
        loop {
            let awaiting: Vec<String> = self.state.awaiting_health_checks().cloned().collect();
            tokio::select! {
                name = first_round_done(self.tables.clone(), awaiting) => {
                    let step = self.state.on_health_checked(&name, Now::real());
                    self.execute(step, sender);
                }
                message = inbound.message() => match message {
                    Ok(Some(response)) => {
                        self.backoff.reset();
                        let step = on_response(&mut self.state, response, Now::real());
                        self.execute(step, sender);
                    }
                    Ok(None) => return "the server closed the stream".to_string(),
                    Err(status) => return format!("stream error: {status}"),
                },
                () = sleep_until_deadline(self.state.next_deadline()) => {
                    let step = self.state.on_timer(Now::real());
                    self.execute(step, sender);
                }
            }
        }
    }

    /// Fires the state machine's timers (initial-fetch timeouts) while waiting to reconnect.
    async fn run_timers_until(&mut self, until: Instant) {
        loop {
            let next = self.state.next_deadline().map(Instant::from_std);
            match next {
                Some(at) if at < until => {
                    tokio::time::sleep_until(at).await;
                    let step = self.state.on_timer(Now::real());
                    // Disconnected: a step may change tables but has nobody to send to.
                    if !step.changes.is_empty() {
                        self.tables.apply(step.changes);
                    }
                    self.publish_status();
                }
                _ => {
                    tokio::time::sleep_until(until).await;
                    return;
                }
            }
        }
    }

    /// Publishes a step's changes, then sends its requests: an ACK never precedes the
    /// configuration it acknowledges.
    fn execute(&mut self, step: Step, sender: &Sender) {
        if !step.changes.is_empty() {
            let generation = self.tables.apply(step.changes);
            tracing::debug!(generation, "published configuration");
        }
        self.publish_status();
        for request in step.requests {
            // A send fails only once the stream is gone; its end is reported by the receive side.
            match (request, sender) {
                (Outbound::Sotw(request), Sender::Sotw(tx)) => {
                    let _ = tx.send(request);
                }
                (Outbound::Delta(request), Sender::Delta(tx)) => {
                    let _ = tx.send(request);
                }
                _ => tracing::error!("a request of the wrong xDS mode; dropped"),
            }
        }
    }

    fn publish_status(&mut self) {
        let status = self.state.status();
        if status.initialized
            && let Some(callback) = self.on_initialized.take()
        {
            callback();
        }
        self.status.store(Arc::new(status.clone()));
    }
}

/// Resolves with the name of the first of `clusters` whose first round of active health
/// checks is done (or that is no longer in the tables); never when there are none.
async fn first_round_done(tables: Arc<Tables>, clusters: Vec<String>) -> String {
    if clusters.is_empty() {
        return std::future::pending().await;
    }
    let snapshot = tables.load_full();
    let mut waits = futures::stream::FuturesUnordered::new();
    for name in clusters {
        let Some(entry) = snapshot.cluster(&name).cloned() else {
            return name;
        };
        waits.push(async move {
            entry.state.health_check.wait_first_round().await;
            name
        });
    }
    match futures::StreamExt::next(&mut waits).await {
        Some(name) => name,
        None => std::future::pending().await,
    }
}

async fn sleep_until_deadline(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
