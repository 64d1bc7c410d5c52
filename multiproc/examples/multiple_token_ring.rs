//! Several tokens at once in a ring of 64 processes, each adding one to
//! every token it passes on; PyCSP's `examples/MultipleTokenRing.py`.
//!
//! ```sh
//! cargo run --release -p multiproc --example multiple_token_ring          # threads
//! cargo run --release -p multiproc --example multiple_token_ring -- --os  # OS processes
//! ```
//!
//! Options: `--elements N` (64), `--cycles N` (10), `--tokens N` (4). It
//! prints
//!
//! ```text
//! start
//! end
//! 2822
//! ```
//!
//! After a first token goes round once (and is dropped), the root puts
//! tokens 1 to 4 into the ring; in each of the 10 cycles it reads each
//! token and sends it on, one more, so a token gains 63 in the ring and 1 at
//! the root per cycle. A last round trip (63 more) brings token `i` back as
//! `i + 10 * 64 + 63`: the sum is 1 + 2 + 3 + 4 + 4 * 703 = 2822.

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

/// Sends `tokens` tokens round the ring `cycles` times, prints their sum,
/// and retires its ends so that the elements end.
#[process]
fn root(cycles: u64, tokens: u64, this: Reader<u64>, next: Writer<u64>) -> csp::Result<u64> {
    // A first round trip: the ring is up.
    next.write(1)?;
    this.read()?;
    println!("start");
    for token in 1..=tokens {
        next.write(token)?;
    }
    for _ in 0..cycles {
        for _ in 0..tokens {
            let token = this.read()?;
            next.write(token + 1)?;
        }
    }
    let mut sum = 0;
    for _ in 0..tokens {
        sum += this.read()?;
    }
    println!("end");
    println!("{sum}");
    next.retire();
    this.retire();
    Ok(sum)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse(&["elements", "cycles", "tokens"]);
    let elements: usize = args.get("elements", 64);
    let cycles: u64 = args.get("cycles", 10);
    let tokens: u64 = args.get("tokens", 4);
    // The root writes every token before it reads one: the ring's
    // `elements - 1` element processes must hold them all.
    common::require(elements >= 2, "--elements: the ring needs the root and an element");
    common::require(tokens < elements as u64, "--tokens: a ring of N elements holds fewer than N");
    let channels: Vec<Channel<u64>> =
        (0..elements).map(|_| Channel::new()).collect::<Result<_, _>>()?;
    // Element i reads channel i and writes channel i + 1; the root closes
    // the ring from the last channel to the first. The elements run
    // alongside the root (PyCSP `Spawn`s them) and end once it retires.
    let ring = (1..elements)
        .map(|i| element(channels[i - 1].reader(), channels[i].writer()).place(args.os).start())
        .collect::<Result<Vec<_>, _>>()?;
    root(cycles, tokens, channels[elements - 1].reader(), channels[0].writer())
        .place(args.os)
        .run()??;
    for running in ring {
        running.join()??;
    }
    Ok(())
}
