//! The processes related to this one: its live children
//! ([`active_children`]) and its parent ([`parent_process`]), watched
//! through pidfds (safe from pid reuse), and the process-wide default start
//! method ([`set_start_method`]).

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::StartMethod;
use crate::os;
use crate::shm::park::deadline_after;
use crate::{Error, Result};

/// The start method `Builder`s begin with (see [`set_start_method`]).
static DEFAULT_METHOD: AtomicU8 = AtomicU8::new(0);

/// Sets the start method every later [`Builder`](crate::Builder) (and so
/// [`Process::spawn`](crate::Process::spawn)) uses unless told otherwise,
/// in this process (Python's `set_start_method`). Children start with
/// `Spawn` as their own default again. Python's `get_context(m).Process(..)`
/// is `Process::builder().start_method(m)`.
///
/// # Examples
///
/// ```
/// use multiproc::{Process, StartMethod, get_start_method, set_start_method};
///
/// set_start_method(StartMethod::ForkServer);
/// assert_eq!(get_start_method(), StartMethod::ForkServer);
/// let child = Process::spawn(|x: u8| x + 1, 1)?;
/// assert_eq!(child.start_method(), StartMethod::ForkServer);
/// assert_eq!(child.join()?, 2);
/// set_start_method(StartMethod::Spawn);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn set_start_method(method: StartMethod) {
    let code = match method {
        StartMethod::Spawn => 0,
        StartMethod::Fork => 1,
        StartMethod::ForkServer => 2,
    };
    DEFAULT_METHOD.store(code, Ordering::Relaxed);
}

/// The start method new builders use (Python's `get_start_method`):
/// `Spawn` unless [`set_start_method`] chose another.
///
/// # Examples
///
/// ```
/// assert_eq!(multiproc::get_start_method(), multiproc::StartMethod::Spawn);
/// ```
pub fn get_start_method() -> StartMethod {
    match DEFAULT_METHOD.load(Ordering::Relaxed) {
        1 => StartMethod::Fork,
        2 => StartMethod::ForkServer,
        _ => StartMethod::Spawn,
    }
}

/// A process watched through a pidfd (never reaped here: its parent's
/// handle, or multiproc's reaper, does that).
struct Watched {
    pid: u32,
    /// `None`: it was gone before it could be watched.
    pidfd: Option<OwnedFd>,
}

impl Watched {
    fn is_alive(&self) -> bool {
        self.pidfd.as_ref().is_some_and(|fd| {
            matches!(os::wait_readable(&[fd.as_fd()], Some(Instant::now())), Ok(None))
        })
    }

    /// Waits until it ended or `deadline` passed; whether it ended.
    fn wait_until(&self, deadline: Option<Instant>) -> Result<bool> {
        let Some(fd) = &self.pidfd else { return Ok(true) };
        let ready =
            os::wait_readable(&[fd.as_fd()], deadline).map_err(Error::os("wait for a process"))?;
        Ok(ready.is_some())
    }
}

/// A handle on this process's parent, from [`parent_process`]: its pid,
/// whether it lives, and a way to wait until it ends (a pidfd, so a reused
/// pid is never mistaken for it).
///
/// # Examples
///
/// ```
/// use multiproc::{Process, parent_process};
///
/// fn parent_alive(_: ()) -> (u32, bool) {
///     let parent = parent_process().expect("started by multiproc");
///     (parent.pid(), parent.is_alive())
/// }
///
/// let child = Process::spawn(parent_alive, ())?;
/// assert_eq!(child.join()?, (std::process::id(), true));
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct ParentProcess {
    watched: Watched,
}

