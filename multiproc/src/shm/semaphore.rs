//! A counting semaphore: a count and a number of sleepers.
#![allow(unsafe_code)] // `InShm`: see its `# Safety`

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use super::park;
use super::segment::InShm;

/// A semaphore in shared memory; `max` bounds the count (`u32::MAX`: none).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RawSemaphore {
    count: AtomicU32,
    waiters: AtomicU32,
    max: AtomicU32,
}

// SAFETY: atomics only, `#[repr(C)]`, no pointer.
unsafe impl InShm for RawSemaphore {}

/// Why a release failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverRelease;

impl RawSemaphore {
    /// Sets the initial count and bound (on creation only).
    pub(crate) fn init(&self, value: u32, max: u32) {
        self.count.store(value, Ordering::Relaxed);
        self.max.store(max, Ordering::Relaxed);
    }

    /// Takes one unit if there is one.
    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        let mut count = self.count.load(Ordering::Relaxed);
        while count > 0 {
            match self.count.compare_exchange_weak(
                count,
                count - 1,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => count = now,
            }
        }
        false
    }

    /// Takes one unit, waiting until `deadline`; `false` on timeout.
    pub(crate) fn acquire(&self, deadline: Option<Instant>) -> bool {
        if park::poll((&raw const self.count).cast(), deadline, || self.try_acquire()) {
            return true;
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let acquired = loop {
            if self.try_acquire() {
                break true;
            }
            let Some(timeout) = park::time_left(deadline) else { break self.try_acquire() };
            park::wait(&self.count, 0, timeout);
        };
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        acquired
    }

    /// Adds `n` units, waking as many sleepers.
    pub(crate) fn release(&self, n: u32) -> Result<(), OverRelease> {
        let max = self.max.load(Ordering::Relaxed);
        let mut count = self.count.load(Ordering::Relaxed);
        loop {
            let new = count.checked_add(n).filter(|&new| new <= max).ok_or(OverRelease)?;
            match self.count.compare_exchange_weak(count, new, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => count = now,
            }
        }
        if self.waiters.load(Ordering::SeqCst) > 0 {
            park::wake(&self.count, n);
        }
        Ok(())
    }

    /// The count word and the waiter count.
    pub(crate) fn words(&self) -> (&AtomicU32, &AtomicU32) {
        (&self.count, &self.waiters)
    }

    /// The current count.
    pub(crate) fn value(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// The bound.
    pub(crate) fn max(&self) -> u32 {
        self.max.load(Ordering::Relaxed)
    }
}
