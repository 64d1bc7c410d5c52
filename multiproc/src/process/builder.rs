//! `Builder` and `StartMethod`: how a child process starts.
#![allow(unsafe_code)] // fork: see the SAFETY comments

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::current::{self, ChildInfo};
use super::handle::Process;
use super::spawn::{self, Via};
use super::{fork, helpers};
use crate::os;
use crate::transfer::codec;
use crate::{Error, Result};

/// How a child process is started, as in Python's `multiprocessing`.
///
/// # Examples
///
/// ```
/// use multiproc::{Process, StartMethod};
///
/// for method in [StartMethod::Spawn, StartMethod::Fork, StartMethod::ForkServer] {
///     let child = Process::builder().start_method(method).spawn(|x: u32| x * 2, 21)?;
///     assert_eq!(child.join()?, 42);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum StartMethod {
    /// Re-execute the current binary and run the target there (the default).
    ///
    /// Safe in a multi-threaded parent; the child starts from a clean image,
    /// takes over before `main`, and receives its arguments (and the file
    /// descriptors inside them) over a private socket.
    #[default]
    Spawn,
    /// Fork the parent without `exec`: the fastest, and the child starts with
    /// a copy of the parent's memory.
    ///
    /// With [`Builder::spawn`] the child runs only the target on its own
    /// arguments, which travel encoded as with the other methods (so a
    /// handle whose drop has an effect, such as a CSP channel end, moves to
    /// the child), and multiproc holds standard output and error across the
    /// fork, so printing and allocating are fine. Forking a multi-threaded
    /// parent is hazardous (a lock another thread held at that instant stays
    /// locked in the child for ever), so [`Builder::spawn`] and
    /// [`Builder::fork_closure`] refuse a parent that has threads other than
    /// multiproc's own helpers, with [`Error::ThreadedFork`]; an `unsafe`
    /// opt-in remains ([`Builder::allow_threaded_fork`],
    /// [`Builder::fork_closure_unchecked`]). Python only warns.
    ///
    /// A forked child inherits every descriptor of its parent. With
    /// [`Builder::spawn`], the child drops the parent's connections (pipe
    /// ends, sockets of clients and listeners) it was not given as
    /// arguments, as a spawned child never has them: a reader child sees
    /// the end of a pipe whose writer end the parent still held when it
    /// forked. Descriptors the program opened itself (files, `std` sockets)
    /// stay open in the child, as in Python, and [`Builder::fork_closure`]
    /// keeps everything (the closure may have captured any connection).
    Fork,
    /// Ask a fork server to fork the child: a small single-threaded helper
    /// process, started from this binary on first use, that stops before
    /// `main`. As safe as `Spawn` in a multi-threaded parent, nearly as fast as
    /// `Fork`.
    ForkServer,
}

/// Sets a child's name, daemon flag and start method, then starts it.
///
/// Python's keyword arguments to `Process(...)`, as a builder.
///
/// # Examples
///
/// ```
/// use multiproc::{Process, StartMethod};
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let child = Process::builder()
///     .name("worker-1")
///     .daemon(true)
///     .start_method(StartMethod::ForkServer)
///     .spawn(square, 3)?;
/// assert_eq!(child.name(), "worker-1");
/// assert_eq!(child.join()?, 9);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `spawn` or `fork_closure`"]
pub struct Builder {
    name: Option<String>,
    daemon: bool,
    start_method: StartMethod,
    fork_with_threads: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            name: None,
            daemon: false,
            start_method: super::get_start_method(),
            fork_with_threads: false,
        }
    }
}

