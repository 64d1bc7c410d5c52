//! A cyclic barrier, as Python's `threading.Barrier`: `parties` waiters are
//! released together; a timeout or `abort` breaks it until `reset`.
#![allow(unsafe_code)] // `InShm`: see its `# Safety`

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use super::lock::RawLock;
use super::park;
use super::segment::InShm;

/// Why a barrier wait failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BarrierFailure {
    /// The barrier is or became broken (abort, reset, another's timeout).
    Broken,
    /// This waiter's timeout expired; the barrier is now broken.
    Timeout,
}

/// A barrier in shared memory. The fields other than `generation` change
/// only under `lock`.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RawBarrier {
    lock: RawLock,
    /// Bumped each time a cycle ends; waiters sleep on it.
    generation: AtomicU32,
    count: AtomicU32,
    parties: AtomicU32,
    broken: AtomicU32,
    /// Bit `g % 64` tells whether cycle `g` ended broken.
    outcomes: AtomicU64,
}

// SAFETY: atomics only, `#[repr(C)]`, no pointer.
unsafe impl InShm for RawBarrier {}

/// Who waits at one arrival index of the current cycle: an owner id (see
/// [`park::tid`]), 0 for nobody. A barrier's segment holds one per party
/// after the [`RawBarrier`].
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Slot(AtomicU32);

// SAFETY: one atomic, `#[repr(C)]`, no pointer.
unsafe impl InShm for Slot {}

/// How an arrival at a barrier went.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arrival {
    /// The last party: the cycle ended, released; its index.
    Last(u32),
    /// Waits for cycle `generation` to end, the `index`th to arrive.
    Waiting { generation: u32, index: u32 },
}

impl RawBarrier {
    /// Sets the number of parties (on creation only).
    pub(crate) fn init(&self, parties: u32) {
        self.parties.store(parties.max(1), Ordering::Relaxed);
    }

    fn locked<T>(&self, f: impl FnOnce() -> T) -> T {
        // The fields are plain counters: a previous holder that died cannot
        // leave them inconsistent beyond what the next cycle repairs.
        let _ = self.lock.lock(None);
        let result = f();
        self.lock.unlock();
        result
    }

    /// Ends the current cycle, broken or not, and wakes its waiters.
    fn end_cycle(&self, broken: bool) {
        let generation = self.generation.load(Ordering::Relaxed);
        let bit = 1u64 << (generation % 64);
        if broken {
            self.outcomes.fetch_or(bit, Ordering::Relaxed);
        } else {
            self.outcomes.fetch_and(!bit, Ordering::Relaxed);
        }
        self.count.store(0, Ordering::Relaxed);
        self.generation.store(generation.wrapping_add(1), Ordering::SeqCst);
        park::wake(&self.generation, u32::MAX);
    }

    fn cycle_was_broken(&self, generation: u32) -> bool {
        self.outcomes.load(Ordering::Relaxed) & (1u64 << (generation % 64)) != 0
    }

    /// Waits for the other parties; returns this waiter's arrival index
    /// (0 for the first, `parties - 1` for the last, which released the rest).
    /// See [`arrive`](Self::arrive) for `slots`.
    pub(crate) fn wait(
        &self,
        deadline: Option<Instant>,
        slots: &[Slot],
    ) -> Result<u32, BarrierFailure> {
        let (generation, index) = match self.arrive(slots, park::tid())? {
            Arrival::Last(index) => return Ok(index),
            Arrival::Waiting { generation, index } => (generation, index),
        };
        let ended = |b: &Self| b.generation.load(Ordering::SeqCst) != generation;
        if !park::poll((&raw const self.generation).cast(), deadline, || ended(self)) {
            loop {
                if ended(self) {
                    break;
                }
                let Some(timeout) = park::time_left(deadline) else {
                    if self.give_up(generation) {
                        return Err(BarrierFailure::Timeout);
                    }
                    break;
                };
                park::wait(&self.generation, generation, timeout);
            }
        }
        self.outcome(generation, index)
    }

    /// Arrives at the barrier as `me` (an owner id): the last arrival ends
    /// the cycle; the others wait for it to end.
    ///
    /// `slots` (one per party) record who waits. The last to arrive checks
    /// that the others still live: a party killed while waiting has not
    /// arrived, and the cycle ends broken rather than release the rest as if
    /// it had.
    pub(crate) fn arrive(&self, slots: &[Slot], me: u32) -> Result<Arrival, BarrierFailure> {
        let arrival = self.locked(|| {
            if self.broken.load(Ordering::Relaxed) != 0 {
                return Err(BarrierFailure::Broken);
            }
            let generation = self.generation.load(Ordering::Relaxed);
            let index = self.count.load(Ordering::Relaxed);
            if index.saturating_add(1) >= self.parties.load(Ordering::Relaxed) {
                let waiting = slots.get(..index as usize).unwrap_or(slots);
                let dead = waiting.iter().any(|slot| {
                    let id = slot.0.load(Ordering::Relaxed);
                    id != 0 && !park::owner_alive(id)
                });
                if dead {
                    self.broken.store(1, Ordering::Relaxed);
                    self.end_cycle(true);
                    return Err(BarrierFailure::Broken);
                }
                self.end_cycle(false);
                return Ok(None);
            }
            if let Some(slot) = slots.get(index as usize) {
                slot.0.store(me, Ordering::Relaxed);
            }
            self.count.store(index + 1, Ordering::Relaxed);
            Ok(Some((generation, index)))
        })?;
        Ok(match arrival {
            None => Arrival::Last(self.parties.load(Ordering::Relaxed).saturating_sub(1)),
            Some((generation, index)) => Arrival::Waiting { generation, index },
        })
    }

    /// The word a waiter of cycle `generation` sleeps on (it changes when
    /// the cycle ends).
    pub(crate) fn generation_word(&self) -> &AtomicU32 {
        &self.generation
    }

    /// Whether cycle `generation` ended.
    pub(crate) fn ended(&self, generation: u32) -> bool {
        self.generation.load(Ordering::SeqCst) != generation
    }

    /// How an ended cycle ended for the waiter that arrived `index`th.
    pub(crate) fn outcome(&self, generation: u32, index: u32) -> Result<u32, BarrierFailure> {
        let broken = self.locked(|| self.cycle_was_broken(generation));
        if broken { Err(BarrierFailure::Broken) } else { Ok(index) }
    }

    /// A waiter of cycle `generation` stops waiting (its time ran out, or
    /// its future was dropped): the cycle ends broken, for the others too,
    /// unless it ended meanwhile. `true` if this broke it.
    pub(crate) fn give_up(&self, generation: u32) -> bool {
        self.locked(|| {
            if self.ended(generation) {
                return false;
            }
            self.broken.store(1, Ordering::Relaxed);
            self.end_cycle(true);
            true
        })
    }

    /// Breaks the barrier: current and future waiters fail until `reset`.
    pub(crate) fn abort(&self) {
        self.locked(|| {
            self.broken.store(1, Ordering::Relaxed);
            self.end_cycle(true);
        });
    }

    /// Returns the barrier to its empty state; current waiters fail.
    pub(crate) fn reset(&self) {
        self.locked(|| {
            if self.count.load(Ordering::Relaxed) > 0 {
                self.end_cycle(true);
            }
            self.broken.store(0, Ordering::Relaxed);
        });
    }

    /// The number of parties.
    pub(crate) fn parties(&self) -> u32 {
        self.parties.load(Ordering::Relaxed)
    }

    /// How many wait now.
    pub(crate) fn n_waiting(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether the barrier is broken.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed) != 0
    }
}
