//! `Connection<S, R>`: typed messages both ways, over shared memory or a
//! socket.

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::os;
use crate::queue::raw::{DEFAULT_RING, PutFail, RawQueue, Wait, WithoutFds};
use crate::shm::park::deadline_after;
use crate::shm::ring::FDS;
use crate::transfer::codec;
use crate::transfer::frame::{self, FrameReader, Progress};
use crate::{Error, Result};

/// How often a blocked pipe end looks whether its peer is gone.
const PEER_CHECK: Duration = Duration::from_millis(20);
/// A pipe end checks for a gone peer on every this many sends.
const SENDS_PER_CHECK: u32 = 64;
/// The default largest frame a socket connection accepts.
pub(crate) const DEFAULT_MAX_FRAME: u64 = crate::transfer::DEFAULT_MAX_MESSAGE;
/// When a socket wait's polling phase ends: the wait policy's poll budget
/// from now (see [`WaitPolicy`](crate::WaitPolicy)), or earlier.
fn spin_deadline(deadline: Option<Instant>) -> Instant {
    let until = Instant::now() + crate::wait_policy::budget().total;
    deadline.map_or(until, |d| d.min(until))
}

/// How many bytes a socket connection reads at a time: a small message
/// costs one `recvmsg`.
const READ_AHEAD: usize = 32 << 10;

pub(crate) enum Transport {
    /// A pipe: rings in shared memory, and a socket for descriptors and for
    /// noticing that the peer is gone.
    Ring { tx: Option<RawQueue>, rx: Option<RawQueue>, sock: OwnedFd, sends: AtomicU32 },
    /// A socket carrying frames.
    Socket { sock: OwnedFd, fds_allowed: bool, max_frame: u64 },
}

struct Inner {
    transport: Transport,
    /// Partial frames read from the socket (descriptor frames for a pipe).
    reader: Mutex<FrameReader>,
    /// One frame at a time goes out on the socket.
    writer: Mutex<()>,
}

impl Inner {
    fn sock(&self) -> BorrowedFd<'_> {
        match &self.transport {
            Transport::Ring { sock, .. } | Transport::Socket { sock, .. } => sock.as_fd(),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Untracked before it closes (see `os::track_fd`).
        os::untrack_fd(self.sock().as_raw_fd());
    }
}

/// One end of a connection: sends `S`, receives `R` (Python's `Connection`).
///
/// Clones share the same end. An end travels to a child process as an
/// argument, or to another process over a connection, and keeps working
/// there.
///
/// # Examples
///
/// ```
/// use multiproc::{Process, pipe};
/// use multiproc::connection::Connection;
///
/// fn f(conn: Connection<(i32, Option<()>, String)>) {
///     conn.send(&(42, None, "hello".to_owned())).unwrap();
/// }
///
/// let (parent, child) = pipe()?;
/// let p = Process::spawn(f, child)?;
/// println!("{:?}", parent.recv()?); // (42, None, "hello")
/// p.join()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Connection<S, R = S> {
    inner: Arc<Inner>,
    _messages: PhantomData<fn(S) -> R>,
}

/// A ring put's outcome as a send's: the ring closes only when the peer
/// leaves.
fn sent_or(sent: Result<(), PutFail>) -> Result<()> {
    match sent {
        Ok(()) => Ok(()),
        Err(PutFail::Failed(e)) => Err(e),
        Err(PutFail::Timeout | PutFail::Full | PutFail::Closed) => Err(Error::Disconnected),
    }
}

impl<S, R> Clone for Connection<S, R> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner), _messages: PhantomData }
    }
}

/// Two connected ends of a duplex pipe (Python's `Pipe()`).
///
/// # Errors
///
/// [`Error::Os`] if the shared memory or the socket cannot be created.
///
/// # Examples
///
/// ```
/// let (a, b) = multiproc::pipe::<String>()?;
/// a.send(&"ping".to_owned())?;
/// assert_eq!(b.recv()?, "ping");
/// b.send(&"pong".to_owned())?;
/// assert_eq!(a.recv()?, "pong");
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn pipe<T>() -> Result<(Connection<T>, Connection<T>)> {
    pipe_with_ring(DEFAULT_RING)
}

