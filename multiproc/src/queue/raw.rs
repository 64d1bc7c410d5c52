//! `RawQueue`: the untyped queue under `Queue`, `SimpleQueue` and
//! `JoinableQueue`: a ring segment, and the encode/decode loops over it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::PutError;
use crate::shm::park::{self, deadline_after};
use crate::shm::ring::{self, Bytes, Consumer, Producer, RawRing, Stop};
use crate::shm::segment::Shape;
use crate::shm::{Kind, Segment};
use crate::transfer::codec::{self, Appender};
use crate::transfer::scratch::with_scratch;
use crate::{Error, Result};

/// The default size of a queue's ring.
pub(crate) const DEFAULT_RING: usize = 1 << 20;
/// How long a `try_` put waits for its turn at the producer lock. Others
/// hold it only while they copy an item in (microseconds) or stream one
/// larger than the ring; a `try_put` waits for neither room nor a stream.
const TURN_GRACE: Duration = Duration::from_millis(1);
/// How often a put that may be called off ([`RawQueue::put_payload_while`])
/// asks whether to go on.
const CHECK_EVERY: Duration = Duration::from_millis(20);

/// How a get or put may wait.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// As long as it takes.
    Forever,
    /// Not at all (`try_` forms).
    Never,
    /// Until this instant.
    Until(Option<Instant>),
}

impl Wait {
    #[inline]
    fn deadline(self) -> Option<Instant> {
        match self {
            Self::Forever => None,
            Self::Never => Some(Instant::now()),
            Self::Until(deadline) => deadline,
        }
    }
}

#[derive(Clone)]
pub(crate) struct RawQueue {
    seg: Arc<Segment>,
    /// The largest message this handle puts or takes. Kept in this process,
    /// not in shared memory: a receiver's limit protects it from its peers,
    /// so no peer can raise it.
    max_message: usize,
}

/// [`DEFAULT_MAX_MESSAGE`](crate::transfer::DEFAULT_MAX_MESSAGE) as a size.
const DEFAULT_MAX: usize = crate::transfer::DEFAULT_MAX_MESSAGE as usize;

impl RawQueue {
    pub(crate) fn create(maxsize: usize, ring_bytes: usize) -> Result<Self> {
        let ring_bytes = ring_bytes.max(4096);
        let seg = Segment::create_ring(Kind::Queue, size_of::<RawRing>(), ring_bytes)?;
        // A ring larger than the default is asked for to carry large
        // messages, which pass through all of it within a few: back it with
        // memory now (see `Segment::populate`). A default ring, as the many
        // small queues, pipes and pools use, stays cheap to make (35 µs
        // here, 1.4 ms populated) and fills in as it is used.
        if ring_bytes > DEFAULT_RING {
            seg.populate()?;
        }
        seg.at::<RawRing>(0).init(maxsize as u64);
        Ok(Self { seg, max_message: DEFAULT_MAX })
    }

    /// A queue over a ring segment made by the caller (with more in its
    /// body after the [`RawRing`]).
    pub(crate) fn from_segment(seg: Arc<Segment>) -> Self {
        Self { seg, max_message: DEFAULT_MAX }
    }

    /// The segment under the queue.
    pub(crate) fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    /// Drops message number `ticket` (its position among all puts, from 1)
    /// if it is the next to take and no consumer holds the consumer side
    /// now; `true` if dropped. Never waits: a consumer that holds the side
    /// meets the message itself (the caller has told it to skip it).
    pub(crate) fn drop_if_next(&self, ticket: u64) -> bool {
        self.drop_if_next_with(ticket, |_, _| {})
    }

    /// Drops message number `ticket` as [`drop_if_next`](Self::drop_if_next)
    /// does, handing its payload and flags to `dropped` first (holding the
    /// consumer side) if it is a message of one record.
    pub(crate) fn drop_if_next_with(&self, ticket: u64, dropped: impl FnOnce(&[u8], u32)) -> bool {
        let ring = self.ring();
        let Some(mut consumer) = ring.consumer(self.bytes(), None, true) else { return false };
        if ring.counts().1 + 1 != ticket {
            return false;
        }
        let mut dropped = Some(dropped);
        while let Some(record) = consumer.peek() {
            let (flags, len) = (record.flags, record.payload.len());
            if flags & (ring::FIRST | ring::LAST) == ring::FIRST | ring::LAST
                && let Some(dropped) = dropped.take()
            {
                dropped(record.payload, flags);
            }
            let last = flags & ring::LAST != 0;
            consumer.consume(len, last);
            if last {
                return true;
            }
        }
        false
    }

