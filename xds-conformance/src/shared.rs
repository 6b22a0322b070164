//! State shared by the server handle and its stream tasks: the current snapshot and behaviour,
//! the open streams' command channels, the nonce counter and the log.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryResponse, DiscoveryResponse};
use tokio::sync::{mpsc, watch};

use crate::behavior::{Behavior, ServerOptions};
use crate::recorder::{Protocol, Recorder};
use crate::snapshot::Snapshot;

/// A one-shot order to an open stream.
#[derive(Debug)]
pub(crate) enum StreamCommand {
    /// End the stream with this status.
    Drop(tonic::Status),
    /// Send this SotW response as is (ignored by delta streams).
    Raw(DiscoveryResponse),
    /// Send this delta response as is (ignored by SotW streams).
    RawDelta(DeltaDiscoveryResponse),
}

struct OpenStream {
    protocol: Protocol,
    commands: mpsc::UnboundedSender<StreamCommand>,
}

pub(crate) struct Shared {
    pub(crate) snapshot: watch::Sender<Arc<Snapshot>>,
    pub(crate) behavior: watch::Sender<Behavior>,
    pub(crate) options: ServerOptions,
    pub(crate) recorder: Recorder,
    open: Mutex<HashMap<u64, OpenStream>>,
    next_stream: AtomicU64,
    next_nonce: AtomicU64,
}

impl Shared {
    pub(crate) fn new(options: ServerOptions) -> Self {
        Shared {
            snapshot: watch::Sender::new(Arc::new(Snapshot::empty())),
            behavior: watch::Sender::new(Behavior::default()),
            options,
            recorder: Recorder::default(),
            open: Mutex::new(HashMap::new()),
            next_stream: AtomicU64::new(1),
            next_nonce: AtomicU64::new(1),
        }
    }

    fn open_streams(&self) -> MutexGuard<'_, HashMap<u64, OpenStream>> {
        // Each access is a single insert/remove/iteration: a poisoned map is still consistent.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A nonce no other response of this server has used.
    pub(crate) fn next_nonce(&self) -> String {
        self.next_nonce.fetch_add(1, Ordering::Relaxed).to_string()
    }

    /// Registers a new stream; returns its id and the receiver of its commands.
    pub(crate) fn open_stream(
        &self,
        protocol: Protocol,
        peer: Option<SocketAddr>,
    ) -> (u64, mpsc::UnboundedReceiver<StreamCommand>) {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let (commands, receiver) = mpsc::unbounded_channel();
        self.open_streams()
            .insert(id, OpenStream { protocol, commands });
        self.recorder.stream_opened(id, protocol, peer);
        tracing::info!(stream = id, ?protocol, ?peer, "stream opened");
        (id, receiver)
    }

    pub(crate) fn close_stream(&self, id: u64, reason: String) {
        self.open_streams().remove(&id);
        tracing::info!(stream = id, %reason, "stream closed");
        self.recorder.stream_closed(id, reason);
    }

    /// Sends a command to every open stream of `protocol` (or all); returns how many got it.
    pub(crate) fn broadcast(
        &self,
        protocol: Option<Protocol>,
        make: impl Fn() -> StreamCommand,
    ) -> usize {
        let open = self.open_streams();
        open.values()
            .filter(|s| protocol.is_none_or(|p| p == s.protocol))
            .filter(|s| s.commands.send(make()).is_ok())
            .count()
    }

    /// Ids of the streams that are open now.
    pub(crate) fn open_stream_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.open_streams().keys().copied().collect();
        ids.sort_unstable();
        ids
    }
}

/// What a stream's state machine reads to decide on a response.
pub(crate) struct Env<'a> {
    pub(crate) snapshot: &'a Snapshot,
    pub(crate) behavior: &'a Behavior,
    pub(crate) shared: &'a Shared,
}

impl Env<'_> {
    pub(crate) fn nonce(&self) -> String {
        self.shared.next_nonce()
    }

    pub(crate) fn options(&self) -> &ServerOptions {
        &self.shared.options
    }
}

/// Runs `f` against the current snapshot and behaviour (cloned `Arc`/value, so a change made
/// meanwhile cannot tear what one response sees).
pub(crate) fn with_env<T>(shared: &Shared, f: impl FnOnce(&Env<'_>) -> T) -> T {
    let snapshot = shared.snapshot.borrow().clone();
    let behavior = shared.behavior.borrow().clone();
    let env = Env {
        snapshot: &snapshot,
        behavior: &behavior,
        shared,
    };
    f(&env)
}
