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
//!
//! A second table gives the round trips between two processes timed one by
//! one: p50 and p99 of each of three runs taken round-robin (multiproc,
//! Python, and this machine's physical limits), so a bimodal result cannot
//! hide behind one lucky median. `--latency` prints only that table.
//!
//! With `--features peers`, the Rust peers (ipc-channel between processes,
//! crossbeam-channel between threads) get rows in both tables.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use multiproc_bench::latency::{LATENCIES, percentile};
use multiproc_bench::{POOL_SCENARIOS, REFERENCES, SCENARIOS, median};

/// Runs of each latency row.
const LATENCY_RUNS: usize = 3;

fn main() {
    let mut filter = String::new();
    let mut quick = false;
    let mut latency_only = false;
    let mut redis = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => quick = true,
            "--latency" => latency_only = true,
            "--redis" => redis = true,
            other => filter = other.to_owned(),
        }
    }
    if redis {
        redis_rows();
        return;
    }
    if !latency_only {
        medians(&filter, quick);
    }
    latencies(&filter);
}

/// The Redis table: multiproc's queue and pool on a `redis-server` of
/// our own, and Celery, RQ and redis-benchmark on the same server, three
/// runs taken round-robin.
fn redis_rows() {
    use multiproc::queue::Delivery;
    use multiproc_bench::redis;
    let server = redis::server();
    let url = server.url();
    let mut rt = Vec::new();
    let mut rt_amo = Vec::new();
    let mut one_way = Vec::new();
    let mut map = Vec::new();
    let mut lpush = Vec::new();
    for run in 0..LATENCY_RUNS {
        // The anchor just before our rows, on the same server: the pair
        // sees the same machine.
        lpush.push(redis::lpush_rpop(server.port()));
        let mut times = redis::queue_round_trips(&url, run, Delivery::AtLeastOnce);
        rt.push((percentile(&mut times, 50.0), percentile(&mut times, 99.0)));
        let mut times = redis::queue_round_trips(&url, run, Delivery::AtMostOnce);
        rt_amo.push((percentile(&mut times, 50.0), percentile(&mut times, 99.0)));
        one_way.push(redis::one_way_64(&url, run));
        // The pool's workers live only for their row, so that they do not
        // share the machine with the queue rows.
        let pool = redis::pool(&url);
        map.push(redis::pool_map(&pool));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/bench_redis.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(server.port().to_string())
        .arg(LATENCY_RUNS.to_string())
        .output();
    let mut anchors: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    match output {
        Ok(out) => {
            if !out.status.success() {
                eprintln!("bench_redis.py failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let [name, _run, secs] = line.split('\t').collect::<Vec<_>>()[..]
                    && let Ok(secs) = secs.trim().parse::<f64>()
                {
                    anchors.entry(name.to_owned()).or_default().push(secs);
                }
            }
        }
        Err(e) => eprintln!("could not run python3: {e}"),
    }
    let runs = |v: &[f64], f: &dyn Fn(f64) -> String| {
        v.iter().map(|&x| f(x)).collect::<Vec<_>>().join("; ")
    };
    let secs = |x: f64| show(Duration::from_secs_f64(x));
    println!();
    println!("{}", machine());
    println!();
    println!(
        "| Redis row (redis-server {}, loopback) | runs 1-{LATENCY_RUNS} | anchor, same server, runs 1-{LATENCY_RUNS} | ratio (anchor / ours, medians) |",
        redis_version()
    );
    println!("|---|---|---|---:|");
    let lpush: Vec<f64> = lpush.into_iter().flatten().collect();
    for (label, rows) in [("at-least-once (Stream)", &rt), ("at-most-once (list)", &rt_amo)] {
        let p50: Vec<f64> = rows.iter().map(|r| r.0.as_secs_f64()).collect();
        println!(
            "| `Queue` put + get round trip, {label}, p50 / p99 | {} | redis-benchmark LPUSH + RPOP (p50s, 1 client, just before): {} | {} |",
            rows.iter()
                .map(|(a, b)| format!("{} / {}", show(*a), show(*b)))
                .collect::<Vec<_>>()
                .join("; "),
            runs(&lpush, &secs),
            ratio(&lpush, &p50)
        );
    }
    println!(
        "| `Queue` 64 B one-way, `put_many`/`get_many`, msgs/s | {} | — | — |",
        runs(&one_way, &|x| format!("{:.0}k", x / 1e3))
    );
    let per_task: Vec<f64> = map.iter().map(Duration::as_secs_f64).collect();
    for (name, label) in
        [("celery", "Celery 5.4 group, 2 prefork workers"), ("rq", "RQ 2.1, 2 SimpleWorkers")]
    {
        let theirs = anchors.get(name).cloned().unwrap_or_default();
        println!(
            "| `Pool::map` of 10,000 trivial tasks, 2 local workers, per task | {} | {label}: {} | {} |",
            runs(&per_task, &secs),
            runs(&theirs, &secs),
            ratio(&theirs, &per_task)
        );
    }
}

/// Median of `theirs` over median of `ours`.
fn ratio(theirs: &[f64], ours: &[f64]) -> String {
    let med = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    match (med(theirs), med(ours)) {
        (Some(t), Some(o)) if o > 0.0 => format!("{:.2}x", t / o),
        _ => "n/a".to_owned(),
    }
}

fn redis_version() -> String {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split_whitespace().find_map(|w| w.strip_prefix("v=").map(str::to_owned))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The p50 and p99 of each latency row, run `LATENCY_RUNS` times
/// round-robin, beside Python's.
fn latencies(filter: &str) {
    #[cfg(feature = "peers")]
    let peers = multiproc_bench::peers::PEER_LATENCIES;
    #[cfg(not(feature = "peers"))]
    let peers: &[multiproc_bench::latency::Latency] = &[];
    let rows: Vec<_> = LATENCIES.iter().chain(peers).filter(|l| l.name.contains(filter)).collect();
    if rows.is_empty() {
        return;
    }
    let mut ours: Vec<Vec<(Duration, Duration)>> = vec![Vec::new(); rows.len()];
    for _ in 0..LATENCY_RUNS {
        for (i, row) in rows.iter().enumerate() {
            let mut times = (row.run)();
            ours[i].push((percentile(&mut times, 50.0), percentile(&mut times, 99.0)));
        }
    }
    let python = run_python_latency(filter);
    println!();
    println!("{}", machine());
    println!();
    println!(
        "| round trip, 2 processes ({} timed one by one) | multiproc p50 / p99, runs 1-{LATENCY_RUNS} | Python p50 / p99, runs 1-{LATENCY_RUNS} | ratio of p50 (Python / multiproc, worst runs) |",
        multiproc_bench::latency::ROUND_TRIPS
    );
    println!("|---|---|---|---:|");
    for (row, runs) in rows.iter().zip(&ours) {
        let theirs = python.get(row.name);
        let show_runs = |runs: &[(Duration, Duration)]| {
            runs.iter()
                .map(|(p50, p99)| format!("{} / {}", show(*p50), show(*p99)))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let worst = |runs: &[(Duration, Duration)]| runs.iter().map(|r| r.0).max();
        let ratio = match (theirs.and_then(|t| worst(t)), worst(runs)) {
            (Some(t), Some(m)) => format!("{:.1}x", t.as_secs_f64() / m.as_secs_f64()),
            _ => "n/a".to_owned(),
        };
        println!(
            "| {} | {} | {} | {} |",
            row.name,
            show_runs(runs),
            theirs.map_or_else(|| "n/a".to_owned(), |t| show_runs(t)),
            ratio
        );
    }
}

/// Runs `python/bench.py --latency` and reads its `name run p50 p99` lines.
fn run_python_latency(filter: &str) -> BTreeMap<String, Vec<(Duration, Duration)>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/bench.py");
    let output = Command::new("python3")
        .arg(script)
        .arg("--filter")
        .arg(filter)
        .arg("--latency")
        .arg(LATENCY_RUNS.to_string())
        .output();
    let Ok(output) = output.inspect_err(|e| eprintln!("could not run python3: {e}")) else {
        return BTreeMap::new();
    };
    let mut rows: BTreeMap<String, Vec<(Duration, Duration)>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        if let [name, _run, p50, p99] = fields[..] {
            let (Ok(p50), Ok(p99)) = (p50.trim().parse::<f64>(), p99.trim().parse::<f64>()) else {
                continue;
            };
            rows.entry(name.to_owned())
                .or_default()
                .push((Duration::from_secs_f64(p50), Duration::from_secs_f64(p99)));
        }
    }
    rows
}

/// The table of medians: every scenario, here and in Python.
fn medians(filter: &str, quick: bool) {
    #[cfg(feature = "peers")]
    let peers = multiproc_bench::peers::PEER_SCENARIOS;
    #[cfg(not(feature = "peers"))]
    let peers: &[multiproc_bench::Scenario] = &[];
    let go: &[multiproc_bench::Scenario] =
        if multiproc_bench::go_available() { &[multiproc_bench::GO_SCENARIO] } else { &[] };
    let scenarios: Vec<_> = SCENARIOS
        .iter()
        .chain(POOL_SCENARIOS)
        .chain(peers)
        .chain(go)
        .filter(|s| s.name.contains(filter))
        .collect();

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

    let python = run_python(filter, quick);

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