    /// Holds the producers' turn (no one puts meanwhile), waiting for it.
    pub(crate) fn producer_turn(&self) -> Option<ring::Producer<'_>> {
        self.ring().producer(self.bytes(), None)
    }

    /// Holds the consumer side if no one does now.
    pub(crate) fn try_consumer_turn(&self) -> Option<ring::Consumer<'_>> {
        self.ring().consumer(self.bytes(), None, true)
    }

    /// This handle with another message-size limit.
    pub(crate) fn with_max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes.max(1);
        self
    }

    /// The error for a message of `len` bytes over this handle's limit.
    fn too_large(&self, len: usize) -> Error {
        Error::FrameTooLarge { len: len as u64, max: self.max_message as u64 }
    }

    #[inline]
    pub(crate) fn ring(&self) -> &RawRing {
        self.seg.at(0)
    }

    #[inline]
    fn bytes(&self) -> Bytes {
        let (base, cap) = self.seg.ring();
        Bytes { base, cap }
    }

    /// Puts `item`, waiting as `wait` allows.
    #[inline]
    pub(crate) fn put<T: Serialize>(&self, item: T, wait: Wait) -> Result<(), PutError<T>> {
        match self.put_payload(&Postcard(&item), 0, wait) {
            Ok(()) => Ok(()),
            Err(PutFail::Full) => Err(PutError::Full(item)),
            Err(PutFail::Timeout) => Err(PutError::Timeout(item)),
            Err(PutFail::Closed) => Err(PutError::Closed(item)),
            Err(PutFail::Failed(error)) => Err(PutError::Failed(item, error)),
        }
    }

    /// Puts a copy of `item`, waiting as `wait` allows.
    #[inline]
    pub(crate) fn put_ref<T: Serialize + ?Sized>(&self, item: &T, wait: Wait) -> Result<()> {
        match self.put_payload(&Postcard(item), 0, wait) {
            Ok(()) => Ok(()),
            Err(PutFail::Full) => Err(Error::Full),
            Err(PutFail::Timeout) => Err(Error::Timeout),
            Err(PutFail::Closed) => Err(Error::Closed),
            Err(PutFail::Failed(error)) => Err(error),
        }
    }

    /// Puts one message made by `payload`, its first record marked with
    /// `flags` (besides `FIRST`/`LAST`), waiting as `wait` allows. All or
    /// nothing: if it fails, no part of the message is delivered.
    #[inline]
    pub(crate) fn put_payload<P: Payload + ?Sized>(
        &self,
        payload: &P,
        flags: u32,
        wait: Wait,
    ) -> Result<(), PutFail> {
        let budget = Budget {
            deadline: wait.deadline(),
            try_only: matches!(wait, Wait::Never),
            keep_going: None,
            announce: None,
        };
        self.put_within(payload, flags, &budget)
    }

    /// Puts one message made by `payload` (its first record marked with
    /// `flags`) as `wait` allows; with it, the message's number among all
    /// puts to this queue (from 1), its *ticket*.
    /// `numbered` runs with the ticket holding the producers' turn, right
    /// before the message's first record is published.
    pub(crate) fn put_numbered<P: Payload + ?Sized>(
        &self,
        payload: &P,
        flags: u32,
        wait: Wait,
        numbered: &dyn Fn(u64) -> Result<()>,
    ) -> (Result<(), PutFail>, u64) {
        let ticket = std::cell::Cell::new(0);
        let ring = self.ring();
        let number = || {
            ticket.set(ring.counts().0 + 1);
            numbered(ticket.get())
        };
        let budget = Budget {
            deadline: wait.deadline(),
            try_only: matches!(wait, Wait::Never),
            keep_going: None,
            announce: Some((&number, std::cell::Cell::new(false))),
        };
        let result = self.put_within(payload, flags, &budget);
        (result, ticket.get())
    }

    /// Puts one message, waiting as long as it takes while `keep_going()`
    /// (asked every [`CHECK_EVERY`] of waiting) holds; once it does not,
    /// fails with `Closed` and delivers nothing.
    ///
    /// `announce`, if given, runs once, holding the producers' turn, right
    /// before the message's first record is published: what it does (send
    /// the message's descriptors on a side channel) is therefore in the same
    /// order, among all producers of every process, as the messages.
    pub(crate) fn put_payload_while<P: Payload + ?Sized>(
        &self,
        payload: &P,
        flags: u32,
        keep_going: &dyn Fn() -> bool,
        announce: Option<&dyn Fn() -> Result<()>>,
    ) -> Result<(), PutFail> {
        let budget = Budget {
            deadline: None,
            try_only: false,
            keep_going: Some(keep_going),
            announce: announce.map(|f| (f, std::cell::Cell::new(false))),
        };
        self.put_within(payload, flags, &budget)
    }

    #[inline]
    fn put_within<P: Payload + ?Sized>(
        &self,
        payload: &P,
        flags: u32,
        budget: &Budget<'_>,
    ) -> Result<(), PutFail> {
        // The fast path: our turn at once, and room for the item. (Taking
        // the turn waits only for another producer's write: nobody holds it
        // while waiting for room.)
        {
            let ring = self.ring();
            // A `try_` put that finds the turn free reads no clock.
            let producer = if budget.try_only {
                ring.try_producer(self.bytes())
            } else {
                ring.producer(self.bytes(), budget.deadline)
            };
            if let Some(mut producer) = producer
                && let Some(Ok(())) = producer.room(ring::HEADER + 8, true)
            {
                if write_whole(&mut producer, payload, flags, budget, self.max_message)? {
                    return Ok(());
                }
                drop(producer);
                let size = payload.size().map_err(PutFail::Failed)?;
                return self.put_slow(payload, flags, budget, Some(size));
            }
        }
        self.put_slow(payload, flags, budget, None)
    }

    /// The put loop: take a turn, check for room (waiting for it without
    /// the lock), write; stream an item larger than the ring. `size` is the
    /// item's encoded size, if known (it is computed only if the item did
    /// not fit where it was first written).
    #[inline(never)]
    fn put_slow<P: Payload + ?Sized>(
        &self,
        payload: &P,
        flags: u32,
        budget: &Budget<'_>,
        mut size: Option<usize>,
    ) -> Result<(), PutFail> {
        let (ring, bytes) = (self.ring(), self.bytes());
        let max = bytes.cap.saturating_sub(ring::HEADER);
        let stopped = |stop: Stop| match stop {
            Stop::Closed => PutFail::Closed,
            _ if budget.try_only => PutFail::Full,
            _ => PutFail::Timeout,
        };
        // A `try_` put waits for its turn (briefly) but not for room.
        let turn = if budget.try_only { deadline_after(TURN_GRACE) } else { budget.deadline };
        loop {
            if let Some(size) = size.filter(|&size| size > self.max_message) {
                return Err(PutFail::Failed(self.too_large(size)));
            }
            let need = match size {
                None => ring::HEADER + 8,
                // It never fits at once: a `try_` put cannot put it.
                Some(size) if size > max && budget.try_only => return Err(PutFail::Full),
                // Larger than the ring: room for the first piece.
                Some(size) if size > max => 2 * ring::HEADER + chunk_min(max),
                Some(size) => ring::HEADER + size,
            };
            let mut producer = budget
                .run(turn, |d| ring.producer(bytes, d).ok_or(Stop::Timeout))
                .map_err(stopped)?;
            match producer.room(need, true) {
                Some(Ok(())) => {}
                Some(Err(stop)) => return Err(stopped(stop)),
                None => {
                    // Room is awaited without the lock, which producers hold
                    // only to write: a put that waits never holds up others.
                    drop(producer);
                    budget
                        .run(budget.deadline, |d| ring.wait_for_room(bytes.cap, need, d))
                        .map_err(stopped)?;
                    continue;
                }
            }
            if size.is_some_and(|size| size > max) {
                return with_scratch(|scratch| {
                    let bytes = payload.bytes(scratch).map_err(PutFail::Failed)?;
                    budget.announce().map_err(PutFail::Failed)?;
                    stream(&mut producer, bytes, flags, budget).map_err(stopped)
                });
            }
            if write_whole(&mut producer, payload, flags, budget, self.max_message)? {
                return Ok(());
            }
            size = Some(payload.size().map_err(PutFail::Failed)?);
        }
    }

    /// Gets an item, waiting as `wait` allows.
    #[inline]
    pub(crate) fn get<T: DeserializeOwned>(&self, wait: Wait) -> Result<T> {
        self.get_with(wait, |bytes, _| postcard::from_bytes(bytes).map_err(Error::decode::<T>))?
    }

    /// Takes one message and hands its bytes and first-record flags to
    /// `decode`, waiting as `wait` allows. `decode` runs holding the
    /// consumer side, before the message counts as taken.
    #[inline]
    pub(crate) fn get_with<R>(
        &self,
        wait: Wait,
        decode: impl FnOnce(&[u8], u32) -> R,
    ) -> Result<R> {
        let ring = self.ring();
        let try_only = matches!(wait, Wait::Never);
        // A `try_` get takes the side only if it is free: no deadline (and
        // no clock) needed.
        let deadline = if try_only { None } else { wait.deadline() };
        let Some(mut consumer) = ring.consumer(self.bytes(), deadline, try_only) else {
            return Err(if try_only { Error::Empty } else { Error::Timeout });
        };
        let waited = if !try_only {
            consumer.wait_for_record(deadline)
        } else if consumer.available() {
            Ok(())
        } else if ring.is_closed() {
            Err(Stop::Closed)
        } else {
            Err(Stop::Timeout)
        };
        // The fast path: a whole message at the head.
        match waited {
            Ok(()) => {}
            Err(Stop::Closed) => return Err(Error::Closed),
            Err(_) => return Err(if try_only { Error::Empty } else { Error::Timeout }),
        }
        if let Some(record) = consumer.peek() {
            let (flags, len) = (record.flags, record.payload.len());
            if flags & (ring::FIRST | ring::LAST | ring::ABORT) == ring::FIRST | ring::LAST {
                if len > self.max_message {
                    consumer.consume(len, true);
                    return Err(self.too_large(len));
                }
                let result = decode(record.payload, flags);
                consumer.consume(len, true);
                return Ok(result);
            }
        }
        Self::get_slow(consumer, wait, decode, self.max_message)
    }

    /// Everything but the fast path: streams, called-off streams, and a
    /// corrupted ring.
    #[inline(never)]
    fn get_slow<R>(
        consumer: Consumer<'_>,
        wait: Wait,
        decode: impl FnOnce(&[u8], u32) -> R,
        max_message: usize,
    ) -> Result<R> {
        // A streamed message is put together in this thread's scratch
        // buffer, kept from one message to the next.
        with_scratch(|scratch| Self::reassemble(consumer, wait, decode, max_message, scratch))
    }

    fn reassemble<R>(
        mut consumer: Consumer<'_>,
        wait: Wait,
        decode: impl FnOnce(&[u8], u32) -> R,
        max_message: usize,
        scratch: &mut Vec<u8>,
    ) -> Result<R> {
        let too_large =
            |len: usize| Error::FrameTooLarge { len: len as u64, max: max_message as u64 };
        let try_only = matches!(wait, Wait::Never);
        // The flags of the message being put together in `scratch`.
        let mut partial: Option<u32> = None;
        // The producer of the stream being read claimed its last piece: it
        // can no longer be abandoned, so wait for it (while it lives).
        let mut finishing = false;
        loop {
            let waited = match &partial {
                None => consumer.wait_for_record(wait.deadline()),
                Some(_) => consumer.wait_for_piece(if finishing { None } else { wait.deadline() }),
            };
            match waited {
                Ok(()) => {}
                Err(Stop::ProducerDied) => {
                    (partial, finishing) = (None, false);
                    continue;
                }
                Err(Stop::Closed) => return Err(Error::Closed),
                Err(Stop::Timeout) => {
                    if partial.is_some() && !consumer.abandon_stream() {
                        finishing = true;
                        continue;
                    }
                    // Abandoned: its producer starts the message over.
                    return Err(if try_only { Error::Empty } else { Error::Timeout });
                }
            }
            let Some(record) = consumer.peek() else {
                consumer.discard_all();
                return Err(Error::protocol("corrupted queue ring; its contents were dropped"));
            };
            let (flags, len) = (record.flags, record.payload.len());
            let first = flags & ring::FIRST != 0;
            let last = flags & ring::LAST != 0;
            if flags & ring::ABORT != 0 {
                // Its producer called the stream off: it was never put.
                (partial, finishing) = (None, false);
                consumer.consume(len, false);
                continue;
            }
            // A message over the limit is dropped as it comes, never held
            // whole: the rest of its pieces are skipped as orphans.
            // (Pieces of a message dropped earlier, or whose consumer died,
            // come without a partial item and are skipped below anyway.)
            let held = match (&partial, first) {
                (Some(_), false) => scratch.len(),
                _ => 0,
            };
            if held + len > max_message && (first || partial.is_some()) {
                consumer.consume(len, last);
                return Err(too_large(held + len));
            }
            match (partial, first) {
                (None, true) if last => {
                    let result = decode(record.payload, flags);
                    consumer.consume(len, true);
                    return Ok(result);
                }
                (None, true) => {
                    scratch.clear();
                    scratch.extend_from_slice(record.payload);
                    partial = Some(flags);
                    consumer.consume(len, false);
                }
                // The rest of a message whose consumer died: skip it.
                (None, false) => consumer.consume(len, last),
                // A new message while streaming: the streaming producer died.
                (Some(_), true) => (partial, finishing) = (None, false),
                (Some(first_flags), false) => {
                    scratch.extend_from_slice(record.payload);
                    if last {
                        // Decoded before the message is marked taken, as on
                        // the fast path: `decode` runs while it is the next.
                        let result = decode(scratch, first_flags);
                        consumer.consume(len, true);
                        return Ok(result);
                    }
                    consumer.consume(len, false);
                }
            }
        }
    }

    /// Whether a message (or part of one) is waiting.
    pub(crate) fn has_data(&self) -> bool {
        self.ring().has_data()
    }
}

