//! The descriptors of the library's connections, tracked so that a child
//! forked to run a function on arguments can drop the ones it was not given.
//!
//! A forked child inherits every descriptor of its parent. A pipe's end the
//! child was not given (the parent kept it) would keep the pipe open in the
//! child for as long as it runs, so the other end never learns that its
//! peer is gone: Python's trap with `fork`. Such a child replaces each
//! tracked descriptor it was not given with a dead socket (one whose peer is
//! closed: reads see the end, writes fail), so that it behaves as a spawned
//! child does. The descriptor numbers stay taken, so that the copies of the
//! parent's objects in the child's memory close only their dead sockets if
//! they are ever dropped, never a descriptor opened since.
#![allow(unsafe_code)] // dup3 over tracked descriptors: see the SAFETY comment

use std::collections::HashSet;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Mutex, MutexGuard, PoisonError};

static TRACKED: Mutex<Option<HashSet<RawFd>>> = Mutex::new(None);

fn tracked() -> MutexGuard<'static, Option<HashSet<RawFd>>> {
    TRACKED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Tracks `fd`, which the caller has just opened and owns: call once it is
/// open, and [`untrack`] before it is closed.
pub(crate) fn track(fd: RawFd) {
    tracked().get_or_insert_with(HashSet::new).insert(fd);
}

/// Stops tracking `fd` (before its owner closes it).
pub(crate) fn untrack(fd: RawFd) {
    if let Some(set) = tracked().as_mut() {
        set.remove(&fd);
    }
}

/// The tracked descriptors, locked across a fork (so that none is opened
/// or closed meanwhile, and the child finds the lock free).
pub(crate) struct ForkTracked(MutexGuard<'static, Option<HashSet<RawFd>>>);

/// Locks the tracked descriptors for a fork.
pub(crate) fn lock_for_fork() -> ForkTracked {
    ForkTracked(tracked())
}

impl ForkTracked {
    /// In a forked child that runs a function on arguments it decodes:
    /// replaces every descriptor its parent tracked with a dead socket, and
    /// forgets them. (The arguments' descriptors are copies made for the
    /// child, not tracked: they stay.)
    pub(crate) fn drop_in_child(mut self) {
        let Some(set) = self.0.take() else { return };
        let Ok((dead, peer)) = super::stream_pair() else { return };
        drop(peer);
        for fd in set {
            // SAFETY: every tracked number is open and owned by a library
            // connection of the parent (it is tracked after it is opened and
            // untracked before it is closed, both under the lock held across
            // the fork), so replacing it closes nothing else; the child
            // keeps the number (now a dead socket) for the object that owns
            // it, which may close it later.
            unsafe { libc::dup3(dead.as_raw_fd(), fd, libc::O_CLOEXEC) };
        }
    }
}
