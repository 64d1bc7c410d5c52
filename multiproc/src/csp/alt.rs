//! Alternation (PyCSP's `Alternation`, `PriSelect`, `FairSelect`,
//! `AltSelect`): wait for the first of several guards (inputs, outputs, a
//! timeout, skip) and complete exactly that one.
//!
//! A selection scans its guards: an input guard tries to take a value
//! offered now (`try_read`), an output guard tries to hand its value to a
//! reader waiting now (`try_write`). If none fires, it offers the value of
//! one output guard (in turn, when there are several) as the channel's
//! pending value, and sleeps on the bells of every guarded channel (one
//! `futex_waitv`). When it wakes, it takes its offer back unless a reader
//! claimed it (then that guard fired), and scans again. It never holds an
//! offer while it takes an input, so at most one guard completes; two
//! alternations facing each other on the same channel meet through the
//! offer of the one that writes.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::channel::{DEATH_CHECK, Posted, Shared};
use super::local::Offer;
use super::{Error, Reader, Result, Writer};
use crate::os;
use crate::queue::raw::Wait;

/// How long an offer stays on one output guard before the next gets its
/// turn, when there are several.
const OFFER_TURN: Duration = Duration::from_millis(2);

/// What a guard did when asked.
enum Attempt {
    Fired,
    NotReady,
    /// An output guard's value is the channel's pending value now.
    Offered,
    Failed(Error),
}

impl Attempt {
    fn of(result: Result<()>) -> Self {
        match result {
            Ok(()) => Self::Fired,
            Err(Error::WouldBlock | Error::Timeout) => Self::NotReady,
            Err(error) => Self::Failed(error),
        }
    }
}

/// One guard of an alternation.
trait Guard {
    /// The guarded channel and whether the guard reads it.
    fn channel(&self) -> Option<(&Shared, bool)> {
        None
    }
    /// `Some(deadline)` for a timeout guard.
    fn deadline(&self) -> Option<Instant> {
        None
    }
    fn is_skip(&self) -> bool {
        false
    }
    /// Completes now if a partner is ready now.
    fn try_now(&mut self) -> Attempt;
    /// An output guard: offers its value (see the module): `Offered`, or
    /// `Fired` if it was delivered at once (room in a buffered channel).
    fn offer(&mut self) -> Attempt {
        Attempt::NotReady
    }
    /// Ends the offer: `true` if a reader claimed it (the guard fired).
    fn settle(&mut self) -> bool {
        false
    }
    /// After an offer: the bell it rang and the bell's value before.
    fn rang(&self) -> Option<(&AtomicU32, u32)> {
        None
    }
    /// The value an input guard read.
    fn take(&mut self) -> Option<Box<dyn Any>> {
        None
    }
}

struct Input<'a, T> {
    reader: &'a Reader<T>,
    value: Option<T>,
}

impl<T: Send + 'static> Guard for Input<'_, T> {
    fn channel(&self) -> Option<(&Shared, bool)> {
        Some((self.reader.shared(), true))
    }

    fn try_now(&mut self) -> Attempt {
        match self.reader.shared().read::<T>(Wait::Never) {
            Ok(value) => {
                self.value = Some(value);
                Attempt::Fired
            }
            Err(error) => Attempt::of(Err(error)),
        }
    }

    fn take(&mut self) -> Option<Box<dyn Any>> {
        self.value.take().map(|v| Box::new(v) as Box<dyn Any>)
    }
}

struct Output<'a, T> {
    writer: &'a Writer<T>,
    /// The value (it stays here, at this address, while it is offered).
    value: Offer<T>,
    /// The value offered now.
    offered: Option<Posted>,
}

impl<T: Send> Guard for Output<'_, T> {
    fn channel(&self) -> Option<(&Shared, bool)> {
        Some((self.writer.shared(), false))
    }

    fn try_now(&mut self) -> Attempt {
        Attempt::of(self.writer.shared().write(&self.value, Wait::Never))
    }

    fn offer(&mut self) -> Attempt {
        match self.writer.shared().offer(&self.value) {
            Ok(Some(posted)) => {
                self.offered = Some(posted);
                Attempt::Offered
            }
            Ok(None) => Attempt::Fired,
            Err(error) => Attempt::of(Err(error)),
        }
    }

    fn settle(&mut self) -> bool {
        let Some(posted) = self.offered.take() else { return false };
        if self.writer.shared().withdraw(&posted) {
            return false;
        }
        self.writer.shared().released(&posted);
        true
    }

    fn rang(&self) -> Option<(&AtomicU32, u32)> {
        let before = self.offered?.rang?;
        Some((self.writer.shared().bell(true), before))
    }
}

