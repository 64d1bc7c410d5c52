//! `PoolBuilder`: Python's keyword arguments to `Pool(...)`.
#![allow(unsafe_code)] // an `unsafe fn` opt-in, as `Builder::allow_threaded_fork`

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::core::Config;
use super::engine::Core;
use super::{Pool, ProcessPoolExecutor, wire};
use crate::process::helpers;
use crate::{Error, Result, StartMethod};

/// Makes the initializer's task message for a start method.
type MakeInit = Box<dyn FnOnce(StartMethod) -> Result<Init> + Send>;

/// The initializer's task message, the descriptors its argument holds, and
/// its registered closure, if any.
type Init = (Vec<u8>, Vec<std::os::fd::OwnedFd>, Option<u64>);

/// Sets a pool's size, start method, initializer and fault policy, then
/// starts it.
///
/// # Examples
///
/// ```
/// use multiproc::{Pool, StartMethod};
///
/// fn setup(greeting: String) {
///     assert_eq!(greeting, "hi");
/// }
///
/// let pool = Pool::builder()
///     .processes(2)
///     .start_method(StartMethod::ForkServer)
///     .initializer(setup, "hi".to_owned())
///     .max_tasks_per_child(100)
///     .retry_on_worker_death(1)
///     .build()?;
/// assert_eq!(pool.map(|x: u32| x + 1, [1, 2])?, [2, 3]);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[must_use = "a builder does nothing until `build`"]
pub struct PoolBuilder {
    processes: usize,
    method: StartMethod,
    max_tasks: u64,
    retries: u32,
    init: Option<MakeInit>,
    threaded_fork: bool,
    #[cfg(feature = "redis")]
    redis: Option<super::remote::PoolSpec>,
}

impl Default for PoolBuilder {
    fn default() -> Self {
        Self {
            processes: 0,
            method: StartMethod::Spawn,
            max_tasks: 0,
            retries: 0,
            init: None,
            threaded_fork: false,
            #[cfg(feature = "redis")]
            redis: None,
        }
    }
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("start_method", &self.method)
            .field("max_tasks_per_child", &self.max_tasks)
            .field("retries", &self.retries)
            .field("initializer", &self.init.is_some())
            .field("backend", &if self.has_redis() { "redis" } else { "local" })
            .finish()
    }
}

