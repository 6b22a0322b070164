//! `envoy.service.event_reporting.v3.EventReportingService` on the management server: records
//! every `StreamEventsRequest` with the stream it came on, answers nothing (the service defines
//! no response content), and lets tests read, decode and wait for the events. With
//! [`crate::Behavior::grpc_go_report_streams`] it sends no response headers until the client
//! ends the stream, as a grpc-go handler that only receives does.

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::data::cluster::v3::OutlierDetectionEvent;
use envoy_types::pb::envoy::data::core::v3::HealthCheckEvent;
use envoy_types::pb::envoy::service::event_reporting::v3::event_reporting_service_server::EventReportingService;
use envoy_types::pb::envoy::service::event_reporting::v3::{
    StreamEventsRequest, StreamEventsResponse,
};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::report_log::{ReportLog, StreamControl};
use crate::server::ManagementServer;
use crate::shared::Shared;

/// One `StreamEventsRequest` as received.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedEvents {
    /// The event stream it arrived on (numbered from 1 in opening order).
    pub stream_id: u64,
    /// When it arrived.
    pub received: std::time::SystemTime,
    pub request: StreamEventsRequest,
}

pub(crate) struct EventsState {
    log: ReportLog<RecordedEvents>,
    streams: StreamControl,
}

impl EventsState {
    pub(crate) fn new() -> Self {
        Self {
            log: ReportLog::new(),
            streams: StreamControl::new(),
        }
    }

    pub(crate) fn close(&self) {
        self.streams.close();
    }

    pub(crate) fn drop_streams(&self) {
        self.streams.drop_streams();
    }
}

pub(crate) struct EventsService {
    pub(crate) state: Arc<EventsState>,
    pub(crate) shared: Arc<Shared>,
}

type ResponseStream = UnboundedReceiverStream<Result<StreamEventsResponse, tonic::Status>>;

/// How a stream's receiving ended.
enum Ended {
    /// The client closed or reset its side.
    ByClient,
    /// A test dropped the server's streams.
    ByServer,
}

/// Records the stream's requests until one side ends it.
async fn receive_all(
    state: &EventsState,
    stream_id: u64,
    requests: &mut tonic::Streaming<StreamEventsRequest>,
    drops: &mut tokio::sync::watch::Receiver<u64>,
) -> Ended {
    loop {
        tokio::select! {
            message = requests.message() => match message {
                Ok(Some(request)) => state.log.push(RecordedEvents {
                    stream_id,
                    received: std::time::SystemTime::now(),
                    request,
                }),
                Ok(None) | Err(_) => return Ended::ByClient,
            },
            _ = drops.changed() => return Ended::ByServer,
        }
    }
}

fn dropped() -> tonic::Status {
    tonic::Status::unavailable("dropped by the test server")
}

#[tonic::async_trait]
impl EventReportingService for EventsService {
    type StreamEventsStream = ResponseStream;

    async fn stream_events(
        &self,
        request: tonic::Request<tonic::Streaming<StreamEventsRequest>>,
    ) -> Result<tonic::Response<ResponseStream>, tonic::Status> {
        if self.shared.behavior.borrow().refuse_event_streams {
            return Err(tonic::Status::unimplemented(
                "unknown service envoy.service.event_reporting.v3.EventReportingService",
            ));
        }
        let Some((stream_id, mut drops)) = self.state.streams.open() else {
            return Err(tonic::Status::unavailable("server shutting down"));
        };
        let mut requests = request.into_inner();
        let (responses, stream) = tokio::sync::mpsc::unbounded_channel();
        if self.shared.behavior.borrow().grpc_go_report_streams {
            // A grpc-go handler that only receives sends its response headers (with the
            // trailers) when it returns: not before the client ends the stream.
            drop(responses);
            return match receive_all(&self.state, stream_id, &mut requests, &mut drops).await {
                Ended::ByClient => Ok(tonic::Response::new(UnboundedReceiverStream::new(stream))),
                Ended::ByServer => Err(dropped()),
            };
        }
        let state = self.state.clone();
        tokio::spawn(async move {
            if let Ended::ByServer = receive_all(&state, stream_id, &mut requests, &mut drops).await
            {
                let _ = responses.send(Err(dropped()));
            }
        });
        Ok(tonic::Response::new(UnboundedReceiverStream::new(stream)))
    }
}

fn all_events(log: &[RecordedEvents]) -> Vec<Any> {
    log.iter()
        .flat_map(|r| r.request.events.iter().cloned())
        .collect()
}

fn decode_all<M: Message + Name + Default>(events: &[Any]) -> Vec<M> {
    events
        .iter()
        .filter(|any| any.type_url == M::type_url())
        .filter_map(|any| M::decode(any.value.as_slice()).ok())
        .collect()
}

impl ManagementServer {
    /// Every `StreamEventsRequest` received so far, in arrival order.
    pub fn event_requests(&self) -> Vec<RecordedEvents> {
        self.events_state().log.items()
    }

    /// Every event received so far with when it arrived, in arrival order.
    pub fn received_events_at(&self) -> Vec<(std::time::SystemTime, Any)> {
        self.events_state()
            .log
            .items()
            .into_iter()
            .flat_map(|r| {
                let at = r.received;
                r.request.events.into_iter().map(move |e| (at, e))
            })
            .collect()
    }

    /// Every event received so far (the `Any`s of all requests), in arrival order.
    pub fn received_events(&self) -> Vec<Any> {
        all_events(&self.events_state().log.items())
    }

    /// The `OutlierDetectionEvent`s received so far.
    pub fn outlier_events(&self) -> Vec<OutlierDetectionEvent> {
        decode_all(&self.received_events())
    }

    /// The `HealthCheckEvent`s received so far.
    pub fn health_check_events(&self) -> Vec<HealthCheckEvent> {
        decode_all(&self.received_events())
    }

    /// Every event received once there are at least `n`, or `None` after `timeout`.
    pub async fn wait_for_events(&self, n: usize, timeout: Duration) -> Option<Vec<Any>> {
        self.events_state()
            .log
            .wait(timeout, |log| {
                let events = all_events(log);
                (events.len() >= n).then_some(events)
            })
            .await
    }

    /// The first `StreamEventsRequest` (received or still to come) matching `pred`.
    pub async fn wait_for_event_request(
        &self,
        pred: impl Fn(&RecordedEvents) -> bool,
        timeout: Duration,
    ) -> Option<RecordedEvents> {
        self.events_state()
            .log
            .wait(timeout, |log| log.iter().find(|r| pred(r)).cloned())
            .await
    }

    /// How many event streams have been opened.
    pub fn event_streams_opened(&self) -> usize {
        self.events_state().streams.opened()
    }
}
