#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

mod aio;
mod boot;
pub mod connection;
pub mod csp;
mod error;
mod iter;
pub mod manager;
mod os;
pub mod pool;
mod process;
pub mod queue;
#[cfg(feature = "redis")]
pub mod remote;
pub mod shared;
mod shm;
pub mod sync;
pub mod transfer;
mod wait_policy;

pub use bytemuck;
pub use connection::{Client, Connection, Listener, pipe};
pub use error::{BoxError, Error, Result};
pub use manager::Manager;
pub use pool::{
    AsyncResult, IMap, Pool, PoolBuilder, ProcessPoolExecutor, StarFn, TaskFuture, as_completed,
};
pub use process::{
    ActiveChild, Builder, CurrentProcess, ParentProcess, Process, StartMethod, active_children,
    cpu_count, current_process, get_start_method, parent_process, set_start_method,
};
pub use queue::{JoinableQueue, PutError, Queue, QueueBuilder, SimpleQueue};
pub use shared::{
    Array, ArrayChunk, ArrayGuard, Atomic, AtomicInt, ChunkGuard, RawArray, RawValue, SharedMemory,
    Value, ValueGuard,
};
pub use sync::{
    AsyncConditionGuard, AsyncLockGuard, AsyncRLockGuard, Barrier, BarrierWaitResult,
    BoundedSemaphore, Condition, ConditionGuard, Event, Lock, LockError, LockGuard, RLock,
    RLockGuard, Semaphore, SemaphoreGuard,
};
pub use transfer::FdHandle;
pub use wait_policy::{WaitPolicy, set_wait_policy, wait_policy};
