//! Proxies to synchronization objects, queues and arrays that live in a
//! manager's server (Python's `manager.Lock()`, `manager.Queue()`...).
//!
//! They work from any process that can reach the manager, remote ones over
//! TCP included, and can be stored inside other shared objects. Blocking
//! calls wait in the server. A lock belongs to the session (process and
//! thread) that took it; if that process dies holding it, the next taker
//! gets it with [`Error::OwnerDied`].

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::client::unexpected;
use super::dynval;
use super::protocol::{Kind, Op, Outcome, Part, Response, Wait};
use super::proxy::{Proxy, Target, edit_items, proxy_common, python_index, sealed};
use crate::{Error, Result};

fn wait_for(timeout: Duration) -> Wait {
    Wait::from_timeout(Some(timeout))
}

impl Target {
    /// A condition's wait: whether a notification came; `Err(OwnerDied)`
    /// if the lock, taken back, had lost its owner meanwhile.
    fn cond_wait(&self, wait: Wait) -> Result<bool> {
        match self.call(Kind::Condition, Op::CondWait(wait))? {
            Response::Bool(notified) => Ok(notified),
            Response::Outcome(Outcome::OwnerDied) => Err(Error::OwnerDied),
            other => Err(unexpected(&other)),
        }
    }

    /// An acquisition: `Ok(true)` taken, `Ok(false)` not taken (busy or
    /// timed out), `Err(OwnerDied)` taken from a dead owner.
    fn acquire(&self, kind: Kind, wait: Wait) -> Result<bool> {
        match self.call(kind, Op::Acquire(wait))? {
            Response::Outcome(Outcome::Acquired) => Ok(true),
            Response::Outcome(Outcome::OwnerDied) => Err(Error::OwnerDied),
            Response::Outcome(Outcome::WouldBlock | Outcome::Timeout) => Ok(false),
            other => Err(unexpected(&other)),
        }
    }
}

/// A lock guard of a manager's lock: releases it when dropped.
///
/// # Examples
///
/// See [`LockProxy::lock`].
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct ManagedGuard<'a> {
    target: &'a Target,
    kind: Kind,
    owner_died: bool,
    token: Option<u64>,
    released: bool,
    /// The lock belongs to this thread's session: the guard stays here.
    _not_send: PhantomData<*const ()>,
}

impl ManagedGuard<'_> {
    /// Whether the previous owner died holding the lock (so the data it
    /// protects may be half-changed).
    ///
    /// # Examples
    ///
    /// See [`LockProxy::lock`].
    pub fn previous_owner_died(&self) -> bool {
        self.owner_died
    }

    /// The fencing token of this hold, on Redis: a number that grows with
    /// every acquisition of the lock, for a store that refuses writes
    /// stamped with a token older than one it has seen (a holder that
    /// stalled past its lease cannot then overwrite its successor's work).
    /// `None` for a manager's lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let lock = m.lock()?;
    /// assert_eq!(lock.lock()?.token(), None);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn token(&self) -> Option<u64> {
        self.token
    }

    /// Releases the lock now, reporting a failure that dropping the guard
    /// would only log.
    ///
    /// # Errors
    ///
    /// [`Error::LeaseExpired`] on Redis if the lease ran out before this
    /// release (the holder stalled past it); [`Error::ManagerGone`];
    /// [`Error::Backend`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let lock = m.lock()?;
    /// lock.lock()?.unlock()?;
    /// assert!(!lock.is_locked()?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn unlock(mut self) -> Result<()> {
        self.released = true;
        self.target.done(self.kind, Op::Release)
    }
}

impl Drop for ManagedGuard<'_> {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Err(e) = self.target.done(self.kind, Op::Release) {
            log::warn!("releasing a lock at the end of its guard failed: {e}");
        }
    }
}

