//! Processes: spawning the current executable, forking, pidfds, signals, exit.
#![allow(unsafe_code)]

use std::ffi::{CString, OsString};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, WaitId, WaitIdOptions, pidfd_send_signal, waitid};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    /// It called `exit` with this code.
    Exited(i32),
    /// A signal with this number ended it.
    Signaled(i32),
}

impl ExitStatus {
    /// Python's `exitcode`: the exit status, or minus the signal number.
    pub(crate) fn code(self) -> i32 {
        match self {
            Self::Exited(code) => code,
            Self::Signaled(signal) => -signal,
        }
    }

    /// The 8-byte form the fork server sends to a child's parent.
    pub(crate) fn to_bytes(self) -> [u8; 8] {
        let (kind, value) = match self {
            Self::Exited(code) => (0i32, code),
            Self::Signaled(signal) => (1i32, signal),
        };
        let mut out = [0; 8];
        out[..4].copy_from_slice(&kind.to_le_bytes());
        out[4..].copy_from_slice(&value.to_le_bytes());
        out
    }

    /// Reads the form written by [`ExitStatus::to_bytes`]; `None` if malformed.
    pub(crate) fn from_bytes(bytes: [u8; 8]) -> Option<Self> {
        let kind = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let value = i32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        match kind {
            0 => Some(Self::Exited(value)),
            1 if value > 0 => Some(Self::Signaled(value)),
            _ => None,
        }
    }
}

/// The signals multiproc sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// `SIGTERM`.
    Term,
    /// `SIGKILL`.
    Kill,
}

/// This process's id.
pub(crate) fn getpid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get().unsigned_abs()
}

/// The id of the process that is this process's parent now (0 if none).
pub(crate) fn getppid() -> u32 {
    rustix::process::getppid().map_or(0, |pid| pid.as_raw_nonzero().get().unsigned_abs())
}

fn to_pid(pid: u32) -> io::Result<Pid> {
    i32::try_from(pid).ok().and_then(Pid::from_raw).ok_or_else(|| io::Error::from(Errno::SRCH))
}

/// A pidfd for process `pid`: pollable (readable once it exited) and safe
/// from pid reuse for signals.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    with_fd_room(|| pidfd_open_once(pid))
}

fn pidfd_open_once(pid: u32) -> io::Result<OwnedFd> {
    Ok(rustix::process::pidfd_open(to_pid(pid)?, PidfdFlags::empty())?)
}

/// Whether process `pid` has ended (exited, or killed: a zombie counts as
/// ended) or does not exist. `false` when it cannot tell.
pub(crate) fn process_ended(pid: u32) -> bool {
    match pidfd_open_once(pid) {
        Ok(pidfd) => process_ended_fd(pidfd.as_fd()),
        Err(e) => e.raw_os_error() == Some(libc::ESRCH),
    }
}

/// When process `pid` started, in clock ticks since boot (`/proc/<pid>/stat`
/// field 22), or `None` if it cannot be read.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything.
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Runs `f` when this process calls `exit` (or returns from `main`); not
/// on `_exit` ([`exit_now`]) or a signal.
pub(crate) fn at_exit(f: extern "C" fn()) {
    // SAFETY: registers a function pointer with no precondition; `exit`
    // calls it on the exiting thread.
    unsafe { libc::atexit(f) };
}

/// Whether the process behind `pidfd` has ended (a zombie counts).
pub(crate) fn process_ended_fd(pidfd: BorrowedFd<'_>) -> bool {
    let mut fds = [rustix::event::PollFd::new(&pidfd, rustix::event::PollFlags::IN)];
    let zero = rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 };
    matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
}

/// A pidfd for this process, to hand to children that must watch us.
pub(crate) fn own_pidfd() -> io::Result<OwnedFd> {
    pidfd_open(getpid())
}

