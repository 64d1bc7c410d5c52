//! Benchmark scenarios of multiproc, shared by the criterion benches
//! (`cargo bench -p multiproc-bench`) and the comparison command
//! (`cargo run --release -p multiproc-bench --bin compare`).
//!
//! Each [`Scenario`] names the matching scenario of `python/bench.py`, which
//! runs the same work with Python's `multiprocessing`.

use std::time::{Duration, Instant};

use multiproc::{Process, StartMethod};

/// One measured operation, run here and in Python.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// The row's name; also the key in the Python script's output.
    pub name: &'static str,
    /// How many timed samples the comparison takes (after warm-up).
    pub samples: usize,
    /// Runs the operation once and returns how long it took.
    pub run: fn() -> Duration,
}

/// The target of the process scenarios: does nothing.
pub fn trivial(_: ()) {}

/// Starts a child running [`trivial`] with `method` and joins it.
///
/// # Panics
///
/// If the child cannot be started or joined: a benchmark has no use for a
/// failure.
pub fn spawn_join(method: StartMethod) {
    let child = Process::builder().start_method(method).spawn(trivial, ()).expect("spawn");
    child.join().expect("join");
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// Every scenario, in the order of the comparison table.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "process: start + join, spawn",
        samples: 200,
        run: || timed(|| spawn_join(StartMethod::Spawn)),
    },
    Scenario {
        name: "process: start + join, forkserver",
        samples: 300,
        run: || timed(|| spawn_join(StartMethod::ForkServer)),
    },
    Scenario {
        name: "process: start + join, fork",
        samples: 300,
        run: || timed(|| spawn_join(StartMethod::Fork)),
    },
];

/// The median of `samples` (which it sorts).
///
/// # Panics
///
/// If `samples` is empty.
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    let mid = samples.len() / 2;
    if samples.len() % 2 == 1 { samples[mid] } else { (samples[mid - 1] + samples[mid]) / 2 }
}
