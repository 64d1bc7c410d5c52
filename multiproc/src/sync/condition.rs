//! `Condition`: a condition variable over a `Lock` or an `RLock`.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::error::{LockError, Miss, lock_result};
use super::{Lock, RLock};
use crate::shm::condition::RawCondition;
use crate::shm::handle::segment_handle_serde;
use crate::shm::lock::RawLock;
use crate::shm::park::deadline_after;
use crate::shm::rlock::RawRLock;
use crate::shm::segment::Shape;
use crate::shm::{Acquired, Kind, Segment};
use crate::{Error, Result};

/// The condition's own segment (its sequence number).
#[derive(Clone)]
struct Cell {
    seg: Arc<Segment>,
}

segment_handle_serde!(Cell, Kind::Condition, size_of::<RawCondition>());

/// The lock a condition works with.
#[derive(Clone, Serialize, Deserialize)]
enum Inner {
    Lock(Lock),
    RLock(RLock),
}

/// A condition variable shared between processes (Python's `Condition`).
///
/// Hold its lock ([`lock`](Condition::lock)), then [`wait`](Condition::wait)
/// (which releases the lock while sleeping) or [`notify`](Condition::notify).
///
/// # Examples
///
/// ```
/// use multiproc::{Condition, Process, Value};
///
/// fn produce(args: (Condition, Value<u32>)) {
///     let (cond, ready) = args;
///     let _guard = cond.lock().unwrap();
///     ready.set(1);
///     cond.notify_all().unwrap();
/// }
///
/// let cond = Condition::new()?;
/// let ready = Value::new(0u32)?;
/// let mut guard = cond.lock()?;
/// let child = Process::spawn(produce, (cond.clone(), ready.clone()))?;
/// cond.wait_while(&mut guard, || ready.get() == 0)?;
/// drop(guard);
/// child.join()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Condition {
    cell: Cell,
    inner: Inner,
}

/// This thread's hold on a [`Condition`]'s lock; releases it on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a> {
    lock: GuardLock<'a>,
    _not_send: PhantomData<*const ()>,
}