/// Sends `signal` to the process behind `pidfd`; a process that already ended
/// is not an error.
pub(crate) fn send_signal(pidfd: BorrowedFd<'_>, signal: Signal) -> io::Result<()> {
    let signal = match signal {
        Signal::Term => rustix::process::Signal::TERM,
        Signal::Kill => rustix::process::Signal::KILL,
    };
    match pidfd_send_signal(pidfd, signal) {
        Ok(()) | Err(Errno::SRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reaps the child behind `pidfd` if it has ended; `None` while it runs.
///
/// Only the parent of a process can reap it.
pub(crate) fn try_reap(pidfd: BorrowedFd<'_>) -> io::Result<Option<ExitStatus>> {
    let status = loop {
        match waitid(WaitId::PidFd(pidfd), WaitIdOptions::EXITED | WaitIdOptions::NOHANG) {
            Err(Errno::INTR) => continue,
            other => break other?,
        }
    };
    let Some(status) = status else { return Ok(None) };
    if let Some(code) = status.exit_status() {
        return Ok(Some(ExitStatus::Exited(code)));
    }
    if let Some(signal) = status.terminating_signal() {
        return Ok(Some(ExitStatus::Signaled(signal)));
    }
    // waitid with NOHANG reports "no state change" as a zeroed status.
    Ok(None)
}

/// Identity of the running executable file (device, inode).
pub(crate) fn exe_identity() -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata("/proc/self/exe")?;
    Ok((meta.dev(), meta.ino()))
}

/// Identity of the executable file that process `pid` runs (device, inode).
pub(crate) fn process_exe_identity(pid: u32) -> io::Result<(u64, u64)> {
    let meta = std::fs::metadata(format!("/proc/{pid}/exe"))?;
    Ok((meta.dev(), meta.ino()))
}

/// This process's real and effective user ids.
pub(crate) fn uids() -> (u32, u32) {
    (rustix::process::getuid().as_raw(), rustix::process::geteuid().as_raw())
}

/// The thread ids of this process's threads.
pub(crate) fn thread_ids() -> io::Result<Vec<u32>> {
    let mut tids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")? {
        if let Some(tid) = task?.file_name().to_str().and_then(|name| name.parse().ok()) {
            tids.push(tid);
        }
    }
    Ok(tids)
}

/// Kills and reaps a child we could not get a pidfd for, so that it
/// leaves no zombie and has no effect.
pub(crate) fn kill_and_reap(pid: u32) {
    let Ok(pid) = to_pid(pid) else { return };
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
}

/// Restores the default `SIGCHLD` disposition, so that our children are not
/// reaped behind our back when the parent had it ignored.
pub(crate) fn default_sigchld() {
    // SAFETY: setting a signal's disposition to the default installs no
    // handler; nothing else in this single-threaded process relies on it.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
}

/// Whether this program runs with raised privileges (setuid, capabilities):
/// then it must not take orders from its environment.
pub(crate) fn is_privileged() -> bool {
    // SAFETY: getauxval reads the auxiliary vector; no precondition.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// The base address of the loaded object (executable or library) that
/// contains `addr`, if any.
pub(crate) fn object_base(addr: usize) -> Option<usize> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::uninit();
    // SAFETY: dladdr only reads the loader's tables and fills `info`.
    let found = unsafe { libc::dladdr(addr as *const libc::c_void, info.as_mut_ptr()) };
    if found == 0 {
        return None;
    }
    // SAFETY: dladdr returned non-zero, so it initialised `info`.
    let info = unsafe { info.assume_init() };
    Some(info.dli_fbase as usize)
}

/// Starts a new process running this same executable, with `env_entry`
/// (`NAME=value`) added to a copy of our environment and `keep` left open
/// (at the same number) in the child.
///
/// Uses `posix_spawn`, which glibc implements with `clone(CLONE_VM |
/// CLONE_VFORK)`: fast, and safe in a multi-threaded parent because nothing
/// but `exec` runs in the child before the new image. All other descriptors
/// stay close-on-exec.
pub(crate) fn spawn_self(env_name: &str, env_value: &str, keep: BorrowedFd<'_>) -> io::Result<u32> {
    let argv0 = std::env::args_os().next().unwrap_or_else(|| OsString::from("multiproc-child"));
    let argv0 = CString::new(argv0.into_vec()).unwrap_or_else(|_| c"multiproc-child".to_owned());
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(key, _)| key != env_name)
        .filter_map(|(key, value)| {
            let mut entry = key.into_vec();
            entry.push(b'=');
            entry.extend(value.into_vec());
            CString::new(entry).ok()
        })
        .collect();
    env.push(CString::new(format!("{env_name}={env_value}")).map_err(io::Error::other)?);
    let mut envp: Vec<*mut libc::c_char> = env.iter().map(|e| e.as_ptr().cast_mut()).collect();
    envp.push(std::ptr::null_mut());
    let argv: [*mut libc::c_char; 2] = [argv0.as_ptr().cast_mut(), std::ptr::null_mut()];
    let fd: RawFd = keep.as_raw_fd();

    // SAFETY: the file-action and attribute objects are initialised before use
    // and destroyed on every path; `argv` and `envp` are null-terminated arrays
    // of pointers into `argv0` and `env`, which outlive the call; `fd` is open
    // for the duration (borrowed). posix_spawn does not keep any pointer.
    unsafe {
        let mut actions = std::mem::MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
        let rc = libc::posix_spawn_file_actions_init(actions.as_mut_ptr());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        let mut actions = actions.assume_init();
        let mut attr = std::mem::MaybeUninit::<libc::posix_spawnattr_t>::uninit();
        let rc = libc::posix_spawnattr_init(attr.as_mut_ptr());
        if rc != 0 {
            libc::posix_spawn_file_actions_destroy(&mut actions);
            return Err(io::Error::from_raw_os_error(rc));
        }
        let mut attr = attr.assume_init();
        let mut empty = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(empty.as_mut_ptr());
        let mut defaults = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(defaults.as_mut_ptr());
        libc::sigaddset(defaults.as_mut_ptr(), libc::SIGCHLD);
        let mut rc = libc::posix_spawn_file_actions_adddup2(&mut actions, fd, fd);
        if rc == 0 {
            rc = libc::posix_spawnattr_setsigmask(&mut attr, empty.as_ptr());
        }
        if rc == 0 {
            rc = libc::posix_spawnattr_setsigdefault(&mut attr, defaults.as_ptr());
        }
        if rc == 0 {
            let flags = libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
            rc = libc::posix_spawnattr_setflags(&mut attr, flags as _);
        }
        let mut pid: libc::pid_t = 0;
        if rc == 0 {
            rc = libc::posix_spawn(
                &mut pid,
                c"/proc/self/exe".as_ptr(),
                &actions,
                &attr,
                argv.as_ptr(),
                envp.as_ptr(),
            );
        }
        libc::posix_spawnattr_destroy(&mut attr);
        libc::posix_spawn_file_actions_destroy(&mut actions);
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(pid.unsigned_abs())
    }
}

