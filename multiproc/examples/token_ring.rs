//! Token ring: a token travels round a ring of 64 processes, each adding
//! one to it; PyCSP's `examples/TokenRing.py`.
//!
//! ```sh
//! cargo run --release -p multiproc --example token_ring          # threads
//! cargo run --release -p multiproc --example token_ring -- --os  # OS processes
//! ```
//!
//! Options: `--elements N` (64), `--cycles N` (10). It prints
//!
//! ```text
//! start
//! end
//! 704
//! ```
//!
//! The root sends 1 into the ring and gets it back after the 63 elements
//! (64); each of the 10 cycles adds 1 at the root and 63 in the ring:
//! 64 + 10 * 64 = 704. The root then retires its ends, and the ring retires
//! element by element.

mod common;

use std::error::Error;

use common::{Args, Place};
use multiproc::csp::{self, Channel, Reader, Writer, process};

/// Passes each token on, one more.
#[process]
fn element(this: Reader<u64>, next: Writer<u64>) -> csp::Result<()> {
    common::retired_is_done(pass_on_incremented(&this, &next))
}

/// An element's loop: it ends when the ring retires.
fn pass_on_incremented(this: &Reader<u64>, next: &Writer<u64>) -> csp::Result<()> {
    loop {
        let token = this.read()?;
        next.write(token + 1)?;
    }
}

/// Starts the token, sends it round `cycles` more times, prints it, and
/// retires its ends so that the elements end.
#[process]
fn root(cycles: u64, this: Reader<u64>, next: Writer<u64>) -> csp::Result<u64> {
    next.write(1)?;
    let mut token = this.read()?;
    println!("start");
    for _ in 0..cycles {
        next.write(token + 1)?;
        token = this.read()?;
    }
    println!("end");
    println!("{token}");
    next.retire();
    this.retire();
    Ok(token)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse(&["elements", "cycles"]);
    let elements: usize = args.get("elements", 64);
    let cycles: u64 = args.get("cycles", 10);
    // With the root alone, it would meet itself on one channel.
    common::require(elements >= 2, "--elements: the ring needs the root and an element");
    let channels: Vec<Channel<u64>> =
        (0..elements).map(|_| Channel::new()).collect::<Result<_, _>>()?;
    // Element i reads channel i and writes channel i + 1; the root closes
    // the ring from the last channel to the first. The elements run
    // alongside the root (PyCSP `Spawn`s them) and end once it retires.
    let ring = (1..elements)
        .map(|i| element(channels[i - 1].reader(), channels[i].writer()).place(args.os).start())
        .collect::<Result<Vec<_>, _>>()?;
    root(cycles, channels[elements - 1].reader(), channels[0].writer()).place(args.os).run()??;
    for running in ring {
        running.join()??;
    }
    Ok(())
}