macro_rules! lock_proxy {
    ($(#[$doc:meta])* $name:ident, $kind:expr, $make:ident) => {
        $(#[$doc])*
        pub struct $name {
            target: Target,
            _types: PhantomData<()>,
        }

        proxy_common!($name, $kind);

        impl $name {
            /// Takes the lock, waiting as long as it takes.
            ///
            /// # Errors
            ///
            /// [`Error::OwnerDied`]: the lock **is taken**, from a holder
            /// that died with it (on Redis: whose lease ran out before it
            /// released the lock); [`Error::ManagerGone`];
            /// [`Error::Backend`] on Redis.
            ///
            /// # Examples
            ///
            /// See the type's example.
            pub fn acquire(&self) -> Result<()> {
                self.target.acquire($kind, Wait::Forever).map(drop)
            }

            /// Takes the lock if it is free; `Ok(false)` if not.
            ///
            /// # Errors
            ///
            /// As [`acquire`](Self::acquire).
            ///
            /// # Examples
            ///
            /// See the type's example.
            pub fn try_acquire(&self) -> Result<bool> {
                self.target.acquire($kind, Wait::Never)
            }

            /// Takes the lock, waiting at most `timeout`; `Ok(false)` if it
            /// stayed busy.
            ///
            /// # Errors
            ///
            /// As [`acquire`](Self::acquire).
            ///
            /// # Examples
            ///
            /// See the type's example.
            pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
                self.target.acquire($kind, wait_for(timeout))
            }

            /// Releases the lock.
            ///
            /// # Errors
            ///
            /// [`Error::NotOwner`] if this thread does not hold it;
            /// [`Error::LeaseExpired`] on Redis if its lease ran out first
            /// (the holder stalled past it: another may have taken the
            /// lock meanwhile).
            ///
            /// # Examples
            ///
            /// See the type's example.
            pub fn release(&self) -> Result<()> {
                self.target.done($kind, Op::Release)
            }

            /// Takes the lock and returns a guard that releases it when
            /// dropped (Python's `with lock:`).
            ///
            /// # Errors
            ///
            /// [`Error::ManagerGone`].
            ///
            /// # Examples
            ///
            /// See the type's example.
            pub fn lock(&self) -> Result<ManagedGuard<'_>> {
                let owner_died = match self.target.acquire($kind, Wait::Forever) {
                    Ok(_) => false,
                    Err(Error::OwnerDied) => true,
                    Err(e) => return Err(e),
                };
                let token = self.target.token();
                Ok(ManagedGuard {
                    target: &self.target,
                    kind: $kind,
                    owner_died,
                    token,
                    released: false,
                    _not_send: PhantomData,
                })
            }

            /// The fencing token of this thread's hold of a lock on Redis
            /// (see [`ManagedGuard::token`]); `None` if this thread does
            /// not hold it, and always for a manager's lock.
            ///
            /// # Examples
            ///
            /// ```
            /// let m = multiproc::Manager::start()?;
            #[doc = concat!("let lock = m.", stringify!($make), "()?;")]
            /// lock.acquire()?;
            /// assert_eq!(lock.token(), None);
            /// # Ok::<(), multiproc::Error>(())
            /// ```
            pub fn token(&self) -> Option<u64> {
                self.target.token()
            }

            /// Whether some thread holds the lock now.
            ///
            /// # Errors
            ///
            /// [`Error::ManagerGone`].
            ///
            /// # Examples
            ///
            /// See the type's example.
            pub fn is_locked(&self) -> Result<bool> {
                self.target.boolean($kind, Op::IsSet)
            }
        }
    };
}

lock_proxy!(
    /// A lock in a manager's server (Python's `manager.Lock()`).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let lock = m.lock()?;
    /// {
    ///     let guard = lock.lock()?;
    ///     assert!(!guard.previous_owner_died());
    ///     assert!(lock.is_locked()?);
    /// }
    /// assert!(lock.try_acquire()?);
    /// lock.release()?;
    /// assert!(lock.acquire_timeout(std::time::Duration::from_millis(10))?);
    /// lock.release()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    LockProxy,
    Kind::Lock,
    lock
);

