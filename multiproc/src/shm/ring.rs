//! A crash-safe multi-producer, multi-consumer byte-record ring.
//!
//! Producers take the producer lock, consumers the consumer lock (both
//! robust), so each side has one writer at a time; the two sides meet only
//! through the committed positions `tail` (written by the producer side) and
//! `head` (written by the consumer side). A record is an 8-byte header
//! (payload length, flags) and its payload, padded to 8 bytes; it becomes
//! visible only when `tail` moves past it, so a producer killed while writing
//! leaves nothing behind. The ring is mapped twice in a row, so a record is
//! always contiguous in memory.
//!
//! A message is one record (`FIRST | LAST`) or, when larger than the ring, a
//! stream of records `FIRST`, ..., `LAST` written while the producer keeps its
//! lock. A consumer that meets a new `FIRST` in the middle of a stream, or
//! finds the streaming producer dead, drops the partial message; one that
//! meets continuation records without their `FIRST` (its predecessor died
//! mid-stream, or gave up on it) skips them.
//!
//! A stream can be called off by either side, and then counts as never put:
//! - A producer that runs out of time (or is told to stop) mid-stream takes
//!   its records back if no consumer has begun reading them (it holds the
//!   consumer lock for that moment), leaving the ring as it was; otherwise
//!   it writes an `ABORT` record, upon which consumers drop the partial
//!   message. Every piece leaves room for one more header behind it, so
//!   there is always room for the `ABORT`.
//! - A consumer whose deadline passed while the producer wrote nothing for
//!   [`STREAM_STALL`] marks the stream *abandoned* and leaves; the producer
//!   then writes `ABORT` and starts the message over, so it is still
//!   delivered whole, exactly once. Abandoning is a compare-and-swap against
//!   the producer's own swap to *finishing*, taken before it publishes the
//!   `LAST` piece: once that is taken, the consumer waits for the piece
//!   (while the producer lives) instead.
//!
//! Each side counts complete messages (`put_count`, `get_count`). Moving a
//! position and its count is two stores, so it goes through an *intent*: the
//! two new values are written, marked valid, applied, and cleared; a lock
//! holder that took over from a dead one applies a valid intent again.
#![allow(unsafe_code)] // `InShm` and the ring's byte slices: see SAFETY comments

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use super::Acquired;
use super::lock::RawLock;
use super::park;
use super::segment::InShm;

/// Record flags.
pub(crate) const FIRST: u32 = 1;
pub(crate) const LAST: u32 = 2;
/// On a first record: the message's file descriptors follow on a socket.
pub(crate) const FDS: u32 = 4;
/// An empty record that calls off the stream in progress.
pub(crate) const ABORT: u32 = 8;
/// Bytes of a record header.
pub(crate) const HEADER: usize = 8;
/// While in the middle of a streamed message, a consumer checks this often
/// that its producer still lives.
const STREAM_POLL: Duration = Duration::from_millis(20);
/// A streaming producer writes the next piece as soon as there is room; one
/// that wrote none for this long is stopped or starved, and a consumer past
/// its deadline gives up on it.
const STREAM_STALL: Duration = Duration::from_millis(50);

/// States of the stream in progress (`Shared::stream`).
const STREAMING: u32 = 0;
const ABANDONED: u32 = 1;
const FINISHING: u32 = 2;

/// A position and message count, moved together.
#[repr(C)]
#[derive(Debug, Default)]
struct Intent {
    valid: AtomicU32,
    _pad: u32,
    position: AtomicU64,
    count: AtomicU64,
}

impl Intent {
    fn commit(&self, position: &AtomicU64, count: &AtomicU64, new_position: u64, new_count: u64) {
        self.position.store(new_position, Ordering::Relaxed);
        self.count.store(new_count, Ordering::Relaxed);
        self.valid.store(1, Ordering::Release);
        position.store(new_position, Ordering::Release);
        count.store(new_count, Ordering::Release);
        self.valid.store(0, Ordering::Release);
    }

