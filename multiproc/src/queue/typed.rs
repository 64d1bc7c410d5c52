//! `Queue<T>` and its builder.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::PutError;
use super::raw::{DEFAULT_RING, RawQueue, Wait};
use crate::Result;
#[cfg(feature = "redis")]
use crate::remote::queue::{Delivery, Got, Put, RedisQueue, Spec as RedisSpec};
use crate::shm::park::deadline_after;

/// How many items `put_many` sends to Redis in one script call.
#[cfg(feature = "redis")]
const PUT_BATCH: usize = 1024;
#[cfg(feature = "redis")]
use std::sync::Arc;

/// A multi-producer, multi-consumer FIFO queue between processes (Python's
/// `multiprocessing.Queue`).
///
/// # Examples
///
/// ```
/// use multiproc::{Process, Queue};
///
/// fn f(q: Queue<(i32, Option<()>, String)>) {
///     q.put((42, None, "hello".to_owned())).unwrap();
/// }
///
/// let q = Queue::new()?;
/// let p = Process::spawn(f, q.clone())?;
/// assert_eq!(format!("{:?}", q.get()?), r#"(42, None, "hello")"#);
/// p.join()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Queue<T> {
    imp: Imp,
    _items: PhantomData<fn(T) -> T>,
}

/// Where a queue's items live.
#[derive(Clone)]
pub(crate) enum Imp {
    /// A ring in shared memory, on this host.
    Local(RawQueue),
    /// A Redis server, across hosts; with this handle's message limit.
    #[cfg(feature = "redis")]
    Redis(Arc<RedisQueue>, usize),
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Self { imp: self.imp.clone(), _items: PhantomData }
    }
}

/// Sets a queue's item bound and ring size.
///
/// # Examples
///
/// ```
/// let q = multiproc::Queue::<Vec<u8>>::builder().maxsize(100).ring_bytes(8 << 20).build()?;
/// assert_eq!(q.maxsize(), Some(100));
/// # Ok::<(), multiproc::Error>(())
/// ```
///
/// The second parameter says what [`build`](QueueBuilder::build) makes: a
/// [`Queue`] ([`Plain`], from [`Queue::builder`]) or a
/// [`JoinableQueue`](crate::JoinableQueue) ([`Joinable`], from
/// [`JoinableQueue::builder`](crate::JoinableQueue::builder)).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build`"]
pub struct QueueBuilder<T, K = Plain> {
    maxsize: usize,
    ring_bytes: usize,
    max_message: usize,
    #[cfg(feature = "redis")]
    redis: Option<RedisSpec>,
    _items: PhantomData<fn(T) -> T>,
    _kind: PhantomData<K>,
}

/// A [`QueueBuilder`] that makes a [`Queue`].
///
/// # Examples
///
/// ```
/// let b: multiproc::QueueBuilder<u8, multiproc::queue::Plain> = multiproc::Queue::builder();
/// let q: multiproc::Queue<u8> = b.build()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Plain;

/// A [`QueueBuilder`] that makes a [`JoinableQueue`](crate::JoinableQueue).
///
/// # Examples
///
/// ```
/// use multiproc::{JoinableQueue, QueueBuilder, queue::Joinable};
/// let b: QueueBuilder<u8, Joinable> = JoinableQueue::builder();
/// let q: JoinableQueue<u8> = b.build()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Joinable;

impl<T: Serialize + DeserializeOwned> QueueBuilder<T, Joinable> {
    /// Creates the [`JoinableQueue`](crate::JoinableQueue).
    ///
    /// # Errors
    ///
    /// As [`QueueBuilder::<T, Plain>::build`](QueueBuilder::build).
    ///
    /// # Examples
    ///
    /// ```
    /// let q: multiproc::JoinableQueue<u8> = multiproc::JoinableQueue::builder().build()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn build(self) -> Result<crate::JoinableQueue<T>> {
        self.build_joinable()
    }
}

