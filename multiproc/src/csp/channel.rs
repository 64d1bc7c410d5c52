//! `Channel`, `Reader` and `Writer`: PyCSP's any-to-any channels, with
//! retire and poison, in shared memory so that ends work in threads and in
//! other OS processes alike.
//!
//! A channel is a crash-safe ring (the one under [`Queue`](crate::Queue))
//! holding the values of up to 16 waiting writers (a rendezvous) or `n`
//! values (buffered), and a
//! small state block beside it in the same segment: the counts of registered
//! readers and writers, the retire and poison flags, the readers waiting now.
//! A rendezvous write puts its value, numbered among all puts, and waits
//! until a reader claimed it; a write that gives up (timeout) claims its
//! value back unless a reader claimed it first (one compare-and-swap on the
//! value's `pending` ticket, no lock), so a value is delivered exactly once
//! or not at all, and the timeout holds whoever holds the channel.
//!
//! While every end is in one process, the ring carries references to values
//! held in that process (see [`local`](super::local)) instead of encodings.
#![allow(unsafe_code)] // `InShm` for the state block: see the SAFETY comment

use std::cell::Cell;
use std::fmt;
use std::io::IoSlice;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::local::{Codec, Local, Offer, Ticket, Waiter};
use super::{Error, Result};
use crate::os;
use crate::queue::raw::{Payload, PutFail, RawQueue, Wait};
use crate::shm::park;
use crate::shm::ring::FDS;
use crate::shm::ring::{RawRing, Stop};
use crate::shm::segment::{InShm, Shape};
use crate::shm::{Kind, Segment};
use crate::transfer::codec;

/// The poison flag: who poisoned.
const BY_WRITER: u32 = 1;
const BY_READER: u32 = 2;
/// The `gone` bits: which side retired entirely.
const READERS_GONE: u32 = 1;
const WRITERS_GONE: u32 = 2;
/// How long a `try_write` on a rendezvous waits for the reader it saw
/// waiting to take its value.
const TRY_GRACE: Duration = Duration::from_millis(1);
/// How many writers of a rendezvous channel may have a value waiting in it
/// at once (each still waits for a reader to take its own).
const PENDING: usize = 16;
/// The ring of a channel: values larger than this stream through it.
const RING_BYTES: usize = 64 << 10;
/// What a value's record starts with: its encoding (then, if it carries
/// descriptors, their tag), a reference to a value held in this process
/// (see [`local`](super::local)), or nothing (a withdrawn value).
const ENCODED: u8 = 0;
const HELD: u8 = 1;
const DEAD: u8 = 2;
/// [`State::mode`]: every end in one process (values held there, never
/// encoded), or ends have travelled (every value encoded).
const LOCAL: u32 = 0;
const SHARED: u32 = 1;
/// How many processes holding ends a channel keeps track of, so as to
/// retire the ends of one that dies (SIGKILL). Ends of more processes work,
/// but one of those dying retires nothing.
const HOLDERS: usize = 32;
/// A [`Holder`] slot being cleared after its process died.
const REAPING: u32 = u32::MAX;
/// How often a blocked end looks whether a process holding ends died.
pub(crate) const DEATH_CHECK: Duration = Duration::from_millis(100);

/// The ends one process holds of a channel (see [`HOLDERS`]).
#[repr(C)]
#[derive(Debug, Default)]
struct Holder {
    /// Its process id; 0: a free slot; [`REAPING`].
    pid: AtomicU32,
    readers: AtomicU32,
    writers: AtomicU32,
    _pad: u32,
}

/// The state beside a channel's ring.
#[repr(C, align(64))]
#[derive(Debug, Default)]
struct State {
    readers: AtomicU64,
    writers: AtomicU64,
    /// 0, [`BY_WRITER`] or [`BY_READER`].
    poisoned: AtomicU32,
    /// [`READERS_GONE`] | [`WRITERS_GONE`].
    gone: AtomicU32,
    /// Readers blocked in a read now (a rendezvous `try_write` needs one).
    waiting_readers: AtomicU32,
    /// [`LOCAL`] until an end is first encoded, then [`SHARED`].
    mode: AtomicU32,
    /// A rendezvous: the tickets of the values in the channel that nobody
    /// claimed yet, ticket `t` at `t % PENDING` (0: none). A reader claims
    /// one as it takes the value, a writer that gives up claims it back;
    /// whoever swaps it to 0 first owns the value, with no lock between
    /// them. (The ring holds at most `PENDING` values, so a slot is reused
    /// only once its value is gone.)
    pending: [AtomicU64; PENDING],
    /// Bumped when a value comes (alternations that read sleep on it).
    in_bell: AtomicU32,
    /// Bumped when a reader comes or takes a value (alternations that
    /// write sleep on it).
    out_bell: AtomicU32,
    /// Alternations guarding this channel now: only then do bells ring.
    alternations: AtomicU32,
    /// Of those, the ones asleep now: only then does ringing wake (a
    /// system call). One killed in its sleep costs wake-ups, not
    /// correctness.
    alt_sleepers: AtomicU32,
    /// 0 for a rendezvous.
    capacity: AtomicU64,
    /// The processes holding ends, and how many.
    holders: [Holder; HOLDERS],
}

// SAFETY: atomics (and padding) only, `#[repr(C)]`, no pointer.
unsafe impl InShm for State {}

impl State {
    /// Where the claim on the value numbered `ticket` is.
    fn pending_slot(&self, ticket: u64) -> &AtomicU64 {
        &self.pending[(ticket % PENDING as u64) as usize]
    }
}

/// The segment's body: the ring's control block, then the state.
const STATE_AT: usize = size_of::<RawRing>().next_multiple_of(64);
const BODY: usize = STATE_AT + size_of::<State>();

