//! CSP processes (PyCSP's `@process` and `@multiprocess`) and their
//! composition: `Parallel`, `Sequence`, `Spawn`.

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StartMethod;

/// How a started process runs.
type Launch<F, A, R> = fn(F, A, Option<StartMethod>, Option<String>) -> crate::Result<Running<R>>;

/// A CSP process not started yet: a function and its arguments, to run in
/// a thread (the default, PyCSP's `@process`) or in an OS process
/// ([`os`](Process::os), PyCSP's `@multiprocess`). `#[process]` functions
/// return one.
///
/// # Examples
///
/// ```
/// use multiproc::csp::{self, Process};
///
/// fn double(x: u64) -> u64 { x * 2 }
///
/// let (a, b) = csp::parallel!(Process::new(double, 2), Process::new(double, 3).os())?;
/// assert_eq!((a, b), (4, 6));
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Process<F, A, R> {
    f: F,
    args: A,
    name: Option<String>,
    /// `Some` for an OS process: how to start one (monomorphized where the
    /// serde bounds hold), and with which start method.
    os: Option<(Launch<F, A, R>, Option<StartMethod>)>,
    _result: PhantomData<fn() -> R>,
}

impl<F, A, R> Process<F, A, R>
where
    F: Fn(A) -> R + Copy + Send + 'static,
    A: Send + 'static,
    R: Send + 'static,
{
    /// A process that will run `f(args)`, in a thread unless told otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// fn hello(name: &'static str) -> String { format!("hello {name}") }
    /// let p = multiproc::csp::Process::new(hello, "csp");
    /// assert_eq!(p.run()?, "hello csp");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new(f: F, args: A) -> Self {
        Self { f, args, name: None, os: None, _result: PhantomData }
    }

    /// Names the process (its thread, or its OS process).
    ///
    /// # Examples
    ///
    /// ```
    /// fn me(_: ()) -> String { std::thread::current().name().unwrap_or("").to_owned() }
    /// let p = multiproc::csp::Process::new(me, ()).name("worker");
    /// assert_eq!(p.run()?, "worker");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Starts the process; [`Running::join`] waits for its result.
    ///
    /// # Errors
    ///
    /// If the thread or OS process could not be started.
    ///
    /// # Examples
    ///
    /// ```
    /// fn one(_: ()) -> u8 { 1 }
    /// let running = multiproc::csp::Process::new(one, ()).start()?;
    /// assert_eq!(running.join()?, 1);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn start(self) -> crate::Result<Running<R>> {
        if let Some((launch, method)) = self.os {
            return launch(self.f, self.args, method, self.name);
        }
        let (f, args) = (self.f, self.args);
        let mut thread = std::thread::Builder::new();
        if let Some(name) = self.name {
            thread = thread.name(name);
        }
        let handle = thread
            .spawn(move || f(args))
            .map_err(crate::Error::os("start a CSP process thread"))?;
        Ok(Running { how: RunningHow::Thread(handle) })
    }

    /// Runs the process here and now, to its end (a [`Parallel`] of one).
    ///
    /// # Errors
    ///
    /// As [`Running::join`].
    ///
    /// # Examples
    ///
    /// ```
    /// fn one(_: ()) -> u8 { 1 }
    /// assert_eq!(multiproc::csp::Process::new(one, ()).run()?, 1);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn run(self) -> crate::Result<R> {
        self.start()?.join()
    }

    /// `n` copies of this process, each with its own copy of the arguments
    /// (cloning a channel end registers a new end, so retire counts stay
    /// right). PyCSP's `P() * n`; `process * n` does the same.
    ///
    /// # Examples
    ///
    /// ```
    /// fn one(_: ()) -> u8 { 1 }
    /// let all = multiproc::csp::Parallel::new().add_all(multiproc::csp::Process::new(one, ()).replicate(3)).run()?;
    /// assert_eq!(all, [1, 1, 1]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn replicate(self, n: usize) -> Vec<Self>
    where
        A: Clone,
    {
        let mut copies: Vec<Self> = (1..n)
            .map(|_| Self {
                f: self.f,
                args: self.args.clone(),
                name: self.name.clone(),
                os: self.os,
                _result: PhantomData,
            })
            .collect();
        if n > 0 {
            copies.push(self);
        }
        copies
    }
}

