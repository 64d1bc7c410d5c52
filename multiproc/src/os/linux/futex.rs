//! Futexes shared between processes, thread ids, and thread liveness.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags};
use rustix::thread::futex;

/// Sleeps while `*word == expected`, at most `timeout`.
///
/// Returns `false` only when the timeout expired; a wake-up, a changed value
/// or an interruption return `true` (the caller re-checks its condition).
/// The futex is not private: it works across processes sharing the memory.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> bool {
    let timeout = timeout.map(|t| rustix::time::Timespec {
        tv_sec: t.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: t.subsec_nanos().into(),
    });
    !matches!(
        futex::wait(word, futex::Flags::empty(), expected, timeout.as_ref()),
        Err(Errno::TIMEDOUT)
    )
}

/// Wakes at most `count` threads (of any process) sleeping on `word`.
pub(crate) fn futex_wake(word: &AtomicU32, count: u32) -> usize {
    futex::wake(word, futex::Flags::empty(), count).unwrap_or(0)
}

/// Bumped in the child of every `fork`, so that cached thread ids are
/// refreshed there.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

extern "C" fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

thread_local! {
    static TID: Cell<(u64, u32)> = const { Cell::new((u64::MAX, 0)) };
}

/// The calling thread's id (as `gettid`), cached; correct after `fork`.
#[inline]
pub(crate) fn current_tid() -> u32 {
    let generation = FORK_GENERATION.load(Ordering::Relaxed);
    let (cached_generation, tid) = TID.with(Cell::get);
    if cached_generation == generation {
        return tid;
    }
    refresh_tid(generation)
}

#[cold]
fn refresh_tid(generation: u64) -> u32 {
    ATFORK.call_once(|| {
        // SAFETY: the handler only does a relaxed atomic increment, which is
        // async-signal-safe as a fork child handler must be.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
    let tid = rustix::thread::gettid().as_raw_nonzero().get().unsigned_abs();
    TID.with(|cell| cell.set((generation, tid)));
    tid
}

/// A number that changes in the child of every `fork`: state cached per
/// process (a manager session) is stale when it differs.
pub(crate) fn fork_generation() -> u64 {
    current_tid(); // installs the fork handler that bumps the generation
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// Marks a fork in the child (for forks made by multiproc itself, which
/// also run the `pthread_atfork` handler; this is belt and braces).
pub(crate) fn note_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// `PIDFD_THREAD` (Linux 6.9): a pidfd for one thread rather than a process.
const PIDFD_THREAD: u32 = libc::O_EXCL as u32;

/// Whether the thread with id `tid` still runs (in any process).
///
/// A thread that exited but whose process is not reaped yet counts as dead.
/// Only a definite answer from the kernel ("no such thread", or its pidfd
/// reporting the exit) makes a thread dead: when the question cannot be
/// answered (out of descriptors, /proc missing, a seccomp filter), the thread
/// is taken to be alive and the caller asks again later. Declaring a live
/// owner dead would hand its lock to a second holder.
pub(crate) fn thread_alive(tid: u32) -> bool {
    let Some(pid) = i32::try_from(tid).ok().and_then(Pid::from_raw) else { return true };
    match rustix::process::pidfd_open(pid, PidfdFlags::from_bits_retain(PIDFD_THREAD)) {
        Ok(pidfd) => {
            let mut fds = [rustix::event::PollFd::new(&pidfd, rustix::event::PollFlags::IN)];
            let zero = rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 };
            !matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
        }
        Err(Errno::SRCH) => false,
        // No PIDFD_THREAD (Linux < 6.9), no pidfd_open, or filtered.
        Err(Errno::INVAL | Errno::NOSYS | Errno::PERM | Errno::ACCESS) => thread_alive_by_kill(tid),
        Err(_) => true,
    }
}

/// Fallback for kernels without `PIDFD_THREAD`: `kill(tid, 0)` (needs no
/// descriptor), refined by `/proc/<tid>/stat` to see a zombie.
fn thread_alive_by_kill(tid: u32) -> bool {
    // SAFETY: signal 0 performs only the existence and permission checks.
    let rc = unsafe { libc::kill(tid as libc::pid_t, 0) };
    if rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{tid}/stat")) {
        Ok(stat) => {
            let state =
                stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z' | 'X'))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(_) => true,
    }
}
