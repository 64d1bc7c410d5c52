//! Helpers shared by the integration tests: bounded waits, pipes, /proc.
#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::time::{Duration, Instant};

use multiproc::{Process, StartMethod};
use serde::de::DeserializeOwned;

/// Every start method, for tests that must hold for all of them.
pub const METHODS: [StartMethod; 3] =
    [StartMethod::Spawn, StartMethod::Fork, StartMethod::ForkServer];

/// The longest any test waits for anything.
pub const LIMIT: Duration = Duration::from_secs(30);

/// Joins `p`, failing the test (and killing the child) if it takes too long.
pub fn join<R: DeserializeOwned>(mut p: Process<R>) -> multiproc::Result<R> {
    match p.join_timeout(LIMIT)? {
        Some(value) => Ok(value),
        None => {
            let _ = p.kill();
            panic!("child {} ({}) did not end within {LIMIT:?}", p.pid(), p.name())
        }
    }
}

/// Waits for `p` to end and returns its exit code, bounded.
pub fn wait<R>(p: &Process<R>) -> i32 {
    match p.wait_timeout(LIMIT).expect("wait") {
        Some(code) => code,
        None => {
            let _ = p.kill();
            panic!("child {} did not end within {LIMIT:?}", p.pid())
        }
    }
}

/// Reads exactly `n` bytes from `r`, failing the test after `LIMIT`.
///
/// The read runs on a helper thread so that a child that never writes fails
/// the test instead of hanging it.
pub fn read_exact_within(mut r: impl Read + Send + 'static, n: usize) -> Vec<u8> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0; n];
        let result = r.read_exact(&mut buf).map(|()| buf);
        let _ = tx.send(result);
    });
    rx.recv_timeout(LIMIT).expect("nothing to read within the limit").expect("read")
}

/// Reads until end of stream, failing the test after `LIMIT`.
pub fn read_to_end_within(mut r: impl Read + Send + 'static) -> Vec<u8> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let result = r.read_to_end(&mut buf).map(|_| buf);
        let _ = tx.send(result);
    });
    rx.recv_timeout(LIMIT).expect("no end of stream within the limit").expect("read")
}

/// The state letter of a process in /proc (`R`, `S`, `Z`...), or `None` if
/// there is no such process.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let after = stat.rsplit_once(')')?.1;
    after.trim_start().chars().next()
}

/// This thread's kernel id (for [`thread_asleep`]).
pub fn thread_id() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get() as u32
}

/// Whether thread `tid` of this process sleeps in the kernel now (a futex
/// wait, past any poll).
pub fn thread_asleep(tid: u32) -> bool {
    let path = format!("/proc/self/task/{tid}/stat");
    let Ok(stat) = std::fs::read_to_string(path) else { return false };
    stat.rsplit_once(')').and_then(|(_, after)| after.trim_start().chars().next()) == Some('S')
}

/// Waits (bounded by `LIMIT`) until process `pid`'s main thread sleeps in
/// the kernel: it is blocked, past any poll.
pub fn wait_until_process_asleep(what: &str, pid: u32) {
    eventually(what, || proc_state(pid) == Some('S'));
}

/// utime + stime of process `pid`, in clock ticks (10 ms).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// True once `pid` is gone or a zombie (dead but not reaped).
pub fn is_dead(pid: u32) -> bool {
    matches!(proc_state(pid), None | Some('Z') | Some('X'))
}

/// Runs `f` on a new thread and returns once that thread sleeps in the
/// kernel (blocked in `f`, past any poll); `what` names the wait.
#[allow(dead_code)] // not every test binary uses it
pub fn asleep_in_thread<R: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> std::thread::JoinHandle<R> {
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        tid_tx.send(thread_id()).unwrap();
        f()
    });
    let tid = tid_rx.recv_timeout(LIMIT).unwrap();
    eventually(what, || thread_asleep(tid));
    handle
}

/// Waits until `check` holds, failing the test after `LIMIT`.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How many descriptors this process has open.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A process builder for `method`. The test harness runs tests on several
/// threads, so the fork start method needs the explicit opt-in.
pub fn builder(method: StartMethod) -> multiproc::Builder {
    let builder = Process::builder().start_method(method);
    if method == StartMethod::Fork {
        // SAFETY: the targets of these tests take no lock of the harness's
        // other threads; they use their arguments, multiproc's objects (whose
        // locks multiproc holds across the fork), stdio and the allocator.
        unsafe { builder.allow_threaded_fork() }
    } else {
        builder
    }
}

/// A descriptor that says which message it belongs to: the read end of a
/// pipe holding `index`.
pub fn numbered_fd(index: u32) -> multiproc::FdHandle {
    use std::io::Write;
    let (reader, mut writer) = std::io::pipe().unwrap();
    writer.write_all(&index.to_le_bytes()).unwrap();
    multiproc::FdHandle::new(reader)
}

/// The number a [`numbered_fd`] holds.
pub fn number_of(handle: multiproc::FdHandle) -> u32 {
    use std::io::Read;
    let mut bytes = [0u8; 4];
    handle.into_file().read_exact(&mut bytes).unwrap();
    u32::from_le_bytes(bytes)
}

/// Installs redis-server with the project's script if it is missing (the
/// README's test command must pass on a fresh machine).
pub fn ensure_redis_server() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let found = std::process::Command::new("sh")
            .args(["-c", "command -v redis-server"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../.ci/install-redis.sh");
            let status = std::process::Command::new("bash").arg(script).status().expect("bash");
            assert!(status.success(), "{script} failed: install Debian's redis-server");
        }
    });
}

/// A redis-server of the test's own, on a free loopback port.
pub fn redis_server(
    builder: multiproc::remote::RedisServerBuilder,
) -> multiproc::remote::RedisServer {
    ensure_redis_server();
    builder.start().expect("start redis-server")
}
