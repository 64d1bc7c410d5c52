//! `AsyncResult`: the handle on a job's results (Python's `AsyncResult`).

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::engine::Core;
use super::job::{Job, JobState, Piece};
use super::wire;
use crate::shm::park::deadline_after;
use crate::{Error, Result};

/// How a complete job becomes its caller's value.
pub(crate) type Finish<T> = fn(&JobState) -> Result<T>;

/// The pieces of a complete job, in item order.
fn in_order(state: &JobState) -> Vec<&Piece> {
    let mut pieces: Vec<&Piece> = state.pieces.iter().collect();
    pieces.sort_unstable_by_key(|p| p.start);
    pieces
}

/// Every item's result, in order; the first error if any item failed.
pub(crate) fn all_items<R: DeserializeOwned>(state: &JobState) -> Result<Vec<R>> {
    let mut out = Vec::with_capacity(state.received);
    for piece in in_order(state) {
        match &piece.body {
            Ok(body) => wire::decode_into(body, piece.count, &mut out)?,
            Err(failure) => return Err(failure.to_error()),
        }
    }
    Ok(out)
}

/// The one item's result of a single-task job.
pub(crate) fn one_item<R: DeserializeOwned>(state: &JobState) -> Result<R> {
    let piece = state.pieces.first().ok_or_else(|| Error::protocol("a job without a result"))?;
    match &piece.body {
        Ok(body) => {
            let mut result = None;
            wire::decode_outcomes(body, 1, |r| result = Some(r));
            result.unwrap_or_else(|| Err(Error::protocol("a worker sent no outcome")))
        }
        Err(failure) => Err(failure.to_error()),
    }
}

/// Whether every item of a complete job succeeded.
pub(crate) fn all_ok(state: &JobState) -> bool {
    state.pieces.iter().all(|p| match &p.body {
        Ok(body) => wire::all_ok(body),
        Err(_) => false,
    })
}

/// The result of [`Pool::apply_async`](crate::Pool::apply_async) (one
/// value) or [`Pool::map_async`](crate::Pool::map_async) (a `Vec`), as
/// Python's `AsyncResult`.
///
/// The results stay encoded until asked for, so [`get`](Self::get) may be
/// called more than once. It is also a [`std::future::Future`] of the same
/// result.
///
/// # Examples
///
/// ```
/// use multiproc::Pool;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = Pool::new(2)?;
/// let one = pool.apply_async(square, 7)?;
/// let many = pool.map_async(square, 0..4)?;
/// assert_eq!(one.get()?, 49);
/// assert_eq!(many.get()?, [0, 1, 4, 9]);
/// assert_eq!(many.successful(), Some(true));
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct AsyncResult<T> {
    core: Arc<Core>,
    job: Arc<Job>,
    finish: Finish<T>,
    _value: PhantomData<fn() -> T>,
}

impl<T> AsyncResult<T> {
    pub(crate) fn new(core: &Arc<Core>, job: Arc<Job>, finish: Finish<T>) -> Self {
        Self { core: Arc::clone(core), job, finish, _value: PhantomData }
    }

    /// Waits for the result and returns it (Python's `get()`).
    ///
    /// # Errors
    ///
    /// The task's error: [`Error::Panicked`] with the panic's message,
    /// [`Error::WorkerDied`] if its worker was killed or exited while it
    /// ran, [`Error::TaskFailed`] if its argument or result did not travel,
    /// [`Error::PoolTerminated`] if the pool was terminated first. For a
    /// `map`, the first failed item's error.
    ///
    /// # Examples
    ///
    /// ```
    /// fn fail(_: ()) -> u8 {
    ///     panic!("no")
    /// }
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(fail, ())?;
    /// assert!(matches!(r.get(), Err(multiproc::Error::Panicked { message, .. }) if message == "no"));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn get(&self) -> Result<T> {
        let (state, _) = self.core.wait_job(&self.job, None, |s| s.complete());
        (self.finish)(&state)
    }

    /// As [`get`](Self::get), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if the result is not ready in time (the result
    /// stays to be taken later), and as [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// }
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(nap, 300)?;
    /// assert!(matches!(r.get_timeout(Duration::from_millis(1)), Err(multiproc::Error::Timeout)));
    /// assert_eq!(r.get_timeout(Duration::from_secs(30))?, 300);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        let (state, ready) =
            self.core.wait_job(&self.job, deadline_after(timeout), |s| s.complete());
        if ready { (self.finish)(&state) } else { Err(Error::Timeout) }
    }

    /// Waits until the result is ready (Python's `wait()`).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(|x: u8| x, 1)?;
    /// r.wait();
    /// assert!(r.ready());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait(&self) {
        drop(self.core.wait_job(&self.job, None, |s| s.complete()));
    }

    /// Waits at most `timeout` for the result; whether it is ready
    /// (Python's `wait(timeout)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(|x: u8| x, 1)?;
    /// assert!(r.wait_timeout(Duration::from_secs(30)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.core.wait_job(&self.job, deadline_after(timeout), |s| s.complete()).1
    }

    /// Whether the result is ready (Python's `ready()`).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(|x: u8| x, 1)?;
    /// r.wait();
    /// assert!(r.ready());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn ready(&self) -> bool {
        self.job.lock().complete()
    }

    /// Whether the call completed without error; `None` while it is not
    /// ready (where Python raises `ValueError`).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(|x: u8| x, 1)?;
    /// r.wait();
    /// assert_eq!(r.successful(), Some(true));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn successful(&self) -> Option<bool> {
        let state = self.job.lock();
        state.complete().then(|| all_ok(&state))
    }
}

impl<T> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult").field("ready", &self.ready()).finish()
    }
}

/// Polls a job for `std::future::Future`.
pub(crate) fn poll_job<T>(job: &Job, finish: Finish<T>, cx: &mut Context<'_>) -> Poll<Result<T>> {
    {
        let state = job.lock();
        if state.complete() {
            return Poll::Ready(finish(&state));
        }
    }
    job.set_waker(cx.waker());
    let state = job.lock();
    if state.complete() { Poll::Ready(finish(&state)) } else { Poll::Pending }
}

impl<T> std::future::Future for AsyncResult<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        poll_job(&self.job, self.finish, cx)
    }
}