impl<F, A, R> Process<F, A, R>
where
    F: Fn(A) -> R + Copy + Send + 'static,
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    /// Runs this process in an OS process of its own (PyCSP's
    /// `@multiprocess`), with the default start method. Its arguments and
    /// result are then serde types; channel ends among the arguments work
    /// there.
    ///
    /// # Examples
    ///
    /// ```
    /// fn pid(_: ()) -> u32 { std::process::id() }
    /// let theirs = multiproc::csp::Process::new(pid, ()).os().run()?;
    /// assert_ne!(theirs, std::process::id());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn os(mut self) -> Self {
        self.os = Some((launch_os::<F, A, R>, None));
        self
    }

    /// Runs this process in an OS process started with `method`.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::StartMethod;
    /// fn pid(_: ()) -> u32 { std::process::id() }
    /// let p = multiproc::csp::Process::new(pid, ()).start_method(StartMethod::ForkServer);
    /// assert_ne!(p.run()?, std::process::id());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.os = Some((launch_os::<F, A, R>, Some(method)));
        self
    }
}

impl<F, A, R> std::ops::Mul<usize> for Process<F, A, R>
where
    F: Fn(A) -> R + Copy + Send + 'static,
    A: Clone + Send + 'static,
    R: Send + 'static,
{
    type Output = Vec<Self>;

    /// [`replicate`](Process::replicate).
    fn mul(self, n: usize) -> Vec<Self> {
        self.replicate(n)
    }
}

impl<F, A, R> fmt::Debug for Process<F, A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.name)
            .field("os", &self.os.map(|(_, method)| method))
            .finish_non_exhaustive()
    }
}

/// Starts `f(args)` in an OS process. Its arguments travel encoded, with
/// every start method, so the channel ends among them move to the child
/// (this process's copies do not retire when dropped here).
fn launch_os<F, A, R>(
    f: F,
    args: A,
    method: Option<StartMethod>,
    name: Option<String>,
) -> crate::Result<Running<R>>
where
    F: Fn(A) -> R + Copy + Send + 'static,
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned + 'static,
{
    let mut builder = crate::Process::builder();
    if let Some(method) = method {
        builder = builder.start_method(method);
    }
    if let Some(name) = name {
        builder = builder.name(name);
    }
    let process = builder.spawn(f, args)?;
    Ok(Running { how: RunningHow::Os(Box::new(move || process.join())) })
}

/// A started CSP process.
pub struct Running<R> {
    how: RunningHow<R>,
}

enum RunningHow<R> {
    Thread(std::thread::JoinHandle<R>),
    /// Waits for a light process's result.
    Light(Box<dyn FnOnce() -> crate::Result<R> + Send>),
    /// Joins the OS process (made where its result's serde bounds hold).
    Os(Box<dyn FnOnce() -> crate::Result<R> + Send>),
}

impl<R> fmt::Debug for Running<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.how {
            RunningHow::Thread(_) => "thread",
            RunningHow::Os(_) => "OS process",
            RunningHow::Light(_) => "light process",
        };
        f.debug_struct("Running").field("in", &how).finish()
    }
}

impl<R> Running<R> {
    /// Waits for the process to end and returns what its function returned.
    ///
    /// # Errors
    ///
    /// [`Error::Panicked`](crate::Error::Panicked) if it panicked; for an OS
    /// process, also [`Signaled`](crate::Error::Signaled) and
    /// [`Exited`](crate::Error::Exited) if it was killed or exited early.
    ///
    /// # Examples
    ///
    /// ```
    /// fn boom(_: ()) { panic!("boom") }
    /// let err = multiproc::csp::Process::new(boom, ()).start()?.join().unwrap_err();
    /// assert!(err.to_string().contains("boom"));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn join(self) -> crate::Result<R> {
        match self.how {
            RunningHow::Thread(handle) => {
                let name = handle.thread().name().unwrap_or("an unnamed thread").to_owned();
                handle.join().map_err(|panic| {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a non-string panic".to_owned());
                    log::warn!("CSP process {name:?} (a thread) panicked: {message}");
                    crate::Error::Panicked { process: name, location: None, message }
                })
            }
            RunningHow::Os(join) | RunningHow::Light(join) => join(),
        }
    }
}

impl<R> Running<R> {
    /// A started light process, joined by `join`.
    pub(crate) fn light(join: Box<dyn FnOnce() -> crate::Result<R> + Send>) -> Self {
        Self { how: RunningHow::Light(join) }
    }
}

/// Something [`Parallel`] can start: a [`Process`] of any function whose
/// result is `R`.
pub trait Start<R>: Send {
    /// Starts it.
    ///
    /// # Errors
    ///
    /// If it could not be started.
    fn start_boxed(self: Box<Self>) -> crate::Result<Running<R>>;
}

impl<F, A, R> Start<R> for Process<F, A, R>
where
    F: Fn(A) -> R + Copy + Send + 'static,
    A: Send + 'static,
    R: Send + 'static,
{
    fn start_boxed(self: Box<Self>) -> crate::Result<Running<R>> {
        (*self).start()
    }
}

