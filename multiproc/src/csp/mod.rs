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

mod alt;
mod channel;
mod error;
mod light;
mod local;
mod process;

pub use alt::Alternation;
pub use channel::{Channel, ChannelEnd, Reader, ReaderStream, Writer, WriterSink};
pub use error::{Error, Result};
pub use light::Light;
pub use multiproc_macros::process;
pub use process::{
    Parallel, Process, ProcessId, Running, Sequence, Start, current_process_id, join_spawned, spawn,
};

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

/// The macro form of [`Alternation`]: arms `read(reader) -> pattern =>
/// body`, `write(writer, value) => body`, `timeout(duration) => body`,
/// `skip => body`, separated by commas; evaluates to a
/// [`csp::Result`](Result) of the chosen arm's body. `select!` is
/// `alt_select`, the fastest; [`pri_select!`] and [`fair_select!`] choose as
/// their `Alternation` methods do.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use multiproc::csp::{self, Channel};
///
/// let (numbers, words) = (Channel::<u64>::buffered(1)?, Channel::<String>::buffered(1)?);
/// let (n, w) = (numbers.reader(), words.reader());
/// words.writer().write("hi".into())?;
/// let said = csp::pri_select! {
///     read(n) -> x => format!("number {x}"),
///     read(w) -> s => format!("word {s}"),
///     timeout(Duration::from_secs(1)) => "nothing".to_owned(),
/// }?;
/// assert_eq!(said, "word hi");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[macro_export]
#[doc(hidden)]
macro_rules! __csp_select {
    (@arms $how:ident [$($done:tt)*] read($r:expr) -> $v:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__csp_select!(@arms $how [$($done)* [read ($r) ($v) ($body)]] $($($rest)*)?)
    };
    (@arms $how:ident [$($done:tt)*] write($w:expr, $x:expr) => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__csp_select!(@arms $how [$($done)* [write ($w, $x) () ($body)]] $($($rest)*)?)
    };
    (@arms $how:ident [$($done:tt)*] timeout($d:expr) => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__csp_select!(@arms $how [$($done)* [timeout ($d) () ($body)]] $($($rest)*)?)
    };
    (@arms $how:ident [$($done:tt)*] skip => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__csp_select!(@arms $how [$($done)* [skip () () ($body)]] $($($rest)*)?)
    };
    (@arms $how:ident [$([$kind:ident ($($args:tt)*) ($($pat:tt)*) ($body:expr)])*]) => {{
        let mut __alt = $crate::csp::Alternation::new();
        $( __alt = $crate::__csp_select!(@add __alt $kind ($($args)*)); )*
        match __alt.$how() {
            ::std::result::Result::Err(e) => ::std::result::Result::Err(e),
            ::std::result::Result::Ok(__chosen) => {
                // An arm that diverges (`panic!`, `return`) makes what
                // follows it unreachable: that is expected.
                #[allow(unreachable_code, clippy::diverging_sub_expression)]
                let __value = '__select: {
                    let mut __k = 0usize;
                    $(
                        if __chosen == __k {
                            break '__select $crate::__csp_select!(
                                @fire __alt __k $kind ($($args)*) ($($pat)*) ($body)
                            );
                        }
                        __k += 1;
                    )*
                    let _ = __k;
                    unreachable!("the chosen guard is one of the arms")
                };
                ::std::result::Result::Ok(__value)
            }
        }
    }};
    (@add $alt:ident read ($r:expr)) => { $alt.input(&$r) };
    (@add $alt:ident write ($w:expr, $x:expr)) => { $alt.output(&$w, $x) };
    (@add $alt:ident timeout ($d:expr)) => { $alt.timeout($d) };
    (@add $alt:ident skip ()) => { $alt.skip() };
    (@fire $alt:ident $k:ident read ($r:expr) ($v:pat) ($body:expr)) => {{
        let $v = $alt.take_from($k, &$r);
        $body
    }};
    (@fire $alt:ident $k:ident $kind:ident ($($args:tt)*) () ($body:expr)) => { $body };
}

