//! The janitor: removes named shared-memory blocks once nobody uses them,
//! even when every user was killed.
//!
//! Every process that has a block open holds a *shared* `flock` on its file
//! (through one open file description, which children that receive the
//! handle share). The janitor, a small detached process started on a
//! process's first `SharedMemory::create`, keeps its own open file
//! description of each block it was told about and, in one thread per block,
//! waits for an *exclusive* `flock`: the kernel grants it once every shared
//! lock is gone, which happens when the last user closes the block or dies,
//! by `SIGKILL` or otherwise. The janitor then removes the name (if it still
//! names that file) and forgets the block; it exits when its creator is gone
//! and no block is left to watch.
#![allow(unsafe_code)] // the detaching fork: see its SAFETY comment

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::boot::{self, Role};
use crate::os::{self, Forked};
use crate::transfer::frame::{self, Frame, FrameReader, Progress};
use crate::{Error, Result};

#[derive(Debug)]
struct Conn {
    owner: u32,
    control: OwnedFd,
}

static JANITOR: Mutex<Option<Conn>> = Mutex::new(None);

/// Holds the janitor lock across a fork (see `process::fork`).
pub(crate) fn lock_for_fork() -> impl Sized {
    JANITOR.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Asks this process's janitor (started on first use) to remove `path` once
/// nobody holds the file behind `fd` any more.
pub(crate) fn watch(path: &Path, fd: BorrowedFd<'_>) -> Result<()> {
    let mut janitor = JANITOR.lock().unwrap_or_else(PoisonError::into_inner);
    let me = os::getpid();
    for attempt in 0..2 {
        if janitor.as_ref().is_none_or(|conn| conn.owner != me) {
            *janitor = Some(start()?);
        }
        let Some(conn) = janitor.as_ref() else { continue };
        match frame::send_frame(conn.control.as_fd(), &[path.as_os_str().as_bytes()], &[fd]) {
            Ok(()) => return Ok(()),
            Err(Error::Disconnected) if attempt == 0 => *janitor = None,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Disconnected)
}

fn start() -> Result<Conn> {
    let (ours, theirs) = os::stream_pair().map_err(Error::os("create a socket pair"))?;
    let pid = boot::start(Role::Janitor, theirs.as_fd())
        .map_err(Error::os("start the shared-memory janitor"))?;
    drop(theirs);
    // The process we started forks the janitor and exits at once.
    let pidfd = os::pidfd_open(pid).map_err(|e| {
        os::kill_and_reap(pid);
        Error::Os { op: "open a pidfd for the janitor", address: None, source: e }
    })?;
    os::reap_blocking(pidfd.as_fd());
    Ok(Conn { owner: os::getpid(), control: ours })
}

/// The janitor's main loop. Runs before `main` in a fresh image.
pub(crate) fn serve(control: OwnedFd) -> ! {
    // SAFETY: this process is single-threaded (it never left the pre-`main`
    // hook); the fork makes the janitor nobody's child, so that it outlives
    // its creator without becoming anybody's zombie.
    match unsafe { os::fork() } {
        Ok(Forked::Child) => {}
        Ok(Forked::Parent(_)) => os::exit_now(0),
        Err(_) => os::exit_now(1),
    }
    os::detach();
    // Keep nothing of our creator's open but our control socket.
    os::close_other_fds(control.as_fd());
    let _ = std::env::set_current_dir("/");
    let mut watchers: Vec<std::thread::JoinHandle<()>> = Vec::new();
    let mut reader = FrameReader::new(4096);
    loop {
        match reader.read(control.as_fd(), false) {
            Ok(Progress::Frame(frame)) => {
                watchers.retain(|w| !w.is_finished());
                if let Some(watcher) = watch_block(frame) {
                    watchers.push(watcher);
                }
            }
            Ok(Progress::Pending) => {}
            Ok(Progress::Closed) | Err(_) => break,
        }
    }
    // Our creator is gone; the blocks it made may still be in use.
    for watcher in watchers {
        let _ = watcher.join();
    }
    os::exit_now(0)
}

/// Starts the thread that removes one block once nobody uses it.
///
/// Refuses (ignores) anything but a named shared-memory block whose name
/// still names the very file sent with it: whoever talks to us, nothing else
/// is ever removed.
fn watch_block(frame: Frame) -> Option<std::thread::JoinHandle<()>> {
    let path = PathBuf::from(OsString::from_vec(frame.payload));
    if frame.fds.len() != 1 || !super::shared_memory::is_block_path(&path) {
        return None;
    }
    let received = frame.fds.into_iter().next()?;
    let sent_identity = os::file_identity(received.as_fd()).ok()?;
    if os::path_identity(&path).ok()? != sent_identity {
        return None;
    }
    // Our own open file description: the received one carries its sender's
    // shared lock, which must not keep us waiting.
    let reopened = format!("/proc/self/fd/{}", received.as_raw_fd());
    let own = os::open_existing(Path::new(&reopened), false).ok()?;
    drop(received);
    let identity = os::file_identity(own.as_fd()).ok()?;
    let path_for_error = path.clone();
    // A watcher only waits for a lock: a small stack is plenty.
    std::thread::Builder::new()
        .stack_size(64 << 10)
        .spawn(move || {
            if os::flock(own.as_fd(), false, false).is_ok() {
                os::unlink_if_same(&path, identity);
            }
        })
        .map_err(|e| eprintln!("multiproc janitor: cannot watch {}: {e}", path_for_error.display()))
        .ok()
}