lock_proxy!(
    /// A re-entrant lock in a manager's server (Python's `manager.RLock()`):
    /// the thread holding it may take it again, and releases it as often.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let lock = m.rlock()?;
    /// lock.acquire()?;
    /// assert!(lock.try_acquire()?);
    /// lock.release()?;
    /// lock.release()?;
    /// assert!(lock.release().is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    RLockProxy,
    Kind::RLock,
    rlock
);

/// A semaphore in a manager's server (Python's `manager.Semaphore(n)` and
/// `manager.BoundedSemaphore(n)`).
///
/// # Examples
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let s = m.bounded_semaphore(1)?;
/// s.acquire()?;
/// assert!(!s.try_acquire()?);
/// s.release()?;
/// assert!(s.release().is_err()); // over its bound
/// assert_eq!(s.value()?, 1);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct SemaphoreProxy {
    target: Target,
    _types: PhantomData<()>,
}

proxy_common!(SemaphoreProxy, Kind::Semaphore);

impl SemaphoreProxy {
    /// Takes one unit, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`SemaphoreProxy`].
    pub fn acquire(&self) -> Result<()> {
        self.target.acquire(Kind::Semaphore, Wait::Forever).map(drop)
    }

    /// Takes one unit if there is one.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`SemaphoreProxy`].
    pub fn try_acquire(&self) -> Result<bool> {
        self.target.acquire(Kind::Semaphore, Wait::Never)
    }

    /// Takes one unit, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let s = m.semaphore(0)?;
    /// assert!(!s.acquire_timeout(std::time::Duration::from_millis(10))?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        self.target.acquire(Kind::Semaphore, wait_for(timeout))
    }

    /// Gives one unit back.
    ///
    /// # Errors
    ///
    /// [`Error::TooManyReleases`] past a bounded semaphore's bound.
    ///
    /// # Examples
    ///
    /// See [`SemaphoreProxy`].
    pub fn release(&self) -> Result<()> {
        self.release_n(1)
    }

    /// Gives `n` units back at once.
    ///
    /// # Errors
    ///
    /// As [`release`](Self::release).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let s = m.semaphore(0)?;
    /// s.release_n(3)?;
    /// assert_eq!(s.value()?, 3);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn release_n(&self, n: u32) -> Result<()> {
        self.target.done(Kind::Semaphore, Op::ReleaseN(u64::from(n)))
    }

    /// The units available now.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`SemaphoreProxy`].
    pub fn value(&self) -> Result<usize> {
        self.target.count(Kind::Semaphore, Op::Len)
    }
}

/// An event in a manager's server (Python's `manager.Event()`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let m = multiproc::Manager::start()?;
/// let e = m.event()?;
/// assert!(!e.wait_timeout(Duration::from_millis(10))?);
/// e.set()?;
/// assert!(e.is_set()?);
/// e.wait()?;
/// e.clear()?;
/// assert!(!e.is_set()?);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct EventProxy {
    target: Target,
    _types: PhantomData<()>,
}

proxy_common!(EventProxy, Kind::Event);

impl EventProxy {
    /// Sets the flag and wakes every waiter.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`EventProxy`].
    pub fn set(&self) -> Result<()> {
        self.target.done(Kind::Event, Op::SetFlag)
    }

    /// Clears the flag.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`EventProxy`].
    pub fn clear(&self) -> Result<()> {
        self.target.done(Kind::Event, Op::ClearFlag)
    }

    /// Whether the flag is set.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`EventProxy`].
    pub fn is_set(&self) -> Result<bool> {
        self.target.boolean(Kind::Event, Op::IsSet)
    }

    /// Waits until the flag is set.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`EventProxy`].
    pub fn wait(&self) -> Result<()> {
        self.target.boolean(Kind::Event, Op::WaitFlag(Wait::Forever)).map(drop)
    }

    /// Waits at most `timeout` for the flag; whether it is set.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`EventProxy`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.target.boolean(Kind::Event, Op::WaitFlag(wait_for(timeout)))
    }
}

