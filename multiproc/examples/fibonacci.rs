//! Fibonacci numbers from a network of small processes (PyCSP's
//! plug-and-play `Prefix`, `Pairs` and `Delta2`); PyCSP's
//! `examples/Fibonacci.py`.
//!
//! ```sh
//! cargo run --release -p multiproc --example fibonacci          # threads
//! cargo run --release -p multiproc --example fibonacci -- --os  # OS processes
//! ```
//!
//! Option: `--count N` (20). The stream on channel `a` is 0, then 1, then
//! the sums of its neighbouring pairs: `prefix(0)` puts 0 before `b`,
//! `prefix(1)` puts 1 before `c`, `pairs` adds each value of `a` to the
//! next one, and `delta2` copies `a` to `pairs` and to the printer.
//! `pairs` is itself a network of three processes (`delta2`, `plus`,
//! `tail`). The printer prints 20 numbers and poisons its channel, which
//! shuts the network down. It prints
//!
//! ```text
//! 0
//! 1
//! 1
//! 2
//! 3
//! 5
//! ...
//! 2584
//! 4181
//! ```

mod common;

use std::error::Error;

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

/// Copies each value to both outputs: first to whichever reader is ready
/// first (an alternation of two output guards), then to the other.
#[process]
fn delta2(input: Reader<u64>, first: Writer<u64>, second: Writer<u64>) -> csp::Result<()> {
    loop {
        let value = input.read()?;
        csp::select! {
            write(first, value) => second.write(value),
            write(second, value) => first.write(value),
        }??;
    }
}

/// Passes on the sum of a value from each input.
#[process]
fn plus(left: Reader<u64>, right: Reader<u64>, output: Writer<u64>) -> csp::Result<()> {
    loop {
        output.write(left.read()? + right.read()?)?;
    }
}

/// Drops the first value and passes on the rest.
#[process]
fn tail(input: Reader<u64>, output: Writer<u64>) -> csp::Result<()> {
    input.read()?;
    loop {
        output.write(input.read()?)?;
    }
}

/// Passes on the sum of each value and the next: a network of its own,
/// in OS processes too when `os` is set.
#[process]
fn pairs(input: Reader<u64>, output: Writer<u64>, os: bool) -> csp::Result<()> {
    let (to_plus, to_tail, shifted) = (Channel::new()?, Channel::new()?, Channel::new()?);
    let (copied, added, tailed) = csp::parallel!(
        delta2(input, to_plus.writer(), to_tail.writer()).place(os),
        plus(to_plus.reader(), shifted.reader(), output).place(os),
        tail(to_tail.reader(), shifted.writer()).place(os),
    )?;
    // Poisoned inside: poisoned here too (then `#[process]` poisons this
    // process's ends).
    copied.and(added).and(tailed)
}

/// Prints `count` numbers, then poisons its channel to end the network.
#[process]
fn printer(input: Reader<u64>, count: usize) -> csp::Result<()> {
    for _ in 0..count {
        println!("{}", input.read()?);
    }
    input.poison();
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse(&["count"]);
    let count: usize = args.get("count", 20);
    // The network runs a few numbers ahead of the printer: stay well
    // below the first that overflows a u64 (the 94th).
    common::require(count <= 80, "--count: at most 80 numbers");
    let os = args.os;
    let [a, b, c, d, print] = [(); 5].map(|()| Channel::<u64>::new());
    let (a, b, c, d, print) = (a?, b?, c?, d?, print?);
    let (zero, one, added, copied, printed) = csp::parallel!(
        prefix(b.reader(), a.writer(), 0).place(os),
        prefix(c.reader(), b.writer(), 1).place(os),
        pairs(d.reader(), c.writer(), os).place(os),
        delta2(a.reader(), d.writer(), print.writer()).place(os),
        printer(print.reader(), count).place(os),
    )?;
    // The printer's poison ends the others: that is their normal end.
    for result in [zero, one, added, copied] {
        common::poisoned_is_done(result)?;
    }
    printed?;
    Ok(())
}