/// A duplex pipe whose rings hold `ring_bytes` each (default 1 MiB): larger
/// rings let large messages pass in one piece.
///
/// # Errors
///
/// As [`pipe`].
///
/// # Examples
///
/// ```
/// let (a, b) = multiproc::connection::pipe_with_ring::<Vec<u8>>(8 << 20)?;
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn pipe_with_ring<T>(ring_bytes: usize) -> Result<(Connection<T>, Connection<T>)> {
    pipe_between(ring_bytes)
}

/// A duplex pipe whose ends send different types: `A` one way, `B` back.
pub(crate) fn pipe_between<A, B>(
    ring_bytes: usize,
) -> Result<(Connection<A, B>, Connection<B, A>)> {
    let (a, b) = os::stream_pair().map_err(Error::os("create a socket pair"))?;
    let ab = RawQueue::create(0, ring_bytes)?;
    let ba = RawQueue::create(0, ring_bytes)?;
    Ok((ring_end(Some(ab.clone()), Some(ba.clone()), a), ring_end(Some(ba), Some(ab), b)))
}

/// One end of a pipe over rings `tx` and `rx`, with `sock` beside them.
pub(super) fn ring_end<S, R>(
    tx: Option<RawQueue>,
    rx: Option<RawQueue>,
    sock: OwnedFd,
) -> Connection<S, R> {
    Connection::from_transport(Transport::Ring { tx, rx, sock, sends: AtomicU32::new(0) })
}

fn read_only() -> Error {
    Error::Unsupported { reason: "this end of the pipe only receives" }
}

fn write_only() -> Error {
    Error::Unsupported { reason: "this end of the pipe only sends" }
}

impl<S, R> Connection<S, R> {
    pub(crate) fn from_transport(transport: Transport) -> Self {
        Self::resume(transport, &[])
    }

    /// An end over `transport` whose stream starts with `unread` bytes that
    /// an earlier holder of the socket had read ahead.
    fn resume(transport: Transport, unread: &[u8]) -> Self {
        let reader = match &transport {
            // A pipe's socket carries only descriptor frames, read exactly.
            Transport::Ring { .. } => FrameReader::new(64),
            Transport::Socket { max_frame, .. } => {
                FrameReader::resume(*max_frame, READ_AHEAD, unread)
            }
        };
        let inner = Inner { transport, reader: Mutex::new(reader), writer: Mutex::new(()) };
        os::track_fd(inner.sock().as_raw_fd());
        Self { inner: Arc::new(inner), _messages: PhantomData }
    }