/// Counts one more (`up`) or one less in `counter`.
fn count(counter: &AtomicU32, up: bool) {
    if up {
        counter.fetch_add(1, Ordering::SeqCst);
    } else {
        counter.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A value put into a channel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Posted {
    /// Its ticket (see [`State::pending`]).
    pub(crate) ticket: u64,
    /// The value the channel's `in_bell` had before the put rang it, if it
    /// rang (an alternation that put it does not wake itself).
    pub(crate) rang: Option<u32>,
    /// Its entry in this process's table, if it is held there (local).
    held: Option<Ticket>,
}

/// A handle on a channel's shared memory (registers no end).
#[derive(Clone)]
pub(crate) struct Shared {
    queue: RawQueue,
    /// Where the descriptors inside values travel (see [`Sockets`]).
    sockets: Arc<Sockets>,
    /// The channel's side in this process.
    local: Arc<Local>,
}

/// A channel's side channel for descriptors: a sequenced-packet socket
/// pair shared by every end. A writer sends a value's descriptors as one
/// record on `send`, tagged, holding the producers' turn right before the
/// value's first record is published, so records and values are in the same
/// order; a reader receives them from `recv` holding the consumer side.
/// Records whose value never came (its writer died, or took it back) are
/// orphans, dropped by the next reader that needs one.
struct Sockets {
    send: OwnedFd,
    recv: OwnedFd,
}

impl Shared {
    fn create(capacity: usize) -> crate::Result<Self> {
        let seg = Segment::create_ring(Kind::Channel, BODY, RING_BYTES)?;
        let values = if capacity == 0 { PENDING } else { capacity };
        seg.at::<RawRing>(0).init(values as u64);
        let (send, recv) =
            os::seqpacket_pair().map_err(crate::Error::os("create a channel's socket pair"))?;
        let shared = Self {
            queue: RawQueue::from_segment(seg),
            sockets: Arc::new(Sockets { send, recv }),
            local: Arc::new(Local::new(None)),
        };
        shared.state().capacity.store(capacity as u64, Ordering::Relaxed);
        Ok(shared)
    }

    fn state(&self) -> &State {
        self.queue.segment().at(STATE_AT)
    }

    fn ring(&self) -> &RawRing {
        self.queue.ring()
    }

    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(self.queue.segment()) as usize
    }

    /// The error of an operation that found the channel closed.
    fn closed_error(&self) -> Error {
        if self.state().poisoned.load(Ordering::SeqCst) != 0 {
            Error::Poisoned
        } else {
            Error::Retired
        }
    }

    pub(crate) fn poison(&self, by: u32) {
        let _ = self.state().poisoned.compare_exchange(0, by, Ordering::SeqCst, Ordering::SeqCst);
        self.close();
    }

    /// Closes the ring and wakes everyone, alternations included.
    fn close(&self) {
        self.ring().close();
        self.local.wake_waiters();
        self.local.readers.wake_all();
        self.local.writers.wake_all();
        let state = self.state();
        self.ring_bell(&state.in_bell);
        self.ring_bell(&state.out_bell);
    }

    fn register(&self, reader: bool) {
        let state = self.state();
        let count = if reader { &state.readers } else { &state.writers };
        count.fetch_add(1, Ordering::SeqCst);
        self.hold(reader, true);
    }

    /// Counts one end of kind `reader` more (`up`) or less as held by this
    /// process, in its [`Holder`] slot (taken on first use, if one is free).
    fn hold(&self, reader: bool, up: bool) {
        let pid = os::getpid();
        let holders = &self.state().holders;
        let slot = holders.iter().find(|h| h.pid.load(Ordering::SeqCst) == pid).or_else(|| {
            if !up {
                return None;
            }
            holders.iter().find(|h| {
                h.pid.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst).is_ok()
            })
        });
        let Some(slot) = slot else { return };
        let count = if reader { &slot.readers } else { &slot.writers };
        if up {
            count.fetch_add(1, Ordering::SeqCst);
        } else {
            let _ = count.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        }
    }

    /// Retires the ends of every process that held some and died; `true`
    /// if it did. Any process may do it, once per dead process.
    pub(crate) fn reap_dead_holders(&self) -> bool {
        let me = os::getpid();
        let mut reaped = false;
        for holder in &self.state().holders {
            let pid = holder.pid.load(Ordering::SeqCst);
            if pid == 0 || pid == REAPING || pid == me || !os::process_ended(pid) {
                continue;
            }
            // Claimed, so that no one else reaps it and no one reuses the
            // slot before its counts are cleared.
            if holder
                .pid
                .compare_exchange(pid, REAPING, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                continue;
            }
            let readers = holder.readers.swap(0, Ordering::SeqCst);
            let writers = holder.writers.swap(0, Ordering::SeqCst);
            holder.pid.store(0, Ordering::SeqCst);
            for _ in 0..readers {
                self.retire_count(true);
            }
            for _ in 0..writers {
                self.retire_count(false);
            }
            reaped = true;
        }
        reaped
    }

    fn retire(&self, reader: bool) {
        self.hold(reader, false);
        self.retire_count(reader);
    }

    /// The part of `wait` to wait now: at most [`DEATH_CHECK`], so that a
    /// blocked end looks for dead holders (see [`more_after`](Self::more_after)).
    fn slice(wait: Wait) -> Wait {
        let slice = || Instant::now().checked_add(DEATH_CHECK);
        match wait {
            Wait::Never => Wait::Never,
            Wait::Forever | Wait::Until(None) => Wait::Until(slice()),
            Wait::Until(Some(deadline)) => Wait::Until(slice().map(|s| s.min(deadline))),
        }
    }

    /// After a [`slice`](Self::slice) of `wait` ran out: whether `wait` has
    /// more; if so, first retires the ends of processes that died.
    fn more_after(&self, wait: Wait) -> bool {
        let more = match wait {
            Wait::Never => false,
            Wait::Forever | Wait::Until(None) => true,
            Wait::Until(Some(deadline)) => Instant::now() < deadline,
        };
        if more {
            self.reap_dead_holders();
        }
        more
    }

    /// One end of kind `reader` less in the channel's counts.
    fn retire_count(&self, reader: bool) {
        let state = self.state();
        let (count, bit) =
            if reader { (&state.readers, READERS_GONE) } else { (&state.writers, WRITERS_GONE) };
        let before = count.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if before == Ok(1) {
            state.gone.fetch_or(bit, Ordering::SeqCst);
            self.close();
        }
    }

    /// Tells the alternations sleeping on this channel (if any) that `bell`'s
    /// side changed: a value came (`in_bell`), or a reader came or took one
    /// (`out_bell`).
    /// Returns the value the bell had before, if it rang.
    #[inline]
    fn ring_bell(&self, bell: &AtomicU32) -> Option<u32> {
        fence(Ordering::SeqCst);
        let state = self.state();
        if state.alternations.load(Ordering::Relaxed) > 0 {
            // The bump comes before the look at sleepers, and a sleeper
            // counts itself before it compares the bell (both SeqCst):
            // either it sees the new value or we see it.
            let before = bell.fetch_add(1, Ordering::SeqCst);
            if state.alt_sleepers.load(Ordering::SeqCst) > 0 {
                park::wake(bell, u32::MAX);
            }
            return Some(before);
        }
        None
    }

    /// The bell an alternation waiting to read (`input`) or to write on
    /// this channel sleeps on.
    pub(crate) fn bell(&self, input: bool) -> &AtomicU32 {
        let state = self.state();
        if input { &state.in_bell } else { &state.out_bell }
    }

    /// An alternation guarding this channel goes to sleep (`true`) or
    /// wakes.
    pub(crate) fn alternation_sleeps(&self, sleeps: bool) {
        count(&self.state().alt_sleepers, sleeps);
    }

    /// An alternation starts (`true`) or stops guarding this channel: while
    /// one does, every change rings a bell.
    pub(crate) fn alternating(&self, starts: bool) {
        count(&self.state().alternations, starts);
    }

    /// Why a write cannot start, if it cannot.
    fn unwritable(&self) -> Option<Error> {
        let state = self.state();
        if state.poisoned.load(Ordering::SeqCst) != 0 {
            return Some(Error::Poisoned);
        }
        (state.gone.load(Ordering::SeqCst) & READERS_GONE != 0).then_some(Error::Retired)
    }

    fn is_rendezvous(&self) -> bool {
        self.state().capacity.load(Ordering::Relaxed) == 0
    }

    /// Whether the channel is local now: its values held in this process.
    /// Fails in a process that has only a forked copy of a local channel's
    /// ends (its values are in its parent).
    fn is_local(&self) -> crate::Result<bool> {
        if self.state().mode.load(Ordering::SeqCst) != LOCAL {
            return Ok(false);
        }
        if !self.local.is_here() {
            return Err(crate::Error::Unsupported {
                reason: "a channel end copied into a forked child: its channel's values are in \
                         the parent; pass ends to a child as arguments (they travel encoded)",
            });
        }
        Ok(true)
    }

    /// The codec of the channel's type, known here once the channel is
    /// shared.
    fn codec(&self) -> crate::Result<&Codec> {
        self.local.codec().ok_or(crate::Error::Unsupported {
            reason: "a shared channel's end that was copied by fork before the channel was shared",
        })
    }

    /// Puts `offer`'s value into the channel as `wait` allows: on a
    /// rendezvous, as the pending value, returning its ticket (the value
    /// stays in `offer` until a reader takes it); on a buffered channel,
    /// moved or copied into it.
    fn post<T: Send>(&self, offer: &Offer<T>, wait: Wait) -> Result<Posted> {
        if let Some(error) = self.unwritable() {
            return Err(error);
        }
        let state = self.state();
        let rendezvous = self.is_rendezvous();
        let set_pending = |ticket| {
            if rendezvous {
                state.pending_slot(ticket).store(ticket, Ordering::SeqCst);
            }
        };
        // Held here, or encoded straight into the ring unless it carries
        // descriptors.
        let put = Put {
            shared: self,
            offer,
            rendezvous,
            held: Cell::new(None),
            had_fds: Cell::new(false),
        };
        let (mut result, mut ticket) = self.queue.put_numbered(&put, 0, wait, &|ticket| {
            set_pending(ticket);
            Ok(())
        });
        if put.had_fds.get() {
            let encoded = self.codec()?.encode(offer.value())?;
            let tag = crate::transfer::message_tag().to_le_bytes();
            let numbered = [&[ENCODED][..], &tag[..], &encoded.bytes].concat();
            let fds: Vec<BorrowedFd<'_>> = encoded.fds.iter().map(AsFd::as_fd).collect();
            (result, ticket) = self.queue.put_numbered(&numbered[..], FDS, wait, &|ticket| {
                // Never blocks (it holds the producers' turn): a socket
                // full of orphan records fails this write, delivering
                // nothing, instead of holding every writer up.
                os::send_with_fds(self.sockets.send.as_fd(), &[IoSlice::new(&tag)], &fds, true)
                    .map_err(crate::Error::os("send a channel value's descriptors"))?;
                set_pending(ticket);
                Ok(())
            });
        }
        if result.is_ok() && rendezvous && put.held.get().is_some() {
            // Readers of this process waiting as registered ones look again.
            self.local.wake_waiters();
        }
        if result.is_ok() {
            self.local.readers.wake_one();
        }
        match result {
            Ok(()) => {
                Ok(Posted { ticket, rang: self.ring_bell(&state.in_bell), held: put.held.get() })
            }
            Err(PutFail::Full) => Err(Error::WouldBlock),
            Err(PutFail::Timeout) => Err(Error::Timeout),
            Err(PutFail::Closed) => Err(self.closed_error()),
            Err(PutFail::Failed(e)) => Err(e.into()),
        }
    }

    /// Takes the value of a record read from the ring (holding the consumer
    /// side): decodes it, with its descriptors if it has any, or takes it
    /// from this process's table.
    fn take<T: Send>(&self, bytes: &[u8], flags: u32) -> crate::Result<T> {
        let malformed = || crate::Error::protocol("a malformed channel record");
        let (&kind, bytes) = bytes.split_first().ok_or_else(malformed)?;
        match kind {
            ENCODED if flags & FDS == 0 => self.codec()?.decode(bytes, Vec::new()),
            ENCODED => {
                let (tag, bytes) = bytes.split_first_chunk::<8>().ok_or_else(malformed)?;
                let fds = self.recv_fds(u64::from_le_bytes(*tag))?;
                self.codec()?.decode(bytes, fds)
            }
            HELD => {
                if !self.is_local()? {
                    return Err(malformed());
                }
                let ticket = Ticket::read(bytes).ok_or_else(malformed)?;
                // SAFETY: this channel's table holds values of its type,
                // which is `T` (every handle on the channel in this process
                // is an end of one `Channel<T>`, or was decoded as one with
                // a table of its own).
                unsafe { self.local.take::<T>(ticket) }.ok_or_else(|| {
                    crate::Error::protocol("a channel record names no value held in this process")
                })
            }
            _ => Err(malformed()),
        }
    }

    /// The descriptors of the value tagged `tag`: their record was sent
    /// before the value was published, so it is there; records before it
    /// are orphans (dropped with their descriptors).
    fn recv_fds(&self, tag: u64) -> crate::Result<Vec<OwnedFd>> {
        loop {
            let (mut number, mut fds) = ([0u8; 8], Vec::new());
            match os::recv_with_fds(self.sockets.recv.as_fd(), &mut number, &mut fds, true) {
                Ok(8) if u64::from_le_bytes(number) == tag => return Ok(fds),
                Ok(0) => {}
                Ok(_) => continue, // an orphan: its descriptors close here
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(crate::Error::os("receive a channel value's descriptors")(e)),
            }
            return Err(crate::Error::protocol("a channel value's descriptors did not come"));
        }
    }

    /// Takes the pending value `posted` back unless a reader claimed it
    /// first: `true` if taken back. Waits for no one (a reader holding the
    /// channel, even one stopped there, will skip it), so deadlines hold.
    /// A value a reader claimed may still be on its way out of its writer's
    /// offer: see [`released`](Self::released).
    pub(crate) fn withdraw(&self, posted: &Posted) -> bool {
        let state = self.state();
        let ticket = posted.ticket;
        let back = state.pending_slot(ticket).compare_exchange(
            ticket,
            0,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        if back.is_err() {
            return false;
        }
        if let Some(held) = posted.held {
            // Ours again (unless the channel became shared meanwhile and
            // took a copy): readers skip its record.
            self.local.withdraw(held);
        }
        if self.queue.drop_if_next(ticket) {
            self.ring_bell(&state.out_bell);
        }
        true
    }

    /// Waits until a value that a reader claimed is no longer read from
    /// its writer's offer (the writer may then let the offer go). A local
    /// reader moves it out at once, holding the table; the channel
    /// becoming shared copies it, likewise.
    pub(crate) fn released(&self, posted: &Posted) {
        if let Some(held) = posted.held {
            while self.local.holds(held) {
                std::thread::yield_now();
            }
        }
    }

    pub(crate) fn write<T: Send>(&self, offer: &Offer<T>, wait: Wait) -> Result<()> {
        let state = self.state();
        let rendezvous = self.is_rendezvous();
        let try_only = matches!(wait, Wait::Never);
        if try_only && rendezvous && state.waiting_readers.load(Ordering::SeqCst) == 0 {
            return self.unwritable().map_or(Err(Error::WouldBlock), Err);
        }
        // A reader of this process waiting now takes the value directly.
        if rendezvous
            && self.unwritable().is_none()
            && matches!(self.is_local(), Ok(true))
            && self.local.hand_off(offer)
        {
            self.ring_bell(&state.out_bell);
            return Ok(());
        }
        let posted = loop {
            match self.post(offer, Self::slice(wait)) {
                Err(Error::Timeout) if self.more_after(wait) => {}
                posted => break posted?,
            }
        };
        if !rendezvous {
            return Ok(());
        }
        let wait = match wait {
            Wait::Never => Wait::Until(Instant::now().checked_add(TRY_GRACE)),
            other => other,
        };
        let waited = loop {
            let Wait::Until(slice) = Self::slice(wait) else { unreachable!("never `Never`") };
            match self.ring().wait_until_taken(posted.ticket, slice) {
                Err(Stop::Timeout) if self.more_after(wait) => {}
                waited => break waited,
            }
        };
        // Taken: a value counts as taken once its reader is done with it
        // (moved out of the offer, or decoded), so the offer is free.
        if waited.is_ok() {
            return Ok(());
        }
        // Not taken in time, or the channel closed: take it back unless a
        // reader claimed it meanwhile.
        if !self.withdraw(&posted) {
            self.released(&posted);
            return Ok(());
        }
        match waited {
            Err(Stop::Closed) => Err(self.closed_error()),
            _ if try_only => Err(Error::WouldBlock),
            _ => Err(Error::Timeout),
        }
    }

    /// Offers `offer`'s value to a reader without waiting (an
    /// alternation's output guard): `Ok(Some(posted))` if it is now the
    /// pending value of a rendezvous, `Ok(None)` if it is delivered already
    /// (it fitted in a buffered channel). [`Error::WouldBlock`] if there is
    /// no room.
    pub(crate) fn offer<T: Send>(&self, offer: &Offer<T>) -> Result<Option<Posted>> {
        let posted = self.post(offer, Wait::Never)?;
        Ok(self.is_rendezvous().then_some(posted))
    }

    pub(crate) fn read<T: Send>(&self, wait: Wait) -> Result<T> {
        let state = self.state();
        if state.poisoned.load(Ordering::SeqCst) == BY_READER {
            return Err(Error::Poisoned);
        }
        // A reader that waits is one a rendezvous `try_write` (or an
        // alternation's output guard) may hand its value to; a `try_read`
        // waits for nobody.
        let waits = !matches!(wait, Wait::Never);
        if waits {
            state.waiting_readers.fetch_add(1, Ordering::SeqCst);
            self.ring_bell(&state.out_bell);
        }
        let rendezvous = self.is_rendezvous();
        let got = if waits && rendezvous && matches!(self.is_local(), Ok(true)) {
            self.read_waiting_here::<T>(wait)
        } else {
            self.read_ring::<T>(wait)
        };
        if waits {
            state.waiting_readers.fetch_sub(1, Ordering::SeqCst);
        }
        if got.is_ok() {
            // A writer (or an alternation offering) waits for the claim, or
            // for room.
            self.ring_bell(&state.out_bell);
            self.local.writers.wake_all();
        }
        // We let go of the consumer side after waiting on it, or after
        // taking a value: an alternation that found it held (its
        // `try_read` cannot wait for it) looks again, at what we left
        // (another value, or the channel's end). A `try_read` that found
        // nothing rings nothing (an alternation would wake itself).
        if waits || got.is_ok() {
            self.ring_bell(&state.in_bell);
        }
        got.map_err(|e| match e {
            crate::Error::Closed => self.closed_error(),
            crate::Error::Empty => Error::WouldBlock,
            other => other.into(),
        })
    }

    /// A blocking read of a local rendezvous channel: takes a value from
    /// the ring if one is there, or else waits as a registered reader, to
    /// whom a writer hands its value directly (the writer then returns at
    /// once: this reader is committed to it).
    fn read_waiting_here<T: Send>(&self, wait: Wait) -> crate::Result<T> {
        let waiter = Waiter::<T>::new();
        let deadline = match wait {
            Wait::Until(deadline) => deadline,
            _ => None,
        };
        loop {
            match self.read_ring::<T>(Wait::Never) {
                Err(crate::Error::Empty) => {}
                got => return got,
            }
            if !self.is_local()? {
                return self.read_ring::<T>(wait);
            }
            let seen = waiter.bell().load(Ordering::SeqCst);
            self.local.register(&waiter);
            // A value put before we registered is in the ring; one put
            // after wakes us (see `post`), as does the channel's end.
            let ring = self.ring();
            if !ring.has_data() && !ring.is_closed() {
                let slice = match Self::slice(wait) {
                    Wait::Until(until) => until,
                    _ => None,
                };
                let key = std::ptr::from_ref(waiter.bell()).cast();
                let ready = || waiter.filled() || ring.has_data() || ring.is_closed();
                if !park::poll(key, slice, ready) {
                    let left = slice.map(|s| s.saturating_duration_since(Instant::now()));
                    if left.is_none_or(|l| !l.is_zero()) {
                        park::wait(waiter.bell(), seen, left);
                    }
                }
            }
            if let Some(value) = self.local.unregister(&waiter) {
                return Ok(value);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return match self.read_ring::<T>(Wait::Never) {
                    Err(crate::Error::Empty) => Err(crate::Error::Timeout),
                    got => got,
                };
            }
            if !ring.has_data() && !ring.is_closed() {
                self.more_after(wait);
            }
        }
    }

    /// Reads from the ring as `wait` allows (in slices, looking for dead
    /// holders between them).
    fn read_ring<T: Send>(&self, wait: Wait) -> crate::Result<T> {
        let state = self.state();
        let rendezvous = self.is_rendezvous();
        let ring = self.ring();
        loop {
            let taken = self.queue.get_with(Self::slice(wait), |bytes, flags| {
                if rendezvous {
                    // The value's ticket: we hold the consumer side and it
                    // is not counted as taken yet.
                    let ticket = ring.counts().1 + 1;
                    let claim = state.pending_slot(ticket).compare_exchange(
                        ticket,
                        0,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                    if claim.is_err() {
                        return None; // its writer took it back: skip it
                    }
                }
                Some(self.take::<T>(bytes, flags))
            });
            match taken {
                Ok(Some(value)) => return value,
                Ok(None) => {}
                Err(crate::Error::Timeout) if self.more_after(wait) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Makes the channel shared, if it is not yet, before one of its ends
    /// travels (`codec` is the channel type's): from now on every value is
    /// encoded, and the values in flight are encoded where they are.
    ///
    /// # Errors
    ///
    /// In a forked child's copy of a local channel; if a value in flight
    /// does not encode, or they no longer fit in the ring encoded.
    fn share(&self, codec: Codec) -> crate::Result<()> {
        self.local.set_codec(codec);
        let state = self.state();
        if !self.is_local()? {
            return Ok(());
        }
        // No one puts meanwhile: every put decides, holding this turn,
        // whether it holds its value here or encodes it.
        let mut producer = self
            .queue
            .producer_turn()
            .ok_or_else(|| crate::Error::protocol("a channel's producers' turn is lost"))?;
        if state.mode.load(Ordering::SeqCst) != LOCAL {
            return Ok(());
        }
        let codec = self.codec()?;
        loop {
            if let Some(mut consumer) = self.queue.try_consumer_turn() {
                self.encode_in_flight(&mut producer, &mut consumer, codec)?;
                break;
            }
            // A reader holds the channel: waiting, once there is nothing
            // in it (and nothing can come).
            if !self.ring().has_data() {
                break;
            }
            std::thread::yield_now();
        }
        state.mode.store(SHARED, Ordering::SeqCst);
        // Readers waiting as registered ones go back to the ring; awaiting
        // ones to the reactor.
        self.local.wake_waiters();
        self.local.readers.retire();
        self.local.writers.retire();
        Ok(())
    }

    /// Encodes every value in the ring (holding both sides), in place:
    /// their numbers (tickets) and order stay. A withdrawn one is left to
    /// its writer.
    fn encode_in_flight(
        &self,
        producer: &mut crate::shm::ring::Producer<'_>,
        consumer: &mut crate::shm::ring::Consumer<'_>,
        codec: &Codec,
    ) -> crate::Result<()> {
        let records = consumer
            .records()
            .ok_or_else(|| crate::Error::protocol("a channel's ring is corrupted"))?;
        if records.is_empty() {
            return Ok(());
        }
        let state = self.state();
        let rendezvous = self.is_rendezvous();
        let taken = self.ring().counts().1;
        let mut encoded = Vec::with_capacity(records.len());
        let mut held = Vec::new();
        for (i, (flags, payload)) in records.into_iter().enumerate() {
            let ticket = taken + 1 + i as u64;
            let dead = (flags, vec![DEAD]);
            let Some(entry) = payload.split_first().filter(|(kind, _)| **kind == HELD) else {
                encoded.push((flags, payload));
                continue;
            };
            let Some(entry) = Ticket::read(entry.1) else {
                encoded.push(dead);
                continue;
            };
            if rendezvous && state.pending_slot(ticket).load(Ordering::SeqCst) != ticket {
                encoded.push(dead); // withdrawn: its writer removes its entry
                continue;
            }
            // SAFETY: the table holds values of the channel's type, whose
            // codec `codec` is (see `take`).
            let value = match unsafe { self.local.encode(entry, codec) } {
                None => {
                    encoded.push(dead);
                    continue;
                }
                Some(value) => value?,
            };
            held.push(entry);
            if value.fds.is_empty() {
                encoded.push((flags, [&[ENCODED][..], &value.bytes].concat()));
            } else {
                let tag = crate::transfer::message_tag().to_le_bytes();
                let fds: Vec<BorrowedFd<'_>> = value.fds.iter().map(AsFd::as_fd).collect();
                os::send_with_fds(self.sockets.send.as_fd(), &[IoSlice::new(&tag)], &fds, true)
                    .map_err(crate::Error::os("send a channel value's descriptors"))?;
                encoded.push((flags | FDS, [&[ENCODED][..], &tag[..], &value.bytes].concat()));
            }
        }
        if !consumer.rewrite(producer, &encoded) {
            return Err(crate::Error::Unsupported {
                reason: "the values waiting in a channel do not fit its ring encoded, so its end \
                         cannot travel now",
            });
        }
        // The copies are in the ring: the values here go (a writer's offer
        // stays with it, which drops it once its copy is taken).
        for entry in held {
            self.local.release(entry);
        }
        Ok(())
    }
}

/// A value being put: held in this process's table while the channel is
/// local, encoded once it is shared. Which, is decided holding the
/// producers' turn (in `write`).
struct Put<'a, T> {
    shared: &'a Shared,
    offer: &'a Offer<T>,
    rendezvous: bool,
    /// The table entry made for it, if it is held.
    held: Cell<Option<Ticket>>,
    /// Whether encoding it failed because it carries descriptors.
    had_fds: Cell<bool>,
}

impl<T> Put<'_, T> {
    fn check<R>(&self, (result, fds): (crate::Result<R>, bool)) -> crate::Result<R> {
        if fds {
            self.had_fds.set(true);
            return Err(crate::Error::Unsupported { reason: "a value with descriptors" });
        }
        result
    }
}

impl<T: Send> Payload for Put<'_, T> {
    fn write(&self, buf: &mut [u8]) -> crate::Result<Option<usize>> {
        if self.shared.is_local()? {
            let need = 1 + Ticket::SIZE;
            let Some(out) = buf.get_mut(..need) else { return Ok(None) };
            let local = &self.shared.local;
            let entry = if self.rendezvous {
                local.insert_offer(self.offer)
            } else {
                local.insert_moved(self.offer)
            };
            out[0] = HELD;
            entry.write(&mut out[1..]);
            self.held.set(Some(entry));
            return Ok(Some(need));
        }
        let Some((kind, rest)) = buf.split_first_mut() else { return Ok(None) };
        *kind = ENCODED;
        let written = self.check(self.shared.codec()?.write(self.offer.value(), rest))?;
        Ok(written.map(|n| n + 1))
    }

    fn size(&self) -> crate::Result<usize> {
        if self.shared.is_local()? {
            return Ok(1 + Ticket::SIZE);
        }
        Ok(self.check(self.shared.codec()?.size(self.offer.value()))? + 1)
    }

    fn bytes<'b>(&'b self, scratch: &'b mut Vec<u8>) -> crate::Result<&'b [u8]> {
        // Only values larger than the ring come here: encoded ones.
        scratch.clear();
        scratch.push(ENCODED);
        self.check(self.shared.codec()?.bytes(self.offer.value(), scratch))?;
        Ok(scratch)
    }
}

impl Serialize for Shared {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(serialize_with = "segment_wire")]
            segment: &'a Segment,
            #[serde(with = "crate::transfer::fd")]
            send: BorrowedFd<'a>,
            #[serde(with = "crate::transfer::fd")]
            recv: BorrowedFd<'a>,
        }
        fn segment_wire<S: Serializer>(
            segment: &&Segment,
            serializer: S,
        ) -> std::result::Result<S::Ok, S::Error> {
            crate::shm::segment::serialize(segment, serializer)
        }
        Wire {
            segment: self.queue.segment(),
            send: self.sockets.send.as_fd(),
            recv: self.sockets.recv.as_fd(),
        }
        .serialize(serializer)
    }
}