    fn recover(&self, position: &AtomicU64, count: &AtomicU64) {
        if self.valid.load(Ordering::Acquire) == 1 {
            position.store(self.position.load(Ordering::Relaxed), Ordering::Release);
            count.store(self.count.load(Ordering::Relaxed), Ordering::Release);
            self.valid.store(0, Ordering::Release);
        }
    }
}

/// One side of the ring: its lock, committed position and count, and the
/// futex its *opposite* side sleeps on.
#[repr(C, align(64))]
#[derive(Debug, Default)]
struct Side {
    lock: RawLock,
    /// Bumped when this side made progress the other side may wait for.
    seq: AtomicU32,
    position: AtomicU64,
    count: AtomicU64,
    intent: Intent,
    /// How many of the *other* side sleep on `seq`.
    sleepers: AtomicU32,
}

/// The control block of a ring.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RawRing {
    producer: Side,
    consumer: Side,
    shared: Shared,
}

#[repr(C, align(64))]
#[derive(Debug, Default)]
struct Shared {
    closed: AtomicU32,
    /// Bumped by `task_done`; joiners sleep on it.
    done_seq: AtomicU32,
    maxsize: AtomicU64,
    done_count: AtomicU64,
    joiners: AtomicU32,
    /// The stream in progress: `STREAMING`, `ABANDONED` or `FINISHING`.
    stream: AtomicU32,
}

// SAFETY: atomics (and padding) only, `#[repr(C)]`, no pointer.
unsafe impl InShm for RawRing {}

/// Why a ring operation did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The deadline passed.
    Timeout,
    /// The ring is closed (and, for consumers, empty).
    Closed,
    /// The producer of a partly read stream died.
    ProducerDied,
}

/// The ring's bytes, as mapped in this process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bytes {
    pub(crate) base: *mut u8,
    pub(crate) cap: usize,
}

impl Bytes {
    #[inline]
    fn at(&self, position: u64) -> *mut u8 {
        self.base.wrapping_add((position % self.cap as u64) as usize)
    }
}

#[inline]
fn record_size(payload: usize) -> u64 {
    (HEADER + payload.div_ceil(8) * 8) as u64
}

/// Waits on `side.seq` (after registering as a sleeper) until `ready()`.
fn sleep_until(
    side: &Side,
    deadline: Option<Instant>,
    mut ready: impl FnMut() -> Option<Result<(), Stop>>,
) -> Result<(), Stop> {
    if let Some(done) = ready() {
        return done;
    }
    if park::poll((&raw const side.seq).cast(), deadline, || ready().is_some())
        && let Some(done) = ready()
    {
        return done;
    }
    side.sleepers.fetch_add(1, Ordering::SeqCst);
    let result = loop {
        let seq = side.seq.load(Ordering::SeqCst);
        if let Some(done) = ready() {
            break done;
        }
        let Some(left) = park::time_left(deadline) else { break Err(Stop::Timeout) };
        park::wait(&side.seq, seq, left);
    };
    side.sleepers.fetch_sub(1, Ordering::Relaxed);
    result
}

/// Tells sleepers of the other side that `side` made progress.
#[inline]
fn announce(side: &Side) {
    fence(Ordering::SeqCst);
    if side.sleepers.load(Ordering::Relaxed) > 0 {
        side.seq.fetch_add(1, Ordering::SeqCst);
        park::wake(&side.seq, u32::MAX);
    }
}

impl RawRing {
    /// Sets the item bound (0: none), on creation only.
    pub(crate) fn init(&self, maxsize: u64) {
        self.shared.maxsize.store(maxsize, Ordering::Relaxed);
    }

    /// Messages in the ring.
    #[inline]
    pub(crate) fn len(&self) -> u64 {
        let get = self.consumer.count.load(Ordering::Acquire);
        self.producer.count.load(Ordering::Acquire).saturating_sub(get)
    }

    /// Whether a record waits to be read.
    pub(crate) fn has_data(&self) -> bool {
        self.producer.position.load(Ordering::Acquire)
            != self.consumer.position.load(Ordering::Acquire)
    }

    /// The item bound (0: none).
    #[inline]
    pub(crate) fn maxsize(&self) -> u64 {
        self.shared.maxsize.load(Ordering::Relaxed)
    }

