//! π by Monte Carlo with a farm of workers: a producer hands out bags of
//! samples over one any-to-any channel, ten workers estimate π from each
//! bag, a consumer averages their estimates from another; PyCSP's
//! `examples/MCPi.py`.
//!
//! ```sh
//! cargo run --release -p multiproc --example mcpi          # threads
//! cargo run --release -p multiproc --example mcpi -- --os  # OS processes
//! ```
//!
//! Options: `--bags N` (1000), `--size N` (10000 samples a bag),
//! `--workers N` (10), as PyCSP. The farm ends by retirement: the producer
//! retires its end after the last bag, each worker then finds the jobs
//! channel retired and leaves (retiring its end of the results channel),
//! and once the last worker left, the consumer finds the results channel
//! retired and prints the mean:
//!
//! ```text
//! Result: 3.142148
//! ```
//!
//! Unlike PyCSP, which draws from one random generator per process, a bag
//! carries the seed of its samples, so the estimate does not depend on
//! which worker took which bag (only digits beyond the sixth decimal do,
//! by the order of the running mean). PyCSP also prints the running mean
//! after each result.

mod common;

use std::error::Error;

use common::{Args, Place};
use multiproc::csp::{self, Channel, Parallel, Reader, Writer, process};
use serde::{Deserialize, Serialize};

/// A job: `size` samples drawn from `seed`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Bag {
    seed: u64,
    size: u64,
}

/// Hands out `bags` bags of `size` samples, then retires.
#[process]
fn producer(jobs: Writer<Bag>, size: u64, bags: u64) -> csp::Result<()> {
    for seed in 0..bags {
        jobs.write(Bag { seed, size })?;
    }
    jobs.retire();
    Ok(())
}

/// Estimates π from each bag it gets, until the jobs run out.
#[process]
fn worker(jobs: Reader<Bag>, results: Writer<f64>) -> csp::Result<()> {
    common::retired_is_done(estimate_each(&jobs, &results))
}

fn estimate_each(jobs: &Reader<Bag>, results: &Writer<f64>) -> csp::Result<()> {
    loop {
        let bag = jobs.read()?;
        results.write(estimate(bag))?;
    }
}

/// The share of random points of the unit square inside the quarter
/// circle, times four.
fn estimate(bag: Bag) -> f64 {
    let mut random = SplitMix64(bag.seed);
    let inside = (0..bag.size)
        .filter(|_| {
            let (x, y) = (random.unit(), random.unit());
            x * x + y * y < 1.0
        })
        .count();
    4.0 * inside as f64 / bag.size as f64
}

/// Averages the estimates until every worker has left; prints the mean.
#[process]
fn consumer(results: Reader<f64>) -> csp::Result<f64> {
    let mut mean = results.read()?;
    let mut count = 1.0;
    loop {
        match results.read() {
            Ok(estimate) => {
                mean = (mean * count + estimate) / (count + 1.0);
                count += 1.0;
            }
            Err(error) if error.is_retired() => break,
            Err(error) => return Err(error),
        }
    }
    // Six decimals: the last digits of the running mean depend on the
    // order the results came in.
    println!("Result: {mean:.6}");
    Ok(mean)
}

/// A small, fast generator (SplitMix64): workers in OS processes draw the
/// same numbers as threads would.
struct SplitMix64(u64);

impl SplitMix64 {
    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse(&["bags", "size", "workers"]);
    let bags: u64 = args.get("bags", 1000);
    let size: u64 = args.get("size", 10_000);
    let workers: usize = args.get("workers", 10);
    common::require(bags > 0 && size > 0 && workers > 0, "--bags, --size, --workers: at least 1");
    let os = args.os;
    let (jobs, results) = (Channel::new()?, Channel::new()?);
    let producing = producer(jobs.writer(), size, bags).place(os).start()?;
    let consuming = consumer(results.reader()).place(os).start()?;
    // PyCSP's `10 * worker(...)`: every copy registers its own ends.
    let farm = worker(jobs.reader(), results.writer()).place(os) * workers;
    for done in Parallel::new().add_all(farm).run()? {
        done?;
    }
    producing.join()??;
    consuming.join()??;
    Ok(())
}
