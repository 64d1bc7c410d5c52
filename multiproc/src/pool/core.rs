//! The parent's side of a pool: the task table, the workers, and the two
//! helper threads.
//!
//! - Callers put tasks on the shared task queue, which idle workers pull
//!   from, after filing them in the task table (so a result can never come
//!   back for a task the table does not know).
//! - A caller that waits for a result reads the result queue itself, if no
//!   other caller does (it *leads*): it files what it reads in the jobs it
//!   belongs to, its own or others', and leaves once its own is ready. A
//!   round trip then wakes no third thread. Notes, and results whose job
//!   has a callback, it hands to the collector.
//! - The *collector* thread reads the result queue while no caller leads
//!   (it sleeps meanwhile, and counts as a waiter for results only while
//!   nobody leads, so a worker's put wakes it only then): finished chunks,
//!   which it files in their jobs, and notes from the *watcher* thread, which waits
//!   on the workers' pidfds and posts an `EXITED` note on the same queue when
//!   one ends. Since a worker's last results are in the queue before it
//!   dies, the note comes after them: by then, the worker's slot in shared
//!   memory names the task (and the item of it) that it died in, if any.
//!   That item fails with [`Error::WorkerDied`] (or runs again, if retries
//!   are allowed), the other items of its chunk run again, and the
//!   collector starts a replacement.
#![allow(unsafe_code)] // forking workers: see the SAFETY comment

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::closures;
use super::job::{Failure, Job, JobState, Piece, Signal};
use super::wire;
use super::worker::{self, WorkerArgs};
use crate::os::{self, Waker};
use crate::process::Process;
use crate::queue::raw::{PutFail, RawQueue, Wait};
use crate::{Error, RawArray, Result, StartMethod};

/// Cancel words (tasks that may be cancelled at once, as futures).
pub(crate) const CANCEL_WORDS: usize = 4096;
/// Rings of the idle workers' bell that may wait unheard (more would wake
/// no one more).
const BELL_RINGS: usize = 4;

/// A pool's fixed settings.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) processes: usize,
    pub(crate) method: StartMethod,
    pub(crate) max_tasks: u64,
    pub(crate) retries: u32,
    pub(crate) init: Option<Vec<u8>>,
    /// The descriptors of the initializer's argument.
    pub(crate) init_fds: Vec<std::os::fd::OwnedFd>,
    /// A registered initializer closure, kept while the pool lives.
    pub(crate) init_closure: Option<u64>,
}

/// A task filed in the table: enough to run it again.
#[derive(Debug)]
struct TaskInfo {
    job: Arc<Job>,
    start: usize,
    count: u32,
    msg: Arc<Vec<u8>>,
    retries: u32,
    cancel: u32,
    cancelled: bool,
}

#[derive(Debug, Default)]
struct Inner {
    table: HashMap<u64, TaskInfo>,
    workers: Vec<Option<Arc<Process<()>>>>,
    live: usize,
    spawning: usize,
    closed: bool,
    broken: Option<String>,
    feeders: usize,
    ring_closed: bool,
    free_cancel: Vec<u32>,
    requeue: Vec<u64>,
    /// Messages a leading caller read and left to the collector.
    deferred: Vec<(wire::ResultHeader, Vec<u8>)>,
    /// Deliveries a leading caller left to the collector (their jobs have
    /// callbacks, which run on the collector thread).
    deferred_deliveries: Deliveries,
    collector_done: bool,
    watcher_done: bool,
}

/// Deliveries made once the table's lock is released (they may run user
/// callbacks).
type Deliveries = Vec<(Arc<Job>, Piece)>;

/// `LocalCore::lead` bit: a caller reads the result queue.
const LEADER: u32 = 1;
/// `LocalCore::lead` bit: the collector counts among the result queue's waiters.
const WATCHING: u32 = 2;

/// A caller's turn to read the result queue: handed back to the
/// collector when dropped.
struct Leading<'a>(&'a LocalCore);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.0.unlead();
    }
}

