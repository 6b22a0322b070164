//! A scriptable xDS v3 management server: ADS over gRPC, state of the world and delta, plus the
//! reporting services a proxy talks back to (EventReportingService and LRS), recorded for tests.
//!
//! It serves a [`Snapshot`] (set from code or from a YAML file of Envoy-format resources) with
//! go-control-plane's semantics, records every request and response for tests to read and wait
//! on, and misbehaves on command (drops streams, resends NACKed versions, duplicates, unrequested
//! resources, silence, raw injection) so a client can be proven robust against real servers.
//!
//! [`suite`] runs any xDS client binary (Outrider, Envoy) against it, scenario by scenario, and
//! checks the protocol rules through the client's admin interface and the recorded requests
//! (`xds-conformance suite -- <client command>`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use xds_conformance::{ManagementServer, ServerOptions, Snapshot, type_url};
//! use envoy_types::pb::envoy::config::cluster::v3::Cluster;
//!
//! let server = ManagementServer::start(ServerOptions::default()).await?;
//! server.set_snapshot(Snapshot::new("v1").with(Cluster { name: "a".into(), ..Default::default() }));
//! // ... point a client at server.uri() ...
//! let ack = server
//!     .wait_for_request(|r| r.type_url() == type_url::CLUSTER && r.is_ack(), Duration::from_secs(5))
//!     .await;
//! # Ok(()) }
//! ```

mod behavior;
mod delta;
mod events_service;
mod file_watcher;
mod lrs_service;
mod recorder;
mod report_log;
mod server;
mod shared;
mod snapshot;
mod snapshot_file;
mod sotw;
mod stream_loop;
pub mod suite;
pub mod type_url;
mod watched;

pub use behavior::{Behavior, ServerOptions};
pub use events_service::RecordedEvents;
pub use file_watcher::{DEFAULT_POLL_INTERVAL, FileWatcher, ReloadStatus};
pub use lrs_service::RecordedLoadReport;
pub use recorder::{
    Protocol, RecordedRequest, RecordedResponse, Recorder, RequestBody, RequestClass,
    ResponseOrigin, StreamInfo,
};
pub use server::{ManagementServer, ServerError};
pub use snapshot::{NamedResource, Snapshot, SnapshotResource, TypeSnapshot, content_hash, pack};
pub use snapshot_file::SnapshotFileError;
