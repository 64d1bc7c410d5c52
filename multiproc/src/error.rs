//! The one error type of multiproc.

use std::fmt;
use std::io;

use crate::connection::Address;

/// A boxed error from a lower layer (the serde codec), kept as a `source`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in multiproc.
///
/// Failures are values: a child that panicked, exited or was killed; a peer
/// that sent malformed data or went away; a timeout; an operating-system call
/// that failed (kept as [`std::error::Error::source`]).
///
/// # Examples
///
/// ```
/// use multiproc::{Error, Process};
///
/// fn boom(_: ()) -> u8 {
///     panic!("no luck")
/// }
///
/// let err = Process::spawn(boom, ())?.join().unwrap_err();
/// assert!(matches!(&err, Error::Panicked { message, .. } if message == "no luck"));
/// assert!(err.to_string().starts_with("child process 'Process-1' panicked at "), "{err}");
/// assert!(err.to_string().ends_with(": no luck"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed.
    ///
    /// A failure to listen on or connect to an address names it:
    /// `could not listen on TCP at 127.0.0.1:5000`, with the OS error
    /// (address in use, connection refused, no such file) as the `source`.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::Error;
    /// use multiproc::connection::{Address, Client};
    ///
    /// let nobody = Address::Abstract(format!("nobody-here-{}", std::process::id()));
    /// let err = Client::connect::<u8, u8>(&nobody, None).unwrap_err();
    /// assert!(matches!(&err, Error::Os { address: Some(a), .. } if *a == nobody));
    /// assert!(err.to_string().contains("nobody-here"), "{err}");
    /// let os = std::error::Error::source(&err).unwrap().downcast_ref::<std::io::Error>();
    /// assert_eq!(os.unwrap().kind(), std::io::ErrorKind::ConnectionRefused);
    /// ```
    #[error("could not {op}{}", At(.address.as_ref()))]
    Os {
        /// What multiproc was doing, as a short verb phrase.
        op: &'static str,
        /// The address it was listening on or connecting to, if any.
        address: Option<Address>,
        /// The error the operating system reported.
        #[source]
        source: io::Error,
    },
    /// The child's target panicked; `message` is the panic's text.
    ///
    /// Shown as `child process 'worker-1' panicked at src/main.rs:7:5:
    /// index out of bounds ...`. The child itself prints the panic on its
    /// stderr under the same name.
    #[error("child process '{process}' panicked{}: {message}", At(.location.as_deref()))]
    Panicked {
        /// The child's name ([`Process::name`](crate::Process::name)).
        process: String,
        /// Where it panicked (`file:line:column`), if known.
        location: Option<String>,
        /// The panic message.
        message: String,
    },
    /// The child ended with `exit(code)` before its target returned.
    #[error("child process exited with code {code} before returning a value")]
    Exited {
        /// The exit status.
        code: i32,
    },
    /// The child was ended by a signal before its target returned.
    #[error("child process was killed by signal {signal} ({})", signal_name(*.signal))]
    Signaled {
        /// The signal number.
        signal: i32,
    },
    /// The child started but could not run its target (its arguments did not
    /// decode, or it is not the same executable as its parent).
    #[error("child process could not run its target: {message}")]
    ChildSetup {
        /// What went wrong, as reported by the child.
        message: String,
    },
    /// A value could not be encoded for another process.
    #[error("could not encode a value for another process")]
    Encode {
        /// The codec's error.
        #[source]
        source: BoxError,
    },
    /// Bytes from another process did not decode as the expected type.
    ///
    /// `expected` names the type the receiver asked for: the sender may
    /// have used another type, or another version of it (a struct whose
    /// fields changed).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::Error;
    ///
    /// let (a, b) = multiproc::pipe::<u64>()?;
    /// // What a sender of `String`s would send: "hello", not a number.
    /// a.send_bytes(b"\x05hello")?;
    /// let err = b.recv().unwrap_err();
    /// assert!(matches!(&err, Error::Decode { expected: "u64", .. }), "{err:?}");
    /// assert!(err.to_string().contains("u64"), "{err}");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[error(
        "could not decode a value of type `{expected}` from another process \
         (does the sender use another type, or another version of it?)"
    )]
    Decode {
        /// The type the receiver expected (`std::any::type_name`).
        expected: &'static str,
        /// The codec's error.
        #[source]
        source: BoxError,
    },
    /// Another process sent data that breaks the protocol.
    #[error("malformed data from another process: {detail}")]
    Protocol {
        /// What was wrong with it.
        detail: String,
    },
    /// A frame announced more bytes than the receiver accepts.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The announced length.
        len: u64,
        /// The receiver's limit.
        max: u64,
    },
    /// One message would carry more file descriptors than Linux passes at once.
    #[error("too many file descriptors in one message ({count}, at most {max})")]
    TooManyFds {
        /// How many the message holds.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The process at the other end is gone.
    #[error("peer disconnected")]
    Disconnected,
    /// The operation did not complete in time.
    #[error("timed out")]
    Timeout,
    /// The fork start method (`fork_closure`, or `spawn` with
    /// `StartMethod::Fork`) refused to fork a multi-threaded process.
    #[error("refusing to fork a process that has {threads} threads")]
    ThreadedFork {
        /// The number of threads the process had.
        threads: usize,
    },
    /// The child's return value was already taken by an earlier join.
    #[error("the child's result was already taken")]
    ResultTaken,
    /// A lock's previous owner died while holding it. From the guard
    /// methods of shared-memory locks (`lock()?`) the lock is released again
    /// by the time this error is seen through `?`; from `acquire` (here and
    /// on manager locks) the caller **holds** the lock and must release it.
    #[error("the previous owner of the lock died while holding it")]
    OwnerDied,
    /// A lock on Redis was released by a holder whose lease had expired
    /// first (it stalled, or lost the server, longer than the lease): the
    /// lock was free, or another holder took it, meanwhile. What the lock
    /// protects may have been changed by that other holder.
    #[error("the lock's lease expired before its release: another holder may have taken it")]
    LeaseExpired,
    /// A non-blocking operation would have had to wait.
    #[error("operation would block")]
    WouldBlock,
    /// A lock was released by a thread that does not hold it.
    #[error("lock released by a thread that does not hold it")]
    NotOwner,
    /// A semaphore was released more often than its bound allows.
    #[error("semaphore released too many times")]
    TooManyReleases,
    /// A barrier was broken (by `abort`, `reset`, or another waiter's timeout).
    #[error("barrier is broken")]
    BrokenBarrier,
    /// A named shared-memory block of that name already exists.
    #[error("shared memory {name:?} already exists")]
    AlreadyExists {
        /// The name.
        name: String,
    },
    /// No named shared-memory block has that name.
    #[error("no shared memory named {name:?}")]
    NotFound {
        /// The name.
        name: String,
    },
    /// A name that cannot name a shared-memory block.
    #[error("invalid shared memory name {name:?}")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// A shared-memory block has another size than the one asked for.
    #[error("shared memory has {actual} bytes, not {expected}")]
    SizeMismatch {
        /// The size asked for.
        expected: usize,
        /// The block's size.
        actual: usize,
    },
    /// An access past the end of a shared-memory block.
    #[error("{len} bytes at offset {offset} do not fit in {size} bytes of shared memory")]
    OutOfBounds {
        /// Where the access started.
        offset: usize,
        /// How many bytes it covered.
        len: usize,
        /// The block's size.
        size: usize,
    },
    /// A non-blocking get found the queue empty.
    #[error("queue is empty")]
    Empty,
    /// A non-blocking put found the queue full.
    #[error("queue is full")]
    Full,
    /// The queue was closed (and, for a get, has no message left).
    #[error("queue closed")]
    Closed,
    /// `task_done` was called more often than messages were put.
    #[error("task_done called more times than there were items")]
    TaskDoneTooOften,
    /// The other side of a connection failed the authentication handshake,
    /// or refused ours: a wrong `authkey`, or a key on one side only.
    #[error("authentication failed")]
    AuthenticationFailed,
    /// `recv_bytes_into` got a message larger than the buffer; here it is,
    /// whole (Python's `BufferTooShort`).
    #[error("message of {} bytes does not fit the buffer", message.len())]
    BufferTooShort {
        /// The message that did not fit.
        message: Vec<u8>,
    },
    /// The operation is not possible in this program.
    #[error("unsupported: {reason}")]
    Unsupported {
        /// Why.
        reason: &'static str,
    },
    /// The fork server process died.
    #[error("the fork server is gone")]
    ForkServerGone,
    /// A list index outside the list (Python's `IndexError`).
    #[error("list index {index} out of range for length {len}")]
    IndexOutOfRange {
        /// The index asked for (negative counts from the end).
        index: i64,
        /// The list's length at the time.
        len: u64,
    },
    /// A dict has no such key (Python's `KeyError`).
    #[error("key not found")]
    KeyNotFound,
    /// A namespace has no such attribute (Python's `AttributeError`).
    #[error("namespace has no attribute {name:?}")]
    NoAttribute {
        /// The attribute's name.
        name: String,
    },
    /// A list holds no such value (Python's `ValueError` of `remove`, `index`).
    #[error("value not in list")]
    ValueNotFound,
    /// The manager's server process is gone (shut down, exited or killed).
    #[error("the manager's server process is gone")]
    ManagerGone,
    /// The manager refused a request: an unknown object or name, or a proxy
    /// of the wrong kind for the object.
    #[error("manager: {message}")]
    Manager {
        /// What the server said.
        message: String,
    },
    /// A CSP channel is retired: every end of the other side left.
    #[error("the channel is retired")]
    Retired,
    /// A CSP channel is poisoned.
    #[error("the channel is poisoned")]
    Poisoned,
    /// A pool worker died (killed by a signal, or it called `exit`) while
    /// it ran this task. Exactly one of `signal` and `code` is set.
    #[error("the worker process {pid} died while running the task: {}", death(*.signal, *.code))]
    WorkerDied {
        /// The worker's process id.
        pid: u32,
        /// The signal that ended it, if a signal did.
        signal: Option<i32>,
        /// Its exit status, if it exited.
        code: Option<i32>,
    },
    /// A pool task could not run: its argument did not decode in the
    /// worker, or its result did not encode there.
    #[error("the task failed: {message}")]
    TaskFailed {
        /// What went wrong, as the worker reported it.
        message: String,
    },
    /// The pool was closed (or shut down): it takes no new tasks.
    #[error("the pool is closed")]
    PoolClosed,
    /// The pool was terminated before the task completed.
    #[error("the pool was terminated")]
    PoolTerminated,
    /// `join` on a pool that is neither closed nor terminated.
    #[error("the pool is still running: close or terminate it before join")]
    PoolRunning,
    /// The pool cannot run tasks: its initializer failed, or no worker can
    /// be started.
    #[error("the pool is broken: {message}")]
    PoolBroken {
        /// Why.
        message: String,
    },
    /// The task was cancelled before it started.
    #[error("the task was cancelled")]
    Cancelled,
    /// The Redis back-end failed: the server is unreachable or went away
    /// (after retrying with backoff until the operation's deadline), it
    /// answered with an error, or what it holds is not what this handle
    /// expects (another type under the same name). `address` is the server's
    /// address without its password.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiproc::{Error, Queue};
    ///
    /// // Nothing listens on port 1: the build gives up after its timeout.
    /// let err = Queue::<u8>::builder()
    ///     .redis("redis://user:secret@127.0.0.1:1/0", "jobs")
    ///     .unreachable_timeout(Duration::from_millis(50))
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(&err, Error::Backend { address, .. } if !address.contains("secret")));
    /// assert!(err.to_string().starts_with("Redis at redis://user@127.0.0.1:1/0: "), "{err}");
    /// ```
    #[error("Redis at {address}: {detail}")]
    Backend {
        /// The server's address, without its password.
        address: String,
        /// What went wrong.
        detail: String,
        /// The client library's error, if one caused it.
        #[source]
        source: Option<BoxError>,
    },
    /// A CSP process failed (see [`csp::Error`](crate::csp::Error)).
    #[error("{message}")]
    Csp {
        /// What happened.
        message: String,
    },
}

