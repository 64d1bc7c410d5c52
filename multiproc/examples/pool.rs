//! A pool of worker processes that survives its workers: Python's
//! `Pool.map`, `imap_unordered`, `apply_async`, and a worker killed in the
//! middle of a task.
//!
//! ```sh
//! cargo run --release -p multiproc --example pool
//! ```
//!
//! Prints:
//!
//! ```text
//! sum of squares below 100000: 333328333350000
//! imap_unordered: 10 results
//! apply_async: 49
//! killed worker: the worker process N died while running the task: killed by signal 9 (SIGKILL)
//! after the kill: [0, 1, 4, 9, 16]
//! futures: 1 + 4 + 9 = 14
//! ```

use multiproc::{Error, Pool, ProcessPoolExecutor, as_completed};

fn square(x: u64) -> u64 {
    x * x
}

fn die(_: ()) -> u64 {
    // SAFETY: killing ourselves has no memory effects.
    unsafe { libc::raise(libc::SIGKILL) };
    0
}

fn main() -> Result<(), Error> {
    let pool = Pool::new(4)?;
    let v: Vec<u64> = pool.map(square, 0..100_000)?;
    println!("sum of squares below 100000: {}", v.iter().sum::<u64>());
    let n = pool.imap_unordered(square, 0..10).filter(Result::is_ok).count();
    println!("imap_unordered: {n} results");
    let a = pool.apply_async(square, 7)?;
    println!("apply_async: {}", a.get()?);
    // Python's Pool hangs here for ever (cpython issue 96062).
    match pool.apply(die, ()) {
        Err(e @ Error::WorkerDied { .. }) => println!("killed worker: {e}"),
        other => println!("unexpected: {other:?}"),
    }
    println!("after the kill: {:?}", pool.map(square, 0..5)?);
    pool.close();
    pool.join()?;

    let executor = ProcessPoolExecutor::new(2)?;
    let futures = (1..=3).map(|i| executor.submit(square, i)).collect::<Result<Vec<_>, _>>()?;
    let mut total = 0;
    for done in as_completed(futures, None) {
        total += done?.result()?;
    }
    println!("futures: 1 + 4 + 9 = {total}");
    executor.shutdown(true, false)
}