impl Shared {
    /// A handle decoded in this process, for values of the type `codec`
    /// encodes (its own table: the channel is shared, values arrive
    /// encoded).
    fn deserialize_with<'de, D: Deserializer<'de>>(
        deserializer: D,
        codec: Codec,
    ) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(deserialize_with = "segment_wire")]
            segment: Arc<Segment>,
            #[serde(with = "crate::transfer::fd")]
            send: OwnedFd,
            #[serde(with = "crate::transfer::fd")]
            recv: OwnedFd,
        }
        fn segment_wire<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> std::result::Result<Arc<Segment>, D::Error> {
            crate::shm::segment::deserialize(deserializer, Kind::Channel, Shape::default(), |_| {
                Some(BODY)
            })
        }
        let wire = Wire::deserialize(deserializer)?;
        if !os::is_seqpacket(wire.send.as_fd()) || !os::is_seqpacket(wire.recv.as_fd()) {
            return Err(codec::refuse(crate::Error::protocol(
                "a channel's descriptor sockets arrived as something else",
            )));
        }
        Ok(Self {
            queue: RawQueue::from_segment(wire.segment),
            sockets: Arc::new(Sockets { send: wire.send, recv: wire.recv }),
            local: Arc::new(Local::new(Some(codec))),
        })
    }
}

