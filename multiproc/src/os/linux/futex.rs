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

/// The most words [`futex_wait_any`] waits on (the kernel's limit).
const WAIT_ANY_MAX: usize = 128;

/// Sleeps while every `(word, expected)` of `words` holds, at most
/// `timeout` (Linux's `futex_waitv`): `false` only when the timeout
/// expired. Where the kernel has no `futex_waitv` (before 5.16), or for
/// more than [`WAIT_ANY_MAX`] words, it sleeps on the first word for at
/// most a millisecond, so that the caller polls the others.
pub(crate) fn futex_wait_any(words: &[(&AtomicU32, u32)], timeout: Option<Duration>) -> bool {
    static MISSING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let Some(&(first, first_expected)) = words.first() else { return true };
    let fallback = |timeout: Option<Duration>| {
        let slice = Duration::from_millis(1);
        futex_wait(first, first_expected, Some(timeout.map_or(slice, |t| t.min(slice))))
            || timeout.is_none_or(|t| t > slice)
    };
    if words.len() > WAIT_ANY_MAX || MISSING.load(Ordering::Relaxed) {
        return fallback(timeout);
    }
    let waiters: Vec<futex::Wait> = words
        .iter()
        .map(|&(word, expected)| {
            let mut wait = futex::Wait::new();
            wait.val = u64::from(expected);
            wait.uaddr = futex::WaitPtr::new(word.as_ptr().cast());
            wait.flags = futex::WaitFlags::SIZE_U32;
            wait
        })
        .collect();
    // The timeout of `futex_waitv` is absolute, on the monotonic clock.
    let until = timeout.map(|t| {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let nanos = now.tv_nsec as u128 + u128::from(t.subsec_nanos());
        rustix::time::Timespec {
            tv_sec: now
                .tv_sec
                .saturating_add(t.as_secs().try_into().unwrap_or(i64::MAX))
                .saturating_add((nanos / 1_000_000_000) as i64),
            tv_nsec: (nanos % 1_000_000_000) as i64,
        }
    });
    match futex::waitv(
        &waiters,
        futex::WaitvFlags::empty(),
        until.as_ref(),
        rustix::time::ClockId::Monotonic,
    ) {
        Err(Errno::TIMEDOUT) => false,
        Err(Errno::NOSYS) => {
            MISSING.store(true, Ordering::Relaxed);
            fallback(timeout)
        }
        _ => true,
    }
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
    static TID: Cell<(u64, u32, u32)> = const { Cell::new((u64::MAX, 0, 0)) };
}

/// The calling thread's id (as `gettid`), cached; correct after `fork`.
#[inline]
pub(crate) fn current_tid() -> u32 {
    current_ids().0
}

/// The calling thread's *owner id* (see [`owner_alive`]), cached.
#[inline]
pub(crate) fn current_owner_id() -> u32 {
    current_ids().1
}

#[inline]
fn current_ids() -> (u32, u32) {
    let generation = FORK_GENERATION.load(Ordering::Relaxed);
    let (cached_generation, tid, id) = TID.with(Cell::get);
    if cached_generation == generation {
        return (tid, id);
    }
    refresh_ids(generation)
}

