//! A million light CSP processes, PyCSP's `examples/1MillionProcesses.py`:
//! each of a million processes reads one value from one channel, and the
//! main program writes a million values into it.
//!
//! ```sh
//! cargo run --release -p multiproc --example million            # 1,000,000
//! cargo run --release -p multiproc --example million -- 10000   # fewer
//! ```
//!
//! Light processes (`#[process] async fn`) run as tasks on one scheduler
//! thread, as PyCSP's greenlets do; a process blocked in `read_async`
//! costs memory, no thread and no CPU. It prints (times vary)
//!
//! ```text
//! 1000000 light processes created in 0.62 s
//! 1000000 values read, one per process, in 1.71 s (2.33 s in all)
//! peak resident memory: 612 MiB
//! ```

use std::error::Error;
use std::time::Instant;

use multiproc::csp::{self, Channel, Parallel, Reader, Writer, process};

/// Reads one value and returns it.
#[process]
async fn reader(inp: Reader<u64>) -> csp::Result<u64> {
    inp.read_async().await
}

/// Writes `0..n`, one value to each reader.
#[process]
async fn writer(out: Writer<u64>, n: u64) -> csp::Result<u64> {
    for i in 0..n {
        out.write_async(i).await?;
    }
    Ok(0)
}

/// The peak resident memory of this process, from `/proc/self/status`.
fn peak_resident_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn main() -> Result<(), Box<dyn Error>> {
    let n: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 1_000_000,
    };
    let start = Instant::now();
    let ch = Channel::<u64>::new()?;
    let all = Parallel::new().add_all((0..n).map(|_| reader(ch.reader())));
    let created = start.elapsed();
    println!("{n} light processes created in {:.2} s", created.as_secs_f64());
    // The writer is a light process too (PyCSP's main greenlet).
    let all = all.add(writer(ch.writer(), n));
    drop(ch);
    let values = all.run()?;
    let sum: u64 = values.into_iter().sum::<csp::Result<u64>>()?;
    assert_eq!(sum, n * n.saturating_sub(1) / 2);
    let all = start.elapsed();
    println!(
        "{n} values read, one per process, in {:.2} s ({:.2} s in all)",
        (all - created).as_secs_f64(),
        all.as_secs_f64()
    );
    if let Some(mib) = peak_resident_mib() {
        println!("peak resident memory: {mib} MiB");
    }
    Ok(())
}
