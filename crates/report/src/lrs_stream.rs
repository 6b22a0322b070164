//! Load reports to the control plane over `envoy.service.load_stats.v3.LoadReportingService`
//! (`StreamLoadStats`): every request carries the node (with the client feature
//! `envoy.lrs.supports_send_all_clusters`, as Envoy adds); each `LoadStatsResponse` sets the
//! clusters, interval and granularity; a report follows every interval. Reconnects with jittered
//! exponential backoff; a new stream waits for a new response before reporting.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::load_stats::v3::LoadStatsRequest;
use envoy_types::pb::envoy::service::load_stats::v3::load_reporting_service_client::LoadReportingServiceClient;
use outrider_tables::Tables;
use outrider_xds::{Backoff, ResponseStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use crate::channel::{add_metadata, connect, error_chain};
use crate::config::GrpcTarget;
use crate::load_report::LoadReporter;
use crate::stats::{ReportStats, add, set};

/// The client feature that tells the server we honour `send_all_clusters`.
pub const SUPPORTS_SEND_ALL_CLUSTERS: &str = "envoy.lrs.supports_send_all_clusters";

pub(crate) struct LrsStream {
    target: GrpcTarget,
    tables: Arc<Tables>,
    node: Node,
    stats: Arc<ReportStats>,
    backoff: Backoff,
}

impl LrsStream {
    pub(crate) fn new(
        target: GrpcTarget,
        tables: Arc<Tables>,
        mut node: Node,
        stats: Arc<ReportStats>,
        backoff: Backoff,
    ) -> Self {
        if !node
            .client_features
            .iter()
            .any(|f| f == SUPPORTS_SEND_ALL_CLUSTERS)
        {
            node.client_features
                .push(SUPPORTS_SEND_ALL_CLUSTERS.to_string());
        }
        Self {
            target,
            tables,
            node,
            stats,
            backoff,
        }
    }

    /// Reports forever, reconnecting as needed.
    pub(crate) async fn run(mut self) {
        let mut attempt = 0usize;
        loop {
            let ended = self.run_stream(attempt).await;
            set(&self.stats.lrs_connected, 0);
            add(&self.stats.lrs_errors, 1);
            tracing::warn!(cluster = %self.target.cluster, error = %ended, "load reporting stream ended; reconnecting");
            tokio::time::sleep(self.backoff.next_delay()).await;
            attempt = attempt.wrapping_add(1);
        }
    }

    /// One stream, from connect to its end; returns why it ended.
    async fn run_stream(&mut self, attempt: usize) -> String {
        let channel = match connect(&self.tables, &self.target, attempt).await {
            Ok(channel) => channel,
            Err(e) => return e,
        };
        let mut client = LoadReportingServiceClient::new(channel);
        // Capacity 1: a report is built only when the transport can take it, so its counts
        // are as fresh as possible.
        let (sender, receiver) = mpsc::channel::<LoadStatsRequest>(1);
        let first = LoadStatsRequest {
            node: Some(self.node.clone()),
            cluster_stats: Vec::new(),
        };
        if sender.try_send(first).is_err() {
            return "the request channel refused the first message".into();
        }
        let mut request = tonic::Request::new(ReceiverStream::new(receiver));
        add_metadata(&mut request, &self.target);
        // The server's headers come with its first response (grpc-go sends them with a
        // handler's first message), which it sends once it has read our first request: the
        // responses are read beside everything else, never awaited before sending.
        let mut responses =
            ResponseStream::new(async move { client.stream_load_stats(request).await });
        set(&self.stats.lrs_connected, 1);
        add(&self.stats.lrs_requests, 1);
        tracing::info!(cluster = %self.target.cluster, "load reporting stream started");
        let mut reporter = LoadReporter::new(Instant::now().into_std());
        let mut next_report: Option<Instant> = None;
        loop {
            let due = next_report;
            tokio::select! {
                message = responses.message() => match message {
                    Ok(Some(response)) => {
                        self.backoff.reset();
                        add(&self.stats.lrs_responses, 1);
                        let now = Instant::now();
                        reporter.on_response(&response, &self.tables.load(), now.into_std());
                        tracing::debug!(
                            clusters = ?response.clusters,
                            send_all = response.send_all_clusters,
                            interval = ?reporter.interval(),
                            "new load reporting period"
                        );
                        next_report = Some(now + reporter.interval());
                    }
                    Ok(None) => return "the server ended the stream".into(),
                    Err(status) => return format!("the server ended the stream: {}", error_chain(&status)),
                },
                permit = sender.reserve(), if due.is_some_and(|at| at <= Instant::now()) => {
                    let Ok(permit) = permit else {
                        return "the stream closed".into();
                    };
                    let now = Instant::now();
                    let cluster_stats = reporter.report(&self.tables.load(), now.into_std());
                    // Envoy's LRS client sends the node on every request.
                    permit.send(LoadStatsRequest { node: Some(self.node.clone()), cluster_stats });
                    add(&self.stats.lrs_requests, 1);
                    next_report = Some(now + reporter.interval());
                }
                () = sleep_until_some(due), if due.is_some_and(|at| at > Instant::now()) => {}
            }
        }
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