impl PoolBuilder {
    /// A builder with Python's defaults: one worker per CPU, `Spawn`, no
    /// initializer, workers that live for ever, no retries.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::PoolBuilder::new().processes(1).build()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of worker processes (0, the default: [`cpu_count`](crate::cpu_count)).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::builder().processes(3).build()?;
    /// assert_eq!(pool.processes(), 3);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = n;
        self
    }

    /// How workers start (default [`StartMethod::Spawn`]).
    ///
    /// With [`StartMethod::Fork`] the tasks may also be closures that
    /// capture (a worker forked before such a closure existed hands its task
    /// back and is replaced by one forked afterwards, which has it). A fork
    /// pool is refused in a process with threads other than multiproc's
    /// ([`Error::ThreadedFork`]), as [`Builder::fork_closure`](crate::Builder::fork_closure)
    /// is; replacement workers are forked by the pool's own thread, and run
    /// only the worker loop and the task functions.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::{Pool, StartMethod};
    /// let pool = Pool::builder().processes(1).start_method(StartMethod::ForkServer).build()?;
    /// assert_eq!(pool.apply(|x: u8| x * 2, 21)?, 42);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = method;
        self
    }

    /// Runs `f(args)` once in each worker, before its first task (Python's
    /// `initializer` and `initargs`). `args` travels with each worker's
    /// start, so it may hold handles (a [`Queue`](crate::Queue), a
    /// [`Value`](crate::Value)...), which task arguments may not.
    ///
    /// If the initializer panics, the pool is broken: every task fails with
    /// [`Error::PoolBroken`] (Python would start workers for ever).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::{Pool, Value};
    ///
    /// fn count_start(starts: Value<u32>) {
    ///     *starts.lock().unwrap() += 1;
    /// }
    ///
    /// let starts = Value::new(0u32)?;
    /// let pool = Pool::builder().processes(2).initializer(count_start, starts.clone()).build()?;
    /// pool.close();
    /// pool.join()?;
    /// assert_eq!(starts.get(), 2);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn initializer<F, A>(mut self, f: F, args: A) -> Self
    where
        F: Fn(A) + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
    {
        self.init = Some(Box::new(move |method| {
            let (target, closure) = super::target(&f, method)?;
            let mut msg = wire::begin_task(0, wire::NO_CANCEL, target, 64);
            let encoded = crate::transfer::codec::encode(&args)?;
            wire::push_raw_arg(&mut msg, &encoded.bytes);
            wire::set_count(&mut msg, 1);
            // The descriptors stay open in this process while the pool
            // lives: each worker gets its own copies (`Core::spawn_worker`).
            Ok((msg, encoded.fds, closure))
        }));
        self
    }

    /// Replaces each worker after it ran `n` tasks (chunks) (Python's
    /// `maxtasksperchild`; 0, the default: never).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::builder().processes(1).max_tasks_per_child(1).build()?;
    /// let pids = pool.map_chunked(|_: u8| std::process::id(), [0, 1, 2], 1)?;
    /// assert!(pids[0] != pids[1] && pids[1] != pids[2]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.max_tasks = n;
        self
    }

    /// Runs a task again, up to `k` times, when the worker running it dies
    /// (by default 0: the task fails with [`Error::WorkerDied`]). A panic
    /// is an answer, not a death: it is not retried.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::builder().processes(1).retry_on_worker_death(2).build()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn retry_on_worker_death(mut self, k: u32) -> Self {
        self.retries = k;
        self
    }

    /// Lets a [`StartMethod::Fork`] pool start in a process that has other
    /// threads (see [`Builder::allow_threaded_fork`](crate::Builder::allow_threaded_fork)).
    ///
    /// # Safety
    ///
    /// As [`Builder::allow_threaded_fork`](crate::Builder::allow_threaded_fork):
    /// the task functions (and initializer), and what they call, must take
    /// no lock that another thread of this process may hold at a fork, which
    /// happens at `build` and whenever a worker is replaced.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::{Pool, StartMethod};
    /// let _other = std::thread::spawn(|| ());
    /// // SAFETY: the task only adds.
    /// let builder = unsafe { Pool::builder().start_method(StartMethod::Fork).allow_threaded_fork() };
    /// let pool = builder.processes(1).build()?;
    /// let offset = 10;
    /// assert_eq!(pool.map(move |x: u32| x + offset, [1, 2])?, [11, 12]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub unsafe fn allow_threaded_fork(mut self) -> Self {
        self.threaded_fork = true;
        self
    }

    fn config(self) -> Result<Config> {
        // A pool on Redis starts its workers with `Spawn` whatever the method.
        if self.method == StartMethod::Fork && !self.threaded_fork && !self.has_redis() {
            let threads = helpers::foreign_thread_count()
                .map_err(Error::os("count this process's threads"))?;
            if threads > 1 {
                return Err(Error::ThreadedFork { threads });
            }
        }
        let processes = if self.processes == 0 { crate::cpu_count() } else { self.processes };
        let (init, init_fds, init_closure) = match self.init {
            Some(make) => {
                let (msg, fds, closure) = make(self.method)?;
                (Some(msg), fds, closure)
            }
            None => (None, Vec::new(), None),
        };
        Ok(Config {
            processes,
            method: self.method,
            max_tasks: self.max_tasks,
            retries: self.retries,
            init,
            init_fds,
            init_closure,
        })
    }

    /// Starts the pool.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the queues, threads or processes cannot be created;
    /// [`Error::ThreadedFork`] for a fork pool in a threaded process;
    /// [`Error::Unsupported`] for an initializer that is not a function
    /// (with `Spawn` or `ForkServer`).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiproc::Pool::builder().processes(2).build()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn build(self) -> Result<Pool> {
        #[cfg(feature = "redis")]
        if let Some(spec) = self.redis.clone() {
            let config = self.config()?;
            return Ok(Pool { core: Core::start_redis(config, spec)? });
        }
        let config = self.config()?;
        Ok(Pool { core: Core::start(config)? })
    }

    fn has_redis(&self) -> bool {
        #[cfg(feature = "redis")]
        return self.redis.is_some();
        #[cfg(not(feature = "redis"))]
        false
    }

    /// Puts the pool's tasks and results on the Redis server at `url`,
    /// under `name`: the pool's `processes` workers run on this host, and
    /// any number more on other hosts, started with
    /// [`serve_redis`](crate::pool::serve_redis) (or the command line that
    /// [`worker_from_args`](crate::pool::worker_from_args) reads) in the same
    /// executable. Every method of [`Pool`] works as on a local pool;
    /// `map` returns its results in order.
    ///
    /// A worker that dies (killed, or its host lost) stops renewing its
    /// lease on the task it runs; once the lease runs out (see
    /// [`visibility_timeout`](Self::visibility_timeout)) another worker takes
    /// the task over, up to [`retry_on_worker_death`](Self::retry_on_worker_death)
    /// times; after that it fails with [`Error::WorkerDied`](crate::Error::WorkerDied).
    /// A task runs at least once and counts once: an answer for a task
    /// already answered is dropped. Functions only (not capturing closures),
    /// no initializer; a worker of another build refuses tasks with
    /// [`Error::TaskFailed`](crate::Error::TaskFailed). A local worker that
    /// dies hands its task over at once and is replaced.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    /// let pool = multiproc::Pool::builder().redis("redis://127.0.0.1:6379/0", "pool").processes(4).build()?;
    /// let v: Vec<u64> = pool.map(square, 0..100_000)?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[cfg(feature = "redis")]
    pub fn redis(mut self, url: &str, name: &str) -> Self {
        self.redis = Some(super::remote::PoolSpec {
            url: url.to_owned(),
            name: name.to_owned(),
            lease: super::remote::DEFAULT_LEASE,
        });
        self
    }

    /// On Redis: a worker's lease on the task it runs (default 30 s),
    /// renewed every third of it while the worker lives. A task whose
    /// worker died is taken over once its lease runs out.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let pool = multiproc::Pool::builder()
    ///     .redis("redis://127.0.0.1:6379/0", "pool")
    ///     .visibility_timeout(Duration::from_secs(5))
    ///     .build()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[cfg(feature = "redis")]
    pub fn visibility_timeout(mut self, lease: std::time::Duration) -> Self {
        if let Some(spec) = &mut self.redis {
            spec.lease = lease.max(std::time::Duration::from_millis(3));
        }
        self
    }

    /// Starts the pool behind a [`ProcessPoolExecutor`].
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    ///
    /// # Examples
    ///
    /// ```
    /// let executor = multiproc::Pool::builder().processes(2).build_executor()?;
    /// assert_eq!(executor.submit(|x: u8| x + 1, 1)?.result()?, 2);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn build_executor(self) -> Result<ProcessPoolExecutor> {
        Ok(ProcessPoolExecutor::from_pool(self.build()?))
    }
}
