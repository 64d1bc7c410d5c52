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
mod executor;
mod handle;
mod imap;
mod job;
mod result;
pub(crate) mod wire;
mod worker;

pub use builder::PoolBuilder;
pub use executor::{AsCompleted, ExecutorMap, ProcessPoolExecutor, TaskFuture, as_completed};
pub use handle::{Pool, StarFn};
pub use imap::IMap;
pub use result::AsyncResult;

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
