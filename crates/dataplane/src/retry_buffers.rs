//! The request bodies the workers keep for retries, counted so that the memory a burst of
//! them took goes back to the kernel once they are gone. glibc keeps what a program frees in
//! its arenas (and, once a large block has been freed, serves the next large ones from there
//! too), so after 200 slow clients each held a 1 MiB body the proxy stayed at that size. The
//! control thread asks [`heap_trim_due`] every few seconds and trims (`outrider-heap`) after a
//! burst has drained.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

/// Bytes kept now, and the most kept at once since the last trim.
static KEPT: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

/// A burst worth giving back: at least this much kept at once.
const BURST: u64 = 8 * 1024 * 1024;

/// A body kept for retries, counted while it lives.
pub(crate) struct KeptBody(Bytes);

impl KeptBody {
    pub(crate) fn new(bytes: Bytes) -> Self {
        let len = bytes.len() as u64;
        let now = KEPT.fetch_add(len, Ordering::Relaxed) + len;
        PEAK.fetch_max(now, Ordering::Relaxed);
        KeptBody(bytes)
    }

    pub(crate) fn bytes(&self) -> &Bytes {
        &self.0
    }
}

impl Drop for KeptBody {
    fn drop(&mut self) {
        KEPT.fetch_sub(self.0.len() as u64, Ordering::Relaxed);
    }
}

/// Whether a burst of kept bodies (at least 8 MiB at once) has drained to a quarter of its
/// peak since the last call that said so: then the heap's free pages should go back.
pub fn heap_trim_due() -> bool {
    let peak = PEAK.load(Ordering::Relaxed);
    let now = KEPT.load(Ordering::Relaxed);
    if peak < BURST || now > peak / 4 {
        return false;
    }
    // The next burst is measured from what is kept now.
    PEAK.store(now, Ordering::Relaxed);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_burst_makes_a_trim_due_once() {
        assert!(!heap_trim_due(), "nothing kept yet");
        let small = KeptBody::new(Bytes::from(vec![0u8; 1024]));
        drop(small);
        assert!(!heap_trim_due(), "no burst");
        let burst: Vec<KeptBody> = (0..9)
            .map(|_| KeptBody::new(Bytes::from(vec![0u8; 1024 * 1024])))
            .collect();
        assert!(!heap_trim_due(), "still kept");
        drop(burst);
        assert!(heap_trim_due());
        assert!(!heap_trim_due(), "once per burst");
    }
}