    fn sock(&self) -> BorrowedFd<'_> {
        self.inner.sock()
    }

    /// Whether the peer closed its end of the socket (or died).
    fn peer_gone(&self) -> bool {
        os::peer_hung_up(self.sock())
    }

    /// Whether the other end is still there (its process alive, the end
    /// not closed).
    pub(crate) fn peer_alive(&self) -> bool {
        !self.peer_gone()
    }

    /// Sends one message of raw bytes (Python's `send_bytes`).
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] if the peer is gone; [`Error::FrameTooLarge`]
    /// is the receiver's to report.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = multiproc::pipe::<()>()?;
    /// a.send_bytes(b"raw")?;
    /// assert_eq!(b.recv_bytes()?, b"raw");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.send_encoded(bytes, &[])
    }

    fn send_encoded(&self, bytes: &[u8], fds: &[OwnedFd]) -> Result<()> {
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        match &self.inner.transport {
            Transport::Socket { sock, fds_allowed, .. } => {
                if !fds.is_empty() && !fds_allowed {
                    return Err(Error::Unsupported {
                        reason: "file descriptors cannot travel over TCP",
                    });
                }
                let _turn = self.inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
                frame::send_frame(sock.as_fd(), &[bytes], &borrowed)
            }
            Transport::Ring { tx, sock, sends, .. } => {
                let tx = tx.as_ref().ok_or_else(read_only)?;
                self.check_peer(sends)?;
                // The descriptors go on the socket in a frame numbered like
                // the message, sent holding the producers' turn right before
                // the message's first record: frames and messages are in the
                // same order for every sender of every process. A frame whose
                // message never came (its sender died, or gave up when the
                // peer left) is an orphan the receiver drops.
                let alive = || !self.peer_gone();
                let sent = if fds.is_empty() {
                    tx.put_payload_while(bytes, 0, &alive, None)
                } else {
                    let tag = crate::transfer::message_tag();
                    let announce = || {
                        let _turn =
                            self.inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
                        frame::send_frame(sock.as_fd(), &[&tag.to_le_bytes()], &borrowed)
                    };
                    let numbered = [&tag.to_le_bytes()[..], bytes].concat();
                    tx.put_payload_while(&numbered[..], FDS, &alive, Some(&announce))
                };
                sent_or(sent)
            }
        }
    }

    /// Every [`SENDS_PER_CHECK`] sends, whether the peer is gone.
    fn check_peer(&self, sends: &AtomicU32) -> Result<()> {
        if sends.fetch_add(1, Ordering::Relaxed).is_multiple_of(SENDS_PER_CHECK) && self.peer_gone()
        {
            return Err(Error::Disconnected);
        }
        Ok(())
    }

    /// Encodes `message` straight into a ring, with no buffer in between:
    /// `None` if this is no ring transport or the message carries
    /// descriptors (which travel beside the bytes: the caller's path).
    fn send_direct(&self, message: &S) -> Option<Result<()>>
    where
        S: Serialize,
    {
        let Transport::Ring { tx: Some(tx), sends, .. } = &self.inner.transport else {
            return None;
        };
        if let Err(e) = self.check_peer(sends) {
            return Some(Err(e));
        }
        let payload = WithoutFds::new(message);
        let alive = || !self.peer_gone();
        let sent = tx.put_payload_while(&payload, 0, &alive, None);
        if payload.had_fds() {
            return None;
        }
        Some(sent_or(sent))
    }

    /// Receives one message, handing its bytes and descriptors to `decode`.
    fn recv_with<T>(
        &self,
        deadline: Option<Instant>,
        try_only: bool,
        decode: impl Fn(&[u8], Vec<OwnedFd>) -> Result<T>,
    ) -> Result<T> {
        match &self.inner.transport {
            Transport::Socket { sock, .. } => {
                let mut reader = self.inner.reader.lock().unwrap_or_else(PoisonError::into_inner);
                // Without a deadline a blocking read waits in the kernel:
                // no poll before it.
                let nonblocking = try_only || deadline.is_some();
                // First poll for a moment (as every wait does, see `park::poll`):
                // an answer that comes within it wakes no sleeping CPU,
                // which costs tens of microseconds on a virtual machine.
                let poll_until = (!try_only).then(|| spin_deadline(deadline));
                loop {
                    let polling = poll_until.is_some_and(|until| Instant::now() < until);
                    match reader.read(sock.as_fd(), nonblocking || polling)? {
                        Progress::Frame(frame) => return decode(&frame.payload, frame.fds),
                        Progress::Closed => return Err(Error::Disconnected),
                        Progress::Pending if try_only => return Err(Error::Empty),
                        Progress::Pending if polling => std::thread::yield_now(),
                        Progress::Pending => {
                            let ready = os::wait_readable(&[sock.as_fd()], deadline)
                                .map_err(Error::os("wait for a connection"))?;
                            if ready.is_none() {
                                return Err(Error::Timeout);
                            }
                        }
                    }
                }
            }
            Transport::Ring { rx, sock, .. } => {
                let rx = rx.as_ref().ok_or_else(write_only)?;
                let take = |bytes: &[u8], flags: u32| -> Result<T> {
                    if flags & FDS == 0 {
                        return decode(bytes, Vec::new());
                    }
                    let (tag, bytes) = bytes.split_first_chunk::<8>().ok_or_else(|| {
                        Error::protocol("a message lacks its descriptors' number")
                    })?;
                    let fds = self.recv_fds(sock.as_fd(), u64::from_le_bytes(*tag))?;
                    decode(bytes, fds)
                };
                if !try_only {
                    let key = std::ptr::from_ref(rx.ring()).cast();
                    crate::shm::park::poll(key, deadline, || rx.ring().has_data());
                }
                loop {
                    let slice = deadline_after(PEER_CHECK);
                    let wait = match deadline {
                        _ if try_only => Wait::Never,
                        Some(deadline) => {
                            Wait::Until(slice.map_or(Some(deadline), |s| Some(s.min(deadline))))
                        }
                        None => Wait::Until(slice),
                    };
                    match rx.get_with(wait, take) {
                        Ok(result) => return result,
                        Err(Error::Closed) => return Err(Error::Disconnected),
                        Err(Error::Empty | Error::Timeout) => {
                            if self.peer_gone() {
                                // What was sent before the peer left comes first.
                                return match rx.get_with(Wait::Never, take) {
                                    Ok(result) => result,
                                    Err(_) => Err(Error::Disconnected),
                                };
                            }
                            if try_only {
                                return Err(Error::Empty);
                            }
                            if deadline.is_some_and(|d| Instant::now() >= d) {
                                return Err(Error::Timeout);
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }

    /// The descriptors of the message numbered `tag`, from a pipe's socket.
    ///
    /// Their frame was sent before the message was written, in the same
    /// order as the messages (see `send_encoded`), so it is on the socket
    /// already: frames before it are orphans (their messages never came),
    /// dropped with their descriptors; no frame is a peer's lie.
    fn recv_fds(&self, sock: BorrowedFd<'_>, tag: u64) -> Result<Vec<OwnedFd>> {
        let mut reader = self.inner.reader.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match reader.read(sock, true)? {
                Progress::Frame(frame) => {
                    let Some(number) = frame.payload.first_chunk::<8>() else {
                        return Err(Error::protocol("a descriptor frame lacks its number"));
                    };
                    if u64::from_le_bytes(*number) == tag {
                        return Ok(frame.fds);
                    }
                }
                Progress::Closed => return Err(Error::Disconnected),
                Progress::Pending => {
                    return Err(Error::protocol("a message's file descriptors did not arrive"));
                }
            }
        }
    }

    /// Receives one message as raw bytes (Python's `recv_bytes`).
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] once the peer is gone and nothing is left.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = multiproc::pipe::<u8>()?;
    /// a.send(&7)?;
    /// assert_eq!(b.recv_bytes()?, [7]); // postcard encoding of 7u8
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        self.recv_with(None, false, |bytes, _| Ok(bytes.to_vec()))
    }

    /// Receives one message into `buf`, returning its length (Python's
    /// `recv_bytes_into`).
    ///
    /// # Errors
    ///
    /// [`Error::BufferTooShort`] with the whole message if it does not fit;
    /// [`Error::Disconnected`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = multiproc::pipe::<()>()?;
    /// a.send_bytes(b"hello")?;
    /// let mut small = [0u8; 2];
    /// match b.recv_bytes_into(&mut small) {
    ///     Err(multiproc::Error::BufferTooShort { message }) => assert_eq!(message, b"hello"),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize> {
        let message = self.recv_bytes()?;
        match buf.get_mut(..message.len()) {
            Some(dst) => {
                dst.copy_from_slice(&message);
                Ok(message.len())
            }
            None => Err(Error::BufferTooShort { message }),
        }
    }

    /// Whether a message can be received now, or the peer is gone (then
    /// `recv` reports it); waits at most `timeout` (Python's `poll`).
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if waiting fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let (a, b) = multiproc::pipe::<u8>()?;
    /// assert!(!b.poll(Duration::ZERO)?);
    /// a.send(&1)?;
    /// assert!(b.poll(Duration::from_secs(1))?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn poll(&self, timeout: Duration) -> Result<bool> {
        let deadline = deadline_after(timeout);
        loop {
            if self.ready() {
                return Ok(true);
            }
            let slice = match &self.inner.transport {
                Transport::Socket { .. } => deadline,
                Transport::Ring { .. } => deadline_after(Duration::from_micros(200)),
            };
            let until = match (deadline, slice) {
                (Some(d), Some(s)) => Some(d.min(s)),
                (d, s) => d.or(s),
            };
            let woke =
                os::wait_readable(&[self.sock()], until).map_err(Error::os("poll a connection"))?;
            if woke.is_some() && self.ready() {
                return Ok(true);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(self.ready());
            }
        }
    }

    /// Whether `recv` would return at once (a message, or the news that the
    /// peer is gone).
    pub(crate) fn ready(&self) -> bool {
        match &self.inner.transport {
            Transport::Ring { rx, .. } => {
                rx.as_ref().is_some_and(RawQueue::has_data) || self.peer_gone()
            }
            Transport::Socket { sock, .. } => {
                // A message read ahead is ready though the socket is not.
                let buffered = match self.inner.reader.try_lock() {
                    Ok(reader) => reader.has_buffered_frame(),
                    Err(TryLockError::Poisoned(reader)) => reader.into_inner().has_buffered_frame(),
                    Err(TryLockError::WouldBlock) => false,
                };
                buffered
                    || matches!(
                        os::wait_readable(&[sock.as_fd()], Some(Instant::now())),
                        Ok(Some(_))
                    )
            }
        }
    }

    /// The socket to watch in `wait`, and whether readiness can only be
    /// learnt by asking (shared-memory pipes).
    pub(crate) fn wait_source(&self) -> (BorrowedFd<'_>, bool) {
        (self.sock(), matches!(self.inner.transport, Transport::Ring { .. }))
    }

    /// Closes this end for every clone and process sharing it: the peer's
    /// `recv` gets what was sent, then [`Error::Disconnected`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = multiproc::pipe::<u8>()?;
    /// a.send(&1)?;
    /// a.close();
    /// assert_eq!(b.recv()?, 1);
    /// assert!(matches!(b.recv(), Err(multiproc::Error::Disconnected)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn close(&self) {
        match &self.inner.transport {
            Transport::Ring { tx, rx, sock, .. } => {
                for ring in [tx, rx].into_iter().flatten() {
                    ring.ring().close();
                }
                let _ = rustix::net::shutdown(sock, rustix::net::Shutdown::Both);
            }
            Transport::Socket { sock, .. } => {
                let _ = rustix::net::shutdown(sock, rustix::net::Shutdown::Both);
            }
        }
    }
}

