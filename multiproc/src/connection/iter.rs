//! Iterators over the messages a [`Connection`] receives.

use std::fmt;

use serde::de::DeserializeOwned;

use super::Connection;
use crate::{Error, Result};

/// A blocking iterator over received messages, made by
/// [`Connection::iter`] (or [`Receiver::iter`](super::Receiver::iter)): it
/// ends once the peer is gone and everything it sent was received.
///
/// # Examples
///
/// ```
/// let (a, b) = multiproc::pipe::<u8>()?;
/// a.send(&1)?;
/// a.send(&2)?;
/// drop(a);
/// assert_eq!(b.iter().collect::<Result<Vec<_>, _>>()?, [1, 2]);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[must_use = "iterators do nothing unless consumed"]
pub struct Iter<'a, S, R> {
    conn: &'a Connection<S, R>,
    done: bool,
}

/// An iterator over the messages that can be received now, made by
/// [`Connection::try_iter`]: it ends when none is waiting (or the peer is
/// gone).
///
/// # Examples
///
/// ```
/// let (a, b) = multiproc::pipe::<u8>()?;
/// a.send(&1)?;
/// assert_eq!(b.try_iter().count(), 1);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[must_use = "iterators do nothing unless consumed"]
pub struct TryIter<'a, S, R> {
    conn: &'a Connection<S, R>,
    done: bool,
}

impl<S, R: DeserializeOwned> Connection<S, R> {
    /// A blocking iterator over the messages received, ending once the peer
    /// is gone and everything it sent was received (as crossbeam's
    /// `Receiver::iter` ends at disconnection).
    ///
    /// Each message is a `Result`: one that cannot be received (it does not
    /// decode as `R`, say) is yielded as an error once, then the iterator
    /// ends. [`Error::Disconnected`] is the normal end and is not yielded.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::{Connection, Process, pipe};
    ///
    /// fn count_to_three(conn: Connection<u32>) {
    ///     for i in 1..=3 {
    ///         conn.send(&i).unwrap();
    ///     }
    /// } // the end is dropped with the process: the parent's loop ends
    ///
    /// let (parent, child) = pipe()?;
    /// let p = Process::spawn(count_to_three, child)?;
    /// let mut got = Vec::new();
    /// for message in &parent {
    ///     got.push(message?);
    /// }
    /// assert_eq!(got, [1, 2, 3]);
    /// p.join()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn iter(&self) -> Iter<'_, S, R> {
        Iter { conn: self, done: false }
    }

    /// An iterator over the messages that can be received now, without
    /// waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = multiproc::pipe::<u8>()?;
    /// a.send(&1)?;
    /// a.send(&2)?;
    /// assert_eq!(b.try_iter().collect::<Result<Vec<_>, _>>()?, [1, 2]);
    /// assert_eq!(b.try_iter().count(), 0);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, S, R> {
        TryIter { conn: self, done: false }
    }
}

impl<S, R: DeserializeOwned> Iterator for Iter<'_, S, R> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        crate::iter::step(&mut self.done, || self.conn.recv(), |e| matches!(e, Error::Disconnected))
    }
}

impl<S, R: DeserializeOwned> Iterator for TryIter<'_, S, R> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        crate::iter::step(
            &mut self.done,
            || self.conn.try_recv(),
            |e| matches!(e, Error::Disconnected | Error::Empty),
        )
    }
}

impl<S, R: DeserializeOwned> std::iter::FusedIterator for Iter<'_, S, R> {}
impl<S, R: DeserializeOwned> std::iter::FusedIterator for TryIter<'_, S, R> {}

impl<'a, S, R: DeserializeOwned> IntoIterator for &'a Connection<S, R> {
    type Item = Result<R>;
    type IntoIter = Iter<'a, S, R>;

    fn into_iter(self) -> Iter<'a, S, R> {
        self.iter()
    }
}

impl<S, R> fmt::Debug for Iter<'_, S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("conn", self.conn).field("done", &self.done).finish()
    }
}

impl<S, R> fmt::Debug for TryIter<'_, S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryIter").field("conn", self.conn).field("done", &self.done).finish()
    }
}
