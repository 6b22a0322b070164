//! `envoy.service.load_stats.v3.LoadReportingService` on the management server: records every
//! `LoadStatsRequest` with the stream it came on, and answers each stream's first request with
//! the `LoadStatsResponse` the test set (and every later change of it), as an LRS server does.

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::load_stats::v3::load_reporting_service_server::LoadReportingService;
use envoy_types::pb::envoy::service::load_stats::v3::{LoadStatsRequest, LoadStatsResponse};
use tokio::sync::watch;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::report_log::{ReportLog, StreamControl};
use crate::server::ManagementServer;

/// One `LoadStatsRequest` as received.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedLoadReport {
    /// The LRS stream it arrived on (numbered from 1 in opening order).
    pub stream_id: u64,
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
}

type ResponseStream = UnboundedReceiverStream<Result<LoadStatsResponse, tonic::Status>>;

#[tonic::async_trait]
impl LoadReportingService for LrsService {
    type StreamLoadStatsStream = ResponseStream;

    async fn stream_load_stats(
        &self,
        request: tonic::Request<tonic::Streaming<LoadStatsRequest>>,
    ) -> Result<tonic::Response<ResponseStream>, tonic::Status> {
        let Some((stream_id, mut drops)) = self.state.streams.open() else {
            return Err(tonic::Status::unavailable("server shutting down"));
        };
        let mut requests = request.into_inner();
        let (responses, stream) = tokio::sync::mpsc::unbounded_channel();
        let state = self.state.clone();
        let mut settings = state.response.subscribe();
        tokio::spawn(async move {
            let mut answered = false;
            loop {
                tokio::select! {
                    message = requests.message() => match message {
                        Ok(Some(request)) => {
                            state.log.push(RecordedLoadReport { stream_id, request });
                            if !answered {
                                // The first request opens the conversation: answer with the
                                // current settings (if any; later ones follow on change).
                                answered = true;
                                let current = settings.borrow_and_update().clone();
                                if let Some(response) = current {
                                    let _ = responses.send(Ok(response));
                                }
                            }
                        }
                        Ok(None) | Err(_) => return,
                    },
                    changed = settings.changed(), if answered => {
                        if changed.is_err() {
                            return;
                        }
                        let current = settings.borrow_and_update().clone();
                        if let Some(response) = current {
                            let _ = responses.send(Ok(response));
                        }
                    }
                    _ = drops.changed() => {
                        let _ = responses.send(Err(tonic::Status::unavailable("dropped by the test server")));
                        return;
                    }
                }
            }
        });
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
