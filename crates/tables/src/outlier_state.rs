//! `OutlierState`: one host's outcome counters, written by the data plane on every attempt, and
//! its ejection state, written by the outlier detector (and the health checker's un-ejection) on
//! the control thread. Atomics only: the data plane must never wait for the detector.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Requests and successes of one interval, packed in one word (requests in the high half,
/// successes in the low half) so one `fetch_add` records an attempt and one `swap` takes the
/// interval's counts consistently. More than 2^32 attempts to one host in one interval would
/// wrap; no host gets near that.
#[derive(Debug, Default)]
pub struct IntervalCounts(AtomicU64);

const ONE_REQUEST: u64 = 1 << 32;
const LOW_HALF: u64 = (1 << 32) - 1;

impl IntervalCounts {
    pub fn add(&self, success: bool) {
        self.0.fetch_add(ONE_REQUEST | u64::from(success), Relaxed);
    }

    /// `(requests, successes)` since the last `take`, and starts the next interval at zero.
    pub fn take(&self) -> (u64, u64) {
        split(self.0.swap(0, Relaxed))
    }

    /// `(requests, successes)` so far in this interval.
    pub fn peek(&self) -> (u64, u64) {
        split(self.0.load(Relaxed))
    }
}

fn split(word: u64) -> (u64, u64) {
    (word >> 32, word & LOW_HALF)
}

/// A success rate (percent) last computed by the detector, or none (`/clusters` shows `-1`).
#[derive(Debug)]
pub struct SuccessRateCell(AtomicU64);

/// Not a value the detector stores (it stores finite percentages).
const NO_RATE: u64 = u64::MAX;

impl Default for SuccessRateCell {
    fn default() -> Self {
        Self(AtomicU64::new(NO_RATE))
    }
}

impl SuccessRateCell {
    pub fn get(&self) -> Option<f64> {
        match self.0.load(Relaxed) {
            NO_RATE => None,
            bits => Some(f64::from_bits(bits)),
        }
    }

    pub fn set(&self, rate: Option<f64>) {
        let bits = rate.filter(|r| r.is_finite()).map_or(NO_RATE, f64::to_bits);
        self.0.store(bits, Relaxed);
    }
}

/// Outlier-detection state of one host. The data plane's counters are relaxed atomics: the
/// detector reads them once per interval (or when a consecutive threshold is crossed), never in
/// lock step with the data plane. Times are on `clock_ms()`; 0 means "never".
#[derive(Debug, Default)]
pub struct OutlierState {
    pub consecutive_5xx: AtomicU32,
    pub consecutive_gateway_failure: AtomicU32,
    /// Only counted with `split_external_local_origin_errors`.
    pub consecutive_local_origin_failure: AtomicU32,
    /// Attempts of the current interval as the external-origin detectors see them (every
    /// attempt without split mode).
    pub external: IntervalCounts,
    /// Connection-level outcomes of the current interval (split mode only).
    pub local_origin: IntervalCounts,
    /// Consecutive detectors whose threshold the data plane saw crossed, one bit each, until
    /// the detector takes them.
    crossed: AtomicU8,
    /// 0: in service. Otherwise ejected, by the `OutlierEjectionType` numbered `value - 1`.
    ejection: AtomicU8,
    /// How many times this host has been ejected (Envoy's `num_ejections`).
    pub num_ejections: AtomicU32,
    /// Envoy's ejection-time backoff: the base ejection time is multiplied by it.
    pub ejection_multiplier: AtomicU32,
    /// Random extra ejection time drawn at the last ejection.
    pub ejection_jitter_ms: AtomicU64,
    pub last_ejection_ms: AtomicU64,
    pub last_unejection_ms: AtomicU64,
    /// Success rates the detector last computed (external and local origin).
    pub success_rate: SuccessRateCell,
    pub local_origin_success_rate: SuccessRateCell,
}

impl OutlierState {
    /// The clock outlier times are kept on: milliseconds since this process first asked,
    /// starting at 1 so that 0 can mean "never". Monotonic.
    pub fn clock_ms() -> u64 {
        static START: OnceLock<Instant> = OnceLock::new();
        let elapsed = START.get_or_init(Instant::now).elapsed().as_millis();
        u64::try_from(elapsed).unwrap_or(u64::MAX - 1) + 1
    }

    /// Marks consecutive detectors `bits` as crossed; true if one of them was not yet marked
    /// (the caller then wakes the detector).
    pub fn mark_crossed(&self, bits: u8) -> bool {
        self.crossed.fetch_or(bits, Relaxed) & bits != bits
    }

    /// Takes the crossed marks.
    pub fn take_crossed(&self) -> u8 {
        self.crossed.swap(0, Relaxed)
    }

    /// The `OutlierEjectionType` number of the detector that ejected this host, if it is
    /// ejected.
    pub fn ejected_by(&self) -> Option<u8> {
        self.ejection.load(Relaxed).checked_sub(1)
    }

    pub fn is_ejected(&self) -> bool {
        self.ejection.load(Relaxed) != 0
    }

    /// Moves the host to "ejected by `ejection_type`"; false if it already was ejected (the
    /// caller lost a race and must not count the ejection).
    pub fn begin_ejection(&self, ejection_type: u8) -> bool {
        self.ejection
            .compare_exchange(0, ejection_type.saturating_add(1), Relaxed, Relaxed)
            .is_ok()
    }

    /// Puts the host back in service; returns the type of the ejection it ends, or `None` if
    /// it was not ejected.
    pub fn end_ejection(&self) -> Option<u8> {
        self.ejection.swap(0, Relaxed).checked_sub(1)
    }

    /// Clears the consecutive counters (at ejection and un-ejection, as Envoy does).
    pub fn reset_consecutive(&self) {
        self.consecutive_5xx.store(0, Relaxed);
        self.consecutive_gateway_failure.store(0, Relaxed);
        self.consecutive_local_origin_failure.store(0, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_counts_pack_and_take() {
        let c = IntervalCounts::default();
        c.add(true);
        c.add(false);
        c.add(true);
        assert_eq!(c.peek(), (3, 2));
        assert_eq!(c.take(), (3, 2));
        assert_eq!(c.take(), (0, 0));
    }

    #[test]
    fn ejection_transitions_are_claimed_once() {
        let s = OutlierState::default();
        assert_eq!(s.ejected_by(), None);
        assert!(s.begin_ejection(2));
        assert!(!s.begin_ejection(0), "already ejected");
        assert_eq!(s.ejected_by(), Some(2));
        assert_eq!(s.end_ejection(), Some(2));
        assert_eq!(s.end_ejection(), None);
    }

    #[test]
    fn crossed_marks_wake_once() {
        let s = OutlierState::default();
        assert!(s.mark_crossed(1));
        assert!(!s.mark_crossed(1));
        assert!(s.mark_crossed(2));
        assert_eq!(s.take_crossed(), 3);
        assert_eq!(s.take_crossed(), 0);
    }

    #[test]
    fn success_rate_cell() {
        let c = SuccessRateCell::default();
        assert_eq!(c.get(), None);
        c.set(Some(87.5));
        assert_eq!(c.get(), Some(87.5));
        c.set(Some(f64::NAN));
        assert_eq!(c.get(), None);
    }

    #[test]
    fn the_clock_never_reads_zero() {
        assert!(OutlierState::clock_ms() >= 1);
    }
}
