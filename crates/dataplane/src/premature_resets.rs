//! Envoy's defence against HTTP/2 rapid reset (CVE-2023-44487): a connection whose streams
//! the client mostly resets before they are answered is closed. Envoy counts, per connection,
//! the streams that ended and those the client reset within 1 s of opening them, in whole
//! seconds (`overload.premature_reset_min_stream_lifetime_seconds`, 1), and aborts the connection
//! once the premature ones reach half of 500 (`overload.premature_reset_total_stream_count`)
//! or, past 500 streams, half of all; `downstream_rq_too_many_premature_resets` counts it.
//! Here a stream counts as reset before its answer when the request path is dropped before
//! the response head on a connection that is still open.

use std::cell::Cell;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use tokio::sync::Notify;

use crate::http_stats::HttpStats;

/// Envoy's `overload.premature_reset_total_stream_count` default.
const TOTAL_STREAM_COUNT: u64 = 500;
/// Envoy's `overload.premature_reset_min_stream_lifetime_seconds` default. Envoy compares
/// whole seconds (`lifetime > min` is not premature), so a stream reset within 2 s counts.
const MIN_STREAM_LIFETIME_SECONDS: u64 = 1;

/// One HTTP/2 connection's count.
pub(crate) struct PrematureResets {
    ended: Cell<u64>,
    premature: Cell<u64>,
    tripped: Cell<bool>,
    trip: Notify,
    stats: HttpStats,
}

impl PrematureResets {
    pub(crate) fn new(stats: HttpStats) -> Self {
        PrematureResets {
            ended: Cell::new(0),
            premature: Cell::new(0),
            tripped: Cell::new(false),
            trip: Notify::new(),
            stats,
        }
    }

    /// A stream ended: answered, or `reset_at` (its start) when the client reset it first.
    fn stream_ended(&self, reset_at: Option<Instant>) {
        let ended = self.ended.get() + 1;
        self.ended.set(ended);
        if reset_at.is_some_and(|start| start.elapsed().as_secs() <= MIN_STREAM_LIFETIME_SECONDS) {
            self.premature.set(self.premature.get() + 1);
        }
        let premature = self.premature.get();
        let too_many = if ended < TOTAL_STREAM_COUNT {
            premature * 2 >= TOTAL_STREAM_COUNT
        } else {
            premature * 2 >= ended
        };
        if too_many && !self.tripped.replace(true) {
            self.stats
                .local()
                .downstream_rq_too_many_premature_resets
                .fetch_add(1, Relaxed);
            self.trip.notify_one();
        }
    }

    /// Resolves once the connection must be closed.
    pub(crate) async fn too_many(&self) {
        if !self.tripped.get() {
            self.trip.notified().await;
        }
    }
}

/// A stream until its response head: dropped before, it was reset (or its connection closed,
/// which `closed` tells apart).
pub(crate) struct StreamWatch<'a>(Option<Watched<'a>>);

struct Watched<'a> {
    resets: &'a PrematureResets,
    /// Set when the connection ends.
    closed: &'a Cell<bool>,
    started: Instant,
}

impl<'a> StreamWatch<'a> {
    /// Nothing is watched (no clock read) without `resets`: HTTP/1.1.
    pub(crate) fn new(resets: Option<&'a PrematureResets>, closed: &'a Cell<bool>) -> Self {
        StreamWatch(resets.map(|resets| Watched {
            resets,
            closed,
            started: Instant::now(),
        }))
    }

    /// The response head is ready: the stream was not reset before its answer.
    pub(crate) fn answered(mut self) {
        if let Some(watched) = self.0.take() {
            watched.resets.stream_ended(None);
        }
    }
}

impl Drop for StreamWatch<'_> {
    fn drop(&mut self) {
        if let Some(watched) = self.0.take() {
            let reset = (!watched.closed.get()).then_some(watched.started);
            watched.resets.stream_ended(reset);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::time::Duration;

    use super::*;

    fn resets() -> PrematureResets {
        PrematureResets::new(HttpStats::default())
    }

    #[test]
    fn half_of_the_first_500_streams_reset_early_trips() {
        let resets = resets();
        let now = Instant::now();
        for _ in 0..249 {
            resets.stream_ended(Some(now));
        }
        assert!(!resets.tripped.get());
        // Answered streams and late resets are not premature.
        for _ in 0..100 {
            resets.stream_ended(None);
        }
        resets.stream_ended(Some(now - Duration::from_secs(3)));
        assert!(!resets.tripped.get());
        resets.stream_ended(Some(now));
        assert!(resets.tripped.get());
        assert_eq!(
            resets
                .stats
                .total(|c| &c.downstream_rq_too_many_premature_resets),
            1
        );
    }

    #[test]
    fn past_500_streams_half_of_all_trips_and_whole_seconds_count() {
        let resets = resets();
        for _ in 0..600 {
            resets.stream_ended(None);
        }
        // Reset 1.5 s after opening: premature still, in Envoy's whole seconds.
        let early = Instant::now() - Duration::from_millis(1500);
        for _ in 0..599 {
            resets.stream_ended(Some(early));
        }
        assert!(!resets.tripped.get(), "599 of 1199");
        resets.stream_ended(Some(early));
        assert!(resets.tripped.get(), "600 of 1200");
    }

    #[test]
    fn a_stream_dropped_with_its_connection_is_not_a_reset() {
        let resets = resets();
        let closed = Rc::new(Cell::new(true));
        for _ in 0..200 {
            drop(StreamWatch::new(Some(&resets), &closed));
        }
        assert_eq!(resets.premature.get(), 0);
        assert_eq!(resets.ended.get(), 200);
        closed.set(false);
        for _ in 0..250 {
            drop(StreamWatch::new(Some(&resets), &closed));
        }
        assert!(resets.tripped.get());
    }
}