/// Everything the pool's handles and threads share.
pub(crate) struct LocalCore {
    pub(crate) config: Config,
    tasks: RawQueue,
    results: RawQueue,
    /// Wakes an idle worker (see `WorkerArgs::waiter`).
    bell: RawQueue,
    state: RawArray<u64>,
    inner: Mutex<Inner>,
    next_task: AtomicU64,
    terminated: AtomicBool,
    /// Who reads the result queue: [`LEADER`] and [`WATCHING`] bits.
    lead: AtomicU32,
    /// Notified when the helper threads end, and on close and terminate.
    pub(crate) signal: Signal,
    waker: Waker,
}

impl LocalCore {
    /// Creates the queues and starts the workers and the helper threads.
    pub(crate) fn start(config: Config) -> Result<Arc<Self>> {
        let n = config.processes;
        // The slots, the cancel words, and the waiter word.
        let state = RawArray::<u64>::new(worker::SLOT_WORDS * n + CANCEL_WORDS + 1)?;
        let inner = Inner {
            workers: (0..n).map(|_| None).collect(),
            free_cancel: (0..CANCEL_WORDS as u32).rev().collect(),
            ..Inner::default()
        };
        let core = Arc::new(Self {
            config,
            tasks: RawQueue::create(0, crate::queue::raw::DEFAULT_RING)?,
            results: RawQueue::create(0, crate::queue::raw::DEFAULT_RING)?,
            bell: RawQueue::create(BELL_RINGS, 4096)?,
            state,
            inner: Mutex::new(inner),
            next_task: AtomicU64::new(1),
            terminated: AtomicBool::new(false),
            lead: AtomicU32::new(0),
            signal: Signal::default(),
            waker: Waker::new().map_err(Error::os("create an eventfd"))?,
        });
        // Start every worker first (a fork pool forks before its helper
        // threads exist), then the threads.
        let mut started = Vec::with_capacity(n);
        let mut failed = None;
        for spawned in core.spawn_workers(n) {
            match spawned {
                Ok(p) => started.push(Arc::new(p)),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            for p in &started {
                let _ = p.kill();
            }
            return Err(e);
        }
        {
            let mut inner = core.lock();
            inner.live = started.len();
            for (slot, p) in started.into_iter().enumerate() {
                inner.workers[slot] = Some(p);
            }
        }
        let collector = Arc::clone(&core);
        let watcher = Arc::clone(&core);
        let spawned = crate::process::spawn_helper("multiproc-pool", move || collector.collect())
            .and_then(|()| {
                crate::process::spawn_helper("multiproc-pool-watch", move || watcher.watch())
            });
        if let Err(e) = spawned {
            core.terminate();
            return Err(Error::Os { op: "start the pool's threads", address: None, source: e });
        }
        Ok(core)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the workers of slots `0..n`, in that order. Re-executed
    /// workers start several at a time (each start waits in the kernel
    /// until the child has executed); a fork pool forks from this thread
    /// alone, one after the other.
    fn spawn_workers(&self, n: usize) -> Vec<Result<Process<()>>> {
        let at_once = n.min(crate::cpu_count().max(2));
        if self.config.method == StartMethod::Fork || at_once < 2 {
            return (0..n).map(|slot| self.spawn_worker(slot as u32)).collect();
        }
        let mut out: Vec<Option<Result<Process<()>>>> = (0..n).map(|_| None).collect();
        std::thread::scope(|scope| {
            let lanes: Vec<_> = (1..at_once)
                .map(|lane| {
                    scope.spawn(move || {
                        (lane..n)
                            .step_by(at_once)
                            .map(|slot| (slot, self.spawn_worker(slot as u32)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for slot in (0..n).step_by(at_once) {
                out[slot] = Some(self.spawn_worker(slot as u32));
            }
            for lane in lanes {
                if let Ok(spawned) = lane.join() {
                    for (slot, p) in spawned {
                        out[slot] = Some(p);
                    }
                }
            }
        });
        out.into_iter()
            .map(|p| p.unwrap_or(Err(Error::Unsupported { reason: "a worker's start panicked" })))
            .collect()
    }

    /// The state word naming the worker that waits on the task queue.
    fn waiter_word(&self) -> usize {
        worker::SLOT_WORDS * self.config.processes + CANCEL_WORDS
    }

    /// After a put: if no worker waits on the task queue now, wakes an
    /// idle one (a worker that takes a task lets go of the queue, then
    /// rings if tasks are left: between the two, one of them rings).
    fn ring_idle(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.state.load(self.waiter_word()) == 0 && !self.bell.has_data() {
            let _ = self.bell.put_payload(&[1u8][..], 0, Wait::Never);
        }
    }

    fn spawn_worker(&self, slot: u32) -> Result<Process<()>> {
        let init_fds = self
            .config
            .init_fds
            .iter()
            .map(|fd| fd.try_clone().map(crate::FdHandle::new))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(Error::os("duplicate a descriptor for a worker"))?;
        let args = WorkerArgs {
            init_fds,
            tasks: self.tasks.clone(),
            results: self.results.clone(),
            state: self.state.clone(),
            slot,
            cancel_base: (worker::SLOT_WORDS * self.config.processes) as u64,
            waiter: self.waiter_word() as u64,
            bell: self.bell.clone(),
            init: self.config.init.clone(),
            max_tasks: self.config.max_tasks,
        };
        let builder = Process::builder().daemon(true).name(format!("PoolWorker-{}", slot + 1));
        match self.config.method {
            StartMethod::Fork => {
                let known = closures::snapshot();
                // The arguments travel encoded, as `Builder::spawn` does it.
                let encoded = crate::transfer::codec::encode(&args)?;
                drop(args);
                let body = move || match crate::transfer::codec::decode::<WorkerArgs>(
                    &encoded.bytes,
                    encoded.fds,
                ) {
                    Ok(args) => worker::run(args, &known),
                    Err(e) => panic!("the worker's arguments did not decode: {e}"),
                };
                // SAFETY: the pool refused (at `build`) to fork a process
                // with threads other than multiproc's, unless the caller
                // took the hazard with `PoolBuilder::allow_threaded_fork`.
                // Later forks (replacements) come from the pool's own
                // thread; the child runs only the worker loop, which touches
                // its arguments (shared memory), the closure registry copy
                // taken above, the allocator, and the task functions, as
                // documented on `PoolBuilder::start_method`.
                unsafe { builder.fork_closure_unchecked(body) }
            }
            method => builder.start_method(method).spawn(worker::worker_main, args),
        }
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.terminated.load(Ordering::SeqCst)
    }

    /// Refuses new work if the pool is closed, terminated or broken.
    pub(crate) fn check_open(&self) -> Result<()> {
        let inner = self.lock();
        if self.is_terminated() {
            Err(Error::PoolTerminated)
        } else if let Some(message) = &inner.broken {
            Err(Error::PoolBroken { message: message.clone() })
        } else if inner.closed {
            Err(Error::PoolClosed)
        } else {
            Ok(())
        }
    }

    /// Submits a task (a chunk of `count` items of `job` from `start`).
    /// On failure, the chunk's items have failed in the job too.
    pub(crate) fn submit(
        &self,
        job: &Arc<Job>,
        start: usize,
        count: u32,
        msg: Vec<u8>,
        cancellable: bool,
    ) -> Result<u64> {
        let mut msg = msg;
        wire::set_count(&mut msg, count);
        let id = self.next_task.fetch_add(1, Ordering::Relaxed);
        let msg = {
            let mut inner = self.lock();
            let refused = if self.is_terminated() {
                Some(Failure::Terminated)
            } else {
                inner.broken.as_ref().map(|m| Failure::Broken(m.clone()))
            };
            if let Some(failure) = refused {
                drop(inner);
                let error = failure.to_error();
                self.deliver_all(vec![(
                    Arc::clone(job),
                    Piece { start, count: count as usize, body: Err(failure) },
                )]);
                return Err(error);
            }
            let cancel = if cancellable { inner.free_cancel.pop() } else { None };
            let cancel = match cancel {
                Some(word) => {
                    self.state.store(self.cancel_index(word), worker::PENDING);
                    word
                }
                None => wire::NO_CANCEL,
            };
            wire::set_id(&mut msg, id, cancel);
            let msg = Arc::new(msg);
            inner.table.insert(
                id,
                TaskInfo {
                    job: Arc::clone(job),
                    start,
                    count,
                    msg: Arc::clone(&msg),
                    retries: self.config.retries,
                    cancel,
                    cancelled: false,
                },
            );
            msg
        };
        let keep_going = || !self.is_terminated();
        match self.tasks.put_payload_while(&msg[..], 0, &keep_going, None) {
            Ok(()) => {
                self.ring_idle();
                Ok(id)
            }
            Err(fail) => {
                let error = match fail {
                    PutFail::Failed(e) => e,
                    _ => Error::PoolTerminated,
                };
                let removed = self.lock().table.remove(&id);
                if let Some(info) = removed {
                    let failure = match &error {
                        Error::PoolTerminated => Failure::Terminated,
                        e => Failure::NotSent(e.to_string()),
                    };
                    let piece = Piece { start, count: count as usize, body: Err(failure) };
                    self.deliver_all(vec![(info.job, piece)]);
                }
                Err(error)
            }
        }
    }

    fn cancel_index(&self, word: u32) -> usize {
        worker::SLOT_WORDS * self.config.processes + word as usize
    }

    /// Cancels task `id` if no worker has started it; whether it did.
    pub(crate) fn cancel(&self, id: u64) -> bool {
        let job = {
            let mut inner = self.lock();
            let Some(info) = inner.table.get_mut(&id) else { return false };
            if info.cancelled {
                return true;
            }
            if info.cancel == wire::NO_CANCEL {
                return false;
            }
            let index = self.cancel_index(info.cancel);
            if self.state.compare_exchange(index, worker::PENDING, worker::CANCELLED).is_err() {
                return false;
            }
            info.cancelled = true;
            (Arc::clone(&info.job), info.start, info.count)
        };
        let piece = Piece { start: job.1, count: job.2 as usize, body: Err(Failure::Cancelled) };
        self.deliver_all(vec![(job.0, piece)]);
        true
    }

    /// Whether a worker runs task `id` now.
    pub(crate) fn running(&self, id: u64) -> bool {
        (0..self.config.processes).any(|slot| self.state.load(worker::SLOT_WORDS * slot) == id)
    }

    /// Every task still in the table that may be cancelled.
    pub(crate) fn cancellable_tasks(&self) -> Vec<u64> {
        let inner = self.lock();
        inner
            .table
            .iter()
            .filter(|(_, info)| info.cancel != wire::NO_CANCEL && !info.cancelled)
            .map(|(&id, _)| id)
            .collect()
    }

    /// A lazy feeder (imap) starts or stops.
    pub(crate) fn feeder(&self, starts: bool) {
        let mut inner = self.lock();
        if starts {
            inner.feeders += 1;
        } else {
            inner.feeders = inner.feeders.saturating_sub(1);
            self.maybe_close_ring(&mut inner);
        }
    }

    /// Python's `close`: no new work; the workers exit once the work is done.
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        self.maybe_close_ring(&mut inner);
        drop(inner);
        self.signal.notify();
    }

    fn maybe_close_ring(&self, inner: &mut Inner) {
        if inner.closed && !inner.ring_closed && inner.table.is_empty() && inner.feeders == 0 {
            inner.ring_closed = true;
            self.tasks.ring().close();
            self.bell.ring().close();
            self.waker.wake();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed || self.is_terminated()
    }

    /// Python's `terminate`: kills every worker now; every pending task
    /// fails with [`Error::PoolTerminated`].
    pub(crate) fn terminate(&self) {
        let (deliveries, workers) = {
            let mut inner = self.lock();
            self.terminated.store(true, Ordering::SeqCst);
            inner.closed = true;
            inner.ring_closed = true;
            self.tasks.ring().close();
            self.bell.ring().close();
            let deliveries = Self::fail_all(&mut inner, &Failure::Terminated);
            let workers: Vec<_> = inner.workers.iter().flatten().cloned().collect();
            (deliveries, workers)
        };
        for p in &workers {
            let _ = p.kill();
        }
        self.waker.wake();
        let _ = self.results.put_payload(&wire::begin_result(wire::WAKE, 0, 0)[..], 0, Wait::Never);
        self.deliver_all(deliveries);
        self.results.ring().wake_data_waiters();
        self.signal.notify();
    }

    fn fail_all(inner: &mut Inner, failure: &Failure) -> Deliveries {
        inner.requeue.clear();
        inner
            .table
            .drain()
            .filter(|(_, info)| !info.cancelled)
            .map(|(_, info)| {
                let piece = Piece {
                    start: info.start,
                    count: info.count as usize,
                    body: Err(failure.clone()),
                };
                (info.job, piece)
            })
            .collect()
    }

    /// Files `deliveries` in their jobs (running their callbacks), then
    /// makes sure a leading caller looks at its job again.
    fn deliver_all(&self, deliveries: Deliveries) {
        if deliveries.is_empty() {
            return;
        }
        for (job, piece) in deliveries {
            job.deliver(piece);
        }
        self.nudge_leader();
    }

    /// Wakes the leading caller, if any, with a message on the result
    /// queue: it may be waiting there for a job that was just filed by
    /// someone else. (A caller sets [`LEADER`] before it looks at its job,
    /// and a delivery is filed before this looks at the bit: one of the two
    /// sees the other.)
    fn nudge_leader(&self) {
        if self.lead.load(Ordering::SeqCst) & LEADER != 0 {
            let wake = wire::begin_result(wire::WAKE, 0, 0);
            let _ = self.results.put_payload(&wake[..], 0, Wait::Never);
        }
    }

    /// Waits until both helper threads ended (every worker is reaped).
    pub(crate) fn join(&self, deadline: Option<Instant>) -> Result<bool> {
        if !self.is_closed() {
            return Err(Error::PoolRunning);
        }
        Ok(self.signal.wait_for(deadline, || {
            let inner = self.lock();
            inner.collector_done && inner.watcher_done
        }))
    }

    /// The pids of the live workers.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.lock().workers.iter().flatten().map(|p| p.pid()).collect()
    }

    // ---- reading the result queue: leading callers ----

    /// Waits until `ready(job's state)` holds or `deadline` passes; returns
    /// the state locked, and whether it is ready. While it waits, the
    /// caller reads the result queue itself if no other caller does.
    /// `ready` is called with the job locked, after every message the
    /// caller files: it may take the pieces in (and decode them there,
    /// while the workers go on).
    pub(crate) fn wait_job<'j>(
        &self,
        job: &'j Job,
        deadline: Option<Instant>,
        mut ready: impl FnMut(&mut JobState) -> bool,
    ) -> (MutexGuard<'j, JobState>, bool) {
        loop {
            let seen = job.signal.seen();
            {
                let mut state = job.lock();
                if ready(&mut state) {
                    return (state, true);
                }
            }
            if self.try_lead() {
                let led = {
                    // Handed back also if `ready` panics (it may decode).
                    let _leading = Leading(self);
                    self.lead_until(job, deadline, &mut ready)
                };
                if let Some(done) = led {
                    let mut state = job.lock();
                    let ok = done || ready(&mut state);
                    return (state, ok);
                }
                // The queue cannot be read: wait for the collector.
            }
            if !job.signal.wait(seen, deadline) {
                let mut state = job.lock();
                let ok = ready(&mut state);
                return (state, ok);
            }
        }
    }

    /// Becomes the caller that reads the result queue, if no one is; the
    /// collector stops counting as a waiter for results meanwhile.
    fn try_lead(&self) -> bool {
        let mut now = self.lead.load(Ordering::SeqCst);
        loop {
            if now & LEADER != 0 {
                return false;
            }
            match self.lead.compare_exchange_weak(now, LEADER, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {
                    if now & WATCHING != 0 {
                        self.results.ring().count_data_waiter(false);
                    }
                    return true;
                }
                Err(actual) => now = actual,
            }
        }
    }

    /// Hands the result queue back to the collector: it counts as a waiter
    /// for results again, and is woken if some wait already.
    fn unlead(&self) {
        let before = self.lead.swap(WATCHING, Ordering::SeqCst);
        let ring = self.results.ring();
        if before & WATCHING == 0 {
            ring.count_data_waiter(true);
        }
        if self.results.has_data() {
            ring.wake_data_waiters();
        }
    }

    /// Reads and files results until `job` is ready (`Some(true)`), the
    /// deadline passes (`Some(false)`), or the queue cannot be read
    /// (`None`).
    fn lead_until(
        &self,
        job: &Job,
        deadline: Option<Instant>,
        ready: &mut impl FnMut(&mut JobState) -> bool,
    ) -> Option<bool> {
        loop {
            if ready(&mut job.lock()) {
                return Some(true);
            }
            let got = self.results.get_with(Wait::Until(deadline), |bytes, _| {
                let header = wire::parse_result(bytes)?;
                let body = bytes.get(wire::RESULT_HEADER..).unwrap_or_default().to_vec();
                Some((header, body))
            });
            match got {
                Ok(Some((header, body))) => match header.kind {
                    wire::DONE | wire::SKIPPED => self.handle(header, body, true),
                    wire::WAKE => {}
                    // Notes change the workers: the collector's work.
                    _ => {
                        self.lock().deferred.push((header, body));
                        self.results.ring().wake_data_waiters();
                    }
                },
                Ok(None) => {}
                Err(Error::Timeout) => return Some(false),
                Err(Error::Closed) => return None,
                Err(_) => {}
            }
        }
    }

    // ---- the collector thread ----

    fn collect(&self) {
        let ring = self.results.ring();
        loop {
            let seen = ring.data_seq();
            // What leading callers left.
            let (notes, deliveries) = {
                let mut inner = self.lock();
                (
                    std::mem::take(&mut inner.deferred),
                    std::mem::take(&mut inner.deferred_deliveries),
                )
            };
            self.deliver_all(deliveries);
            for (header, body) in notes {
                self.handle(header, body, false);
            }
            // What is in the queue, unless a caller reads it: looked at
            // before every message, so that the wake-up this thread may
            // have left for a new leader (`nudge_leader`) is left to it.
            {
                while self.lead.load(Ordering::SeqCst) & LEADER == 0 {
                    let got = self.results.get_with(Wait::Never, |bytes, _| {
                        let header = wire::parse_result(bytes)?;
                        let body = bytes.get(wire::RESULT_HEADER..).unwrap_or_default().to_vec();
                        Some((header, body))
                    });
                    match got {
                        Ok(Some((header, body))) => self.handle(header, body, false),
                        Ok(None) => {}
                        Err(Error::Empty | Error::Timeout | Error::Closed) => break,
                        Err(_) => {}
                    }
                }
            }
            let requeue = {
                let mut inner = self.lock();
                self.flush_requeue(&mut inner);
                self.maybe_close_ring(&mut inner);
                let finished =
                    (inner.ring_closed || self.is_terminated() || inner.broken.is_some())
                        && inner.live == 0
                        && inner.spawning == 0;
                if finished {
                    inner.collector_done = true;
                    drop(inner);
                    self.waker.wake();
                    self.signal.notify();
                    return;
                }
                if !inner.deferred.is_empty() || !inner.deferred_deliveries.is_empty() {
                    continue;
                }
                !inner.requeue.is_empty()
            };
            // Sleep until a result comes while no caller leads, or a wake.
            if self.count_as_waiter() && self.results.has_data() {
                continue;
            }
            ring.sleep_for_data(seen, requeue.then_some(Duration::from_millis(1)));
        }
    }

    /// Counts the collector among the result queue's waiters unless a
    /// caller leads; whether it does.
    fn count_as_waiter(&self) -> bool {
        let mut now = self.lead.load(Ordering::SeqCst);
        loop {
            if now & LEADER != 0 {
                return false;
            }
            if now & WATCHING != 0 {
                return true;
            }
            match self.lead.compare_exchange_weak(
                now,
                now | WATCHING,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    self.results.ring().count_data_waiter(true);
                    return true;
                }
                Err(actual) => now = actual,
            }
        }
    }

    /// Files one message read from the result queue (by a leading caller
    /// if `leading`: then only results, and those of jobs with callbacks
    /// are left to the collector).
    fn handle(&self, header: wire::ResultHeader, body: Vec<u8>, leading: bool) {
        let mut deliveries = Deliveries::new();
        match header.kind {
            wire::DONE => {
                let mut inner = self.lock();
                if let Some(info) = inner.table.remove(&header.task) {
                    self.free_word(&mut inner, info.cancel);
                    if !info.cancelled {
                        let piece =
                            Piece { start: info.start, count: info.count as usize, body: Ok(body) };
                        deliveries.push((info.job, piece));
                    }
                }
            }
            wire::SKIPPED => {
                let mut inner = self.lock();
                if let Some(info) = inner.table.remove(&header.task) {
                    self.free_word(&mut inner, info.cancel);
                }
            }
            wire::BOUNCE => {
                let mut inner = self.lock();
                if inner.table.contains_key(&header.task) {
                    inner.requeue.push(header.task);
                }
            }
            wire::INIT_FAILED => {
                let message = String::from_utf8_lossy(&body).into_owned();
                let mut inner = self.lock();
                if inner.broken.is_none() {
                    inner.broken = Some(message.clone());
                    deliveries = Self::fail_all(&mut inner, &Failure::Broken(message));
                    inner.ring_closed = true;
                    self.tasks.ring().close();
                    self.bell.ring().close();
                    self.waker.wake();
                }
            }
            wire::EXITED => deliveries = self.exited(header.slot, &body),
            _ => {}
        }
        self.finish_handling(deliveries, leading);
    }

    /// Delivers what a message brought: a leading caller leaves the jobs
    /// with callbacks to the collector, and closes the task queue if that
    /// was the last task of a closed pool.
    fn finish_handling(&self, deliveries: Deliveries, leading: bool) {
        if !leading {
            self.deliver_all(deliveries);
            return;
        }
        let (later, now): (Deliveries, Deliveries) =
            deliveries.into_iter().partition(|(job, _)| job.has_callback());
        for (job, piece) in now {
            job.deliver(piece);
        }
        let mut inner = self.lock();
        self.maybe_close_ring(&mut inner);
        if !later.is_empty() {
            inner.deferred_deliveries.extend(later);
            drop(inner);
            self.results.ring().wake_data_waiters();
        }
    }

    fn free_word(&self, inner: &mut Inner, word: u32) {
        if word != wire::NO_CANCEL {
            self.state.store(self.cancel_index(word), 0);
            inner.free_cancel.push(word);
        }
    }

    /// A worker ended: fail or rerun what it held, and replace it.
    fn exited(&self, slot: u32, body: &[u8]) -> Deliveries {
        let pid = body.get(0..4).and_then(|b| b.try_into().ok()).map_or(0, u32::from_le_bytes);
        let code = body.get(4..8).and_then(|b| b.try_into().ok()).map_or(0, i32::from_le_bytes);
        let slot = slot as usize;
        let mut deliveries = Deliveries::new();
        let mut inner = self.lock();
        if slot >= self.config.processes {
            return deliveries;
        }
        inner.live = inner.live.saturating_sub(1);
        let base = worker::SLOT_WORDS * slot;
        let task = self.state.load(base);
        let item = self.state.load(base + 1);
        self.state.store(base, 0);
        self.state.store(base + 1, 0);
        // It may have died waiting on the task queue: let another wait.
        if self.state.compare_exchange(self.waiter_word(), slot as u64 + 1, 0).is_ok() {
            let _ = self.bell.put_payload(&[1u8][..], 0, Wait::Never);
        }
        if task != 0
            && let Some(info) = inner.table.remove(&task)
        {
            self.free_word(&mut inner, info.cancel);
            if !info.cancelled {
                self.died(&mut inner, info, item, pid, code, &mut deliveries);
            }
        }
        let replace = !inner.ring_closed && !self.is_terminated() && inner.broken.is_none();
        if replace {
            inner.spawning += 1;
            drop(inner);
            let spawned = self.spawn_worker(slot as u32);
            let mut inner = self.lock();
            inner.spawning -= 1;
            match spawned {
                Ok(p) => {
                    let p = Arc::new(p);
                    if self.is_terminated() {
                        let _ = p.kill();
                    }
                    inner.workers[slot] = Some(p);
                    inner.live += 1;
                    self.waker.wake();
                }
                Err(e) if inner.live == 0 => {
                    let message = format!("no worker could be started: {e}");
                    inner.broken = Some(message.clone());
                    deliveries.extend(Self::fail_all(&mut inner, &Failure::Broken(message)));
                    inner.ring_closed = true;
                    self.tasks.ring().close();
                    self.bell.ring().close();
                    self.waker.wake();
                }
                // The others go on with the work.
                Err(_) => {}
            }
        }
        deliveries
    }

    /// Item `item` of the task `info` was running when its worker died:
    /// it fails (or runs again, while retries are left); the chunk's other
    /// items run again.
    fn died(
        &self,
        inner: &mut Inner,
        info: TaskInfo,
        item: u64,
        pid: u32,
        code: i32,
        deliveries: &mut Deliveries,
    ) {
        let Some(header) = wire::parse_task(&info.msg) else { return };
        let count = info.count as usize;
        if count == 0 {
            return;
        }
        let k = (item as usize).min(count - 1);
        // Items `from..to` of the task run again: the same arguments,
        // passing over those before `from`.
        let requeue = |inner: &mut Inner, from: usize, to: usize, retries: u32| {
            if from >= to {
                return;
            }
            let id = self.next_task.fetch_add(1, Ordering::Relaxed);
            let mut msg = info.msg.as_ref().clone();
            wire::set_id(&mut msg, id, wire::NO_CANCEL);
            wire::set_skip(&mut msg, header.skip.saturating_add(from as u32));
            wire::set_count(&mut msg, (to - from) as u32);
            inner.table.insert(
                id,
                TaskInfo {
                    job: Arc::clone(&info.job),
                    start: info.start + from,
                    count: (to - from) as u32,
                    msg: Arc::new(msg),
                    retries,
                    cancel: wire::NO_CANCEL,
                    cancelled: false,
                },
            );
            inner.requeue.push(id);
        };
        requeue(inner, 0, k, info.retries);
        if info.retries > 0 {
            requeue(inner, k, k + 1, info.retries - 1);
        } else {
            let failure = Failure::WorkerDied { pid, code };
            deliveries.push((
                Arc::clone(&info.job),
                Piece { start: info.start + k, count: 1, body: Err(failure) },
            ));
        }
        requeue(inner, k + 1, count, info.retries);
    }

    /// Puts the tasks waiting to run again, as far as the queue has room
    /// now (the collector never waits for room: workers may be waiting for
    /// it to read results).
    fn flush_requeue(&self, inner: &mut Inner) {
        while let Some(&id) = inner.requeue.first() {
            let Some(info) = inner.table.get(&id) else {
                inner.requeue.remove(0);
                continue;
            };
            match self.tasks.put_payload(&info.msg[..], 0, Wait::Never) {
                Ok(()) => {
                    inner.requeue.remove(0);
                    self.ring_idle();
                }
                Err(PutFail::Full) => return,
                Err(PutFail::Closed) => {
                    inner.requeue.clear();
                    return;
                }
                Err(_) => {
                    inner.requeue.remove(0);
                }
            }
        }
    }

    // ---- the watcher thread ----

    fn watch(&self) {
        loop {
            let procs: Vec<(usize, Arc<Process<()>>)> = {
                let mut inner = self.lock();
                let procs: Vec<_> = inner
                    .workers
                    .iter()
                    .enumerate()
                    .filter_map(|(slot, p)| Some((slot, Arc::clone(p.as_ref()?))))
                    .collect();
                let ending = inner.ring_closed || self.is_terminated() || inner.broken.is_some();
                if procs.is_empty() && inner.spawning == 0 && ending && inner.collector_done {
                    inner.watcher_done = true;
                    drop(inner);
                    self.signal.notify();
                    return;
                }
                procs
            };
            let mut fds: Vec<BorrowedFd<'_>> = vec![self.waker.as_fd()];
            fds.extend(procs.iter().map(|(_, p)| p.as_fd()));
            let ready = match os::wait_readable(&fds, None) {
                Ok(Some(ready)) => ready,
                Ok(None) => continue,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            if ready[0] {
                self.waker.drain();
            }
            let mut quiet = true;
            for ((slot, p), _) in procs.iter().zip(&ready[1..]).filter(|(_, r)| **r) {
                let Some(code) = p.exit_code() else { continue };
                quiet = false;
                {
                    let mut inner = self.lock();
                    if inner.workers[*slot].as_ref().is_some_and(|w| Arc::ptr_eq(w, p)) {
                        inner.workers[*slot] = None;
                    }
                }
                let mut note = wire::begin_result(wire::EXITED, *slot as u32, 0);
                note.extend_from_slice(&p.pid().to_le_bytes());
                note.extend_from_slice(&code.to_le_bytes());
                let _ = self.results.put_payload(&note[..], 0, Wait::Forever);
            }
            if quiet && !ready[0] {
                // A fork-server child whose status is not in yet.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

impl Drop for LocalCore {
    fn drop(&mut self) {
        if let Some(id) = self.config.init_closure {
            closures::unregister(id);
        }
    }
}

impl std::fmt::Debug for LocalCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCore").field("config", &self.config).finish_non_exhaustive()
    }
}