/// Which side of a `fork` we are on.
#[derive(Debug)]
pub(crate) enum Forked {
    /// The new process.
    Child,
    /// The original process; the new one has this id.
    Parent(u32),
}

/// Forks the calling process.
///
/// # Safety
///
/// Only the calling thread exists in the child. Any lock another thread held
/// at that instant stays held there for ever, and data another thread was
/// changing may be half-changed. The caller must make sure the child touches
/// no such state before it exits (glibc re-initialises the allocator's locks,
/// so allocating is fine; stdio locks must be held by the caller across the
/// call).
pub(crate) unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller upholds the contract above; fork itself has no other
    // precondition.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            super::futex::note_fork_in_child();
            Ok(Forked::Child)
        }
        pid => Ok(Forked::Parent(pid.unsigned_abs())),
    }
}

/// Ends this process at once with `code`, after flushing Rust's standard
/// output. Runs no `atexit` handler, as a forked child must not run its
/// parent's.
pub(crate) fn exit_now(code: i32) -> ! {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    // SAFETY: `_exit` ends the process without touching any memory of ours;
    // it has no precondition.
    unsafe { libc::_exit(code) }
}

/// Ends this process with `SIGKILL`.
pub(crate) fn kill_self() -> ! {
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    exit_now(137)
}

