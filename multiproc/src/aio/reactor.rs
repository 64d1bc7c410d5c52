//! Turns wake-ups of futexes and descriptors into [`Waker`] calls: a few
//! threads per process, each asleep in one system call on everything its
//! pending futures wait for.
//!
//! - *Words* (futexes in shared memory or in this process): a thread sleeps
//!   in `futex_waitv` on up to [`WORDS_PER_THREAD`] distinct words at once,
//!   plus its own control word; more words start another thread. Ten
//!   thousand futures waiting on one queue are one word.
//! - *Descriptors* (sockets, pidfds): one thread sleeps in `poll`.
//!
//! The threads are multiproc helpers: a fork does not count them as
//! threads that make forking hazardous. They hold a lock only for moments,
//! and a forked child never uses its parent's reactor: it makes its own on
//! first use (futures copied into a child by `fork` must not be used
//! there).
//!
//! A watch keeps what its word lives in mapped ([`Keep`]), so the threads
//! never touch memory that went away. A watch wakes its future when its
//! word no longer holds the value it was registered with, when its
//! descriptor is ready, or when its recheck time comes (so a future whose
//! waker died between changing the state and calling `wake` looks again,
//! as blocking waits do after each sleep slice).
//!
//! A word watched in [`Wake::One`] mode wakes one future per change, the
//! oldest; that future passes the turn on ([`Watching::finish`]) if it
//! leaves something for the next, or if it is dropped before it looked.
//! Other watchers of that word absorb the change, so a herd of futures
//! waiting for items is not woken for each item.
#![allow(unsafe_code)] // raw word pointers kept valid by `Keep`: see SAFETY comments

use std::any::Any;
use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::os;

/// What keeps a watched word's memory mapped while it is watched.
pub(crate) type Keep = Arc<dyn Any + Send + Sync>;

/// How many distinct words one thread sleeps on (the kernel takes 128
/// words in one `futex_waitv`; one is the thread's control word).
const WORDS_PER_THREAD: usize = 127;

/// How a change of a watched word wakes its watchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Every watcher (an event set, a ring closed).
    All,
    /// The oldest watcher only (an item or a permit came).
    One,
}

/// What a watch waits for.
#[derive(Debug)]
pub(crate) enum Source {
    /// A word to change from `expected`.
    Word { word: *const AtomicU32, expected: u32, keep: Keep, wake: Wake },
    /// Any of these words to change from its value (each kept mapped by
    /// the `Keep` at its index); wakes its watcher as [`Wake::All`].
    Words(Vec<(*const AtomicU32, u32)>, Vec<Keep>),
    /// Any of these descriptors to become readable (paired with `true`:
    /// writable), hung up or in error.
    Fds(Vec<(Arc<OwnedFd>, bool)>),
    /// A wait list in this process's memory, whose wakers call it
    /// directly: no reactor thread in between.
    List(Arc<WaitList>, Wake),
    /// Nothing: only the recheck time.
    Timer,
}

// SAFETY: `word` points into memory that `keep` holds mapped; the word is
// an atomic, which any thread may access.
unsafe impl Send for Source {}

impl Source {
    /// A watch of several words (each in memory one of `keeps` keeps
    /// mapped) for any change from the value paired with it.
    pub(crate) fn words<'a>(
        words: impl Iterator<Item = (&'a AtomicU32, u32)>,
        keeps: Vec<Keep>,
    ) -> Self {
        Self::Words(words.map(|(w, v)| (std::ptr::from_ref(w), v)).collect(), keeps)
    }

