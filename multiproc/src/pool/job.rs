//! A job: one call on a pool (a `map`, an `apply`, an `imap`...), and the
//! pieces of results that the collector thread hands it.
//!
//! Results stay encoded until a caller asks for them: the collector only
//! files bytes, and decoding happens on the caller's thread (so `get` may be
//! called again, as in Python).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::shm::park;
use crate::{Error, Result};

/// Something to wait for from other threads of this process: a counter
/// bumped on every event, and a count of sleepers so that an event nobody
/// waits for costs no system call.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    seq: AtomicU32,
    sleepers: AtomicU32,
}

impl Signal {
    /// The current event count, to wait past.
    pub(crate) fn seen(&self) -> u32 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Records an event and wakes whoever waits.
    pub(crate) fn notify(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            park::wake(&self.seq, u32::MAX);
        }
    }

    /// Waits until an event after `seen`, or `deadline`; `false` on timeout.
    pub(crate) fn wait(&self, seen: u32, deadline: Option<Instant>) -> bool {
        let key = (&raw const self.seq).cast::<()>();
        if park::poll(key, deadline, || self.seq.load(Ordering::SeqCst) != seen) {
            return true;
        }
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            if self.seq.load(Ordering::SeqCst) != seen {
                break true;
            }
            let timeout = match park::time_left(deadline) {
                None => break false,
                Some(left) => left,
            };
            park::wait(&self.seq, seen, timeout);
        };
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Waits until `done()` holds (looked at after every event), or
    /// `deadline`; whether it holds at the end.
    pub(crate) fn wait_for(&self, deadline: Option<Instant>, done: impl Fn() -> bool) -> bool {
        loop {
            let seen = self.seen();
            if done() {
                return true;
            }
            if !self.wait(seen, deadline) {
                return done();
            }
        }
    }
}

/// Why items failed without an outcome from a worker.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    WorkerDied {
        pid: u32,
        code: i32,
    },
    Terminated,
    Cancelled,
    Broken(String),
    /// The argument could not be sent (encoding, descriptors).
    NotSent(String),
    /// On Redis: the task's workers kept stopping before they answered
    /// (they died, or lost the server, past their lease); the last one.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Lost {
        worker: String,
    },
}

impl Failure {
    pub(crate) fn to_error(&self) -> Error {
        match self {
            Self::WorkerDied { pid, code } if *code < 0 => {
                Error::WorkerDied { pid: *pid, signal: Some(-code), code: None }
            }
            Self::WorkerDied { pid, code } => {
                Error::WorkerDied { pid: *pid, signal: None, code: Some(*code) }
            }
            Self::Terminated => Error::PoolTerminated,
            Self::Cancelled => Error::Cancelled,
            Self::Broken(message) => Error::PoolBroken { message: message.clone() },
            Self::NotSent(message) => Error::TaskFailed { message: message.clone() },
            Self::Lost { worker } => Error::WorkerDied {
                // Consumer names end in `-{pid}-{nonce}` or `-w{slot}...`:
                // the pid is the number after the host.
                pid: worker.split('-').rev().find_map(|p| p.parse().ok()).unwrap_or(0),
                signal: None,
                code: None,
            },
        }
    }
}

/// Results of the consecutive items `start..start + count` of a job.
#[derive(Debug)]
pub(crate) struct Piece {
    pub(crate) start: usize,
    pub(crate) count: usize,
    /// The outcome records, or why none came.
    pub(crate) body: Result<Vec<u8>, Failure>,
}

/// A callback run (on the collector thread) once a job is complete: it
/// reads the state (locked) and returns what to call once it is unlocked.
pub(crate) type OnDone = Box<dyn FnOnce(&JobState) -> Deferred + Send>;

/// The user's part of a callback, called without the job's lock.
pub(crate) type Deferred = Box<dyn FnOnce() + Send>;

/// What the collector has filed for a job.
#[derive(Default)]
pub(crate) struct JobState {
    pub(crate) pieces: Vec<Piece>,
    /// Items with results so far.
    pub(crate) received: usize,
    /// Items in the job, once all were submitted.
    pub(crate) total: Option<usize>,
    /// Items a consumer took out of `pieces` (imap).
    pub(crate) consumed: usize,
    waker: Option<std::task::Waker>,
    listeners: Vec<Arc<Signal>>,
    on_done: Option<OnDone>,
}

impl std::fmt::Debug for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobState")
            .field("received", &self.received)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl JobState {
    pub(crate) fn complete(&self) -> bool {
        self.total == Some(self.received)
    }
}

/// One call on a pool.
#[derive(Debug)]
pub(crate) struct Job {
    state: Mutex<JobState>,
    pub(crate) signal: Signal,
    /// The registered closure this job's tasks run, if any (unregistered
    /// when the job goes).
    pub(crate) closure: Option<u64>,
}

impl Job {
    pub(crate) fn new(closure: Option<u64>) -> Arc<Self> {
        Arc::new(Self { state: Mutex::default(), signal: Signal::default(), closure })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Files a piece of results (from the collector, or a failure found by
    /// the submitter).
    pub(crate) fn deliver(&self, piece: Piece) {
        let mut state = self.lock();
        state.received += piece.count;
        state.pieces.push(piece);
        self.after_change(state);
    }

    /// Says that all `total` items were submitted.
    pub(crate) fn set_total(&self, total: usize) {
        let mut state = self.lock();
        state.total = Some(total);
        self.after_change(state);
    }

    /// Sets the callback to run once complete (at once, here, if it is).
    pub(crate) fn on_done(&self, callback: OnDone) {
        let mut state = self.lock();
        if state.complete() {
            let deferred = callback(&state);
            drop(state);
            deferred();
        } else {
            state.on_done = Some(callback);
        }
    }

    /// Whether a callback waits for the job to complete.
    pub(crate) fn has_callback(&self) -> bool {
        self.lock().on_done.is_some()
    }

    /// Registers a waker for `std::future::Future::poll`.
    pub(crate) fn set_waker(&self, waker: &std::task::Waker) {
        let mut state = self.lock();
        if !state.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            state.waker = Some(waker.clone());
        }
    }

    /// Adds a signal notified on completion (`as_completed`).
    pub(crate) fn listen(&self, signal: Arc<Signal>) {
        self.lock().listeners.push(signal);
    }

    fn after_change(&self, mut state: MutexGuard<'_, JobState>) {
        let complete = state.complete();
        let (waker, listeners, callback) = if complete {
            (state.waker.take(), std::mem::take(&mut state.listeners), state.on_done.take())
        } else {
            (None, Vec::new(), None)
        };
        let deferred = callback.map(|callback| callback(&state));
        drop(state);
        if let Some(deferred) = deferred {
            deferred();
        }
        self.signal.notify();
        if let Some(waker) = waker {
            waker.wake();
        }
        for listener in listeners {
            listener.notify();
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let Some(id) = self.closure {
            super::closures::unregister(id);
        }
    }
}
