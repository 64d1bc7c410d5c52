//! Retire ends a network without losing a message: five sources and five
//! sinks share one any-to-any channel, and the sinks stop only once every
//! source has retired; PyCSP's `examples/TerminationRaceRetire.py`.
//!
//! ```sh
//! cargo run --release -p multiproc --example termination_race          # threads
//! cargo run --release -p multiproc --example termination_race -- --os  # OS processes
//! ```
//!
//! Options: `--sources N` (5), `--sinks N` (5), `--messages N` (10 per
//! source). Each source writes its messages and retires its end; the
//! channel retires when the last source has, and only then do the sinks
//! get `Retired` (with poison, a sink could stop while other sources still
//! had messages to send). The sinks print the messages as they come, in
//! any order, then the program counts them:
//!
//! ```text
//! Hello world (0)
//! Hello world (0)
//! Hello world (1)
//! ...
//! Hello world (9)
//! retire delivered 50 of 50 messages
//! ```

mod common;

use std::error::Error;

use common::{Args, Place};
use multiproc::csp::{self, Channel, Parallel, Reader, Writer, process};

/// Writes `messages` greetings, then retires; returns how many it wrote.
#[process]
fn source(output: Writer<String>, messages: u32) -> csp::Result<u32> {
    for i in 0..messages {
        output.write(format!("Hello world ({i})"))?;
    }
    output.retire();
    Ok(messages)
}

/// Prints what comes until the channel retires; returns how many.
#[process]
fn sink(input: Reader<String>) -> csp::Result<u32> {
    let mut received = 0;
    loop {
        match input.read() {
            Ok(message) => {
                println!("{message}");
                received += 1;
            }
            Err(error) if error.is_retired() => return Ok(received),
            Err(error) => return Err(error),
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse(&["sources", "sinks", "messages"]);
    let sources: usize = args.get("sources", 5);
    let sinks: usize = args.get("sinks", 5);
    let messages: u32 = args.get("messages", 10);
    let chan = Channel::new()?;
    let counts = Parallel::new()
        .add_all(source(chan.writer(), messages).place(args.os) * sources)
        .add_all(sink(chan.reader()).place(args.os) * sinks)
        .run()?
        .into_iter()
        .collect::<csp::Result<Vec<u32>>>()?;
    let (sent, received) = counts.split_at(sources);
    let (sent, received): (u32, u32) = (sent.iter().sum(), received.iter().sum());
    println!("retire delivered {received} of {sent} messages");
    Ok(())
}