enum GuardLock<'a> {
    Lock(&'a RawLock),
    RLock(&'a RawRLock),
}

impl Condition {
    fn with(inner: Inner) -> Result<Self> {
        let seg = Segment::create(Kind::Condition, size_of::<RawCondition>(), Shape::default())?;
        Ok(Self { cell: Cell { seg }, inner })
    }

    /// A condition over a new [`RLock`] (Python's default).
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let cond = multiproc::Condition::new()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Self::with(Inner::RLock(RLock::new()?))
    }

    /// A condition over an existing [`Lock`].
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiproc::Lock::new()?;
    /// let cond = multiproc::Condition::with_lock(lock.clone())?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn with_lock(lock: Lock) -> Result<Self> {
        Self::with(Inner::Lock(lock))
    }

    /// A condition over an existing [`RLock`].
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let rlock = multiproc::RLock::new()?;
    /// let cond = multiproc::Condition::with_rlock(rlock)?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn with_rlock(rlock: RLock) -> Result<Self> {
        Self::with(Inner::RLock(rlock))
    }

    fn raw(&self) -> &RawCondition {
        self.cell.seg.at(0)
    }

    fn raw_lock(&self) -> GuardLock<'_> {
        match &self.inner {
            Inner::Lock(lock) => GuardLock::Lock(lock.seg_raw()),
            Inner::RLock(rlock) => GuardLock::RLock(rlock.raw()),
        }
    }

    fn guard(&self) -> ConditionGuard<'_> {
        ConditionGuard { lock: self.raw_lock(), _not_send: PhantomData }
    }

    fn acquire_raw(&self, deadline: Option<Instant>, try_only: bool) -> Option<Acquired> {
        match (self.raw_lock(), try_only) {
            (GuardLock::Lock(lock), false) => lock.lock(deadline),
            (GuardLock::Lock(lock), true) => lock.try_lock(),
            (GuardLock::RLock(rlock), false) => rlock.lock(deadline),
            (GuardLock::RLock(rlock), true) => rlock.try_lock(),
        }
    }

    /// Takes the condition's lock.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`] (with the guard).
    ///
    /// # Examples
    ///
    /// ```
    /// let cond = multiproc::Condition::new()?;
    /// let _guard = cond.lock()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn lock(&self) -> Result<ConditionGuard<'_>, LockError<ConditionGuard<'_>>> {
        lock_result(self.acquire_raw(None, false), Miss::Timeout, || self.guard())
    }

    /// Takes the condition's lock if it is free.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`]; [`LockError::OwnerDied`].
    ///
    /// # Examples
    ///
    /// ```
    /// let cond = multiproc::Condition::new()?;
    /// let _guard = cond.try_lock()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_lock(&self) -> Result<ConditionGuard<'_>, LockError<ConditionGuard<'_>>> {
        lock_result(self.acquire_raw(None, true), Miss::WouldBlock, || self.guard())
    }

    /// Takes the condition's lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`]; [`LockError::OwnerDied`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let cond = multiproc::Condition::new()?;
    /// let _guard = cond.lock_timeout(Duration::from_millis(5))?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ConditionGuard<'_>, LockError<ConditionGuard<'_>>> {
        lock_result(self.acquire_raw(deadline_after(timeout), false), Miss::Timeout, || {
            self.guard()
        })
    }

    /// Releases the lock, sleeps until notified (or `deadline`), and takes the
    /// lock back. Returns whether it was notified.
    fn wait_until(
        &self,
        guard: &mut ConditionGuard<'_>,
        deadline: Option<Instant>,
    ) -> Result<bool, LockError<()>> {
        let same_lock = match (&guard.lock, self.raw_lock()) {
            (GuardLock::Lock(a), GuardLock::Lock(b)) => std::ptr::eq(*a, b),
            (GuardLock::RLock(a), GuardLock::RLock(b)) => std::ptr::eq(*a, b),
            _ => false,
        };
        assert!(same_lock, "Condition::wait called with a guard of another condition");
        let raw = self.raw();
        let ticket = raw.prepare();
        let reacquired = match guard.lock {
            GuardLock::Lock(lock) => {
                lock.unlock();
                let notified = raw.sleep(ticket, deadline);
                (notified, lock.lock(None).unwrap_or(Acquired::Clean))
            }
            GuardLock::RLock(rlock) => {
                let depth = rlock.unlock_all().unwrap_or(1);
                let notified = raw.sleep(ticket, deadline);
                (notified, rlock.relock(depth))
            }
        };
        match reacquired {
            (notified, Acquired::Clean) => Ok(notified),
            (_, Acquired::OwnerDied) => Err(LockError::OwnerDied(())),
        }
    }

    /// Releases the lock, waits for a notification, takes the lock back.
    ///
    /// Like every condition variable, it may return without a notification
    /// (use [`wait_while`](Condition::wait_while) to wait for a state).
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`] if, while we slept, a holder of the lock died
    /// holding it (the lock is held again by us).
    ///
    /// # Panics
    ///
    /// If `guard` is not a guard of this condition's lock.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::{Condition, Process};
    /// fn poke(cond: Condition) {
    ///     let _g = cond.lock().unwrap();
    ///     cond.notify_all().unwrap();
    /// }
    /// let cond = Condition::new()?;
    /// let mut guard = cond.lock()?;
    /// let child = Process::spawn(poke, cond.clone())?;
    /// cond.wait(&mut guard)?;
    /// drop(guard);
    /// child.join()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait(&self, guard: &mut ConditionGuard<'_>) -> Result<(), LockError<()>> {
        self.wait_until(guard, None).map(drop)
    }

    /// [`wait`](Condition::wait) for at most `timeout`; returns whether a
    /// notification came.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`], as for `wait`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let cond = multiproc::Condition::new()?;
    /// let mut guard = cond.lock()?;
    /// assert!(!cond.wait_timeout(&mut guard, Duration::from_millis(5))?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait_timeout(
        &self,
        guard: &mut ConditionGuard<'_>,
        timeout: Duration,
    ) -> Result<bool, LockError<()>> {
        self.wait_until(guard, deadline_after(timeout))
    }

    /// Python's `wait_for(predicate, timeout)`: waits until `predicate()`
    /// holds (checked with the lock held), at most `timeout` if given.
    /// Returns the predicate's last value.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`], as for `wait`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let cond = multiproc::Condition::new()?;
    /// let mut guard = cond.lock()?;
    /// let ok = cond.wait_for(&mut guard, || false, Some(Duration::from_millis(5)))?;
    /// assert!(!ok);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait_for(
        &self,
        guard: &mut ConditionGuard<'_>,
        mut predicate: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool, LockError<()>> {
        let deadline = timeout.and_then(deadline_after);
        loop {
            if predicate() {
                return Ok(true);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            self.wait_until(guard, deadline)?;
        }
    }

    /// Waits while `condition()` holds (std's `Condvar::wait_while`).
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`], as for `wait`.
    ///
    /// # Examples
    ///
    /// ```
    /// let cond = multiproc::Condition::new()?;
    /// let mut guard = cond.lock()?;
    /// cond.wait_while(&mut guard, || false)?; // returns at once
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait_while(
        &self,
        guard: &mut ConditionGuard<'_>,
        mut condition: impl FnMut() -> bool,
    ) -> Result<(), LockError<()>> {
        self.wait_for(guard, || !condition(), None).map(drop)
    }

    fn held(&self) -> bool {
        match self.raw_lock() {
            GuardLock::Lock(lock) => lock.is_owned_by_me(),
            GuardLock::RLock(rlock) => rlock.is_owned_by_me(),
        }
    }

    /// Wakes up to `n` waiters. The caller must hold the lock.
    ///
    /// Only the waiters woken by it see [`wait_timeout`](Condition::wait_timeout)
    /// return `true`; the others sleep on until a later notification or
    /// their own timeout (Python's semantics). It wakes only those already
    /// waiting when it is called, and makes no system call if there are
    /// none.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] if this thread does not hold the lock (Python
    /// raises `RuntimeError`).
    ///
    /// # Examples
    ///
    /// ```
    /// let cond = multiproc::Condition::new()?;
    /// assert!(cond.notify(1).is_err());
    /// let _guard = cond.lock()?;
    /// cond.notify(1)?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn notify(&self, n: u32) -> Result<()> {
        if !self.held() {
            return Err(Error::NotOwner);
        }
        self.raw().notify(n);
        Ok(())
    }

    /// Wakes every waiter. The caller must hold the lock.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] if this thread does not hold the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let cond = multiproc::Condition::new()?;
    /// let _guard = cond.lock()?;
    /// cond.notify_all()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn notify_all(&self) -> Result<()> {
        self.notify(u32::MAX)
    }
}

