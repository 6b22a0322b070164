//! Host events to the control plane over `envoy.service.event_reporting.v3.EventReportingService`
//! (`StreamEvents`). Envoy declares this service but never sends on it; we do, for outlier
//! ejections and health-check transitions.
//!
//! Each stream's first message carries the node (`identifier.node`) and whatever is queued; later
//! messages carry events only, as many as are queued (a burst goes out in few messages). Nothing
//! waits for the server's response headers, which a grpc-go server sends only when its handler
//! returns. Between streams, events wait in a bounded queue; the reconnect delay is jittered and
//! capped. Events handed to a stream that then fails are not sent again: a client-streaming
//! call never learns what the server read, and a repeat would report a transition twice.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::event_reporting::v3::event_reporting_service_client::EventReportingServiceClient;
use envoy_types::pb::envoy::service::event_reporting::v3::{
    StreamEventsRequest, StreamEventsResponse, stream_events_request::Identifier,
};
use outrider_tables::Tables;
use outrider_upstream::events::HostEvent;
use outrider_xds::{Backoff, ResponseStream};
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
/// A stream that lasted this long was a good one, whatever ended it: the next reconnect starts
/// from the base delay.
const STABLE_STREAM: std::time::Duration = std::time::Duration::from_secs(5);

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
            tracing::warn!(
                cluster = %self.target.cluster,
                error = %ended,
                queued = self.inbox.queue.len(),
                "event reporting stream ended; reconnecting"
            );
            let until = Instant::now() + self.backoff.next_delay();
            self.inbox.during(tokio::time::sleep_until(until)).await;
            attempt = attempt.wrapping_add(1);
        }
    }

    /// One stream, from connect to its end; returns why it ended.
    async fn run_stream(&mut self, attempt: usize) -> String {
        let channel = match self
            .inbox
            .during(connect(&self.tables, &self.target, attempt))
            .await
        {
            Ok(channel) => channel,
            Err(e) => return e,
        };
        let mut client = EventReportingServiceClient::new(channel);
        // Capacity 1: events stay in our bounded queue (where losses are counted) until the
        // transport has taken the previous message.
        let (sender, receiver) = mpsc::channel::<StreamEventsRequest>(1);
        let mut request = tonic::Request::new(ReceiverStream::new(receiver));
        add_metadata(&mut request, &self.target);
        // Never wait for the server's response headers: a grpc-go handler that only receives
        // sends them when it returns. The stream counts as connected once started, as Envoy
        // counts its gRPC streams.
        let mut responses = ResponseStream::new(async move { client.stream_events(request).await });
        set(&self.stats.events_connected, 1);
        tracing::info!(cluster = %self.target.cluster, "event reporting stream started");
        let started = Instant::now();
        let mut node = Some(self.node.clone());
        loop {
            // The first message goes at once, with the node and whatever is queued.
            let has_events = node.is_some() || !self.inbox.queue.is_empty();
            tokio::select! {
                permit = sender.reserve(), if has_events => {
                    let Ok(permit) = permit else {
                        return "the stream closed".into();
                    };
                    permit.send(StreamEventsRequest {
                        identifier: node.take().map(|node| Identifier { node: Some(node) }),
                        events: self.take_batch(),
                    });
                }
                () = self.inbox.receive() => {}
                message = responses.message() => {
                    self.settle_backoff(started, &responses);
                    match message {
                        // The service defines no response content; nothing to do with one.
                        Ok(Some(_)) => {}
                        Ok(None) => return "the server ended the stream".into(),
                        Err(status) => return format!("the server ended the stream: {}", error_chain(&status)),
                    }
                }
            }
        }
    }

    /// The reconnect delay starts again from its base once a stream proved good: the server
    /// answered it, or it stayed up a while (a grpc-go server says nothing until the end).
    fn settle_backoff(
        &mut self,
        started: Instant,
        responses: &ResponseStream<StreamEventsResponse>,
    ) {
        if responses.headers_received() || started.elapsed() >= STABLE_STREAM {
            self.backoff.reset();
        }
    }

    /// The queued events (up to a message's worth) as `Any`s, counted as sent.
    fn take_batch(&mut self) -> Vec<envoy_types::pb::google::protobuf::Any> {
        let batch = self.inbox.queue.take(MAX_BATCH);
        add(&self.stats.events_sent, batch.len() as u64);
        batch.iter().map(|event| to_any(event)).collect()
    }
}
