//! One-way pipes as typed halves: a [`Receiver`] has no `send`, a
//! [`Sender`] no `recv`, so using an end the wrong way does not compile.

use std::fmt;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::conn::ring_end;
use super::iter::{Iter, TryIter};
use super::{Connection, Waitable};
use crate::queue::raw::{DEFAULT_RING, RawQueue};
use crate::{Error, Result, os};

/// A one-way pipe: `(reader, writer)`, as Python's `Pipe(duplex=False)`.
///
/// The ends are typed halves: the [`Receiver`] can only receive and the
/// [`Sender`] can only send, so a `send` on the reading end is a compile
/// error rather than a failure at run time.
///
/// # Errors
///
/// [`Error::Os`] if the shared memory or the socket cannot be created.
///
/// # Examples
///
/// ```
/// let (reader, writer) = multiproc::connection::pipe_oneway::<u8>()?;
/// writer.send(&1)?;
/// assert_eq!(reader.recv()?, 1);
/// # Ok::<(), multiproc::Error>(())
/// ```
///
/// The reading end has no `send`:
///
/// ```compile_fail
/// let (reader, writer) = multiproc::connection::pipe_oneway::<u8>()?;
/// reader.send(&2)?;
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn pipe_oneway<T>() -> Result<(Receiver<T>, Sender<T>)> {
    let (a, b) = os::stream_pair().map_err(Error::os("create a socket pair"))?;
    let ring = RawQueue::create(0, DEFAULT_RING)?;
    Ok((
        Receiver { conn: ring_end(None, Some(ring.clone()), a) },
        Sender { conn: ring_end(Some(ring), None, b) },
    ))
}

/// The reading end of a [`pipe_oneway`]: receives `T`, cannot send.
///
/// Clones share the same end; it travels to a child process as an argument
/// and keeps working there.
///
/// # Examples
///
/// ```
/// use multiproc::Process;
/// use multiproc::connection::{Receiver, pipe_oneway};
///
/// fn total(r: Receiver<u32>) -> u32 {
///     r.iter().map(|m| m.unwrap()).sum()
/// }
///
/// let (r, w) = pipe_oneway()?;
/// let p = Process::spawn(total, r)?;
/// for i in 1..=4 {
///     w.send(&i)?;
/// }
/// drop(w); // the child's loop ends
/// assert_eq!(p.join()?, 10);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Serialize, Deserialize)]
#[serde(bound = "", transparent)]
pub struct Receiver<T> {
    conn: Connection<T>,
}

/// The writing end of a [`pipe_oneway`]: sends `T`, cannot receive.
///
/// # Examples
///
/// ```
/// use multiproc::Process;
/// use multiproc::connection::{Sender, pipe_oneway};
///
/// fn greet(w: Sender<String>) {
///     w.send(&"hello".to_owned()).unwrap();
/// }
///
/// let (r, w) = pipe_oneway()?;
/// let p = Process::spawn(greet, w)?;
/// assert_eq!(r.recv()?, "hello");
/// p.join()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Serialize, Deserialize)]
#[serde(bound = "", transparent)]
pub struct Sender<T> {
    conn: Connection<T>,
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        Self { conn: self.conn.clone() }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self { conn: self.conn.clone() }
    }
}

impl<T: DeserializeOwned> Receiver<T> {
    /// Receives the next message, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`Connection::recv`]: [`Error::Disconnected`] once the writer is
    /// gone and nothing is left.
    ///
    /// # Examples
    ///
    /// ```
    /// let (r, w) = multiproc::connection::pipe_oneway::<char>()?;
    /// w.send(&'x')?;
    /// assert_eq!(r.recv()?, 'x');
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn recv(&self) -> Result<T> {
        self.conn.recv()
    }

    /// [`recv`](Self::recv), awaited (as [`Connection::recv_async`];
    /// cancel-safe).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (rx, tx) = multiproc::connection::pipe_oneway::<u8>()?;
    /// tx.send_async(&4).await?;
    /// assert_eq!(rx.recv_async().await?, 4);
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn recv_async(&self) -> Result<T> {
        self.conn.recv_async().await
    }

