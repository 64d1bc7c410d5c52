//! Algorithms that live in shared memory.
//!
//! Everything here is position-independent (no pointers are stored in shared
//! memory, only integers) and makes no system call except through [`park`],
//! the one wait/wake interface. The user-facing types in `sync` and `shared`
//! put these raw structures in a [`Segment`].
//!
//! Owner tracking: a lock word holds the thread id of its owner. A waiter
//! that sleeps for a while without being woken checks whether that thread
//! still lives (a pidfd for the thread), so a lock whose holder died, even by
//! `SIGKILL`, is handed to the next acquirer with an "owner died" flag within
//! a few tens of milliseconds instead of hanging it for ever.

pub(crate) mod barrier;
pub(crate) mod condition;
pub(crate) mod copy;
pub(crate) mod event;
pub(crate) mod handle;
pub(crate) mod liveness;
pub(crate) mod lock;
pub(crate) mod park;
pub(crate) mod ring;
pub(crate) mod rlock;
pub(crate) mod segment;
pub(crate) mod semaphore;

pub(crate) use segment::{Kind, Segment};

/// Whether a lock came free normally or was taken from a dead owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The previous owner released it.
    Clean,
    /// The previous owner died holding it; the data it guards may be
    /// half-updated.
    OwnerDied,
}