    /// Closes the ring: puts fail from now on, gets drain what is there.
    pub(crate) fn close(&self) {
        self.shared.closed.store(1, Ordering::SeqCst);
        for side in [&self.producer, &self.consumer] {
            side.seq.fetch_add(1, Ordering::SeqCst);
            park::wake(&side.seq, u32::MAX);
        }
    }

    /// Whether the ring is closed.
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire) != 0
    }

    /// Free bytes in a ring of `cap` bytes, as seen now (racy unless the
    /// producer lock is held; never more than there are).
    #[inline]
    fn free(&self, cap: usize) -> usize {
        // The head first: it only grows towards the tail read after it.
        let head = self.consumer.position.load(Ordering::Acquire);
        let tail = self.producer.position.load(Ordering::Acquire);
        cap.saturating_sub(tail.wrapping_sub(head) as usize)
    }

    /// Whether a new message of `need` bytes (record included) fits now;
    /// `Err` once closed.
    #[inline]
    fn room_for(&self, cap: usize, need: usize, new_message: bool) -> Option<Result<(), Stop>> {
        // Closing refuses new messages; a stream already begun finishes.
        if new_message && self.is_closed() {
            return Some(Err(Stop::Closed));
        }
        let maxsize = self.maxsize();
        let items_ok = !new_message || maxsize == 0 || self.len() < maxsize;
        (items_ok && self.free(cap) >= need).then_some(Ok(()))
    }

    /// Waits, *without* the producer lock, until a new message of `need`
    /// bytes looks like it fits; the caller then takes the lock and checks
    /// again. Waiting for room without the lock keeps a blocked put from
    /// holding up other producers (a `try_put` or `put_timeout` among them).
    #[cold]
    pub(crate) fn wait_for_room(
        &self,
        cap: usize,
        need: usize,
        deadline: Option<Instant>,
    ) -> Result<(), Stop> {
        sleep_until(&self.consumer, deadline, || self.room_for(cap, need, true))
    }

    /// Complete messages put and taken so far.
    #[inline]
    pub(crate) fn counts(&self) -> (u64, u64) {
        let get = self.consumer.count.load(Ordering::Acquire);
        (self.producer.count.load(Ordering::Acquire), get)
    }

    /// Waits until `taken` messages were taken in all; `Err(Closed)` if the
    /// ring closed first.
    pub(crate) fn wait_until_taken(
        &self,
        taken: u64,
        deadline: Option<Instant>,
    ) -> Result<(), Stop> {
        sleep_until(&self.consumer, deadline, || {
            if self.consumer.count.load(Ordering::Acquire) >= taken {
                Some(Ok(()))
            } else if self.is_closed() {
                Some(Err(Stop::Closed))
            } else {
                None
            }
        })
    }

    /// The counter that publications bump when someone waits for records:
    /// read it before looking, then [`sleep_for_data`](Self::sleep_for_data)
    /// past it.
    pub(crate) fn data_seq(&self) -> u32 {
        self.producer.seq.load(Ordering::SeqCst)
    }

    /// Counts one more (`true`) or one fewer (`false`) waiter for records
    /// that sleeps outside the consumer side: while it counts, every
    /// publication bumps [`data_seq`](Self::data_seq) and wakes it. A
    /// waiter that counts itself looks for records once more before it
    /// sleeps.
    pub(crate) fn count_data_waiter(&self, waits: bool) {
        if waits {
            self.producer.sleepers.fetch_add(1, Ordering::SeqCst);
        } else {
            self.producer.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
        fence(Ordering::SeqCst);
    }

    /// The word bumped when records come (while someone counts in the
    /// second word, the sleepers for records).
    pub(crate) fn data_words(&self) -> (&AtomicU32, &AtomicU32) {
        (&self.producer.seq, &self.producer.sleepers)
    }

    /// The word bumped when room is made (while someone counts in the
    /// second word, the sleepers for room).
    pub(crate) fn room_words(&self) -> (&AtomicU32, &AtomicU32) {
        (&self.consumer.seq, &self.consumer.sleepers)
    }

    /// The word bumped by `task_done` (while someone counts in the second
    /// word, the joiners).
    pub(crate) fn done_words(&self) -> (&AtomicU32, &AtomicU32) {
        (&self.shared.done_seq, &self.shared.joiners)
    }

    /// Whether every message put so far is marked done.
    pub(crate) fn all_done(&self) -> bool {
        self.shared.done_count.load(Ordering::SeqCst) >= self.producer.count.load(Ordering::SeqCst)
    }

    /// Sleeps while [`data_seq`](Self::data_seq) is `seen`, at most
    /// `timeout` (and at most 100 ms).
    pub(crate) fn sleep_for_data(&self, seen: u32, timeout: Option<Duration>) {
        park::wait(&self.producer.seq, seen, timeout);
    }

    /// Wakes everyone who waits for records, whether or not one came.
    pub(crate) fn wake_data_waiters(&self) {
        self.producer.seq.fetch_add(1, Ordering::SeqCst);
        park::wake(&self.producer.seq, u32::MAX);
    }

    /// Takes the producer side.
    #[inline]
    pub(crate) fn producer(&self, bytes: Bytes, deadline: Option<Instant>) -> Option<Producer<'_>> {
        let side = &self.producer;
        if side.lock.lock(deadline)? == Acquired::OwnerDied {
            side.intent.recover(&side.position, &side.count);
        }
        Some(Producer { ring: self, bytes })
    }

    /// Takes the producer side if nobody holds it now.
    #[inline]
    pub(crate) fn try_producer(&self, bytes: Bytes) -> Option<Producer<'_>> {
        let side = &self.producer;
        if side.lock.try_lock()? == Acquired::OwnerDied {
            side.intent.recover(&side.position, &side.count);
        }
        Some(Producer { ring: self, bytes })
    }

    /// Takes the consumer side; `try_only` gives up at once if it is taken.
    #[inline]
    pub(crate) fn consumer(
        &self,
        bytes: Bytes,
        deadline: Option<Instant>,
        try_only: bool,
    ) -> Option<Consumer<'_>> {
        let side = &self.consumer;
        let acquired = if try_only { side.lock.try_lock() } else { side.lock.lock(deadline) };
        if acquired? == Acquired::OwnerDied {
            side.intent.recover(&side.position, &side.count);
        }
        Some(Consumer { ring: self, bytes })
    }

    /// Marks one fetched message done; `false` if all are done already.
    pub(crate) fn task_done(&self) -> bool {
        let put = self.producer.count.load(Ordering::Acquire);
        let done =
            self.shared.done_count.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |done| {
                (done < put).then_some(done + 1)
            });
        if done.is_err() {
            return false;
        }
        fence(Ordering::SeqCst);
        if self.shared.joiners.load(Ordering::Relaxed) > 0 {
            self.shared.done_seq.fetch_add(1, Ordering::SeqCst);
            park::wake(&self.shared.done_seq, u32::MAX);
        }
        true
    }

    /// Waits until every message put so far is marked done.
    pub(crate) fn join(&self, deadline: Option<Instant>) -> bool {
        let all_done = || {
            self.shared.done_count.load(Ordering::SeqCst)
                >= self.producer.count.load(Ordering::SeqCst)
        };
        if all_done() {
            return true;
        }
        self.shared.joiners.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            let seq = self.shared.done_seq.load(Ordering::SeqCst);
            if all_done() {
                break true;
            }
            let Some(left) = park::time_left(deadline) else { break false };
            // Puts do not wake joiners; poll now and then for a late task_done
            // racing with a put.
            park::wait(
                &self.shared.done_seq,
                seq,
                Some(left.unwrap_or(STREAM_POLL).min(STREAM_POLL)),
            );
        };
        self.shared.joiners.fetch_sub(1, Ordering::Relaxed);
        result
    }
}