/// Descriptor `raw`, named in the boot variable, borrowed to be checked
/// before it is adopted: `None` if it is not open.
pub(crate) fn borrow_inherited_fd(raw: RawFd) -> Option<BorrowedFd<'static>> {
    if raw < 0 {
        return None;
    }
    // SAFETY: F_GETFD only inspects the descriptor table.
    if unsafe { libc::fcntl(raw, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: `raw` is open (checked just above). This runs before `main`,
    // on the single thread of a fresh image, so nothing can close it while
    // the checks look at it; the borrow is only used for those checks
    // (socket options), which neither close nor change it.
    Some(unsafe { BorrowedFd::borrow_raw(raw) })
}

/// Takes ownership of the descriptor a parent left open for us across `exec`.
///
/// Returns `None` if `raw` is not an open descriptor. Marks it close-on-exec
/// again so that our own children do not inherit it.
pub(crate) fn adopt_inherited_fd(raw: RawFd) -> Option<OwnedFd> {
    if raw < 0 {
        return None;
    }
    // SAFETY: F_GETFD only inspects the descriptor table.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFD) };
    if flags < 0 {
        return None;
    }
    // SAFETY: this runs once, before `main`, on the descriptor number named
    // in the boot variable, after `boot::trust` checked that its other end
    // is held by our parent (so our parent made it for us: nothing in this
    // fresh image has claimed it). F_SETFD only changes its flags.
    unsafe {
        libc::fcntl(raw, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        Some(OwnedFd::from_raw_fd(raw))
    }
}

/// Removes `name` from the environment and returns the value it had.
///
/// # Safety
///
/// No other thread may read or change the environment during the call; this
/// holds before `main`, when the process has a single thread.
pub(crate) unsafe fn take_env(name: &str) -> Option<OsString> {
    let value = std::env::var_os(name)?;
    // SAFETY: the caller guarantees no other thread touches the environment.
    unsafe { std::env::remove_var(name) };
    Some(value)
}

/// Detaches this process from its parent's session and terminal, and points
/// its standard streams at /dev/null (for a long-lived helper that must not
/// keep a pipe of its starter open or get its terminal's signals).
pub(crate) fn detach() {
    let _ = rustix::process::setsid();
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        for target in 0..=2 {
            // SAFETY: dup2 onto the standard descriptors replaces them
            // atomically; nothing in this helper holds them as Rust objects.
            unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), target) };
        }
    }
}

/// Closes every descriptor of this process except the standard streams and
/// `keep`.
pub(crate) fn close_other_fds(keep: BorrowedFd<'_>) {
    let keep = keep.as_raw_fd() as u32;
    // SAFETY: close_range only closes descriptors; this single-threaded
    // helper owns every descriptor it has and uses only `keep` afterwards.
    unsafe {
        if keep > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, keep - 1, 0u32);
        }
        libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0u32);
    }
}

/// Runs `open`, which makes a descriptor; if this process has run out of
/// descriptors (`EMFILE`), raises its soft limit to the hard limit (every
/// shared object holds a descriptor) and tries once more.
///
/// The limit is raised only when a process actually runs short, because
/// the raised soft limit is inherited by every program it runs later, and
/// some (those that use `select`) break with descriptors above 1024.
pub(crate) fn with_fd_room<T>(mut open: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    match open() {
        Err(e) if e.raw_os_error() == Some(libc::EMFILE) && raise_fd_limit() => open(),
        other => other,
    }
}

/// Raises the soft limit on open descriptors once those received come near
/// it (`highest` is the largest number just received; numbers are given out
/// lowest first, so it tells how many are open). A receive cannot be
/// retried as an open can: the kernel drops the descriptors that do not fit.
pub(crate) fn make_fd_room_after(highest: RawFd) {
    // One `getrlimit` per message that brought descriptors (not cached: the
    // program may change its limit).
    let soft =
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(u64::MAX);
    if u64::try_from(highest).unwrap_or(0).saturating_mul(4) >= soft.saturating_mul(3) {
        raise_fd_limit();
    }
}