    /// A watch of descriptors (copied, so the watch never outlives them):
    /// readable, or writable for those paired with `true`.
    pub(crate) fn fds(fds: &[(std::os::fd::BorrowedFd<'_>, bool)]) -> std::io::Result<Self> {
        let fds = fds
            .iter()
            .map(|(fd, write)| Ok((Arc::new(fd.try_clone_to_owned()?), *write)))
            .collect::<std::io::Result<_>>()?;
        Ok(Self::Fds(fds))
    }

    /// A watch of `word` (which lives in memory that `keep` keeps mapped)
    /// for a change from `expected`.
    pub(crate) fn word(word: &AtomicU32, expected: u32, keep: Keep, wake: Wake) -> Self {
        Self::Word { word: std::ptr::from_ref(word), expected, keep, wake }
    }
}

struct Watch {
    source: Source,
    waker: Waker,
    recheck: Option<Instant>,
    fired: bool,
}

#[derive(Default)]
struct Table {
    watches: BTreeMap<u64, Watch>,
    next: u64,
}

/// One reactor thread and what it watches.
struct Shard {
    table: Mutex<Table>,
    /// Bumped (and woken) when the table changes; futex shards sleep on it.
    control: AtomicU32,
    /// Fd shards sleep on this too.
    bell: Option<os::Waker>,
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        self.control.fetch_add(1, Ordering::SeqCst);
        match &self.bell {
            Some(bell) => bell.wake(),
            None => {
                os::futex_wake(&self.control, 1);
            }
        }
    }

    /// Distinct words this shard watches.
    fn words(table: &Table) -> usize {
        let mut keys: Vec<usize> = table
            .watches
            .values()
            .filter(|w| !w.fired)
            .flat_map(|w| match &w.source {
                Source::Word { word, .. } => vec![*word as usize],
                Source::Words(list, _) => list.iter().map(|(word, _)| *word as usize).collect(),
                _ => Vec::new(),
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys.len()
    }

    fn holds_word(table: &Table, key: usize) -> bool {
        table
            .watches
            .values()
            .any(|w| matches!(&w.source, Source::Word { word, .. } if *word as usize == key))
    }
}

/// The reactor of this process (made anew in a forked child, whose copy
/// has no threads). Reactors live as long as their process.
struct Reactor {
    generation: u64,
    words: Mutex<Vec<Arc<Shard>>>,
    fds: Arc<Shard>,
    /// The owner id of the descriptor thread (0 until it runs): the owner
    /// of what this process's awaiting tasks hold (see [`owner_id`]).
    owner: AtomicU32,
}

fn reactor() -> &'static Reactor {
    static CURRENT: AtomicPtr<Reactor> = AtomicPtr::new(std::ptr::null_mut());
    let generation = os::fork_generation();
    let current = CURRENT.load(Ordering::Acquire);
    // SAFETY: `CURRENT` only ever holds null or a leaked, never freed
    // `Reactor`.
    if let Some(reactor) = unsafe { current.as_ref() }
        && reactor.generation == generation
    {
        return reactor;
    }
    // No lock here: one held by another thread at a fork stays held in the
    // child. Racing threads each make one; the loser's is leaked unused.
    let fds = Arc::new(Shard {
        table: Mutex::default(),
        control: AtomicU32::new(0),
        bell: Some(os::Waker::new().expect("an eventfd for the async reactor")),
    });
    let made: &'static Reactor = Box::leak(Box::new(Reactor {
        generation,
        words: Mutex::default(),
        fds,
        owner: AtomicU32::new(0),
    }));
    let ptr = std::ptr::from_ref(made).cast_mut();
    match CURRENT.compare_exchange(current, ptr, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            let shard = Arc::clone(&made.fds);
            crate::process::spawn_helper("multiproc-fds", move || {
                made.owner.store(crate::shm::park::tid(), Ordering::SeqCst);
                run_fds(&shard);
            })
            .expect("a thread for the async reactor");
            made
        }
        Err(_) => reactor(),
    }
}

impl Reactor {
    /// The shard for a new watch of `source`.
    fn shard_for(&self, source: &Source) -> Arc<Shard> {
        let (key, need) = match source {
            Source::Word { word, .. } => (Some(*word as usize), 1),
            Source::Words(list, _) => (None, list.len()),
            _ => return Arc::clone(&self.fds),
        };
        let mut shards = self.words.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = key
            && let Some(shard) = shards.iter().find(|s| Shard::holds_word(&s.lock(), key))
        {
            return Arc::clone(shard);
        }
        let fits = |s: &Arc<Shard>| Shard::words(&s.lock()) + need <= WORDS_PER_THREAD;
        if let Some(shard) = shards.iter().find(|s| fits(s)) {
            return Arc::clone(shard);
        }
        let shard =
            Arc::new(Shard { table: Mutex::default(), control: AtomicU32::new(0), bell: None });
        let thread_shard = Arc::clone(&shard);
        crate::process::spawn_helper("multiproc-words", move || run_words(&thread_shard))
            .expect("a thread for the async reactor");
        shards.push(Arc::clone(&shard));
        shard
    }
}

/// The owner id (see `park::tid`) under which this process's awaiting
/// tasks hold locks and barrier places: a task moves between threads, so
/// what it holds belongs to a thread that lives as long as the process
/// and takes nothing itself, the reactor's descriptor thread. (Not the
/// main thread's: a thread's own blocking `RLock` would take a task's hold
/// for its own.)
pub(crate) fn owner_id() -> u32 {
    let reactor = reactor();
    loop {
        let owner = reactor.owner.load(Ordering::SeqCst);
        if owner != 0 {
            return owner;
        }
        std::thread::yield_now();
    }
}