impl<T: Serialize + DeserializeOwned> QueueBuilder<T, Plain> {
    /// Creates the queue.
    ///
    /// # Errors
    ///
    /// [`Error::Os`](crate::Error::Os) if the shared memory cannot be made;
    /// on Redis, [`Error::Backend`](crate::Error::Backend) if the server
    /// cannot be reached or `name` holds something else.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::<u8>::builder().build()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn build(self) -> Result<Queue<T>> {
        Ok(Queue { imp: self.build_imp(false)?, _items: PhantomData })
    }
}

impl<T: Serialize + DeserializeOwned, K> QueueBuilder<T, K> {
    /// At most `maxsize` items at once (0: no bound; Python's `maxsize`).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::<u8>::builder().maxsize(2).build()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn maxsize(mut self, maxsize: usize) -> Self {
        self.maxsize = maxsize;
        self
    }

    /// The size of the shared ring in bytes (default 1 MiB, rounded up to
    /// whole pages). Items larger than the ring still pass, streamed.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::<u8>::builder().ring_bytes(64 << 10).build()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn ring_bytes(mut self, bytes: usize) -> Self {
        self.ring_bytes = bytes;
        self
    }

    /// The largest encoded item this handle puts or gets (default
    /// [`DEFAULT_MAX_MESSAGE`](crate::transfer::DEFAULT_MAX_MESSAGE), 64 MiB,
    /// as for socket connections). A larger put fails with
    /// [`PutError::Failed`] holding [`Error::FrameTooLarge`](crate::Error::FrameTooLarge)
    /// and the item; a get that meets a larger item drops it as it comes
    /// (never holding it whole) and returns that error; the next get goes
    /// on with the next item.
    ///
    /// The limit belongs to this process's handle: a handle that arrives in
    /// another process has the default there (each receiver protects
    /// itself), and [`Queue::with_max_message`] changes it.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::<Vec<u8>>::builder().max_message(1024).build()?;
    /// assert!(q.put(vec![0; 2000]).is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    /// Creates a [`JoinableQueue`](crate::JoinableQueue) with these
    /// settings.
    ///
    /// # Errors
    ///
    /// As [`build`](QueueBuilder::build).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::JoinableQueue::<u8>::builder().build_joinable()?;
    /// q.put(1)?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn build_joinable(self) -> Result<crate::JoinableQueue<T>> {
        Ok(crate::JoinableQueue::from_queue(Queue {
            imp: self.build_imp(true)?,
            _items: PhantomData,
        }))
    }

    /// The same settings, for a [`JoinableQueue`](crate::JoinableQueue).
    pub(crate) fn joinable(self) -> QueueBuilder<T, Joinable> {
        QueueBuilder {
            maxsize: self.maxsize,
            ring_bytes: self.ring_bytes,
            max_message: self.max_message,
            #[cfg(feature = "redis")]
            redis: self.redis,
            _items: PhantomData,
            _kind: PhantomData,
        }
    }

    fn build_imp(self, joinable: bool) -> Result<Imp> {
        #[cfg(feature = "redis")]
        if let Some(mut spec) = self.redis {
            spec.maxsize = self.maxsize as u64;
            spec.joinable = joinable;
            spec.type_name = std::any::type_name::<T>().to_owned();
            return Ok(Imp::Redis(RedisQueue::open(spec)?, self.max_message));
        }
        let _ = joinable;
        let raw =
            RawQueue::create(self.maxsize, self.ring_bytes)?.with_max_message(self.max_message);
        Ok(Imp::Local(raw))
    }
}

