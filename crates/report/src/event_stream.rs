//! Host events to the control plane over `envoy.service.event_reporting.v3.EventReportingService`
//! (`StreamEvents`). Envoy declares this service but never sends on it; we do, for outlier
//! ejections and health-check transitions.
//!
//! Each stream's first message carries the node (`identifier.node`) and whatever is queued; later
//! messages carry events only, as many as are queued (a burst goes out in few messages). Nothing
//! waits for the server's response headers, which a grpc-go server sends only when its handler
//! returns. Between streams, events wait in a bounded queue; the reconnect delay is jittered and
//! capped. Events taken by the transport count as sent once the server has taken the stream
//! (its headers came, or it was up 5 s, or it ended without refusing it); a stream refused
//! before its handler ran (UNIMPLEMENTED, UNAUTHENTICATED, PERMISSION_DENIED) puts its events
//! back in the queue, as does a batch the transport never took. Others are not sent again: a
//! client-streaming call never learns what the server read.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::event_reporting::v3::event_reporting_service_client::EventReportingServiceClient;
use envoy_types::pb::envoy::service::event_reporting::v3::{
    StreamEventsRequest, StreamEventsResponse, stream_events_request::Identifier,
};
use outrider_tables::Tables;
use outrider_upstream::events::HostEvent;
use outrider_xds::{Backoff, ResponseStream, StreamEvent};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use crate::channel::{add_metadata, connect, error_chain};
use crate::config::GrpcTarget;
use crate::convert::to_any;
use crate::inbox::Inbox;
use crate::stats::{ReportStats, add, set};

/// Events kept while the control plane is unreachable.
pub const EVENT_QUEUE_CAPACITY: usize = 1000;
/// Events per message at most, so one message stays well under gRPC's 4 MiB default limit.
const MAX_BATCH: usize = 500;
/// A stream up this long without a refusal was taken by the server: what it carried counts as
/// sent, and the next reconnect starts from the base delay.
const STABLE_STREAM: std::time::Duration = std::time::Duration::from_secs(5);
/// How long to wait for a call's status once the transport has dropped our side.
const FINAL_STATUS_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

pub(crate) struct EventStream {
    target: GrpcTarget,
    tables: Arc<Tables>,
    node: Node,
    inbox: Inbox,
    stats: Arc<ReportStats>,
    backoff: Backoff,
}

impl EventStream {
    pub(crate) fn new(
        target: GrpcTarget,
        tables: Arc<Tables>,
        node: Node,
        events: broadcast::Receiver<Arc<HostEvent>>,
        stats: Arc<ReportStats>,
        backoff: Backoff,
    ) -> Self {
        Self {
            inbox: Inbox::new(events, EVENT_QUEUE_CAPACITY, stats.clone()),
            target,
            tables,
            node,
            stats,
            backoff,
        }
    }

    /// Streams events forever, reconnecting as needed.
    pub(crate) async fn run(mut self) {
        let mut attempt = 0usize;
        loop {
            let ended = self.run_stream(attempt).await;
            set(&self.stats.events_connected, 0);
            add(&self.stats.events_stream_errors, 1);
            // The delay starts again from its base after a stream that proved good.
            if ended.proven {
                self.backoff.reset();
            }
            tracing::warn!(
                cluster = %self.target.cluster,
                error = %ended.reason,
                queued = self.inbox.queue.len(),
                "event reporting stream ended; reconnecting"
            );
            let until = Instant::now() + self.backoff.next_delay();
            self.inbox.during(tokio::time::sleep_until(until)).await;
            attempt = attempt.wrapping_add(1);
        }
    }

