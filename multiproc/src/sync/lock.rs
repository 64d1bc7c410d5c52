//! `Lock`: a robust cross-process mutex (Python's `multiprocessing.Lock`).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::error::{LockError, Miss, lock_result};
use crate::shm::handle::segment_handle_serde;
use crate::shm::lock::RawLock;
use crate::shm::park::deadline_after;
use crate::shm::segment::Shape;
use crate::shm::{Kind, Segment};
use crate::{Error, Result};

/// A lock shared between processes.
///
/// Take it with [`lock`](Lock::lock) (a guard that releases on drop), or
/// Python-style with [`acquire`](Lock::acquire)/[`release`](Lock::release).
/// Uncontended, it costs two atomic operations and no system call.
///
/// # Examples
///
/// ```
/// use multiproc::{Lock, Process};
///
/// fn critical(lock: Lock) -> bool {
///     let _guard = lock.lock().unwrap();
///     true // only one process at a time gets here
/// }
///
/// let lock = Lock::new()?;
/// let child = Process::spawn(critical, lock.clone())?;
/// assert!(child.join()?);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Lock {
    seg: Arc<Segment>,
}

segment_handle_serde!(Lock, Kind::Lock, size_of::<RawLock>());

/// Proof that this thread holds a [`Lock`]; releases it on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    raw: &'a RawLock,
    /// A lock belongs to the thread that took it.
    _not_send: PhantomData<*const ()>,
}

impl Lock {
    /// A new, unlocked lock.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiproc::Lock::new()?;
    /// assert!(!lock.is_locked());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Ok(Self { seg: Segment::create(Kind::Lock, size_of::<RawLock>(), Shape::default())? })
    }

    fn raw(&self) -> &RawLock {
        self.seg.at(0)
    }

    /// The raw lock, for `Condition`.
    pub(crate) fn seg_raw(&self) -> &RawLock {
        self.raw()
    }

    /// The lock's segment, for `Condition`'s awaited waits.
    pub(crate) fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    fn guard(&self) -> LockGuard<'_> {
        LockGuard { raw: self.raw(), _not_send: PhantomData }
    }

    /// Takes the lock, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`] (with the guard) if the previous owner died
    /// holding it.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiproc::Lock::new()?;
    /// let guard = lock.lock()?;
    /// assert!(lock.is_locked());
    /// drop(guard);
    /// assert!(!lock.is_locked());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn lock(&self) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        lock_result(self.raw().lock(None), Miss::Timeout, || self.guard())
    }

    /// Takes the lock if nobody holds it.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] if it is held; [`LockError::OwnerDied`].
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::LockError;
    /// let lock = multiproc::Lock::new()?;
    /// let _held = lock.try_lock()?;
    /// assert!(matches!(lock.try_lock(), Err(LockError::WouldBlock)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_lock(&self) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        lock_result(self.raw().try_lock(), Miss::WouldBlock, || self.guard())
    }

    /// Takes the lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`]; [`LockError::OwnerDied`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let lock = multiproc::Lock::new()?;
    /// let _guard = lock.lock_timeout(Duration::from_millis(10))?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<LockGuard<'_>, LockError<LockGuard<'_>>> {
        lock_result(self.raw().lock(deadline_after(timeout)), Miss::Timeout, || self.guard())
    }

    /// Python's `acquire()`: takes the lock without a guard; give it back
    /// with [`release`](Lock::release).
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`] (the lock is then held).
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiproc::Lock::new()?;
    /// lock.acquire()?;
    /// lock.release()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn acquire(&self) -> Result<(), LockError<()>> {
        self.lock().map(std::mem::forget).map_err(|e| e.map(std::mem::forget))
    }

    /// Python's `acquire(timeout=...)`.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`]; [`LockError::OwnerDied`] (the lock is held).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let lock = multiproc::Lock::new()?;
    /// lock.acquire_timeout(Duration::from_millis(5))?;
    /// assert!(lock.acquire_timeout(Duration::from_millis(5)).is_err());
    /// lock.release()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), LockError<()>> {
        self.lock_timeout(timeout).map(std::mem::forget).map_err(|e| e.map(std::mem::forget))
    }

    /// Python's `release()`.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] if this thread does not hold the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiproc::Lock::new()?;
    /// assert!(matches!(lock.release(), Err(multiproc::Error::NotOwner)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn release(&self) -> Result<()> {
        if self.raw().unlock() { Ok(()) } else { Err(Error::NotOwner) }
    }

    /// Whether some thread (of any process) holds the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiproc::Lock::new()?;
    /// assert!(!lock.is_locked());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn is_locked(&self) -> bool {
        self.raw().owner() != 0
    }
}

impl Lock {
    /// Takes the lock, awaiting it as long as it takes: [`lock`] without
    /// holding a thread. The guard may travel between the threads of an
    /// executor (it is `Send`): the lock belongs to the process while an
    /// awaiting task holds it, and is taken from it only if the whole
    /// process dies.
    ///
    /// **Cancel-safe**: the lock is taken only in the poll that returns it;
    /// a dropped future holds nothing and leaves no waiter behind.
    ///
    /// [`lock`]: Lock::lock
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`] (with the guard) if the previous owner died
    /// holding it.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let lock = multiproc::Lock::new()?;
    /// {
    ///     let _guard = lock.lock_async().await.map_err(|e| e.to_string())?;
    ///     assert!(lock.is_locked());
    /// }
    /// assert!(!lock.is_locked());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn lock_async(&self) -> Result<AsyncLockGuard<'_>, LockError<AsyncLockGuard<'_>>> {
        let raw = self.raw();
        let (acquired, me) = lock_raw_async(raw, &self.seg).await;
        lock_result(Some(acquired), Miss::Timeout, || AsyncLockGuard { raw, owner: me })
    }
}

/// Takes `raw` (in `seg`) for this process's awaiting tasks, awaiting it:
/// how it was acquired, and the owner id it is held under.
pub(crate) async fn lock_raw_async(
    raw: &RawLock,
    seg: &Arc<Segment>,
) -> (crate::shm::Acquired, u32) {
    use crate::aio::{Arm, Keep, Source, Waiting, Wake};
    let me = crate::aio::owner_id();
    let mut waiting = Waiting::new(raw);
    let slept = std::cell::Cell::new(false);
    let acquired = std::future::poll_fn(move |cx| {
        waiting.poll(
            cx,
            || raw.try_lock_as(me, slept.get()),
            |_| {
                let expected = raw.mark_sleeper()?;
                slept.set(true);
                let keep = Arc::clone(seg) as Keep;
                // A dead owner is noticed when we look again.
                let source = Source::word(raw.word(), expected, keep, Wake::One);
                Some(Arm::with_recheck(source, Duration::from_millis(100)))
            },
        )
    })
    .await;
    (acquired, me)
}

/// Proof that this process's awaiting task holds a [`Lock`] (from
/// [`Lock::lock_async`]); releases it on drop, from whichever thread.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct AsyncLockGuard<'a> {
    raw: &'a RawLock,
    owner: u32,
}

impl Drop for AsyncLockGuard<'_> {
    fn drop(&mut self) {
        self.raw.unlock_as(self.owner);
    }
}

impl fmt::Debug for AsyncLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AsyncLockGuard")
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        self.raw.unlock();
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").field("locked", &self.is_locked()).finish()
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockGuard")
    }
}