impl Condition {
    /// Takes the condition's lock for this process's awaiting tasks (as
    /// [`Lock::lock_async`]): the guard is `Send`, waits with
    /// [`wait_async`](Self::wait_async) and notifies with
    /// [`AsyncConditionGuard::notify`]. **Cancel-safe**: the lock is taken
    /// only in the poll that returns it.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`] (with the guard).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let cond = multiproc::Condition::new()?;
    /// let guard = cond.lock_async().await.map_err(|e| e.to_string())?;
    /// guard.notify_all()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn lock_async(
        &self,
    ) -> Result<AsyncConditionGuard<'_>, LockError<AsyncConditionGuard<'_>>> {
        let (acquired, owner) = self.relock_async().await;
        lock_result(Some(acquired), Miss::Timeout, || AsyncConditionGuard {
            cond: self,
            owner,
            held: true,
        })
    }

    async fn relock_async(&self) -> (Acquired, u32) {
        match &self.inner {
            Inner::Lock(lock) => super::lock::lock_raw_async(lock.seg_raw(), lock.segment()).await,
            Inner::RLock(rlock) => {
                let raw = rlock.raw();
                let taken = super::lock::lock_raw_async(raw.raw_lock(), &rlock.seg).await;
                raw.entered();
                taken
            }
        }
    }

    fn unlock_as(&self, owner: u32) {
        match &self.inner {
            Inner::Lock(lock) => {
                lock.seg_raw().unlock_as(owner);
            }
            Inner::RLock(rlock) => {
                rlock.raw().unlock_as(owner);
            }
        }
    }

    /// Releases the lock, awaits a notification, and takes the lock back:
    /// [`wait`](Self::wait) without holding a thread. A guard whose lock is
    /// no longer held (its earlier wait was cancelled) takes it first.
    ///
    /// **Cancel-safe**: dropped while it awaits the notification, it leaves
    /// no waiter registered (a notification that came for it is not passed
    /// on, as for a timed-out `wait`); the guard then no longer holds the
    /// lock: its drop releases nothing, its `notify` fails, and a later
    /// `wait_async` on it takes the lock first.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`] if the lock's owner died while we waited.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let cond = multiproc::Condition::new()?;
    /// let other = cond.clone();
    /// let mut guard = cond.lock_async().await.map_err(|e| e.to_string())?;
    /// let notifier = std::thread::spawn(move || {
    ///     let _g = other.lock().unwrap();
    ///     other.notify_all().unwrap();
    /// });
    /// cond.wait_async(&mut guard).await.map_err(|e| e.to_string())?;
    /// drop(guard);
    /// notifier.join().unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn wait_async(
        &self,
        guard: &mut AsyncConditionGuard<'_>,
    ) -> Result<(), LockError<()>> {
        use crate::aio::{Arm, Keep, Source, Waiting, Wake};
        assert!(
            std::ptr::eq(guard.cond.raw(), self.raw()),
            "Condition::wait_async called with a guard of another condition"
        );
        if !guard.held {
            let (acquired, owner) = self.relock_async().await;
            (guard.owner, guard.held) = (owner, true);
            if acquired == Acquired::OwnerDied {
                return Err(LockError::OwnerDied(()));
            }
        }
        let raw = self.raw();
        let ticket = raw.prepare();
        // Dropped while waiting: no waiter stays registered.
        struct Registered<'a>(&'a RawCondition, Option<crate::shm::condition::Ticket>);
        impl Drop for Registered<'_> {
            fn drop(&mut self) {
                if let Some(ticket) = self.1 {
                    self.0.leave(ticket);
                }
            }
        }
        let mut registered = Registered(raw, Some(ticket));
        guard.held = false;
        self.unlock_as(guard.owner);
        let mut waiting = Waiting::new(raw.seq_word());
        std::future::poll_fn(|cx| {
            waiting.poll(
                cx,
                || raw.try_take(ticket),
                |_| {
                    let keep = Arc::clone(&self.cell.seg) as Keep;
                    let seen = raw.seq_word().load(std::sync::atomic::Ordering::SeqCst);
                    Some(Arm::on(Source::word(raw.seq_word(), seen, keep, Wake::All)))
                },
            )
        })
        .await;
        registered.1 = None;
        let (acquired, owner) = self.relock_async().await;
        (guard.owner, guard.held) = (owner, true);
        if acquired == Acquired::OwnerDied { Err(LockError::OwnerDied(())) } else { Ok(()) }
    }
}

