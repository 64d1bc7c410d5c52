//! Forged bootstraps: every one is refused before any code of the program
//! runs, and the janitor removes nothing but shared-memory blocks.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::entry::EntryRef;
use super::{EXIT_BOOT_FAILED, Role};
use crate::os::{self, ExitStatus};
use crate::process::child::Boot;
use crate::process::current::ChildInfo;
use crate::transfer::{codec, frame};
use crate::{FdHandle, Process, StartMethod};

const LIMIT: Duration = Duration::from_secs(30);

/// The target every forged bootstrap asks for: leaves a mark if it runs.
fn touch(path: String) {
    std::fs::write(path, b"ran").expect("write the mark");
}

fn marker(test: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("multiproc-boot-{test}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn entry_of_touch() -> EntryRef {
    EntryRef::of(&touch).expect("an entry for touch")
}

/// Sends a well-formed bootstrap (as `spawn::start` does) naming `entry`,
/// with `mark` as the argument.
fn send_bootstrap(sock: &OwnedFd, entry: EntryRef, mark: &Path) {
    let info = ChildInfo {
        name: "forged".to_owned(),
        identity: vec![1],
        daemon: false,
        parent_pid: os::getpid(),
        start_method: StartMethod::Spawn,
        manager_keys: Default::default(),
        wait_policy: crate::WaitPolicy::default(),
    };
    let boot = Boot { exe: os::exe_identity().unwrap(), entry, info };
    let boot = postcard::to_allocvec(&boot).unwrap();
    let args = codec::encode(&mark.to_string_lossy().into_owned()).unwrap();
    let own = os::own_pidfd().unwrap();
    let len = (boot.len() as u32).to_le_bytes();
    // A child that already refused has closed its end.
    let _ = frame::send_frame(sock.as_fd(), &[&len, &boot, &args.bytes], &[own.as_fd()]);
}

/// Waits (bounded) for process `pid`, our child, to end.
fn exit_of(pid: u32) -> ExitStatus {
    let pidfd = os::pidfd_open(pid).expect("pidfd");
    let deadline = Instant::now() + LIMIT;
    loop {
        let ready = os::wait_readable(&[pidfd.as_fd()], Some(deadline)).expect("wait");
        if let Some(status) = os::try_reap(pidfd.as_fd()).expect("reap") {
            return status;
        }
        assert!(ready.is_some() || Instant::now() < deadline, "child {pid} did not end");
    }
}

/// Runs this test binary with the boot variable naming `sock` and `role`,
/// sends it the bootstrap for `touch(mark)` naming `entry`, and returns how
/// it ended.
fn run_forged(
    role: Role,
    sock: &OwnedFd,
    ours: &OwnedFd,
    entry: EntryRef,
    mark: &Path,
) -> ExitStatus {
    let pid = super::start(role, sock.as_fd()).expect("start the test binary");
    send_bootstrap(ours, entry, mark);
    exit_of(pid)
}

#[test]
fn a_bootstrap_from_our_parent_runs_its_entry() {
    // The control for the refusals below: the same bootstrap, sent the way
    // a parent sends it, does run the target.
    let mark = marker("control");
    let (ours, theirs) = os::stream_pair().unwrap();
    let status = run_forged(Role::Spawn, &theirs, &ours, entry_of_touch(), &mark);
    assert_eq!(status, ExitStatus::Exited(0));
    assert!(mark.exists(), "the target did not run");
    let _ = std::fs::remove_file(&mark);
}

#[test]
fn a_bootstrap_on_standard_input_is_refused() {
    let mark = marker("stdin");
    let (ours, theirs) = os::stream_pair().unwrap();
    // Reaped through its pidfd by `exit_of`.
    #[allow(clippy::zombie_processes)]
    let child = std::process::Command::new("/proc/self/exe")
        .env(super::BOOT_VAR, "spawn:0")
        .stdin(std::process::Stdio::from(theirs))
        .spawn()
        .expect("start the test binary");
    send_bootstrap(&ours, entry_of_touch(), &mark);
    let status = exit_of(child.id());
    assert_eq!(status, ExitStatus::Exited(EXIT_BOOT_FAILED));
    assert!(!mark.exists(), "a bootstrap on stdin ran code");
}

/// Makes a socket pair in this (child) process and hands both ends back, so
/// that the kernel records this process, not the test, as their maker.
fn pair_made_elsewhere(_: ()) -> (FdHandle, FdHandle) {
    let (a, b) = os::stream_pair().unwrap();
    (FdHandle::new(a), FdHandle::new(b))
}

fn foreign_pair() -> (OwnedFd, OwnedFd) {
    let maker = Process::spawn(pair_made_elsewhere, ()).unwrap();
    let (ours, theirs) = maker.join().unwrap();
    (OwnedFd::from(ours.into_file()), OwnedFd::from(theirs.into_file()))
}

#[test]
fn a_bootstrap_through_a_socket_made_by_another_process_is_refused() {
    let mark = marker("foreign");
    let (ours, theirs) = foreign_pair();
    let status = run_forged(Role::Spawn, &theirs, &ours, entry_of_touch(), &mark);
    assert_eq!(status, ExitStatus::Exited(EXIT_BOOT_FAILED));
    assert!(!mark.exists(), "a stranger's bootstrap ran code");
}

#[test]
fn a_bootstrap_naming_anything_but_an_entry_is_refused() {
    let entry = entry_of_touch();
    let raw_code = touch as fn(String) as usize;
    let forged = [
        ("inside an entry", entry.shifted(8)),
        ("misaligned", entry.shifted(1)),
        ("the raw code of the target", EntryRef::to_address(raw_code)),
        ("far away", entry.shifted(1 << 40)),
        ("the anchor", EntryRef::to_address(0)),
        ("before the image", entry.shifted(i64::MIN)),
    ];
    for (what, forged) in forged {
        let mark = marker("entries");
        let (ours, theirs) = os::stream_pair().unwrap();
        let status = run_forged(Role::Spawn, &theirs, &ours, forged, &mark);
        assert_eq!(status, ExitStatus::Exited(EXIT_BOOT_FAILED), "{what}");
        assert!(!mark.exists(), "{what}: code ran");
    }
}

#[test]
fn a_malformed_boot_variable_is_refused() {
    for value in ["spawn", "spawn:", "spawn:+5", "spawn:05", "spawn:-1", "shell:5", "janitor:x"] {
        let status = std::process::Command::new("/proc/self/exe")
            .env(super::BOOT_VAR, value)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run the test binary");
        assert_eq!(status.code(), Some(EXIT_BOOT_FAILED), "{value}");
    }
}

fn stranger_file(test: &str) -> PathBuf {
    let path = marker(test);
    std::fs::write(&path, b"keep me").unwrap();
    path
}

fn send_path(control: &OwnedFd, path: &Path) {
    let file = std::fs::File::open(path).unwrap();
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    frame::send_frame(control.as_fd(), &[bytes], &[file.as_fd()]).unwrap();
}

#[test]
fn a_janitor_started_by_a_stranger_removes_nothing() {
    let victim = stranger_file("janitor-foreign");
    let (ours, theirs) = foreign_pair();
    let pid = super::start(Role::Janitor, theirs.as_fd()).unwrap();
    let _ = std::panic::catch_unwind(|| send_path(&ours, &victim));
    assert_eq!(exit_of(pid), ExitStatus::Exited(EXIT_BOOT_FAILED));
    drop(ours);
    assert!(victim.exists());
    let _ = std::fs::remove_file(&victim);
}

#[test]
fn the_janitor_removes_nothing_but_unused_shared_memory_blocks() {
    let victim = stranger_file("janitor-parent");
    let block = PathBuf::from(format!("/dev/shm/multiproc-boot-test-{}", std::process::id()));
    std::fs::write(&block, b"").unwrap();
    let (ours, theirs) = os::stream_pair().unwrap();
    let pid = super::start(Role::Janitor, theirs.as_fd()).unwrap();
    // The process we started forks the janitor and exits at once.
    assert_eq!(exit_of(pid), ExitStatus::Exited(0));
    send_path(&ours, &victim);
    send_path(&ours, &block);
    // Messages are handled in order: once the block (unused) is gone, the
    // janitor has decided about the stranger's file too.
    let deadline = Instant::now() + LIMIT;
    while block.exists() {
        assert!(Instant::now() < deadline, "the janitor did not remove an unused block");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(ours);
    assert!(victim.exists(), "the janitor removed a file outside the shared-memory directory");
    let _ = std::fs::remove_file(&victim);
}
