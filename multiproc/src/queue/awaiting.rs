//! The async face of [`Queue`] and [`JoinableQueue`]: `put_async`,
//! `get_async`, `join_async` and [`Queue::stream`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::raw::{RawQueue, Wait};
use super::{Imp, JoinableQueue, PutError, Queue};
use crate::aio::{Arm, Keep, Source, Waiting, Wake};
use crate::{Error, Result};

/// While records wait but another consumer holds the queue (a blocking
/// `get` about to take one, or a stream being read), a waiting consumer
/// looks again this often: releasing the consumer side bumps no word.
const HELD_RECHECK: Duration = Duration::from_micros(200);
/// `task_done` racing with a `put` may bump no word (see `RawRing::join`):
/// an awaiting `join` looks again this often.
const JOIN_RECHECK: Duration = Duration::from_millis(20);
/// An awaiting put on a full Redis queue looks again this often.
#[cfg(feature = "redis")]
const REDIS_RECHECK: Duration = Duration::from_millis(5);

impl RawQueue {
    fn keep(&self) -> Keep {
        Arc::clone(self.segment()) as Keep
    }

    /// One poll of a get: `attempt` takes a message without waiting.
    pub(crate) fn poll_get<R>(
        &self,
        waiting: &mut Waiting,
        cx: &Context<'_>,
        mut attempt: impl FnMut() -> Result<R>,
    ) -> Poll<Result<R>> {
        let ring = self.ring();
        waiting.poll_more(
            cx,
            || match attempt() {
                Err(Error::Empty) => None,
                done => Some(done),
            },
            |waiting| {
                let keep = self.keep();
                let (seq, sleepers) = ring.data_words();
                waiting.count(sleepers, &keep);
                let seen = seq.load(std::sync::atomic::Ordering::SeqCst);
                let source = Source::word(seq, seen, keep, Wake::One);
                Some(if ring.has_data() {
                    Arm::with_recheck(source, HELD_RECHECK)
                } else {
                    Arm::on(source)
                })
            },
            &|| ring.has_data() || ring.is_closed(),
        )
    }

    /// One poll of a put of the item in `slot` (taken out once put, or
    /// failed for good).
    pub(crate) fn poll_put<T: Serialize>(
        &self,
        waiting: &mut Waiting,
        cx: &Context<'_>,
        slot: &mut Option<T>,
    ) -> Poll<Result<(), PutError<T>>> {
        let ring = self.ring();
        waiting.poll(
            cx,
            || {
                let item = slot.take()?;
                match self.put(item, Wait::Never) {
                    Err(PutError::Full(item)) if ring.len() == 0 && !ring.has_data() => {
                        // Refused by an empty queue: larger than its ring,
                        // it streams through while consumers read, as a
                        // blocking put does.
                        Some(self.put(item, Wait::Forever))
                    }
                    Err(PutError::Full(item)) => {
                        *slot = Some(item);
                        None
                    }
                    done => Some(done),
                }
            },
            |waiting| {
                let keep = self.keep();
                let (seq, sleepers) = ring.room_words();
                waiting.count(sleepers, &keep);
                let seen = seq.load(std::sync::atomic::Ordering::SeqCst);
                Some(Arm::on(Source::word(seq, seen, keep, Wake::One)))
            },
        )
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// Takes the oldest item, awaiting one as long as it takes: [`get`]
    /// without holding a thread.
    ///
    /// **Cancel-safe**: an item is taken only in the poll that returns it,
    /// so dropping the future loses nothing and leaves no waiter behind.
    ///
    /// An item larger than the queue's ring that has begun to arrive is
    /// read to its end within one poll, while its producer writes it.
    ///
    /// # Errors
    ///
    /// As [`get`].
    ///
    /// [`get`]: Queue::get
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let q = multiproc::Queue::new()?;
    /// q.put_async(5u8).await?;
    /// assert_eq!(q.get_async().await?, 5);
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// On Redis, the wait runs on a thread of its own; an item that arrives
    /// for a future already dropped goes back into the queue (at its end,
    /// for at-least-once delivery).
    pub async fn get_async(&self) -> Result<T> {
        let raw = match self.imp() {
            Imp::Local(raw) => raw,
            #[cfg(feature = "redis")]
            Imp::Redis(q, max) => return redis_got(Arc::clone(q).get_async(None).await, *max),
        };
        let mut waiting = Waiting::new(raw.ring());
        std::future::poll_fn(|cx| raw.poll_get(&mut waiting, cx, || self.try_get())).await
    }

    /// Puts `item`, awaiting room as long as it takes: [`put`] without
    /// holding a thread.
    ///
    /// **Cancel-safe**: the item goes in whole in the poll that returns
    /// `Ready`, or not at all; a dropped future drops the item unput.
    ///
    /// An item larger than the ring streams through it within one poll,
    /// while consumers read (as [`put`] does).
    ///
    /// # Errors
    ///
    /// As [`put`].
    ///
    /// [`put`]: Queue::put
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let q = multiproc::Queue::bounded(1)?;
    /// q.put_async('a').await?;
    /// assert!(q.try_put('b').is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// On Redis, a put that must wait for room (a bounded queue) looks
    /// again every 5 ms, and a dropped future drops its item unput as well.
    pub async fn put_async(&self, item: T) -> Result<(), PutError<T>> {
        let raw = match self.imp() {
            Imp::Local(raw) => raw,
            #[cfg(feature = "redis")]
            Imp::Redis(..) => {
                let mut waiting = Waiting::default();
                let mut slot = Some(item);
                return std::future::poll_fn(|cx| {
                    waiting.poll(
                        cx,
                        || match self.try_put(slot.take()?) {
                            Err(PutError::Full(item)) => {
                                slot = Some(item);
                                None
                            }
                            done => Some(done),
                        },
                        |_| Some(Arm::with_recheck(Source::Timer, REDIS_RECHECK)),
                    )
                })
                .await;
            }
        };
        let mut waiting = Waiting::new(raw.ring().room_words().0);
        let mut slot = Some(item);
        std::future::poll_fn(|cx| raw.poll_put(&mut waiting, cx, &mut slot)).await
    }

    /// The items as a [`Stream`](futures_core::Stream), ending once the
    /// queue is closed and empty (as [`iter`](Queue::iter) does).
    ///
    /// **Cancel-safe** between items: an item is taken only in the poll
    /// that yields it.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// # futures::executor::block_on(async {
    /// let q = multiproc::Queue::new()?;
    /// q.put(1)?;
    /// q.put(2)?;
    /// q.close();
    /// let items: Vec<i32> = q.stream().map(Result::unwrap).collect().await;
    /// assert_eq!(items, [1, 2]);
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn stream(&self) -> Stream<'_, T> {
        let waiting = match self.imp() {
            Imp::Local(raw) => Waiting::new(raw.ring()),
            #[cfg(feature = "redis")]
            Imp::Redis(..) => Waiting::default(),
        };
        Stream {
            queue: self,
            waiting,
            #[cfg(feature = "redis")]
            pending: None,
            done: false,
        }
    }
}