#[cfg(feature = "redis")]
impl<T: Serialize + DeserializeOwned, K> QueueBuilder<T, K> {
    /// Puts the queue on the Redis (or Valkey) server at `url`, under
    /// `name`: every handle, on any host, built with the same address and
    /// name is the same queue. The queue is created on first use; a later
    /// build checks that what `name` holds is a queue of the same item type
    /// and delivery (the first build's `maxsize` stands).
    ///
    /// `url` is `redis://[user[:password]@]host[:port][/db]`, or `rediss://`
    /// for TLS (with the `redis-tls` feature). The handle keeps working
    /// across a restart of the server: each operation reconnects, with
    /// backoff, until its deadline. What travels: see the README's section
    /// "Across machines".
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q = multiproc::Queue::<String>::builder().redis("redis://127.0.0.1:6379/0", "jobs").build()?;
    /// q.put("hello".to_owned())?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn redis(mut self, url: &str, name: &str) -> Self {
        self.redis = Some(RedisSpec::new(url, name));
        self
    }

    /// On Redis: how items are delivered when consumers can die (default
    /// [`Delivery::AtLeastOnce`]). Ignored by a local queue, whose items
    /// are always delivered exactly once.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use multiproc::queue::Delivery;
    /// let q = multiproc::Queue::<u8>::builder()
    ///     .redis("redis://127.0.0.1:6379/0", "events")
    ///     .delivery(Delivery::AtMostOnce)
    ///     .build()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        if let Some(spec) = &mut self.redis {
            spec.delivery = delivery;
        }
        self
    }

    /// On Redis, at-least-once: how long an item taken by a consumer and
    /// not acknowledged waits before another consumer gets it (default
    /// 30 s for a queue, one hour for a joinable queue, whose items stay
    /// unacknowledged until `task_done`). Set it above the longest time a
    /// consumer may take; an item whose consumer is merely slow past it is
    /// delivered twice.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let q = multiproc::Queue::<u8>::builder()
    ///     .redis("redis://127.0.0.1:6379/0", "jobs")
    ///     .visibility_timeout(Duration::from_secs(5))
    ///     .build()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        if let Some(spec) = &mut self.redis {
            spec.visibility = timeout.max(Duration::from_millis(1));
        }
        self
    }

    /// On Redis: how long an operation keeps trying to reach a server that
    /// does not answer (reconnecting with backoff) before it fails with
    /// [`Error::Backend`](crate::Error::Backend) (default 10 s). A timed
    /// operation gives up at its own timeout if that comes first.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let built = multiproc::Queue::<u8>::builder()
    ///     .redis("redis://127.0.0.1:1/0", "nobody")
    ///     .unreachable_timeout(Duration::from_millis(20))
    ///     .build();
    /// assert!(matches!(built, Err(multiproc::Error::Backend { .. })));
    /// ```
    pub fn unreachable_timeout(mut self, timeout: Duration) -> Self {
        if let Some(spec) = &mut self.redis {
            spec.unreachable = timeout;
        }
        self
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// An unbounded queue (in items) with the default ring.
    ///
    /// # Errors
    ///
    /// [`Error::Os`](crate::Error::Os) if the shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::<String>::new()?;
    /// assert!(q.is_empty());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Self::builder().build()
    }

    /// A queue holding at most `maxsize` items (Python's `Queue(maxsize)`).
    ///
    /// # Errors
    ///
    /// As [`new`](Queue::new).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::bounded(1)?;
    /// q.put(1)?;
    /// assert!(q.is_full());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn bounded(maxsize: usize) -> Result<Self> {
        Self::builder().maxsize(maxsize).build()
    }

    /// A builder for the item bound and the ring size.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::<u8>::builder().maxsize(3).build()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn builder() -> QueueBuilder<T> {
        QueueBuilder {
            maxsize: 0,
            ring_bytes: DEFAULT_RING,
            max_message: crate::transfer::DEFAULT_MAX_MESSAGE as usize,
            #[cfg(feature = "redis")]
            redis: None,
            _items: PhantomData,
            _kind: PhantomData,
        }
    }

    /// Puts `item`, waiting for room as long as it takes. When it returns
    /// `Ok`, the item is in the queue.
    ///
    /// # Errors
    ///
    /// [`PutError::Closed`]; [`PutError::Failed`] if the item does not encode.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::new()?;
    /// q.put([1, 2, 3])?;
    /// assert_eq!(q.get()?, [1, 2, 3]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_wait(item, Wait::Forever)
    }

    /// Puts a copy of `*item`, waiting for room as long as it takes: as
    /// [`put`](Queue::put), but the caller keeps its value (as Python's
    /// `put`, which never takes the object away). The value is encoded
    /// straight into the queue's shared memory, with no clone in between.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed);
    /// [`Error::Encode`](crate::Error::Encode) if the item does not encode;
    /// [`Error::FrameTooLarge`](crate::Error::FrameTooLarge) if it is over
    /// the queue's message limit.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::new()?;
    /// let big = vec![7u8; 100_000];
    /// q.put_ref(&big)?;
    /// q.put_ref(&big)?;
    /// assert_eq!(q.get()?, big);
    /// assert_eq!(big.len(), 100_000); // still ours
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn put_ref(&self, item: &T) -> Result<()> {
        match &self.imp {
            Imp::Local(raw) => raw.put_ref(item, Wait::Forever),
            #[cfg(feature = "redis")]
            Imp::Redis(q, max) => match q.put(&q.encode(item, *max)?, None)? {
                Put::Done => Ok(()),
                Put::Closed => Err(crate::Error::Closed),
                Put::Full => Err(crate::Error::Full),
            },
        }
    }

    /// Puts `item` if there is room now (Python's `put_nowait`).
    ///
    /// It waits for no room and for no other producer, except for a moment
    /// for its turn (another producer copying an item in). An item larger
    /// than the ring never fits at once, so it is always refused: use
    /// [`put_timeout`](Queue::put_timeout) or [`put`](Queue::put) for those.
    ///
    /// # Errors
    ///
    /// [`PutError::Full`] (with the item, nothing of it put) if there is no
    /// room now, the item is larger than the ring, or another producer holds
    /// the queue (it is streaming an item larger than the ring); and as
    /// [`put`](Queue::put).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::bounded(1)?;
    /// q.try_put('a')?;
    /// assert!(q.try_put('b').is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_wait(item, Wait::Never)
    }

    /// Puts `item`, waiting at most `timeout` for room.
    ///
    /// The timeout holds whatever other producers and consumers do. It is
    /// all or nothing: an item larger than the ring, which streams through it
    /// while consumers read, is called off if the stream does not complete in
    /// time, and then no consumer ever sees any part of it.
    ///
    /// # Errors
    ///
    /// [`PutError::Timeout`] (with the item, nothing of it put), and as
    /// [`put`](Queue::put).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = multiproc::Queue::bounded(1)?;
    /// q.put(1)?;
    /// assert!(q.put_timeout(2, Duration::from_millis(5)).is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_wait(item, Wait::Until(deadline_after(timeout)))
    }

    /// Takes the oldest item, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed) once the queue is closed and
    /// empty; [`Error::Decode`](crate::Error::Decode) if the item does not
    /// decode as `T` (it is consumed).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::new()?;
    /// q.put(5u8)?;
    /// assert_eq!(q.get()?, 5);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn get(&self) -> Result<T> {
        self.get_wait(Wait::Forever)
    }

    /// Takes the oldest item if there is one now (Python's `get_nowait`).
    ///
    /// An item larger than the ring that has begun to arrive is taken while
    /// its producer keeps writing it (as [`get_timeout`](Queue::get_timeout)
    /// does).
    ///
    /// # Errors
    ///
    /// [`Error::Empty`](crate::Error::Empty), and as [`get`](Queue::get).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::<u8>::new()?;
    /// assert!(matches!(q.try_get(), Err(multiproc::Error::Empty)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_get(&self) -> Result<T> {
        self.get_wait(Wait::Never)
    }

    /// Takes the oldest item, waiting at most `timeout`.
    ///
    /// An item larger than the ring streams through it: once it has begun to
    /// arrive, the get finishes taking it as long as its producer keeps
    /// writing, even past the timeout. If the producer stalls (stopped, or
    /// starved of CPU) past the timeout, the get gives up; the producer then
    /// puts the item again from its start, so it is not lost. If the producer
    /// dies, its partial item is dropped and the get waits on, within its
    /// timeout, for a whole one.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`](crate::Error::Timeout), and as [`get`](Queue::get).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = multiproc::Queue::<u8>::new()?;
    /// assert!(q.get_timeout(Duration::from_millis(5)).is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_wait(Wait::Until(deadline_after(timeout)))
    }

    /// Puts every item of `items`, in order, waiting for room as long as it
    /// takes: as many [`put`](Queue::put)s, but on Redis in one round trip
    /// per 256 items (pipelined). Returns how many were put.
    ///
    /// # Errors
    ///
    /// As [`put`](Queue::put), for the first item that could not be put
    /// (the items before it are in the queue; it and the rest are dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::new()?;
    /// assert_eq!(q.put_many([1, 2, 3])?, 3);
    /// assert_eq!(q.get_many(10, std::time::Duration::from_secs(1))?, [1, 2, 3]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn put_many(&self, items: impl IntoIterator<Item = T>) -> Result<usize> {
        match &self.imp {
            Imp::Local(_) => {
                let mut n = 0;
                for item in items {
                    self.put(item)?;
                    n += 1;
                }
                Ok(n)
            }
            #[cfg(feature = "redis")]
            Imp::Redis(q, max) => {
                let mut n = 0;
                let mut items = items.into_iter().peekable();
                while items.peek().is_some() {
                    let batch = items
                        .by_ref()
                        .take(PUT_BATCH)
                        .map(|item| q.encode(&item, *max))
                        .collect::<Result<Vec<_>>>()?;
                    let mut rest = &batch[..];
                    while !rest.is_empty() {
                        let (put, how) = q.put_batch(rest)?;
                        n += put;
                        rest = &rest[put..];
                        match how {
                            Put::Done => {}
                            Put::Closed => return Err(crate::Error::Closed),
                            // Full: wait for room for the next one.
                            Put::Full => match q.put(&rest[0], None)? {
                                Put::Done => {
                                    n += 1;
                                    rest = &rest[1..];
                                }
                                Put::Closed => return Err(crate::Error::Closed),
                                Put::Full => return Err(crate::Error::Full),
                            },
                        }
                    }
                }
                Ok(n)
            }
        }
    }

    /// Takes up to `max` items: waits at most `timeout` for the first, then
    /// takes those that are there now (on Redis, in one more round trip).
    ///
    /// # Errors
    ///
    /// As [`get_timeout`](Queue::get_timeout) for the first item; an item
    /// after it that does not decode ends the batch with its error (the
    /// items before it are lost with the batch).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = multiproc::Queue::new()?;
    /// q.put_many(0..5)?;
    /// assert_eq!(q.get_many(3, Duration::from_secs(1))?, [0, 1, 2]);
    /// assert_eq!(q.get_many(3, Duration::from_secs(1))?, [3, 4]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn get_many(&self, max: usize, timeout: Duration) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(max.min(1024));
        if max == 0 {
            return Ok(out);
        }
        // Every look at the server keeps within `timeout` (at least a
        // moment), even one that finds it silent.
        #[cfg(feature = "redis")]
        let wait = deadline_after(timeout);
        #[cfg(feature = "redis")]
        if let Imp::Redis(q, max_message) = &self.imp {
            // What is there now, in one round trip; only an empty queue
            // waits for its first item.
            if let Some(batch) = q.take_now(max, wait)? {
                for bytes in batch {
                    out.push(Self::decode_remote(&bytes, *max_message)?);
                }
                return Ok(out);
            }
        }
        out.push(self.get_timeout(timeout)?);
        match &self.imp {
            Imp::Local(_) => {
                while out.len() < max {
                    match self.try_get() {
                        Ok(item) => out.push(item),
                        Err(crate::Error::Empty | crate::Error::Closed) => break,
                        Err(e) => return Err(e),
                    }
                }
            }
            #[cfg(feature = "redis")]
            Imp::Redis(q, max_message) => {
                for bytes in q.take_more(max - 1, wait)? {
                    out.push(Self::decode_remote(&bytes, *max_message)?);
                }
            }
        }
        Ok(out)
    }

    /// An item taken from Redis, refused if larger than `max` bytes.
    #[cfg(feature = "redis")]
    fn decode_remote(bytes: &[u8], max: usize) -> Result<T> {
        if bytes.len() > max {
            return Err(crate::Error::FrameTooLarge { len: bytes.len() as u64, max: max as u64 });
        }
        RedisQueue::decode(bytes)
    }

    /// Python's `qsize()`: the number of items in the queue (exact).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::new()?;
    /// q.put(1)?;
    /// q.put(2)?;
    /// assert_eq!(q.len(), 2);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    ///
    /// On Redis, an item taken by a consumer counts until it is
    /// acknowledged; if the server cannot be reached, the failure is logged
    /// and the length is 0 (see [`try_len`](Queue::try_len)).
    pub fn len(&self) -> usize {
        self.try_len().unwrap_or_else(|e| {
            log::warn!("{self:?}: len failed: {e}");
            0
        })
    }

    /// As [`len`](Queue::len), with the back-end's failure as an error.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) on Redis; never on a local
    /// queue.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::new()?;
    /// q.put(1)?;
    /// assert_eq!(q.try_len()?, 1);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_len(&self) -> Result<usize> {
        match &self.imp {
            Imp::Local(raw) => Ok(raw.len()),
            #[cfg(feature = "redis")]
            Imp::Redis(q, _) => q.len(),
        }
    }

    /// Python's `empty()`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(multiproc::Queue::<u8>::new()?.is_empty());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Python's `full()`: whether a bounded queue holds `maxsize` items.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!multiproc::Queue::<u8>::new()?.is_full());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn is_full(&self) -> bool {
        self.maxsize().is_some_and(|max| self.len() >= max)
    }

    /// The item bound, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::Queue::<u8>::bounded(4)?.maxsize(), Some(4));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn maxsize(&self) -> Option<usize> {
        let max = match &self.imp {
            Imp::Local(raw) => raw.ring().maxsize(),
            #[cfg(feature = "redis")]
            Imp::Redis(q, _) => q.spec().maxsize,
        };
        match max {
            0 => None,
            max => Some(usize::try_from(max).unwrap_or(usize::MAX)),
        }
    }

    /// Closes the queue, for every handle in every process: later puts fail
    /// with [`PutError::Closed`]; gets take what is left, then fail with
    /// [`Error::Closed`](crate::Error::Closed); blocked callers wake up.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::new()?;
    /// q.put(1)?;
    /// q.close();
    /// assert!(q.put(2).is_err());
    /// assert_eq!(q.get()?, 1);
    /// assert!(matches!(q.get(), Err(multiproc::Error::Closed)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    ///
    /// On Redis, a consumer blocked on the server sees the close within
    /// 200 ms (it blocks for 100 ms at a time, and the server answers the
    /// end of a block on its 100 ms timer); a failure to reach the server
    /// is logged.
    pub fn close(&self) {
        match &self.imp {
            Imp::Local(raw) => raw.ring().close(),
            #[cfg(feature = "redis")]
            Imp::Redis(q, _) => {
                if let Err(e) = q.close() {
                    log::warn!("{self:?}: close failed: {e}");
                }
            }
        }
    }

    /// Whether the queue was closed.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!multiproc::Queue::<u8>::new()?.is_closed());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        match &self.imp {
            Imp::Local(raw) => raw.ring().is_closed(),
            #[cfg(feature = "redis")]
            Imp::Redis(q, _) => q.is_closed().unwrap_or_else(|e| {
                log::warn!("{self:?}: is_closed failed: {e}");
                false
            }),
        }
    }

    /// This handle with another limit on the size of an item (see
    /// [`QueueBuilder::max_message`]): for a handle that arrived from
    /// another process, whose limit is the default here.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiproc::Queue::<Vec<u8>>::new()?.with_max_message(100 << 20);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[must_use]
    pub fn with_max_message(mut self, bytes: usize) -> Self {
        self.imp = match self.imp {
            Imp::Local(raw) => Imp::Local(raw.with_max_message(bytes)),
            #[cfg(feature = "redis")]
            Imp::Redis(q, _) => Imp::Redis(q, bytes),
        };
        self
    }

    /// Which back-end holds the queue: `"local"` (shared memory on this
    /// host) or `"redis"`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::Queue::<u8>::new()?.backend(), "local");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn backend(&self) -> &'static str {
        match &self.imp {
            Imp::Local(_) => "local",
            #[cfg(feature = "redis")]
            Imp::Redis(..) => "redis",
        }
    }

    pub(crate) fn imp(&self) -> &Imp {
        &self.imp
    }

    fn put_wait(&self, item: T, wait: Wait) -> Result<(), PutError<T>> {
        match &self.imp {
            Imp::Local(raw) => raw.put(item, wait),
            #[cfg(feature = "redis")]
            Imp::Redis(q, max) => {
                let bytes = match q.encode(&item, *max) {
                    Ok(bytes) => bytes,
                    Err(e) => return Err(PutError::Failed(item, e)),
                };
                let until = match wait {
                    Wait::Forever => None,
                    Wait::Never => Some(std::time::Instant::now()),
                    Wait::Until(deadline) => deadline,
                };
                match q.put(&bytes, until) {
                    Ok(Put::Done) => Ok(()),
                    Ok(Put::Closed) => Err(PutError::Closed(item)),
                    Ok(Put::Full) if matches!(wait, Wait::Never) => Err(PutError::Full(item)),
                    Ok(Put::Full) => Err(PutError::Timeout(item)),
                    Err(e) => Err(PutError::Failed(item, e)),
                }
            }
        }
    }

    fn get_wait(&self, wait: Wait) -> Result<T> {
        match &self.imp {
            Imp::Local(raw) => raw.get(wait),
            #[cfg(feature = "redis")]
            Imp::Redis(q, max) => {
                let until = match wait {
                    Wait::Forever => None,
                    Wait::Never => Some(std::time::Instant::now()),
                    Wait::Until(deadline) => deadline,
                };
                match q.get(until)? {
                    Got::Item(bytes) if bytes.len() > *max => Err(crate::Error::FrameTooLarge {
                        len: bytes.len() as u64,
                        max: *max as u64,
                    }),
                    Got::Item(bytes) => RedisQueue::decode(&bytes),
                    Got::Closed => Err(crate::Error::Closed),
                    Got::Empty if matches!(wait, Wait::Never) => Err(crate::Error::Empty),
                    Got::Empty => Err(crate::Error::Timeout),
                }
            }
        }
    }
}