impl<S: Serialize, R> Connection<S, R> {
    /// Sends `message` (Python's `send`); library handles inside it (another
    /// connection, a queue, a lock...) arrive working, except over TCP.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] if the peer is gone; [`Error::Encode`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = multiproc::pipe::<Vec<u32>>()?;
    /// a.send(&vec![1, 2])?;
    /// assert_eq!(b.recv()?, [1, 2]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn send(&self, message: &S) -> Result<()> {
        if let Some(sent) = self.send_direct(message) {
            return sent;
        }
        crate::transfer::scratch::with_scratch(|buf| {
            let encoded = codec::encode_into(message, std::mem::take(buf))?;
            let sent = self.send_encoded(&encoded.bytes, &encoded.fds);
            *buf = encoded.bytes;
            sent
        })
    }
}

impl<S, R: DeserializeOwned> Connection<S, R> {
    /// Receives the next message, waiting as long as it takes (Python's
    /// `recv`).
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] once the peer is gone and nothing is left
    /// (Python's `EOFError`); [`Error::Decode`]; [`Error::FrameTooLarge`]
    /// and [`Error::Protocol`] for a hostile peer.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = multiproc::pipe::<char>()?;
    /// a.send(&'x')?;
    /// assert_eq!(b.recv()?, 'x');
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn recv(&self) -> Result<R> {
        self.recv_with(None, false, |bytes, fds| codec::decode(bytes, fds))
    }

    /// Receives a message if one is there now.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if none; as [`recv`](Connection::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = multiproc::pipe::<u8>()?;
    /// assert!(matches!(b.try_recv(), Err(multiproc::Error::Empty)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_recv(&self) -> Result<R> {
        self.recv_with(Some(Instant::now()), true, |bytes, fds| codec::decode(bytes, fds))
    }

    /// Receives a message, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`]; as [`recv`](Connection::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let (a, b) = multiproc::pipe::<u8>()?;
    /// assert!(matches!(b.recv_timeout(Duration::from_millis(5)), Err(multiproc::Error::Timeout)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<R> {
        self.recv_with(deadline_after(timeout), false, |bytes, fds| codec::decode(bytes, fds))
    }
}

