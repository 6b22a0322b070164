//! `cluster_manager.outlier_detection.event_log_path`: every outlier ejection and un-ejection,
//! and every active health-check event, appended as one line of proto3 JSON each, as Envoy
//! writes them (`OutlierDetectionEvent` / `HealthCheckEvent`, snake_case names, every primitive
//! field printed even when it is the default). Differs from Envoy, which writes health-check
//! events to each health checker's own `event_log_path`: here one file holds the whole story.
//!
//! File I/O goes through `tokio::fs` (a blocking thread), never on the control thread itself;
//! the file is flushed after each batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use envoy_types::pb::envoy::data::cluster::v3::OutlierDetectionEvent;
use envoy_types::pb::envoy::data::core::v3::HealthCheckEvent;
use outrider_upstream::events::{HostEvent, OutlierEvent};
use prost::{Message, Name};
use prost_reflect::{DynamicMessage, SerializeOptions};
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use crate::convert::{health_check_event, outlier_event};
use crate::stats::{ReportStats, add};

/// Envoy's JSON line for one outlier event (without the newline).
pub fn json_line(event: &OutlierEvent) -> Result<String, String> {
    let proto = outlier_event(event);
    proto_json_line(&OutlierDetectionEvent::full_name(), &proto.encode_to_vec())
}

/// Envoy's JSON line for any host event.
pub fn host_event_json_line(event: &HostEvent) -> Result<String, String> {
    match event {
        HostEvent::Outlier(event) => json_line(event),
        HostEvent::Health(event) => {
            let proto = health_check_event(event);
            proto_json_line(&HealthCheckEvent::full_name(), &proto.encode_to_vec())
        }
    }
}

/// One message, encoded, as Envoy's event-log JSON.
fn proto_json_line(full_name: &str, encoded: &[u8]) -> Result<String, String> {
    let descriptor = outrider_envoy_json::descriptor(full_name).map_err(|e| e.to_string())?;
    let dynamic = DynamicMessage::decode(descriptor, encoded).map_err(|e| e.to_string())?;
    // Envoy: getJsonStringFromMessageOrError(event, pretty_print = false,
    // always_print_primitive_fields = true).
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false)
        .stringify_64_bit_integers(true);
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::new(&mut out);
    dynamic
        .serialize_with_options(&mut serializer, &options)
        .map_err(|e| e.to_string())?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

pub(crate) struct EventLog {
    path: PathBuf,
    events: broadcast::Receiver<Arc<HostEvent>>,
    stats: Arc<ReportStats>,
    file: Option<tokio::fs::File>,
}

impl EventLog {
    pub(crate) fn new(
        path: PathBuf,
        events: broadcast::Receiver<Arc<HostEvent>>,
        stats: Arc<ReportStats>,
    ) -> Self {
        Self {
            path,
            events,
            stats,
            file: None,
        }
    }

    /// Writes events until every publisher is gone.
    pub(crate) async fn run(mut self) {
        loop {
            let mut batch = Vec::new();
            match self.events.recv().await {
                Ok(event) => batch.push(event),
                Err(RecvError::Lagged(lost)) => add(&self.stats.event_log_dropped, lost),
                Err(RecvError::Closed) => return,
            }
            // Everything already published goes in the same write.
            loop {
                match self.events.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(TryRecvError::Lagged(lost)) => add(&self.stats.event_log_dropped, lost),
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
            self.write(&batch).await;
        }
    }

    async fn write(&mut self, batch: &[Arc<HostEvent>]) {
        let mut text = String::new();
        let mut lines = 0u64;
        for event in batch {
            match host_event_json_line(event) {
                Ok(line) => {
                    text.push_str(&line);
                    text.push('\n');
                    lines += 1;
                }
                Err(error) => {
                    add(&self.stats.event_log_dropped, 1);
                    tracing::warn!(%error, "cannot print a host event as JSON");
                }
            }
        }
        if lines == 0 {
            return;
        }
        match self.append(text.as_bytes()).await {
            Ok(()) => add(&self.stats.event_log_written, lines),
            Err(error) => {
                // Reopen on the next batch (the file may have been removed or rotated).
                self.file = None;
                add(&self.stats.event_log_dropped, lines);
                tracing::warn!(path = %self.path.display(), %error, "cannot write the event log");
            }
        }
    }

    async fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(open(&self.path).await?),
        };
        file.write_all(bytes).await?;
        file.flush().await
    }
}

async fn open(path: &Path) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
}