struct Timeout(Instant);

impl Guard for Timeout {
    fn deadline(&self) -> Option<Instant> {
        Some(self.0)
    }

    fn try_now(&mut self) -> Attempt {
        if Instant::now() >= self.0 { Attempt::Fired } else { Attempt::NotReady }
    }
}

struct Skip;

impl Guard for Skip {
    fn is_skip(&self) -> bool {
        true
    }

    fn try_now(&mut self) -> Attempt {
        Attempt::Fired
    }
}

/// How a selection orders its guards.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    /// List order, always (`pri_select`).
    Priority,
    /// Guards that won least lately first (`fair_select`).
    Fair,
    /// Any (`alt_select`): list order, the cheapest.
    Any,
}

thread_local! {
    /// Wins per channel, for `fair_select` (by channel, so that it holds
    /// across alternations rebuilt in a loop).
    static WINS: RefCell<Vec<(usize, u64)>> = const { RefCell::new(Vec::new()) };
}

fn wins_of(id: usize) -> u64 {
    WINS.with(|w| w.borrow().iter().find(|(k, _)| *k == id).map_or(0, |(_, n)| *n))
}

fn record_win(id: usize) {
    WINS.with(|w| {
        let mut w = w.borrow_mut();
        match w.iter_mut().find(|(k, _)| *k == id) {
            Some((_, n)) => *n += 1,
            None => {
                if w.len() >= 1024 {
                    w.clear();
                }
                w.push((id, 1));
            }
        }
    });
}

/// An alternation: guards over channels (and a timeout, a skip), of which
/// a selection completes exactly one (PyCSP's `Alternation`). Guards are
/// numbered in the order they are added; a selection returns the number of
/// the guard that fired, and [`take`](Alternation::take) gives an input
/// guard's value.
///
/// It works whatever the other ends are (plain reads and writes, other
/// alternations, output guards on both sides of a channel) in threads and
/// OS processes alike. A poisoned or retired channel raises its error only
/// when no other guard can fire now; then, as in PyCSP, the selection fails
/// with it (a network that merges streams drops the guard of a channel once
/// it retires).
///
/// # Examples
///
/// ```
/// use multiproc::csp::{Alternation, Channel};
///
/// let (a, b) = (Channel::<u64>::buffered(1)?, Channel::<u64>::buffered(1)?);
/// let (ra, rb, wb) = (a.reader(), b.reader(), b.writer());
/// wb.write(7)?;
/// let mut alt = Alternation::new().input(&ra).input(&rb);
/// let chosen = alt.pri_select()?;
/// assert_eq!((chosen, alt.take::<u64>(chosen)), (1, Some(7)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct Alternation<'a> {
    guards: Vec<Box<dyn Guard + Send + 'a>>,
}

impl<'a> Alternation<'a> {
    /// No guards yet.
    ///
    /// # Examples
    ///
    /// ```
    /// let alt = multiproc::csp::Alternation::new().skip();
    /// assert_eq!(alt.len(), 1);
    /// ```
    pub fn new() -> Self {
        Self { guards: Vec::new() }
    }

