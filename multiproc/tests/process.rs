//! Processes: start methods, results, failures, names, daemons, reaping.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{LIMIT, METHODS, eventually, is_dead, join, proc_state, read_exact_within, wait};
use multiproc::{CurrentProcess, Error, FdHandle, Process, RawValue, StartMethod, current_process};
use serde::{Deserialize, Serialize};

fn square(x: u64) -> u64 {
    x * x
}

fn shout(s: String) -> String {
    s.to_uppercase()
}

fn evens(n: i32) -> Vec<i32> {
    (0..n).filter(|x| x % 2 == 0).collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    x: f64,
    y: f64,
    label: String,
}

fn mirror(p: Point) -> Point {
    Point { x: -p.x, y: -p.y, label: format!("mirror of {}", p.label) }
}

fn seed_message(_: ()) -> (i32, Option<()>, String) {
    (42, None, "hello".to_owned())
}

#[test]
fn return_values_of_several_types_come_back() {
    assert_eq!(join(Process::spawn(square, 12).unwrap()).unwrap(), 144);
    assert_eq!(join(Process::spawn(shout, "abc".to_owned()).unwrap()).unwrap(), "ABC");
    assert_eq!(join(Process::spawn(evens, 7).unwrap()).unwrap(), vec![0, 2, 4, 6]);
    let p = Point { x: 1.5, y: -2.0, label: "p".to_owned() };
    let back = join(Process::spawn(mirror, p).unwrap()).unwrap();
    assert_eq!(back, Point { x: -1.5, y: 2.0, label: "mirror of p".to_owned() });
    let seed = join(Process::spawn(seed_message, ()).unwrap()).unwrap();
    assert_eq!(format!("{seed:?}"), r#"(42, None, "hello")"#);
}

#[test]
fn every_start_method_runs_the_target_and_returns_its_value() {
    for method in METHODS {
        let p = common::builder(method).spawn(square, 9).unwrap();
        assert_eq!(p.start_method(), method);
        assert_ne!(p.pid(), std::process::id());
        assert_eq!(join(p).unwrap(), 81, "{method:?}");
    }
}

#[test]
fn non_capturing_closures_are_targets() {
    for method in METHODS {
        let p = common::builder(method).spawn(|(a, b): (u8, u8)| a + b, (2, 3));
        assert_eq!(join(p.unwrap()).unwrap(), 5);
    }
}

fn explode(text: String) -> u8 {
    panic!("deliberate: {text}")
}

#[test]
fn a_panic_is_reported_with_its_message() {
    for method in METHODS {
        let p = common::builder(method).spawn(explode, "boom".to_owned()).unwrap();
        assert_eq!(wait(&p), 1, "{method:?}: a panicked child exits with 1");
        match join(p) {
            Err(Error::Panicked { message, .. }) => assert_eq!(message, "deliberate: boom"),
            other => panic!("{method:?}: expected a panic, got {other:?}"),
        }
    }
}

fn quit(code: i32) -> u8 {
    std::process::exit(code)
}

#[test]
fn an_exit_code_is_reported() {
    for method in METHODS {
        let p = common::builder(method).spawn(quit, 3).unwrap();
        assert_eq!(wait(&p), 3);
        assert_eq!(p.exit_code(), Some(3));
        assert!(matches!(join(p), Err(Error::Exited { code: 3 })), "{method:?}");
    }
}

fn abort(_: ()) -> u8 {
    std::process::abort()
}

#[test]
fn death_by_a_signal_is_reported() {
    for method in METHODS {
        let p = common::builder(method).spawn(abort, ()).unwrap();
        assert_eq!(wait(&p), -libc_sigabrt());
        let err = join(p).unwrap_err();
        assert!(matches!(err, Error::Signaled { signal } if signal == libc_sigabrt()), "{err:?}");
        assert_eq!(err.to_string(), "child process was killed by signal 6 (SIGABRT)");
    }
}

fn libc_sigabrt() -> i32 {
    6
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn terminate_and_kill_stop_a_sleeping_child() {
    for method in METHODS {
        let p = common::builder(method).spawn(nap, 60_000).unwrap();
        assert!(p.is_alive());
        assert_eq!(p.exit_code(), None);
        p.terminate().unwrap();
        assert_eq!(wait(&p), -15, "{method:?}");
        assert!(!p.is_alive());
        let r = join(p);
        assert!(matches!(r, Err(Error::Signaled { signal: 15 })), "{method:?}: {r:?}");

        let p = common::builder(method).spawn(nap, 60_000).unwrap();
        p.kill().unwrap();
        assert_eq!(wait(&p), -9, "{method:?}");
        assert!(matches!(join(p), Err(Error::Signaled { signal: 9 })));
    }
}

fn wait_for_go(go: FdHandle) -> String {
    let mut byte = [0u8];
    std::io::Read::read_exact(&mut go.file(), &mut byte).unwrap();
    "went".to_owned()
}

#[test]
fn join_timeout_expires_then_a_later_join_succeeds() {
    for method in METHODS {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let mut p = common::builder(method).spawn(wait_for_go, FdHandle::new(reader)).unwrap();
        assert!(p.join_timeout(Duration::from_millis(50)).unwrap().is_none());
        assert!(p.is_alive(), "the handle is still usable after a timeout");
        writer.write_all(b"g").unwrap();
        assert_eq!(p.join_timeout(LIMIT).unwrap(), Some("went".to_owned()));
        assert!(matches!(p.join_timeout(LIMIT), Err(Error::ResultTaken)));
    }
}

#[test]
fn wait_timeout_expires_then_wait_returns_the_exit_code() {
    let (reader, mut writer) = std::io::pipe().unwrap();
    let p = Process::spawn(wait_for_go, FdHandle::new(reader)).unwrap();
    assert_eq!(p.wait_timeout(Duration::from_millis(20)).unwrap(), None);
    writer.write_all(b"g").unwrap();
    assert_eq!(wait(&p), 0);
    assert_eq!(join(p).unwrap(), "went", "wait keeps the result for join");
}

fn block_until_eof(args: (u32, FdHandle)) -> u32 {
    let (index, pipe) = args;
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut pipe.file(), &mut rest).unwrap();
    index
}

#[test]
fn fifty_children_are_alive_at_once() {
    let (reader, writer) = std::io::pipe().unwrap();
    let reader = FdHandle::new(reader);
    let children: Vec<_> = (0..50)
        .map(|i| Process::spawn(block_until_eof, (i, reader.try_clone().unwrap())).unwrap())
        .collect();
    drop(reader);
    assert!(children.iter().all(Process::is_alive), "all fifty run at the same time");
    drop(writer); // every child now sees the end of the pipe
    let got: Vec<u32> = children.into_iter().map(|p| join(p).unwrap()).collect();
    assert_eq!(got, (0..50).collect::<Vec<_>>());
}

#[test]
fn children_can_be_started_from_four_threads_at_once() {
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                (0..6u64)
                    .map(|i| {
                        let method = METHODS[(i % 3) as usize];
                        let p = common::builder(method).spawn(square, t * 10 + i);
                        (t * 10 + i, p.unwrap())
                    })
                    .collect::<Vec<_>>()
                    .into_iter()
                    .map(|(x, p)| (x, join(p).unwrap()))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for thread in threads {
        for (x, squared) in thread.join().unwrap() {
            assert_eq!(squared, x * x);
        }
    }
}

#[test]
fn the_closure_form_refuses_a_multithreaded_parent() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let helper = std::thread::spawn(move || rx.recv());
    let captured = String::from("captured");
    let err = Process::builder().fork_closure(move || captured.len()).unwrap_err();
    assert!(matches!(err, Error::ThreadedFork { threads } if threads >= 2), "{err:?}");
    assert!(err.to_string().starts_with("refusing to fork a process that has"));
    drop(tx);
    let _ = helper.join();
}

