//! Iterators over the items of a [`Queue`] (and of a
//! [`SimpleQueue`](super::SimpleQueue), which holds one).

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Queue;
use crate::{Error, Result};

/// A blocking iterator over a queue's items, made by [`Queue::iter`] or
/// [`SimpleQueue::iter`](super::SimpleQueue::iter): it ends once the queue
/// is closed and empty.
///
/// # Examples
///
/// ```
/// let q = multiproc::Queue::new()?;
/// q.put(1)?;
/// q.put(2)?;
/// q.close();
/// let items: Vec<i32> = q.iter().collect::<Result<_, _>>()?;
/// assert_eq!(items, [1, 2]);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[must_use = "iterators do nothing unless consumed"]
pub struct Iter<'a, T> {
    queue: &'a Queue<T>,
    done: bool,
}

/// An iterator over the items a queue holds now, made by
/// [`Queue::try_iter`] or [`SimpleQueue::try_iter`](super::SimpleQueue::try_iter):
/// it ends when the queue is empty (or closed).
///
/// # Examples
///
/// ```
/// let q = multiproc::Queue::new()?;
/// q.put('a')?;
/// q.put('b')?;
/// let items: Vec<char> = q.try_iter().collect::<Result<_, _>>()?;
/// assert_eq!(items, ['a', 'b']);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[must_use = "iterators do nothing unless consumed"]
pub struct TryIter<'a, T> {
    queue: &'a Queue<T>,
    done: bool,
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// A blocking iterator over the items, ending once the queue is closed
    /// and empty (as crossbeam's `Receiver::iter` ends at disconnection).
    ///
    /// Each item is a `Result`: an item that cannot be taken (it does not
    /// decode as `T`, say) is yielded as an error once, then the iterator
    /// ends. [`Error::Closed`] is the normal end and is not yielded.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::{Process, Queue};
    ///
    /// fn produce(q: Queue<u32>) {
    ///     for i in 0..3 {
    ///         q.put(i).unwrap();
    ///     }
    ///     q.close();
    /// }
    ///
    /// let q = Queue::new()?;
    /// let p = Process::spawn(produce, q.clone())?;
    /// let mut sum = 0;
    /// for item in &q {
    ///     sum += item?;
    /// }
    /// assert_eq!(sum, 3);
    /// p.join()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { queue: self, done: false }
    }

    /// An iterator over the items there now, without waiting: it ends at the
    /// first moment the queue is empty, or once it is closed and empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::new()?;
    /// q.put(7u8)?;
    /// assert_eq!(q.try_iter().count(), 1);
    /// assert_eq!(q.try_iter().count(), 0);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { queue: self, done: false }
    }
}

impl<T: Serialize + DeserializeOwned> Iterator for Iter<'_, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        crate::iter::step(&mut self.done, || self.queue.get(), |e| matches!(e, Error::Closed))
    }
}

impl<T: Serialize + DeserializeOwned> Iterator for TryIter<'_, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        crate::iter::step(
            &mut self.done,
            || self.queue.try_get(),
            |e| matches!(e, Error::Closed | Error::Empty),
        )
    }
}

impl<T: Serialize + DeserializeOwned> std::iter::FusedIterator for Iter<'_, T> {}
impl<T: Serialize + DeserializeOwned> std::iter::FusedIterator for TryIter<'_, T> {}

impl<'a, T: Serialize + DeserializeOwned> IntoIterator for &'a Queue<T> {
    type Item = Result<T>;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("queue", self.queue).field("done", &self.done).finish()
    }
}

impl<T> fmt::Debug for TryIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryIter").field("queue", self.queue).field("done", &self.done).finish()
    }
}
