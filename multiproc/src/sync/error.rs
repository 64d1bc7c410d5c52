//! `LockError`: why a lock was not (cleanly) acquired.

use std::fmt;

use crate::shm::Acquired;

/// Why taking a lock did not simply succeed.
///
/// [`OwnerDied`](LockError::OwnerDied) still hands over the guard: the lock
/// *is* held, but its previous owner died holding it, so the data it guards
/// may be half-updated. Repair it, or use the guard as is:
///
/// ```
/// use multiproc::{Lock, LockError};
///
/// let lock = Lock::new()?;
/// let guard = match lock.lock() {
///     Ok(guard) => guard,
///     Err(LockError::OwnerDied(guard)) => guard, // repair the data here
///     Err(other) => return Err(other.into()),
/// };
/// drop(guard);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[non_exhaustive]
pub enum LockError<G> {
    /// The previous owner died holding the lock; here is the guard.
    OwnerDied(G),
    /// A `try_` call found the lock held.
    WouldBlock,
    /// A `_timeout` call ran out of time.
    Timeout,
}

impl<G> LockError<G> {
    /// The guard, if the lock was acquired (owner died).
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiproc::Lock::new()?;
    /// let _held = lock.lock()?;
    /// let err = lock.try_lock().unwrap_err();
    /// assert!(err.into_guard().is_none());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn into_guard(self) -> Option<G> {
        match self {
            Self::OwnerDied(guard) => Some(guard),
            _ => None,
        }
    }

    /// Applies `f` to the guard, if any.
    pub(crate) fn map<H>(self, f: impl FnOnce(G) -> H) -> LockError<H> {
        match self {
            Self::OwnerDied(guard) => LockError::OwnerDied(f(guard)),
            Self::WouldBlock => LockError::WouldBlock,
            Self::Timeout => LockError::Timeout,
        }
    }
}

/// What a failed wait means: `WouldBlock` for `try_` forms, `Timeout` for
/// the others.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Miss {
    WouldBlock,
    Timeout,
}

/// The result of an acquisition, with the guard `make` builds.
pub(crate) fn lock_result<G>(
    acquired: Option<Acquired>,
    miss: Miss,
    make: impl FnOnce() -> G,
) -> Result<G, LockError<G>> {
    match acquired {
        Some(Acquired::Clean) => Ok(make()),
        Some(Acquired::OwnerDied) => Err(LockError::OwnerDied(make())),
        None => Err(match miss {
            Miss::WouldBlock => LockError::WouldBlock,
            Miss::Timeout => LockError::Timeout,
        }),
    }
}

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            Self::WouldBlock => f.write_str("WouldBlock"),
            Self::Timeout => f.write_str("Timeout"),
        }
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OwnerDied(_) => "the previous owner of the lock died while holding it",
            Self::WouldBlock => "lock is held elsewhere",
            Self::Timeout => "timed out waiting for the lock",
        })
    }
}

impl<G> std::error::Error for LockError<G> {}

impl<G> From<LockError<G>> for crate::Error {
    fn from(error: LockError<G>) -> Self {
        match error {
            LockError::OwnerDied(_) => Self::OwnerDied,
            LockError::WouldBlock => Self::WouldBlock,
            LockError::Timeout => Self::Timeout,
        }
    }
}