    /// Receives a message if one is there now.
    ///
    /// # Errors
    ///
    /// As [`Connection::try_recv`]: [`Error::Empty`] if none.
    ///
    /// # Examples
    ///
    /// ```
    /// let (r, _w) = multiproc::connection::pipe_oneway::<u8>()?;
    /// assert!(matches!(r.try_recv(), Err(multiproc::Error::Empty)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_recv(&self) -> Result<T> {
        self.conn.try_recv()
    }

    /// Receives a message, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Connection::recv_timeout`]: [`Error::Timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let (r, _w) = multiproc::connection::pipe_oneway::<u8>()?;
    /// assert!(matches!(r.recv_timeout(Duration::from_millis(5)), Err(multiproc::Error::Timeout)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T> {
        self.conn.recv_timeout(timeout)
    }

    /// A blocking iterator over the messages, ending once the writer is gone
    /// (see [`Connection::iter`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let (r, w) = multiproc::connection::pipe_oneway::<u8>()?;
    /// w.send(&1)?;
    /// drop(w);
    /// assert_eq!(r.iter().collect::<Result<Vec<_>, _>>()?, [1]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn iter(&self) -> Iter<'_, T, T> {
        self.conn.iter()
    }

    /// An iterator over the messages there now (see
    /// [`Connection::try_iter`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let (r, w) = multiproc::connection::pipe_oneway::<u8>()?;
    /// w.send(&1)?;
    /// assert_eq!(r.try_iter().count(), 1);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T, T> {
        self.conn.try_iter()
    }
}

impl<T> Receiver<T> {
    /// Receives one message as raw bytes.
    ///
    /// # Errors
    ///
    /// As [`Connection::recv_bytes`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (r, w) = multiproc::connection::pipe_oneway::<()>()?;
    /// w.send_bytes(b"raw")?;
    /// assert_eq!(r.recv_bytes()?, b"raw");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        self.conn.recv_bytes()
    }

    /// Receives one message into `buf`, returning its length.
    ///
    /// # Errors
    ///
    /// As [`Connection::recv_bytes_into`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (r, w) = multiproc::connection::pipe_oneway::<()>()?;
    /// w.send_bytes(b"hi")?;
    /// let mut buf = [0u8; 8];
    /// assert_eq!(r.recv_bytes_into(&mut buf)?, 2);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.conn.recv_bytes_into(buf)
    }

    /// Whether a message can be received now, or the writer is gone; waits
    /// at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Connection::poll`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let (r, w) = multiproc::connection::pipe_oneway::<u8>()?;
    /// assert!(!r.poll(Duration::ZERO)?);
    /// w.send(&1)?;
    /// assert!(r.poll(Duration::from_secs(1))?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn poll(&self, timeout: Duration) -> Result<bool> {
        self.conn.poll(timeout)
    }

    /// Closes this end for every clone and process sharing it: the writer's
    /// `send` fails with [`Error::Disconnected`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (r, w) = multiproc::connection::pipe_oneway::<u8>()?;
    /// r.close();
    /// assert!(matches!(w.send(&1), Err(multiproc::Error::Disconnected)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn close(&self) {
        self.conn.close();
    }
}

impl<T: Serialize> Sender<T> {
    /// Sends `message`.
    ///
    /// # Errors
    ///
    /// As [`Connection::send`]: [`Error::Disconnected`] if the reader is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// let (r, w) = multiproc::connection::pipe_oneway::<Vec<u8>>()?;
    /// w.send(&vec![1, 2])?;
    /// assert_eq!(r.recv()?, [1, 2]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn send(&self, message: &T) -> Result<()> {
        self.conn.send(message)
    }

    /// [`send`](Self::send), awaited (as [`Connection::send_async`];
    /// cancel-safe).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    ///
    /// # Examples
    ///
    /// See [`Receiver::recv_async`].
    pub async fn send_async(&self, message: &T) -> Result<()> {
        self.conn.send_async(message).await
    }
}

impl<T> Sender<T> {
    /// Sends one message of raw bytes.
    ///
    /// # Errors
    ///
    /// As [`Connection::send_bytes`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (r, w) = multiproc::connection::pipe_oneway::<()>()?;
    /// w.send_bytes(b"raw")?;
    /// assert_eq!(r.recv_bytes()?, b"raw");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.conn.send_bytes(bytes)
    }

    /// Closes this end for every clone and process sharing it: the reader
    /// gets what was sent, then [`Error::Disconnected`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (r, w) = multiproc::connection::pipe_oneway::<u8>()?;
    /// w.send(&1)?;
    /// w.close();
    /// assert_eq!(r.recv()?, 1);
    /// assert!(matches!(r.recv(), Err(multiproc::Error::Disconnected)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn close(&self) {
        self.conn.close();
    }
}

impl<'a, T: DeserializeOwned> IntoIterator for &'a Receiver<T> {
    type Item = Result<T>;
    type IntoIter = Iter<'a, T, T>;

    fn into_iter(self) -> Iter<'a, T, T> {
        self.iter()
    }
}

impl<T> Waitable for Receiver<T> {
    fn is_ready(&self) -> bool {
        self.conn.ready()
    }

    fn source(&self) -> (BorrowedFd<'_>, bool) {
        self.conn.wait_source()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}
