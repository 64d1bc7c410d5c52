//! Light CSP processes: `async` bodies run as tasks on one scheduler
//! thread per process, as PyCSP runs its processes as greenlets, so that a
//! network of a million processes fits in one program. They talk over the
//! same channels as threads and OS processes.
#![allow(unsafe_code)] // none of its own; `catch_unwind` needs no unsafe

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use super::process::{Running, Start};
use crate::os;
use crate::shm::park;

/// A light CSP process not started yet: an `async` body, to run as a task
/// on this process's scheduler thread (PyCSP's greenlet processes). A
/// `#[process] async fn` returns one.
///
/// Light processes wait without a thread: a million of them, each blocked
/// in a channel read, cost memory only. They use the `_async` methods of
/// channel ends (a blocking call inside one would stop every light process
/// of the program until it returns).
///
/// # Examples
///
/// ```
/// use multiproc::csp::{Channel, Light};
///
/// let ch = Channel::<u64>::new()?;
/// let (r, w) = (ch.reader(), ch.writer());
/// let reader = Light::new(async move { r.read_async().await.unwrap() * 2 });
/// let writer = Light::new(async move { w.write_async(21).await.unwrap(); 0 });
/// let (doubled, _) = multiproc::csp::parallel!(reader, writer)?;
/// assert_eq!(doubled, 42);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Light<R> {
    future: Pin<Box<dyn Future<Output = R> + Send>>,
    name: Option<String>,
}

impl<R: Send + 'static> Light<R> {
    /// A light process that will run `future`.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = multiproc::csp::Light::new(async { 7 });
    /// assert_eq!(p.run()?, 7);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new(future: impl Future<Output = R> + Send + 'static) -> Self {
        Self { future: Box::pin(future), name: None }
    }

    /// Names the process (in the error of a panic).
    ///
    /// # Examples
    ///
    /// ```
    /// let p = multiproc::csp::Light::new(async { panic!("boom") }).name("light one");
    /// let err: multiproc::Error = p.run().unwrap_err();
    /// assert!(err.to_string().contains("light one"));
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Starts the process on the scheduler; [`Running::join`] waits for
    /// its result.
    ///
    /// # Errors
    ///
    /// If the scheduler thread could not be started.
    ///
    /// # Examples
    ///
    /// ```
    /// let running = multiproc::csp::Light::new(async { 1 }).start()?;
    /// assert_eq!(running.join()?, 1);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn start(self) -> crate::Result<Running<R>> {
        let slot = Arc::new(Slot { value: Mutex::new(None), done: AtomicU32::new(PENDING) });
        let name = self.name.unwrap_or_else(|| "a light process".to_owned());
        let task = Reporting { inner: self.future, slot: Arc::clone(&slot), name: name.clone() };
        scheduler()?.spawn(Box::pin(task));
        Ok(Running::light(Box::new(move || slot.wait(&name))))
    }

    /// Runs the process to its end, waiting here for it.
    ///
    /// # Errors
    ///
    /// As [`Running::join`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::csp::Light::new(async { "done" }).run()?, "done");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn run(self) -> crate::Result<R> {
        self.start()?.join()
    }
}

impl<R: Send + 'static> Start<R> for Light<R> {
    fn start_boxed(self: Box<Self>) -> crate::Result<Running<R>> {
        (*self).start()
    }
}

impl<R> fmt::Debug for Light<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Light").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Where a light process's result waits for its joiner.
struct Slot<R> {
    value: Mutex<Option<crate::Result<R>>>,
    /// [`PENDING`], [`JOINER_ASLEEP`] or [`DONE`] (a futex the joiner
    /// sleeps on): the scheduler makes a system call to wake a joiner only
    /// if one sleeps.
    done: AtomicU32,
}

const PENDING: u32 = 0;
const JOINER_ASLEEP: u32 = 1;
const DONE: u32 = 2;

/// A joiner to wake once the scheduler has a moment.
trait Joiner: Send + Sync {
    fn wake_joiner(&self);
}

impl<R: Send> Joiner for Slot<R> {
    fn wake_joiner(&self) {
        park::wake(&self.done, u32::MAX);
    }
}

/// Wake-ups of joiners are batched: a joiner woken for every light
/// process of a `Parallel` of a million (joined in order) would sleep and
/// wake a million times, two context switches each.
const JOINERS_PER_BATCH: usize = 64;

thread_local! {
    /// The joiners to wake, on the scheduler thread.
    static JOINERS: std::cell::RefCell<Vec<Arc<dyn Joiner>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Wakes the joiners waiting to be woken on this thread.
fn wake_joiners() {
    let joiners = JOINERS.with(|j| std::mem::take(&mut *j.borrow_mut()));
    for joiner in joiners {
        joiner.wake_joiner();
    }
}

impl<R: Send + 'static> Slot<R> {
    fn set(self: &Arc<Self>, value: crate::Result<R>) {
        *self.value.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
        if self.done.swap(DONE, Ordering::SeqCst) == JOINER_ASLEEP {
            let batch = JOINERS.with(|j| {
                let mut joiners = j.borrow_mut();
                joiners.push(Arc::clone(self) as Arc<dyn Joiner>);
                joiners.len()
            });
            if batch >= JOINERS_PER_BATCH {
                wake_joiners();
            }
        }
    }
}

