//! The one wait/wake interface of the shared-memory algorithms.

use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use crate::os;

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

/// Polls `done` before a wait goes to sleep, as the process's
/// [`WaitPolicy`](crate::WaitPolicy) says, never past `deadline`; `true` as
/// soon as `done` holds, `false` once the poll budget is spent (the caller
/// then sleeps on a futex).
///
/// This is the one place where every blocking operation on shared memory
/// decides how long to keep its CPU: first a spin with `pause` (only with two
/// CPUs or more: on one, the party we wait for cannot run while we spin),
/// then a poll that gives the CPU to whoever else can run between looks
/// (`sched_yield`), then sleep. Waking a sleeping waiter whose CPU went idle
/// costs 20-70 µs on a virtual machine; an answer that comes within the poll
/// costs a cache-line transfer. Budgets are in time, and adapt per object
/// (`key`, the address of the word waited on): an object whose recent waits
/// all ended in sleep anyway is polled only briefly, so an idle consumer
/// costs ~no CPU once it has waited longer than the budget.
#[inline]
pub(crate) fn poll(
    key: *const (),
    deadline: Option<Instant>,
    mut done: impl FnMut() -> bool,
) -> bool {
    if done() {
        return true;
    }
    poll_slow(key as usize, deadline, &mut done)
}

#[cold]
fn poll_slow(key: usize, deadline: Option<Instant>, done: &mut dyn FnMut() -> bool) -> bool {
    let budget = crate::wait_policy::budget();
    let start = Instant::now();
    let (spin, total) = history::budget(key, budget);
    let spin_until = start + spin;
    let mut until = start + total;
    if let Some(deadline) = deadline {
        until = until.min(deadline);
    }
    // Spin: pause between looks, backing off up to a few dozen cycles so the
    // cache line stays with its owner for a few of its operations in a row.
    let mut gap = 1u32;
    let mut now = start;
    while now < spin_until.min(until) {
        if done() {
            history::record(key, true);
            return true;
        }
        for _ in 0..gap {
            std::hint::spin_loop();
        }
        gap = (gap * 2).min(64);
        now = Instant::now();
    }
    // Poll, giving the CPU away between looks.
    while now < until {
        if done() {
            history::record(key, true);
            return true;
        }
        std::thread::yield_now();
        now = Instant::now();
    }
    let success = done();
    history::record(key, success);
    success
}

/// What recent waits on each object needed, per thread: a few objects, by
/// the address of the word they wait on.
mod history {
    use std::cell::Cell;
    use std::time::Duration;

    use crate::wait_policy::Budget;

    const SLOTS: usize = 16;
    /// Out of this many, the score of an object whose waits keep ending
    /// within the poll.
    const FULL: u8 = 8;

    thread_local! {
        static TABLE: [Cell<(usize, u8)>; SLOTS] = const { [const { Cell::new((0, FULL)) }; SLOTS] };
    }

    fn slot(key: usize) -> usize {
        (key >> 6).wrapping_mul(0x9e37_79b9) % SLOTS
    }

    /// The spin and total poll time for a wait on `key`.
    pub(super) fn budget(key: usize, budget: Budget) -> (Duration, Duration) {
        let score = TABLE.with(|t| {
            let (k, score) = t[slot(key)].get();
            if k == key { score } else { FULL }
        });
        if score == 0 {
            // Its waits keep ending in sleep: just look, briefly.
            (budget.spin.min(Duration::from_micros(1)), budget.idle_probe)
        } else {
            (budget.spin, budget.total)
        }
    }

    /// Whether the poll on `key` saw what it waited for.
    pub(super) fn record(key: usize, success: bool) {
        TABLE.with(|t| {
            let cell = &t[slot(key)];
            let (k, score) = cell.get();
            let score = if k == key { score } else { FULL };
            let score = if success { (score + 2).min(FULL) } else { score.saturating_sub(1) };
            cell.set((key, score));
        });
    }
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