/// A registered watch; dropping it unregisters it (and, in
/// [`Wake::One`] mode, passes a turn it was given on to the next watcher).
#[derive(Debug)]
pub(crate) enum Watching {
    Reactor(Registered),
    List(Listed),
}

/// A watch registered with the reactor.
pub(crate) struct Registered {
    shard: Arc<Shard>,
    id: u64,
    done: bool,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Watches `source` for the future whose waker is `waker`, looking again
/// after `recheck` at the latest (not for a wait list, whose wakers never
/// miss it).
pub(crate) fn watch(source: Source, waker: &Waker, recheck: Option<Duration>) -> Watching {
    if let Source::List(list, wake) = source {
        return Watching::List(list.register(waker, wake));
    }
    Watching::Reactor(register(source, waker, recheck))
}

impl Watching {
    /// Whether the watch fired (its future was woken for it).
    pub(crate) fn fired(&self) -> bool {
        match self {
            Self::Reactor(r) => r.fired(),
            Self::List(l) => l.fired(),
        }
    }

    /// Makes `waker` the one to wake.
    pub(crate) fn set_waker(&self, waker: &Waker) {
        match self {
            Self::Reactor(r) => r.set_waker(waker),
            Self::List(l) => l.set_waker(waker),
        }
    }

    /// Ends the watch (see [`Registered::finish`]).
    pub(crate) fn finish(self, more: bool) {
        match self {
            Self::Reactor(r) => r.finish(more),
            Self::List(l) => l.finish(more),
        }
    }
}

fn register(source: Source, waker: &Waker, recheck: Option<Duration>) -> Registered {
    let shard = reactor().shard_for(&source);
    let id = {
        let mut table = shard.lock();
        let id = table.next;
        table.next += 1;
        let recheck = recheck.and_then(|r| Instant::now().checked_add(r));
        table.watches.insert(id, Watch { source, waker: waker.clone(), recheck, fired: false });
        id
    };
    shard.changed();
    Registered { shard, id, done: false }
}

impl Registered {
    /// Whether the watch fired (its future was woken for it).
    pub(crate) fn fired(&self) -> bool {
        self.shard.lock().watches.get(&self.id).is_none_or(|w| w.fired)
    }

    /// Makes `waker` the one to wake, if the future moved to another task
    /// context.
    pub(crate) fn set_waker(&self, waker: &Waker) {
        if let Some(watch) = self.shard.lock().watches.get_mut(&self.id)
            && !watch.waker.will_wake(waker)
        {
            watch.waker = waker.clone();
        }
    }

    /// Ends the watch: `more` when its future took what it waited for and
    /// left more behind (the next [`Wake::One`] watcher of the word gets
    /// its turn).
    pub(crate) fn finish(mut self, more: bool) {
        self.done = true;
        self.end(more);
    }