#[test]
fn spawn_with_fork_refuses_a_multithreaded_parent() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let helper = std::thread::spawn(move || rx.recv());
    let err = Process::builder().start_method(StartMethod::Fork).spawn(square, 3).unwrap_err();
    assert!(matches!(err, Error::ThreadedFork { threads } if threads >= 2), "{err:?}");
    drop(tx);
    let _ = helper.join();
}

fn fork_a_square_here(x: u64) -> u64 {
    // This child runs before `main` of the test binary: it has one thread.
    let p = Process::builder().start_method(StartMethod::Fork).spawn(square, x).unwrap();
    join(p).unwrap()
}

#[test]
fn spawn_with_fork_forks_a_single_threaded_parent() {
    assert_eq!(join(Process::spawn(fork_a_square_here, 12).unwrap()).unwrap(), 144);
}

fn fork_a_closure_here(word: String) -> String {
    // This child runs before `main` of the test binary: it has one thread.
    let suffix = "!".repeat(3);
    let p = Process::builder().fork_closure(move || format!("{word}{suffix}")).unwrap();
    join(p).unwrap()
}

#[test]
fn the_closure_form_forks_a_single_threaded_parent() {
    let p = Process::spawn(fork_a_closure_here, "captured".to_owned()).unwrap();
    assert_eq!(join(p).unwrap(), "captured!!!");
}

