//! What multiproc logs, through the `log` crate: process starts and exits,
//! a child's panic, manager sessions and a refused authkey. Any `log`
//! backend shows them (`env_logger` reads `RUST_LOG=multiproc=debug`); this
//! example brings a ten-line one of its own that reads the same variable.
//!
//! ```sh
//! RUST_LOG=multiproc=debug cargo run -p multiproc --example logging
//! ```
//!
//! Prints, among others (pids differ):
//!
//! ```text
//! DEBUG multiproc::process::handle: started process "worker" (pid N, Spawn)
//! DEBUG multiproc::process::handle: process "worker" (pid N) exited with code 0
//! WARN  multiproc::process::handle: process "unlucky" (pid N) panicked: no luck
//! WARN  multiproc::connection::listener: authentication with Abstract("...") failed (wrong authkey?)
//! ```

use multiproc::{Manager, Process};

/// Prints records of multiproc at the level `RUST_LOG=multiproc=LEVEL` asks for.
struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target().starts_with("multiproc")
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("{:<5} {}: {}", record.level(), record.target(), record.args());
        }
    }

    fn flush(&self) {}
}

fn level() -> log::LevelFilter {
    let wanted = std::env::var("RUST_LOG").unwrap_or_default();
    let level = wanted.strip_prefix("multiproc=").unwrap_or(&wanted);
    level.parse().unwrap_or(log::LevelFilter::Info)
}

fn square(x: u64) -> u64 {
    x * x
}

fn unlucky(_: ()) {
    panic!("no luck")
}

fn main() -> Result<(), multiproc::Error> {
    log::set_logger(&Stderr).expect("the only logger");
    log::set_max_level(level());

    let p = Process::builder().name("worker").spawn(square, 7)?;
    println!("square: {}", p.join()?);
    let p = Process::builder().name("unlucky").spawn(unlucky, ())?;
    println!("unlucky: {}", p.join().unwrap_err());

    let m = Manager::builder().authkey(b"right").start()?;
    let refused = Manager::connect(m.address(), Some(b"wrong")).unwrap_err();
    println!("wrong key: {refused}");
    Ok(())
}