/// Python's `parent_process()`: the process that started this one, or
/// `None` in a program multiproc did not start (Python's main process).
///
/// If the parent already ended, the handle says so (`is_alive()` is
/// `false`, `wait` returns at once).
///
/// # Examples
///
/// ```
/// assert!(multiproc::parent_process().is_none()); // not a multiproc child
/// ```
pub fn parent_process() -> Option<ParentProcess> {
    let me = super::current_process();
    if !me.is_child() {
        return None;
    }
    let pid = me.parent_pid();
    // A pidfd names the process that has `pid` now. It is our parent if we
    // are still its child after opening it (had the parent died, we would
    // have been reparented). A fork server's child has the server as its
    // kernel parent: there, a process that reused the pid would have
    // started after us, the real parent before.
    let pidfd = os::pidfd_open(pid).ok().filter(|_| {
        os::getppid() == pid
            || matches!(
                (os::start_time(pid), os::start_time(os::getpid())),
                (Some(theirs), Some(ours)) if theirs <= ours
            )
    });
    Some(ParentProcess { watched: Watched { pid, pidfd } })
}

impl ParentProcess {
    /// The parent's process id.
    ///
    /// # Examples
    ///
    /// ```
    /// fn ppid(_: ()) -> u32 {
    ///     multiproc::parent_process().map_or(0, |p| p.pid())
    /// }
    /// assert_eq!(multiproc::Process::spawn(ppid, ())?.join()?, std::process::id());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.watched.pid
    }

    /// Whether the parent is still running.
    ///
    /// # Examples
    ///
    /// ```
    /// fn alive(_: ()) -> bool {
    ///     multiproc::parent_process().is_some_and(|p| p.is_alive())
    /// }
    /// assert!(multiproc::Process::spawn(alive, ())?.join()?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn is_alive(&self) -> bool {
        self.watched.is_alive()
    }

    /// Waits until the parent ends.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if waiting fails.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// // A watchdog child that outlives its parent only to clean up.
    /// fn cleanup_after_parent(_: ()) {
    ///     if let Some(parent) = multiproc::parent_process() {
    ///         parent.wait().unwrap();
    ///     }
    ///     // ... remove temporary files ...
    /// }
    /// multiproc::Process::spawn(cleanup_after_parent, ())?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait(&self) -> Result<()> {
        self.watched.wait_until(None).map(drop)
    }

    /// Waits at most `timeout` for the parent to end; whether it ended.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if waiting fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// fn parent_ended(_: ()) -> bool {
    ///     let parent = multiproc::parent_process().unwrap();
    ///     parent.wait_timeout(Duration::from_millis(1)).unwrap()
    /// }
    /// assert!(!multiproc::Process::spawn(parent_ended, ())?.join()?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.watched.wait_until(deadline_after(timeout))
    }
}

impl AsFd for ParentProcess {
    /// The parent's pidfd (readable once it ended), for `poll` loops.
    ///
    /// # Panics
    ///
    /// If the parent had already ended when the handle was made (there is
    /// no pidfd then): check [`is_alive`](ParentProcess::is_alive) first.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.watched.pidfd.as_ref().map(AsFd::as_fd).expect("the parent had ended")
    }
}

impl fmt::Debug for ParentProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParentProcess").field("pid", &self.watched.pid).finish_non_exhaustive()
    }
}

/// One of this process's children that is still running, from
/// [`active_children`]: its pid, name and daemon flag, and a way to wait for
/// it without its [`Process`](crate::Process) handle (which may have been
/// dropped).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use multiproc::{Process, active_children};
///
/// fn nap(ms: u64) {
///     std::thread::sleep(Duration::from_millis(ms));
/// }
///
/// let p = Process::builder().name("napper").spawn(nap, 10_000)?;
/// let children = active_children();
/// let napper = children.iter().find(|c| c.pid() == p.pid()).unwrap();
/// assert_eq!(napper.name(), "napper");
/// p.kill()?;
/// assert!(napper.wait_timeout(Duration::from_secs(10))?);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct ActiveChild {
    watched: Watched,
    name: String,
    daemon: bool,
}

