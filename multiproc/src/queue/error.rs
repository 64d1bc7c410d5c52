//! `PutError`: why a put failed, with the item handed back.

use std::fmt;

use crate::Error;

/// Why an item was not put; the item comes back.
///
/// # Examples
///
/// ```
/// use multiproc::{PutError, Queue};
///
/// let q = Queue::bounded(1)?;
/// q.put(1)?;
/// match q.try_put(2) {
///     Err(PutError::Full(item)) => assert_eq!(item, 2),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), multiproc::Error>(())
/// ```
#[non_exhaustive]
pub enum PutError<T> {
    /// `try_put` found no room now (or the item is larger than the ring).
    Full(T),
    /// `put_timeout` ran out of time; nothing of the item was put.
    Timeout(T),
    /// The queue is closed.
    Closed(T),
    /// The item could not be put (it did not encode, for instance).
    Failed(T, Error),
}

impl<T> PutError<T> {
    /// The item that was not put.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::new()?;
    /// q.close();
    /// assert_eq!(q.put("x".to_owned()).unwrap_err().into_inner(), "x");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(item) | Self::Timeout(item) | Self::Closed(item) | Self::Failed(item, _) => {
                item
            }
        }
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Timeout(_) => f.write_str("Timeout(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
            Self::Failed(_, error) => f.debug_tuple("Failed").field(&"..").field(error).finish(),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("queue is full"),
            Self::Timeout(_) => f.write_str("timed out waiting for room in the queue"),
            Self::Closed(_) => f.write_str("queue closed"),
            Self::Failed(_, error) => write!(f, "could not put the item: {error}"),
        }
    }
}

impl<T> std::error::Error for PutError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Failed(_, error) => Some(error),
            _ => None,
        }
    }
}

impl<T> From<PutError<T>> for Error {
    fn from(error: PutError<T>) -> Self {
        match error {
            PutError::Full(_) => Self::Full,
            PutError::Timeout(_) => Self::Timeout,
            PutError::Closed(_) => Self::Closed,
            PutError::Failed(_, error) => error,
        }
    }
}
