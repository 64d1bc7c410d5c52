//! An event flag with a generation count, so a `set` followed at once by a
//! `clear` still releases everybody who was waiting.
#![allow(unsafe_code)] // `InShm`: see its `# Safety`

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use super::park;
use super::segment::InShm;

/// Bit 0: the flag. Bits 1..: how many times it was set (wrapping).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RawEvent {
    state: AtomicU32,
    waiters: AtomicU32,
}

// SAFETY: atomics only, `#[repr(C)]`, no pointer.
unsafe impl InShm for RawEvent {}

impl RawEvent {
    /// Sets the flag and wakes every waiter.
    pub(crate) fn set(&self) {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & 1 == 1 {
                return;
            }
            let new = (state.wrapping_add(2)) | 1;
            match self.state.compare_exchange_weak(state, new, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        if self.waiters.load(Ordering::SeqCst) > 0 {
            park::wake(&self.state, u32::MAX);
        }
    }

    /// Resets the flag.
    pub(crate) fn clear(&self) {
        self.state.fetch_and(!1, Ordering::SeqCst);
    }

    /// The state word (flag and set count) and the waiter count.
    pub(crate) fn words(&self) -> (&AtomicU32, &AtomicU32) {
        (&self.state, &self.waiters)
    }

    /// Whether the flag is set.
    pub(crate) fn is_set(&self) -> bool {
        self.state.load(Ordering::Acquire) & 1 == 1
    }

    /// Waits until the flag is set (or was set since the call began), at most
    /// until `deadline`; returns whether it was.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        let start = self.state.load(Ordering::Acquire);
        if start & 1 == 1 {
            return true;
        }
        let fired = |state: u32| state & 1 == 1 || state >> 1 != start >> 1;
        let key = (&raw const self.state).cast();
        if park::poll(key, deadline, || fired(self.state.load(Ordering::Acquire))) {
            return true;
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            let state = self.state.load(Ordering::SeqCst);
            if fired(state) {
                break true;
            }
            let Some(timeout) = park::time_left(deadline) else { break false };
            park::wait(&self.state, state, timeout);
        };
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        result
    }
}