/// A condition variable in a manager's server, with its own re-entrant
/// lock (Python's `manager.Condition()`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let m = multiproc::Manager::start()?;
/// let c = m.condition()?;
/// let guard = c.lock()?;
/// assert!(!c.wait_timeout(Duration::from_millis(10))?); // nobody notifies
/// c.notify_all()?;
/// drop(guard);
/// assert!(c.notify(1).is_err()); // not holding the lock
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct ConditionProxy {
    target: Target,
    _types: PhantomData<()>,
}

proxy_common!(ConditionProxy, Kind::Condition);

impl ConditionProxy {
    /// Takes the condition's lock.
    ///
    /// # Errors
    ///
    /// As [`LockProxy::acquire`].
    ///
    /// # Examples
    ///
    /// See [`ConditionProxy`].
    pub fn acquire(&self) -> Result<()> {
        self.target.acquire(Kind::Condition, Wait::Forever).map(drop)
    }

    /// Releases the condition's lock.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`].
    ///
    /// # Examples
    ///
    /// See [`ConditionProxy`].
    pub fn release(&self) -> Result<()> {
        self.target.done(Kind::Condition, Op::Release)
    }

    /// Takes the condition's lock and returns a guard that releases it.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`ConditionProxy`].
    pub fn lock(&self) -> Result<ManagedGuard<'_>> {
        let owner_died = match self.target.acquire(Kind::Condition, Wait::Forever) {
            Ok(_) => false,
            Err(Error::OwnerDied) => true,
            Err(e) => return Err(e),
        };
        Ok(ManagedGuard {
            target: &self.target,
            kind: Kind::Condition,
            owner_died,
            token: None,
            released: false,
            _not_send: PhantomData,
        })
    }

    /// Releases the lock (which this thread must hold), waits for a
    /// notification, and takes the lock back.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] without the lock.
    ///
    /// # Examples
    ///
    /// See [`ConditionProxy`].
    pub fn wait(&self) -> Result<()> {
        self.target.cond_wait(Wait::Forever).map(drop)
    }

    /// As [`wait`](Self::wait), giving up after `timeout`; whether a
    /// notification came. The lock is held again either way.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    ///
    /// # Examples
    ///
    /// See [`ConditionProxy`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.target.cond_wait(wait_for(timeout))
    }

    /// Wakes at most `n` waiters (this thread must hold the lock).
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] without the lock.
    ///
    /// # Examples
    ///
    /// See [`ConditionProxy`].
    pub fn notify(&self, n: u32) -> Result<()> {
        self.target.done(Kind::Condition, Op::Notify(u64::from(n)))
    }

    /// Wakes every waiter (this thread must hold the lock).
    ///
    /// # Errors
    ///
    /// As [`notify`](Self::notify).
    ///
    /// # Examples
    ///
    /// See [`ConditionProxy`].
    pub fn notify_all(&self) -> Result<()> {
        self.target.done(Kind::Condition, Op::Notify(u64::MAX))
    }
}

/// A barrier in a manager's server (Python's `manager.Barrier(n)`).
///
/// # Examples
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let b = m.barrier(1)?;
/// assert_eq!(b.wait()?, 0);
/// assert_eq!(b.parties()?, 1);
/// b.abort()?;
/// assert!(b.is_broken()?);
/// assert!(b.wait().is_err());
/// b.reset()?;
/// assert!(!b.is_broken()?);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct BarrierProxy {
    target: Target,
    _types: PhantomData<()>,
}

proxy_common!(BarrierProxy, Kind::Barrier);

impl BarrierProxy {
    fn state(&self) -> Result<(u64, u64, bool)> {
        match self.target.call(Kind::Barrier, Op::BarrierState)? {
            Response::Barrier(parties, waiting, broken) => Ok((parties, waiting, broken)),
            other => Err(unexpected(&other)),
        }
    }

    /// Waits until all parties wait; returns this party's arrival index
    /// (`0..parties`).
    ///
    /// # Errors
    ///
    /// [`Error::BrokenBarrier`] if the barrier is or becomes broken.
    ///
    /// # Examples
    ///
    /// See [`BarrierProxy`].
    pub fn wait(&self) -> Result<usize> {
        self.target.count(Kind::Barrier, Op::BarrierWait(Wait::Forever))
    }