/// A CSP channel (PyCSP's `Channel`): any number of readers and writers, in
/// threads and OS processes alike.
///
/// [`Channel::new`] is a rendezvous: a write completes when a reader has
/// taken the value. [`Channel::buffered`] lets up to `n` values wait.
/// [`reader`](Channel::reader) and [`writer`](Channel::writer) register one
/// more end each (PyCSP's `+ch` and `-ch`); ends retire (leave) when told to
/// or when dropped. While all its ends are in one process, values move
/// without being encoded and need not be serde types; once an end travels
/// to another process (which needs a serde `T`), every value is encoded
/// into the channel's shared memory, those in flight included, so an end
/// works the same wherever it is.
///
/// # Examples
///
/// ```
/// use multiproc::csp::Channel;
///
/// let ch = Channel::<u64>::new()?;
/// let (r, w) = (ch.reader(), ch.writer());
/// let t = std::thread::spawn(move || w.write(42));
/// assert_eq!(r.read()?, 42);
/// t.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Channel<T> {
    shared: Shared,
    _values: PhantomData<fn(T) -> T>,
}

impl<T> Channel<T> {
    /// A rendezvous channel.
    ///
    /// # Errors
    ///
    /// [`Error::Os`](crate::Error::Os) if its shared memory cannot be made.
    ///
    /// # Examples
    ///
    /// ```
    /// let ch = multiproc::csp::Channel::<String>::new()?;
    /// assert!(ch.writer().try_write("nobody reads".into()).unwrap_err().to_string().contains("no partner"));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new() -> crate::Result<Self> {
        Ok(Self { shared: Shared::create(0)?, _values: PhantomData })
    }

    /// A channel in which up to `n` values wait for readers (`n == 0`: a
    /// rendezvous).
    ///
    /// # Errors
    ///
    /// As [`Channel::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// let ch = multiproc::csp::Channel::<u8>::buffered(2)?;
    /// let w = ch.writer();
    /// w.write(1)?;
    /// w.write(2)?; // no reader yet: both wait in the channel
    /// assert_eq!(ch.reader().read()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn buffered(n: usize) -> crate::Result<Self> {
        Ok(Self { shared: Shared::create(n)?, _values: PhantomData })
    }

    /// Registers and returns a reading end (PyCSP's `+ch`).
    ///
    /// # Examples
    ///
    /// ```
    /// let ch = multiproc::csp::Channel::<u8>::buffered(1)?;
    /// ch.writer().write(7)?;
    /// assert_eq!(ch.reader().read()?, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reader(&self) -> Reader<T> {
        self.shared.register(true);
        Reader { end: End::new(self.shared.clone()), _values: PhantomData }
    }

    /// Registers and returns a writing end (PyCSP's `-ch`).
    ///
    /// # Examples
    ///
    /// ```
    /// let ch = multiproc::csp::Channel::<u8>::buffered(1)?;
    /// ch.writer().write(7)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn writer(&self) -> Writer<T> {
        self.shared.register(false);
        Writer { end: End::new(self.shared.clone()), _values: PhantomData }
    }

    /// Poisons the channel: every operation on every end, waiting or to
    /// come, fails with [`Error::Poisoned`]. Values buffered now are
    /// dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let ch = multiproc::csp::Channel::<u8>::new()?;
    /// ch.poison();
    /// assert!(ch.reader().read().unwrap_err().is_poisoned());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn poison(&self) {
        self.shared.poison(BY_READER);
    }
}

