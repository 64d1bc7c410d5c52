//! CSP (PyCSP): processes that talk over channels, with retire and poison.
//!
//! A `#[process]` function returns an unstarted [`Process`]; [`parallel!`]
//! and [`Parallel`] start processes together and wait for all of them. A
//! process runs in a thread, or in an OS process after
//! [`.os()`](Process::os): the same functions and the same channels either
//! way. [`Channel`] is any-to-any; its ends retire when dropped, and poison
//! spreads through a network from any end.
//!
//! ```
//! use multiproc::csp::{self, process, Channel, Reader, Writer};
//!
//! #[process]
//! fn producer(out: Writer<u64>, n: u64) -> csp::Result<()> {
//!     for i in 0..n {
//!         out.write(i)?;
//!     }
//!     out.retire();
//!     Ok(())
//! }
//!
//! #[process]
//! fn consumer(inp: Reader<u64>) -> csp::Result<u64> {
//!     let mut sum = 0;
//!     loop {
//!         match inp.read() {
//!             Ok(v) => sum += v,
//!             Err(e) if e.is_retired() => return Ok(sum),
//!             Err(e) => return Err(e),
//!         }
//!     }
//! }
//!
//! // Threads (PyCSP's @process)...
//! let ch = Channel::<u64>::new()?;
//! let (done, sum) = csp::parallel!(producer(ch.writer(), 1000), consumer(ch.reader()))?;
//! done?;
//! assert_eq!(sum?, 499500);
//! // ... or OS processes (@multiprocess): one word changed.
//! let ch = Channel::<u64>::new()?;
//! let (done, sum) = csp::parallel!(producer(ch.writer(), 1000).os(), consumer(ch.reader()).os())?;
//! done?;
//! assert_eq!(sum?, 499500);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod channel;
mod error;
mod process;

pub use channel::{Channel, ChannelEnd, Reader, Writer};
pub use error::{Error, Result};
pub use multiproc_macros::process;
pub use process::{Parallel, Process, Running, Sequence, Start};

/// Starts every process given, waits for all of them, and returns their
/// results as a tuple (PyCSP's `Parallel(P1(), P2())`), for processes of
/// different result types. Fails only if a process could not run to its
/// end (it panicked, was killed, or could not start), after every process
/// that started has ended.
///
/// # Examples
///
/// ```
/// use multiproc::csp::{self, Process};
/// fn p1(_: ()) { println!("P1 exiting") }
/// fn p2(_: ()) -> &'static str { "P2 exiting" }
/// let ((), two) = csp::parallel!(Process::new(p1, ()), Process::new(p2, ()))?;
/// assert_eq!(two, "P2 exiting");
/// # Ok::<(), multiproc::Error>(())
/// ```
#[macro_export]
#[doc(hidden)]
macro_rules! __csp_parallel {
    ($($process:expr),+ $(,)?) => {
        $crate::csp::__private::JoinAll::join_all(($(($process).start(),)+))
    };
}

/// Runs the processes given one after another (PyCSP's `Sequence`) and
/// returns their results as a tuple; stops at the first that fails.
///
/// # Examples
///
/// ```
/// use multiproc::csp::{self, Process};
/// fn id(x: u8) -> u8 { x }
/// let (a, b) = csp::sequence!(Process::new(id, 1), Process::new(id, 2))?;
/// assert_eq!((a, b), (1, 2));
/// # Ok::<(), multiproc::Error>(())
/// ```
#[macro_export]
#[doc(hidden)]
macro_rules! __csp_sequence {
    ($($process:expr),+ $(,)?) => {
        (|| -> $crate::Result<_> { ::std::result::Result::Ok(($(($process).run()?,)+)) })()
    };
}

#[doc(inline)]
pub use crate::__csp_parallel as parallel;
#[doc(inline)]
pub use crate::__csp_sequence as sequence;

/// Retires every end of `ends` (PyCSP's `retire(*ends)`).
///
/// # Examples
///
/// ```
/// use multiproc::csp::{self, Channel};
/// let chs = [Channel::<u8>::new()?, Channel::<u8>::new()?];
/// let readers: Vec<_> = chs.iter().map(|c| c.reader()).collect();
/// let writers: Vec<_> = chs.iter().map(|c| c.writer()).collect();
/// csp::retire(&readers);
/// assert!(writers.iter().all(|w| w.write(1).unwrap_err().is_retired()));
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn retire<'a, E: ChannelEnd + 'a>(ends: impl IntoIterator<Item = &'a E>) {
    for end in ends {
        end.retire();
    }
}

/// Poisons the channel of every end of `ends` (PyCSP's `poison(*ends)`).
///
/// # Examples
///
/// ```
/// use multiproc::csp::{self, Channel};
/// let ch = Channel::<u8>::new()?;
/// let (r, w) = (ch.reader(), ch.writer());
/// csp::poison([&w]);
/// assert!(r.read().unwrap_err().is_poisoned());
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn poison<'a, E: ChannelEnd + 'a>(ends: impl IntoIterator<Item = &'a E>) {
    for end in ends {
        end.poison();
    }
}

/// What `#[process]` expands to uses these; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use super::process::JoinAll;
    use super::{ChannelEnd, Reader, Result, Writer};

    /// The ends a process holds on to until its result is known: clones,
    /// registered, so that the process's own ends retiring as its body
    /// returns cannot retire a channel before its poison spreads.
    pub type Held = Vec<Box<dyn ChannelEnd>>;

    /// A value looked at by reference, so that trait methods can tell
    /// channel ends (and `csp::Result`s) from anything else.
    #[derive(Debug)]
    pub struct Probe<'a, T>(pub &'a T);

    /// Ends among a process's arguments.
    pub trait CollectEnds {
        fn collect_ends(&self, out: &mut Held);
    }

    /// Anything else: no ends.
    pub trait NoEnds {
        fn collect_ends(&self, _out: &mut Held) {}
    }

    impl<T> NoEnds for &Probe<'_, T> {}

    macro_rules! collect {
        ($($ty:ty),+) => {$(
            impl<T: 'static> CollectEnds for Probe<'_, $ty> {
                fn collect_ends(&self, out: &mut Held) {
                    out.extend(self.0.iter().map(|end| Box::new(end.clone()) as Box<dyn ChannelEnd>));
                }
            }
        )+};
    }

    collect!(Vec<Reader<T>>, Vec<Writer<T>>, Option<Reader<T>>, Option<Writer<T>>);

    impl<T: 'static> CollectEnds for Probe<'_, Reader<T>> {
        fn collect_ends(&self, out: &mut Held) {
            out.push(Box::new(self.0.clone()));
        }
    }

    impl<T: 'static> CollectEnds for Probe<'_, Writer<T>> {
        fn collect_ends(&self, out: &mut Held) {
            out.push(Box::new(self.0.clone()));
        }
    }

    /// A `csp::Result` that is poison.
    pub trait PoisonResult {
        fn is_poison(&self) -> bool;
    }

    impl<T> PoisonResult for Probe<'_, Result<T>> {
        fn is_poison(&self) -> bool {
            matches!(self.0, Err(e) if e.is_poisoned())
        }
    }

    /// Any other result: never poison.
    pub trait NotResult {
        fn is_poison(&self) -> bool {
            false
        }
    }

    impl<T> NotResult for &Probe<'_, T> {}
}