    fn end(&self, more: bool) {
        let wakers = {
            let mut table = self.shard.lock();
            let Some(watch) = table.watches.remove(&self.id) else { return };
            let Source::Word { word, wake: Wake::One, .. } = watch.source else { return };
            // Dropped after it was given the turn, before it took it: the
            // turn goes on.
            if !(more || watch.fired && !self.done) {
                return;
            }
            let next = table.watches.values_mut().find(|w| {
                !w.fired
                    && matches!(w.source, Source::Word { word: other, wake: Wake::One, .. } if other == word)
            });
            next.map(|w| {
                w.fired = true;
                w.waker.clone()
            })
        };
        if let Some(waker) = wakers {
            waker.wake();
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if !self.done {
            self.end(false);
        }
    }
}

/// Futures of this process waiting for one object, woken by whoever
/// changes it in this process (a channel whose ends are all here): FIFO,
/// with the turn of [`Wake::One`] watchers as in the reactor. Every
/// operation is O(1) (amortized), so a million waiters cost memory only.
#[derive(Debug, Default)]
pub(crate) struct WaitList {
    /// Entries not fired yet, oldest first; those that left meanwhile are
    /// dropped as they reach the front.
    queue: Mutex<std::collections::VecDeque<Arc<ListEntry>>>,
    /// Entries not fired yet, read without the lock by wakers.
    waiting: std::sync::atomic::AtomicUsize,
    /// Set once the object is no longer changed only here (a channel that
    /// became shared): a late registration fires at once, so that its
    /// future waits elsewhere.
    retired: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct ListEntry {
    waker: Mutex<Waker>,
    wake: Wake,
    /// Woken (and out of the waiting count).
    fired: std::sync::atomic::AtomicBool,
    /// Its future stopped waiting.
    left: std::sync::atomic::AtomicBool,
}

impl ListEntry {
    /// Fires it unless it fired or left: its waker, to call.
    fn fire(&self, list: &WaitList) -> Option<Waker> {
        if self.left.load(Ordering::SeqCst) || self.fired.swap(true, Ordering::SeqCst) {
            return None;
        }
        list.waiting.fetch_sub(1, Ordering::SeqCst);
        Some(self.waker.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

impl WaitList {
    fn lock(&self) -> MutexGuard<'_, std::collections::VecDeque<Arc<ListEntry>>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(self: &Arc<Self>, waker: &Waker, wake: Wake) -> Listed {
        let entry = Arc::new(ListEntry {
            waker: Mutex::new(waker.clone()),
            wake,
            fired: std::sync::atomic::AtomicBool::new(false),
            left: std::sync::atomic::AtomicBool::new(false),
        });
        {
            let mut queue = self.lock();
            self.waiting.fetch_add(1, Ordering::SeqCst);
            queue.push_back(Arc::clone(&entry));
        }
        let listed = Listed { list: Arc::clone(self), entry, done: false };
        if self.retired.load(Ordering::SeqCst)
            && let Some(waker) = listed.entry.fire(self)
        {
            waker.wake();
        }
        listed
    }

    /// The object is no longer changed only in this process: wakes every
    /// waiter, now and from now on.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    /// Whether anyone waits (after a fence: a change made before this is
    /// seen by a waiter that registers after it).
    #[inline]
    fn anyone(&self) -> bool {
        std::sync::atomic::fence(Ordering::SeqCst);
        self.waiting.load(Ordering::SeqCst) > 0
    }

    /// Wakes the oldest waiter, and [`Wake::All`] waiters older than the
    /// oldest [`Wake::One`] one.
    #[inline]
    pub(crate) fn wake_one(&self) {
        if self.anyone() {
            self.wake(false);
        }
    }

    /// Wakes every waiter.
    #[inline]
    pub(crate) fn wake_all(&self) {
        if self.anyone() {
            self.wake(true);
        }
    }

    #[cold]
    fn wake(&self, all: bool) {
        let mut wake = Vec::new();
        {
            let mut queue = self.lock();
            while let Some(entry) = queue.pop_front() {
                if let Some(waker) = entry.fire(self) {
                    wake.push(waker);
                    if !all && entry.wake == Wake::One {
                        break;
                    }
                }
            }
        }
        for waker in wake {
            waker.wake();
        }
    }
}

/// A future's entry in a [`WaitList`].
#[derive(Debug)]
pub(crate) struct Listed {
    list: Arc<WaitList>,
    entry: Arc<ListEntry>,
    done: bool,
}

impl Listed {
    fn fired(&self) -> bool {
        self.entry.fired.load(Ordering::SeqCst)
    }

    fn set_waker(&self, waker: &Waker) {
        let mut mine = self.entry.waker.lock().unwrap_or_else(PoisonError::into_inner);
        if !mine.will_wake(waker) {
            *mine = waker.clone();
        }
    }

    fn finish(mut self, more: bool) {
        self.done = true;
        self.end(more);
    }

    fn end(&self, more: bool) {
        if self.entry.left.swap(true, Ordering::SeqCst) {
            return;
        }
        let fired = self.entry.fired.swap(true, Ordering::SeqCst);
        if !fired {
            // It leaves the queue when it reaches the front, or when those
            // that left make up half of it (futures that keep timing out
            // on an idle object must not grow it without bound).
            self.list.waiting.fetch_sub(1, Ordering::SeqCst);
            let mut queue = self.list.lock();
            let waiting = self.list.waiting.load(Ordering::SeqCst);
            if queue.len() > 2 * waiting + 16 {
                queue.retain(|e| !e.left.load(Ordering::SeqCst) && !e.fired.load(Ordering::SeqCst));
            }
        }
        // As in the reactor: a turn not taken goes on.
        if self.entry.wake == Wake::One && (more || fired && !self.done) {
            self.list.wake_one();
        }
    }
}

impl Drop for Listed {
    fn drop(&mut self) {
        if !self.done {
            self.end(false);
        }
    }
}

/// A word to sleep on: where it is, the value to sleep while it holds, and
/// what keeps it mapped.
type SleepOn = (*const AtomicU32, u32, Keep);

/// Marks due watches fired and collects their wakers; returns the words to
/// sleep on and the earliest recheck.
fn scan(table: &mut Table) -> (Vec<Waker>, Vec<SleepOn>, Option<Instant>) {
    let now = Instant::now();
    let mut wake = Vec::new();
    let mut words: Vec<SleepOn> = Vec::new();
    let mut turned: Vec<*const AtomicU32> = Vec::new();
    let mut earliest: Option<Instant> = None;
    for watch in table.watches.values_mut() {
        if watch.fired {
            continue;
        }
        let due = watch.recheck.is_some_and(|r| r <= now);
        let fire = match &mut watch.source {
            _ if due => true,
            Source::Word { word, expected, keep, wake: mode } => {
                // SAFETY: `keep` holds the word's memory mapped.
                let current = unsafe { &**word }.load(Ordering::SeqCst);
                let fire = current != *expected && (*mode == Wake::All || !turned.contains(word));
                if fire {
                    turned.push(*word);
                } else {
                    // Unchanged, or another watcher of the word has this
                    // change's turn: sleep on the word as it is now.
                    *expected = current;
                    if !words.iter().any(|(w, _, _)| w == word) {
                        words.push((*word, current, Arc::clone(keep)));
                    }
                }
                fire
            }
            Source::Words(list, keeps) => {
                // SAFETY: `keeps` hold every word's memory mapped.
                let fire = list.iter().any(|&(w, v)| unsafe { &*w }.load(Ordering::SeqCst) != v);
                if !fire {
                    for (&(w, v), keep) in list.iter().zip(keeps.iter()) {
                        if !words.iter().any(|(x, _, _)| *x == w) {
                            words.push((w, v, Arc::clone(keep)));
                        }
                    }
                }
                fire
            }
            Source::Fds(_) | Source::Timer | Source::List(..) => false,
        };
        if fire {
            watch.fired = true;
            wake.push(watch.waker.clone());
        } else if let Some(recheck) = watch.recheck {
            earliest = Some(earliest.map_or(recheck, |e| e.min(recheck)));
        }
    }
    (wake, words, earliest)
}

fn run_words(shard: &Shard) {
    loop {
        let control = shard.control.load(Ordering::SeqCst);
        let (wake, words, earliest) = scan(&mut shard.lock());
        for waker in wake {
            waker.wake();
        }
        let mut list: Vec<(&AtomicU32, u32)> = Vec::with_capacity(words.len() + 1);
        list.push((&shard.control, control));
        for (word, expected, _keep) in &words {
            // SAFETY: `_keep` (held in `words` until after the sleep) holds
            // the word's memory mapped.
            list.push((unsafe { &**word }, *expected));
        }
        let timeout = earliest.map(|e| e.saturating_duration_since(Instant::now()));
        if timeout.is_some_and(|t| t.is_zero()) {
            continue;
        }
        os::futex_wait_any(&list, timeout);
    }
}

fn run_fds(shard: &Shard) {
    let bell = shard.bell.as_ref().expect("an fd shard has a bell");
    loop {
        let (wake, watched, earliest) = {
            let mut table = shard.lock();
            let (wake, _, earliest) = scan(&mut table);
            // Clones of the descriptors: a watch removed meanwhile does
            // not close one we poll.
            let watched: Vec<(u64, Arc<OwnedFd>, bool)> = table
                .watches
                .iter()
                .filter(|(_, w)| !w.fired)
                .flat_map(|(id, w)| match &w.source {
                    Source::Fds(fds) => {
                        fds.iter().map(|(fd, write)| (*id, Arc::clone(fd), *write)).collect()
                    }
                    _ => Vec::new(),
                })
                .collect();
            (wake, watched, earliest)
        };
        for waker in wake {
            waker.wake();
        }
        let mut list: Vec<(std::os::fd::BorrowedFd<'_>, bool)> =
            watched.iter().map(|(_, fd, write)| (fd.as_fd(), *write)).collect();
        list.push((bell.as_fd(), false));
        let flags = match os::wait_fds(&list, earliest) {
            Ok(flags) => flags,
            Err(_) => {
                // Out of memory for the poll set, or a descriptor limit:
                // look again soon rather than spin.
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        bell.drain();
        let Some(flags) = flags else { continue };
        let mut table = shard.lock();
        let mut wake = Vec::new();
        for ((id, _, _), ready) in watched.iter().zip(flags) {
            if let Some(watch) = table.watches.get_mut(id).filter(|w| ready && !w.fired) {
                watch.fired = true;
                wake.push(watch.waker.clone());
            }
        }
        drop(table);
        for waker in wake {
            waker.wake();
        }
    }
}
