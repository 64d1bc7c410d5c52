//! What a process knows about itself.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

use super::StartMethod;
use crate::os;

/// What a child learns about itself when it starts.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct ChildInfo {
    pub(crate) name: String,
    pub(crate) identity: Vec<u32>,
    pub(crate) daemon: bool,
    pub(crate) parent_pid: u32,
    pub(crate) start_method: StartMethod,
    /// The managers' authkeys the parent knows (see `manager::keys`).
    pub(crate) manager_keys: crate::manager::KnownKeys,
    /// The parent's wait policy, which the child starts with.
    pub(crate) wait_policy: crate::WaitPolicy,
}

static INFO: Mutex<Option<ChildInfo>> = Mutex::new(None);

/// Holds the child-info lock across a fork (see `fork::start`).
pub(crate) fn lock_for_fork() -> std::sync::MutexGuard<'static, Option<ChildInfo>> {
    INFO.lock().unwrap_or_else(PoisonError::into_inner)
}
static CHILDREN_STARTED: AtomicU32 = AtomicU32::new(0);

/// Records, in a new child, who it is.
pub(crate) fn enter_child(mut info: ChildInfo) {
    // `ps` shows the child by its name, not as its executable's; the
    // kernel may refuse (it never does on Linux), which changes nothing.
    let _ = crate::os::set_thread_name(&info.name);
    // A no-op after a fork (the parent installed it; installing it here
    // could wait forever on a lock a parent's thread held at the fork).
    super::panic_hook::install();
    super::panic_hook::name_this_thread(&info.name);
    crate::manager::inherit_keys(std::mem::take(&mut info.manager_keys));
    crate::set_wait_policy(info.wait_policy);
    *INFO.lock().unwrap_or_else(PoisonError::into_inner) = Some(info);
    CHILDREN_STARTED.store(0, Ordering::Relaxed);
}

/// The identity of the next child this process starts: ours plus a counter,
/// as Python numbers `Process-1`, `Process-1:2`...
pub(crate) fn next_identity() -> Vec<u32> {
    let mut identity = INFO
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map(|info| info.identity.clone())
        .unwrap_or_default();
    identity.push(CHILDREN_STARTED.fetch_add(1, Ordering::Relaxed) + 1);
    identity
}

/// Python's default name for a child with `identity`.
pub(crate) fn default_name(identity: &[u32]) -> String {
    let parts: Vec<String> = identity.iter().map(u32::to_string).collect();
    format!("Process-{}", parts.join(":"))
}

/// What the running process knows about itself; see [`current_process`].
///
/// # Examples
///
/// ```
/// let me = multiproc::current_process();
/// assert_eq!(me.name(), "MainProcess");
/// assert_eq!(me.pid(), std::process::id());
/// assert!(!me.is_child());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CurrentProcess {
    name: String,
    pid: u32,
    parent_pid: u32,
    child: bool,
    daemon: bool,
    start_method: Option<StartMethod>,
}

impl CurrentProcess {
    /// The process's name: `"MainProcess"` for a program multiproc did not
    /// start, else the name its parent gave (by default `Process-N`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::current_process().name(), "MainProcess");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::current_process().pid(), std::process::id());
    /// ```
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The id of the process that started this one: the multiproc parent for
    /// a child (also under the fork server), else the operating system's
    /// parent process.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(multiproc::current_process().parent_pid() > 0);
    /// ```
    pub fn parent_pid(&self) -> u32 {
        self.parent_pid
    }

    /// Whether multiproc started this process.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!multiproc::current_process().is_child());
    /// ```
    pub fn is_child(&self) -> bool {
        self.child
    }

    /// Whether this process is a daemon child (it dies with its parent).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!multiproc::current_process().daemon());
    /// ```
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// How this process was started, or `None` if multiproc did not start it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::current_process().start_method(), None);
    /// ```
    pub fn start_method(&self) -> Option<StartMethod> {
        self.start_method
    }
}

/// Describes the running process (Python's `multiprocessing.current_process()`
/// and `parent_process()`).
///
/// # Examples
///
/// ```
/// use multiproc::{Process, current_process};
///
/// fn who(_: ()) -> (String, u32) {
///     let me = current_process();
///     (me.name().to_owned(), me.parent_pid())
/// }
///
/// let child = Process::builder().name("worker-1").spawn(who, ())?;
/// assert_eq!(child.join()?, ("worker-1".to_owned(), std::process::id()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn current_process() -> CurrentProcess {
    let info = INFO.lock().unwrap_or_else(PoisonError::into_inner).clone();
    match info {
        Some(info) => CurrentProcess {
            name: info.name,
            pid: os::getpid(),
            parent_pid: info.parent_pid,
            child: true,
            daemon: info.daemon,
            start_method: Some(info.start_method),
        },
        None => CurrentProcess {
            name: "MainProcess".to_owned(),
            pid: os::getpid(),
            parent_pid: os::getppid(),
            child: false,
            daemon: false,
            start_method: None,
        },
    }
}

/// The number of CPUs this process may run on (its affinity mask), at least 1.
///
/// # Examples
///
/// ```
/// assert!(multiproc::cpu_count() >= 1);
/// ```
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