impl<T> fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state();
        f.debug_struct("Channel")
            .field("capacity", &state.capacity.load(Ordering::Relaxed))
            .field("readers", &state.readers.load(Ordering::Relaxed))
            .field("writers", &state.writers.load(Ordering::Relaxed))
            .finish()
    }
}

/// What both kinds of end hold: the channel, and whether this end left.
struct End {
    shared: Shared,
    retired: AtomicBool,
    /// Encoded to travel: the copy that arrives is the end now, so this
    /// one does not retire when dropped.
    moved: AtomicBool,
    /// An argument of the `#[process]` running on this thread (its token,
    /// see [`thread_token`]; 0: none): dropped on that thread, it retires
    /// only once the process's result is known (see [`Deferred`]).
    deferred_on: AtomicU64,
}

impl End {
    fn new(shared: Shared) -> Self {
        Self {
            shared,
            retired: AtomicBool::new(false),
            moved: AtomicBool::new(false),
            deferred_on: AtomicU64::new(0),
        }
    }

    /// Drops (retires, unless moved or retired already) this end of kind
    /// `reader`.
    fn drop_end(&self, reader: bool) {
        if self.moved.load(Ordering::SeqCst) || self.retired.load(Ordering::SeqCst) {
            return;
        }
        let deferred_on = self.deferred_on.load(Ordering::Relaxed);
        if deferred_on != 0 && deferred_on == thread_token() {
            self.retired.store(true, Ordering::SeqCst);
            DEFERRED.with(|d| d.borrow_mut().push((self.shared.clone(), reader)));
            return;
        }
        self.retire(reader);
    }

    fn retire(&self, reader: bool) {
        if !self.retired.swap(true, Ordering::SeqCst) {
            self.shared.retire(reader);
        }
    }

    /// Encodes this end to travel (the channel becomes shared first, with
    /// `codec` for its values).
    fn serialize<S: Serializer>(
        &self,
        serializer: S,
        codec: Codec,
        reader: bool,
    ) -> std::result::Result<S::Ok, S::Error> {
        self.shared.share(codec).map_err(serde::ser::Error::custom)?;
        if !self.moved.swap(true, Ordering::SeqCst) && !self.retired.load(Ordering::SeqCst) {
            // On its way: held by the process that decodes it.
            self.shared.hold(reader, false);
        }
        self.shared.serialize(serializer)
    }
}

