//! Per-worker shards of counters: each worker thread increments its own copy (its own cache
//! line, so workers never contend), and a reader (a stats scrape) sums the copies. Nothing
//! blocks on either side.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Shards per sharded value: one per worker plus one for every other thread (the control
/// thread). Set once at start-up, before any table is built; later changes only affect values
/// created afterwards (a shard index beyond a value's length folds back into range).
static SHARD_COUNT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard: 0 for threads that are not workers.
    static CURRENT_SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Sets how many workers will increment sharded counters (call before building tables).
pub fn set_worker_count(workers: usize) {
    SHARD_COUNT.store(workers.saturating_add(1), Ordering::Relaxed);
}

/// Marks the calling thread as worker `index` (0-based): its increments go to shard `index + 1`.
pub fn set_current_worker(index: usize) {
    CURRENT_SHARD.with(|shard| shard.set(index.saturating_add(1)));
}

fn shard_count() -> usize {
    match SHARD_COUNT.load(Ordering::Relaxed) {
        // Not configured (tests, tools): one shard per available core, plus one.
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()) + 1,
        n => n,
    }
}

/// Aligned to two cache lines: adjacent-line prefetching would otherwise pair neighbours.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// One `T` per shard.
#[derive(Debug)]
pub struct Sharded<T> {
    shards: Box<[Padded<T>]>,
}

impl<T: Default> Default for Sharded<T> {
    fn default() -> Self {
        Self {
            shards: (0..shard_count()).map(|_| Padded(T::default())).collect(),
        }
    }
}

impl<T> Sharded<T> {
    /// The calling thread's shard.
    pub fn local(&self) -> &T {
        let index = CURRENT_SHARD.with(Cell::get) % self.shards.len().max(1);
        &self.shards[index].0
    }

    /// Sums one counter over every shard.
    pub fn total(&self, counter: impl Fn(&T) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|shard| counter(&shard.0).load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct Counters {
        hits: AtomicU64,
    }

    #[test]
    fn increments_from_different_workers_land_in_different_shards_and_sum() {
        let sharded = std::sync::Arc::new(Sharded::<Counters>::default());
        let threads: Vec<_> = (0..3)
            .map(|worker| {
                let sharded = sharded.clone();
                std::thread::spawn(move || {
                    set_current_worker(worker);
                    for _ in 0..1000 {
                        sharded.local().hits.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("worker thread");
        }
        sharded.local().hits.fetch_add(1, Ordering::Relaxed);
        assert_eq!(sharded.total(|c| &c.hits), 3001);
    }
}