impl ActiveChild {
    /// The child's process id.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = multiproc::Process::spawn(|x: u8| x, 0)?;
    /// for c in multiproc::active_children() {
    ///     assert!(c.pid() > 0);
    /// }
    /// p.join()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.watched.pid
    }

    /// The child's name.
    ///
    /// # Examples
    ///
    /// ```
    /// for c in multiproc::active_children() {
    ///     println!("{} is {}", c.name(), c.pid());
    /// }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the child is a daemon.
    ///
    /// # Examples
    ///
    /// ```
    /// let daemons = multiproc::active_children().iter().filter(|c| c.daemon()).count();
    /// # let _ = daemons;
    /// ```
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// Whether the child is still running.
    ///
    /// # Examples
    ///
    /// ```
    /// let all_running = multiproc::active_children().iter().all(|c| c.is_alive());
    /// # let _ = all_running;
    /// ```
    pub fn is_alive(&self) -> bool {
        self.watched.is_alive()
    }

    /// Waits until the child ends (its exit status stays with its
    /// [`Process`](crate::Process) handle).
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if waiting fails.
    ///
    /// # Examples
    ///
    /// ```
    /// // Python's habit of joining every child before leaving.
    /// for child in multiproc::active_children() {
    ///     child.wait()?;
    /// }
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait(&self) -> Result<()> {
        self.watched.wait_until(None).map(drop)
    }

    /// Waits at most `timeout` for the child to end; whether it ended.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if waiting fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// for child in multiproc::active_children() {
    ///     child.wait_timeout(Duration::from_secs(1))?;
    /// }
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.watched.wait_until(deadline_after(timeout))
    }
}

impl fmt::Debug for ActiveChild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActiveChild")
            .field("pid", &self.watched.pid)
            .field("name", &self.name)
            .field("daemon", &self.daemon)
            .finish()
    }
}

/// Every child this process started, while it may still run.
struct Registry {
    /// The process the entries belong to (a forked copy starts afresh).
    owner: u32,
    children: Vec<(u32, String, bool, OwnedFd)>,
}

static CHILDREN: Mutex<Registry> = Mutex::new(Registry { owner: 0, children: Vec::new() });

fn registry() -> MutexGuard<'static, Registry> {
    let mut registry = CHILDREN.lock().unwrap_or_else(PoisonError::into_inner);
    let me = os::getpid();
    if registry.owner != me {
        // A forked copy: those children are our parent's.
        *registry = Registry { owner: me, children: Vec::new() };
    }
    // Those that ended leave (their descriptors with them).
    registry.children.retain(|(_, _, _, pidfd)| {
        matches!(os::wait_readable(&[pidfd.as_fd()], Some(Instant::now())), Ok(None))
    });
    registry
}

/// Drops the entries of children that ended.
pub(crate) fn prune() {
    drop(registry());
}

/// Holds the registry's lock across a fork (see `fork::start`).
pub(crate) fn lock_for_fork() -> impl Sized {
    CHILDREN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records a child this process just started.
pub(crate) fn register(pid: u32, name: &str, daemon: bool, pidfd: BorrowedFd<'_>) {
    // Without a descriptor to spare the child is simply not listed.
    if let Ok(pidfd) = pidfd.try_clone_to_owned() {
        registry().children.push((pid, name.to_owned(), daemon, pidfd));
    }
}

/// Python's `active_children()`: this process's children that are still
/// running, however they were started and whether or not their
/// [`Process`](crate::Process) handles were kept.
///
/// # Examples
///
/// ```
/// use multiproc::{Process, active_children};
///
/// let p = Process::spawn(|x: u8| x, 1)?;
/// p.join()?;
/// assert!(active_children().iter().all(|c| c.name() != "never started"));
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn active_children() -> Vec<ActiveChild> {
    registry()
        .children
        .iter()
        .filter_map(|(pid, name, daemon, pidfd)| {
            Some(ActiveChild {
                watched: Watched { pid: *pid, pidfd: Some(pidfd.try_clone().ok()?) },
                name: name.clone(),
                daemon: *daemon,
            })
        })
        .collect()
}