#[derive(Serialize)]
enum WireOut<'a> {
    Ring {
        tx: Option<&'a RawQueue>,
        rx: Option<&'a RawQueue>,
        #[serde(with = "crate::transfer::fd")]
        sock: BorrowedFd<'a>,
    },
    Socket {
        #[serde(with = "crate::transfer::fd")]
        sock: BorrowedFd<'a>,
        fds_allowed: bool,
        max_frame: u64,
        unread: Vec<u8>,
    },
}

#[derive(Deserialize)]
enum WireIn {
    Ring {
        tx: Option<RawQueue>,
        rx: Option<RawQueue>,
        #[serde(with = "crate::transfer::fd")]
        sock: OwnedFd,
    },
    Socket {
        #[serde(with = "crate::transfer::fd")]
        sock: OwnedFd,
        fds_allowed: bool,
        max_frame: u64,
        unread: Vec<u8>,
    },
}

impl<S, R> Serialize for Connection<S, R> {
    fn serialize<Ser: Serializer>(
        &self,
        serializer: Ser,
    ) -> std::result::Result<Ser::Ok, Ser::Error> {
        match &self.inner.transport {
            Transport::Ring { tx, rx, sock, .. } => {
                WireOut::Ring { tx: tx.as_ref(), rx: rx.as_ref(), sock: sock.as_fd() }
            }
            Transport::Socket { sock, fds_allowed, max_frame } => {
                // Bytes read ahead travel with the socket, so the receiver
                // starts exactly where this end stopped.
                let unread = match self.inner.reader.try_lock() {
                    Ok(reader) => reader.unread(),
                    Err(TryLockError::Poisoned(reader)) => reader.into_inner().unread(),
                    Err(TryLockError::WouldBlock) => Err(Error::Unsupported {
                        reason: "a connection cannot be sent while another thread receives on it",
                    }),
                }
                .map_err(serde::ser::Error::custom)?;
                WireOut::Socket {
                    sock: sock.as_fd(),
                    fds_allowed: *fds_allowed,
                    max_frame: *max_frame,
                    unread,
                }
            }
        }
        .serialize(serializer)
    }
}