/// Why a payload was not put.
#[derive(Debug)]
pub(crate) enum PutFail {
    Full,
    Timeout,
    /// The ring is closed, or the put was called off (`put_payload_while`).
    Closed,
    Failed(Error),
}

/// How long a put may wait.
/// What runs before a message's first record (see
/// [`RawQueue::put_payload_while`]).
type Announce<'a> = &'a dyn Fn() -> Result<()>;

struct Budget<'a> {
    /// Until when (`None`: as long as it takes).
    deadline: Option<Instant>,
    /// A `try_` put: wait for nothing but a short turn.
    try_only: bool,
    /// Asked every [`CHECK_EVERY`] of waiting whether to go on.
    keep_going: Option<&'a dyn Fn() -> bool>,
    /// Runs once before the first record is published (see
    /// [`RawQueue::put_payload_while`]), and whether it ran.
    announce: Option<(Announce<'a>, std::cell::Cell<bool>)>,
}

impl Budget<'_> {
    /// Runs `announce` unless it already ran.
    fn announce(&self) -> Result<()> {
        match &self.announce {
            Some((announce, done)) if !done.get() => {
                done.set(true);
                announce()
            }
            _ => Ok(()),
        }
    }

    /// Runs `attempt` (a wait until the deadline it is given) until
    /// `deadline`, in slices between which `keep_going` is asked, if set.
    fn run<T>(
        &self,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(Option<Instant>) -> Result<T, Stop>,
    ) -> Result<T, Stop> {
        let Some(keep_going) = self.keep_going else { return attempt(deadline) };
        loop {
            let slice = match (deadline_after(CHECK_EVERY), deadline) {
                (Some(slice), Some(deadline)) => Some(slice.min(deadline)),
                (slice, deadline) => slice.or(deadline),
            };
            match attempt(slice) {
                Err(Stop::Timeout) if park::time_left(deadline).is_some() => {
                    if !keep_going() {
                        return Err(Stop::Closed);
                    }
                }
                other => return other,
            }
        }
    }
}

