//! Follows the tables' listeners: binds sockets for new and changed listeners (one per worker,
//! SO_REUSEPORT), hands them to the workers, and tells the workers to drain the connections of
//! changed and removed ones. Runs on the control thread; nothing here is on the request path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use outrider_model::Listener;
use outrider_tables::Tables;

use crate::socket::{DEFAULT_BACKLOG, bind_for_workers};
use crate::worker_handle::{WorkerCommand, WorkerHandle};

/// A listener being served, as the workers know it.
#[derive(Debug, Clone)]
pub struct ActiveListener {
    /// Distinguishes the generations of one listener while the old one drains.
    pub id: u64,
    pub config: Arc<Listener>,
    /// The bound address (the configured one, with port 0 resolved).
    pub address: SocketAddr,
}

#[derive(Debug, Default)]
pub(crate) struct ListenerManager {
    active: Mutex<BTreeMap<String, ActiveListener>>,
    next_id: std::sync::atomic::AtomicU64,
    /// Set by admin `/drain_listeners`: the listeners that stay drained (not bound again, not
    /// even by a later LDS update), as in Envoy, where draining precedes shutdown.
    stopped: Mutex<Option<Stopped>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopped {
    All,
    InboundOnly,
}

impl Stopped {
    fn covers(self, listener: &Listener) -> bool {
        self == Stopped::All || listener.inbound
    }
}

impl ListenerManager {
    /// Makes the workers serve exactly the listeners of the current snapshot.
    pub(crate) fn reconcile(&self, tables: &Tables, workers: &[WorkerHandle]) {
        let snapshot = tables.load_full();
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        // Removed, or changed (a new `Arc` means a new version): drain the old generation.
        let stale: Vec<String> = active
            .iter()
            .filter(|(name, running)| {
                snapshot
                    .listener(name)
                    .is_none_or(|current| !Arc::ptr_eq(current, &running.config))
            })
            .map(|(name, _)| name.clone())
            .collect();
        let mut draining = Vec::new();
        for name in stale {
            if let Some(old) = active.remove(&name) {
                draining.push(old);
            }
        }
        // New and changed: bind first, so the new generation accepts before the old one stops
        // (make-before-break; SO_REUSEPORT lets both hold the port for that moment).
        let stopped = *self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, config) in snapshot.listeners() {
            if active.contains_key(name) || stopped.is_some_and(|s| s.covers(config)) {
                continue;
            }
            let backlog = config.tcp_backlog_size.unwrap_or(DEFAULT_BACKLOG);
            match bind_for_workers(
                config.address,
                backlog,
                workers.len(),
                config.tcp_keepalive.as_ref(),
            ) {
                Ok((address, sockets)) => {
                    let id = self
                        .next_id
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    for (worker, socket) in workers.iter().zip(sockets) {
                        worker.send(WorkerCommand::Serve {
                            id,
                            listener: config.clone(),
                            socket,
                        });
                    }
                    tracing::info!(listener = %name, %address, "listening");
                    for skipped in config.skipped_filters() {
                        tracing::warn!(
                            listener = %name,
                            filter = %skipped.name,
                            r#type = %skipped.type_name,
                            why = skipped.why,
                            "HTTP filter left out: it changes nothing a client or upstream sees"
                        );
                    }
                    active.insert(
                        name.to_string(),
                        ActiveListener {
                            id,
                            config: config.clone(),
                            address,
                        },
                    );
                }
                Err(e) => {
                    tracing::error!(listener = %name, address = %config.address, error = %e, "cannot bind listener");
                }
            }
        }
        for old in draining {
            tracing::info!(listener = %old.config.name, address = %old.address, "draining");
            for worker in workers {
                worker.send(WorkerCommand::Drain { id: old.id });
            }
        }
    }

    /// Admin `/drain_listeners`: the listeners (every one, or the inbound ones) stop accepting
    /// and their connections drain (HTTP/1.1 `Connection: close`, HTTP/2 GOAWAY, within
    /// `--drain-time-s`); they are not bound again. Returns how many were drained.
    pub(crate) fn drain_listeners(&self, inbound_only: bool, workers: &[WorkerHandle]) -> usize {
        let scope = if inbound_only {
            Stopped::InboundOnly
        } else {
            Stopped::All
        };
        {
            let mut stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
            if *stopped != Some(Stopped::All) {
                *stopped = Some(scope);
            }
        }
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        let names: Vec<String> = active
            .iter()
            .filter(|(_, running)| scope.covers(&running.config))
            .map(|(name, _)| name.clone())
            .collect();
        for name in &names {
            if let Some(old) = active.remove(name) {
                tracing::info!(listener = %name, address = %old.address, "draining (admin /drain_listeners)");
                for worker in workers {
                    worker.send(WorkerCommand::Drain { id: old.id });
                }
            }
        }
        names.len()
    }

    pub(crate) fn active(&self) -> Vec<ActiveListener> {
        let active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        active.values().cloned().collect()
    }
}
