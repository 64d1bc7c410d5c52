//! A robust re-entrant lock: a [`RawLock`] plus a depth only its owner changes.
#![allow(unsafe_code)] // `InShm`: see its `# Safety`

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use super::Acquired;
use super::lock::RawLock;
use super::segment::InShm;

/// A re-entrant lock in shared memory.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RawRLock {
    lock: RawLock,
    depth: AtomicU32,
}

// SAFETY: atomics only, `#[repr(C)]`, no pointer.
unsafe impl InShm for RawRLock {}

impl RawRLock {
    fn enter(&self, acquired: Acquired) -> Acquired {
        self.depth.store(1, Ordering::Relaxed);
        acquired
    }

    /// Takes the lock (again, if the caller owns it), waiting until `deadline`.
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> Option<Acquired> {
        if self.lock.is_owned_by_me() {
            self.depth.fetch_add(1, Ordering::Relaxed);
            return Some(Acquired::Clean);
        }
        self.lock.lock(deadline).map(|a| self.enter(a))
    }

    /// Takes the lock if free, owned by the caller, or left by a dead owner.
    pub(crate) fn try_lock(&self) -> Option<Acquired> {
        if self.lock.is_owned_by_me() {
            self.depth.fetch_add(1, Ordering::Relaxed);
            return Some(Acquired::Clean);
        }
        self.lock.try_lock().map(|a| self.enter(a))
    }

    /// Releases one level; `false` if the caller does not own the lock.
    pub(crate) fn unlock(&self) -> bool {
        if !self.lock.is_owned_by_me() {
            return false;
        }
        let depth = self.depth.load(Ordering::Relaxed);
        if depth > 1 {
            self.depth.store(depth - 1, Ordering::Relaxed);
            true
        } else {
            self.depth.store(0, Ordering::Relaxed);
            self.lock.unlock()
        }
    }

    /// Releases every level (for a condition wait); returns the depth to
    /// restore, or `None` if the caller does not own the lock.
    pub(crate) fn unlock_all(&self) -> Option<u32> {
        if !self.lock.is_owned_by_me() {
            return None;
        }
        let depth = self.depth.swap(0, Ordering::Relaxed);
        self.lock.unlock();
        Some(depth.max(1))
    }

    /// Takes the lock back with the depth `unlock_all` returned.
    pub(crate) fn relock(&self, depth: u32) -> Acquired {
        let acquired = self.lock.lock(None).unwrap_or(Acquired::Clean);
        self.depth.store(depth, Ordering::Relaxed);
        acquired
    }

    /// The lock under the recursion count (for an awaiting task's hold,
    /// which never recurses).
    pub(crate) fn raw_lock(&self) -> &RawLock {
        &self.lock
    }

    /// Marks a hold taken on [`raw_lock`](Self::raw_lock) as one level.
    pub(crate) fn entered(&self) {
        self.depth.store(1, Ordering::Relaxed);
    }

    /// Releases an awaiting task's hold (owner `me`); `false` if `me` does
    /// not hold it.
    pub(crate) fn unlock_as(&self, me: u32) -> bool {
        if self.lock.owner() != me {
            return false;
        }
        self.depth.store(0, Ordering::Relaxed);
        self.lock.unlock_as(me)
    }

    /// Whether the calling thread owns the lock.
    pub(crate) fn is_owned_by_me(&self) -> bool {
        self.lock.is_owned_by_me()
    }

    /// The owner's depth (0 if free).
    pub(crate) fn depth(&self) -> u32 {
        if self.lock.owner() == 0 { 0 } else { self.depth.load(Ordering::Relaxed) }
    }
}