macro_rules! end_common {
    ($end:ident, $reader:expr, $what:literal, $ctor:ident) => {
        impl<T> $end<T> {
            #[doc = concat!("Retires this ", $what, " (PyCSP's `retire`): it leaves the channel. Once every ", $what, " has retired, the channel is retired. Retiring twice does nothing; dropping an end retires it.")]
            ///
            /// # Examples
            ///
            /// ```
            /// let ch = multiproc::csp::Channel::<u8>::new()?;
            /// let (r, w) = (ch.reader(), ch.writer());
            /// r.retire();
            /// r.retire();
            /// assert!(w.write(1).unwrap_err().is_retired());
            /// # Ok::<(), multiproc::Error>(())
            /// ```
            pub fn retire(&self) {
                self.end.retire($reader);
            }

            /// Poisons the channel (PyCSP's `poison`): every operation on
            /// every end, waiting or to come, fails with
            /// [`Error::Poisoned`]. Poison from a writer lets values
            /// buffered now through first; from a reader, drops them.
            ///
            /// # Examples
            ///
            /// ```
            /// let ch = multiproc::csp::Channel::<u8>::new()?;
            /// let (r, w) = (ch.reader(), ch.writer());
            /// w.poison();
            /// assert!(r.read().unwrap_err().is_poisoned());
            /// # Ok::<(), multiproc::Error>(())
            /// ```
            pub fn poison(&self) {
                self.end.shared.poison(if $reader { BY_READER } else { BY_WRITER });
            }

            /// Whether `other` is an end of the same channel (in this process).
            ///
            /// # Examples
            ///
            /// ```
            /// let ch = multiproc::csp::Channel::<u8>::new()?;
            #[doc = concat!("let (a, b) = (ch.", stringify!($ctor), "(), ch.", stringify!($ctor), "());")]
            /// assert!(a.same_channel(&b));
            /// # Ok::<(), multiproc::Error>(())
            /// ```
            pub fn same_channel(&self, other: &Self) -> bool {
                self.end.shared.id() == other.end.shared.id()
            }

            /// The channel, for alternations.
            pub(crate) fn shared(&self) -> &Shared {
                &self.end.shared
            }

            /// This end as an argument of the `#[process]` running on this
            /// thread: dropped here, it retires when [`Deferred`] ends; and
            /// a handle that can poison its channel.
            pub(crate) fn as_argument(&self) -> EndRef {
                self.end.deferred_on.store(thread_token(), Ordering::Relaxed);
                EndRef { shared: self.end.shared.clone(), by: if $reader { BY_READER } else { BY_WRITER } }
            }
        }

        impl<T> ChannelEnd for $end<T> {
            fn retire(&self) {
                $end::retire(self);
            }

            fn poison(&self) {
                $end::poison(self);
            }
        }

        impl<T> Clone for $end<T> {
            /// Registers another end of the same kind (so retire counts stay right).
            fn clone(&self) -> Self {
                self.end.shared.register($reader);
                Self { end: End::new(self.end.shared.clone()), _values: PhantomData }
            }
        }

        impl<T> Drop for $end<T> {
            fn drop(&mut self) {
                self.end.drop_end($reader);
            }
        }

        impl<T> fmt::Debug for $end<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($end))
                    .field("retired", &self.end.retired.load(Ordering::Relaxed))
                    .finish_non_exhaustive()
            }
        }

        impl<T: Serialize + DeserializeOwned> Serialize for $end<T> {
            /// An end travels (as a process argument, or inside a message):
            /// the copy that arrives is the registered end from then on.
            /// The channel becomes shared (its values encoded) first.
            fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                self.end.serialize(serializer, Codec::of::<T>(), $reader)
            }
        }

        impl<'de, T: Serialize + DeserializeOwned> Deserialize<'de> for $end<T> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
                let shared = Shared::deserialize_with(deserializer, Codec::of::<T>())?;
                shared.hold($reader, true);
                Ok(Self { end: End::new(shared), _values: PhantomData })
            }
        }
    };
}

/// A channel end of either kind, for [`retire`](super::retire) and
/// [`poison`](super::poison) over a collection of ends.
pub trait ChannelEnd {
    /// Retires this end.
    fn retire(&self);
    /// Poisons this end's channel.
    fn poison(&self);
}

/// The reading end of a [`Channel`] (PyCSP's `ChannelEndRead`).
///
/// # Examples
///
/// ```
/// let ch = multiproc::csp::Channel::<u8>::buffered(1)?;
/// let (r, w) = (ch.reader(), ch.writer());
/// w.write(3)?;
/// w.retire();
/// assert_eq!(r.read()?, 3);
/// assert!(r.read().unwrap_err().is_retired());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Reader<T> {
    end: End,
    _values: PhantomData<fn() -> T>,
}

/// The writing end of a [`Channel`] (PyCSP's `ChannelEndWrite`).
///
/// # Examples
///
/// ```
/// let ch = multiproc::csp::Channel::<u8>::buffered(1)?;
/// ch.writer().write(3)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Writer<T> {
    end: End,
    _values: PhantomData<fn(T)>,
}

end_common!(Reader, true, "reader", reader);
end_common!(Writer, false, "writer", writer);

impl<T: Send> Reader<T> {
    /// Reads the next value, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`Error::Retired`] once every writer retired and nothing is left;
    /// [`Error::Poisoned`]; [`Error::Failed`] if a value does not decode.
    ///
    /// # Examples
    ///
    /// ```
    /// let ch = multiproc::csp::Channel::<u8>::buffered(1)?;
    /// ch.writer().write(5)?;
    /// assert_eq!(ch.reader().read()?, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read(&self) -> Result<T> {
        self.end.shared.read(Wait::Forever)
    }

    /// Reads a value if one is offered now.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] if none is; as [`read`](Reader::read).
    ///
    /// # Examples
    ///
    /// ```
    /// let ch = multiproc::csp::Channel::<u8>::new()?;
    /// assert_eq!(ch.reader().try_read(), Err(multiproc::csp::Error::WouldBlock));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_read(&self) -> Result<T> {
        self.end.shared.read(Wait::Never)
    }

    /// Reads the next value, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`]; as [`read`](Reader::read).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let ch = multiproc::csp::Channel::<u8>::new()?;
    /// let r = ch.reader();
    /// assert_eq!(r.read_timeout(Duration::from_millis(5)), Err(multiproc::csp::Error::Timeout));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn read_timeout(&self, timeout: Duration) -> Result<T> {
        self.end.shared.read(Wait::Until(Instant::now().checked_add(timeout)))
    }
}

impl<T: Send> Writer<T> {
    /// Writes `value`, waiting as long as it takes: on a rendezvous channel
    /// until a reader has taken it, on a buffered one until it is in the
    /// channel.
    ///
    /// # Errors
    ///
    /// [`Error::Retired`] once every reader retired; [`Error::Poisoned`];
    /// [`Error::Failed`] if the value does not encode.
    ///
    /// # Examples
    ///
    /// ```
    /// let ch = multiproc::csp::Channel::<&str>::buffered(1)?;
    /// ch.writer().write("hi")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write(&self, value: T) -> Result<()> {
        self.end.shared.write(&Offer::new(value), Wait::Forever)
    }

    /// Writes `value` only if a reader takes it now (a rendezvous) or there
    /// is room now (buffered).
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] (nothing written); as [`write`](Writer::write).
    ///
    /// # Examples
    ///
    /// ```
    /// let ch = multiproc::csp::Channel::<u8>::buffered(1)?;
    /// let w = ch.writer();
    /// w.try_write(1)?;
    /// assert_eq!(w.try_write(2), Err(multiproc::csp::Error::WouldBlock));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_write(&self, value: T) -> Result<()> {
        self.end.shared.write(&Offer::new(value), Wait::Never)
    }

    /// Writes `value`, waiting at most `timeout` (for a reader to take it,
    /// on a rendezvous channel). All or nothing: on timeout, no reader got
    /// the value.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`]; as [`write`](Writer::write).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let ch = multiproc::csp::Channel::<u8>::new()?;
    /// let (_r, w) = (ch.reader(), ch.writer());
    /// assert_eq!(w.write_timeout(1, Duration::from_millis(5)), Err(multiproc::csp::Error::Timeout));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn write_timeout(&self, value: T, timeout: Duration) -> Result<()> {
        self.end.shared.write(&Offer::new(value), Wait::Until(Instant::now().checked_add(timeout)))
    }
}

/// A number of this thread, unique for the life of the process.
fn thread_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static TOKEN: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    TOKEN.with(|t| *t)
}

thread_local! {
    /// Argument ends a `#[process]` body dropped on this thread, to retire
    /// once its result is known (see [`Deferred`]).
    static DEFERRED: std::cell::RefCell<Vec<(Shared, bool)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// While a `#[process]` body runs: the argument ends it drops wait to
/// retire until this ends (after the process's poison, if any, spread), so
/// that its own ends retiring cannot retire a channel before its poison
/// reaches it. Ends it retires explicitly retire at once. Retires on drop,
/// panics included.
#[doc(hidden)]
#[derive(Debug)]
pub struct Deferred(usize);

impl Deferred {
    /// Starts deferring on this thread.
    pub fn begin() -> Self {
        Self(DEFERRED.with(|d| d.borrow().len()))
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        let ends = DEFERRED.with(|d| d.borrow_mut().split_off(self.0));
        for (shared, reader) in ends {
            shared.retire(reader);
        }
    }
}

/// A channel end among a process's arguments, as `#[process]` holds it: it
/// can poison the channel, and registers nothing.
#[doc(hidden)]
pub struct EndRef {
    shared: Shared,
    by: u32,
}

impl EndRef {
    /// Poisons the channel.
    pub fn poison(&self) {
        self.shared.poison(self.by);
    }
}

impl fmt::Debug for EndRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndRef").finish_non_exhaustive()
    }
}

/// The async face of channel ends: `read_async`, `write_async`, and the
/// reader as a stream.
impl Shared {
    pub(crate) fn keep(&self) -> crate::aio::Keep {
        Arc::clone(self.queue.segment()) as crate::aio::Keep
    }

