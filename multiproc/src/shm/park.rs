//! The one wait/wake interface of the shared-memory algorithms.

use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use crate::os;

/// How many pause instructions a waiter spends polling before it sleeps
/// (a few microseconds).
const SPIN_BUDGET: u32 = 256;
/// The most pauses between two polls (the gap doubles from 1).
const SPIN_BACKOFF_MAX: u32 = 16;

/// The calling thread's owner id, as stored in lock words: its thread id
/// and a digest of its start time, so that a dead owner's reused thread id
/// is not taken for the owner (31 bits, never 0).
#[inline]
pub(crate) fn tid() -> u32 {
    os::current_owner_id()
}

/// Whether the owner `id` (from [`tid`]) is still alive.
pub(crate) fn owner_alive(id: u32) -> bool {
    os::owner_alive(id)
}

/// The longest single sleep. Every waiter re-checks its condition after it,
/// so a waker that died between changing the state and calling `wake`
/// delays its waiters by at most this long instead of hanging them.
const MAX_SLEEP: Duration = Duration::from_millis(100);

/// Sleeps while `*word == expected`, at most `timeout` (and at most
/// [`MAX_SLEEP`]). Returns `false` if the timeout expired.
#[inline]
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> bool {
    let capped = timeout.map_or(MAX_SLEEP, |t| t.min(MAX_SLEEP));
    os::futex_wait(word, expected, Some(capped)) || timeout.is_none_or(|t| t > MAX_SLEEP)
}

/// Wakes up to `count` sleepers on `word` (`u32::MAX`: all of them).
#[inline]
pub(crate) fn wake(word: &AtomicU32, count: u32) {
    // The kernel reads the count as a signed int: `u32::MAX` would be -1,
    // which wakes just one sleeper.
    os::futex_wake(word, count.min(i32::MAX as u32));
}

/// Polls `done` a bounded number of times; `true` as soon as it holds.
///
/// Spinning only pays when another CPU can make progress meanwhile, so it is
/// skipped on a single-CPU machine.
#[inline]
pub(crate) fn spin(mut done: impl FnMut() -> bool) -> bool {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    if *CPUS.get_or_init(crate::cpu_count) < 2 {
        return false;
    }
    // Polling less and less often leaves the cache line with its owner,
    // which then often finishes several critical sections in a row.
    let (mut spent, mut gap) = (0, 1);
    while spent < SPIN_BUDGET {
        if done() {
            return true;
        }
        for _ in 0..gap {
            std::hint::spin_loop();
        }
        spent += gap;
        gap = (gap * 2).min(SPIN_BACKOFF_MAX);
    }
    false
}

/// The time left until `deadline`: `Some(None)` for no deadline,
/// `None` once it passed.
#[inline]
pub(crate) fn time_left(deadline: Option<Instant>) -> Option<Option<Duration>> {
    match deadline {
        None => Some(None),
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() { None } else { Some(Some(left)) }
        }
    }
}

/// `now + timeout`, or no deadline if that overflows.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}
