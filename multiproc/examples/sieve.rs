//! The sieve of Eratosthenes as a growing chain of processes, one per
//! prime; PyCSP's `examples/Sieve.py`.
//!
//! ```sh
//! cargo run --release -p multiproc --example sieve          # threads
//! cargo run --release -p multiproc --example sieve -- --os  # OS processes
//! ```
//!
//! Option: `--below N` (2000). The producer sends 2, 3, ... 1999 and then
//! poisons its channel. A worker keeps the first number it gets (a
//! prime), sends it to the printer, starts the next worker, and passes on
//! only the numbers its prime does not divide. Poison travels down the
//! chain; the last worker, which never got a prime, poisons the printer's
//! channel, after every prime was printed. It prints the primes, one a
//! line as PyCSP does, then their count and the last:
//!
//! ```text
//! 2
//! 3
//! 5
//! ...
//! 1997
//! 1999
//! 303 primes below 2000, the last 1999
//! ```

mod common;

use std::error::Error;

use common::{Args, Place};
use multiproc::csp::{self, Channel, Reader, Writer, process};

/// Sends 2 .. `below`, then poisons its channel.
#[process]
fn producer(output: Writer<u64>, below: u64) -> csp::Result<()> {
    for number in 2..below {
        output.write(number)?;
    }
    output.poison();
    Ok(())
}

/// One link of the chain (started by the one before, as PyCSP's `Spawn`):
/// see the module. It returns `Ok` when poisoned, rather than the poison,
/// so that `#[process]` does not poison the printer's channel, which the
/// links after it still use; it poisons only the chain below it.
#[process]
fn worker(input: Reader<u64>, output: Writer<u64>, os: bool) -> csp::Result<()> {
    let prime = match input.read() {
        Ok(prime) => prime,
        // The end of the chain: every prime is printed.
        Err(error) if error.is_poisoned() => {
            output.poison();
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    output.write(prime)?;
    let below = Channel::new()?;
    let to_next = below.writer();
    let next = worker(below.reader(), output.clone(), os).place(os).start()?;
    let sifted = sift(&input, &to_next, prime);
    // Poison before `to_next` retires (dropped): the next worker must see
    // poison, not a retired channel.
    to_next.poison();
    next.join()??;
    match sifted {
        Err(error) if error.is_poisoned() => Ok(()),
        other => other,
    }
}

/// Passes on the numbers `prime` does not divide, until poisoned.
fn sift(input: &Reader<u64>, output: &Writer<u64>, prime: u64) -> csp::Result<()> {
    loop {
        let number = input.read()?;
        if number % prime != 0 {
            output.write(number)?;
        }
    }
}

/// Prints each prime until poisoned; returns them.
#[process]
fn printer(input: Reader<u64>) -> csp::Result<Vec<u64>> {
    let mut primes = Vec::new();
    loop {
        match input.read() {
            Ok(prime) => {
                println!("{prime}");
                primes.push(prime);
            }
            Err(error) if error.is_poisoned() => return Ok(primes),
            Err(error) => return Err(error),
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse(&["below"]);
    let below: u64 = args.get("below", 2000);
    let (first, out) = (Channel::new()?, Channel::new()?);
    let (produced, sieved, primes) = csp::parallel!(
        producer(first.writer(), below).place(args.os),
        worker(first.reader(), out.writer(), args.os).place(args.os),
        printer(out.reader()).place(args.os),
    )?;
    produced?;
    sieved?;
    let primes = primes?;
    let last = primes.last().map_or("none".to_owned(), u64::to_string);
    println!("{} primes below {below}, the last {last}", primes.len());
    Ok(())
}
