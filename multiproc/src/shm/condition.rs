//! The waiting half of a condition variable: a sequence number to sleep on.
//!
//! The lock is separate (a `RawLock` or `RawRLock` in its own segment). A
//! waiter reads the sequence while holding the lock, releases the lock and
//! sleeps while the sequence is unchanged; a notifier (holding the lock)
//! bumps it and wakes sleepers. A notify between the release and the sleep
//! changes the sequence, so the sleep returns at once: no wake-up is lost.
#![allow(unsafe_code)] // `InShm`: see its `# Safety`

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use super::park;
use super::segment::InShm;

/// A condition variable's sequence and sleeper count.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RawCondition {
    seq: AtomicU32,
    waiters: AtomicU32,
}

// SAFETY: atomics only, `#[repr(C)]`, no pointer.
unsafe impl InShm for RawCondition {}

impl RawCondition {
    /// Registers a waiter; call with the lock held. Returns the sequence to
    /// pass to [`sleep`](Self::sleep).
    pub(crate) fn prepare(&self) -> u32 {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        self.seq.load(Ordering::SeqCst)
    }

    /// Sleeps (with the lock released) until notified or `deadline`;
    /// `false` if the deadline passed first. Unregisters the waiter.
    pub(crate) fn sleep(&self, seq: u32, deadline: Option<Instant>) -> bool {
        let notified = loop {
            if self.seq.load(Ordering::SeqCst) != seq {
                break true;
            }
            let Some(timeout) = park::time_left(deadline) else { break false };
            park::wait(&self.seq, seq, timeout);
        };
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        notified
    }

    /// Wakes up to `n` waiters; call with the lock held.
    pub(crate) fn notify(&self, n: u32) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        if n > 0 && self.waiters.load(Ordering::SeqCst) > 0 {
            park::wake(&self.seq, n);
        }
    }
}