#[cold]
fn refresh_ids(generation: u64) -> (u32, u32) {
    ATFORK.call_once(|| {
        // SAFETY: the handler only does a relaxed atomic increment, which is
        // async-signal-safe as a fork child handler must be.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
    let tid = rustix::thread::gettid().as_raw_nonzero().get().unsigned_abs();
    // A thread's start time never changes; if it cannot be read (or /proc
    // is not this process's own), tag 0: an owner whose tag cannot be
    // checked is never declared dead by it.
    let tag = if proc_is_ours() { start_tag(tid).unwrap_or(0) } else { 0 };
    let id = (tid & OWNER_TID_MASK) | (tag << OWNER_TID_BITS);
    TID.with(|cell| cell.set((generation, tid, id)));
    (tid, id)
}

/// Thread ids fit in 22 bits (the kernel's `PID_MAX_LIMIT` is 2^22).
const OWNER_TID_BITS: u32 = 22;
const OWNER_TID_MASK: u32 = (1 << OWNER_TID_BITS) - 1;
/// The tag beside the thread id in an owner id: 9 bits.
const OWNER_TAG_MASK: u32 = (1 << 9) - 1;

/// Whether `/proc` shows this process's own PID namespace (it does not, for
/// instance, after `unshare --pid --fork` without a new `/proc` mount): only
/// then do its start times describe the threads our ids name.
fn proc_is_ours() -> bool {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|target| target.to_str()?.parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id())
}

/// A 9-bit digest of when thread `tid` started (`/proc/<tid>/stat`, field
/// 22, in clock ticks since boot), or `None` if it cannot be read.
fn start_tag(tid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{tid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces and parentheses)
    // start at field 3; the start time is field 22.
    let start: u64 = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()?;
    // 1..=511 (0 stays free to mean "unknown"): threads started less than
    // 511 ticks (5 s) apart always differ; later ones do with odds 510/511.
    Some((start % u64::from(OWNER_TAG_MASK)) as u32 + 1)
}

/// Whether the owner named by `id` (an owner id from [`current_owner_id`]:
/// a thread id and a digest of that thread's start time) still runs.
///
/// The digest tells a reused thread id from the owner that died: a thread
/// that now has the owner's id but started at another time is not the
/// owner. Like [`thread_alive`], this answers "dead" only when the kernel
/// says so definitely; a live owner is never declared dead. Owner ids are
/// only meaningful within one PID namespace, which is why shared objects
/// refuse to cross PID namespaces (see `shm::segment`).
pub(crate) fn owner_alive(id: u32) -> bool {
    let tid = id & OWNER_TID_MASK;
    let tag = (id >> OWNER_TID_BITS) & OWNER_TAG_MASK;
    if !thread_alive(tid) {
        return false;
    }
    // Tag 0 means "could not be read": never a reason to declare death. Nor
    // is a start time read through a /proc that is not ours.
    tag == 0 || !proc_is_ours() || !matches!(start_tag(tid), Some(now) if now != tag)
}

/// The identity of the namespaces that give thread ids and start times
/// their meaning: the inodes of `/proc/self/ns/pid` and `/proc/self/ns/time`,
/// or `None` if they cannot be read.
///
/// Thread ids (and so lock owners) mean something else in another PID
/// namespace, and start times are shifted in another time namespace: in
/// either case a live owner could look dead. Shared objects therefore stay
/// among processes of the same namespaces, and need `/proc` to know them.
pub(crate) fn namespaces() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    // A process never changes its own namespaces, but a child can be in
    // others than its parent (which `unshare`d): cached per fork, in atomics
    // (a lock could be held by another thread at a fork).
    static GENERATION: AtomicU64 = AtomicU64::new(u64::MAX);
    static PID_NS: AtomicU64 = AtomicU64::new(0);
    static TIME_NS: AtomicU64 = AtomicU64::new(0);
    let generation = fork_generation();
    if GENERATION.load(Ordering::Acquire) == generation {
        return Some((PID_NS.load(Ordering::Relaxed), TIME_NS.load(Ordering::Relaxed)));
    }
    let ino = |name: &str| std::fs::metadata(format!("/proc/self/ns/{name}")).map(|m| m.ino());
    let ids = match (ino("pid"), ino("time")) {
        (Ok(pid), Ok(time)) => (pid, time),
        // Kernels before 5.6 have no time namespaces: only one time.
        (Ok(pid), Err(e)) if e.kind() == std::io::ErrorKind::NotFound => (pid, 0),
        _ => return None,
    };
    // Racing threads store the same values.
    PID_NS.store(ids.0, Ordering::Relaxed);
    TIME_NS.store(ids.1, Ordering::Relaxed);
    GENERATION.store(generation, Ordering::Release);
    Some(ids)
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
    // It exists (or is another user's: EPERM). /proc may hide it
    // (`hidepid`), so only a readable entry can tell a zombie.
    match std::fs::read_to_string(format!("/proc/{tid}/stat")) {
        Ok(stat) => {
            let state =
                stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z' | 'X'))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && rc == 0 => false,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_id_names_this_thread_and_its_start() {
        let id = current_owner_id();
        assert_eq!(id & OWNER_TID_MASK, current_tid());
        let tag = id >> OWNER_TID_BITS;
        assert!((1..=OWNER_TAG_MASK).contains(&tag), "tag {tag}");
        assert!(owner_alive(id));
        // The same thread id with another start time: a dead owner whose id
        // this thread reuses.
        let other = (id & OWNER_TID_MASK) | ((tag % OWNER_TAG_MASK + 1) << OWNER_TID_BITS);
        assert!(!owner_alive(other));
    }
}