    /// One poll of an awaiting read of `read`: on a local rendezvous, as a
    /// registered reader a writer hands its value to; else through the
    /// ring.
    fn poll_read<T: Send>(
        &self,
        read: &mut AsyncRead<T>,
        cx: &std::task::Context<'_>,
    ) -> std::task::Poll<Result<T>> {
        if self.is_rendezvous() && matches!(self.is_local(), Ok(true)) {
            return self.poll_read_here(read, cx);
        }
        // The channel became shared while we were registered: a value
        // handed to us before is ours.
        if let Some(value) = self.leave(read) {
            return std::task::Poll::Ready(Ok(value));
        }
        self.poll_read_ring(&mut read.waiting, cx)
    }

    /// Takes `read`'s waiter off the queue if it is on it: the value a
    /// writer handed it, if one did.
    fn leave<T: Send>(&self, read: &mut AsyncRead<T>) -> Option<T> {
        if !std::mem::take(&mut read.registered) {
            return None;
        }
        let waiter = read.waiter.as_deref()?;
        let value = self.local.unregister(waiter);
        count(&self.state().waiting_readers, false);
        value
    }

    /// [`poll_read`](Self::poll_read) on a local rendezvous: registered as
    /// a waiting reader (a [`Waiter`] woken through the task's waker), a
    /// writer moves its value straight to it; a value in the ring (put
    /// while nobody was registered) is taken from there.
    fn poll_read_here<T: Send>(
        &self,
        read: &mut AsyncRead<T>,
        cx: &std::task::Context<'_>,
    ) -> std::task::Poll<Result<T>> {
        use std::task::Poll;
        let state = self.state();
        let ring = self.ring();
        let changed =
            || ring.has_data() || ring.is_closed() || state.poisoned.load(Ordering::SeqCst) != 0;
        loop {
            if read.registered {
                let waiter = read.waiter.as_deref().expect("a registered read has a waiter");
                if !waiter.filled() && !changed() {
                    waiter.set_waker(cx.waker());
                    return Poll::Pending;
                }
                if let Some(value) = self.leave(read) {
                    return Poll::Ready(Ok(value));
                }
            }
            match self.read::<T>(Wait::Never) {
                Err(Error::WouldBlock) => {}
                done => return Poll::Ready(done),
            }
            let waiter = read.waiter.get_or_insert_with(|| Box::new(Waiter::awaiting(cx.waker())));
            waiter.set_waker(cx.waker());
            // A waiting reader: a `try_write` or an alternation's output
            // guard hands it a value.
            count(&state.waiting_readers, true);
            self.ring_bell(&state.out_bell);
            self.local.register(&**waiter);
            read.registered = true;
            // A value put before we registered is in the ring.
            if !changed() {
                return Poll::Pending;
            }
        }
    }

    /// Puts back a value a writer handed to an awaiting reader that was
    /// dropped before it took it: to another reader of this process
    /// waiting now, or as the channel's next value, held in the table (no
    /// writer waits for it). A closed channel drops it with itself; so does
    /// one whose sixteen pending places stay full for [`DEATH_CHECK`]
    /// (nobody reads it), with a warning.
    fn repost<T: Send>(&self, value: T) {
        let offer = Offer::new(value);
        if self.local.hand_off(&offer) {
            self.ring_bell(&self.state().out_bell);
            return;
        }
        let state = self.state();
        let rendezvous = self.is_rendezvous();
        let give_up = Instant::now().checked_add(DEATH_CHECK);
        loop {
            let put = Put {
                shared: self,
                offer: &offer,
                rendezvous: false,
                held: Cell::new(None),
                had_fds: Cell::new(false),
            };
            let (result, _) = self.queue.put_numbered(&put, 0, Wait::Never, &|ticket| {
                if rendezvous {
                    state.pending_slot(ticket).store(ticket, Ordering::SeqCst);
                }
                Ok(())
            });
            match result {
                Ok(()) => {
                    self.local.wake_waiters();
                    self.local.readers.wake_one();
                    self.ring_bell(&state.in_bell);
                    return;
                }
                // Sixteen writers' values pending: one is taken soon, if
                // anyone reads.
                Err(PutFail::Full) if give_up.is_some_and(|g| Instant::now() < g) => {
                    std::thread::yield_now();
                }
                Err(PutFail::Full) => {
                    log::warn!(
                        "a channel value handed to a reader that was dropped could not be put \
                         back (the channel is full and nobody reads it): dropped"
                    );
                    return;
                }
                Err(_) => return,
            }
        }
    }

    /// One poll of an awaiting read through the ring. While asleep it
    /// counts as a waiting reader (a rendezvous `try_write`, or an
    /// alternation's output guard, may then offer it a value) and as a
    /// sleeper for values.
    fn poll_read_ring<T: Send>(
        &self,
        waiting: &mut crate::aio::Waiting,
        cx: &std::task::Context<'_>,
    ) -> std::task::Poll<Result<T>> {
        use crate::aio::{Arm, Source, Wake};
        let state = self.state();
        let more = || self.ring().has_data();
        let got = waiting.poll_more(
            cx,
            || match self.read::<T>(Wait::Never) {
                Err(Error::WouldBlock) => None,
                done => Some(done),
            },
            |waiting| {
                let keep = self.keep();
                if waiting.count(&state.waiting_readers, &keep) {
                    self.ring_bell(&state.out_bell);
                } else {
                    // Woken by nothing but the clock: a holder may have died.
                    self.reap_dead_holders();
                }
                if matches!(self.is_local(), Ok(true)) {
                    // Every writer is in this process: it wakes us itself.
                    return Some(Arm::on(Source::List(Arc::clone(&self.local.readers), Wake::One)));
                }
                let (seq, sleepers) = self.ring().data_words();
                waiting.count(sleepers, &keep);
                let seen = seq.load(Ordering::SeqCst);
                Some(Arm::with_recheck(Source::word(seq, seen, keep, Wake::One), DEATH_CHECK))
            },
            &more,
        );
        if got.is_ready() {
            // No longer waiting: an alternation offering looks again.
            self.ring_bell(&state.out_bell);
        }
        got
    }

    /// One poll of an awaiting write of `write.offer`.
    fn poll_write<T: Send>(
        &self,
        write: &mut AsyncWrite<'_, T>,
        cx: &std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        use crate::aio::{Arm, Source, Wake};
        let rendezvous = self.is_rendezvous();
        let ring = self.ring();
        let AsyncWrite { value, offer, posted, waiting, .. } = write;
        let in_channel = Cell::new(posted.is_some());
        waiting.poll(
            cx,
            || {
                let done = attempt_write(self, value, offer, posted, rendezvous, ring);
                in_channel.set(posted.is_some());
                done
            },
            |waiting| {
                if matches!(self.is_local(), Ok(true)) {
                    // Every reader is in this process: it wakes us itself.
                    let wake = if in_channel.get() { Wake::All } else { Wake::One };
                    return Some(Arm::on(Source::List(Arc::clone(&self.local.writers), wake)));
                }
                let keep = self.keep();
                if !waiting.count(ring.room_words().1, &keep) {
                    self.reap_dead_holders();
                }
                // Room for a buffered value, or a reader's claim: both
                // move the consumer side.
                let (seq, _) = ring.room_words();
                let seen = seq.load(Ordering::SeqCst);
                let wake = if in_channel.get() { Wake::All } else { Wake::One };
                Some(Arm::with_recheck(Source::word(seq, seen, keep, wake), DEATH_CHECK))
            },
        )
    }
}

/// One attempt of an awaiting write: `None` while it must wait.
fn attempt_write<T: Send>(
    shared: &Shared,
    value: &mut Option<T>,
    offer: &mut Option<Box<Offer<T>>>,
    posted: &mut Option<Posted>,
    rendezvous: bool,
    ring: &RawRing,
) -> Option<Result<()>> {
    let Some(mine) = posted.as_ref() else {
        // Not in the channel yet: a reader of this process
        // waiting now takes it directly, or it goes in.
        let hand_off = |offer: &Offer<T>| {
            rendezvous
                && shared.unwritable().is_none()
                && matches!(shared.is_local(), Ok(true))
                && shared.local.hand_off(offer)
        };
        let handed = match (value.take(), offer.as_deref()) {
            (Some(v), _) => {
                // Not referenced by anyone yet: it may move into a box.
                let here = Offer::new(v);
                let handed = hand_off(&here);
                if !handed {
                    *offer = Some(Box::new(here));
                }
                handed
            }
            (None, Some(boxed)) => hand_off(boxed),
            (None, None) => return Some(Ok(())),
        };
        if handed {
            shared.ring_bell(&shared.state().out_bell);
            return Some(Ok(()));
        }
        let boxed = offer.as_deref()?;
        return match shared.offer(boxed) {
            Ok(None) => Some(Ok(())),
            Ok(Some(now)) => {
                *posted = Some(now);
                None
            }
            Err(Error::WouldBlock) => None,
            Err(e) => Some(Err(e)),
        };
    };
    // Posted to a rendezvous: done once a reader took it.
    if ring.counts().1 >= mine.ticket {
        *posted = None;
        return Some(Ok(()));
    }
    if ring.is_closed() {
        let mine = posted.take()?;
        if shared.withdraw(&mine) {
            return Some(Err(shared.closed_error()));
        }
        shared.released(&mine);
        return Some(Ok(()));
    }
    None
}

