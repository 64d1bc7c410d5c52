//! `Barrier`: parties wait for each other (Python's `Barrier`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::shm::barrier::{BarrierFailure, RawBarrier, Slot};
use crate::shm::park::deadline_after;
use crate::shm::segment::Shape;
use crate::shm::{Kind, Segment};
use crate::{Error, Result};

/// A barrier for `parties` processes (or threads): each
/// [`wait`](Barrier::wait) blocks until all have called it, then all go on.
/// It can be used again at once.
///
/// A waiter's timeout, or [`abort`](Barrier::abort), *breaks* the barrier:
/// every current and later `wait` fails with [`Error::BrokenBarrier`] until
/// [`reset`](Barrier::reset).
///
/// # Examples
///
/// ```
/// use multiproc::{Barrier, Process};
///
/// fn meet(barrier: Barrier) -> u32 {
///     barrier.wait().unwrap().index()
/// }
///
/// let barrier = Barrier::new(2)?;
/// let child = Process::spawn(meet, barrier.clone())?;
/// let mine = barrier.wait()?.index();
/// let theirs = child.join()?;
/// assert_eq!(mine + theirs, 1); // one got 0, the other 1
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    seg: Arc<Segment>,
}

/// Where the per-party slots start in a barrier's segment.
const SLOTS: usize = size_of::<RawBarrier>();

/// The body a barrier with `parties` slots needs.
fn body_len(parties: usize) -> Option<usize> {
    parties.checked_mul(size_of::<Slot>())?.checked_add(SLOTS)
}

fn slot_shape(parties: usize) -> Shape {
    Shape { size: size_of::<Slot>(), align: align_of::<Slot>(), count: parties }
}

impl serde::Serialize for Barrier {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::shm::segment::serialize(&self.seg, serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Barrier {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let seg =
            crate::shm::segment::deserialize(deserializer, Kind::Barrier, slot_shape(0), body_len)?;
        Ok(Self { seg })
    }
}

/// What one `wait` on a [`Barrier`] tells its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult {
    index: u32,
    parties: u32,
}

impl BarrierWaitResult {
    /// The order of arrival, 0 to `parties - 1`, different for each party (the
    /// index Python's `wait` returns).
    ///
    /// # Examples
    ///
    /// ```
    /// let barrier = multiproc::Barrier::new(1)?;
    /// assert_eq!(barrier.wait()?.index(), 0);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn index(&self) -> u32 {
        self.index
    }

    /// True for exactly one party per cycle: the last to arrive, which
    /// released the others.
    ///
    /// # Examples
    ///
    /// ```
    /// let barrier = multiproc::Barrier::new(1)?;
    /// assert!(barrier.wait()?.is_leader());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn is_leader(&self) -> bool {
        self.index + 1 == self.parties
    }
}