/// A [`Condition`]'s lock held by this process's awaiting tasks (from
/// [`Condition::lock_async`]); releases it on drop, from whichever thread.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct AsyncConditionGuard<'a> {
    cond: &'a Condition,
    owner: u32,
    /// Whether it holds the lock now (not after a cancelled wait).
    held: bool,
}

impl AsyncConditionGuard<'_> {
    /// Wakes up to `n` waiters of the condition (as [`Condition::notify`]).
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] if the guard no longer holds the lock (its wait
    /// was cancelled).
    ///
    /// # Examples
    ///
    /// See [`Condition::lock_async`].
    pub fn notify(&self, n: u32) -> Result<()> {
        if !self.held {
            return Err(Error::NotOwner);
        }
        self.cond.raw().notify(n);
        Ok(())
    }

    /// Wakes every waiter (as [`Condition::notify_all`]).
    ///
    /// # Errors
    ///
    /// As [`notify`](Self::notify).
    ///
    /// # Examples
    ///
    /// See [`Condition::lock_async`].
    pub fn notify_all(&self) -> Result<()> {
        self.notify(u32::MAX)
    }
}

impl Drop for AsyncConditionGuard<'_> {
    fn drop(&mut self) {
        if self.held {
            self.cond.unlock_as(self.owner);
        }
    }
}

impl fmt::Debug for AsyncConditionGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncConditionGuard").field("held", &self.held).finish()
    }
}

impl Drop for ConditionGuard<'_> {
    fn drop(&mut self) {
        match self.lock {
            GuardLock::Lock(lock) => {
                lock.unlock();
            }
            GuardLock::RLock(rlock) => {
                rlock.unlock();
            }
        }
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lock = match self.inner {
            Inner::Lock(_) => "Lock",
            Inner::RLock(_) => "RLock",
        };
        f.debug_struct("Condition").field("lock", &lock).finish()
    }
}

impl fmt::Debug for ConditionGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConditionGuard")
    }
}