impl Error {
    /// An adapter for `map_err` that wraps an OS error with what we were doing.
    pub(crate) fn os(op: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Os { op, address: None, source }
    }

    /// As [`os`](Self::os), naming the address being listened on or
    /// connected to.
    pub(crate) fn os_at(op: &'static str, address: &Address) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Os { op, address: Some(address.clone()), source }
    }

    /// A value of type `T` did not decode. Built only on failure, so the
    /// type's name costs nothing on the way that succeeds.
    #[cold]
    pub(crate) fn decode<T: ?Sized>(source: impl Into<BoxError>) -> Self {
        Self::Decode { expected: std::any::type_name::<T>(), source: source.into() }
    }

    pub(crate) fn protocol(detail: impl Into<String>) -> Self {
        Self::Protocol { detail: detail.into() }
    }
}

/// How a worker died, for [`Error::WorkerDied`].
fn death(signal: Option<i32>, code: Option<i32>) -> String {
    match (signal, code) {
        (Some(signal), _) => format!("killed by signal {signal} ({})", signal_name(signal)),
        (None, Some(code)) => format!("exited with code {code}"),
        (None, None) => "it ended".to_owned(),
    }
}

/// Displays " at {place}" for a place (an address, a source location),
/// nothing without one.
struct At<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for At<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(place) => write!(f, " at {place}"),
            None => Ok(()),
        }
    }
}

/// The short name of a signal, such as `SIGKILL`.
fn signal_name(signal: i32) -> impl fmt::Display {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        _ => "unknown signal",
    }
}

/// `Result` with multiproc's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