impl Builder {
    /// A builder with the defaults: a `Process-N` name, not a daemon, the
    /// start method [`set_start_method`](crate::set_start_method) chose
    /// (`Spawn` unless it was called).
    ///
    /// # Examples
    ///
    /// ```
    /// let child = multiproc::Builder::new().spawn(|x: i8| -x, 4)?;
    /// assert_eq!(child.join()?, -4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the child (see [`current_process`](crate::current_process)).
    ///
    /// # Examples
    ///
    /// ```
    /// let child = multiproc::Process::builder().name("loader").spawn(|x: u8| x, 0)?;
    /// assert_eq!(child.name(), "loader");
    /// # child.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Makes the child a daemon: it is killed as soon as this process ends,
    /// however this process ends (`SIGKILL` included).
    ///
    /// # Examples
    ///
    /// ```
    /// let child = multiproc::Process::builder().daemon(true).spawn(|x: u8| x, 0)?;
    /// assert!(child.daemon());
    /// # child.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// Chooses how the child starts (default [`StartMethod::Spawn`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::{Process, StartMethod};
    /// let child = Process::builder().start_method(StartMethod::Fork).spawn(|x: u8| x, 0)?;
    /// assert_eq!(child.start_method(), StartMethod::Fork);
    /// # child.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.start_method = method;
        self
    }

    /// Lets [`spawn`](Self::spawn) with [`StartMethod::Fork`] fork this
    /// process even if it has other threads (by default it refuses, with
    /// [`Error::ThreadedFork`], as [`fork_closure`](Self::fork_closure) does).
    ///
    /// # Safety
    ///
    /// Only the calling thread is copied into the child. Every lock another
    /// thread held at the instant of the fork (a `Mutex`, a `OnceLock` being
    /// initialised, a lock inside a C library) stays locked in the child for
    /// ever. The caller must make sure that the target, and what it calls,
    /// takes no lock another thread of this process may hold. multiproc holds
    /// its own locks and standard output and error across the fork, and glibc
    /// resets its allocator's, so printing, allocating and multiproc's own
    /// objects are fine.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::{Process, StartMethod};
    ///
    /// let _other = std::thread::spawn(|| ());
    /// // SAFETY: the target only doubles its argument.
    /// let builder = unsafe { Process::builder().start_method(StartMethod::Fork).allow_threaded_fork() };
    /// assert_eq!(builder.spawn(|x: u8| x * 2, 21)?.join()?, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub unsafe fn allow_threaded_fork(mut self) -> Self {
        self.fork_with_threads = true;
        self
    }

    fn child_info(&self, method: StartMethod) -> ChildInfo {
        let identity = current::next_identity();
        let name = self.name.clone().unwrap_or_else(|| current::default_name(&identity));
        ChildInfo {
            name,
            identity,
            daemon: self.daemon,
            parent_pid: os::getpid(),
            start_method: method,
            manager_keys: crate::manager::known_keys(),
            wait_policy: crate::wait_policy(),
        }
    }

    /// Starts a child process that runs `f(args)`.
    ///
    /// `f` is a function, or a closure that captures nothing (with `Spawn`
    /// and `ForkServer` the child finds it by its type, so a closure that
    /// captured zero-sized values runs there with copies made afresh, as if
    /// cloned; do not rely on a zero-sized token's meaning across processes);
    /// `args` and the
    /// return value travel between the processes with serde (handles such as
    /// [`FdHandle`](crate::FdHandle) arrive open and working).
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the process cannot be started; [`Error::Encode`] if
    /// `args` cannot be encoded; [`Error::ThreadedFork`] with
    /// [`StartMethod::Fork`] if this process has other threads (see
    /// [`allow_threaded_fork`](Self::allow_threaded_fork));
    /// [`Error::Unsupported`] with `Spawn` or `ForkServer` if `f` is a
    /// function pointer rather than a function or a closure that captures
    /// nothing (the child finds the function by its type).
    ///
    /// # Examples
    ///
    /// ```
    /// let child = multiproc::Process::builder().spawn(|(a, b): (u32, u32)| a + b, (2, 3))?;
    /// assert_eq!(child.join()?, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spawn<F, A, R>(self, f: F, args: A) -> Result<Process<R>>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let method = self.start_method;
        if method == StartMethod::Fork && !self.fork_with_threads {
            refuse_threaded_fork()?;
        }
        let info = self.child_info(method);
        let (name, daemon) = (info.name.clone(), info.daemon);
        let started = match method {
            StartMethod::Spawn => spawn::start(Via::Exec, &f, &args, info)?,
            StartMethod::ForkServer => spawn::start(Via::ForkServer, &f, &args, info)?,
            StartMethod::Fork => {
                // The arguments travel encoded, as with the other methods:
                // handles with a side effect on drop (channel ends, manager
                // proxies) then move to the child instead of being dropped
                // here while the child's copy lives on.
                let encoded = codec::encode(&args)?;
                drop(args);
                let body = move || match codec::decode::<A>(&encoded.bytes, encoded.fds) {
                    Ok(args) => f(args),
                    Err(e) => panic!("the process's arguments did not decode: {e}"),
                };
                // SAFETY: the child runs only `f` on the arguments it
                // decodes; the hazard of other parent threads' locks is
                // documented on `StartMethod::Fork`, as Python documents it.
                unsafe { fork::start(info, body, true)? }
            }
        };
        Ok(Process::new(started, name, daemon, method))
    }

    /// Forks a child that runs the closure `f`, which may capture anything
    /// (the child gets a copy of this process's memory). The start method set
    /// on the builder is ignored: this is always a fork.
    ///
    /// # Errors
    ///
    /// [`Error::ThreadedFork`] if this process has more than one thread (see
    /// [`fork_closure_unchecked`](Self::fork_closure_unchecked));
    /// [`Error::Os`] if the fork fails.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let words = vec!["a", "bc", "def"];
    /// let child = multiproc::Process::builder().fork_closure(move || words.concat())?;
    /// assert_eq!(child.join()?, "abcdef");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fork_closure<F, R>(self, f: F) -> Result<Process<R>>
    where
        F: FnOnce() -> R,
        R: Serialize + DeserializeOwned,
    {
        refuse_threaded_fork()?;
        // SAFETY: this process has a single thread, so no other thread can
        // hold a lock or be changing data at the instant of the fork.
        unsafe { self.fork_closure_unchecked(f) }
    }

    /// Forks a child that runs the closure `f`, even if this process has
    /// other threads.
    ///
    /// # Safety
    ///
    /// Only the calling thread is copied into the child. Every lock another
    /// thread held at the instant of the fork (a `Mutex`, an `RwLock`, a
    /// `OnceLock` being initialised, a lock inside a C library) stays locked in
    /// the child for ever, and data another thread was changing without a
    /// lock may be half-changed. The caller must make sure that `f`, and what
    /// it calls, touches no such state. multiproc itself flushes and holds
    /// standard output and error across the fork, and glibc resets its
    /// allocator's locks, so printing and allocating are fine.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the fork fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let base = 40;
    /// let _busy = std::thread::spawn(|| ());
    /// // SAFETY: the closure only reads `base`, a copy no other thread can hold.
    /// let child = unsafe { multiproc::Process::builder().fork_closure_unchecked(move || base + 2)? };
    /// assert_eq!(child.join()?, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub unsafe fn fork_closure_unchecked<F, R>(self, f: F) -> Result<Process<R>>
    where
        F: FnOnce() -> R,
        R: Serialize + DeserializeOwned,
    {
        let info = self.child_info(StartMethod::Fork);
        let (name, daemon) = (info.name.clone(), info.daemon);
        // SAFETY: forwarded from this function's contract.
        let started = unsafe { fork::start(info, f, false)? };
        Ok(Process::new(started, name, daemon, StartMethod::Fork))
    }
}

/// [`Error::ThreadedFork`] if this process has threads other than the
/// caller and multiproc's own helpers (the reaper, a daemon's watcher), which
/// hold no lock across a fork: `fork::start` takes theirs.
fn refuse_threaded_fork() -> Result<()> {
    let threads =
        helpers::foreign_thread_count().map_err(Error::os("count this process's threads"))?;
    if threads > 1 { Err(Error::ThreadedFork { threads }) } else { Ok(()) }
}

impl Process<()> {
    /// A [`Builder`] to set the child's name, daemon flag and start method.
    ///
    /// # Examples
    ///
    /// ```
    /// let child = multiproc::Process::builder().name("w").spawn(|x: u8| x, 1)?;
    /// assert_eq!(child.join()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl<R: Serialize + DeserializeOwned> Process<R> {
    /// Starts `f(args)` in a new process with the default settings.
    ///
    /// # Errors
    ///
    /// As [`Builder::spawn`].
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::Process;
    ///
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// assert_eq!(Process::spawn(square, 7)?.join()?, 49);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spawn<F, A>(f: F, args: A) -> Result<Process<R>>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned,
    {
        Builder::new().spawn(f, args)
    }
}