/// Raises this process's soft limit on open descriptors to the hard limit;
/// true if it rose.
pub(crate) fn raise_fd_limit() -> bool {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if limit.current >= limit.maximum {
        return false;
    }
    let raised = rustix::process::Rlimit { current: limit.maximum, maximum: limit.maximum };
    rustix::process::setrlimit(rustix::process::Resource::Nofile, raised).is_ok()
}

/// Waits (blocking) for our child behind `pidfd` to end and reaps it.
pub(crate) fn reap_blocking(pidfd: BorrowedFd<'_>) {
    loop {
        match waitid(WaitId::PidFd(pidfd), WaitIdOptions::EXITED) {
            Err(Errno::INTR) => continue,
            _ => return,
        }
    }
}

/// Names the calling thread (`/proc/self/comm`, what `ps` and `top` show
/// for the process when it is the main thread). The kernel keeps 15 bytes:
/// a longer name is cut at a character boundary; a name with a NUL is cut
/// there.
pub(crate) fn set_thread_name(name: &str) -> io::Result<()> {
    let mut end = name.find('\0').unwrap_or(name.len()).min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let name = std::ffi::CString::new(&name[..end]).map_err(io::Error::other)?;
    rustix::thread::set_name(&name).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use crate::{Process, Value};

    fn soft_limit() -> u64 {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(u64::MAX)
    }

    /// In a child: the soft limit before and after making shared objects.
    fn limit_around_objects(count: usize) -> (u64, u64, usize) {
        let before = soft_limit();
        let values: Vec<Value<u64>> = (0..count).map(|i| Value::new(i as u64).unwrap()).collect();
        (before, soft_limit(), values.len())
    }

    #[test]
    fn the_descriptor_limit_stays_as_it_was_while_there_is_room() {
        let (before, after, made) = Process::spawn(plenty_of_room, 20).unwrap().join().unwrap();
        assert_eq!(made, 20);
        assert_eq!(before, after, "the soft limit was raised without need");
    }

    /// In a child: sets the soft limit `room` above what is open, then
    /// makes `count` objects.
    fn with_room(room: u64, count: usize) -> (u64, u64, usize) {
        let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        let low = rustix::process::Rlimit {
            current: Some(open + room),
            maximum: rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum,
        };
        rustix::process::setrlimit(rustix::process::Resource::Nofile, low).unwrap();
        limit_around_objects(count)
    }

    fn run_short_of_descriptors(count: usize) -> (u64, u64, usize) {
        with_room(8, count)
    }

    fn plenty_of_room(count: usize) -> (u64, u64, usize) {
        with_room(256, count)
    }

    fn send_values(args: (crate::Connection<Value<u64>>, usize)) {
        let (tx, count) = args;
        for i in 0..count {
            tx.send(&Value::new(i as u64).unwrap()).unwrap();
        }
    }

    /// In a child with little room: receives (and keeps) `count` shared
    /// values that another process makes.
    fn receive_many(count: usize) -> usize {
        let (tx, rx) = crate::pipe::<Value<u64>>().unwrap();
        let sender = Process::spawn(send_values, (tx, count)).unwrap();
        let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        let low = rustix::process::Rlimit {
            current: Some(open + 64),
            maximum: rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum,
        };
        rustix::process::setrlimit(rustix::process::Resource::Nofile, low).unwrap();
        let kept: Vec<Value<u64>> = (0..count)
            .map(|_| rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap())
            .collect();
        sender.join().unwrap();
        kept.len()
    }

    #[test]
    fn receiving_many_descriptors_makes_room_for_them() {
        assert_eq!(Process::spawn(receive_many, 300).unwrap().join().unwrap(), 300);
    }

    #[test]
    fn running_short_of_descriptors_raises_the_limit() {
        let (before, after, made) =
            Process::spawn(run_short_of_descriptors, 64).unwrap().join().unwrap();
        assert_eq!(made, 64);
        assert!(after > before, "the soft limit did not rise ({before} -> {after})");
    }
}
