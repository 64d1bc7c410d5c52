//! `Semaphore` and `BoundedSemaphore` (Python's names).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::shm::handle::segment_handle_serde;
use crate::shm::park::deadline_after;
use crate::shm::segment::Shape;
use crate::shm::semaphore::RawSemaphore;
use crate::shm::{Kind, Segment};
use crate::{Error, Result};

fn create(value: u32, max: u32) -> Result<Arc<Segment>> {
    let seg = Segment::create(Kind::Semaphore, size_of::<RawSemaphore>(), Shape::default())?;
    seg.at::<RawSemaphore>(0).init(value, max);
    Ok(seg)
}

/// A counting semaphore shared between processes.
///
/// # Examples
///
/// ```
/// let slots = multiproc::Semaphore::new(2)?;
/// slots.acquire();
/// assert!(slots.try_acquire());
/// assert!(!slots.try_acquire());
/// slots.release()?;
/// assert_eq!(slots.value(), 1);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Semaphore {
    seg: Arc<Segment>,
}

segment_handle_serde!(Semaphore, Kind::Semaphore, size_of::<RawSemaphore>());

/// A semaphore that refuses to be released above its initial value.
///
/// # Examples
///
/// ```
/// let sem = multiproc::BoundedSemaphore::new(1)?;
/// assert!(matches!(sem.release(), Err(multiproc::Error::TooManyReleases)));
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    seg: Arc<Segment>,
}

segment_handle_serde!(BoundedSemaphore, Kind::Semaphore, size_of::<RawSemaphore>());

/// One unit of a semaphore, given back on drop.
#[must_use = "the unit is given back as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    raw: &'a RawSemaphore,
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        let _ = self.raw.release(1);
    }
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SemaphoreGuard")
    }
}

/// The methods both semaphores share.
macro_rules! semaphore_methods {
    ($ty:ident) => {
        impl $ty {
            fn raw(&self) -> &RawSemaphore {
                self.seg.at(0)
            }

            /// Takes one unit, waiting as long as it takes.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("let sem = multiproc::", stringify!($ty), "::new(1)?;")]
            /// sem.acquire();
            /// # Ok::<(), multiproc::Error>(())
            /// ```
            pub fn acquire(&self) {
                self.raw().acquire(None);
            }

            /// Takes one unit, awaiting one as long as it takes:
            /// [`acquire`](Self::acquire) without holding a thread.
            /// **Cancel-safe**: the unit is taken only in the poll that
            /// returns; a dropped future takes none and leaves no waiter
            /// behind. Give it back with `release`.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("let sem = multiproc::", stringify!($ty), "::new(1)?;")]
            /// futures::executor::block_on(sem.acquire_async());
            /// assert!(!sem.try_acquire());
            /// # Ok::<(), multiproc::Error>(())
            /// ```
            pub async fn acquire_async(&self) {
                use crate::aio::{Arm, Keep, Source, Waiting, Wake};
                use std::sync::atomic::Ordering;
                let raw = self.raw();
                let (count, waiters) = raw.words();
                let mut waiting = Waiting::new(raw);
                std::future::poll_fn(|cx| {
                    waiting.poll(
                        cx,
                        || raw.try_acquire().then_some(()),
                        |waiting| {
                            let keep = Arc::clone(&self.seg) as Keep;
                            waiting.count(waiters, &keep);
                            let now = count.load(Ordering::SeqCst);
                            (now == 0).then(|| Arm::on(Source::word(count, 0, keep, Wake::One)))
                        },
                    )
                })
                .await;
            }

            /// Takes one unit if there is one.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("let sem = multiproc::", stringify!($ty), "::new(0)?;")]
            /// assert!(!sem.try_acquire());
            /// # Ok::<(), multiproc::Error>(())
            /// ```
            pub fn try_acquire(&self) -> bool {
                self.raw().try_acquire()
            }

            /// Takes one unit, waiting at most `timeout`; `false` if none came.
            ///
            /// # Examples
            ///
            /// ```
            /// use std::time::Duration;
            #[doc = concat!("let sem = multiproc::", stringify!($ty), "::new(0)?;")]
            /// assert!(!sem.acquire_timeout(Duration::from_millis(5)));
            /// # Ok::<(), multiproc::Error>(())
            /// ```
            pub fn acquire_timeout(&self, timeout: Duration) -> bool {
                self.raw().acquire(deadline_after(timeout))
            }

            /// Takes one unit and returns a guard that gives it back on drop.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("let sem = multiproc::", stringify!($ty), "::new(1)?;")]
            /// {
            ///     let _unit = sem.guard();
            ///     assert_eq!(sem.value(), 0);
            /// }
            /// assert_eq!(sem.value(), 1);
            /// # Ok::<(), multiproc::Error>(())
            /// ```
            pub fn guard(&self) -> SemaphoreGuard<'_> {
                self.acquire();
                SemaphoreGuard { raw: self.raw() }
            }

            /// Python's `get_value()`: the current count.
            ///
            /// # Examples
            ///
            /// ```
            #[doc = concat!("let sem = multiproc::", stringify!($ty), "::new(3)?;")]
            /// assert_eq!(sem.value(), 3);
            /// # Ok::<(), multiproc::Error>(())
            /// ```
            pub fn value(&self) -> u32 {
                self.raw().value()
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty)).field("value", &self.value()).finish()
            }
        }
    };
}

semaphore_methods!(Semaphore);
semaphore_methods!(BoundedSemaphore);

impl Semaphore {
    /// A semaphore with `value` units.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = multiproc::Semaphore::new(4)?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new(value: u32) -> Result<Self> {
        Ok(Self { seg: create(value, u32::MAX)? })
    }

    /// Gives one unit back.
    ///
    /// # Errors
    ///
    /// [`Error::TooManyReleases`] if the count would pass `u32::MAX`.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = multiproc::Semaphore::new(0)?;
    /// sem.release()?;
    /// assert_eq!(sem.value(), 1);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn release(&self) -> Result<()> {
        self.release_n(1)
    }

    /// Gives `n` units back (Python 3.9's `release(n)`).
    ///
    /// # Errors
    ///
    /// [`Error::TooManyReleases`] if the count would pass `u32::MAX`.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = multiproc::Semaphore::new(0)?;
    /// sem.release_n(3)?;
    /// assert_eq!(sem.value(), 3);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn release_n(&self, n: u32) -> Result<()> {
        self.raw().release(n).map_err(|_| Error::TooManyReleases)
    }
}

impl BoundedSemaphore {
    /// A semaphore with `value` units that never holds more.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = multiproc::BoundedSemaphore::new(2)?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new(value: u32) -> Result<Self> {
        Ok(Self { seg: create(value, value)? })
    }

    /// Gives one unit back.
    ///
    /// # Errors
    ///
    /// [`Error::TooManyReleases`] if the count is already at its initial
    /// value (Python raises `ValueError`).
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = multiproc::BoundedSemaphore::new(1)?;
    /// sem.acquire();
    /// sem.release()?;
    /// assert!(sem.release().is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn release(&self) -> Result<()> {
        self.raw().release(1).map_err(|_| Error::TooManyReleases)
    }

    /// The initial value, which the count never exceeds.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::BoundedSemaphore::new(2)?.bound(), 2);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn bound(&self) -> u32 {
        self.raw().max()
    }
}