/// An awaiting write's value and where it is: dropped before its write
/// completed, it takes a posted value back (unless a reader claimed it
/// already: then the reader gets it).
struct AsyncWrite<'a, T> {
    shared: &'a Shared,
    /// The value, until it is handed to a reader or boxed.
    value: Option<T>,
    /// The value once it must stay at one address (a value posted to a
    /// local rendezvous is read from here); a value handed straight to a
    /// waiting reader is never boxed.
    offer: Option<Box<Offer<T>>>,
    posted: Option<Posted>,
    waiting: crate::aio::Waiting,
}

impl<'a, T> AsyncWrite<'a, T> {
    fn new(shared: &'a Shared, value: T) -> Self {
        Self {
            shared,
            value: Some(value),
            offer: None,
            posted: None,
            waiting: crate::aio::Waiting::new(shared.ring().room_words().0),
        }
    }
}

impl<T> Drop for AsyncWrite<'_, T> {
    fn drop(&mut self) {
        if let Some(posted) = self.posted.take()
            && !self.shared.withdraw(&posted)
        {
            // Claimed: wait for the reader to move it out of the offer.
            self.shared.released(&posted);
        }
    }
}

/// An awaiting read's state: its wait, and its waiter on a local
/// rendezvous. Dropped while registered, it leaves the queue, putting back
/// a value a writer handed it meanwhile.
pub(crate) struct AsyncRead<'a, T: Send> {
    shared: &'a Shared,
    waiting: crate::aio::Waiting,
    waiter: Option<Box<Waiter<T>>>,
    registered: bool,
}

impl<'a, T: Send> AsyncRead<'a, T> {
    fn new(shared: &'a Shared) -> Self {
        Self {
            shared,
            waiting: crate::aio::Waiting::new(shared.ring()),
            waiter: None,
            registered: false,
        }
    }
}

impl<T: Send> Drop for AsyncRead<'_, T> {
    fn drop(&mut self) {
        let shared = self.shared;
        if let Some(value) = shared.leave(self) {
            shared.repost(value);
        }
    }
}

impl<T: Send> Reader<T> {
    /// Reads the next value, awaiting it as long as it takes: [`read`]
    /// without holding a thread. While it awaits, it counts as a waiting
    /// reader, as a blocking read does.
    ///
    /// **Cancel-safe**: a value is taken only in the poll that returns it;
    /// dropping the future loses nothing and leaves no waiter behind.
    ///
    /// [`read`]: Reader::read
    ///
    /// # Errors
    ///
    /// As [`read`](Reader::read); [`Error::Retired`] also once every writer
    /// was killed (noticed within 100 ms).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let ch = multiproc::csp::Channel::<u8>::buffered(1)?;
    /// ch.writer().write_async(5).await?;
    /// assert_eq!(ch.reader().read_async().await?, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn read_async(&self) -> Result<T> {
        let shared = &self.end.shared;
        let mut read = AsyncRead::new(shared);
        std::future::poll_fn(|cx| shared.poll_read(&mut read, cx)).await
    }

    /// The values as a [`Stream`](futures_core::Stream), ending once every
    /// writer retired and nothing is left; poison is yielded as an error,
    /// then the stream ends. **Cancel-safe** between values.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// # futures::executor::block_on(async {
    /// let ch = multiproc::csp::Channel::<u8>::buffered(2)?;
    /// let (r, w) = (ch.reader(), ch.writer());
    /// w.write(1)?;
    /// w.write(2)?;
    /// w.retire();
    /// let got: Vec<u8> = r.stream().map(Result::unwrap).collect().await;
    /// assert_eq!(got, [1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn stream(&self) -> ReaderStream<'_, T> {
        ReaderStream { read: AsyncRead::new(&self.end.shared), done: false }
    }
}

impl<T: Send> Writer<T> {
    /// Writes `value`, awaiting as long as it takes (on a rendezvous
    /// channel until a reader has taken it): [`write`] without holding a
    /// thread.
    ///
    /// **Cancel-safe**: dropped before it completes, the value is taken
    /// back and dropped unless a reader had already committed to it, in
    /// which case that reader gets it; either way exactly once or not at
    /// all, and no waiter is left behind.
    ///
    /// [`write`]: Writer::write
    ///
    /// # Errors
    ///
    /// As [`write`](Writer::write).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let ch = multiproc::csp::Channel::<&str>::new()?;
    /// let (r, w) = (ch.reader(), ch.writer());
    /// let (written, read) = futures::join!(w.write_async("hi"), r.read_async());
    /// written?;
    /// assert_eq!(read?, "hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn write_async(&self, value: T) -> Result<()> {
        let shared = &self.end.shared;
        let mut write = AsyncWrite::new(shared, value);
        std::future::poll_fn(|cx| shared.poll_write(&mut write, cx)).await
    }
}

/// The values of a [`Reader`] as a [`futures_core::Stream`], made by
/// [`Reader::stream`].
#[must_use = "streams do nothing unless polled"]
pub struct ReaderStream<'a, T: Send> {
    read: AsyncRead<'a, T>,
    done: bool,
}

impl<T: Send> futures_core::Stream for ReaderStream<'_, T> {
    type Item = Result<T>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<T>>> {
        let this = self.get_mut();
        if this.done {
            return std::task::Poll::Ready(None);
        }
        let shared = this.read.shared;
        let got = std::task::ready!(shared.poll_read::<T>(&mut this.read, cx));
        std::task::Poll::Ready(match got {
            Ok(value) => Some(Ok(value)),
            Err(Error::Retired) => {
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

impl<T: Send> fmt::Debug for ReaderStream<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReaderStream").field("done", &self.done).finish_non_exhaustive()
    }
}

impl<T: Send> Writer<T> {
    /// This writer as a [`Sink`](futures_sink::Sink): each item sent is
    /// written as [`write_async`](Writer::write_async) writes it (on a
    /// rendezvous channel, flushed once a reader took it); closing the sink
    /// retires the writer end, as PyCSP's `retire`.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::SinkExt;
    /// # futures::executor::block_on(async {
    /// let ch = multiproc::csp::Channel::<u8>::buffered(3)?;
    /// let (r, w) = (ch.reader(), ch.writer());
    /// let mut sink = w.sink();
    /// sink.send(1).await?;
    /// sink.send(2).await?;
    /// sink.close().await?;
    /// assert_eq!((r.read()?, r.read()?), (1, 2));
    /// assert_eq!(r.read(), Err(multiproc::csp::Error::Retired));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn sink(&self) -> WriterSink<'_, T> {
        WriterSink { writer: self, pending: None }
    }
}

/// A [`Writer`] as a [`futures_sink::Sink`], made by [`Writer::sink`].
/// Dropped with a write pending, it takes the value back as a dropped
/// `write_async` does.
#[must_use = "sinks do nothing unless polled"]
pub struct WriterSink<'a, T> {
    writer: &'a Writer<T>,
    pending: Option<AsyncWrite<'a, T>>,
}

// A value waiting in the sink is only ever moved, never referenced by
// address (one posted to a channel is boxed first), so the sink need not
// stay pinned.
impl<T> Unpin for WriterSink<'_, T> {}

impl<T: Send> WriterSink<'_, T> {
    fn poll_pending(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<()>> {
        let Some(write) = self.pending.as_mut() else { return std::task::Poll::Ready(Ok(())) };
        let done = std::task::ready!(write.shared.poll_write(write, cx));
        self.pending = None;
        std::task::Poll::Ready(done)
    }
}

impl<T: Send> futures_sink::Sink<T> for WriterSink<'_, T> {
    type Error = Error;

    fn poll_ready(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        self.get_mut().poll_pending(cx)
    }

    fn start_send(self: std::pin::Pin<&mut Self>, value: T) -> Result<()> {
        let this = self.get_mut();
        let shared = &this.writer.end.shared;
        this.pending = Some(AsyncWrite::new(shared, value));
        Ok(())
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        self.get_mut().poll_pending(cx)
    }

    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_pending(cx))?;
        this.writer.retire();
        std::task::Poll::Ready(Ok(()))
    }
}

impl<T> fmt::Debug for WriterSink<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriterSink").field("pending", &self.pending.is_some()).finish()
    }
}
