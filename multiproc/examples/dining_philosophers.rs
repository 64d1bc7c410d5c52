//! The dining philosophers, with a security guard who seats at most four
//! of the five at a time (so that they cannot all hold one fork and wait
//! for the other); PyCSP's `examples/Dining-Phil.py`, after occam's q7.
//!
//! ```sh
//! cargo run --release -p multiproc --example dining_philosophers          # threads
//! cargo run --release -p multiproc --example dining_philosophers -- --os  # OS processes
//! ```
//!
//! Option: `--meals N` (100). A philosopher asks the security process for a
//! seat (`down`), picks up both forks (first whichever is free first: an
//! alternation of two output guards), eats, puts them down the same way,
//! and stands up (`up`). The security process alternates over lists of
//! channels: the `down` channels (only while fewer than four sit, and only
//! of philosophers who have not had all their meals) and the `up` channels.
//! PyCSP's security takes 1000 steps, so that each of the five eats about
//! 100 times; this one also lets each sit down exactly 100 times, which
//! takes the same 1000 steps and makes the count certain. It then retires
//! its channels: the philosophers, refused a seat, leave, and the forks end
//! with them. It prints
//!
//! ```text
//! philosopher 0 has eaten 100 times
//! philosopher 1 has eaten 100 times
//! philosopher 2 has eaten 100 times
//! philosopher 3 has eaten 100 times
//! philosopher 4 has eaten 100 times
//! ```
//!
//! One difference from PyCSP: its fork serves either neighbour at any
//! time, so two neighbours can hold one fork. Here, as in the occam
//! original, a fork picked up by one neighbour waits to be put down by the
//! same one.

mod common;

use std::error::Error;

use common::{Args, Place};
use multiproc::csp::{self, Alternation, Channel, Reader, Writer, process};

const PHILOSOPHERS: usize = 5;
/// The most the security process seats at a time.
const MAX_SEATED: usize = PHILOSOPHERS - 1;

/// Sits down, eats and stands up until refused a seat; returns how many
/// times it ate.
#[process]
fn philosopher(
    left: Writer<bool>,
    right: Writer<bool>,
    down: Writer<bool>,
    up: Writer<bool>,
) -> csp::Result<u32> {
    let mut eaten = 0;
    loop {
        // Think, then ask for a seat: refused (retired) once dinner is over.
        match down.write(true) {
            Ok(()) => {}
            Err(error) if error.is_retired() => break,
            Err(error) => return Err(error),
        }
        both_forks(&left, &right)?; // pick them up
        eaten += 1;
        both_forks(&left, &right)?; // put them down
        up.write(true)?;
    }
    left.retire();
    right.retire();
    Ok(eaten)
}

/// Picks up (or puts down) both forks: first whichever fork is ready.
fn both_forks(left: &Writer<bool>, right: &Writer<bool>) -> csp::Result<()> {
    csp::fair_select! {
        write(left, true) => right.write(true),
        write(right, true) => left.write(true),
    }?
}

/// A fork between two philosophers: picked up by either, then put down by
/// the same one. Ends when the philosophers leave.
#[process]
fn fork(left: Reader<bool>, right: Reader<bool>) -> csp::Result<()> {
    common::retired_is_done(serve(&left, &right))
}

fn serve(left: &Reader<bool>, right: &Reader<bool>) -> csp::Result<()> {
    loop {
        csp::fair_select! {
            read(left) -> _picked_up => left.read(),
            read(right) -> _picked_up => right.read(),
        }??;
    }
}

/// Seats at most `MAX_SEATED` philosophers at a time, each `meals` times,
/// then retires its channels to send them away.
#[process]
fn security(meals: u32, down: Vec<Reader<bool>>, up: Vec<Reader<bool>>) -> csp::Result<()> {
    let mut seated = 0;
    let mut seatings = vec![0; down.len()];
    // Each meal is two steps: sitting down and standing up.
    for _ in 0..2 * meals as usize * down.len() {
        let may_sit: Vec<usize> = if seated < MAX_SEATED {
            (0..down.len()).filter(|&i| seatings[i] < meals).collect()
        } else {
            Vec::new()
        };
        // Standing up is always allowed.
        let chosen = Alternation::new()
            .inputs(may_sit.iter().map(|&i| &down[i]))
            .inputs(&up)
            .fair_select()?;
        match may_sit.get(chosen) {
            Some(&i) => {
                seated += 1;
                seatings[i] += 1;
            }
            None => seated -= 1,
        }
    }
    csp::retire(&down);
    csp::retire(&up);
    Ok(())
}

/// `n` rendezvous channels of `bool`.
fn channels(n: usize) -> multiproc::Result<Vec<Channel<bool>>> {
    (0..n).map(|_| Channel::new()).collect()
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse(&["meals"]);
    let meals: u32 = args.get("meals", 100);
    let os = args.os;
    let n = PHILOSOPHERS;
    let (left, right, down, up) = (channels(n)?, channels(n)?, channels(n)?, channels(n)?);
    let guard = security(
        meals,
        down.iter().map(Channel::reader).collect(),
        up.iter().map(Channel::reader).collect(),
    )
    .place(os)
    .start()?;
    // Fork i lies between philosopher i (its left channel) and philosopher
    // i + 1 (its right channel).
    let forks = (0..n)
        .map(|i| fork(left[i].reader(), right[(i + 1) % n].reader()).place(os).start())
        .collect::<Result<Vec<_>, _>>()?;
    let philosophers = (0..n).map(|i| {
        philosopher(left[i].writer(), right[i].writer(), down[i].writer(), up[i].writer()).place(os)
    });
    let eaten = csp::Parallel::new().add_all(philosophers).run()?;
    guard.join()??;
    for fork in forks {
        fork.join()??;
    }
    for (i, eaten) in eaten.into_iter().enumerate() {
        println!("philosopher {i} has eaten {} times", eaten?);
    }
    Ok(())
}
