//! `envoy.service.load_stats.v3.LoadReportingService` on the management server: records every
//! `LoadStatsRequest` with the stream it came on, and answers each stream's first request with
//! the `LoadStatsResponse` the test set (and every later change of it), as an LRS server does.
//! With [`crate::Behavior::grpc_go_report_streams`] its response headers go only with that
//! first response, as grpc-go sends them.

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::load_stats::v3::load_reporting_service_server::LoadReportingService;
use envoy_types::pb::envoy::service::load_stats::v3::{LoadStatsRequest, LoadStatsResponse};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::report_log::{ReportLog, StreamControl};
use crate::server::ManagementServer;
use crate::shared::Shared;

/// One `LoadStatsRequest` as received.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedLoadReport {
    /// The LRS stream it arrived on (numbered from 1 in opening order).
    pub stream_id: u64,
    /// When it arrived.
    pub received: std::time::Instant,
    pub request: LoadStatsRequest,
}

pub(crate) struct LrsState {
    log: ReportLog<RecordedLoadReport>,
    streams: StreamControl,
    /// What to answer; `None`: stay silent (the client must not report).
    response: watch::Sender<Option<LoadStatsResponse>>,
}

impl LrsState {
    pub(crate) fn new() -> Self {
        Self {
            log: ReportLog::new(),
            streams: StreamControl::new(),
            response: watch::Sender::new(None),
        }
    }

    pub(crate) fn close(&self) {
        self.streams.close();
    }

    pub(crate) fn drop_streams(&self) {
        self.streams.drop_streams();
    }
}

pub(crate) struct LrsService {
    pub(crate) state: Arc<LrsState>,
    pub(crate) shared: Arc<Shared>,
}

type ResponseStream = UnboundedReceiverStream<Result<LoadStatsResponse, tonic::Status>>;

/// One LRS stream, as the server sees it.
struct Conversation {
    state: Arc<LrsState>,
    stream_id: u64,
    requests: tonic::Streaming<LoadStatsRequest>,
    responses: mpsc::UnboundedSender<Result<LoadStatsResponse, tonic::Status>>,
    settings: watch::Receiver<Option<LoadStatsResponse>>,
    drops: watch::Receiver<u64>,
    /// The first request arrived (it opens the conversation).
    answered: bool,
    /// A response has gone out.
    responded: bool,
}

impl Conversation {
    /// Handles what comes next; `false` once the stream is over.
    async fn step(&mut self) -> bool {
        tokio::select! {
            message = self.requests.message() => match message {
                Ok(Some(request)) => {
                    self.state.log.push(RecordedLoadReport {
                        stream_id: self.stream_id,
                        received: std::time::Instant::now(),
                        request,
                    });
                    if !self.answered {
                        // The first request opens the conversation: answer with the current
                        // settings (if any; later ones follow on change).
                        self.answered = true;
                        self.send_current();
                    }
                    true
                }
                Ok(None) | Err(_) => false,
            },
            changed = self.settings.changed(), if self.answered => {
                changed.is_ok() && {
                    self.send_current();
                    true
                }
            }
            _ = self.drops.changed() => {
                let _ = self.responses.send(Err(tonic::Status::unavailable("dropped by the test server")));
                false
            }
        }
    }

    fn send_current(&mut self) {
        let current = self.settings.borrow_and_update().clone();
        if let Some(response) = current {
            self.responded = true;
            let _ = self.responses.send(Ok(response));
        }
    }
}

#[tonic::async_trait]
impl LoadReportingService for LrsService {
    type StreamLoadStatsStream = ResponseStream;

    async fn stream_load_stats(
        &self,
        request: tonic::Request<tonic::Streaming<LoadStatsRequest>>,
    ) -> Result<tonic::Response<ResponseStream>, tonic::Status> {
        let Some((stream_id, drops)) = self.state.streams.open() else {
            return Err(tonic::Status::unavailable("server shutting down"));
        };
        let (responses, stream) = mpsc::unbounded_channel();
        let mut conversation = Conversation {
            state: self.state.clone(),
            stream_id,
            requests: request.into_inner(),
            responses,
            settings: self.state.response.subscribe(),
            drops,
            answered: false,
            responded: false,
        };
        if self.shared.behavior.borrow().grpc_go_report_streams {
            // grpc-go sends a handler's response headers with its first message, which this
            // handler sends once the client's first request is in.
            while !conversation.responded {
                if !conversation.step().await {
                    // Over before any response: the status is all the client gets.
                    return Err(tonic::Status::unavailable(
                        "the stream ended before any response",
                    ));
                }
            }
        }
        tokio::spawn(async move { while conversation.step().await {} });
        Ok(tonic::Response::new(UnboundedReceiverStream::new(stream)))
    }
}

impl ManagementServer {
    /// Sets the `LoadStatsResponse` every LRS stream gets (open ones at once, new ones after
    /// their first request): which clusters to report (`send_all` for every cluster), how often,
    /// and whether per endpoint.
    pub fn set_load_reporting(
        &self,
        clusters: &[&str],
        interval: Duration,
        send_all: bool,
        endpoint_granularity: bool,
    ) {
        let response = LoadStatsResponse {
            clusters: clusters.iter().map(|c| c.to_string()).collect(),
            send_all_clusters: send_all,
            load_reporting_interval: Some(envoy_types::pb::google::protobuf::Duration {
                seconds: i64::try_from(interval.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(interval.subsec_nanos()).unwrap_or(0),
            }),
            report_endpoint_granularity: endpoint_granularity,
        };
        self.lrs_state().response.send_replace(Some(response));
    }

    /// Every `LoadStatsRequest` received so far (the initial one of each stream included).
    pub fn load_reports(&self) -> Vec<RecordedLoadReport> {
        self.lrs_state().log.items()
    }

    /// The first `LoadStatsRequest` (received or still to come) matching `pred`.
    pub async fn wait_for_load_report(
        &self,
        pred: impl Fn(&RecordedLoadReport) -> bool,
        timeout: Duration,
    ) -> Option<RecordedLoadReport> {
        self.lrs_state()
            .log
            .wait(timeout, |log| log.iter().find(|r| pred(r)).cloned())
            .await
    }

    /// Every `LoadStatsRequest` once there are at least `n`, or `None` after `timeout`.
    pub async fn wait_for_load_reports(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Option<Vec<RecordedLoadReport>> {
        self.lrs_state()
            .log
            .wait(timeout, |log| (log.len() >= n).then(|| log.to_vec()))
            .await
    }

    /// How many LRS streams have been opened.
    pub fn load_report_streams_opened(&self) -> usize {
        self.lrs_state().streams.opened()
    }
}
