//! `IMap`: the lazy iterator of `imap` and `imap_unordered`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::engine::Core;
use super::handle::{Pool, send_chunk};
use super::job::Job;
use super::wire;
use crate::Result;

/// Submits the next chunk from `start`: how many items it took (0: the
/// input is exhausted), and the error that stopped it, if any.
type Feed<'a> = Box<dyn FnMut(&Core, &Arc<Job>, usize) -> (usize, Result<()>) + 'a>;

/// Chunks in flight ahead of the consumer, at least.
const WINDOW_CHUNKS: usize = 64;

/// The results of [`Pool::imap`] and [`Pool::imap_unordered`], as they come.
///
/// Items are read from the input only as results are consumed (a bounded
/// number ahead), so an endless input is fine. Each item's result is a
/// `Result`: a failed item does not end the iteration.
///
/// # Examples
///
/// ```
/// let pool = multiproc::Pool::new(2)?;
/// let mut it = pool.imap(|x: u32| x + 1, 0..);
/// assert_eq!(it.next().transpose()?, Some(1));
/// assert_eq!(it.next().transpose()?, Some(2));
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct IMap<'a, R> {
    core: &'a Core,
    job: Option<Arc<Job>>,
    feed: Option<Feed<'a>>,
    ordered: bool,
    /// The next item to yield (ordered).
    next: usize,
    submitted: usize,
    consumed: usize,
    window: usize,
    buffered: VecDeque<Result<R>>,
}

impl<'a, R: DeserializeOwned> IMap<'a, R> {
    pub(crate) fn new<F, A>(
        pool: &'a Pool,
        f: F,
        mut input: impl Iterator<Item = A> + 'a,
        chunksize: usize,
        ordered: bool,
    ) -> Self
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize,
    {
        let core: &Core = &pool.core;
        let window = chunksize.saturating_mul(WINDOW_CHUNKS.max(8 * pool.processes()));
        let mut it = Self {
            core,
            job: None,
            feed: None,
            ordered,
            next: 0,
            submitted: 0,
            consumed: 0,
            window,
            buffered: VecDeque::new(),
        };
        let started = core.check_open().and_then(|()| super::target(&f, core.config().method));
        match started {
            Ok((target, closure)) => {
                it.job = Some(Job::new(closure));
                core.feeder(true);
                it.feed = Some(Box::new(move |core, job, start| {
                    send_chunk(core, job, target, start, &mut input, chunksize, false)
                }));
            }
            Err(e) => it.buffered.push_back(Err(e)),
        }
        it
    }

    fn stop_feeding(&mut self) {
        if self.feed.take().is_some() {
            if let Some(job) = &self.job {
                job.set_total(self.submitted);
            }
            self.core.feeder(false);
        }
    }

    fn top_up(&mut self) {
        let Some(job) = self.job.clone() else { return };
        while self.submitted - self.consumed < self.window {
            let Some(feed) = self.feed.as_mut() else { return };
            let (taken, sent) = feed(self.core, &job, self.submitted);
            self.submitted += taken;
            if taken == 0 {
                self.stop_feeding();
            } else if sent.is_err() {
                // The chunk's items have their failures in the job; the
                // rest of the input is not read.
                self.stop_feeding();
            }
        }
    }
}

impl<R: DeserializeOwned> Iterator for IMap<'_, R> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        loop {
            if let Some(item) = self.buffered.pop_front() {
                return Some(item);
            }
            self.top_up();
            let job = self.job.clone()?;
            if self.feed.is_none() && self.consumed >= self.submitted {
                return None;
            }
            let (ordered, next) = (self.ordered, self.next);
            let (mut state, _) = self.core.wait_job(&job, None, |s| {
                if ordered {
                    s.pieces.iter().any(|p| p.start == next)
                } else {
                    !s.pieces.is_empty()
                }
            });
            let index = if ordered {
                state.pieces.iter().position(|p| p.start == next).unwrap_or(0)
            } else {
                0
            };
            if state.pieces.is_empty() {
                continue;
            }
            let piece = state.pieces.remove(index);
            state.consumed += piece.count;
            drop(state);
            self.consumed += piece.count;
            if ordered {
                self.next = piece.start + piece.count;
            }
            match piece.body {
                Ok(body) => wire::decode_outcomes::<R>(&body, piece.count, |r| {
                    self.buffered.push_back(r);
                }),
                Err(failure) => {
                    for _ in 0..piece.count {
                        self.buffered.push_back(Err(failure.to_error()));
                    }
                }
            }
        }
    }
}

impl<R> Drop for IMap<'_, R> {
    fn drop(&mut self) {
        if self.feed.take().is_some() {
            if let Some(job) = &self.job {
                job.set_total(self.submitted);
            }
            self.core.feeder(false);
        }
    }
}

impl<R> fmt::Debug for IMap<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IMap")
            .field("ordered", &self.ordered)
            .field("submitted", &self.submitted)
            .field("consumed", &self.consumed)
            .finish_non_exhaustive()
    }
}
