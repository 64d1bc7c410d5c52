//! The CSP examples (PyCSP's) print PyCSP's results, with their processes
//! in threads and in OS processes (`--os`). Each run is bounded: after
//! `LIMIT` its whole process group is killed and the test fails.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The longest an example may run.
const LIMIT: Duration = Duration::from_secs(60);

/// The example binary beside this test binary (as in `seed.rs`), built
/// first: `cargo test --test csp_examples` alone builds no example, and an
/// example built before its last change would be tested stale.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/csp_examples-<hash> -> target/<profile>/examples/<name>
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| build_examples(profile_dir));
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo build -p multiproc --examples`",
        path.display()
    );
    path
}

/// Builds the examples with the cargo that runs the tests (if one does),
/// in the profile of this test binary.
fn build_examples(profile_dir: &Path) {
    let Some(cargo) = std::env::var_os("CARGO") else { return };
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let output = Command::new(cargo)
        .args(["build", "-p", "multiproc", "--examples", "--profile", profile])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "building the examples failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs example `name` (with `--os` if `os`) and returns its standard
/// output, after checking that it succeeded within `LIMIT`.
fn run(name: &str, os: bool, options: &[&str]) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mode = if os { "os" } else { "threads" };
    let (out_path, err_path) =
        (dir.join(format!("{name}-{mode}.out")), dir.join(format!("{name}-{mode}.err")));
    let mut command = Command::new(example(name));
    command.args(options);
    if os {
        command.arg("--os");
    }
    // Files, not pipes: an OS process left behind cannot hold the test up
    // by keeping a pipe open. A group of its own: a timeout kills the
    // example's OS processes too.
    let mut child = command
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > LIMIT {
            // The leader is not reaped yet, so the group is still ours.
            let group = rustix::process::Pid::from_child(&child);
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            child.wait().unwrap();
            panic!(
                "{name} ({mode}) did not end within {LIMIT:?}; its output:\n{}",
                std::fs::read_to_string(&out_path).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap();
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    assert!(status.success(), "{name} ({mode}) failed ({status}):\n{stdout}\n{stderr}");
    stdout
}

/// A test of each example with threads and one with OS processes.
macro_rules! in_both_modes {
    ($($example:ident),+ $(,)?) => {$(
        mod $example {
            #[test]
            fn threads() {
                super::$example(false);
            }

            #[test]
            fn os_processes() {
                super::$example(true);
            }
        }
    )+};
}

in_both_modes!(
    commstime,
    token_ring,
    multiple_token_ring,
    sieve,
    dining_philosophers,
    fibonacci,
    mcpi,
    termination_race,
);

fn commstime(os: bool) {
    let stdout = run("commstime", os, &["--cycles", "1000", "--runs", "2"]);
    let times: Vec<f64> = stdout
        .lines()
        .filter(|line| line.starts_with("Time per ch"))
        .map(|line| microseconds(line.rsplit_once(" = ").unwrap().1))
        .collect();
    assert_eq!(times.len(), 2, "{stdout}");
    assert!(times.iter().all(|&t| t > 0.0), "{stdout}");
    let last = stdout.lines().last().unwrap();
    let mode = if os { "OS processes" } else { "threads" };
    let best = last.strip_prefix(&format!("{mode}: best of 2 runs ")).unwrap();
    let best = microseconds(best.strip_suffix(" per channel communication").unwrap());
    assert!(best > 0.0, "{stdout}");
}

/// `4.97 us` -> 4.97.
fn microseconds(text: &str) -> f64 {
    text.strip_suffix(" us").unwrap().parse().unwrap()
}

fn token_ring(os: bool) {
    // 64 elements, 10 cycles: 64 + 10 * 64.
    assert_eq!(run("token_ring", os, &[]), "start\nend\n704\n");
}

fn multiple_token_ring(os: bool) {
    // 4 tokens, each 10 * 64 + 63 more than it started: 10 + 4 * 703.
    assert_eq!(run("multiple_token_ring", os, &[]), "start\nend\n2822\n");
}

fn sieve(os: bool) {
    let stdout = run("sieve", os, &[]);
    let mut lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.pop(), Some("303 primes below 2000, the last 1999"));
    let primes: Vec<u64> = lines.iter().map(|line| line.parse().unwrap()).collect();
    let expected: Vec<u64> =
        (2..2000).filter(|&n| (2..n).take_while(|d| d * d <= n).all(|d| n % d != 0)).collect();
    assert_eq!(primes, expected);
}

fn dining_philosophers(os: bool) {
    let expected: String =
        (0..5).map(|i| format!("philosopher {i} has eaten 100 times\n")).collect();
    assert_eq!(run("dining_philosophers", os, &[]), expected);
}

fn fibonacci(os: bool) {
    let mut expected = vec![0u64, 1];
    while expected.len() < 20 {
        expected.push(expected[expected.len() - 2] + expected[expected.len() - 1]);
    }
    let printed: Vec<u64> =
        run("fibonacci", os, &[]).lines().map(|line| line.parse().unwrap()).collect();
    assert_eq!(printed, expected);
    assert_eq!(printed.last(), Some(&4181));
}

fn mcpi(os: bool) {
    // 100 bags of 10,000 samples: an error near 0.002.
    let stdout = run("mcpi", os, &["--bags", "100"]);
    let estimate: f64 = stdout.trim_end().strip_prefix("Result: ").unwrap().parse().unwrap();
    assert!((estimate - std::f64::consts::PI).abs() < 0.02, "{stdout}");
}

fn termination_race(os: bool) {
    let stdout = run("termination_race", os, &[]);
    let mut lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.pop(), Some("retire delivered 50 of 50 messages"));
    // Five sources, each saying hello 0 to 9, in any order.
    lines.sort_unstable();
    let mut expected: Vec<String> =
        (0..5).flat_map(|_| (0..10).map(|i| format!("Hello world ({i})"))).collect();
    expected.sort_unstable();
    assert_eq!(lines, expected);
}
