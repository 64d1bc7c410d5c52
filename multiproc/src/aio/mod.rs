//! Waiting without a thread: what every `_async` method, stream and sink
//! of the library stands on.
//!
//! An awaiting operation first tries at once. If it cannot complete, it
//! keeps looking for the poll budget of the process's
//! [`WaitPolicy`](crate::WaitPolicy) (50 µs by default), each time giving
//! its executor thread back to other tasks (it wakes itself and returns
//! `Pending`): an answer that comes within that time costs no wake-up of
//! another thread. Then it counts itself among the object's sleepers, as a
//! blocking wait does, and asks the process's reactor (a thread asleep in
//! `futex_waitv` on every word that futures wait on, and one in `poll` on
//! descriptors) to wake it when the object changes. An awaiting future
//! costs no CPU while it waits, except a look every second (every 100 ms
//! where a dead peer must be noticed, as blocking waits do).
//!
//! Nothing here depends on an executor: the futures work under tokio,
//! async-std, smol or `futures::executor::block_on` alike.
#![allow(unsafe_code)] // `Counted`'s raw word pointer: see SAFETY comments

pub(crate) mod reactor;

use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use reactor::Watching;
pub(crate) use reactor::{Keep, Source, WaitList, Wake, owner_id};

thread_local! {
    /// Whether this thread is the light process scheduler: its futures
    /// never spin or poll (what they wait for runs on the same thread).
    static LIGHT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread as the light process scheduler.
pub(crate) fn set_light_thread() {
    LIGHT.with(|light| light.set(true));
}

/// How often an idle awaiting future looks again although nothing woke it.
pub(crate) const RECHECK: Duration = Duration::from_secs(1);

/// One count in an object's sleeper counter (its wakers wake only while
/// it is above zero), taken back on drop.
struct Counted {
    word: *const AtomicU32,
    _keep: Keep,
}

// SAFETY: `word` points into memory that `_keep` holds mapped; it is an
// atomic, which any thread may access.
unsafe impl Send for Counted {}
// SAFETY: as for `Send`: only atomic operations go through `word`.
unsafe impl Sync for Counted {}

impl Drop for Counted {
    fn drop(&mut self) {
        // SAFETY: `_keep` holds the word's memory mapped until after this.
        unsafe { &*self.word }.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What an awaiting operation sleeps on, once its poll budget is spent.
#[derive(Debug)]
pub(crate) struct Arm {
    pub(crate) source: Source,
    /// When to look again although nothing woke it.
    pub(crate) recheck: Option<Duration>,
}

impl Arm {
    /// Sleep on `source`, looking again every [`RECHECK`].
    pub(crate) fn on(source: Source) -> Self {
        Self { source, recheck: Some(RECHECK) }
    }

    /// Sleep on `source`, looking again after `recheck`.
    pub(crate) fn with_recheck(source: Source, recheck: Duration) -> Self {
        Self { source, recheck: Some(recheck) }
    }
}

/// The waiting state of one awaiting operation: when it began to poll, the
/// sleeper count it holds, and its watch.
///
/// Dropping it (with its future) takes its count back and unregisters its
/// watch: a cancelled future leaves no waiter behind.
#[derive(Default)]
pub(crate) struct Waiting {
    /// The object waited on (an address), for its history; 0: none.
    key: usize,
    started: Option<Instant>,
    counted: Vec<Counted>,
    watch: Option<Watching>,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("started", &self.started)
            .field("counted", &self.counted.len())
            .field("watch", &self.watch)
            .finish()
    }
}

impl Waiting {
    /// The waiting state of an operation on the object at `key` (any
    /// address that names it in this process): its poll budget adapts to
    /// what recent waits on it needed.
    pub(crate) fn new<K>(key: *const K) -> Self {
        Self { key: key as usize, ..Self::default() }
    }

    /// Counts this operation in `sleepers` (which lives in memory `keep`
    /// holds mapped) until it completes or is dropped; once per counter:
    /// `true` the first time.
    pub(crate) fn count(&mut self, sleepers: &AtomicU32, keep: &Keep) -> bool {
        let word = std::ptr::from_ref(sleepers);
        if self.counted.iter().any(|c| c.word == word) {
            return false;
        }
        sleepers.fetch_add(1, Ordering::SeqCst);
        self.counted.push(Counted { word, _keep: keep.clone() });
        true
    }

    /// Whether this operation counts itself as a sleeper (it has spent its
    /// poll budget).
    pub(crate) fn sleeping(&self) -> bool {
        !self.counted.is_empty() || self.watch.is_some()
    }

    /// One poll of an awaiting operation: `attempt` tries it without
    /// waiting; `arm` (once the poll budget is spent) counts the operation
    /// among the object's sleepers (see [`count`](Self::count)) and says
    /// what to sleep on, or `None` if the object changed meanwhile (it is
    /// then tried again at once). `attempt` runs again after arming, so a
    /// change between the two is never missed.
    pub(crate) fn poll<T>(
        &mut self,
        cx: &Context<'_>,
        attempt: impl FnMut() -> Option<T>,
        arm: impl FnMut(&mut Self) -> Option<Arm>,
    ) -> Poll<T> {
        self.poll_more(cx, attempt, arm, &|| true)
    }

    /// [`poll`](Self::poll), where `more` says, after a success, whether
    /// the object has more for the next waiter: only then does a
    /// [`Wake::One`] turn go on (a herd of waiters is then woken once per
    /// item, not twice).
    pub(crate) fn poll_more<T>(
        &mut self,
        cx: &Context<'_>,
        mut attempt: impl FnMut() -> Option<T>,
        mut arm: impl FnMut(&mut Self) -> Option<Arm>,
        more: &dyn Fn() -> bool,
    ) -> Poll<T> {
        loop {
            if let Some(done) = attempt() {
                self.finish_with(more);
                return Poll::Ready(done);
            }
            if let Some(watch) = &self.watch
                && !watch.fired()
            {
                watch.set_waker(cx.waker());
                return Poll::Pending;
            }
            // Woken, and looked: that was this watch's turn.
            if let Some(watch) = self.watch.take() {
                watch.finish(false);
            }
            if !self.sleeping() && !LIGHT.with(std::cell::Cell::get) {
                let started = *self.started.get_or_insert_with(Instant::now);
                let (spin, total) = history::budget(self.key);
                let mut elapsed = started.elapsed();
                if elapsed < spin {
                    // Spin here first: an answer within it costs no trip
                    // through the executor.
                    let mut gap = 1u32;
                    while elapsed < spin {
                        for _ in 0..gap {
                            std::hint::spin_loop();
                        }
                        gap = (gap * 2).min(64);
                        if let Some(done) = attempt() {
                            self.finish_with(more);
                            return Poll::Ready(done);
                        }
                        elapsed = started.elapsed();
                    }
                }
                if elapsed < total {
                    if elapsed >= spin {
                        // Past the spin, give the CPU to whoever else can
                        // run between looks (the peer we wait for may need
                        // it), as blocking waits do.
                        std::thread::yield_now();
                    }
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
            let Some(arm) = arm(self) else { continue };
            let watch = reactor::watch(arm.source, cx.waker(), arm.recheck);
            if let Some(done) = attempt() {
                watch.finish(more());
                self.finish_with(more);
                return Poll::Ready(done);
            }
            self.watch = Some(watch);
            return Poll::Pending;
        }
    }

    /// Ends the wait after success (a [`Wake::One`] turn goes on to the
    /// next watcher if `more` says something is left for it), ready for
    /// the next operation.
    fn finish_with(&mut self, more: &dyn Fn() -> bool) {
        if let Some(started) = self.started {
            history::record(self.key, started.elapsed());
        }
        if let Some(watch) = self.watch.take() {
            watch.finish(more());
        }
        self.counted.clear();
        self.started = None;
    }
}

/// What recent waits on each object needed, process-wide (tasks move
/// between threads): a small table of atomics, by the object's address.
///
/// An awaiting operation that sleeps is woken through two threads (the
/// reactor's, then its executor's), each of which may have to wake an idle
/// CPU: on a virtual machine that can take longer than the poll budget, and
/// then two peers that answer each other both sleep every time. So the
/// budget grows, up to [`MAX_POLL`], for an object whose waits keep ending
/// just past it (twice what they needed lately), and shrinks to the
/// policy's idle probe for one whose waits keep ending long after: an idle
/// consumer still costs ~no CPU.
mod history {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// The longest poll budget an object's history can earn.
    pub(super) const MAX_POLL: Duration = Duration::from_micros(250);
    /// Waits that ended in sleep this many times in a row (each longer
    /// than [`MAX_POLL`]) make an object idle.
    const IDLE_AFTER: u64 = 3;
    const SLOTS: usize = 64;

    /// Per slot: the key's low 32 bits, the needed time (µs, 16 bits), the
    /// count of long waits in a row (8 bits).
    static TABLE: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

    fn slot(key: usize) -> (&'static AtomicU64, u64) {
        let index = (key >> 4).wrapping_mul(0x9e37_79b9) % SLOTS;
        (&TABLE[index], (key as u64) & 0xffff_ffff)
    }

    fn read(key: usize) -> Option<(u64, u64)> {
        let (cell, tag) = slot(key);
        let entry = cell.load(Ordering::Relaxed);
        (entry >> 32 == tag).then_some(((entry >> 16) & 0xffff, (entry >> 8) & 0xff))
    }

    /// How long to spin, and to poll in all, before sleeping on `key`.
    pub(super) fn budget(key: usize) -> (Duration, Duration) {
        let base = crate::wait_policy::budget();
        if key == 0 || base.total.is_zero() {
            return (base.spin, base.total);
        }
        let total = match read(key) {
            Some((_, long)) if long >= IDLE_AFTER => base.idle_probe,
            Some((needed, _)) => base.total.max(Duration::from_micros(needed * 2).min(MAX_POLL)),
            None => base.total,
        };
        (base.spin.min(total), total)
    }

    /// A wait on `key` took `took`, start to end.
    pub(super) fn record(key: usize, took: Duration) {
        if key == 0 {
            return;
        }
        let (cell, tag) = slot(key);
        let (needed, long) = read(key).unwrap_or((0, 0));
        let took_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let (needed, long) = if took > MAX_POLL * 2 {
            (needed, (long + 1).min(0xff))
        } else {
            // A moving average, weighted to the recent waits.
            ((needed * 3 + took_us.min(0xffff)) / 4, 0)
        };
        cell.store((tag << 32) | (needed << 16) | (long << 8), Ordering::Relaxed);
    }
}

/// A blocking call run on a thread of its own, awaited: for the few calls
/// that cannot be split into non-blocking steps (connecting and
/// authenticating). Dropping the future lets the call finish and drops
/// its result.
pub(crate) fn off_thread<T: Send + 'static>(
    what: &'static str,
    call: impl FnOnce() -> T + Send + 'static,
) -> crate::Result<OffThread<T>> {
    let slot = std::sync::Arc::new(std::sync::Mutex::new((None, None::<std::task::Waker>)));
    let filled = std::sync::Arc::clone(&slot);
    std::thread::Builder::new()
        .name(format!("multiproc-{what}"))
        .spawn(move || {
            let result = call();
            let waker = {
                let mut slot = filled.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                slot.0 = Some(result);
                slot.1.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        })
        .map_err(crate::Error::os("start a thread"))?;
    Ok(OffThread { slot })
}

/// The future of [`off_thread`].
pub(crate) struct OffThread<T> {
    slot: std::sync::Arc<std::sync::Mutex<(Option<T>, Option<std::task::Waker>)>>,
}

impl<T> Future for OffThread<T> {
    type Output = T;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match slot.0.take() {
            Some(done) => Poll::Ready(done),
            None => {
                slot.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
