//! `Tables`: the one `ArcSwap<Snapshot>` the data plane reads per request and the control
//! thread replaces whole, atomically, per batch of changes.

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::{ArcSwap, Guard};
use tokio::sync::watch;

use crate::change::Change;
use crate::snapshot::Snapshot;

/// The data plane's single source of truth.
#[derive(Debug)]
pub struct Tables {
    current: ArcSwap<Snapshot>,
    /// Serialises writers so two concurrent `apply` calls cannot lose each other's changes.
    /// Readers never touch it.
    writer: Mutex<()>,
    /// The generation of every publication, for what must act on a change rather than read per
    /// request (workers binding and draining listeners). Not on the request path.
    published: watch::Sender<u64>,
}

impl Default for Tables {
    fn default() -> Self {
        Self::new()
    }
}

impl Tables {
    /// Empty tables at generation 0.
    pub fn new() -> Self {
        Self {
            current: ArcSwap::from_pointee(Snapshot::default()),
            writer: Mutex::new(()),
            published: watch::channel(0).0,
        }
    }

    /// The current snapshot: cheap, lock-free, for use per request.
    pub fn load(&self) -> Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Applies `changes` in order to a copy of the current snapshot (sharing everything they do
    /// not touch) and publishes it in one store. Returns the new generation.
    pub fn apply(&self, changes: impl IntoIterator<Item = Change>) -> u64 {
        // The guarded data is `()`: a panic in another writer leaves nothing inconsistent.
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = self.current.load().next_generation();
        for change in changes {
            next.apply(change);
        }
        let generation = next.generation();
        self.current.store(Arc::new(next));
        self.published.send_replace(generation);
        generation
    }

    /// The current snapshot as an owned `Arc`, to hold across awaits.
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Wakes on every publication (the value is the new generation).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }
}