    /// Adds an input guard: it fires by reading a value from `reader`.
    ///
    /// # Examples
    ///
    /// ```
    /// let ch = multiproc::csp::Channel::<u8>::buffered(1)?;
    /// let r = ch.reader();
    /// ch.writer().write(3)?;
    /// let mut alt = multiproc::csp::Alternation::new().input(&r);
    /// assert_eq!(alt.pri_select()?, 0);
    /// assert_eq!(alt.take::<u8>(0), Some(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn input<T: Send + 'static>(mut self, reader: &'a Reader<T>) -> Self {
        self.guards.push(Box::new(Input { reader, value: None }));
        self
    }

    /// Adds an input guard for each reader of `readers`, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// let chs = [multiproc::csp::Channel::<u8>::buffered(1)?, multiproc::csp::Channel::<u8>::buffered(1)?];
    /// let readers: Vec<_> = chs.iter().map(|c| c.reader()).collect();
    /// chs[1].writer().write(9)?;
    /// let mut alt = multiproc::csp::Alternation::new().inputs(&readers);
    /// assert_eq!(alt.pri_select()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn inputs<T: Send + 'static>(
        mut self,
        readers: impl IntoIterator<Item = &'a Reader<T>>,
    ) -> Self {
        for reader in readers {
            self = self.input(reader);
        }
        self
    }

    /// Adds an output guard: it fires by writing `value` to `writer` (to a
    /// reader that takes it, on a rendezvous channel).
    ///
    /// # Examples
    ///
    /// ```
    /// let ch = multiproc::csp::Channel::<u8>::buffered(1)?;
    /// let (r, w) = (ch.reader(), ch.writer());
    /// assert_eq!(multiproc::csp::Alternation::new().output(&w, 4).pri_select()?, 0);
    /// assert_eq!(r.read()?, 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn output<T: Send + 'a>(mut self, writer: &'a Writer<T>, value: T) -> Self {
        self.guards.push(Box::new(Output { writer, value: Offer::new(value), offered: None }));
        self
    }

    /// Adds a timeout guard: it fires once `after` has passed (from now).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let ch = multiproc::csp::Channel::<u8>::new()?;
    /// let r = ch.reader();
    /// let mut alt = multiproc::csp::Alternation::new().input(&r).timeout(Duration::from_millis(5));
    /// assert_eq!(alt.pri_select()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn timeout(mut self, after: Duration) -> Self {
        let deadline = Instant::now().checked_add(after).unwrap_or_else(far_future);
        self.guards.push(Box::new(Timeout(deadline)));
        self
    }

    /// Adds a skip guard: it fires if no guard before it can (with
    /// [`pri_select`](Alternation::pri_select)), or if none can at all.
    ///
    /// # Examples
    ///
    /// ```
    /// let ch = multiproc::csp::Channel::<u8>::new()?;
    /// let r = ch.reader();
    /// assert_eq!(multiproc::csp::Alternation::new().input(&r).skip().pri_select()?, 1);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn skip(mut self) -> Self {
        self.guards.push(Box::new(Skip));
        self
    }

    /// How many guards there are.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(multiproc::csp::Alternation::new().is_empty());
    /// ```
    pub fn len(&self) -> usize {
        self.guards.len()
    }

    /// Whether there are no guards.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(multiproc::csp::Alternation::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.guards.is_empty()
    }

    /// Waits for a guard to fire and returns its number: the first ready in
    /// list order (PyCSP's `PriSelect`), also across processes.
    ///
    /// # Errors
    ///
    /// The error of a poisoned or retired guarded channel, when no guard can
    /// fire; [`Error::WouldBlock`] for an alternation without guards.
    ///
    /// # Examples
    ///
    /// ```
    /// let ch = multiproc::csp::Channel::<u8>::buffered(2)?;
    /// let (r, w) = (ch.reader(), ch.writer());
    /// w.write(1)?;
    /// let mut alt = multiproc::csp::Alternation::new().skip().input(&r);
    /// assert_eq!(alt.pri_select()?, 0); // skip comes first
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pri_select(&mut self) -> Result<usize> {
        self.select(Order::Priority)
    }

    /// Waits for a guard to fire and returns its number, preferring the
    /// channels that won least lately (PyCSP's `FairSelect`): a reader that
    /// alternates over several busy channels serves each in turn.
    ///
    /// # Errors
    ///
    /// As [`pri_select`](Alternation::pri_select).
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = (multiproc::csp::Channel::<u8>::buffered(4)?, multiproc::csp::Channel::<u8>::buffered(4)?);
    /// let (ra, rb, wa, wb) = (a.reader(), b.reader(), a.writer(), b.writer());
    /// for _ in 0..2 { wa.write(1)?; wb.write(2)?; }
    /// let mut got = Vec::new();
    /// for _ in 0..4 {
    ///     let mut alt = multiproc::csp::Alternation::new().input(&ra).input(&rb);
    ///     let i = alt.fair_select()?;
    ///     got.push(alt.take::<u8>(i).unwrap());
    /// }
    /// got.sort();
    /// assert_eq!(got, [1, 1, 2, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fair_select(&mut self) -> Result<usize> {
        self.select(Order::Fair)
    }

    /// Waits for any guard to fire and returns its number (PyCSP's
    /// `AltSelect`): no order is promised, so it is the cheapest.
    ///
    /// # Errors
    ///
    /// As [`pri_select`](Alternation::pri_select).
    ///
    /// # Examples
    ///
    /// ```
    /// let ch = multiproc::csp::Channel::<u8>::buffered(1)?;
    /// let (r, w) = (ch.reader(), ch.writer());
    /// w.write(5)?;
    /// let mut alt = multiproc::csp::Alternation::new().input(&r);
    /// assert_eq!(alt.alt_select()?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn alt_select(&mut self) -> Result<usize> {
        self.select(Order::Any)
    }

    /// The value the input guard `index` read, if it fired (once).
    ///
    /// # Examples
    ///
    /// ```
    /// let ch = multiproc::csp::Channel::<String>::buffered(1)?;
    /// let r = ch.reader();
    /// ch.writer().write("hi".into())?;
    /// let mut alt = multiproc::csp::Alternation::new().input(&r);
    /// let i = alt.pri_select()?;
    /// assert_eq!(alt.take::<String>(i).as_deref(), Some("hi"));
    /// assert_eq!(alt.take::<String>(i), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn take<T: 'static>(&mut self, index: usize) -> Option<T> {
        let value = self.guards.get_mut(index)?.take()?;
        value.downcast::<T>().ok().map(|v| *v)
    }

    /// [`take`](Alternation::take), its type named by the reader (for
    /// `select!`).
    #[doc(hidden)]
    pub fn take_from<T: 'static>(&mut self, index: usize, _reader: &Reader<T>) -> T {
        self.take(index).expect("the chosen input guard holds its value")
    }

    fn select(&mut self, order: Order) -> Result<usize> {
        let mut selection = Selection::new(self, order)?;
        loop {
            let (words, left, offered) = match selection.scan(self) {
                Scan::Chosen(i) => return selection.chosen(i),
                Scan::Failed(error) => return Err(error),
                Scan::Sleep { words, left, offered } => (words, left, offered),
            };
            if left.is_none_or(|l| !l.is_zero()) {
                let bells = selection.bells();
                let words: Vec<(&AtomicU32, u32)> = bells.into_iter().zip(words).collect();
                selection.sleeping(true);
                os::futex_wait_any(&words, left);
                selection.sleeping(false);
            }
            // Take the offer back (before any input is taken) unless a
            // reader claimed it: then it fired. A timeout guard fires in the
            // next scan, after the channel guards it follows.
            if let Some(i) = offered
                && self.guards[i].settle()
            {
                return selection.chosen(i);
            }
        }
    }

    /// [`pri_select`](Alternation::pri_select), awaited: waits without
    /// holding a thread.
    ///
    /// **Cancel-safe**: a guard fires only in the poll that returns it;
    /// dropped while an output guard's value is offered, the offer is taken
    /// back (unless a reader claimed it meanwhile: then that reader has
    /// it, as after a `write_async` dropped at that moment).
    ///
    /// # Errors
    ///
    /// As [`pri_select`](Alternation::pri_select).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (a, b) = (multiproc::csp::Channel::<u8>::new()?, multiproc::csp::Channel::<u8>::new()?);
    /// let (ra, rb, wb) = (a.reader(), b.reader(), b.writer());
    /// let writer = std::thread::spawn(move || wb.write(2));
    /// let mut alt = multiproc::csp::Alternation::new().input(&ra).input(&rb);
    /// let i = alt.pri_select_async().await?;
    /// assert_eq!((i, alt.take::<u8>(i)), (1, Some(2)));
    /// writer.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn pri_select_async(&mut self) -> Result<usize> {
        self.select_async(Order::Priority).await
    }

    /// [`fair_select`](Alternation::fair_select), awaited (as
    /// [`pri_select_async`](Alternation::pri_select_async)).
    ///
    /// # Errors
    ///
    /// As [`pri_select`](Alternation::pri_select).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let ch = multiproc::csp::Channel::<u8>::buffered(1)?;
    /// let r = ch.reader();
    /// ch.writer().write(3)?;
    /// let mut alt = multiproc::csp::Alternation::new().input(&r);
    /// assert_eq!(alt.fair_select_async().await?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn fair_select_async(&mut self) -> Result<usize> {
        self.select_async(Order::Fair).await
    }

    /// [`alt_select`](Alternation::alt_select), awaited (as
    /// [`pri_select_async`](Alternation::pri_select_async)).
    ///
    /// # Errors
    ///
    /// As [`pri_select`](Alternation::pri_select).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let ch = multiproc::csp::Channel::<u8>::new()?;
    /// let w = ch.writer();
    /// let mut alt = multiproc::csp::Alternation::new()
    ///     .output(&w, 1)
    ///     .timeout(std::time::Duration::from_millis(5));
    /// assert_eq!(alt.alt_select_async().await?, 1); // nobody read: the timeout
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn alt_select_async(&mut self) -> Result<usize> {
        self.select_async(Order::Any).await
    }

    async fn select_async(&mut self, order: Order) -> Result<usize> {
        use crate::aio::{Arm, Source, Waiting};
        let mut selection = Selection::new(self, order)?;
        loop {
            let (words, left, offered) = match selection.scan(self) {
                Scan::Chosen(i) => return selection.chosen(i),
                Scan::Failed(error) => return Err(error),
                Scan::Sleep { words, left, offered } => (words, left, offered),
            };
            // Settled however the wait ends, the future dropped included.
            let mut pending = Offered { alternation: self, offered, fired: false };
            if left.is_none_or(|l| !l.is_zero()) {
                let mut waiting = Waiting::default();
                let deadline = left.and_then(|l| Instant::now().checked_add(l));
                let bells = selection.bells();
                let keeps = selection.keeps();
                let sleeping = Sleeping(&selection);
                std::future::poll_fn(|cx| {
                    waiting.poll(
                        cx,
                        || {
                            let changed = bells
                                .iter()
                                .zip(&words)
                                .any(|(b, &w)| b.load(Ordering::SeqCst) != w);
                            let due = deadline.is_some_and(|d| Instant::now() >= d);
                            (changed || due).then_some(())
                        },
                        |_| {
                            sleeping.0.sleeping(true);
                            let watched = bells.iter().zip(&words).map(|(b, &w)| (*b, w));
                            let source = Source::words(watched, keeps.clone());
                            let left = deadline.map_or(DEATH_CHECK, |d| {
                                d.saturating_duration_since(Instant::now()).min(DEATH_CHECK)
                            });
                            Some(Arm::with_recheck(source, left))
                        },
                    )
                })
                .await;
                drop(sleeping);
            }
            if pending.settle() {
                return selection.chosen(offered.expect("settled an offer"));
            }
        }
    }
}

