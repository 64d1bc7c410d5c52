//! Pool scenarios: `map` with default chunks, chunks of one, `apply_async`
//! round trips, pool start; and rayon's `par_iter` as the in-process
//! reference for the same trivial work.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use multiproc::{Pool, StartMethod};
use rayon::prelude::*;

/// Items of the `map` rows.
const MAP_ITEMS: u64 = 100_000;
/// Tasks of the per-task rows.
const PER_TASK: u64 = 20_000;
/// Round trips of the `apply_async` row.
const APPLIES: u32 = 2_000;

/// The trivial task of every pool row.
pub fn sq(x: u64) -> u64 {
    x * x
}

/// The 2-worker pool the rows share (started once, as Python's side does).
fn shared_pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool::new(2).expect("pool"))
}

/// `map` of 100,000 trivial tasks with the default chunks: time per map.
pub fn map_default_chunks() -> Duration {
    let pool = shared_pool();
    let start = Instant::now();
    let v = pool.map(sq, 0..MAP_ITEMS).expect("map");
    let elapsed = start.elapsed();
    assert_eq!(v[99_999], 99_999 * 99_999);
    elapsed
}

/// `map` with chunks of one task: time per task.
pub fn map_chunksize_one() -> Duration {
    let pool = shared_pool();
    let start = Instant::now();
    let v = pool.map_chunked(sq, 0..PER_TASK, 1).expect("map");
    let elapsed = start.elapsed();
    assert_eq!(v.len() as u64, PER_TASK);
    elapsed / PER_TASK as u32
}

/// `imap` (chunks of one), consumed as it comes: time per task.
pub fn imap_per_task() -> Duration {
    let pool = shared_pool();
    let start = Instant::now();
    let mut n = 0u64;
    for r in pool.imap(sq, 0..PER_TASK) {
        r.expect("imap");
        n += 1;
    }
    let elapsed = start.elapsed();
    assert_eq!(n, PER_TASK);
    elapsed / PER_TASK as u32
}

/// `apply_async` then `get`, one task at a time: one round trip.
pub fn apply_async_get() -> Duration {
    let pool = shared_pool();
    let start = Instant::now();
    for i in 0..u64::from(APPLIES) {
        assert_eq!(pool.apply_async(sq, i).expect("apply").get().expect("get"), i * i);
    }
    start.elapsed() / APPLIES
}

/// A pool of 2 spawned workers started, closed and joined.
pub fn start_two_spawn() -> Duration {
    let start = Instant::now();
    let pool = Pool::builder().processes(2).start_method(StartMethod::Spawn).build().expect("pool");
    pool.close();
    pool.join().expect("join");
    start.elapsed()
}

/// rayon's `par_iter().map().collect()` of the same 100,000 trivial tasks.
pub fn rayon_map() -> Duration {
    let items: Vec<u64> = (0..MAP_ITEMS).collect();
    let start = Instant::now();
    let v: Vec<u64> = items.par_iter().map(|&x| sq(x)).collect();
    let elapsed = start.elapsed();
    assert_eq!(v[99_999], 99_999 * 99_999);
    elapsed
}
