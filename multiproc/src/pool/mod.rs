//! Worker pools: Python's `multiprocessing.Pool` and
//! `concurrent.futures.ProcessPoolExecutor`, on processes that may die.
//!
//! The parts: [`Pool`] (in `handle`) and its [`PoolBuilder`]; the results,
//! [`AsyncResult`] and the [`IMap`] iterator; the futures face,
//! [`ProcessPoolExecutor`], [`TaskFuture`] and [`as_completed`]. Inside,
//! `wire` is the bytes on the queues, `worker` the worker process's loop,
//! `core` the parent's table of tasks and its two threads, `job` one call's
//! results, `closures` the capturing closures of fork pools.

mod builder;
mod closures;
mod core;
mod engine;
mod executor;
mod handle;
mod imap;
mod job;
#[cfg(feature = "redis")]
pub(crate) mod remote;
mod result;
pub(crate) mod wire;
mod worker;

pub use builder::PoolBuilder;
pub use executor::{AsCompleted, ExecutorMap, ProcessPoolExecutor, TaskFuture, as_completed};
pub use handle::{Pool, StarFn};
pub use imap::IMap;
pub use result::AsyncResult;

/// Runs `processes` workers of the pool `name` on the Redis server at
/// `url` in this host until they are killed: the remote half of
/// [`PoolBuilder::redis`]. Call it from the same executable as the pool's
/// owner (tasks name functions by their place in it; a worker of another
/// build refuses them). `lease` as [`PoolBuilder::visibility_timeout`].
///
/// # Errors
///
/// [`Error::Backend`] if the server stays unreachable; [`Error::Os`] if
/// the workers cannot start.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// multiproc::pool::serve_redis("redis://10.0.0.5:6379/0", "pool", 8, Duration::from_secs(30))?;
/// # Ok::<(), multiproc::Error>(())
/// ```
#[cfg(feature = "redis")]
pub fn serve_redis(
    url: &str,
    name: &str,
    processes: usize,
    lease: std::time::Duration,
) -> Result<()> {
    remote::serve(url, name, processes, lease)
}

/// Serves as a pool's workers if the command line asks for it:
/// `PROGRAM --multiproc-worker URL NAME [PROCESSES]` runs
/// [`serve_redis`] (default: one worker per CPU) and exits; any other
/// command line returns at once. Call it first in `main`.
///
/// # Examples
///
/// ```no_run
/// // First thing in `main`: ./app --multiproc-worker redis://host:6379/0 pool 4
/// multiproc::pool::worker_from_args();
/// // ... the program's own work
/// ```
#[cfg(feature = "redis")]
pub fn worker_from_args() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("--multiproc-worker") {
        return;
    }
    let (Some(url), Some(name)) = (args.get(2), args.get(3)) else {
        eprintln!("usage: {} --multiproc-worker URL NAME [PROCESSES]", args[0]);
        std::process::exit(2);
    };
    let processes = args.get(4).and_then(|n| n.parse().ok()).unwrap_or_else(crate::cpu_count);
    match serve_redis(url, name, processes, remote::DEFAULT_LEASE) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("multiproc worker: {e}");
            std::process::exit(1);
        }
    }
}

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::boot::entry::TaskRef;
use crate::{Error, Result, StartMethod};
use wire::Target;

/// How the workers of a pool started with `method` find `f`: by its entry,
/// or (fork pools only) as a registered closure.
fn target<F, A, R>(f: &F, method: StartMethod) -> Result<(Target, Option<u64>)>
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: DeserializeOwned,
    R: Serialize,
{
    if size_of::<F>() == 0 {
        return Ok((Target::Entry(TaskRef::of(f)?), None));
    }
    if method != StartMethod::Fork {
        // The error that says why.
        return Err(TaskRef::of(f).err().unwrap_or(Error::Unsupported {
            reason: "a closure that captures needs a fork pool",
        }));
    }
    let f = *f;
    let run: closures::ChunkFn = Arc::new(move |input, skip, count, out, progress: &_| {
        wire::run_chunk(&f, input, skip, count, out, progress);
    });
    let id = closures::register(run);
    Ok((Target::Closure(id), Some(id)))
}
