//! `SimpleQueue<T>`: an unbounded queue with the minimal API.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Iter, PutError, Queue, TryIter};
use crate::Result;

/// An unbounded queue with just `put`, `get`, `is_empty` and `close`
/// (Python's `SimpleQueue`), and the iterators of [`Queue`].
///
/// # Examples
///
/// ```
/// let q = multiproc::SimpleQueue::new()?;
/// q.put("job".to_owned())?;
/// assert_eq!(q.get()?, "job");
/// assert!(q.is_empty());
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct SimpleQueue<T> {
    inner: Queue<T>,
}

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// A new, empty queue.
    ///
    /// # Errors
    ///
    /// [`Error::Os`](crate::Error::Os) if the shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::SimpleQueue::<u8>::new()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Ok(Self { inner: Queue::new()? })
    }

    /// Puts `item`.
    ///
    /// # Errors
    ///
    /// As [`Queue::put`].
    ///
    /// # Examples
    ///
    /// ```
    /// multiproc::SimpleQueue::new()?.put(1)?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.inner.put(item)
    }

    /// Takes the oldest item, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`Queue::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::SimpleQueue::new()?;
    /// q.put(1)?;
    /// assert_eq!(q.get()?, 1);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn get(&self) -> Result<T> {
        self.inner.get()
    }

    /// [`get`](Self::get), awaited (as [`Queue::get_async`]; cancel-safe).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let q = multiproc::SimpleQueue::new()?;
    /// q.put_async(3u8).await?;
    /// assert_eq!(q.get_async().await?, 3);
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn get_async(&self) -> Result<T> {
        self.inner.get_async().await
    }

    /// [`put`](Self::put), awaited (as [`Queue::put_async`]; cancel-safe).
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put).
    ///
    /// # Examples
    ///
    /// See [`get_async`](Self::get_async).
    pub async fn put_async(&self, item: T) -> Result<(), PutError<T>> {
        self.inner.put_async(item).await
    }

    /// Whether the queue is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(multiproc::SimpleQueue::<u8>::new()?.is_empty());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Closes the queue (see [`Queue::close`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::SimpleQueue::<u8>::new()?;
    /// q.close();
    /// assert!(q.put(1).is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn close(&self) {
        self.inner.close();
    }

    /// A blocking iterator over the items, ending once the queue is closed
    /// and empty (see [`Queue::iter`]); `for item in &q` does the same.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::{Process, SimpleQueue};
    ///
    /// fn produce(q: SimpleQueue<u32>) {
    ///     for i in 1..=3 {
    ///         q.put(i).unwrap();
    ///     }
    ///     q.close();
    /// }
    ///
    /// let q = SimpleQueue::new()?;
    /// let p = Process::spawn(produce, q.clone())?;
    /// let mut sum = 0;
    /// for item in &q {
    ///     sum += item?;
    /// }
    /// assert_eq!(sum, 6);
    /// p.join()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        self.inner.iter()
    }

    /// An iterator over the items there now, without waiting (see
    /// [`Queue::try_iter`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::SimpleQueue::new()?;
    /// q.put('a')?;
    /// q.put('b')?;
    /// let items: Vec<char> = q.try_iter().collect::<Result<_, _>>()?;
    /// assert_eq!(items, ['a', 'b']);
    /// assert_eq!(q.try_iter().count(), 0);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T> {
        self.inner.try_iter()
    }
}

impl<'a, T: Serialize + DeserializeOwned> IntoIterator for &'a SimpleQueue<T> {
    type Item = Result<T>;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SimpleQueue").field(&self.inner).finish()
    }
}
