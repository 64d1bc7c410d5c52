//! Every scenario of the seed material (a tutorial on process
//! intercommunication in Python), in Rust, printing the same output.

use multiproc::{Process, StartMethod, current_process};

fn square(x: u64) -> u64 {
    println!("{} computes {x} * {x}", current_process().name());
    x * x
}

fn main() -> Result<(), multiproc::Error> {
    println!("== Processes: start a process, join it, print its result ==");
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