#[test]
fn the_unchecked_closure_form_forks_a_multithreaded_parent() {
    let table = String::from("31415");
    // SAFETY: the closure only reads its own copy of `table`.
    let p = unsafe {
        Process::builder()
            .fork_closure_unchecked(move || table.bytes().map(|b| u32::from(b - b'0')).sum::<u32>())
    };
    assert_eq!(join(p.unwrap()).unwrap(), 14);
}

fn describe(_: ()) -> CurrentProcess {
    current_process()
}

#[test]
fn the_child_sees_its_name_pid_and_parent() {
    for method in METHODS {
        let p = common::builder(method).name("worker-1").spawn(describe, ()).unwrap();
        assert_eq!(p.name(), "worker-1");
        let pid = p.pid();
        let me = join(p).unwrap();
        assert_eq!(me.name(), "worker-1");
        assert_eq!(me.pid(), pid);
        assert_eq!(me.parent_pid(), std::process::id(), "{method:?}");
        assert!(me.is_child());
        assert!(!me.daemon());
        assert_eq!(me.start_method(), Some(method));
    }
    let main = current_process();
    assert_eq!(main.name(), "MainProcess");
    assert!(!main.is_child());
}

fn name_a_grandchild(_: ()) -> (String, String) {
    let grandchild = Process::spawn(describe, ()).unwrap();
    let name = grandchild.name().to_owned();
    let seen = join(grandchild).unwrap();
    assert_eq!(seen.name(), name);
    (current_process().name().to_owned(), name)
}

#[test]
fn children_are_named_as_in_python_by_default() {
    let p = Process::spawn(name_a_grandchild, ()).unwrap();
    let name = p.name().to_owned();
    assert!(name.starts_with("Process-"), "{name}");
    let (child, grandchild) = join(p).unwrap();
    assert_eq!(child, name);
    assert_eq!(grandchild, format!("{name}:1"));
}