    /// One stream, from connect to its end.
    async fn run_stream(&mut self, attempt: usize) -> Ended {
        let channel = match self
            .inbox
            .during(connect(&self.tables, &self.target, attempt))
            .await
        {
            Ok(channel) => channel,
            Err(reason) => {
                return Ended {
                    reason,
                    proven: false,
                };
            }
        };
        let mut client = EventReportingServiceClient::new(channel);
        // Capacity 1: events stay in our bounded queue (where losses are counted) until the
        // transport has taken the previous message, and a free slot says it has.
        let (sender, receiver) = mpsc::channel::<StreamEventsRequest>(1);
        let mut request = tonic::Request::new(ReceiverStream::new(receiver));
        add_metadata(&mut request, &self.target);
        // Never wait for the server's response headers: a grpc-go handler that only receives
        // sends them when it returns. The stream counts as connected once started, as Envoy
        // counts its gRPC streams.
        let mut responses = ResponseStream::new(async move { client.stream_events(request).await });
        set(&self.stats.events_connected, 1);
        tracing::info!(cluster = %self.target.cluster, "event reporting stream started");
        let proven_at = Instant::now() + STABLE_STREAM;
        let mut delivery = Delivery::default();
        let mut node = Some(self.node.clone());
        let outcome = loop {
            // The first message goes at once, with the node and whatever is queued.
            let has_events = node.is_some() || !self.inbox.queue.is_empty();
            tokio::select! {
                permit = sender.reserve(), if has_events || !delivery.waiting.is_empty() => {
                    let Ok(permit) = permit else {
                        // The transport dropped our side: the call's status says why.
                        break final_status(&mut responses).await;
                    };
                    // A free slot: the transport took the batch that waited in it.
                    self.taken(&mut delivery);
                    if has_events {
                        let batch = self.inbox.queue.take(MAX_BATCH);
                        permit.send(StreamEventsRequest {
                            identifier: node.take().map(|node| Identifier { node: Some(node) }),
                            events: batch.iter().map(|event| to_any(event)).collect(),
                        });
                        delivery.waiting = batch;
                    }
                }
                () = self.inbox.receive() => {}
                () = tokio::time::sleep_until(proven_at), if !delivery.proven => {
                    // Up this long without a refusal: what it took counts as delivered.
                    self.prove(&mut delivery);
                }
                event = responses.next() => match event {
                    Ok(StreamEvent::Headers) => self.prove(&mut delivery),
                    // The service defines no response content; nothing to do with one.
                    Ok(StreamEvent::Message(_)) => {}
                    Ok(StreamEvent::End) => break Ok(()),
                    Err(status) => break Err(status),
                },
            }
        };
        self.settle(delivery, &outcome, responses.headers_received());
        Ended {
            reason: match &outcome {
                Ok(()) => "the server ended the stream".into(),
                Err(status) => format!("the server ended the stream: {}", error_chain(status)),
            },
            proven: responses.headers_received() || Instant::now() >= proven_at,
        }
    }

    /// The transport took the batch that waited in the channel.
    fn taken(&self, delivery: &mut Delivery) {
        let batch = std::mem::take(&mut delivery.waiting);
        if delivery.proven {
            add(&self.stats.events_sent, batch.len() as u64);
        } else {
            delivery.unconfirmed.extend(batch);
        }
    }

    /// The server has taken the stream (its headers came, or it has been up a while): what
    /// the transport took so far counts as sent.
    fn prove(&self, delivery: &mut Delivery) {
        delivery.proven = true;
        let taken = std::mem::take(&mut delivery.unconfirmed);
        add(&self.stats.events_sent, taken.len() as u64);
    }

    /// At the end of a stream: events of a stream the server refused before running its
    /// handler, and a batch the transport never took, go back in the queue; everything else
    /// the transport took counts as sent (a client stream never learns what the server read).
    fn settle(
        &mut self,
        mut delivery: Delivery,
        outcome: &Result<(), tonic::Status>,
        headers_received: bool,
    ) {
        let refused = !headers_received
            && outcome.as_ref().is_err_and(|status| {
                matches!(
                    status.code(),
                    tonic::Code::Unimplemented
                        | tonic::Code::Unauthenticated
                        | tonic::Code::PermissionDenied
                )
            });
        let mut again = std::mem::take(&mut delivery.waiting);
        if refused {
            again.splice(0..0, std::mem::take(&mut delivery.unconfirmed));
        } else {
            self.prove(&mut delivery);
        }
        let dropped = self.inbox.queue.requeue(again);
        add(&self.stats.events_dropped, dropped);
    }
}

/// Why a stream ended, and whether it proved good (the reconnect delay starts over).
struct Ended {
    reason: String,
    proven: bool,
}

/// The events handed to one stream.
#[derive(Default)]
struct Delivery {
    /// In the channel, not yet taken by the transport.
    waiting: Vec<Arc<HostEvent>>,
    /// Taken by the transport before the server showed it takes the stream: counted as sent
    /// once it does, queued again if it refuses the stream.
    unconfirmed: Vec<Arc<HostEvent>>,
    /// The server has taken the stream.
    proven: bool,
}

/// How the call ended once the transport dropped our side: its status, if it comes soon.
async fn final_status(
    responses: &mut ResponseStream<StreamEventsResponse>,
) -> Result<(), tonic::Status> {
    let end = async {
        loop {
            match responses.next().await {
                Ok(StreamEvent::End) => return Ok(()),
                Ok(_) => {}
                Err(status) => return Err(status),
            }
        }
    };
    tokio::time::timeout(FINAL_STATUS_WAIT, end)
        .await
        .unwrap_or_else(|_| Err(tonic::Status::unavailable("the stream closed")))
}