/// Counts an awaiting selection among its channels' sleeping alternations
/// until dropped.
struct Sleeping<'a, 'b>(&'a Selection<'b>);

impl Drop for Sleeping<'_, '_> {
    fn drop(&mut self) {
        self.0.sleeping(false);
    }
}

/// An output guard's offer while an awaiting selection sleeps: taken back
/// on drop unless it was settled.
struct Offered<'s, 'a> {
    alternation: &'s mut Alternation<'a>,
    offered: Option<usize>,
    fired: bool,
}

impl Offered<'_, '_> {
    /// Takes the offer back unless a reader claimed it: `true` if one did
    /// (the guard fired).
    fn settle(&mut self) -> bool {
        if let Some(i) = self.offered.take() {
            self.fired = self.alternation.guards[i].settle();
        }
        self.fired
    }
}

impl Drop for Offered<'_, '_> {
    fn drop(&mut self) {
        self.settle();
    }
}

/// One selection in progress: the guarded channels (registered as
/// alternating on until it ends), their bells, and the order of looks.
struct Selection<'g> {
    order: Order,
    channels: Registered,
    /// Per guard: its channel's id (for fair selection), if it has one.
    ids: Vec<Option<usize>>,
    sequence: Vec<usize>,
    deadline: Option<Instant>,
    outputs: Vec<usize>,
    turn: usize,
    last_check: Instant,
    _guards: std::marker::PhantomData<&'g ()>,
}