/// The building half shared by [`Parallel`] and [`Sequence`]: a list of
/// processes of one result type.
macro_rules! process_list {
    ($list:ident, $what:literal) => {
        impl<R: Send + 'static> $list<R> {
            /// No processes yet.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("let none: Vec<()> = multiproc::csp::", stringify!($list), "::new().run()?;")]
            /// assert!(none.is_empty());
            /// # Ok::<(), multiproc::Error>(())
            /// ```
            pub fn new() -> Self {
                Self { processes: Vec::new() }
            }

            #[doc = concat!("Adds a process, ", $what, ".")]
            ///
            /// # Examples
            ///
            /// ```
            /// fn id(x: u8) -> u8 { x }
            #[doc = concat!("let v = multiproc::csp::", stringify!($list), "::new().add(multiproc::csp::Process::new(id, 1)).run()?;")]
            /// assert_eq!(v, [1]);
            /// # Ok::<(), multiproc::Error>(())
            /// ```
            #[allow(clippy::should_implement_trait)] // PyCSP's and the issue's name
            pub fn add(mut self, process: impl Start<R> + 'static) -> Self {
                self.processes.push(Box::new(process));
                self
            }

            /// Adds every process of `processes` (a replicated one, for
            /// instance).
            ///
            /// # Examples
            ///
            /// ```
            /// fn id(x: u8) -> u8 { x }
            #[doc = concat!("let v = multiproc::csp::", stringify!($list), "::new().add_all(multiproc::csp::Process::new(id, 1) * 2).run()?;")]
            /// assert_eq!(v, [1, 1]);
            /// # Ok::<(), multiproc::Error>(())
            /// ```
            pub fn add_all<P: Start<R> + 'static>(
                mut self,
                processes: impl IntoIterator<Item = P>,
            ) -> Self {
                for process in processes {
                    self.processes.push(Box::new(process));
                }
                self
            }
        }

        impl<R: Send + 'static> Default for $list<R> {
            fn default() -> Self {
                Self::new()
            }
        }

        impl<R> fmt::Debug for $list<R> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($list)).field("processes", &self.processes.len()).finish()
            }
        }
    };
}

/// Processes of one result type, started together and waited for together
/// (PyCSP's `Parallel`); for different result types, [`parallel!`](crate::csp::parallel).
///
/// # Examples
///
/// ```
/// use multiproc::csp::{Parallel, Process};
/// fn square(x: u64) -> u64 { x * x }
/// let squares = Parallel::new().add(Process::new(square, 3)).add(Process::new(square, 4).os()).run()?;
/// assert_eq!(squares, [9, 16]);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Parallel<R> {
    processes: Vec<Box<dyn Start<R>>>,
}

process_list!(Parallel, "to start with the others");

impl<R: Send + 'static> Parallel<R> {
    /// Starts every process, waits for all, and returns their results in
    /// order.
    ///
    /// # Errors
    ///
    /// The first failure (a process that panicked, was killed, or could
    /// not start), after every process that did start has ended.
    ///
    /// # Examples
    ///
    /// ```
    /// fn id(x: u8) -> u8 { x }
    /// let v = multiproc::csp::Parallel::new().add(multiproc::csp::Process::new(id, 7)).run()?;
    /// assert_eq!(v, [7]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn run(self) -> crate::Result<Vec<R>> {
        let started: Vec<_> = self.processes.into_iter().map(Start::start_boxed).collect();
        let ended: Vec<crate::Result<R>> =
            started.into_iter().map(|running| running.and_then(Running::join)).collect();
        ended.into_iter().collect()
    }
}

/// Processes run one after another (PyCSP's `Sequence`), results in order.
///
/// # Examples
///
/// ```
/// use multiproc::csp::{Process, Sequence};
/// fn id(x: u8) -> u8 { x }
/// let v = Sequence::new().add(Process::new(id, 1)).add(Process::new(id, 2)).run()?;
/// assert_eq!(v, [1, 2]);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Sequence<R> {
    processes: Vec<Box<dyn Start<R>>>,
}

process_list!(Sequence, "to run after those added before");

impl<R: Send + 'static> Sequence<R> {
    /// Runs each process to its end, in order; stops at the first that fails.
    ///
    /// # Errors
    ///
    /// As [`Running::join`], or a process that could not start.
    ///
    /// # Examples
    ///
    /// ```
    /// fn id(x: u8) -> u8 { x }
    /// assert_eq!(multiproc::csp::Sequence::new().add(multiproc::csp::Process::new(id, 1)).run()?, [1]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn run(self) -> crate::Result<Vec<R>> {
        self.processes.into_iter().map(|p| p.start_boxed()?.join()).collect()
    }
}