/// The producer side, held; releases the lock on drop.
#[derive(Debug)]
pub(crate) struct Producer<'a> {
    ring: &'a RawRing,
    bytes: Bytes,
}

impl Producer<'_> {
    /// Free bytes in the ring (exact but for consumers freeing more).
    fn free(&self) -> usize {
        self.ring.free(self.bytes.cap)
    }

    /// The largest payload one record can carry.
    #[inline]
    pub(crate) fn max_payload(&self) -> usize {
        self.bytes.cap - HEADER
    }

    /// Whether `need` bytes are free and, for a new message, the item bound
    /// allows one more (`None`: not now); `Err` if closed.
    #[inline]
    pub(crate) fn room(&self, need: usize, new_message: bool) -> Option<Result<(), Stop>> {
        self.ring.room_for(self.bytes.cap, need, new_message)
    }

    /// Waits (holding the lock) until [`room`](Self::room) says yes.
    pub(crate) fn wait_for_room(
        &self,
        need: usize,
        new_message: bool,
        deadline: Option<Instant>,
    ) -> Result<(), Stop> {
        sleep_until(&self.ring.consumer, deadline, || self.room(need, new_message))
    }

    /// Starts a stream: from here until [`finish_stream`](Self::finish_stream)
    /// a consumer may abandon it. Returns where it starts.
    pub(crate) fn begin_stream(&self) -> u64 {
        self.ring.shared.stream.store(STREAMING, Ordering::SeqCst);
        self.ring.producer.position.load(Ordering::Relaxed)
    }

    /// Whether the consumer reading the stream gave up on it (then the
    /// producer calls it off and starts over).
    pub(crate) fn stream_abandoned(&self) -> bool {
        self.ring.shared.stream.load(Ordering::SeqCst) != STREAMING
    }

    /// Claims the stream for its last piece; `false` if a consumer
    /// abandoned it first.
    pub(crate) fn finish_stream(&self) -> bool {
        let stream = &self.ring.shared.stream;
        stream.compare_exchange(STREAMING, FINISHING, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }

    /// Calls off the stream in progress, which began at `start`. If no
    /// consumer has begun on it (none holds the consumer lock and the head
    /// has not passed `start`), its records are taken back, and the ring is
    /// as it was; otherwise an `ABORT` record tells consumers to drop what
    /// they read of it (there is always room: every piece leaves a header's
    /// room behind it).
    #[cold]
    pub(crate) fn abort_stream(&mut self, start: u64) {
        let ring = self.ring;
        // Consumers read records only holding their lock, so with it held no
        // one reads past the head, and the tail may move back to `start`.
        // Lock order: producer, then consumer; consumers never take the
        // producer lock. Never waits.
        if let Some(consumer) = ring.consumer(self.bytes, None, true) {
            let head = ring.consumer.position.load(Ordering::Relaxed);
            let tail = ring.producer.position.load(Ordering::Relaxed);
            if head <= start && start <= tail {
                ring.producer.position.store(start, Ordering::Release);
                drop(consumer);
                // Producers waiting for room have more of it.
                announce(&ring.consumer);
                return;
            }
        }
        if self.free() >= HEADER {
            self.publish(0, ABORT);
        }
    }

    /// The free bytes after a record header's room, to write a payload into.
    pub(crate) fn payload_area(&mut self) -> &mut [u8] {
        let free = self.free();
        if free <= HEADER {
            return &mut [];
        }
        let tail = self.ring.producer.position.load(Ordering::Relaxed);
        let start = self.bytes.at(tail).wrapping_add(HEADER);
        let len = (free - HEADER) & !7;
        // SAFETY: `[tail, tail + free)` is the free part of the ring: no
        // consumer reads it (they stop at `tail`) and no other producer writes
        // it (we hold the producer lock). It is contiguous thanks to the
        // double mapping, `free <= cap`, and it lives as long as the segment
        // that `self` borrows.
        unsafe { std::slice::from_raw_parts_mut(start, len) }
    }

    /// Publishes a record of `payload` bytes (already written by
    /// `payload_area`) with `flags`.
    pub(crate) fn publish(&mut self, payload: usize, flags: u32) {
        let side = &self.ring.producer;
        let tail = side.position.load(Ordering::Relaxed);
        let header = self.bytes.at(tail);
        let mut bytes = [0u8; HEADER];
        bytes[..4].copy_from_slice(&(payload as u32).to_le_bytes());
        bytes[4..].copy_from_slice(&flags.to_le_bytes());
        // SAFETY: the header slot is the first 8 bytes of the free part of
        // the ring (see `payload_area`), which the caller checked holds the
        // record.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), header, HEADER) };
        let new_tail = tail + record_size(payload);
        if flags & LAST != 0 {
            let count = side.count.load(Ordering::Relaxed) + 1;
            side.intent.commit(&side.position, &side.count, new_tail, count);
        } else {
            side.position.store(new_tail, Ordering::Release);
        }
        announce(side);
    }
}