/// [`Alternation::alt_select`] as arms; see [`__csp_select`](crate::__csp_select) for the syntax.
#[macro_export]
#[doc(hidden)]
macro_rules! __csp_alt_select {
    ($($arms:tt)*) => { $crate::__csp_select!(@arms alt_select [] $($arms)*) };
}

/// [`Alternation::pri_select`] as arms.
#[macro_export]
#[doc(hidden)]
macro_rules! __csp_pri_select {
    ($($arms:tt)*) => { $crate::__csp_select!(@arms pri_select [] $($arms)*) };
}

/// [`Alternation::fair_select`] as arms.
#[macro_export]
#[doc(hidden)]
macro_rules! __csp_fair_select {
    ($($arms:tt)*) => { $crate::__csp_select!(@arms fair_select [] $($arms)*) };
}

/// Waits for the first ready of several channel operations (arms) and runs
/// that arm: see [`Alternation`] for the semantics. Arms: `read(reader) ->
/// pattern => body`, `write(writer, value) => body`, `timeout(duration) =>
/// body`, `skip => body`, separated by commas. Evaluates to a
/// [`csp::Result`](Result) of the arm's value. `select!` makes no promise of
/// order (the fastest); [`pri_select!`] takes the first ready arm in order;
/// [`fair_select!`] prefers channels that won least lately.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use multiproc::csp::{self, Channel};
///
/// let (numbers, words) = (Channel::<u64>::buffered(1)?, Channel::<String>::buffered(1)?);
/// let (n, w) = (numbers.reader(), words.reader());
/// words.writer().write("hi".into())?;
/// let said = csp::select! {
///     read(n) -> x => format!("number {x}"),
///     read(w) -> s => format!("word {s}"),
///     timeout(Duration::from_secs(1)) => "nothing".to_owned(),
/// }?;
/// assert_eq!(said, "word hi");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(inline)]
pub use crate::__csp_alt_select as select;
/// [`select!`] preferring the channels that won least lately (PyCSP's
/// `FairSelect`).
///
/// # Examples
///
/// ```
/// use multiproc::csp::{self, Channel};
/// let ch = Channel::<u8>::buffered(1)?;
/// let (r, w) = (ch.reader(), ch.writer());
/// w.write(1)?;
/// assert_eq!(csp::fair_select! { read(r) -> v => v }?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(inline)]
pub use crate::__csp_fair_select as fair_select;
#[doc(inline)]
pub use crate::__csp_parallel as parallel;
/// [`select!`] taking the first ready arm in list order (PyCSP's `PriSelect`).
///
/// # Examples
///
/// ```
/// use multiproc::csp::{self, Channel};
/// let ch = Channel::<u8>::buffered(1)?;
/// let (r, w) = (ch.reader(), ch.writer());
/// w.write(1)?;
/// let first = csp::pri_select! { skip => 0, read(r) -> v => v }?;
/// assert_eq!(first, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(inline)]
pub use crate::__csp_pri_select as pri_select;
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
    pub use super::channel::{Deferred, EndRef};
    pub use super::process::JoinAll;
    use super::{Reader, Result, Writer};

    /// The ends among a process's arguments (see [`Deferred`]).
    pub type Held = Vec<EndRef>;

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
            impl<T> CollectEnds for Probe<'_, $ty> {
                fn collect_ends(&self, out: &mut Held) {
                    out.extend(self.0.iter().map(|end| end.as_argument()));
                }
            }
        )+};
    }

    collect!(Vec<Reader<T>>, Vec<Writer<T>>, Option<Reader<T>>, Option<Writer<T>>);

    impl<T> CollectEnds for Probe<'_, Reader<T>> {
        fn collect_ends(&self, out: &mut Held) {
            out.push(self.0.as_argument());
        }
    }

    impl<T> CollectEnds for Probe<'_, Writer<T>> {
        fn collect_ends(&self, out: &mut Held) {
            out.push(self.0.as_argument());
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