/// What one scan of the guards found.
enum Scan {
    Chosen(usize),
    Failed(Error),
    /// Nothing fired: sleep while the bells hold `words`, at most `left`,
    /// then settle the `offered` output guard.
    Sleep {
        words: Vec<u32>,
        left: Option<Duration>,
        offered: Option<usize>,
    },
}

impl<'g> Selection<'g> {
    fn new(alternation: &Alternation<'_>, order: Order) -> Result<Self> {
        let guards = &alternation.guards;
        if guards.is_empty() {
            return Err(Error::WouldBlock);
        }
        // Every guarded channel rings its bells while we select (registered
        // before the first look, so that no change goes unrung).
        let channels = Registered::new(
            guards.iter().filter_map(|g| g.channel().map(|(s, input)| (s.clone(), input))),
        );
        let ids: Vec<Option<usize>> =
            guards.iter().map(|g| g.channel().map(|(s, _)| s.id())).collect();
        let mut sequence: Vec<usize> = (0..guards.len()).collect();
        if order == Order::Fair {
            sequence.sort_by_key(|&i| ids[i].map_or(u64::MAX, wins_of));
        }
        let deadline = guards.iter().filter_map(|g| g.deadline()).min();
        let outputs: Vec<usize> = (0..guards.len())
            .filter(|&i| matches!(guards[i].channel(), Some((_, false))))
            .collect();
        Ok(Self {
            order,
            channels,
            ids,
            sequence,
            deadline,
            outputs,
            turn: 0,
            last_check: Instant::now(),
            _guards: std::marker::PhantomData,
        })
    }