/// Something that writes one message's bytes.
pub(crate) trait Payload {
    /// Writes into `buf`; `Ok(None)` if it does not fit.
    fn write(&self, buf: &mut [u8]) -> Result<Option<usize>>;
    /// The exact size.
    fn size(&self) -> Result<usize>;
    /// The bytes, for streaming: borrowed, or encoded into `scratch`.
    fn bytes<'a>(&'a self, scratch: &'a mut Vec<u8>) -> Result<&'a [u8]>;
}

/// A value in postcard encoding.
pub(crate) struct Postcard<'a, T: ?Sized>(pub(crate) &'a T);

impl<T: Serialize + ?Sized> Payload for Postcard<'_, T> {
    fn write(&self, buf: &mut [u8]) -> Result<Option<usize>> {
        match postcard::to_slice(self.0, buf) {
            Ok(written) => Ok(Some(written.len())),
            Err(postcard::Error::SerializeBufferFull) => Ok(None),
            Err(e) => Err(encode_error(self.0, e)),
        }
    }

    fn size(&self) -> Result<usize> {
        postcard::experimental::serialized_size(self.0).map_err(|e| encode_error(self.0, e))
    }

    fn bytes<'a>(&'a self, scratch: &'a mut Vec<u8>) -> Result<&'a [u8]> {
        let out = std::mem::take(scratch);
        *scratch = postcard::serialize_with_flavor(self.0, Appender(out))
            .map_err(|e| encode_error(self.0, e))?;
        Ok(scratch)
    }
}

