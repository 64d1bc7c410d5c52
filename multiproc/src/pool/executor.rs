//! The `concurrent.futures` face: `ProcessPoolExecutor`, `TaskFuture`,
//! `as_completed`.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::engine::Core;
use super::handle::Pool;
use super::job::{Failure, Job, Piece, Signal};
use super::result::{self, poll_job};
use super::wire;
use crate::shm::park::deadline_after;
use crate::{Error, Result};

/// A pool behind Python's `concurrent.futures.ProcessPoolExecutor` face:
/// [`submit`](Self::submit) returns a [`TaskFuture`].
///
/// Dropping the executor shuts it down as `shutdown(wait=True)` does... for
/// the work already running: the pool is terminated once the submitted
/// tasks are done (Python's `with ProcessPoolExecutor() as ex:`).
///
/// # Examples
///
/// ```
/// use multiproc::ProcessPoolExecutor;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let executor = ProcessPoolExecutor::new(2)?;
/// let future = executor.submit(square, 12)?;
/// assert_eq!(future.result()?, 144);
/// let squares: Vec<u64> = executor.map(square, 0..4, None)?.collect::<Result<_, _>>()?;
/// assert_eq!(squares, [0, 1, 4, 9]);
/// executor.shutdown(true, false)?;
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Debug)]
pub struct ProcessPoolExecutor {
    pool: Pool,
}

impl ProcessPoolExecutor {
    /// An executor of `max_workers` worker processes (0: one per CPU).
    ///
    /// # Errors
    ///
    /// As [`PoolBuilder::build`](crate::PoolBuilder::build).
    ///
    /// # Examples
    ///
    /// ```
    /// let executor = multiproc::ProcessPoolExecutor::new(1)?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new(max_workers: usize) -> Result<Self> {
        Pool::new(max_workers).map(Self::from_pool)
    }

    pub(crate) fn from_pool(pool: Pool) -> Self {
        Self { pool }
    }

    /// The pool under the executor.
    ///
    /// # Examples
    ///
    /// ```
    /// let executor = multiproc::ProcessPoolExecutor::new(2)?;
    /// assert_eq!(executor.pool().processes(), 2);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Schedules `f(args)` and returns its future (Python's `submit`).
    ///
    /// # Errors
    ///
    /// [`Error::PoolClosed`] after [`shutdown`](Self::shutdown);
    /// [`Error::Unsupported`] if `f` captures and the pool does not fork.
    ///
    /// # Examples
    ///
    /// ```
    /// let executor = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = executor.submit(|(a, b): (u8, u8)| a + b, (1, 2))?;
    /// assert_eq!(f.result()?, 3);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn submit<F, A, R>(&self, f: F, args: A) -> Result<TaskFuture<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let core = &self.pool.core;
        core.check_open()?;
        let (target, closure) = super::target(&f, core.config().method)?;
        let job = Job::new(closure);
        job.set_total(1);
        let mut msg = wire::begin_task(0, wire::NO_CANCEL, target, 32);
        let sent = crate::transfer::codec::carried_fds(|| wire::push_arg(&mut msg, &args));
        let task = match sent {
            (Ok(()), false) => core.submit(&job, 0, 1, msg, true).ok(),
            (Ok(()), true) => {
                let failure = Failure::NotSent(wire::fds_refused().to_string());
                job.deliver(Piece { start: 0, count: 1, body: Err(failure) });
                None
            }
            (Err(e), _) => {
                job.deliver(Piece {
                    start: 0,
                    count: 1,
                    body: Err(Failure::NotSent(e.to_string())),
                });
                None
            }
        };
        Ok(TaskFuture { core: Arc::clone(core), job, task, _value: PhantomData })
    }

    /// Applies `f` to every item; the results come in order, each waited for
    /// until `timeout` after this call at most (Python's `Executor.map`).
    /// Once the time is up, the iterator yields [`Error::Timeout`] and ends,
    /// and the tasks not started are cancelled.
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let executor = multiproc::ProcessPoolExecutor::new(2)?;
    /// let v: Vec<u8> = executor
    ///     .map(|x: u8| x + 1, [1, 2, 3], Some(Duration::from_secs(30)))?
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(v, [2, 3, 4]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn map<F, A, R>(
        &self,
        f: F,
        iterable: impl IntoIterator<Item = A>,
        timeout: Option<Duration>,
    ) -> Result<ExecutorMap<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let deadline = timeout.and_then(deadline_after);
        let futures =
            iterable.into_iter().map(|a| self.submit(f, a)).collect::<Result<Vec<_>>>()?;
        Ok(ExecutorMap { futures: futures.into_iter(), deadline, timeout: timeout.is_some() })
    }

    /// Stops taking work (Python's `shutdown`): with `cancel_futures`, the
    /// tasks not yet started are cancelled; with `wait`, returns once the
    /// rest is done and every worker has exited.
    ///
    /// # Errors
    ///
    /// As [`Pool::join`].
    ///
    /// # Examples
    ///
    /// ```
    /// let executor = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = executor.submit(|x: u8| x, 1)?;
    /// executor.shutdown(true, false)?;
    /// assert_eq!(f.result()?, 1);
    /// assert!(executor.submit(|x: u8| x, 1).is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) -> Result<()> {
        let core = &self.pool.core;
        if cancel_futures {
            for task in core.cancellable_tasks() {
                core.cancel(task);
            }
        }
        core.close();
        if wait { self.pool.join() } else { Ok(()) }
    }
}

