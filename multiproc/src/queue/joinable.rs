//! `JoinableQueue<T>`: a queue whose producers can wait for every item to be
//! processed.

use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Imp, Joinable, Queue, QueueBuilder};
use crate::shm::park::deadline_after;
use crate::{Error, Result};

/// A [`Queue`] with `task_done` and `join` (Python's `JoinableQueue`).
///
/// Every method of [`Queue`] is available (through `Deref`). A consumer
/// calls [`task_done`](JoinableQueue::task_done) once it has processed an
/// item; [`join`](JoinableQueue::join) waits until every item ever put has
/// been marked so. The count lives in the queue's shared memory, so killing
/// a producer never leaves `join` waiting for an item that was not put.
///
/// # Examples
///
/// ```
/// use multiproc::{JoinableQueue, Process};
///
/// fn worker(q: JoinableQueue<u32>) {
///     while let Ok(job) = q.get() {
///         let _ = job * 2; // work
///         q.task_done().unwrap();
///     }
/// }
///
/// let q = JoinableQueue::new()?;
/// let w = Process::spawn(worker, q.clone())?;
/// for job in 0..10 {
///     q.put(job)?;
/// }
/// q.join(); // all ten processed
/// q.close();
/// w.join()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct JoinableQueue<T> {
    inner: Queue<T>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// An unbounded joinable queue.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::JoinableQueue::<u8>::new()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Ok(Self { inner: Queue::new()? })
    }

    /// A joinable queue holding at most `maxsize` items.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::JoinableQueue::<u8>::bounded(8)?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn bounded(maxsize: usize) -> Result<Self> {
        Ok(Self { inner: Queue::bounded(maxsize)? })
    }

    /// Marks one item as processed.
    ///
    /// # Errors
    ///
    /// [`Error::TaskDoneTooOften`] if every item put is already marked
    /// (Python raises `ValueError`).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::JoinableQueue::new()?;
    /// q.put(1)?;
    /// q.get()?;
    /// q.task_done()?;
    /// assert!(q.task_done().is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    ///
    /// On Redis, it also acknowledges the oldest item this handle took and
    /// has not marked yet: until then, that item is delivered again to
    /// another consumer if this one dies (after the visibility timeout).
    ///
    /// # Errors (Redis)
    ///
    /// [`Error::Backend`] if the server cannot be reached.
    pub fn task_done(&self) -> Result<()> {
        let done = match self.inner.imp() {
            Imp::Local(raw) => raw.ring().task_done(),
            #[cfg(feature = "redis")]
            Imp::Redis(q, _) => q.task_done()?,
        };
        if done { Ok(()) } else { Err(Error::TaskDoneTooOften) }
    }

    /// Waits until every item put has been marked done.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::JoinableQueue::<u8>::new()?;
    /// q.join(); // nothing was put
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    ///
    /// On Redis, it looks every 1 to 50 ms; a failure to reach the server
    /// is logged and looked again.
    pub fn join(&self) {
        match self.inner.imp() {
            Imp::Local(raw) => {
                raw.ring().join(None);
            }
            #[cfg(feature = "redis")]
            Imp::Redis(q, _) => {
                while let Err(e) = q.join(None) {
                    log::warn!("{self:?}: join failed, trying again: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Waits at most `timeout`; returns whether every item was marked done.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = multiproc::JoinableQueue::new()?;
    /// q.put(1)?;
    /// assert!(!q.join_timeout(Duration::from_millis(5)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    ///
    /// On Redis, a failure to reach the server within the timeout is
    /// logged and counts as not done.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        match self.inner.imp() {
            Imp::Local(raw) => raw.ring().join(deadline_after(timeout)),
            #[cfg(feature = "redis")]
            Imp::Redis(q, _) => {
                let until = std::time::Instant::now() + timeout;
                q.join(Some(until)).unwrap_or_else(|e| {
                    log::warn!("{self:?}: join failed: {e}");
                    false
                })
            }
        }
    }

    /// A builder: the item bound, and the Redis back-end (see
    /// [`QueueBuilder`]); `build` makes the queue.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::JoinableQueue::<u8>::builder().maxsize(4).build()?;
    /// assert_eq!(q.maxsize(), Some(4));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn builder() -> QueueBuilder<T, Joinable> {
        Queue::builder().joinable()
    }
}

impl<T> JoinableQueue<T> {
    pub(crate) fn from_queue(inner: Queue<T>) -> Self {
        Self { inner }
    }
}

impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;

    fn deref(&self) -> &Queue<T> {
        &self.inner
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JoinableQueue").field(&self.inner).finish()
    }
}