/// Why `value` did not encode for a queue. A handle holding a descriptor
/// (a `Lock`, a `Connection`, an `FdHandle`) refuses to encode without
/// multiproc's descriptor table, which a queue's ring has no room for: say
/// so, and what to do instead, rather than the codec's bare refusal.
/// Runs only on failure (it encodes `value` once more to find out).
#[cold]
fn encode_error<T: Serialize + ?Sized>(value: &T, e: postcard::Error) -> Error {
    let (_, had_fds) = codec::carried_fds(|| postcard::experimental::serialized_size(value));
    if had_fds {
        Error::Unsupported { reason: DESCRIPTORS_IN_A_QUEUE }
    } else {
        Error::Encode { source: e.into() }
    }
}

/// Why a value holding a descriptor cannot be put in a queue.
const DESCRIPTORS_IN_A_QUEUE: &str = "a queue carries bytes only, and this value holds a file descriptor (a Lock, \
     a Connection, an FdHandle or another handle): pass it to the process as an \
     argument, or send it over a Connection";

/// A value in postcard encoding, written straight into the ring, that
/// refuses (and says so) if it carries file descriptors: those travel
/// beside the bytes, which takes the caller's other path.
pub(crate) struct WithoutFds<'a, T: ?Sized> {
    value: &'a T,
    had_fds: std::cell::Cell<bool>,
}