impl Drop for ProcessPoolExecutor {
    fn drop(&mut self) {
        // Python's `with` block ends with `shutdown(wait=True)`.
        let _ = self.shutdown(true, false);
    }
}

/// The future of a task submitted to a [`ProcessPoolExecutor`] (Python's
/// `concurrent.futures.Future`). Also a [`std::future::Future`] of the same
/// result.
///
/// # Examples
///
/// ```
/// let executor = multiproc::ProcessPoolExecutor::new(1)?;
/// let f = executor.submit(|x: u32| x * 3, 14)?;
/// assert_eq!(f.result()?, 42);
/// assert!(f.done());
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct TaskFuture<R> {
    core: Arc<Core>,
    job: Arc<Job>,
    /// The task's id, if it was sent.
    task: Option<u64>,
    _value: PhantomData<fn() -> R>,
}

impl<R: DeserializeOwned> TaskFuture<R> {
    /// Waits for the result (Python's `result()`).
    ///
    /// # Errors
    ///
    /// As [`AsyncResult::get`](crate::AsyncResult::get), and
    /// [`Error::Cancelled`] if the task was cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// let executor = multiproc::ProcessPoolExecutor::new(1)?;
    /// assert_eq!(executor.submit(|x: u8| x, 5)?.result()?, 5);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn result(&self) -> Result<R> {
        let (state, _) = self.core.wait_job(&self.job, None, |s| s.complete());
        result::one_item(&state)
    }

    /// As [`result`](Self::result), waiting at most `timeout` (Python's
    /// `result(timeout)`).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if it is not done in time, and as
    /// [`result`](Self::result).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let executor = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = executor.submit(|x: u8| x, 5)?;
    /// assert_eq!(f.result_timeout(Duration::from_secs(30))?, 5);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn result_timeout(&self, timeout: Duration) -> Result<R> {
        self.result_until(deadline_after(timeout))
    }

    fn result_until(&self, deadline: Option<Instant>) -> Result<R> {
        let (state, ready) = self.core.wait_job(&self.job, deadline, |s| s.complete());
        if ready { result::one_item(&state) } else { Err(Error::Timeout) }
    }
}

impl<R> TaskFuture<R> {
    /// Cancels the task if no worker has started it (Python's `cancel()`);
    /// whether it is cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// fn nap(ms: u64) {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms));
    /// }
    /// let executor = multiproc::ProcessPoolExecutor::new(1)?;
    /// let busy = executor.submit(nap, 200)?;
    /// let waiting = executor.submit(nap, 0)?;
    /// if waiting.cancel() {
    ///     assert!(waiting.cancelled());
    ///     assert!(matches!(waiting.result(), Err(multiproc::Error::Cancelled)));
    /// }
    /// busy.result()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn cancel(&self) -> bool {
        match self.task {
            Some(task) => self.core.cancel(task) || self.cancelled(),
            None => false,
        }
    }

    /// Whether the task was cancelled (Python's `cancelled()`).
    ///
    /// # Examples
    ///
    /// ```
    /// let executor = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = executor.submit(|x: u8| x, 1)?;
    /// f.result()?;
    /// assert!(!f.cancelled());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn cancelled(&self) -> bool {
        let state = self.job.lock();
        state.pieces.iter().any(|p| matches!(p.body, Err(Failure::Cancelled)))
    }

    /// Whether the task is done: finished, failed or cancelled (Python's
    /// `done()`).
    ///
    /// # Examples
    ///
    /// ```
    /// let executor = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = executor.submit(|x: u8| x, 1)?;
    /// f.result()?;
    /// assert!(f.done());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn done(&self) -> bool {
        self.job.lock().complete()
    }

    /// Whether a worker runs the task now (Python's `running()`).
    ///
    /// # Examples
    ///
    /// ```
    /// let executor = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = executor.submit(|x: u8| x, 1)?;
    /// f.result()?;
    /// assert!(!f.running());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn running(&self) -> bool {
        !self.done() && self.task.is_some_and(|task| self.core.running(task))
    }
}