/// A queue handle as it travels: the ring's descriptor, or the Redis
/// address, name and settings (a handle that reaches another process opens
/// the same queue there).
#[derive(Serialize, Deserialize)]
enum Wire<L, R> {
    Local(L),
    Redis(R),
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match &self.imp {
            Imp::Local(raw) => Wire::<&RawQueue, ()>::Local(raw).serialize(serializer),
            #[cfg(feature = "redis")]
            Imp::Redis(q, _) => Wire::<(), &RedisSpec>::Redis(q.spec()).serialize(serializer),
        }
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        #[cfg(feature = "redis")]
        type Remote = RedisSpec;
        #[cfg(not(feature = "redis"))]
        type Remote = ();
        let imp = match Wire::<RawQueue, Remote>::deserialize(deserializer)? {
            Wire::Local(raw) => Imp::Local(raw),
            #[cfg(feature = "redis")]
            Wire::Redis(spec) => Imp::Redis(
                RedisQueue::open(spec).map_err(crate::transfer::codec::refuse)?,
                crate::transfer::DEFAULT_MAX_MESSAGE as usize,
            ),
            #[cfg(not(feature = "redis"))]
            Wire::Redis(()) => {
                return Err(crate::transfer::codec::refuse(crate::Error::Unsupported {
                    reason: "a Redis queue reached a build without the `redis` feature",
                }));
            }
        };
        Ok(Self { imp, _items: PhantomData })
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.imp {
            Imp::Local(raw) => {
                f.debug_struct("Queue").field("backend", &"local").field("len", &raw.len()).finish()
            }
            #[cfg(feature = "redis")]
            Imp::Redis(q, _) => f
                .debug_struct("Queue")
                .field("backend", &"redis")
                .field("address", &q.link().address())
                .field("name", &q.spec().name)
                .field("delivery", &q.spec().delivery)
                .finish(),
        }
    }
}