impl<'de, S, R> Deserialize<'de> for Connection<S, R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        Ok(match WireIn::deserialize(deserializer)? {
            WireIn::Ring { tx, rx, sock } => {
                Self::from_transport(Transport::Ring { tx, rx, sock, sends: AtomicU32::new(0) })
            }
            WireIn::Socket { sock, fds_allowed, max_frame, unread } => {
                Self::resume(Transport::Socket { sock, fds_allowed, max_frame }, &unread)
            }
        })
    }
}

impl<S, R> fmt::Debug for Connection<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.inner.transport {
            Transport::Ring { .. } => "pipe",
            Transport::Socket { .. } => "socket",
        };
        f.debug_struct("Connection").field("kind", &kind).finish()
    }
}

/// How often an awaiting pipe end looks whether its peer is gone.
const AWAIT_PEER_CHECK: Duration = Duration::from_millis(100);

impl<S, R> Connection<S, R> {
    /// What names this end's receiving (`true`) or sending side in the
    /// history of awaited waits.
    fn key(&self, receiving: bool) -> *const u8 {
        let inner: *const Inner = Arc::as_ptr(&self.inner);
        inner.cast::<u8>().wrapping_add(usize::from(receiving))
    }

    /// What an awaiting receive sleeps on (counting itself as a sleeper of
    /// a pipe's ring).
    fn arm_recv(&self, waiting: &mut crate::aio::Waiting) -> Option<crate::aio::Arm> {
        use crate::aio::{Arm, Keep, Source, Wake};
        match &self.inner.transport {
            Transport::Ring { rx: Some(rx), .. } => {
                let keep = Arc::clone(rx.segment()) as Keep;
                let (seq, sleepers) = rx.ring().data_words();
                waiting.count(sleepers, &keep);
                let seen = seq.load(Ordering::SeqCst);
                Some(Arm::with_recheck(Source::word(seq, seen, keep, Wake::One), AWAIT_PEER_CHECK))
            }
            // A write-only pipe end fails its attempt before it arms.
            Transport::Ring { rx: None, .. } => Some(Arm::on(Source::Timer)),
            Transport::Socket { sock, .. } => {
                let source = Source::fds(&[(sock.as_fd(), false)]).unwrap_or(Source::Timer);
                Some(Arm::with_recheck(source, AWAIT_PEER_CHECK))
            }
        }
    }

