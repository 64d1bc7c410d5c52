//! The comparison command: runs every scenario with multiproc and with
//! Python's `multiprocessing` in one run, and prints medians and ratios.
//!
//! ```sh
//! cargo run --release -p multiproc-bench --bin compare [-- FILTER] [--quick]
//! ```
//!
//! `FILTER` keeps the rows whose name contains it; `--quick` takes a tenth of
//! the samples. The ratio is Python's median divided by ours: how many times
//! faster multiproc is.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use multiproc_bench::{REFERENCES, SCENARIOS, median};

fn main() {
    let mut filter = String::new();
    let mut quick = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => quick = true,
            other => filter = other.to_owned(),
        }
    }
    let scenarios: Vec<_> = SCENARIOS.iter().filter(|s| s.name.contains(&filter)).collect();

    // Samples are taken round-robin over the scenarios, so that a slow
    // moment of the shared machine spreads over every row instead of
    // skewing one (and the ratios between rows of the same run).
    let counts: Vec<usize> =
        scenarios.iter().map(|s| if quick { (s.samples / 10).max(5) } else { s.samples }).collect();
    for (scenario, count) in scenarios.iter().zip(&counts) {
        for _ in 0..(count / 10).max(2) {
            (scenario.run)();
        }
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); scenarios.len()];
    for round in 0..counts.iter().copied().max().unwrap_or(0) {
        for (i, scenario) in scenarios.iter().enumerate() {
            if round < counts[i] {
                times[i].push((scenario.run)());
            }
        }
    }
    let ours: BTreeMap<&str, Duration> = scenarios
        .iter()
        .zip(&mut times)
        .map(|(scenario, times)| (scenario.name, median(times)))
        .collect();

    let python = run_python(&filter, quick);

    println!("{}", machine());
    println!();
    println!("| scenario | multiproc | Python | ratio (Python / multiproc) |");
    println!("|---|---:|---:|---:|");
    for scenario in &scenarios {
        let mine = ours[scenario.name];
        let theirs = python.get(scenario.name).copied();
        let ratio = theirs.map_or_else(
            || "n/a".to_owned(),
            |t| format!("{:.1}x", t.as_secs_f64() / mine.as_secs_f64()),
        );
        println!(
            "| {} | {} | {} | {} |",
            scenario.name,
            show(mine),
            theirs.map_or_else(|| "n/a".to_owned(), show),
            ratio
        );
    }
    println!();
    println!("medians of one run; ratio > 1 means multiproc is faster");
    let pairs: Vec<_> = REFERENCES
        .iter()
        .filter_map(|(row, reference)| Some((row, reference, ours.get(row)?, ours.get(reference)?)))
        .collect();
    if !pairs.is_empty() {
        println!();
        println!("| scenario | against | ratio (scenario / reference) |");
        println!("|---|---|---:|");
        for (row, reference, mine, base) in pairs {
            println!("| {row} | {reference} | {:.2}x |", mine.as_secs_f64() / base.as_secs_f64());
        }
    }
}

/// Runs `python/bench.py` and reads its `name<TAB>seconds` lines.
fn run_python(filter: &str, quick: bool) -> BTreeMap<String, Duration> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/bench.py");
    let mut command = Command::new("python3");
    command.arg(script).arg("--filter").arg(filter);
    if quick {
        command.arg("--quick");
    }
    let output = match command.output() {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            eprintln!("python3 {script} failed:\n{}", String::from_utf8_lossy(&output.stderr));
            return BTreeMap::new();
        }
        Err(e) => {
            eprintln!("could not run python3: {e}");
            return BTreeMap::new();
        }
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (name, seconds) = line.split_once('\t')?;
            Some((name.to_owned(), Duration::from_secs_f64(seconds.trim().parse().ok()?)))
        })
        .collect()
}

fn show(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else if s >= 1e-6 {
        format!("{:.2} µs", s * 1e6)
    } else {
        format!("{:.0} ns", s * 1e9)
    }
}

/// One line describing the machine and the versions measured.
fn machine() -> String {
    let text = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("{program}: unknown"))
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".to_owned());
    format!(
        "machine: {} ({}, {} CPUs); {}; {}",
        text("uname", &["-sr"]),
        cpu,
        multiproc::cpu_count(),
        text("rustc", &["--version"]),
        text("python3", &["--version"]),
    )
}
