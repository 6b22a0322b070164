//! Host-key hashing for RING_HASH and MAGLEV: xxHash64 (Envoy's default) and MurmurHash64A
//! (Envoy's `MURMUR_HASH_2`, the libstdc++ `std::hash` function with Envoy's seed), and the
//! host key itself: the address as Envoy prints it (`ip:port`, `[v6]:port`).

use std::fmt::Write as _;

use crate::EndpointState;
use outrider_model::RingHashFunction;

/// The seed Envoy passes to MurmurHash2 (its `STD_HASH_SEED`).
const MURMUR_SEED: u64 = 0xc70f_6907;

pub(crate) fn xxhash64(key: &[u8], seed: u64) -> u64 {
    xxhash_rust::xxh64::xxh64(key, seed)
}

/// MurmurHash64A: 8-byte little-endian blocks mixed into the state, then the tail, then a final
/// avalanche.
pub(crate) fn murmur_hash2(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    let shift_mix = |v: u64| v ^ (v >> 47);
    let mut hash = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut blocks = key.chunks_exact(8);
    for block in &mut blocks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(block);
        let data = shift_mix(u64::from_le_bytes(bytes).wrapping_mul(M)).wrapping_mul(M);
        hash ^= data;
        hash = hash.wrapping_mul(M);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut bytes = [0u8; 8];
        bytes.iter_mut().zip(tail).for_each(|(b, t)| *b = *t);
        hash ^= u64::from_le_bytes(bytes);
        hash = hash.wrapping_mul(M);
    }
    shift_mix(shift_mix(hash).wrapping_mul(M))
}

/// Hashes ring keys with the configured function.
pub(crate) fn ring_hash(function: RingHashFunction, key: &[u8]) -> u64 {
    match function {
        RingHashFunction::XxHash => xxhash64(key, 0),
        RingHashFunction::MurmurHash2 => murmur_hash2(key, MURMUR_SEED),
    }
}

/// Writes a host's key (its address) into `buf`, replacing what was there.
pub(crate) fn host_key(host: &EndpointState, buf: &mut String) {
    buf.clear();
    // Writing to a String cannot fail.
    let _ = write!(buf, "{}", host.address);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxhash64_reference_values() {
        // From the xxHash specification's test vectors.
        assert_eq!(xxhash64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxhash64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
    }

    #[test]
    fn murmur_is_deterministic_and_covers_tails() {
        assert_eq!(murmur_hash2(b"", 0), 0);
        let all: Vec<u64> = (0..=17)
            .map(|n| murmur_hash2(&b"10.0.0.1:8080_123"[..n], MURMUR_SEED))
            .collect();
        let mut unique = all.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), all.len(), "every prefix hashes differently");
        assert_eq!(
            all,
            (0..=17)
                .map(|n| murmur_hash2(&b"10.0.0.1:8080_123"[..n], MURMUR_SEED))
                .collect::<Vec<_>>()
        );
    }
}