    /// What an awaiting send sleeps on: room in a pipe's ring, or a
    /// writable socket.
    fn arm_send(&self, waiting: &mut crate::aio::Waiting) -> Option<crate::aio::Arm> {
        use crate::aio::{Arm, Keep, Source, Wake};
        match &self.inner.transport {
            Transport::Ring { tx: Some(tx), .. } => {
                let keep = Arc::clone(tx.segment()) as Keep;
                let (seq, sleepers) = tx.ring().room_words();
                waiting.count(sleepers, &keep);
                let seen = seq.load(Ordering::SeqCst);
                Some(Arm::with_recheck(Source::word(seq, seen, keep, Wake::One), AWAIT_PEER_CHECK))
            }
            Transport::Ring { tx: None, .. } => Some(Arm::on(Source::Timer)),
            Transport::Socket { sock, .. } => {
                let source = Source::fds(&[(sock.as_fd(), true)]).unwrap_or(Source::Timer);
                Some(Arm::with_recheck(source, AWAIT_PEER_CHECK))
            }
        }
    }

    /// One attempt of an awaiting send: `None` if it would wait.
    fn try_send_once(&self, message: &S) -> Option<Result<()>>
    where
        S: Serialize,
    {
        match &self.inner.transport {
            Transport::Socket { sock, .. } => {
                // Sent once the socket takes more; a frame larger than the
                // room it has completes in this poll.
                let mut fds = [rustix::event::PollFd::new(sock, rustix::event::PollFlags::OUT)];
                let zero = rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 };
                let writable = matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0);
                writable.then(|| self.send(message))
            }
            Transport::Ring { tx: None, .. } => Some(Err(read_only())),
            Transport::Ring { tx: Some(tx), sends, .. } => {
                if let Err(e) = self.check_peer(sends) {
                    return Some(Err(e));
                }
                let payload = WithoutFds::new(message);
                match tx.put_payload(&payload, 0, Wait::Never) {
                    Ok(()) => Some(Ok(())),
                    // Descriptors travel beside the bytes; a message larger
                    // than the ring (refused by an empty one) streams: both
                    // by the blocking path, within this poll.
                    Err(_) if payload.had_fds() => Some(self.send(message)),
                    Err(PutFail::Full) if tx.ring().len() == 0 && !tx.has_data() => {
                        Some(self.send(message))
                    }
                    Err(PutFail::Full) => {
                        if self.peer_gone() {
                            return Some(Err(Error::Disconnected));
                        }
                        None
                    }
                    Err(other) => Some(sent_or(Err(other))),
                }
            }
        }
    }

    /// One poll of an awaiting receive with `attempt`.
    fn poll_recv<T>(
        &self,
        waiting: &mut crate::aio::Waiting,
        cx: &std::task::Context<'_>,
        mut attempt: impl FnMut() -> Result<T>,
    ) -> std::task::Poll<Result<T>> {
        waiting.poll(
            cx,
            || match attempt() {
                Err(Error::Empty) => None,
                done => Some(done),
            },
            |waiting| self.arm_recv(waiting),
        )
    }
}

impl<S: Serialize, R> Connection<S, R> {
    /// Sends `message`, awaiting room as long as it takes: [`send`] without
    /// holding a thread.
    ///
    /// **Cancel-safe**: the message goes out whole in the poll that returns
    /// `Ready`, or not at all. A message larger than a pipe's ring (or a
    /// socket's free buffer), or one carrying descriptors, goes out within
    /// one poll, as [`send`] sends it.
    ///
    /// [`send`]: Connection::send
    ///
    /// # Errors
    ///
    /// As [`send`](Connection::send).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (a, b) = multiproc::pipe::<u8>()?;
    /// a.send_async(&1).await?;
    /// assert_eq!(b.recv_async().await?, 1);
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn send_async(&self, message: &S) -> Result<()> {
        let mut waiting = crate::aio::Waiting::new(self.key(false));
        std::future::poll_fn(|cx| {
            waiting.poll(cx, || self.try_send_once(message), |waiting| self.arm_send(waiting))
        })
        .await
    }
}

