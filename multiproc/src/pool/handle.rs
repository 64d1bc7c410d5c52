//! `Pool`: the user's handle on a pool of worker processes.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::builder::PoolBuilder;
use super::engine::Core;
use super::imap::IMap;
use super::job::{Failure, Job, JobState, Piece};
use super::result::{self, AsyncResult};
use super::wire::{self, Target};
use crate::shm::park::deadline_after;
use crate::transfer::codec;
use crate::{Error, Result};

/// A pool of worker processes that run functions on many arguments
/// (Python's `multiprocessing.Pool`).
///
/// Workers pull tasks from one shared-memory queue and put their results on
/// another, which a thread of this process reads. Tasks are functions as
/// for [`Process::spawn`](crate::Process::spawn): `fn(A) -> R` with serde
/// arguments and results (with [`StartMethod::Fork`](crate::StartMethod::Fork),
/// also closures that capture).
///
/// A worker that dies while it runs a task (killed, crashed, `exit`) fails
/// that task alone, with [`Error::WorkerDied`], and is replaced; the other
/// tasks of its chunk run again. A panic fails its task alone, with
/// [`Error::Panicked`], and the worker goes on. Dropping the pool
/// terminates it: no worker, and no zombie, is left behind.
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
/// let pool = Pool::new(4)?;
/// let v: Vec<u64> = pool.map(square, 0..100_000)?;
/// assert_eq!(v[99_999], 99_999 * 99_999);
/// for r in pool.imap_unordered(square, 0..10) {
///     println!("{}", r?);
/// }
/// let a = pool.apply_async(square, 7)?;
/// assert_eq!(a.get()?, 49);
/// pool.close();
/// pool.join()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Pool {
    pub(crate) core: Arc<Core>,
}

/// Python's default chunk size: `ceil(len / (4 * workers))`.
fn default_chunksize(len: usize, workers: usize) -> usize {
    len.div_ceil(4 * workers.max(1)).max(1)
}

/// Encodes up to `max` items of `items` into tasks of `job` from `start`
/// and submits them. Returns how many items it took, and the error that
/// stopped submission, if any (the items it took have their results or
/// failures in the job either way).
pub(crate) fn send_chunk<A: Serialize>(
    core: &Core,
    job: &Arc<Job>,
    target: Target,
    start: usize,
    items: &mut impl Iterator<Item = A>,
    max: usize,
    cancellable: bool,
) -> (usize, Result<()>) {
    let mut runs: Vec<(usize, Vec<u8>, u32)> = Vec::new();
    let mut fails: Vec<(usize, String)> = Vec::new();
    let mut taken = 0;
    // Room for small arguments.
    let capacity = max.saturating_mul(8).clamp(64, 1 << 20);
    let ((), fds) = codec::carried_fds(|| {
        let mut msg = wire::begin_task(0, wire::NO_CANCEL, target, capacity);
        let (mut run_start, mut count) = (start, 0u32);
        while taken < max {
            let Some(item) = items.next() else { break };
            match wire::push_arg(&mut msg, &item) {
                Ok(()) => count += 1,
                Err(e) => {
                    if count > 0 {
                        let fresh = wire::begin_task(0, wire::NO_CANCEL, target, capacity);
                        runs.push((run_start, std::mem::replace(&mut msg, fresh), count));
                    }
                    fails.push((start + taken, e.to_string()));
                    (run_start, count) = (start + taken + 1, 0);
                }
            }
            taken += 1;
        }
        if count > 0 {
            runs.push((run_start, msg, count));
        }
    });
    if fds {
        let failure = Failure::NotSent(wire::fds_refused().to_string());
        job.deliver(Piece { start, count: taken, body: Err(failure) });
        return (taken, Ok(()));
    }
    for (index, message) in fails {
        job.deliver(Piece { start: index, count: 1, body: Err(Failure::NotSent(message)) });
    }
    let mut runs = runs.into_iter();
    while let Some((run_start, msg, count)) = runs.next() {
        if let Err(e) = core.submit(job, run_start, count, msg, cancellable) {
            // The rest of this chunk was not sent either.
            let failure = match &e {
                Error::PoolBroken { message } => Failure::Broken(message.clone()),
                _ => Failure::Terminated,
            };
            for (run_start, _, count) in runs {
                job.deliver(Piece {
                    start: run_start,
                    count: count as usize,
                    body: Err(failure.clone()),
                });
            }
            return (taken, Err(e));
        }
    }
    (taken, Ok(()))
}

