//! A listener's drain, as seen by a connection that outlives its HTTP exchange (a TCP proxy
//! connection, a WebSocket tunnel): closed once `--drain-time-s` has passed since the listener
//! started draining, as Envoy closes them.

use std::time::Duration;

use tokio::sync::watch;

#[derive(Clone)]
pub(crate) struct DrainSignal {
    drained: watch::Receiver<bool>,
    drain_time: Duration,
}

impl DrainSignal {
    pub(crate) fn new(drained: watch::Receiver<bool>, drain_time: Duration) -> Self {
        DrainSignal {
            drained,
            drain_time,
        }
    }

    /// Resolves `drain_time` after the listener starts draining; never if it does not.
    pub(crate) async fn over(mut self) {
        if self.drained.wait_for(|d| *d).await.is_err() {
            // The worker is gone, and the connection with it: nothing to wait for.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(self.drain_time).await;
    }
}