impl<S, R: DeserializeOwned> Connection<S, R> {
    /// Receives the next message, awaiting it as long as it takes: [`recv`]
    /// without holding a thread.
    ///
    /// **Cancel-safe**: a message is taken only in the poll that returns
    /// it; dropping the future loses nothing and leaves no waiter behind.
    ///
    /// [`recv`]: Connection::recv
    ///
    /// # Errors
    ///
    /// As [`recv`](Connection::recv): [`Error::Disconnected`] once the peer
    /// is gone (noticed within 100 ms on a pipe) and nothing is left.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (a, b) = multiproc::pipe::<String>()?;
    /// a.send(&"hi".to_owned())?;
    /// assert_eq!(b.recv_async().await?, "hi");
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn recv_async(&self) -> Result<R> {
        let mut waiting = crate::aio::Waiting::new(self.key(true));
        std::future::poll_fn(|cx| self.poll_recv(&mut waiting, cx, || self.try_recv())).await
    }

    /// The messages as a [`Stream`](futures_core::Stream), ending once the
    /// peer is gone and nothing is left.
    ///
    /// **Cancel-safe** between messages.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// # futures::executor::block_on(async {
    /// let (a, b) = multiproc::pipe::<u8>()?;
    /// a.send(&1)?;
    /// a.send(&2)?;
    /// drop(a);
    /// let got: Vec<u8> = b.stream().map(Result::unwrap).collect().await;
    /// assert_eq!(got, [1, 2]);
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn stream(&self) -> Stream<'_, S, R> {
        Stream { conn: self, waiting: crate::aio::Waiting::new(self.key(true)), done: false }
    }
}

/// The messages of a [`Connection`] as a [`futures_core::Stream`], made by
/// [`Connection::stream`]: each a `Result`; a message that does not decode
/// is yielded as an error and the stream goes on; the peer's going is the
/// normal end.
#[must_use = "streams do nothing unless polled"]
pub struct Stream<'a, S, R> {
    conn: &'a Connection<S, R>,
    waiting: crate::aio::Waiting,
    done: bool,
}

impl<S, R: DeserializeOwned> futures_core::Stream for Stream<'_, S, R> {
    type Item = Result<R>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<R>>> {
        let this = self.get_mut();
        if this.done {
            return std::task::Poll::Ready(None);
        }
        let conn = this.conn;
        let got = std::task::ready!(conn.poll_recv(&mut this.waiting, cx, || conn.try_recv()));
        std::task::Poll::Ready(match got {
            Err(Error::Disconnected) => {
                this.done = true;
                None
            }
            other => Some(other),
        })
    }
}

impl<S, R> fmt::Debug for Stream<'_, S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream").field("conn", self.conn).field("done", &self.done).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An open descriptor that tells which one it is: a pipe holding `n`.
    fn numbered(n: u8) -> OwnedFd {
        use std::io::Write;
        let (reader, mut writer) = std::io::pipe().unwrap();
        writer.write_all(&[n]).unwrap();
        reader.into()
    }

    fn number_of(fd: OwnedFd) -> u8 {
        use std::io::Read;
        let mut byte = [0u8];
        std::fs::File::from(fd).read_exact(&mut byte).unwrap();
        byte[0]
    }

    #[test]
    fn an_orphan_descriptor_frame_is_dropped_and_the_next_message_gets_its_own() {
        let (a, b) = pipe::<crate::FdHandle>().unwrap();
        // What a sender killed between its frame and its message leaves.
        let orphan = numbered(1);
        frame::send_frame(a.sock(), &[&7u64.to_le_bytes()], &[orphan.as_fd()]).unwrap();
        a.send(&crate::FdHandle::new(numbered(2))).unwrap();
        let got = b.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(number_of(got.into_file().into()), 2);
    }

    #[test]
    fn a_message_whose_descriptors_never_came_is_an_error_at_once() {
        let (a, b) = pipe::<crate::FdHandle>().unwrap();
        let Transport::Ring { tx: Some(tx), .. } = &a.inner.transport else { panic!("a pipe") };
        // A record that claims descriptors, with no frame for them.
        let record = [&5u64.to_le_bytes()[..], &[0u8]].concat();
        tx.put_payload(&record[..], FDS, Wait::Forever).unwrap();
        let start = Instant::now();
        assert!(matches!(b.recv_timeout(Duration::from_secs(10)), Err(Error::Protocol { .. })));
        assert!(start.elapsed() < Duration::from_secs(5), "the receiver waited for them");
    }
}
