//! `RLock`: a robust, re-entrant cross-process lock (Python's `RLock`).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::error::{LockError, Miss, lock_result};
use crate::shm::handle::segment_handle_serde;
use crate::shm::park::deadline_after;
use crate::shm::rlock::RawRLock;
use crate::shm::segment::Shape;
use crate::shm::{Kind, Segment};
use crate::{Error, Result};

/// A lock its owner may take again; it is free once released as many times.
///
/// # Examples
///
/// ```
/// let rlock = multiproc::RLock::new()?;
/// let outer = rlock.lock()?;
/// let inner = rlock.lock()?; // the same thread: no deadlock
/// assert_eq!(rlock.depth(), 2);
/// drop(inner);
/// drop(outer);
/// assert_eq!(rlock.depth(), 0);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone)]
pub struct RLock {
    pub(crate) seg: Arc<Segment>,
}

segment_handle_serde!(RLock, Kind::RLock, size_of::<RawRLock>());

/// An [`RLock`] held by this process's awaiting tasks (from
/// [`RLock::lock_async`]); releases it on drop, from whichever thread.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct AsyncRLockGuard<'a> {
    raw: &'a RawRLock,
    owner: u32,
}

impl Drop for AsyncRLockGuard<'_> {
    fn drop(&mut self) {
        self.raw.unlock_as(self.owner);
    }
}

impl fmt::Debug for AsyncRLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AsyncRLockGuard")
    }
}

/// One level of an [`RLock`] held by this thread; releases it on drop.
#[must_use = "the level is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    raw: &'a RawRLock,
    _not_send: PhantomData<*const ()>,
}

impl RLock {
    /// A new, unlocked re-entrant lock.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let rlock = multiproc::RLock::new()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Ok(Self { seg: Segment::create(Kind::RLock, size_of::<RawRLock>(), Shape::default())? })
    }

    pub(crate) fn raw(&self) -> &RawRLock {
        self.seg.at(0)
    }

    fn guard(&self) -> RLockGuard<'_> {
        RLockGuard { raw: self.raw(), _not_send: PhantomData }
    }

    /// Takes the lock (one more level if this thread holds it).
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`] (with the guard) if the previous owner died.
    ///
    /// # Examples
    ///
    /// ```
    /// let rlock = multiproc::RLock::new()?;
    /// let _a = rlock.lock()?;
    /// let _b = rlock.lock()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn lock(&self) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
        lock_result(self.raw().lock(None), Miss::Timeout, || self.guard())
    }

    /// Takes the lock, awaiting it as long as it takes (as
    /// [`Lock::lock_async`](crate::Lock::lock_async)): the hold belongs to
    /// this process's awaiting tasks, not to a thread, and is one level: a
    /// task does not re-enter it (one that awaits it again while holding
    /// it waits for itself, as with tokio's `Mutex`). The guard is `Send`.
    ///
    /// **Cancel-safe**: the lock is taken only in the poll that returns it.
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
    /// let lock = multiproc::RLock::new()?;
    /// {
    ///     let _guard = lock.lock_async().await.map_err(|e| e.to_string())?;
    ///     assert!(lock.try_lock().is_err()); // held for the tasks, not this thread
    /// }
    /// assert!(lock.try_lock().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn lock_async(&self) -> Result<AsyncRLockGuard<'_>, LockError<AsyncRLockGuard<'_>>> {
        let raw = self.raw();
        let (acquired, owner) = super::lock::lock_raw_async(raw.raw_lock(), &self.seg).await;
        raw.entered();
        lock_result(Some(acquired), Miss::Timeout, || AsyncRLockGuard { raw, owner })
    }

    /// Takes the lock if it is free or already this thread's.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`]; [`LockError::OwnerDied`].
    ///
    /// # Examples
    ///
    /// ```
    /// let rlock = multiproc::RLock::new()?;
    /// let _a = rlock.try_lock()?;
    /// let _b = rlock.try_lock()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_lock(&self) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
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
    /// let rlock = multiproc::RLock::new()?;
    /// let _a = rlock.lock_timeout(Duration::from_millis(5))?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<RLockGuard<'_>, LockError<RLockGuard<'_>>> {
        lock_result(self.raw().lock(deadline_after(timeout)), Miss::Timeout, || self.guard())
    }

    /// Python's `acquire()`: one more level, without a guard.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`] (the lock is then held).
    ///
    /// # Examples
    ///
    /// ```
    /// let rlock = multiproc::RLock::new()?;
    /// rlock.acquire()?;
    /// rlock.acquire()?;
    /// rlock.release()?;
    /// rlock.release()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn acquire(&self) -> Result<(), LockError<()>> {
        self.lock().map(std::mem::forget).map_err(|e| e.map(std::mem::forget))
    }

    /// Python's `release()`: gives back one level.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] if this thread does not hold the lock (Python
    /// raises `RuntimeError`).
    ///
    /// # Examples
    ///
    /// ```
    /// let rlock = multiproc::RLock::new()?;
    /// assert!(matches!(rlock.release(), Err(multiproc::Error::NotOwner)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn release(&self) -> Result<()> {
        if self.raw().unlock() { Ok(()) } else { Err(Error::NotOwner) }
    }

    /// How many levels the owner holds (0 when free).
    ///
    /// # Examples
    ///
    /// ```
    /// let rlock = multiproc::RLock::new()?;
    /// assert_eq!(rlock.depth(), 0);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn depth(&self) -> u32 {
        self.raw().depth()
    }

    /// Whether the calling thread holds the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let rlock = multiproc::RLock::new()?;
    /// let _g = rlock.lock()?;
    /// assert!(rlock.is_owned());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn is_owned(&self) -> bool {
        self.raw().is_owned_by_me()
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        self.raw.unlock();
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock").field("depth", &self.depth()).finish()
    }
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RLockGuard")
    }
}
