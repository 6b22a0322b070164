//! The event stream's side of the event bus: takes events off the bus into the bounded queue
//! whatever else the reporter is doing (connecting, waiting out a backoff, sending), so the bus
//! never laps it while it is busy, and counts everything lost on the way.

use std::future::Future;
use std::sync::Arc;

use outrider_upstream::events::HostEvent;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use crate::event_queue::EventQueue;
use crate::stats::{ReportStats, add};

pub(crate) struct Inbox {
    events: broadcast::Receiver<Arc<HostEvent>>,
    /// Every publisher is gone: nothing more will come.
    closed: bool,
    pub(crate) queue: EventQueue,
    stats: Arc<ReportStats>,
}

impl Inbox {
    pub(crate) fn new(
        events: broadcast::Receiver<Arc<HostEvent>>,
        capacity: usize,
        stats: Arc<ReportStats>,
    ) -> Self {
        Self {
            events,
            closed: false,
            queue: EventQueue::new(capacity),
            stats,
        }
    }

    /// Waits for at least one event and queues it with every other one already published.
    /// Cancel-safe: an event is either queued or still on the bus.
    pub(crate) async fn receive(&mut self) {
        if self.closed {
            return std::future::pending().await;
        }
        match self.events.recv().await {
            Ok(event) => self.push(event),
            Err(RecvError::Lagged(lost)) => add(&self.stats.events_dropped, lost),
            Err(RecvError::Closed) => {
                self.closed = true;
                return;
            }
        }
        // Take the rest of a burst now, so it goes out in one message.
        loop {
            match self.events.try_recv() {
                Ok(event) => self.push(event),
                Err(TryRecvError::Lagged(lost)) => add(&self.stats.events_dropped, lost),
                Err(TryRecvError::Closed) => {
                    self.closed = true;
                    break;
                }
                Err(TryRecvError::Empty) => break,
            }
        }
    }

    /// Runs `work` to completion while still taking events off the bus.
    pub(crate) async fn during<T>(&mut self, work: impl Future<Output = T>) -> T {
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                () = self.receive() => {}
            }
        }
    }

    fn push(&mut self, event: Arc<HostEvent>) {
        let dropped = self.queue.push(event);
        add(&self.stats.events_dropped, dropped);
    }
}
