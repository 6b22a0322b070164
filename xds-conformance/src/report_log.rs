//! What the reporting services (events, load) received, for tests to read and wait on, and the
//! switch that ends their streams. Waiting never polls (`Watched`, shared with the ADS
//! recorder).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::watched::Watched;

/// An append-only log with waiters.
pub(crate) struct ReportLog<T>(Watched<Vec<T>>);

impl<T: Clone> ReportLog<T> {
    pub(crate) fn new() -> Self {
        Self(Watched::new(Vec::new()))
    }

    pub(crate) fn push(&self, item: T) {
        self.0.lock().push(item);
        self.0.bump();
    }

    pub(crate) fn items(&self) -> Vec<T> {
        self.0.lock().clone()
    }

    /// The first `Some` that `check` returns on the log (now or as it grows), or `None` once
    /// `timeout` has passed.
    pub(crate) async fn wait<R>(
        &self,
        timeout: Duration,
        check: impl Fn(&[T]) -> Option<R>,
    ) -> Option<R> {
        self.0.wait(timeout, |items| check(items)).await
    }
}

/// Ends a service's open streams on command; once closed (server shutdown), refuses new ones.
pub(crate) struct StreamControl {
    drops: watch::Sender<u64>,
    closed: AtomicBool,
    next_id: AtomicU64,
    opened: AtomicU64,
}

impl StreamControl {
    pub(crate) fn new() -> Self {
        Self {
            drops: watch::Sender::new(0),
            closed: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            opened: AtomicU64::new(0),
        }
    }

    /// Registers a new stream: its id and the receiver that tells it to end, or `None` once
    /// the server is shutting down.
    pub(crate) fn open(&self) -> Option<(u64, watch::Receiver<u64>)> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        self.opened.fetch_add(1, Ordering::Relaxed);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Some((id, self.drops.subscribe()))
    }

    /// Ends every open stream with `UNAVAILABLE`.
    pub(crate) fn drop_streams(&self) {
        self.drops.send_modify(|g| *g += 1);
    }

    /// Ends every open stream and refuses new ones.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.drop_streams();
    }

    pub(crate) fn opened(&self) -> usize {
        usize::try_from(self.opened.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }
}