impl<'a, T: Serialize + ?Sized> WithoutFds<'a, T> {
    pub(crate) fn new(value: &'a T) -> Self {
        Self { value, had_fds: std::cell::Cell::new(false) }
    }

    /// Whether a put failed because the value carries descriptors.
    pub(crate) fn had_fds(&self) -> bool {
        self.had_fds.get()
    }

    fn check<R>(&self, (result, fds): (Result<R>, bool)) -> Result<R> {
        if fds {
            self.had_fds.set(true);
            return Err(Error::Unsupported { reason: "a value with descriptors" });
        }
        result
    }
}

impl<T: Serialize + ?Sized> Payload for WithoutFds<'_, T> {
    fn write(&self, buf: &mut [u8]) -> Result<Option<usize>> {
        self.check(codec::carried_fds(|| Postcard(self.value).write(buf)))
    }

    fn size(&self) -> Result<usize> {
        self.check(codec::carried_fds(|| Postcard(self.value).size()))
    }

    fn bytes<'a>(&'a self, scratch: &'a mut Vec<u8>) -> Result<&'a [u8]> {
        let (result, fds) =
            codec::carried_fds(|| Postcard(self.value).bytes(scratch).map(<[u8]>::len));
        self.check((result, fds))?;
        Ok(scratch)
    }
}

impl Payload for [u8] {
    fn write(&self, buf: &mut [u8]) -> Result<Option<usize>> {
        Ok(buf.get_mut(..self.len()).map(|dst| {
            dst.copy_from_slice(self);
            self.len()
        }))
    }

