//! `FastRng`: the balancers' per-worker random source (SplitMix64 in a `Cell`): a few cycles per
//! number, no locks, no thread-local lookups, and seedable so tests are deterministic.

use std::cell::Cell;

#[derive(Debug)]
pub(crate) struct FastRng {
    state: Cell<u64>,
}

impl FastRng {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            state: Cell::new(seed),
        }
    }

    /// Seeded from the OS, so each worker's balancer starts elsewhere.
    pub(crate) fn from_entropy() -> Self {
        Self::new(rand::random())
    }

    pub(crate) fn next_u64(&self) -> u64 {
        // SplitMix64 (Steele, Lea, Flood): a Weyl sequence through a bijective mixer; passes
        // BigCrush, which is far more than load balancing needs.
        let s = self.state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0), by multiply-shift: no division, bias below 2^-32 for any
    /// `n` we use.
    pub(crate) fn below(&self, n: usize) -> usize {
        below(self.next_u64(), n)
    }
}

/// Maps a uniform `u64` to `0..n` (`n` > 0) by multiply-shift.
pub(crate) fn below(r: u64, n: usize) -> usize {
    ((u128::from(r) * n as u128) >> 64) as usize
}

/// Maps a uniform `u64` to `0..n` for `u64` ranges (weights).
pub(crate) fn below_u64(r: u64, n: u64) -> u64 {
    ((u128::from(r) * u128::from(n)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_sequences_repeat_and_stay_in_range() {
        let (a, b) = (FastRng::new(7), FastRng::new(7));
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            assert!(a.below(10) < 10);
            b.below(10);
        }
        assert_eq!(below(u64::MAX, 3), 2);
        assert_eq!(below(0, 3), 0);
    }
}