impl Pool {
    /// A pool of `processes` workers started with [`StartMethod::Spawn`](crate::StartMethod::Spawn)
    /// (0: one per CPU, as [`cpu_count`](crate::cpu_count)).
    ///
    /// # Errors
    ///
    /// As [`PoolBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::new(2)?;
    /// assert_eq!(pool.processes(), 2);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new(processes: usize) -> Result<Self> {
        PoolBuilder::new().processes(processes).build()
    }

    /// A [`PoolBuilder`] for the size, start method, initializer and fault
    /// policy.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::builder().processes(1).build()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    /// The number of workers.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::Pool::new(3)?.processes(), 3);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn processes(&self) -> usize {
        self.core.config().processes
    }

    /// The process ids of the workers alive now (a worker that died and was
    /// not yet replaced is missing).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::new(2)?;
    /// assert_eq!(pool.pids().len(), 2);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn pids(&self) -> Vec<u32> {
        self.core.pids()
    }

    /// Sends the items of `items` to the workers in chunks of `chunksize`
    /// (Python's default for `len` items if `None`), as one job.
    fn start_job<F, A, R>(
        &self,
        f: &F,
        mut items: impl Iterator<Item = A>,
        len: usize,
        chunksize: Option<usize>,
        on_done: Option<super::job::OnDone>,
    ) -> Result<Arc<Job>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.core.check_open()?;
        let (target, closure) = super::target(f, self.core.config().method)?;
        let chunksize =
            chunksize.unwrap_or_else(|| default_chunksize(len, self.processes())).max(1);
        let job = Job::new(closure);
        if let Some(on_done) = on_done {
            job.on_done(on_done);
        }
        let mut start = 0;
        loop {
            let (taken, sent) =
                send_chunk(&self.core, &job, target, start, &mut items, chunksize, false);
            start += taken;
            // The items of a chunk that was not sent have their failures
            // in the job; the rest of the input is not read.
            if sent.is_err() || taken == 0 {
                break;
            }
        }
        job.set_total(start);
        Ok(job)
    }

    /// [`start_job`](Self::start_job) for an input of any length: one that
    /// does not say its length is collected first, for the default chunk
    /// size.
    fn start_map<F, A, R>(
        &self,
        f: &F,
        iterable: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
        on_done: Option<super::job::OnDone>,
    ) -> Result<Arc<Job>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let items = iterable.into_iter();
        match (chunksize, items.size_hint()) {
            (Some(_), _) => self.start_job(f, items, 0, chunksize, on_done),
            (None, (len, Some(upper))) if len == upper => {
                self.start_job(f, items, len, None, on_done)
            }
            (None, _) => {
                let items: Vec<A> = items.collect();
                let len = items.len();
                self.start_job(f, items.into_iter(), len, None, on_done)
            }
        }
    }

    /// Waits for every item of `job` and returns the results in order,
    /// decoding each piece as soon as those before it are in (while the
    /// workers run the later ones).
    fn collect<R: DeserializeOwned>(&self, job: &Job) -> Result<Vec<R>> {
        let mut in_order = InOrder::new();
        drop(self.core.wait_job(job, None, |state| in_order.take(state)));
        in_order.finish()
    }

    /// Applies `f` to every item, in chunks of Python's default size
    /// (`ceil(len / (4 * workers))`), and returns the results in order
    /// (Python's `map`).
    ///
    /// # Errors
    ///
    /// The first failed item's error (see [`AsyncResult::get`]);
    /// [`Error::PoolClosed`] after [`close`](Self::close);
    /// [`Error::Unsupported`] if `f` captures and the pool does not fork.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::new(2)?;
    /// assert_eq!(pool.map(|x: i32| -x, 1..=3)?, [-1, -2, -3]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn map<F, A, R>(&self, f: F, iterable: impl IntoIterator<Item = A>) -> Result<Vec<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let job = self.start_map(&f, iterable, None, None)?;
        self.collect(&job)
    }

    /// [`map`](Self::map) with chunks of `chunksize` items (Python's
    /// `map(f, it, chunksize)`). A chunk is one message each way; an item is
    /// still the unit of failure.
    ///
    /// # Errors
    ///
    /// As [`map`](Self::map).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::new(2)?;
    /// assert_eq!(pool.map_chunked(|x: u8| x / 2, [2, 4, 6], 1)?, [1, 2, 3]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn map_chunked<F, A, R>(
        &self,
        f: F,
        iterable: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let job = self.start_map(&f, iterable, Some(chunksize), None)?;
        self.collect(&job)
    }

    /// Submits `f` on every item and returns at once (Python's
    /// `map_async`). The items are sent before it returns.
    ///
    /// # Errors
    ///
    /// [`Error::PoolClosed`] after [`close`](Self::close), and as
    /// [`map`](Self::map) for `f`; each item's own error is in the result.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::new(2)?;
    /// let r = pool.map_async(|x: u8| x + 1, [1, 2])?;
    /// assert_eq!(r.get()?, [2, 3]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn map_async<F, A, R>(
        &self,
        f: F,
        iterable: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let job = self.start_map(&f, iterable, None, None)?;
        Ok(AsyncResult::new(&self.core, job, result::all_items::<R>))
    }

    /// [`map_async`](Self::map_async) with Python's `callback` and
    /// `error_callback`: once every item is done, the pool's thread calls
    /// `callback` with the results, or `error_callback` with the first
    /// error. Keep them short: results wait while they run.
    ///
    /// # Errors
    ///
    /// As [`map_async`](Self::map_async).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// let pool = multiproc::Pool::new(2)?;
    /// let (tx, rx) = mpsc::channel();
    /// let r = pool.map_async_with(
    ///     |x: u8| x * 2,
    ///     [1, 2],
    ///     move |v: &Vec<u8>| tx.send(v.clone()).unwrap(),
    ///     |e| panic!("{e}"),
    /// )?;
    /// assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap(), [2, 4]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn map_async_with<F, A, R>(
        &self,
        f: F,
        iterable: impl IntoIterator<Item = A>,
        callback: impl FnOnce(&Vec<R>) + Send + 'static,
        error_callback: impl FnOnce(&Error) + Send + 'static,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let on_done = callbacks(result::all_items::<R>, callback, error_callback);
        let job = self.start_map(&f, iterable, None, Some(on_done))?;
        Ok(AsyncResult::new(&self.core, job, result::all_items::<R>))
    }

    /// Like [`map`](Self::map), for a function of several arguments given
    /// as tuples (Python's `starmap`).
    ///
    /// # Errors
    ///
    /// As [`map`](Self::map).
    ///
    /// # Examples
    ///
    /// ```
    /// fn add(a: u32, b: u32) -> u32 {
    ///     a + b
    /// }
    /// let pool = multiproc::Pool::new(2)?;
    /// assert_eq!(pool.starmap(add, [(1, 2), (3, 4)])?, [3, 7]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn starmap<F, Args, R>(
        &self,
        f: F,
        iterable: impl IntoIterator<Item = Args>,
    ) -> Result<Vec<R>>
    where
        F: StarFn<Args, Output = R>,
        Args: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.map(move |args: Args| f.call(args), iterable)
    }

    /// [`starmap`](Self::starmap), returning at once (Python's
    /// `starmap_async`).
    ///
    /// # Errors
    ///
    /// As [`map_async`](Self::map_async).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.starmap_async(|a: u8, b: u8| a * b, [(2, 3)])?;
    /// assert_eq!(r.get()?, [6]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn starmap_async<F, Args, R>(
        &self,
        f: F,
        iterable: impl IntoIterator<Item = Args>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        F: StarFn<Args, Output = R>,
        Args: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.map_async(move |args: Args| f.call(args), iterable)
    }

    /// Runs `f(args)` in a worker and waits for the result (Python's
    /// `apply`).
    ///
    /// # Errors
    ///
    /// As [`AsyncResult::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::new(1)?;
    /// assert_eq!(pool.apply(|s: String| s.len(), "four".to_owned())?, 4);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn apply<F, A, R>(&self, f: F, args: A) -> Result<R>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.apply_async(f, args)?.get()
    }

    /// Submits `f(args)` and returns at once (Python's `apply_async`).
    ///
    /// # Errors
    ///
    /// [`Error::PoolClosed`] after [`close`](Self::close), and as
    /// [`map`](Self::map) for `f`; the task's own error is in the result.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(|x: u64| x * x, 7)?;
    /// assert_eq!(r.get()?, 49);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn apply_async<F, A, R>(&self, f: F, args: A) -> Result<AsyncResult<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let job = self.start_job(&f, std::iter::once(args), 1, Some(1), None)?;
        Ok(AsyncResult::new(&self.core, job, result::one_item::<R>))
    }

    /// [`apply_async`](Self::apply_async) with Python's `callback` and
    /// `error_callback`, called by the pool's thread when the task is done.
    ///
    /// # Errors
    ///
    /// As [`apply_async`](Self::apply_async).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// fn boom(_: u8) -> u8 {
    ///     panic!("boom")
    /// }
    /// let pool = multiproc::Pool::new(1)?;
    /// let (tx, rx) = mpsc::channel();
    /// pool.apply_async_with(boom, 1, |_| {}, move |e| tx.send(e.to_string()).unwrap())?;
    /// let message = rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
    /// assert!(message.contains("boom"));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn apply_async_with<F, A, R>(
        &self,
        f: F,
        args: A,
        callback: impl FnOnce(&R) + Send + 'static,
        error_callback: impl FnOnce(&Error) + Send + 'static,
    ) -> Result<AsyncResult<R>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let on_done = callbacks(result::one_item::<R>, callback, error_callback);
        let job = self.start_job(&f, std::iter::once(args), 1, Some(1), Some(on_done))?;
        Ok(AsyncResult::new(&self.core, job, result::one_item::<R>))
    }

    /// A lazy, ordered [`map`](Self::map) (Python's `imap`, chunks of one):
    /// items are taken from `iterable` and sent as results are consumed, a
    /// bounded number ahead, so an endless iterator works in bounded memory.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::new(2)?;
    /// let firsts: Vec<u64> = pool.imap(|x: u64| x * 10, 0..).take(3).collect::<Result<_, _>>()?;
    /// assert_eq!(firsts, [0, 10, 20]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn imap<'a, F, A, R>(
        &'a self,
        f: F,
        iterable: impl IntoIterator<Item = A> + 'a,
    ) -> IMap<'a, R>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        IMap::new(self, f, iterable.into_iter(), 1, true)
    }

    /// [`imap`](Self::imap) with chunks of `chunksize` items.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::new(2)?;
    /// let v: Vec<u8> = pool.imap_chunked(|x: u8| x + 1, 0..10, 4).collect::<Result<_, _>>()?;
    /// assert_eq!(v, (1..11).collect::<Vec<_>>());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn imap_chunked<'a, F, A, R>(
        &'a self,
        f: F,
        iterable: impl IntoIterator<Item = A> + 'a,
        chunksize: usize,
    ) -> IMap<'a, R>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        IMap::new(self, f, iterable.into_iter(), chunksize.max(1), true)
    }

    /// As [`imap`](Self::imap), yielding results as they complete
    /// (Python's `imap_unordered`).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::new(2)?;
    /// let mut v: Vec<u8> = pool.imap_unordered(|x: u8| x * 2, 0..5).collect::<Result<_, _>>()?;
    /// v.sort();
    /// assert_eq!(v, [0, 2, 4, 6, 8]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn imap_unordered<'a, F, A, R>(
        &'a self,
        f: F,
        iterable: impl IntoIterator<Item = A> + 'a,
    ) -> IMap<'a, R>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        IMap::new(self, f, iterable.into_iter(), 1, false)
    }

    /// [`imap_unordered`](Self::imap_unordered) with chunks of `chunksize`.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::new(2)?;
    /// let n = pool.imap_unordered_chunked(|x: u8| x, 0..10, 3).count();
    /// assert_eq!(n, 10);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn imap_unordered_chunked<'a, F, A, R>(
        &'a self,
        f: F,
        iterable: impl IntoIterator<Item = A> + 'a,
        chunksize: usize,
    ) -> IMap<'a, R>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        IMap::new(self, f, iterable.into_iter(), chunksize.max(1), false)
    }

    /// Takes no more work; the workers exit once the submitted work is done
    /// (Python's `close`).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::new(1)?;
    /// pool.close();
    /// assert!(matches!(pool.apply(|x: u8| x, 1), Err(multiproc::Error::PoolClosed)));
    /// pool.join()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn close(&self) {
        self.core.close();
    }

    /// Kills every worker now (`SIGKILL`); every task not done fails with
    /// [`Error::PoolTerminated`] (Python's `terminate`).
    ///
    /// # Examples
    ///
    /// ```
    /// fn nap(ms: u64) {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms));
    /// }
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(nap, 60_000)?;
    /// pool.terminate();
    /// assert!(matches!(r.get(), Err(multiproc::Error::PoolTerminated)));
    /// pool.join()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn terminate(&self) {
        self.core.terminate();
    }

    /// Waits until every worker has exited (and was reaped) after
    /// [`close`](Self::close) or [`terminate`](Self::terminate) (Python's
    /// `join`).
    ///
    /// # Errors
    ///
    /// [`Error::PoolRunning`] if the pool was neither closed nor terminated.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::new(1)?;
    /// assert!(matches!(pool.join(), Err(multiproc::Error::PoolRunning)));
    /// pool.close();
    /// pool.join()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn join(&self) -> Result<()> {
        self.core.join(None).map(drop)
    }

    /// As [`join`](Self::join), waiting at most `timeout`; whether the
    /// workers are all gone.
    ///
    /// # Errors
    ///
    /// As [`join`](Self::join).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = multiproc::Pool::new(1)?;
    /// pool.close();
    /// assert!(pool.join_timeout(Duration::from_secs(30))?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        self.core.join(deadline_after(timeout))
    }
}