/// Starts a daemon grandchild with `method`, reports its pid, then hangs.
fn start_daemon_then_hang(args: (StartMethod, FdHandle)) {
    let (method, report) = args;
    let daemon = common::builder(method).daemon(true).spawn(nap, 120_000).unwrap();
    report.file().write_all(&daemon.pid().to_le_bytes()).unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn a_daemon_child_dies_when_its_parent_is_killed() {
    for method in METHODS {
        let (reader, writer) = std::io::pipe().unwrap();
        let parent =
            Process::spawn(start_daemon_then_hang, (method, FdHandle::new(writer))).unwrap();
        let pid = read_exact_within(reader, 4);
        let daemon = u32::from_le_bytes(pid.try_into().unwrap());
        assert!(!is_dead(daemon), "{method:?}: the daemon runs while its parent does");
        parent.kill().unwrap();
        assert_eq!(wait(&parent), -9);
        eventually(&format!("{method:?}: daemon {daemon} dies with its parent"), || {
            is_dead(daemon)
        });
    }
}

fn relay(args: (FdHandle, FdHandle)) -> u8 {
    let (go, done) = args;
    let mut byte = [0u8];
    std::io::Read::read_exact(&mut go.file(), &mut byte).unwrap();
    done.file().write_all(b"done").unwrap();
    byte[0]
}

#[test]
fn a_dropped_handle_leaves_the_child_running_and_no_zombie_behind() {
    for method in METHODS {
        let (go_r, mut go_w) = std::io::pipe().unwrap();
        let (done_r, done_w) = std::io::pipe().unwrap();
        let p = common::builder(method)
            .spawn(relay, (FdHandle::new(go_r), FdHandle::new(done_w)))
            .unwrap();
        let pid = p.pid();
        drop(p);
        assert!(!is_dead(pid), "{method:?}: dropping the handle does not stop the child");
        go_w.write_all(b"x").unwrap();
        assert_eq!(read_exact_within(done_r, 4), b"done");
        eventually(&format!("{method:?}: child {pid} is reaped"), || proc_state(pid).is_none());
    }
}

#[test]
fn no_zombie_is_left_once_joined() {
    for method in METHODS {
        let p = common::builder(method).spawn(square, 2).unwrap();
        let pid = p.pid();
        assert_eq!(join(p).unwrap(), 4);
        assert_ne!(proc_state(pid), Some('Z'), "{method:?}");
        let p = common::builder(method).spawn(quit, 1).unwrap();
        let pid = p.pid();
        assert_eq!(wait(&p), 1);
        assert_ne!(proc_state(pid), Some('Z'), "{method:?}");
    }
}

fn write_greeting(args: (StartMethod, FdHandle)) {
    let (method, out) = args;
    write!(out.file(), "hello from {method:?}").unwrap();
}

#[test]
fn an_fd_handle_works_in_the_child_for_every_start_method() {
    for method in METHODS {
        let (reader, writer) = std::io::pipe().unwrap();
        let p =
            common::builder(method).spawn(write_greeting, (method, FdHandle::new(writer))).unwrap();
        join(p).unwrap();
        let text = common::read_to_end_within(reader);
        assert_eq!(String::from_utf8(text).unwrap(), format!("hello from {method:?}"));
    }
}

fn make_pipe(text: String) -> FdHandle {
    let (reader, mut writer) = std::io::pipe().unwrap();
    writer.write_all(text.as_bytes()).unwrap();
    FdHandle::new(reader)
}

#[test]
fn an_fd_handle_travels_back_from_the_child() {
    for method in METHODS {
        let p = common::builder(method).spawn(make_pipe, "inside".to_owned());
        let reader = join(p.unwrap()).unwrap();
        let text = common::read_to_end_within(reader.into_file());
        assert_eq!(text, b"inside", "{method:?}");
    }
}

fn checksum(data: Vec<u8>) -> (usize, u64) {
    (data.len(), data.iter().map(|&b| u64::from(b)).sum())
}

fn big(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[test]
fn large_arguments_and_results_travel_without_deadlock() {
    let n = 8 << 20;
    let expected: u64 = big(n).iter().map(|&b| u64::from(b)).sum();
    for method in METHODS {
        let p = common::builder(method).spawn(checksum, big(n)).unwrap();
        assert_eq!(join(p).unwrap(), (n, expected), "{method:?}");
        let p = common::builder(method).spawn(big, n).unwrap();
        assert_eq!(join(p).unwrap().len(), n, "{method:?}");
    }
}

#[test]
fn errors_read_as_short_lowercase_phrases() {
    let messages = [
        Error::Timeout.to_string(),
        Error::Disconnected.to_string(),
        Error::Exited { code: 2 }.to_string(),
        Error::ThreadedFork { threads: 3 }.to_string(),
        Error::Panicked { process: "p".to_owned(), location: None, message: "x".to_owned() }
            .to_string(),
    ];
    for m in messages {
        assert!(m.chars().next().unwrap().is_lowercase(), "{m}");
    }
    let os = Error::Os { op: "fork", address: None, source: std::io::Error::from_raw_os_error(11) };
    assert_eq!(os.to_string(), "could not fork");
    assert!(std::error::Error::source(&os).is_some());
}

#[test]
fn cpu_count_is_at_least_one() {
    assert!(multiproc::cpu_count() >= 1);
}

#[test]
fn a_large_result_does_not_block_a_parent_that_only_polls() {
    for method in METHODS {
        let p = common::builder(method).spawn(big, 4 << 20).unwrap();
        eventually(&format!("{method:?}: child with a 4 MiB result ends"), || !p.is_alive());
        assert_eq!(p.exit_code(), Some(0));
        assert_eq!(join(p).unwrap().len(), 4 << 20);
    }
}

fn fork_after_helper_threads(_: ()) -> u32 {
    // Dropping a running child's handle starts multiproc's reaper thread...
    let sleeper = Process::spawn(nap, 200).unwrap();
    drop(sleeper);
    // ...which must not make this (otherwise single-threaded) process refuse.
    let captured = 41;
    let p = Process::builder().fork_closure(move || captured + 1).unwrap();
    join(p).unwrap()
}

#[test]
fn the_closure_form_ignores_multiprocs_own_helper_threads() {
    assert_eq!(join(Process::spawn(fork_after_helper_threads, ()).unwrap()).unwrap(), 42);
    // A daemon child has a watcher thread of ours, too.
    let daemon = Process::builder().daemon(true).spawn(fork_after_helper_threads, ()).unwrap();
    assert_eq!(join(daemon).unwrap(), 42);
}

fn wait_for_event(event: multiproc::Event) {
    assert!(event.wait_timeout(LIMIT), "the test never set the event");
}

#[test]
fn active_children_lists_running_children_until_they_end() {
    let event = multiproc::Event::new().unwrap();
    let p = Process::builder().name("listed").spawn(wait_for_event, event.clone()).unwrap();
    let pid = p.pid();
    let listed = multiproc::active_children();
    let me = listed.iter().find(|c| c.pid() == pid).expect("a running child is listed");
    assert_eq!(me.name(), "listed");
    assert!(!me.daemon());
    assert!(me.is_alive());
    // Its handle may go: the child is still listed, and can be waited for.
    drop(p);
    assert!(multiproc::active_children().iter().any(|c| c.pid() == pid));
    event.set();
    assert!(me.wait_timeout(LIMIT).unwrap(), "the child did not end");
    assert!(!me.is_alive());
    eventually("the ended child leaves the list", || {
        multiproc::active_children().iter().all(|c| c.pid() != pid)
    });
}

fn about_my_parent(_: ()) -> (u32, bool, bool) {
    let parent = multiproc::parent_process().expect("a child has a parent");
    let ended = parent.wait_timeout(Duration::from_millis(1)).unwrap();
    (parent.pid(), parent.is_alive(), ended)
}

#[test]
fn parent_process_is_the_parent_in_a_child_and_none_in_the_main_process() {
    assert!(multiproc::parent_process().is_none());
    for method in METHODS {
        let p = common::builder(method).spawn(about_my_parent, ()).unwrap();
        assert_eq!(join(p).unwrap(), (std::process::id(), true, false), "{method:?}");
    }
}

fn outlive_parent(state: RawValue<u32>) {
    let parent = multiproc::parent_process().expect("a child has a parent");
    state.store(1);
    assert!(parent.wait_timeout(LIMIT).unwrap(), "the parent did not end");
    assert!(!parent.is_alive());
    state.store(2);
}

fn start_grandchild_and_return(state: RawValue<u32>) -> u32 {
    // Not a daemon, not joined: the rule is that it keeps running after
    // this function (this process's `main`) returns.
    // Returns at once: the grandchild still starts (this process waits, as
    // it ends, until its bootstrap is read).
    Process::spawn(outlive_parent, state).unwrap().pid()
}

#[test]
fn a_non_daemon_child_keeps_running_after_its_parent_returns_and_can_wait_for_it() {
    let done = RawValue::new(0u32).unwrap();
    let parent = Process::spawn(start_grandchild_and_return, done.clone()).unwrap();
    let grandchild = join(parent).unwrap();
    eventually("the grandchild saw its parent end", || done.load() == 2);
    eventually("the grandchild ended", || is_dead(grandchild));
}

fn default_method_after_set(method: StartMethod) -> (StartMethod, StartMethod) {
    multiproc::set_start_method(method);
    let child = Process::spawn(|x: u8| x, 0).unwrap();
    let used = child.start_method();
    join(child).unwrap();
    (multiproc::get_start_method(), used)
}

#[test]
fn set_start_method_sets_the_default_of_later_builders_in_that_process() {
    // In a child of its own: the default is process-wide, and this test
    // binary runs other tests at the same time.
    for method in METHODS {
        let p = Process::spawn(default_method_after_set, method).unwrap();
        assert_eq!(join(p).unwrap(), (method, method));
    }
    assert_eq!(multiproc::get_start_method(), StartMethod::Spawn);
}

fn comm(_: ()) -> String {
    std::fs::read_to_string("/proc/self/comm").unwrap().trim_end().to_owned()
}

#[test]
fn a_child_shows_in_ps_under_its_process_name() {
    for method in METHODS {
        let p = common::builder(method).name("worker-7").spawn(comm, ()).unwrap();
        assert_eq!(join(p).unwrap(), "worker-7", "{method:?}");
        // The kernel keeps 15 bytes of a longer name.
        let p = common::builder(method).name("a-rather-long-name").spawn(comm, ()).unwrap();
        assert_eq!(join(p).unwrap(), "a-rather-long-n", "{method:?}");
    }
}

/// Sends what the child writes to stderr (`err`) and panics.
fn panic_into(err: FdHandle) -> u8 {
    rustix::stdio::dup2_stderr(err.file()).unwrap();
    drop(err);
    let v: Vec<u8> = Vec::new();
    v[usize::from(v.is_empty()) + 2] // index out of bounds
}

/// Reads from `r` until the text holds `marker`, bounded by `LIMIT` (a
/// forked sibling may keep the pipe open: no end of stream to wait for).
fn read_until(mut r: impl std::io::Read + Send + 'static, marker: &'static str) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = r.read(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + LIMIT;
    let mut text = Vec::new();
    while !String::from_utf8_lossy(&text).contains(marker) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(more) => text.extend(more),
            Err(e) => panic!("{e:?} before {marker:?} in {:?}", String::from_utf8_lossy(&text)),
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[test]
fn a_panic_names_the_process_and_where_it_panicked() {
    for method in METHODS {
        let (reader, writer) = std::io::pipe().unwrap();
        let p = common::builder(method)
            .name("cruncher")
            .spawn(panic_into, FdHandle::new(writer))
            .unwrap();
        let pid = p.pid();
        let err = join(p).unwrap_err();
        let Error::Panicked { process, location, message } = &err else {
            panic!("{method:?}: expected a panic, got {err:?}")
        };
        assert_eq!(process, "cruncher");
        let location = location.as_deref().unwrap_or_default();
        assert!(location.starts_with("multiproc/tests/process.rs:"), "{location}");
        assert!(message.contains("index out of bounds"), "{message}");
        let text = err.to_string();
        assert!(
            text.starts_with("child process 'cruncher' panicked at multiproc/tests/"),
            "{text}"
        );
        // The child's own report names it too.
        let stderr = read_until(reader, "index out of bounds");
        assert!(
            stderr.contains(&format!("process 'cruncher' (pid {pid}) panicked at {location}")),
            "{method:?}: {stderr}"
        );
        assert!(!stderr.contains("<unnamed>"), "{stderr}");
    }
}