/// The items of a [`Queue`] as a [`futures_core::Stream`], made by
/// [`Queue::stream`]. Each is a `Result`: an item that cannot be taken (it
/// does not decode as `T`) is yielded as an error, then the stream ends.
/// [`Error::Closed`] is the normal end and is not yielded.
#[must_use = "streams do nothing unless polled"]
pub struct Stream<'a, T> {
    queue: &'a Queue<T>,
    waiting: Waiting,
    /// On Redis: the get under way.
    #[cfg(feature = "redis")]
    pending: Option<Pin<Box<dyn Future<Output = Result<T>> + Send>>>,
    done: bool,
}

impl<T: Serialize + DeserializeOwned> futures_core::Stream for Stream<'_, T> {
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let queue = this.queue;
        let got = match queue.imp() {
            Imp::Local(raw) => {
                std::task::ready!(raw.poll_get(&mut this.waiting, cx, || queue.try_get()))
            }
            #[cfg(feature = "redis")]
            Imp::Redis(q, max) => {
                let (q, max) = (Arc::clone(q), *max);
                let get = this.pending.get_or_insert_with(|| {
                    Box::pin(async move { redis_got(q.get_async(None).await, max) })
                });
                let got = std::task::ready!(get.as_mut().poll(cx));
                this.pending = None;
                got
            }
        };
        Poll::Ready(match got {
            Ok(item) => Some(Ok(item)),
            Err(Error::Closed) => {
                this.done = true;
                None
            }
            Err(e) => {
                this.done = true;
                Some(Err(e))
            }
        })
    }
}

impl<T> std::fmt::Debug for Stream<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("queue", self.queue).field("done", &self.done).finish()
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// Awaits until every item ever put has been marked done: [`join`]
    /// without holding a thread. **Cancel-safe**: it changes nothing.
    ///
    /// [`join`]: JoinableQueue::join
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let q = multiproc::JoinableQueue::new()?;
    /// q.put(1)?;
    /// q.get()?;
    /// q.task_done()?;
    /// q.join_async().await;
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// On Redis, it looks every 50 ms, on a thread of its own; a failure to
    /// reach the server is logged and looked again.
    pub async fn join_async(&self) {
        let raw = match self.imp() {
            Imp::Local(raw) => raw,
            #[cfg(feature = "redis")]
            Imp::Redis(q, _) => {
                while let Err(e) = Arc::clone(q).join_async().await {
                    log::warn!("{self:?}: join failed, trying again: {e}");
                }
                return;
            }
        };
        let ring = raw.ring();
        let mut waiting = Waiting::default();
        std::future::poll_fn(|cx| {
            waiting.poll(
                cx,
                || ring.all_done().then_some(()),
                |waiting| {
                    let keep = raw.keep();
                    let (seq, joiners) = ring.done_words();
                    waiting.count(joiners, &keep);
                    let seen = seq.load(std::sync::atomic::Ordering::SeqCst);
                    Some(Arm::with_recheck(Source::word(seq, seen, keep, Wake::All), JOIN_RECHECK))
                },
            )
        })
        .await;
    }
}

/// The item of a get on Redis, decoded.
#[cfg(feature = "redis")]
fn redis_got<T: DeserializeOwned>(got: Result<crate::remote::queue::Got>, max: usize) -> Result<T> {
    use crate::remote::queue::{Got, RedisQueue};
    match got? {
        Got::Item(bytes) if bytes.len() > max => {
            Err(Error::FrameTooLarge { len: bytes.len() as u64, max: max as u64 })
        }
        Got::Item(bytes) => RedisQueue::decode(&bytes),
        Got::Closed => Err(Error::Closed),
        Got::Empty => Err(Error::Timeout),
    }
}