/// The collector-side callback of a job: decode, then call one of the two.
fn callbacks<T: Send + 'static>(
    finish: result::Finish<T>,
    callback: impl FnOnce(&T) + Send + 'static,
    error_callback: impl FnOnce(&Error) + Send + 'static,
) -> super::job::OnDone {
    Box::new(move |state| {
        let outcome = finish(state);
        Box::new(move || match outcome {
            Ok(value) => callback(&value),
            Err(e) => error_callback(&e),
        })
    })
}

/// The results of a job decoded in item order, as its pieces come.
struct InOrder<R> {
    out: Vec<R>,
    /// The first item not decoded yet.
    next: usize,
    /// Pieces that came before their turn, by their first item.
    ahead: BTreeMap<usize, Piece>,
    /// The first failed item's error: no more is decoded.
    failed: Option<Error>,
}

impl<R: DeserializeOwned> InOrder<R> {
    fn new() -> Self {
        Self { out: Vec::new(), next: 0, ahead: BTreeMap::new(), failed: None }
    }

    /// Takes the job's new pieces and decodes those whose turn it is;
    /// whether the job is complete.
    fn take(&mut self, state: &mut JobState) -> bool {
        if self.out.capacity() == 0 {
            self.out.reserve_exact(state.total.unwrap_or(0));
        }
        for piece in state.pieces.drain(..) {
            if piece.start == self.next {
                self.decode(piece);
            } else {
                self.ahead.insert(piece.start, piece);
            }
        }
        while let Some(piece) = self.ahead.remove(&self.next) {
            self.decode(piece);
        }
        state.complete()
    }