impl<R: DeserializeOwned> std::future::Future for TaskFuture<R> {
    type Output = Result<R>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        poll_job(&self.job, result::one_item::<R>, cx)
    }
}

impl<R> fmt::Debug for TaskFuture<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskFuture").field("task", &self.task).field("done", &self.done()).finish()
    }
}

/// The results of [`ProcessPoolExecutor::map`], in order.
///
/// # Examples
///
/// ```
/// let executor = multiproc::ProcessPoolExecutor::new(1)?;
/// let mut it = executor.map(|x: u8| x, [7], None)?;
/// assert_eq!(it.next().transpose()?, Some(7));
/// assert!(it.next().is_none());
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct ExecutorMap<R> {
    futures: std::vec::IntoIter<TaskFuture<R>>,
    deadline: Option<Instant>,
    timeout: bool,
}

impl<R: DeserializeOwned> Iterator for ExecutorMap<R> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        let future = self.futures.next()?;
        let result =
            if self.timeout { future.result_until(self.deadline) } else { future.result() };
        if matches!(result, Err(Error::Timeout)) {
            future.cancel();
            for rest in self.futures.by_ref() {
                rest.cancel();
            }
        }
        Some(result)
    }
}

impl<R> fmt::Debug for ExecutorMap<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorMap").field("left", &self.futures.len()).finish()
    }
}

/// Yields the futures as they complete (Python's
/// `concurrent.futures.as_completed`); with a `timeout`, yields
/// [`Error::Timeout`] and ends if some are not done in time.
///
/// # Examples
///
/// ```
/// use multiproc::{ProcessPoolExecutor, as_completed};
///
/// let executor = ProcessPoolExecutor::new(2)?;
/// let futures: Vec<_> = (0..4u64).map(|i| executor.submit(|x: u64| x * x, i)).collect::<Result<_, _>>()?;
/// let mut total = 0;
/// for done in as_completed(futures, None) {
///     total += done?.result()?;
/// }
/// assert_eq!(total, 0 + 1 + 4 + 9);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn as_completed<R>(
    futures: impl IntoIterator<Item = TaskFuture<R>>,
    timeout: Option<Duration>,
) -> AsCompleted<R> {
    let signal = Arc::new(Signal::default());
    let pending: Vec<TaskFuture<R>> = futures.into_iter().collect();
    for future in &pending {
        future.job.listen(Arc::clone(&signal));
    }
    AsCompleted { pending, signal, deadline: timeout.and_then(deadline_after), timed_out: false }
}

/// The iterator of [`as_completed`].
///
/// # Examples
///
/// ```
/// let executor = multiproc::ProcessPoolExecutor::new(1)?;
/// let f = executor.submit(|x: u8| x, 3)?;
/// let mut it = multiproc::as_completed([f], None);
/// assert_eq!(it.next().unwrap()?.result()?, 3);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct AsCompleted<R> {
    pending: Vec<TaskFuture<R>>,
    signal: Arc<Signal>,
    deadline: Option<Instant>,
    timed_out: bool,
}

impl<R> Iterator for AsCompleted<R> {
    type Item = Result<TaskFuture<R>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pending.is_empty() || self.timed_out {
            return None;
        }
        loop {
            let seen = self.signal.seen();
            if let Some(i) = self.pending.iter().position(TaskFuture::done) {
                return Some(Ok(self.pending.swap_remove(i)));
            }
            if !self.signal.wait(seen, self.deadline) {
                if let Some(i) = self.pending.iter().position(TaskFuture::done) {
                    return Some(Ok(self.pending.swap_remove(i)));
                }
                self.timed_out = true;
                return Some(Err(Error::Timeout));
            }
        }
    }
}

impl<R> fmt::Debug for AsCompleted<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted").field("pending", &self.pending.len()).finish()
    }
}