    /// As [`wait`](Self::wait), for at most `timeout`; a timeout breaks the
    /// barrier (as in Python).
    ///
    /// # Errors
    ///
    /// [`Error::BrokenBarrier`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let b = m.barrier(2)?;
    /// assert!(b.wait_timeout(std::time::Duration::from_millis(10)).is_err());
    /// assert!(b.is_broken()?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize> {
        self.target.count(Kind::Barrier, Op::BarrierWait(wait_for(timeout)))
    }

    /// Breaks the barrier: current and future waiters fail.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`BarrierProxy`].
    pub fn abort(&self) -> Result<()> {
        self.target.done(Kind::Barrier, Op::Abort)
    }

    /// Mends the barrier; parties waiting now fail.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`BarrierProxy`].
    pub fn reset(&self) -> Result<()> {
        self.target.done(Kind::Barrier, Op::Reset)
    }

    /// How many parties the barrier waits for.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`BarrierProxy`].
    pub fn parties(&self) -> Result<u64> {
        Ok(self.state()?.0)
    }

    /// How many parties wait now.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.barrier(3)?.n_waiting()?, 0);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn n_waiting(&self) -> Result<u64> {
        Ok(self.state()?.1)
    }

    /// Whether the barrier is broken.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`BarrierProxy`].
    pub fn is_broken(&self) -> Result<bool> {
        Ok(self.state()?.2)
    }
}

/// A FIFO queue in a manager's server (Python's `manager.Queue()` and
/// `manager.JoinableQueue()`): reachable from remote programs and storable
/// in other shared objects, unlike [`crate::Queue`] (which is much faster
/// between local processes).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let m = multiproc::Manager::start()?;
/// let q = m.queue::<String>()?;
/// q.put("job".to_owned())?;
/// assert_eq!(q.len()?, 1);
/// assert_eq!(q.get()?, "job");
/// assert!(q.get_timeout(Duration::from_millis(10)).is_err());
/// q.task_done()?;
/// q.join()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct QueueProxy<T> {
    target: Target,
    _types: PhantomData<fn() -> T>,
}

proxy_common!(QueueProxy<T>, Kind::Queue);

impl<T: Serialize + DeserializeOwned> QueueProxy<T> {
    fn put_with(&self, item: &T, wait: Wait) -> Result<()> {
        self.target.done(Kind::Queue, Op::Put(dynval::encode(item)?, wait))
    }

    fn get_with(&self, wait: Wait) -> Result<T> {
        self.target.value(Kind::Queue, Op::Take(wait))
    }

    /// Adds `item`, waiting for room in a bounded queue.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`]; [`Error::Encode`].
    ///
    /// # Examples
    ///
    /// See [`QueueProxy`].
    pub fn put(&self, item: T) -> Result<()> {
        self.put_with(&item, Wait::Forever)
    }

