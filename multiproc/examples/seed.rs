//! Every scenario of the seed material (a tutorial on process
//! intercommunication in Python, in `shared/seed/`), in Rust, printing the
//! same output.
//!
//! ```sh
//! cargo run --release --example seed
//! ```
//!
//! The scenarios of components still being built are added by their issues:
//! queues, pipes, managers (list and namespace), shared `Value`/`Array`, and
//! the PyCSP processes.

use multiproc::{Process, StartMethod, current_process};

/// The target of the process scenario.
fn square(x: u64) -> u64 {
    println!("{} computes {x} * {x}", current_process().name());
    x * x
}

/// Python: `p = Process(target=f, args=(7,)); p.start(); p.join()`, with each
/// start method.
fn processes() -> Result<(), multiproc::Error> {
    let p = Process::spawn(square, 7)?;
    println!("{}", p.join()?);
    for method in [StartMethod::Spawn, StartMethod::Fork, StartMethod::ForkServer] {
        let p = Process::builder()
            .name(format!("{method:?}-worker"))
            .start_method(method)
            .spawn(square, 3)?;
        println!("{}", p.join()?);
    }
    Ok(())
}

fn main() -> Result<(), multiproc::Error> {
    println!("== Processes: start a process, join it, print its result ==");
    processes()?;
    Ok(())
}
