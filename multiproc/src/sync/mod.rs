//! Cross-process synchronization: Python's `Lock`, `RLock`, `Semaphore`,
//! `BoundedSemaphore`, `Condition`, `Event` and `Barrier`.
//!
//! Each object lives in its own shared-memory segment; clones are handles to
//! the same object, and a handle passed to a child process (as an argument,
//! with any start method) works there. The segment is freed when the last
//! handle in every process is gone.
//!
//! All are futexes in shared memory: taking a free lock, setting an event
//! nobody waits for, or releasing a semaphore nobody waits on makes no system
//! call. Blocking calls spin for a few microseconds, then sleep.
//!
//! Locks are *robust*: if a process dies (even by `SIGKILL`) holding a
//! [`Lock`], an [`RLock`], or the lock of a [`Value`](crate::Value) or
//! [`Array`](crate::Array), the next acquirer gets
//! [`LockError::OwnerDied`] within tens of milliseconds, holding the lock, so
//! that it can repair what the dead owner left half-done and carry on.
//! Python's locks hang for ever here.

mod barrier;
mod condition;
mod error;
mod event;
mod lock;
mod rlock;
mod semaphore;

pub use barrier::{Barrier, BarrierWaitResult};
pub use condition::{AsyncConditionGuard, Condition, ConditionGuard};
pub use error::LockError;
pub use event::Event;
pub use lock::{AsyncLockGuard, Lock, LockGuard};
pub use rlock::{AsyncRLockGuard, RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphoreGuard};

/// The pieces `shared` uses to build its own guards.
pub(crate) mod lock_support {
    pub(crate) use super::error::{Miss, lock_result};
}