    fn bells(&self) -> Vec<&AtomicU32> {
        self.channels.0.iter().map(|(s, input)| s.bell(*input)).collect()
    }

    /// What keeps the bells mapped, for the reactor.
    fn keeps(&self) -> Vec<crate::aio::Keep> {
        self.channels.0.iter().map(|(s, _)| s.keep()).collect()
    }

    fn sleeping(&self, sleeps: bool) {
        for (shared, _) in &self.channels.0 {
            shared.alternation_sleeps(sleeps);
        }
    }

    fn chosen(&self, i: usize) -> Result<usize> {
        if let Some(id) = self.ids[i] {
            record_win(id);
        }
        Ok(i)
    }

    /// Looks at every guard once, and offers one output guard's value if
    /// nothing fired.
    fn scan(&mut self, alternation: &mut Alternation<'_>) -> Scan {
        let bells = self.bells();
        let mut seen: Vec<u32> = bells.iter().map(|b| b.load(Ordering::SeqCst)).collect();
        let mut failure = None;
        for &i in &self.sequence {
            let guard = &mut alternation.guards[i];
            if guard.is_skip() && self.order != Order::Priority {
                continue; // only if nothing else can fire (below)
            }
            match guard.try_now() {
                Attempt::Fired => return Scan::Chosen(i),
                Attempt::NotReady | Attempt::Offered => {}
                Attempt::Failed(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        if let Some(skip) = self.sequence.iter().copied().find(|&i| alternation.guards[i].is_skip())
        {
            return Scan::Chosen(skip);
        }
        if let Some(error) = failure {
            return Scan::Failed(error);
        }
        // Nothing now: offer one output guard's value (each in turn), and
        // sleep until a guarded channel changes.
        let mut offered = None;
        for k in 0..self.outputs.len() {
            let i = self.outputs[(self.turn + k) % self.outputs.len()];
            match alternation.guards[i].offer() {
                Attempt::Fired => return Scan::Chosen(i),
                Attempt::Offered => {
                    offered = Some(i);
                    // Our own offer rang the channel's input bell: if
                    // nothing else did since we looked, expect its new
                    // value (an alternation that also reads the channel
                    // must not wake itself; anyone else's ring still wakes
                    // it).
                    if let Some((bell, before)) = alternation.guards[i].rang() {
                        for (j, &b) in bells.iter().enumerate() {
                            if std::ptr::eq(b, bell) && seen[j] == before {
                                seen[j] = before.wrapping_add(1);
                            }
                        }
                    }
                    break;
                }
                Attempt::NotReady | Attempt::Failed(_) => {}
            }
        }
        self.turn += 1;
        let mut left = self.deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if self.outputs.len() > 1 {
            left = Some(left.map_or(OFFER_TURN, |l| l.min(OFFER_TURN)));
        }
        // A process holding the other ends may die: look every so often.
        if self.last_check.elapsed() >= DEATH_CHECK {
            for (shared, _) in &self.channels.0 {
                shared.reap_dead_holders();
            }
            self.last_check = Instant::now();
        }
        left = Some(left.map_or(DEATH_CHECK, |l| l.min(DEATH_CHECK)));
        Scan::Sleep { words: seen, left, offered }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// The channels a selection guards, registered as alternating on until
/// it ends, however it ends.
struct Registered(Vec<(Shared, bool)>);

impl Registered {
    fn new(channels: impl Iterator<Item = (Shared, bool)>) -> Self {
        let channels: Vec<_> = channels.collect();
        for (shared, _) in &channels {
            shared.alternating(true);
        }
        Self(channels)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        for (shared, _) in &self.0 {
            shared.alternating(false);
        }
    }
}

impl fmt::Debug for Alternation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alternation").field("guards", &self.guards.len()).finish()
    }
}