impl<R> Slot<R> {
    fn wait(&self, name: &str) -> crate::Result<R> {
        while let Ok(_) | Err(JOINER_ASLEEP) =
            self.done.compare_exchange(PENDING, JOINER_ASLEEP, Ordering::SeqCst, Ordering::SeqCst)
        {
            park::wait(&self.done, JOINER_ASLEEP, None);
        }
        self.value.lock().unwrap_or_else(PoisonError::into_inner).take().unwrap_or_else(|| {
            Err(crate::Error::Panicked {
                process: name.to_owned(),
                location: None,
                message: "its result was taken already".to_owned(),
            })
        })
    }
}

/// A light process's body, reporting its end (a panic included) to its
/// slot.
struct Reporting<R> {
    inner: Pin<Box<dyn Future<Output = R> + Send>>,
    slot: Arc<Slot<R>>,
    name: String,
}

impl<R: Send + 'static> Future for Reporting<R> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        match std::panic::catch_unwind(AssertUnwindSafe(|| this.inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => {
                this.slot.set(Ok(value));
                Poll::Ready(())
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string panic".to_owned());
                log::warn!("CSP process {:?} (light) panicked: {message}", this.name);
                let process = this.name.clone();
                this.slot.set(Err(crate::Error::Panicked { process, location: None, message }));
                Poll::Ready(())
            }
        }
    }
}

type Body = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One light process on the scheduler.
struct Task {
    body: Mutex<Option<Body>>,
    /// In the run queue (or being run and woken meanwhile).
    queued: AtomicBool,
    scheduler: &'static Scheduler,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.scheduler.push(Arc::clone(self));
        }
    }
}

/// The run queue of light processes and the thread that runs them.
struct Scheduler {
    generation: u64,
    queue: Mutex<VecDeque<Arc<Task>>>,
    /// Bumped on each push while the thread sleeps; it sleeps on it.
    bell: AtomicU32,
    asleep: AtomicBool,
}

fn scheduler() -> crate::Result<&'static Scheduler> {
    static CURRENT: AtomicPtr<Scheduler> = AtomicPtr::new(std::ptr::null_mut());
    let generation = os::fork_generation();
    let current = CURRENT.load(Ordering::Acquire);
    // SAFETY: `CURRENT` only ever holds null or a leaked, never freed
    // `Scheduler`.
    if let Some(scheduler) = unsafe { current.as_ref() }
        && scheduler.generation == generation
    {
        return Ok(scheduler);
    }
    // A forked child makes its own (its parent's thread did not come).
    let made: &'static Scheduler = Box::leak(Box::new(Scheduler {
        generation,
        queue: Mutex::default(),
        bell: AtomicU32::new(0),
        asleep: AtomicBool::new(false),
    }));
    let ptr = std::ptr::from_ref(made).cast_mut();
    match CURRENT.compare_exchange(current, ptr, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            crate::process::spawn_helper("multiproc-light", move || made.run())
                .map_err(crate::Error::os("start the light process scheduler"))?;
            Ok(made)
        }
        Err(_) => scheduler(),
    }
}

impl Scheduler {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Arc<Task>>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn spawn(&'static self, body: Body) {
        let task = Arc::new(Task {
            body: Mutex::new(Some(body)),
            queued: AtomicBool::new(true),
            scheduler: self,
        });
        self.push(task);
    }

    fn push(&self, task: Arc<Task>) {
        self.lock().push_back(task);
        if self.asleep.load(Ordering::SeqCst) {
            self.bell.fetch_add(1, Ordering::SeqCst);
            park::wake(&self.bell, 1);
        }
    }

    fn run(&self) {
        crate::aio::set_light_thread();
        loop {
            let next = self.lock().pop_front();
            let Some(task) = next else {
                // Nothing to run: joiners wait no longer.
                wake_joiners();
                self.sleep();
                continue;
            };
            task.queued.store(false, Ordering::Release);
            let mut body = task.body.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(future) = body.as_mut() else { continue };
            let waker = Waker::from(Arc::clone(&task));
            if future.as_mut().poll(&mut Context::from_waker(&waker)).is_ready() {
                *body = None;
            }
        }
    }

    fn sleep(&self) {
        // Look for work for the poll budget first (the wait policy's): a
        // program starting light processes one after another wakes no
        // sleeping scheduler for each.
        let key = std::ptr::from_ref(&self.bell).cast();
        if park::poll(key, None, || !self.lock().is_empty()) {
            return;
        }
        let seen = self.bell.load(Ordering::SeqCst);
        self.asleep.store(true, Ordering::SeqCst);
        if self.lock().is_empty() {
            park::wait(&self.bell, seen, None);
        }
        self.asleep.store(false, Ordering::SeqCst);
    }
}