    fn decode(&mut self, piece: Piece) {
        self.next += piece.count;
        if self.failed.is_some() {
            return;
        }
        let decoded = match &piece.body {
            Ok(body) => wire::decode_into(body, piece.count, &mut self.out),
            Err(failure) => Err(failure.to_error()),
        };
        self.failed = decoded.err();
    }

    /// Every item's result, or the first failed item's error.
    fn finish(self) -> Result<Vec<R>> {
        match self.failed {
            Some(e) => Err(e),
            None if self.ahead.is_empty() => Ok(self.out),
            None => Err(Error::protocol("the pieces of a job's results do not fit together")),
        }
    }
}

impl Default for Pool {
    /// A pool of one worker per CPU (Python's `Pool()`).
    ///
    /// # Panics
    ///
    /// If the pool cannot be started (use [`Pool::new`] to get the error).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::default();
    /// assert_eq!(pool.processes(), multiproc::cpu_count());
    /// ```
    fn default() -> Self {
        match Self::new(0) {
            Ok(pool) => pool,
            Err(e) => panic!("could not start a pool: {e}"),
        }
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.processes())
            .field("start_method", &self.core.config().method)
            .field("backend", &self.core.backend())
            .finish_non_exhaustive()
    }
}

/// How long dropping a pool waits for its killed workers to be reaped.
const DROP_WAIT: Duration = Duration::from_secs(10);