impl Drop for Producer<'_> {
    #[inline]
    fn drop(&mut self) {
        self.ring.producer.lock.unlock();
    }
}

/// A record at the head of the ring.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    pub(crate) flags: u32,
    pub(crate) payload: &'a [u8],
}

/// The consumer side, held; releases the lock on drop.
#[derive(Debug)]
pub(crate) struct Consumer<'a> {
    ring: &'a RawRing,
    bytes: Bytes,
}

impl Consumer<'_> {
    #[inline]
    pub(crate) fn available(&self) -> bool {
        let head = self.ring.consumer.position.load(Ordering::Relaxed);
        self.ring.producer.position.load(Ordering::Acquire) != head
    }

    /// Waits for the first record of a message, until `deadline`.
    pub(crate) fn wait_for_record(&self, deadline: Option<Instant>) -> Result<(), Stop> {
        let ring = self.ring;
        sleep_until(&ring.producer, deadline, || {
            if self.available() {
                Some(Ok(()))
            } else if ring.is_closed() {
                Some(Err(Stop::Closed))
            } else {
                None
            }
        })
    }

    /// Waits for the next piece of a stream (closing does not stop it),
    /// checking every [`STREAM_POLL`] that the producer lives. Gives up
    /// with `Timeout` once `deadline` passed *and* the producer has written
    /// nothing for [`STREAM_STALL`] (a live producer writes at once what
    /// there is room for), and with `ProducerDied` if the producer died.
    #[cold]
    pub(crate) fn wait_for_piece(&self, deadline: Option<Instant>) -> Result<(), Stop> {
        let ring = self.ring;
        let give_up = deadline.map(|d| park::deadline_after(STREAM_STALL).map_or(d, |s| d.max(s)));
        loop {
            let slice = park::deadline_after(STREAM_POLL);
            let slice = match (slice, give_up) {
                (Some(slice), Some(give_up)) => Some(slice.min(give_up)),
                (slice, give_up) => slice.or(give_up),
            };
            if sleep_until(&ring.producer, slice, || self.available().then_some(Ok(()))).is_ok() {
                return Ok(());
            }
            let owner = ring.producer.lock.owner();
            let gone = owner == 0 || !park::owner_alive(owner);
            // What the producer published before it let go of the lock (or
            // died) is visible after this.
            fence(Ordering::Acquire);
            if self.available() {
                return Ok(());
            }
            if gone {
                return Err(Stop::ProducerDied);
            }
            if park::time_left(give_up).is_none() {
                return Err(Stop::Timeout);
            }
        }
    }

    /// Gives up on the stream being read, so that its producer starts the
    /// message over; `false` if the producer is already writing its last
    /// piece (then wait for it).
    pub(crate) fn abandon_stream(&self) -> bool {
        let stream = &self.ring.shared.stream;
        stream
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                (s != FINISHING).then_some(ABANDONED)
            })
            .is_ok()
    }

    /// The record at the head (there must be one), or `None` if its header
    /// is impossible (a corrupted ring).
    pub(crate) fn peek(&self) -> Option<Record<'_>> {
        let head = self.ring.consumer.position.load(Ordering::Relaxed);
        let tail = self.ring.producer.position.load(Ordering::Acquire);
        let start = self.bytes.at(head);
        let mut header = [0u8; HEADER];
        // SAFETY: `[head, tail)` holds complete records that no one writes
        // while we hold the consumer lock; the double mapping makes the 8
        // bytes contiguous.
        unsafe { std::ptr::copy_nonoverlapping(start, header.as_mut_ptr(), HEADER) };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let flags = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let size = tail.wrapping_sub(head);
        if len > self.bytes.cap - HEADER || record_size(len) > size {
            return None;
        }
        // SAFETY: as above; the payload lies inside `[head, tail)` (checked).
        let payload = unsafe { std::slice::from_raw_parts(start.wrapping_add(HEADER), len) };
        Some(Record { flags, payload })
    }

    /// Consumes the record at the head; `completes` a message or not.
    pub(crate) fn consume(&mut self, payload: usize, completes: bool) {
        let side = &self.ring.consumer;
        let new_head = side.position.load(Ordering::Relaxed) + record_size(payload);
        if completes {
            let count = side.count.load(Ordering::Relaxed) + 1;
            side.intent.commit(&side.position, &side.count, new_head, count);
        } else {
            side.position.store(new_head, Ordering::Release);
        }
        announce(side);
    }

    /// Every record from the head to the tail, copied: `(flags, payload)`,
    /// or `None` if a header is impossible (a corrupted ring).
    pub(crate) fn records(&self) -> Option<Vec<(u32, Vec<u8>)>> {
        let mut head = self.ring.consumer.position.load(Ordering::Relaxed);
        let tail = self.ring.producer.position.load(Ordering::Acquire);
        let mut records = Vec::new();
        while head != tail {
            let start = self.bytes.at(head);
            let mut header = [0u8; HEADER];
            // SAFETY: `[head, tail)` holds complete records that no one
            // writes while we hold the consumer lock (and the caller the
            // producer lock); the double mapping makes them contiguous.
            unsafe { std::ptr::copy_nonoverlapping(start, header.as_mut_ptr(), HEADER) };
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let flags = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            if len > self.bytes.cap - HEADER || record_size(len) > tail.wrapping_sub(head) {
                return None;
            }
            // SAFETY: as above; the payload lies inside `[head, tail)` (checked).
            let payload = unsafe { std::slice::from_raw_parts(start.wrapping_add(HEADER), len) };
            records.push((flags, payload.to_vec()));
            head += record_size(len);
        }
        Some(records)
    }

    /// Replaces every record from the head to the tail with `records`
    /// (`(flags, payload)`, as many messages as there were), holding the
    /// producer side too: the counts of messages put and taken stay as
    /// they are. `false` (nothing changed) if they do not fit in the ring.
    pub(crate) fn rewrite(
        &mut self,
        producer: &mut Producer<'_>,
        records: &[(u32, Vec<u8>)],
    ) -> bool {
        let total: u64 = records.iter().map(|(_, payload)| record_size(payload.len())).sum();
        if total > self.bytes.cap as u64 {
            return false;
        }
        let head = self.ring.consumer.position.load(Ordering::Relaxed);
        let mut at = head;
        for (flags, payload) in records {
            let start = self.bytes.at(at);
            let mut header = [0u8; HEADER];
            header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
            header[4..].copy_from_slice(&flags.to_le_bytes());
            // SAFETY: `[head, head + total)` lies within one ring's length of
            // the head (checked), contiguous thanks to the double mapping;
            // nobody reads it (we hold the consumer lock) or writes it (the
            // caller holds the producer lock, `producer`).
            unsafe {
                std::ptr::copy_nonoverlapping(header.as_ptr(), start, HEADER);
                std::ptr::copy_nonoverlapping(
                    payload.as_ptr(),
                    start.wrapping_add(HEADER),
                    payload.len(),
                );
            }
            at += record_size(payload.len());
        }
        producer.ring.producer.position.store(at, Ordering::Release);
        announce(&self.ring.producer);
        announce(&self.ring.consumer);
        true
    }

    /// Drops everything in the ring (after finding it corrupted).
    pub(crate) fn discard_all(&mut self) {
        let side = &self.ring.consumer;
        let tail = self.ring.producer.position.load(Ordering::Acquire);
        let count = self.ring.producer.count.load(Ordering::Acquire);
        side.intent.commit(&side.position, &side.count, tail, count);
        announce(side);
    }
}

impl Drop for Consumer<'_> {
    #[inline]
    fn drop(&mut self) {
        self.ring.consumer.lock.unlock();
    }
}