    /// Adds `item` if there is room now.
    ///
    /// # Errors
    ///
    /// [`Error::Full`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let q = m.bounded_queue(1)?;
    /// q.try_put(1)?;
    /// assert!(matches!(q.try_put(2), Err(multiproc::Error::Full)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_put(&self, item: T) -> Result<()> {
        self.put_with(&item, Wait::Never)
    }

    /// Adds `item`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let q = m.bounded_queue(1)?;
    /// q.put(1)?;
    /// assert!(q.put_timeout(2, std::time::Duration::from_millis(10)).is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
        self.put_with(&item, wait_for(timeout))
    }

    /// Takes the oldest item, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`]; [`Error::Decode`].
    ///
    /// # Examples
    ///
    /// See [`QueueProxy`].
    pub fn get(&self) -> Result<T> {
        self.get_with(Wait::Forever)
    }

    /// Takes the oldest item if there is one.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let q = m.queue::<u8>()?;
    /// assert!(matches!(q.try_get(), Err(multiproc::Error::Empty)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_get(&self) -> Result<T> {
        self.get_with(Wait::Never)
    }

    /// Takes the oldest item, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`].
    ///
    /// # Examples
    ///
    /// See [`QueueProxy`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_with(wait_for(timeout))
    }

    /// The number of items now (exact).
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`QueueProxy`].
    pub fn len(&self) -> Result<usize> {
        self.target.count(Kind::Queue, Op::Len)
    }

    /// Whether the queue is empty now.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(m.queue::<u8>()?.is_empty()?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Marks one taken item as processed (Python's `task_done`).
    ///
    /// # Errors
    ///
    /// [`Error::TaskDoneTooOften`].
    ///
    /// # Examples
    ///
    /// See [`QueueProxy`].
    pub fn task_done(&self) -> Result<()> {
        self.target.done(Kind::Queue, Op::TaskDone)
    }

    /// Waits until every item put has been marked done.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`QueueProxy`].
    pub fn join(&self) -> Result<()> {
        self.target.done(Kind::Queue, Op::Join(Wait::Forever))
    }

    /// As [`join`](Self::join), for at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let q = m.joinable_queue()?;
    /// q.put(1)?;
    /// assert!(q.join_timeout(std::time::Duration::from_millis(10)).is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        self.target.done(Kind::Queue, Op::Join(wait_for(timeout)))
    }
}

/// A fixed-length array in a manager's server (Python's
/// `manager.Array(typecode, sequence)`).
///
/// # Examples
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let a = m.array([0i32; 4])?;
/// a.set(-1, 7)?;
/// assert_eq!(a.to_vec()?, [0, 0, 0, 7]);
/// a.update(|v| v.iter_mut().for_each(|x| *x += 1))?;
/// assert_eq!(a.get(0)?, 1);
/// assert_eq!(a.len()?, 4);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct ArrayProxy<T> {
    target: Target,
    _types: PhantomData<fn() -> T>,
}

proxy_common!(ArrayProxy<T>, Kind::Array);

impl<T: Serialize + DeserializeOwned> ArrayProxy<T> {
    /// The element at `index` (negative counts from the end).
    ///
    /// # Errors
    ///
    /// [`Error::IndexOutOfRange`].
    ///
    /// # Examples
    ///
    /// See [`ArrayProxy`].
    pub fn get(&self, index: isize) -> Result<T> {
        self.target.value(Kind::Array, Op::Get(python_index(index)))
    }

    /// Replaces the element at `index`.
    ///
    /// # Errors
    ///
    /// [`Error::IndexOutOfRange`].
    ///
    /// # Examples
    ///
    /// See [`ArrayProxy`].
    pub fn set(&self, index: isize, value: T) -> Result<()> {
        self.target.done(Kind::Array, Op::Set(python_index(index), dynval::encode(&value)?))
    }

    /// The number of elements.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`ArrayProxy`].
    pub fn len(&self) -> Result<usize> {
        self.target.count(Kind::Array, Op::Len)
    }

    /// Whether the array has no elements.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(m.array::<u8>([])?.is_empty()?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// A copy of every element (Python's `arr[:]`).
    ///
    /// # Errors
    ///
    /// [`Error::Decode`].
    ///
    /// # Examples
    ///
    /// See [`ArrayProxy`].
    pub fn to_vec(&self) -> Result<Vec<T>> {
        self.target.many(Kind::Array, Op::All)
    }

    /// Changes elements atomically (the length stays): `f` gets the current
    /// elements; if another process changed the array meanwhile, `f` runs
    /// again.
    ///
    /// # Errors
    ///
    /// [`Error::Manager`] if `f` changed the length.
    ///
    /// # Examples
    ///
    /// See [`ArrayProxy`].
    pub fn update(&self, mut f: impl FnMut(&mut [T])) -> Result<()> {
        self.target.update(
            Kind::Array,
            || Part::Whole,
            |slot| {
                let (_, encoded) = edit_items::<T, [T]>(slot, &mut f)?;
                Ok(Some(encoded))
            },
        )
    }
}
