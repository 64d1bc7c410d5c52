//! Commstime, the classic CSP benchmark: the time of one channel
//! communication in a ring of four processes; PyCSP's
//! `examples/Commstime.py`.
//!
//! ```sh
//! cargo run --release -p multiproc --example commstime          # threads
//! cargo run --release -p multiproc --example commstime -- --os  # OS processes
//! ```
//!
//! Options: `--cycles N` (5000, as PyCSP), `--runs N` (3). `prefix` sends
//! 0 and then whatever comes back, `delta2` copies each value to
//! `successor` and to the consumer, `successor` adds one and feeds
//! `prefix`: four communications per value the consumer reads. The consumer
//! times `cycles` values, prints the time per communication, and poisons
//! its channel, which shuts the ring down. Each run prints (times vary)
//!
//! ```text
//! ----------- run 1/3 -------------
//! Running commstime test
//! DT = 0.095514.
//! Time per ch : 0.095514/(4*5000) = 0.000005 s = 4.775700 us
//! consumer done, poisoning channel
//! ```
//!
//! and the last line gives the best run, e.g.
//! `threads: best of 3 runs 4.776 us per channel communication`.

mod common;

use std::error::Error;
use std::time::Instant;

use common::{Args, Place};
use multiproc::csp::{self, Channel, Reader, Writer, process};

/// Sends `first`, then passes on what it reads.
#[process]
fn prefix(input: Reader<u64>, output: Writer<u64>, first: u64) -> csp::Result<()> {
    let mut value = first;
    loop {
        output.write(value)?;
        value = input.read()?;
    }
}

/// Copies each value to both outputs, one after the other.
#[process]
fn delta2(input: Reader<u64>, first: Writer<u64>, second: Writer<u64>) -> csp::Result<()> {
    loop {
        let value = input.read()?;
        first.write(value)?;
        second.write(value)?;
    }
}

/// Passes on each value plus one.
#[process]
fn successor(input: Reader<u64>, output: Writer<u64>) -> csp::Result<()> {
    loop {
        output.write(input.read()? + 1)?;
    }
}

/// Times `cycles` values, prints the time per channel communication (four
/// per value), and poisons its channel to end the ring. Returns that time,
/// in seconds.
#[process]
fn consumer(input: Reader<u64>, cycles: u64) -> csp::Result<f64> {
    input.read()?; // the ring is up
    let start = Instant::now();
    for _ in 0..cycles {
        input.read()?;
    }
    let dt = start.elapsed().as_secs_f64();
    let per_channel = dt / (4 * cycles) as f64;
    println!("DT = {dt:.6}.");
    println!(
        "Time per ch : {dt:.6}/(4*{cycles}) = {per_channel:.6} s = {:.6} us",
        per_channel * 1e6
    );
    println!("consumer done, poisoning channel");
    input.poison();
    Ok(per_channel)
}

/// One run of the benchmark (PyCSP's `CommsTimeBM`): the time per channel
/// communication, in seconds.
fn commstime(cycles: u64, os: bool) -> Result<f64, Box<dyn Error>> {
    let [a, b, c, d] = [(); 4].map(|()| Channel::<u64>::new());
    let (a, b, c, d) = (a?, b?, c?, d?);
    println!("Running commstime test");
    let (prefixed, delta, succeeded, timed) = csp::parallel!(
        prefix(c.reader(), a.writer(), 0).place(os),
        delta2(a.reader(), b.writer(), d.writer()).place(os),
        successor(b.reader(), c.writer()).place(os),
        consumer(d.reader(), cycles).place(os),
    )?;
    // The consumer's poison ends the others: that is their normal end.
    for result in [prefixed, delta, succeeded] {
        common::poisoned_is_done(result)?;
    }
    Ok(timed?)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse(&["cycles", "runs"]);
    let cycles: u64 = args.get("cycles", 5000);
    let runs: u32 = args.get("runs", 3);
    common::require(cycles > 0 && runs > 0, "--cycles and --runs must be positive");
    let mut best = f64::INFINITY;
    for run in 1..=runs {
        println!("----------- run {run}/{runs} -------------");
        best = best.min(commstime(cycles, args.os)?);
    }
    println!("{}: best of {runs} runs {:.3} us per channel communication", args.mode(), best * 1e6);
    Ok(())
}
