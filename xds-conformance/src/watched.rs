//! `Watched<T>`: a value behind a lock that tests can wait on without polling. Every change
//! bumps a `tokio::sync::watch` generation; a waiter re-checks its condition on each bump until
//! its deadline. The ADS recorder and the reporting services' logs share it.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

pub(crate) struct Watched<T> {
    value: Mutex<T>,
    generation: watch::Sender<u64>,
}

impl<T> Watched<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            value: Mutex::new(value),
            generation: watch::Sender::new(0),
        }
    }

    /// The value, to read or change; after a change, call [`Watched::bump`].
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        // Each change is a few statements that leave the value consistent, so a lock poisoned
        // by a panicking holder is still usable.
        self.value
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes the waiters: the value changed.
    pub(crate) fn bump(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// The first `Some` that `check` returns on the value (now or after a change), or `None`
    /// once `timeout` has passed.
    pub(crate) async fn wait<R>(
        &self,
        timeout: Duration,
        check: impl Fn(&T) -> Option<R>,
    ) -> Option<R> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut generation = self.generation.subscribe();
        loop {
            // Marked seen before checking, so a change between the check and the wait still
            // wakes us.
            generation.borrow_and_update();
            if let Some(found) = check(&self.lock()) {
                return Some(found);
            }
            match tokio::time::timeout_at(deadline, generation.changed()).await {
                Ok(Ok(())) => {}
                // The sender lives as long as `self`; on timeout, one last look.
                Ok(Err(_)) | Err(_) => return check(&self.lock()),
            }
        }
    }
}
