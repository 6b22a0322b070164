//! Host events to the control plane over `envoy.service.event_reporting.v3.EventReportingService`
//! (`StreamEvents`). Envoy declares this service but never sends on it; we do, for outlier
//! ejections and health-check transitions.
//!
//! Each stream's first message carries the node (`identifier.node`) and whatever is queued; later
//! messages carry events only, as many as are queued (a burst goes out in few messages). Between
//! streams, events wait in a bounded queue; the reconnect delay is jittered and capped.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::event_reporting::v3::event_reporting_service_client::EventReportingServiceClient;
use envoy_types::pb::envoy::service::event_reporting::v3::{
    StreamEventsRequest, stream_events_request::Identifier,
};
use outrider_tables::Tables;
use outrider_upstream::events::HostEvent;
use outrider_xds::Backoff;
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
        // The first message goes with the call; its events count as sent once the call is up.
        let first_batch = self.inbox.queue.take(MAX_BATCH);
        let first = StreamEventsRequest {
            identifier: Some(Identifier {
                node: Some(self.node.clone()),
            }),
            events: first_batch.iter().map(|event| to_any(event)).collect(),
        };
        // A fresh channel of capacity 1 has room for one message.
        let _ = sender.try_send(first);
        let mut request = tonic::Request::new(ReceiverStream::new(receiver));
        add_metadata(&mut request, &self.target);
        let mut responses = match self.inbox.during(client.stream_events(request)).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                // Refused: the server did not take them; they wait for the next stream.
                let dropped = self.inbox.queue.requeue(first_batch);
                add(&self.stats.events_dropped, dropped);
                return format!("opening the stream: {status}");
            }
        };
        add(&self.stats.events_sent, first_batch.len() as u64);
        set(&self.stats.events_connected, 1);
        self.backoff.reset();
        tracing::info!(cluster = %self.target.cluster, "event reporting stream open");
        loop {
            let has_events = !self.inbox.queue.is_empty();
            tokio::select! {
                permit = sender.reserve(), if has_events => {
                    let Ok(permit) = permit else {
                        return "the stream closed".into();
                    };
                    permit.send(StreamEventsRequest {
                        identifier: None,
                        events: self.take_batch(),
                    });
                }
                () = self.inbox.receive() => {}
                message = responses.message() => match message {
                    // The service defines no response content; nothing to do with one.
                    Ok(Some(_)) => {}
                    Ok(None) => return "the server ended the stream".into(),
                    Err(status) => return format!("the server ended the stream: {}", error_chain(&status)),
                },
            }
        }
    }

    /// The queued events (up to a message's worth) as `Any`s, counted as sent.
    fn take_batch(&mut self) -> Vec<envoy_types::pb::google::protobuf::Any> {
        let batch = self.inbox.queue.take(MAX_BATCH);
        add(&self.stats.events_sent, batch.len() as u64);
        batch.iter().map(|event| to_any(event)).collect()
    }
}
