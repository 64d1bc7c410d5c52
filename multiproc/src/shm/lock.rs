//! A robust mutex on one futex word.
//!
//! The word holds the owner's thread id (0 when free) and a "waiters" bit
//! set by anyone who sleeps on it. Locking when free is one compare-and-swap,
//! unlocking without waiters one swap: no system call when nobody waits.
//! Sleepers wake at least every [`MAX_POLL`] to check that the owner still
//! lives; if it died, one of them takes the word over and learns so.
#![allow(unsafe_code)] // `InShm`: see its `# Safety`

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::Acquired;
use super::park;
use super::segment::InShm;

/// Set when somebody sleeps (or is about to sleep) on the word.
const WAITERS: u32 = 1 << 31;
const TID_MASK: u32 = WAITERS - 1;
/// The first liveness check of a silent owner comes after this long...
const MIN_POLL: Duration = Duration::from_millis(5);
/// ...and the interval doubles up to this, bounding how late a dead owner is
/// noticed.
const MAX_POLL: Duration = Duration::from_millis(40);

/// A robust mutex word in shared memory.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RawLock {
    state: AtomicU32,
}

// SAFETY: one `AtomicU32`, `#[repr(C)]`, no pointer.
unsafe impl InShm for RawLock {}

impl RawLock {
    /// Takes the lock if it is free (or its owner died).
    ///
    /// The owner's liveness is checked (a few system calls) only once the same
    /// owner has been seen holding the lock for [`MIN_POLL`], so a `try_lock`
    /// loop does not turn into a system-call loop.
    pub(crate) fn try_lock(&self) -> Option<Acquired> {
        self.try_lock_as(park::tid(), false)
    }

    /// [`try_lock`](Self::try_lock) for owner `me` (an owner id, see
    /// [`park::tid`]); `keep_waiters` after a sleep, when others may sleep
    /// too and must be woken at the next release.
    pub(crate) fn try_lock_as(&self, me: u32, keep_waiters: bool) -> Option<Acquired> {
        let new = if keep_waiters { me | WAITERS } else { me };
        match self.state.compare_exchange(0, new, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => Some(Acquired::Clean),
            Err(state) if self.held_long(state) => self.take_from_dead(state, me),
            Err(_) => None,
        }
    }

    /// Whether this thread has seen `state`'s owner on this lock for `MIN_POLL`.
    fn held_long(&self, state: u32) -> bool {
        thread_local! {
            static SEEN: std::cell::Cell<(usize, u32, Option<Instant>)> =
                const { std::cell::Cell::new((0, 0, None)) };
        }
        let key = (std::ptr::from_ref(self) as usize, state & TID_MASK);
        SEEN.with(|seen| match seen.get() {
            (addr, owner, Some(since)) if (addr, owner) == key => since.elapsed() >= MIN_POLL,
            _ => {
                seen.set((key.0, key.1, Some(Instant::now())));
                false
            }
        })
    }

    /// Takes the lock over if `state` names a dead owner.
    fn take_from_dead(&self, state: u32, me: u32) -> Option<Acquired> {
        let owner = state & TID_MASK;
        if owner == 0 || owner == me || park::owner_alive(owner) {
            return None;
        }
        let new = me | (state & WAITERS);
        self.state
            .compare_exchange(state, new, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Acquired::OwnerDied)
    }

    /// Takes the lock, waiting until `deadline` at most; `None` on timeout.
    #[inline]
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> Option<Acquired> {
        let me = park::tid();
        if self.state.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            return Some(Acquired::Clean);
        }
        self.lock_contended(me, deadline)
    }

    #[cold]
    fn lock_contended(&self, me: u32, deadline: Option<Instant>) -> Option<Acquired> {
        let spun = park::poll((&raw const self.state).cast(), deadline, || {
            self.state.load(Ordering::Relaxed) == 0
                && self.state.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed).is_ok()
        });
        if spun {
            return Some(Acquired::Clean);
        }
        let mut poll = MIN_POLL;
        let mut suspect_owner = false;
        loop {
            let state = self.state.load(Ordering::Relaxed);
            let owner = state & TID_MASK;
            if owner == 0 {
                // Coming from a sleep, others may sleep too: keep the bit.
                let new = me | WAITERS;
                if self
                    .state
                    .compare_exchange(state, new, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Some(Acquired::Clean);
                }
                continue;
            }
            if suspect_owner {
                suspect_owner = false;
                if let Some(acquired) = self.take_from_dead(state, me) {
                    return Some(acquired);
                }
            }
            if state & WAITERS == 0
                && self
                    .state
                    .compare_exchange(state, state | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let timeout = match park::time_left(deadline)? {
                None => poll,
                Some(left) => left.min(poll),
            };
            if !park::wait(&self.state, state | WAITERS, Some(timeout)) {
                // Nobody woke us for a while: is the owner still there?
                suspect_owner = true;
                poll = (poll * 2).min(MAX_POLL);
            }
        }
    }

    /// Marks that someone sleeps on the lock, for a sleep on the state
    /// word: the value to sleep on, or `None` if the lock is free now.
    pub(crate) fn mark_sleeper(&self) -> Option<u32> {
        let state = self.state.load(Ordering::Relaxed);
        if state & TID_MASK == 0 {
            return None;
        }
        if state & WAITERS == 0
            && self
                .state
                .compare_exchange(state, state | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        Some(state | WAITERS)
    }

    /// The state word (for sleeping on it after [`mark_sleeper`](Self::mark_sleeper)).
    pub(crate) fn word(&self) -> &AtomicU32 {
        &self.state
    }

    /// Releases the lock; `false` (and no change) if the caller's thread does
    /// not own it.
    #[inline]
    pub(crate) fn unlock(&self) -> bool {
        self.unlock_as(park::tid())
    }

    /// Releases the lock held by owner `me`; `false` (and no change) if
    /// `me` does not own it.
    #[inline]
    pub(crate) fn unlock_as(&self, me: u32) -> bool {
        let state = self.state.load(Ordering::Relaxed);
        if state & TID_MASK != me {
            return false;
        }
        // Only the owner changes the owner field while it is held; others
        // only add the waiters bit, which the swap collects.
        let previous = self.state.swap(0, Ordering::Release);
        if previous & WAITERS != 0 {
            park::wake(&self.state, 1);
        }
        true
    }

    /// The owner's thread id, 0 if free.
    pub(crate) fn owner(&self) -> u32 {
        self.state.load(Ordering::Relaxed) & TID_MASK
    }

    /// Whether the calling thread owns the lock.
    pub(crate) fn is_owned_by_me(&self) -> bool {
        self.owner() == park::tid()
    }
}
