//! Reports to the control plane, run on the control thread:
//!
//! - host events (outlier ejections and un-ejections, health-check transitions) streamed over
//!   `envoy.service.event_reporting.v3.EventReportingService` to the cluster named by
//!   `cluster_manager.outlier_detection.event_service` (`event_stream`);
//! - outlier events appended as JSON lines to `cluster_manager.outlier_detection.event_log_path`
//!   ([`event_log`]);
//! - load reports over `envoy.service.load_stats.v3.LoadReportingService` to the cluster named
//!   by `cluster_manager.load_stats_config` ([`load_report`] computes them, `lrs_stream` sends).
//!
//! ```no_run
//! # async fn demo(tables: std::sync::Arc<outrider_tables::Tables>) {
//! use outrider_report::{GrpcTarget, ReportConfig, Reporter};
//! let bus = outrider_upstream::events::EventBus::default();
//! let config = ReportConfig { load_stats: Some(GrpcTarget::new("lrs")), ..Default::default() };
//! let reporter = Reporter::new(config, tables, &bus, Default::default());
//! let stats = reporter.stats(); // `event_reporting.events_dropped`, `load_reporter.requests`, ...
//! reporter.run().await; // runs until dropped
//! # }
//! ```

mod channel;
mod config;
pub mod convert;
pub mod event_log;
mod event_queue;
mod event_stream;
mod inbox;
pub mod load_report;
mod lrs_stream;
mod stats;

use std::future::Future;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use outrider_tables::Tables;
use outrider_upstream::events::EventBus;
use outrider_xds::Backoff;

pub use channel::with_tcp_keepalive;
pub use config::{GrpcTarget, ReportConfig};
pub use event_stream::EVENT_QUEUE_CAPACITY;
pub use load_report::{LoadReporter, MIN_INTERVAL};
pub use lrs_stream::SUPPORTS_SEND_ALL_CLUSTERS;
pub use stats::ReportStats;

use crate::event_log::EventLog;
use crate::event_stream::EventStream;
use crate::lrs_stream::LrsStream;

/// Every configured reporter, subscribed to the event bus from the moment it is built (so no
/// event published after `new` is missed), run by [`Reporter::run`].
pub struct Reporter {
    events: Option<EventStream>,
    log: Option<EventLog>,
    lrs: Option<LrsStream>,
    stats: Arc<ReportStats>,
}

impl Reporter {
    pub fn new(config: ReportConfig, tables: Arc<Tables>, bus: &EventBus, node: Node) -> Self {
        Self::with_backoff(config, tables, bus, node, Backoff::envoy_default())
    }

    /// As [`Reporter::new`], with another reconnect backoff (tests use a short one).
    pub fn with_backoff(
        config: ReportConfig,
        tables: Arc<Tables>,
        bus: &EventBus,
        node: Node,
        backoff: Backoff,
    ) -> Self {
        let ReportConfig {
            event_service,
            event_log_path,
            load_stats,
        } = config;
        let stats = Arc::new(ReportStats::default());
        let events = event_service.map(|target| {
            EventStream::new(
                target,
                tables.clone(),
                node.clone(),
                bus.subscribe(),
                stats.clone(),
                backoff.clone(),
            )
        });
        let log = event_log_path.map(|path| EventLog::new(path, bus.subscribe(), stats.clone()));
        let lrs = load_stats.map(|target| {
            LrsStream::new(
                target,
                tables.clone(),
                node.clone(),
                stats.clone(),
                backoff.clone(),
            )
        });
        Self {
            events,
            log,
            lrs,
            stats,
        }
    }

    /// The reporters' counters, live.
    pub fn stats(&self) -> Arc<ReportStats> {
        self.stats.clone()
    }

    /// Runs every configured reporter; never completes while one is configured (they reconnect
    /// forever). With none configured it waits forever too, so it can sit in a `select!`.
    pub async fn run(self) {
        let Self {
            events,
            log,
            lrs,
            stats: _,
        } = self;
        let events = run_some(events.map(EventStream::run));
        // The log ends when every publisher is gone; the others go on.
        let log = async {
            run_some(log.map(EventLog::run)).await;
            std::future::pending::<()>().await;
        };
        let lrs = run_some(lrs.map(LrsStream::run));
        tokio::join!(events, log, lrs);
    }
}

/// `Reporter::new(...).run()` in one call, for wiring that does not read the stats.
pub fn run(
    config: ReportConfig,
    tables: Arc<Tables>,
    bus: &EventBus,
    node: Node,
) -> impl Future<Output = ()> + use<> {
    Reporter::new(config, tables, bus, node).run()
}

async fn run_some(task: Option<impl Future<Output = ()>>) {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}
