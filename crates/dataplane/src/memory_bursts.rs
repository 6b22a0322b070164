//! What the workers hold in bursts, counted so that the memory a burst took goes back to the
//! kernel once it is gone: request bodies kept for retries, and open downstream connections
//! (each with its codec's buffers). glibc keeps what a program frees in its arenas (and,
//! once a large block has been freed, serves the next large ones from there too), so after
//! 200 slow clients each held a 1 MiB body, or thousands of idle connections came and went,
//! the proxy stayed at that size. The control thread asks [`heap_trim_due`] every few seconds
//! and trims (`outrider-heap`) after a burst has drained, and on the next few asks too: what
//! the burst's owners free after the count went down (a connection's task and buffers outlive
//! its place by a moment), and the tail that was still draining at the first trim.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// How many asks after a drained burst trim again.
const FOLLOW_UPS: u32 = 3;

/// A quantity held in bursts: how much now, and the most at once since the last trim.
pub(crate) struct BurstGauge {
    now: AtomicU64,
    peak: AtomicU64,
    /// A burst worth giving back: at least this much at once.
    burst: u64,
    /// Asks left that trim again after the last drained burst.
    follow_ups: AtomicU32,
}

/// Bytes of request bodies kept for retries (8 MiB at once is a burst).
pub(crate) static KEPT_BODY_BYTES: BurstGauge = BurstGauge::new(8 * 1024 * 1024);

/// Open downstream connections (a thousand at once is a burst).
pub(crate) static OPEN_CONNECTIONS: BurstGauge = BurstGauge::new(1000);

impl BurstGauge {
    pub(crate) const fn new(burst: u64) -> Self {
        BurstGauge {
            now: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            burst,
            follow_ups: AtomicU32::new(0),
        }
    }

    pub(crate) fn add(&self, n: u64) {
        let now = self.now.fetch_add(n, Ordering::Relaxed) + n;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    pub(crate) fn sub(&self, n: u64) {
        self.now.fetch_sub(n, Ordering::Relaxed);
    }

    /// How much is held now.
    pub(crate) fn now(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }

    /// Whether a burst has drained to a quarter of its peak since the last call that said so,
    /// or that call was one of the last [`FOLLOW_UPS`].
    fn drained(&self) -> bool {
        let peak = self.peak.load(Ordering::Relaxed);
        let now = self.now.load(Ordering::Relaxed);
        if peak < self.burst || now > peak / 4 {
            // Only the control thread asks: no other writer between the load and the store.
            let follow_ups = self.follow_ups.load(Ordering::Relaxed);
            if follow_ups == 0 {
                return false;
            }
            self.follow_ups.store(follow_ups - 1, Ordering::Relaxed);
            return true;
        }
        // The next burst is measured from what is held now.
        self.peak.store(now, Ordering::Relaxed);
        self.follow_ups.store(FOLLOW_UPS, Ordering::Relaxed);
        true
    }
}

/// Whether a burst of kept bodies or of connections has drained: then the heap's free pages
/// should go back.
pub fn heap_trim_due() -> bool {
    // Both asked, so each starts its next burst from now.
    let bodies = KEPT_BODY_BYTES.drained();
    let connections = OPEN_CONNECTIONS.drained();
    bodies || connections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_burst_is_due_once() {
        let gauge = BurstGauge::new(100);
        assert!(!gauge.drained(), "nothing held yet");
        gauge.add(10);
        gauge.sub(10);
        assert!(!gauge.drained(), "no burst");
        gauge.add(120);
        assert!(!gauge.drained(), "still held");
        gauge.sub(80);
        assert!(!gauge.drained(), "not down to a quarter");
        gauge.sub(20);
        assert!(gauge.drained());
        for follow_up in 1..=FOLLOW_UPS {
            assert!(gauge.drained(), "follow-up {follow_up}");
        }
        assert!(!gauge.drained(), "once per burst and its follow-ups");
    }
}