    fn size(&self) -> Result<usize> {
        Ok(self.len())
    }

    fn bytes<'a>(&'a self, _scratch: &'a mut Vec<u8>) -> Result<&'a [u8]> {
        Ok(self)
    }
}

/// Writes `payload` as one record if it fits in the free part of the ring;
/// `false` if it does not.
#[inline(never)]
fn write_whole<P: Payload + ?Sized>(
    producer: &mut Producer<'_>,
    payload: &P,
    flags: u32,
    budget: &Budget<'_>,
    max_message: usize,
) -> Result<bool, PutFail> {
    let max = producer.max_payload();
    let area = producer.payload_area();
    let area_len = area.len().min(max);
    match payload.write(&mut area[..area_len]).map_err(PutFail::Failed)? {
        Some(len) if len > max_message => {
            Err(PutFail::Failed(Error::FrameTooLarge { len: len as u64, max: max_message as u64 }))
        }
        Some(len) => {
            budget.announce().map_err(PutFail::Failed)?;
            producer.publish(len, ring::FIRST | ring::LAST | flags);
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The least payload a stream waits for room to write (but the last).
fn chunk_min(max_payload: usize) -> usize {
    (max_payload / 4).max(8)
}

/// Writes a message larger than the ring as a stream of records, all or
/// nothing: if the budget runs out mid-way, the stream is called off
/// (`ABORT`) and no consumer delivers it. A stream that a consumer abandons
/// is called off and started over.
fn stream(
    producer: &mut Producer<'_>,
    bytes: &[u8],
    flags: u32,
    budget: &Budget<'_>,
) -> Result<(), Stop> {
    let chunk_min = chunk_min(producer.max_payload());
    'message: loop {
        let start = producer.begin_stream();
        let mut sent = 0;
        while sent < bytes.len() {
            let first = sent == 0;
            let left = bytes.len() - sent;
            // The piece, and room for an `ABORT` header behind it.
            let want = 2 * ring::HEADER + chunk_min.min(left);
            let room = budget.run(budget.deadline, |d| producer.wait_for_room(want, first, d));
            if let Err(stop) = room {
                if !first {
                    producer.abort_stream(start);
                }
                return Err(stop);
            }
            if !first && producer.stream_abandoned() {
                producer.abort_stream(start);
                continue 'message;
            }
            let area = producer.payload_area();
            let n = area.len().saturating_sub(ring::HEADER).min(left);
            area[..n].copy_from_slice(&bytes[sent..sent + n]);
            let last = n == left;
            if last && !producer.finish_stream() {
                producer.abort_stream(start);
                continue 'message;
            }
            let mut record_flags = 0;
            if first {
                record_flags |= ring::FIRST | flags;
            }
            if last {
                record_flags |= ring::LAST;
            }
            producer.publish(n, record_flags);
            sent += n;
        }
        return Ok(());
    }
}

impl RawQueue {
    /// Python's `qsize()`: messages in the queue now.
    pub(crate) fn len(&self) -> usize {
        usize::try_from(self.ring().len()).unwrap_or(usize::MAX)
    }
}

/// Serializes a queue as its segment.
impl Serialize for RawQueue {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        crate::shm::segment::serialize(&self.seg, serializer)
    }
}

impl<'de> serde::Deserialize<'de> for RawQueue {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let seg =
            crate::shm::segment::deserialize(deserializer, Kind::Queue, Shape::default(), |_| {
                Some(size_of::<RawRing>())
            })?;
        Ok(Self { seg, max_message: DEFAULT_MAX })
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    /// Bytes of memory backing the queue's segment now.
    fn resident(queue: &RawQueue) -> u64 {
        let stat = rustix::fs::fstat(queue.segment().as_fd()).expect("fstat");
        stat.st_blocks as u64 * 512
    }

    #[test]
    fn a_ring_larger_than_the_default_is_backed_with_memory_at_creation() {
        let ring = 4 * DEFAULT_RING;
        let queue = RawQueue::create(0, ring).expect("queue");
        assert!(resident(&queue) >= ring as u64, "{} bytes resident", resident(&queue));
        let small = RawQueue::create(0, 64 << 10).expect("queue");
        assert!(resident(&small) < 64 << 10, "a small ring fills in as it is used");
    }
}