/// Tuples of started processes, joined together by [`parallel!`](crate::csp::parallel).
#[doc(hidden)]
pub trait JoinAll {
    type Output;
    fn join_all(self) -> crate::Result<Self::Output>;
}

macro_rules! join_all_tuple {
    ($($name:ident $res:ident),+) => {
        impl<$($name),+> JoinAll for ($(crate::Result<Running<$name>>,)+) {
            type Output = ($($name,)+);
            #[allow(non_snake_case)]
            fn join_all(self) -> crate::Result<Self::Output> {
                let ($($res,)+) = self;
                // Every started process ends before any error is returned.
                $(let $res = $res.and_then(Running::join);)+
                Ok(($($res?,)+))
            }
        }
    };
}

join_all_tuple!(A a);
join_all_tuple!(A a, B b);
join_all_tuple!(A a, B b, C c);
join_all_tuple!(A a, B b, C c, D d);
join_all_tuple!(A a, B b, C c, D d, E e);
join_all_tuple!(A a, B b, C c, D d, E e, F f);
join_all_tuple!(A a, B b, C c, D d, E e, F f, G g);
join_all_tuple!(A a, B b, C c, D d, E e, F f, G g, H h);
join_all_tuple!(A a, B b, C c, D d, E e, F f, G g, H h, I i);
join_all_tuple!(A a, B b, C c, D d, E e, F f, G g, H h, I i, J j);
join_all_tuple!(A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k);
join_all_tuple!(A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k, L l);

/// Who a CSP process is: its OS process and thread (PyCSP's
/// `current_process_id()`). A thread process and an OS process have
/// different ids; two processes never have the same id at once.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
pub struct ProcessId {
    /// The OS process id.
    pub pid: u32,
    /// The thread id (the kernel's).
    pub tid: u32,
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.pid, self.tid)
    }
}

/// The id of the CSP process running this code (PyCSP's
/// `current_process_id()`).
///
/// # Examples
///
/// ```
/// use multiproc::csp::{self, current_process_id};
/// fn me(_: ()) -> csp::ProcessId { current_process_id() }
/// let (a, b) = csp::parallel!(csp::Process::new(me, ()), csp::Process::new(me, ()).os())?;
/// assert_ne!(a, b);
/// assert_ne!(a, current_process_id());
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn current_process_id() -> ProcessId {
    ProcessId { pid: std::process::id(), tid: crate::os::current_tid() }
}

type Joiner = Box<dyn FnOnce() -> crate::Result<()> + Send>;

thread_local! {
    /// The processes this thread spawned (PyCSP's `Spawn`), joined when the
    /// spawning process ends.
    static SPAWNED: std::cell::RefCell<Vec<Joiner>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Starts `process` and returns at once (PyCSP's `Spawn`). The process is
/// joined when the spawning process ends: a `#[process]` function joins
/// what it spawned as it returns; other code calls [`join_spawned`] (a
/// program's `main`, before it returns).
///
/// # Errors
///
/// If the process could not be started.
///
/// # Examples
///
/// ```
/// use multiproc::csp::{self, Channel, Process, Writer};
/// fn send(w: Writer<u8>) -> csp::Result<()> { w.write(1) }
/// let ch = Channel::<u8>::new()?;
/// csp::spawn(Process::new(send, ch.writer()))?;
/// assert_eq!(ch.reader().read()?, 1);
/// csp::join_spawned()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn spawn<F, A, R>(process: Process<F, A, R>) -> crate::Result<()>
where
    F: Fn(A) -> R + Copy + Send + 'static,
    A: Send + 'static,
    R: Send + 'static,
{
    let running = process.start()?;
    SPAWNED.with(|s| s.borrow_mut().push(Box::new(move || running.join().map(drop))));
    Ok(())
}

/// Waits for every process this thread [`spawn`]ed and not yet joined.
///
/// # Errors
///
/// The first failure of a spawned process (it panicked or was killed),
/// after all of them ended.
///
/// # Examples
///
/// ```
/// fn one(_: ()) -> u8 { 1 }
/// multiproc::csp::spawn(multiproc::csp::Process::new(one, ()))?;
/// multiproc::csp::join_spawned()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn join_spawned() -> crate::Result<()> {
    let mut first_error = None;
    loop {
        let spawned = SPAWNED.with(|s| std::mem::take(&mut *s.borrow_mut()));
        if spawned.is_empty() {
            break;
        }
        for join in spawned {
            if let Err(e) = join() {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