impl Drop for Pool {
    /// Terminates the pool (Python's `with Pool() as p:` on exit) and reaps
    /// its workers.
    fn drop(&mut self) {
        self.core.terminate();
        let _ = self.core.join(deadline_after(DROP_WAIT));
    }
}

/// A function of several arguments, called with them as one tuple: what
/// [`Pool::starmap`] takes. Implemented for functions (and closures) of one
/// to six arguments.
///
/// # Examples
///
/// ```
/// use multiproc::StarFn;
/// fn add(a: u8, b: u8) -> u8 {
///     a + b
/// }
/// assert_eq!(StarFn::call(&add, (1, 2)), 3);
/// ```
pub trait StarFn<Args>: Copy + Send + Sync + 'static {
    /// What the function returns.
    type Output;
    /// Calls the function with the tuple's items as its arguments.
    fn call(&self, args: Args) -> Self::Output;
}

macro_rules! star_fn {
    ($($arg:ident),+) => {
        impl<Func, Out, $($arg),+> StarFn<($($arg,)+)> for Func
        where
            Func: Fn($($arg),+) -> Out + Copy + Send + Sync + 'static,
        {
            type Output = Out;
            #[allow(non_snake_case)]
            fn call(&self, ($($arg,)+): ($($arg,)+)) -> Out {
                self($($arg),+)
            }
        }
    };
}

star_fn!(A);
star_fn!(A, B);
star_fn!(A, B, C);
star_fn!(A, B, C, D);
star_fn!(A, B, C, D, E);
star_fn!(A, B, C, D, E, G);
