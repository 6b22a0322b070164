//! How the control thread reaches a worker: its command channel and its thread.

use std::sync::Arc;
use std::thread::JoinHandle;

use outrider_model::Listener;
use tokio::sync::mpsc;

/// What the control thread tells a worker.
pub(crate) enum WorkerCommand {
    /// Accept on this socket with this listener's configuration.
    Serve {
        id: u64,
        listener: Arc<Listener>,
        socket: std::net::TcpListener,
    },
    /// Stop accepting for listener generation `id` and drain its connections.
    Drain { id: u64 },
}

pub(crate) struct WorkerHandle {
    pub commands: mpsc::UnboundedSender<WorkerCommand>,
    /// Taken when the worker is joined.
    pub thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    pub(crate) fn send(&self, command: WorkerCommand) {
        // A worker that is gone has nothing left to serve; its thread's end is reported on join.
        let _ = self.commands.send(command);
    }
}