impl Barrier {
    /// A barrier for `parties` (at least 1).
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::Barrier::new(5)?.parties(), 5);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new(parties: u32) -> Result<Self> {
        let parties = parties.max(1);
        let body =
            body_len(parties as usize).ok_or(Error::Unsupported { reason: "too many parties" })?;
        let seg = Segment::create(Kind::Barrier, body, slot_shape(parties as usize))?;
        seg.at::<RawBarrier>(0).init(parties);
        Ok(Self { seg })
    }

    fn raw(&self) -> &RawBarrier {
        self.seg.at(0)
    }

    /// One slot per party, as many as the segment holds (checked on arrival).
    fn slots(&self) -> &[Slot] {
        self.seg.slice_at(SLOTS, self.seg.elem_count())
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<BarrierWaitResult> {
        match self.raw().wait(deadline, self.slots()) {
            Ok(index) => Ok(BarrierWaitResult { index, parties: self.parties() }),
            Err(BarrierFailure::Broken) => Err(Error::BrokenBarrier),
            Err(BarrierFailure::Timeout) => Err(Error::Timeout),
        }
    }

    /// Waits until all parties arrive.
    ///
    /// # Errors
    ///
    /// [`Error::BrokenBarrier`] if the barrier is or becomes broken.
    ///
    /// # Examples
    ///
    /// ```
    /// let barrier = multiproc::Barrier::new(1)?;
    /// barrier.wait()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait(&self) -> Result<BarrierWaitResult> {
        self.wait_until(None)
    }

    /// Waits until all parties arrive, awaited: [`wait`](Self::wait)
    /// without holding a thread. The party is this process (an awaiting
    /// task may move between threads); it counts as dead only if the
    /// process dies.
    ///
    /// **Cancel-safe** as far as a barrier can be: dropped before it
    /// arrived it changes nothing; dropped after it arrived and before the
    /// others did, it breaks the barrier for them, as a timeout does
    /// (Python's `Barrier` does the same), and leaves no waiter behind.
    ///
    /// # Errors
    ///
    /// [`Error::BrokenBarrier`].
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let barrier = multiproc::Barrier::new(2)?;
    /// let other = barrier.clone();
    /// let thread = std::thread::spawn(move || other.wait().map(|r| r.index()));
    /// let mine = barrier.wait_async().await?.index();
    /// let theirs = thread.join().unwrap()?;
    /// assert_eq!(mine + theirs, 1); // one arrived first (0), one last (1)
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn wait_async(&self) -> Result<BarrierWaitResult> {
        use crate::aio::{Arm, Keep, Source, Waiting, Wake};
        use crate::shm::barrier::Arrival;
        let raw = self.raw();
        let me = crate::aio::owner_id();
        let broken = |f: BarrierFailure| match f {
            BarrierFailure::Broken => Error::BrokenBarrier,
            BarrierFailure::Timeout => Error::Timeout,
        };
        let (generation, index) = match raw.arrive(self.slots(), me).map_err(broken)? {
            Arrival::Last(index) => {
                return Ok(BarrierWaitResult { index, parties: self.parties() });
            }
            Arrival::Waiting { generation, index } => (generation, index),
        };
        // Dropped before the cycle ended: the others must not wait for us.
        struct Arrived<'a>(&'a RawBarrier, u32, bool);
        impl Drop for Arrived<'_> {
            fn drop(&mut self) {
                if !self.2 {
                    self.0.give_up(self.1);
                }
            }
        }
        let mut arrived = Arrived(raw, generation, false);
        let mut waiting = Waiting::new(raw.generation_word());
        std::future::poll_fn(|cx| {
            waiting.poll(
                cx,
                || raw.ended(generation).then_some(()),
                |_| {
                    let keep = Arc::clone(&self.seg) as Keep;
                    let source = Source::word(raw.generation_word(), generation, keep, Wake::All);
                    Some(Arm::on(source))
                },
            )
        })
        .await;
        arrived.2 = true;
        drop(arrived);
        let index = raw.outcome(generation, index).map_err(broken)?;
        Ok(BarrierWaitResult { index, parties: self.parties() })
    }

    /// Waits at most `timeout` for the other parties.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if time ran out (the barrier is then broken for the
    /// others too); [`Error::BrokenBarrier`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let barrier = multiproc::Barrier::new(2)?;
    /// assert!(matches!(barrier.wait_timeout(Duration::from_millis(5)), Err(multiproc::Error::Timeout)));
    /// assert!(barrier.is_broken());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<BarrierWaitResult> {
        self.wait_until(deadline_after(timeout))
    }

    /// Breaks the barrier: waiters now and later fail until `reset`.
    ///
    /// # Examples
    ///
    /// ```
    /// let barrier = multiproc::Barrier::new(2)?;
    /// barrier.abort();
    /// assert!(matches!(barrier.wait(), Err(multiproc::Error::BrokenBarrier)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn abort(&self) {
        self.raw().abort();
    }

    /// Returns the barrier to its empty state; current waiters fail with
    /// [`Error::BrokenBarrier`].
    ///
    /// # Examples
    ///
    /// ```
    /// let barrier = multiproc::Barrier::new(1)?;
    /// barrier.abort();
    /// barrier.reset();
    /// barrier.wait()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn reset(&self) {
        self.raw().reset();
    }

    /// The number of parties.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::Barrier::new(3)?.parties(), 3);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn parties(&self) -> u32 {
        self.raw().parties()
    }

    /// How many parties wait now.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::Barrier::new(3)?.n_waiting(), 0);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn n_waiting(&self) -> u32 {
        self.raw().n_waiting()
    }

    /// Whether the barrier is broken.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!multiproc::Barrier::new(3)?.is_broken());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn is_broken(&self) -> bool {
        self.raw().is_broken()
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.is_broken())
            .finish()
    }
}
