//! Serving a snapshot file and reloading it when it changes.
//!
//! The file is polled (mtime and length, every 200 ms by default) rather than watched with
//! inotify: it is one small file, and polling works the same on every platform and filesystem.
//! A reload that fails to parse is logged and the last good snapshot stays in service, as
//! does an empty file (one truncated by a writer that has not written yet).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::server::ManagementServer;
use crate::snapshot::Snapshot;
use crate::snapshot_file::{SnapshotFileError, parse_document};

/// How often the file is checked by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// What the watcher has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Snapshots loaded and handed over, the initial load included.
    pub loads: u64,
    /// Reloads that failed (the previous snapshot stayed in service).
    pub failures: u64,
    /// The error of the last failed reload, cleared by the next good one.
    pub last_error: Option<String>,
}

/// Polls a snapshot file and hands every good new version to a sink (usually a server).
/// Stops when dropped.
#[derive(Debug)]
pub struct FileWatcher {
    status: watch::Receiver<ReloadStatus>,
    task: JoinHandle<()>,
}

impl Drop for FileWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The file's identity as far as change detection goes.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

async fn stamp(path: &Path) -> Option<Stamp> {
    let meta = tokio::fs::metadata(path).await.ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

impl FileWatcher {
    /// Loads `path` into `server` now (failing if it does not parse), then reloads it on change.
    pub fn serve(
        path: impl Into<PathBuf>,
        server: &ManagementServer,
    ) -> Result<FileWatcher, SnapshotFileError> {
        let server = server.clone();
        FileWatcher::start(path, DEFAULT_POLL_INTERVAL, move |snapshot| {
            server.set_snapshot(snapshot);
        })
    }

    /// Loads `path` now and passes it to `sink`, then polls every `interval` and passes every
    /// good new version. Must be called within a tokio runtime.
    pub fn start(
        path: impl Into<PathBuf>,
        interval: Duration,
        mut sink: impl FnMut(Snapshot) + Send + 'static,
    ) -> Result<FileWatcher, SnapshotFileError> {
        let path = path.into();
        let file = path.display().to_string();
        let read_error = |source| SnapshotFileError::Read {
            file: file.clone(),
            source,
        };
        let no_runtime = || {
            read_error(std::io::Error::other(
                "the file watcher must be started within a tokio runtime",
            ))
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| no_runtime())?;
        let meta = std::fs::metadata(&path).map_err(read_error)?;
        let text = std::fs::read_to_string(&path).map_err(read_error)?;
        let snapshot = parse_document(&text, &file)?;
        tracing::info!(file = %file, types = %snapshot.summary(), "snapshot loaded");
        sink(snapshot);

        let (status_tx, status) = watch::channel(ReloadStatus {
            loads: 1,
            ..Default::default()
        });
        let mut last_stamp = Some(Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
        });
        let mut last_text = text;
        let task = runtime.spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let now = stamp(&path).await;
                if now == last_stamp {
                    continue;
                }
                last_stamp = now;
                let text = match tokio::fs::read_to_string(&path).await {
                    Ok(text) => text,
                    Err(e) => {
                        // A file being replaced may briefly not exist; keep serving and retry.
                        let message = format!("{file}: {e}");
                        tracing::warn!(error = %message, "snapshot reload failed; serving the last good snapshot");
                        status_tx.send_modify(|s| {
                            s.failures += 1;
                            s.last_error = Some(message);
                        });
                        continue;
                    }
                };
                if text.trim().is_empty() {
                    // Truncated by a writer that has not written yet (`>`, most editors,
                    // std::fs::write): never "remove everything". A snapshot without resources
                    // says that.
                    let message = format!("{file}: empty; keeping the last good snapshot");
                    tracing::warn!(error = %message, "snapshot reload skipped");
                    status_tx.send_modify(|s| {
                        s.failures += 1;
                        s.last_error = Some(message);
                    });
                    continue;
                }
                if text == last_text {
                    // Back to what is being served (e.g. a bad edit undone): nothing is wrong now.
                    status_tx.send_if_modified(|s| s.last_error.take().is_some());
                    continue;
                }
                match parse_document(&text, &file) {
                    Ok(snapshot) => {
                        last_text = text;
                        tracing::info!(file = %file, types = %snapshot.summary(), "snapshot reloaded");
                        sink(snapshot);
                        status_tx.send_modify(|s| {
                            s.loads += 1;
                            s.last_error = None;
                        });
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "snapshot reload failed; serving the last good snapshot");
                        status_tx.send_modify(|s| {
                            s.failures += 1;
                            s.last_error = Some(e.to_string());
                        });
                    }
                }
            }
        });
        Ok(FileWatcher { status, task })
    }

    /// What the watcher has done so far.
    pub fn status(&self) -> ReloadStatus {
        self.status.borrow().clone()
    }

    /// Waits until the status satisfies `pred`, or `timeout` passes.
    pub async fn wait_for(
        &self,
        pred: impl Fn(&ReloadStatus) -> bool,
        timeout: Duration,
    ) -> Option<ReloadStatus> {
        let mut status = self.status.clone();
        let found = tokio::time::timeout(timeout, status.wait_for(|s| pred(s))).await;
        match found {
            Ok(Ok(s)) => Some(s.clone()),
            _ => None,
        }
    }
}
