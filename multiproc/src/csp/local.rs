//! A channel's values while every end of it is in one process: they move
//! from writer to reader without being encoded, and need not be serde
//! types.
//!
//! The channel's ring then carries, for each value, only a reference to an
//! entry in a table in this process's own memory ([`Local`]): the entry holds
//! the value (boxed, for a buffered channel) or points at the writer's
//! [`Offer`] (a rendezvous writer waits until a reader took it). The entry,
//! not the ring, is the authority: a reference is checked against the table
//! (index and a number never reused) before anything is taken, so a record
//! forged by another process that maps the ring can at worst name a value
//! that is really there. Whoever removes an entry owns its value.
//!
//! When an end is first encoded to travel, the channel becomes *shared*
//! (see `Shared::share`): the values in flight are encoded in place, and
//! from then on every value is (with the [`Codec`] the encoded end's type
//! brought).
#![allow(unsafe_code)] // values moved by pointer: see the SAFETY comments

use std::cell::UnsafeCell;
use std::mem::ManuallyDrop;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::os;
use crate::queue::raw::{Payload, Postcard};
use crate::transfer::codec;

/// A writer's value, owned by the writer while it is offered: a reader
/// that takes it moves it out (and says so in `moved`).
pub(crate) struct Offer<T> {
    value: UnsafeCell<ManuallyDrop<T>>,
    moved: AtomicBool,
}

impl<T> Offer<T> {
    pub(crate) fn new(value: T) -> Self {
        Self { value: UnsafeCell::new(ManuallyDrop::new(value)), moved: AtomicBool::new(false) }
    }

    /// The value, to encode. Only while no reader can take it: the caller
    /// holds the writer's side of it, or the channel's table entry for it.
    pub(crate) fn value(&self) -> &T {
        assert!(!self.moved.load(Ordering::SeqCst), "a channel value read after it was moved");
        // SAFETY: not moved (checked): the value is there. It is moved out
        // only by whoever removed its table entry; this is called by its
        // writer before it made one, or by the channel becoming shared,
        // holding the table with the entry in it.
        unsafe { &*self.value.get() }
    }

    /// Moves the value out. The caller owns the value (it removed its table
    /// entry, or holds the offer, unposted): nobody touches it after.
    unsafe fn take(&self) -> T {
        // SAFETY: per the caller, the value is there and ours to move; it is
        // marked moved at once so that `Drop` leaves it.
        let value = unsafe { ManuallyDrop::take(&mut *self.value.get()) };
        self.moved.store(true, Ordering::SeqCst);
        value
    }
}

impl<T> Drop for Offer<T> {
    fn drop(&mut self) {
        if !self.moved.load(Ordering::SeqCst) {
            // SAFETY: not moved out, and dropped once (here).
            unsafe { ManuallyDrop::drop(self.value.get_mut()) };
        }
    }
}

// SAFETY: an `Offer<T>` hands its `T` to another thread (the reader):
// `T: Send` is all that needs; the value is reached through `&Offer` only by
// the writer (encoding) and by the one reader that removed its entry.
unsafe impl<T: Send> Sync for Offer<T> {}

/// A reader of a local rendezvous channel waiting in this process: a
/// writer that finds it registered moves its value here (holding the
/// table) and returns at once. `repr(C)`, its head first: the head is
/// found at the waiter's address whatever `T` is.
#[repr(C)]
pub(crate) struct Waiter<T> {
    head: WaiterHead,
    filled: AtomicBool,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// What wakes a [`Waiter`], whatever its `T`.
#[repr(C)]
struct WaiterHead {
    /// Bumped when the reader should look again (a value came, here or in
    /// the ring, or the channel changed); a blocking reader sleeps on it.
    bell: AtomicU32,
    /// Taken off the queue by a writer's hand-off (then it need not be
    /// looked for when it unregisters).
    popped: AtomicBool,
    /// An awaiting reader's waker (called instead of a futex wake).
    waker: Mutex<Option<std::task::Waker>>,
}

impl WaiterHead {
    /// Tells the reader to look again. Called holding the table (the
    /// waiter cannot be gone).
    fn ring(&self) {
        self.bell.fetch_add(1, Ordering::SeqCst);
        let waker = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        match waker.as_ref() {
            Some(waker) => waker.wake_by_ref(),
            None => crate::shm::park::wake(&self.bell, 1),
        }
    }
}

impl<T> Waiter<T> {
    pub(crate) fn new() -> Self {
        Self {
            head: WaiterHead {
                bell: AtomicU32::new(0),
                popped: AtomicBool::new(false),
                waker: Mutex::new(None),
            },
            filled: AtomicBool::new(false),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// A waiter for an awaiting reader: woken through `waker`.
    pub(crate) fn awaiting(waker: &std::task::Waker) -> Self {
        let waiter = Self::new();
        *waiter.head.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(waker.clone());
        waiter
    }

    /// Makes `waker` the one to wake.
    pub(crate) fn set_waker(&self, waker: &std::task::Waker) {
        let mut mine = self.head.waker.lock().unwrap_or_else(PoisonError::into_inner);
        if !mine.as_ref().is_some_and(|m| m.will_wake(waker)) {
            *mine = Some(waker.clone());
        }
    }

    pub(crate) fn bell(&self) -> &AtomicU32 {
        &self.head.bell
    }

    /// Whether a writer handed it a value.
    pub(crate) fn filled(&self) -> bool {
        self.filled.load(Ordering::SeqCst)
    }
}

impl<T> Drop for Waiter<T> {
    fn drop(&mut self) {
        if *self.filled.get_mut() {
            // SAFETY: filled (by `hand_off`) and not taken (`unregister`
            // clears `filled` as it moves the value out).
            unsafe { self.value.get_mut().assume_init_drop() };
        }
    }
}

/// How a value is held in the table.
#[derive(Clone, Copy)]
enum Held {
    /// A `Box<T>` (buffered channels), as a raw pointer.
    Boxed { ptr: usize, free: unsafe fn(usize) },
    /// An `&Offer<T>` the writer keeps alive until the value is taken or
    /// its entry removed, and the address of its value (a `T`).
    Offered { ptr: usize, value: usize },
}

#[derive(Clone, Copy)]
struct Entry {
    number: u64,
    held: Held,
}

/// The table of values in flight in this process (see the module).
#[derive(Default)]
struct Table {
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    next_number: u64,
    /// Registered waiting readers (`&Waiter<T>` addresses), oldest first.
    waiters: std::collections::VecDeque<usize>,
}

/// A reference to a table entry, as the ring carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub(crate) index: u32,
    pub(crate) number: u64,
}

impl Ticket {
    pub(crate) const SIZE: usize = 12;

    pub(crate) fn write(self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.index.to_le_bytes());
        out[4..12].copy_from_slice(&self.number.to_le_bytes());
    }

    pub(crate) fn read(bytes: &[u8]) -> Option<Self> {
        let index = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
        let number = u64::from_le_bytes(bytes.get(4..12)?.try_into().ok()?);
        Some(Self { index, number })
    }
}

/// An encoding's result, and whether the value carried descriptors.
pub(crate) type Checked<R> = (crate::Result<R>, bool);

/// How values of a channel's type are encoded, captured where the type is
/// known to be a serde type (an end encoded or decoded here). The pointers
/// are `&T` (or `*mut MaybeUninit<T>` for `decode`) of that type.
#[derive(Clone, Copy)]
pub(crate) struct Codec {
    write: unsafe fn(*const (), &mut [u8]) -> Checked<Option<usize>>,
    size: unsafe fn(*const ()) -> Checked<usize>,
    bytes: unsafe fn(*const (), &mut Vec<u8>) -> Checked<usize>,
    encode: unsafe fn(*const ()) -> crate::Result<codec::Encoded>,
    decode: unsafe fn(&[u8], Vec<OwnedFd>, *mut ()) -> crate::Result<()>,
}

unsafe fn write_as<T: Serialize>(value: *const (), buf: &mut [u8]) -> Checked<Option<usize>> {
    // SAFETY: the caller passes a live `&T` (see `Codec`).
    let value = unsafe { &*value.cast::<T>() };
    codec::carried_fds(|| Postcard(value).write(buf))
}

unsafe fn size_as<T: Serialize>(value: *const ()) -> Checked<usize> {
    // SAFETY: as `write_as`.
    let value = unsafe { &*value.cast::<T>() };
    codec::carried_fds(|| Postcard(value).size())
}

unsafe fn bytes_as<T: Serialize>(value: *const (), scratch: &mut Vec<u8>) -> Checked<usize> {
    // SAFETY: as `write_as`.
    let value = unsafe { &*value.cast::<T>() };
    codec::carried_fds(|| Postcard(value).bytes(scratch).map(<[u8]>::len))
}

unsafe fn encode_as<T: Serialize>(value: *const ()) -> crate::Result<codec::Encoded> {
    // SAFETY: as `write_as`.
    let value = unsafe { &*value.cast::<T>() };
    codec::encode(value)
}

unsafe fn decode_as<T: DeserializeOwned>(
    bytes: &[u8],
    fds: Vec<OwnedFd>,
    out: *mut (),
) -> crate::Result<()> {
    let value: T = if fds.is_empty() {
        postcard::from_bytes(bytes).map_err(crate::Error::decode::<T>)?
    } else {
        codec::decode(bytes, fds)?
    };
    // SAFETY: the caller passes a `*mut MaybeUninit<T>` to fill.
    unsafe { out.cast::<T>().write(value) };
    Ok(())
}

impl Codec {
    pub(crate) fn of<T: Serialize + DeserializeOwned>() -> Self {
        Self {
            write: write_as::<T>,
            size: size_as::<T>,
            bytes: bytes_as::<T>,
            encode: encode_as::<T>,
            decode: decode_as::<T>,
        }
    }

    /// Encodes `value` into `buf` (`Ok(None)`: it does not fit); the flag
    /// says whether it carries descriptors (then the result is an error).
    pub(crate) fn write<T>(&self, value: &T, buf: &mut [u8]) -> Checked<Option<usize>> {
        // SAFETY: `self` was made for this channel's `T` (see `Local`).
        unsafe { (self.write)(std::ptr::from_ref(value).cast(), buf) }
    }

    pub(crate) fn size<T>(&self, value: &T) -> Checked<usize> {
        // SAFETY: as `write`.
        unsafe { (self.size)(std::ptr::from_ref(value).cast()) }
    }

    pub(crate) fn bytes<T>(&self, value: &T, scratch: &mut Vec<u8>) -> Checked<usize> {
        // SAFETY: as `write`.
        unsafe { (self.bytes)(std::ptr::from_ref(value).cast(), scratch) }
    }

    pub(crate) fn encode<T>(&self, value: &T) -> crate::Result<codec::Encoded> {
        // SAFETY: as `write`.
        unsafe { (self.encode)(std::ptr::from_ref(value).cast()) }
    }

    pub(crate) fn decode<T>(&self, bytes: &[u8], fds: Vec<OwnedFd>) -> crate::Result<T> {
        let mut out = std::mem::MaybeUninit::<T>::uninit();
        // SAFETY: as `write`; `decode` fills `out` when it returns `Ok`.
        unsafe {
            (self.decode)(bytes, fds, out.as_mut_ptr().cast())?;
            Ok(out.assume_init())
        }
    }
}

/// A channel's side in this process: its table of values in flight (while
/// the channel is local) and its codec, once known. Every handle on the
/// channel in this process shares it; a handle decoded here gets its own.
///
/// One `Local` serves one channel, whose ends all have the same `T`: every
/// entry holds a `T`, and the codec is `T`'s.
pub(crate) struct Local {
    /// The fork generation it was made in: a copy in a forked child is not
    /// the channel's local side (its entries are the parent's).
    generation: u64,
    table: Mutex<Table>,
    /// How many readers are registered in the table (read without it, so
    /// that a put with nobody waiting takes no lock).
    registered: std::sync::atomic::AtomicUsize,
    codec: OnceLock<Codec>,
    /// Awaiting readers of this process, while the channel is local.
    pub(crate) readers: Arc<crate::aio::WaitList>,
    /// Awaiting writers of this process (for room, or for a reader to take
    /// their value), while the channel is local.
    pub(crate) writers: Arc<crate::aio::WaitList>,
}

impl Local {
    pub(crate) fn new(codec: Option<Codec>) -> Self {
        let cell = OnceLock::new();
        if let Some(codec) = codec {
            let _ = cell.set(codec);
        }
        Self {
            generation: os::fork_generation(),
            table: Mutex::default(),
            registered: std::sync::atomic::AtomicUsize::new(0),
            codec: cell,
            readers: Arc::default(),
            writers: Arc::default(),
        }
    }

    /// Whether this is the local side of the channel in the calling process
    /// (not a forked child's copy).
    pub(crate) fn is_here(&self) -> bool {
        self.generation == os::fork_generation()
    }

    pub(crate) fn codec(&self) -> Option<&Codec> {
        self.codec.get()
    }

    pub(crate) fn set_codec(&self, codec: Codec) {
        let _ = self.codec.set(codec);
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(&self, held: Held) -> Ticket {
        let mut table = self.table();
        table.next_number += 1;
        let entry = Entry { number: table.next_number, held };
        let index = match table.free.pop() {
            Some(index) => {
                table.entries[index as usize] = Some(entry);
                index
            }
            None => {
                table.entries.push(Some(entry));
                (table.entries.len() - 1) as u32
            }
        };
        Ticket { index, number: entry.number }
    }

    fn remove(&self, ticket: Ticket) -> Option<Held> {
        let mut table = self.table();
        let slot = table.entries.get_mut(ticket.index as usize)?;
        let entry = slot.filter(|e| e.number == ticket.number)?;
        *slot = None;
        table.free.push(ticket.index);
        Some(entry.held)
    }

    /// Moves `offer`'s value into the table, boxed (a buffered channel's
    /// put: the writer does not wait for it to be taken).
    pub(crate) fn insert_moved<T: Send>(&self, offer: &Offer<T>) -> Ticket {
        unsafe fn free<T>(ptr: usize) {
            // SAFETY: `ptr` came from `Box::into_raw` of a `Box<T>` and is
            // freed once (its entry removed).
            drop(unsafe { Box::from_raw(ptr as *mut T) });
        }
        // SAFETY: the offer is the putting writer's own, not in the table:
        // nobody else reaches its value.
        let value = unsafe { offer.take() };
        let ptr = Box::into_raw(Box::new(value)) as usize;
        self.insert(Held::Boxed { ptr, free: free::<T> })
    }

    /// Enters `offer` into the table: the caller keeps it alive, and does
    /// not move its value, until it removed the entry or the entry is gone
    /// (a reader took the value, which marks it moved; or the channel
    /// became shared, which copied it).
    pub(crate) fn insert_offer<T: Send>(&self, offer: &Offer<T>) -> Ticket {
        // `ManuallyDrop<T>` is `repr(transparent)`: its address is the value's.
        let value = offer.value.get() as usize;
        self.insert(Held::Offered { ptr: std::ptr::from_ref(offer) as usize, value })
    }

    /// Takes the value `ticket` names, if it is still in the table.
    ///
    /// # Safety
    ///
    /// `T` is this channel's type (every entry holds one).
    pub(crate) unsafe fn take<T: Send>(&self, ticket: Ticket) -> Option<T> {
        let mut table = self.table();
        let slot = table.entries.get_mut(ticket.index as usize)?;
        let entry = slot.filter(|e| e.number == ticket.number)?;
        *slot = None;
        table.free.push(ticket.index);
        match entry.held {
            // SAFETY: the entry held a `Box<T>` (per the caller, `T` is the
            // channel's type); removing it made it ours.
            Held::Boxed { ptr, .. } => Some(*unsafe { Box::from_raw(ptr as *mut T) }),
            Held::Offered { ptr, .. } => {
                // SAFETY: the writer keeps its offer alive while its entry
                // is in the table, which we hold: the value is moved out
                // before the writer can see the entry gone.
                let offer = unsafe { &*(ptr as *const Offer<T>) };
                // SAFETY: we removed the entry: the value is ours to move.
                Some(unsafe { offer.take() })
            }
        }
    }

    /// Registers `waiter` (the caller keeps it alive, and calls
    /// [`unregister`](Self::unregister) before it goes).
    pub(crate) fn register<T: Send>(&self, waiter: &Waiter<T>) {
        let mut table = self.table();
        waiter.head.popped.store(false, Ordering::SeqCst);
        table.waiters.push_back(std::ptr::from_ref(waiter) as usize);
        self.registered.store(table.waiters.len(), Ordering::SeqCst);
    }

    /// Unregisters `waiter`; the value a writer handed it, if one did.
    pub(crate) fn unregister<T: Send>(&self, waiter: &Waiter<T>) -> Option<T> {
        let me = std::ptr::from_ref(waiter) as usize;
        let mut table = self.table();
        // One a writer took off the queue is not looked for (a million
        // waiting readers would make that a million steps each).
        if !waiter.head.popped.load(Ordering::SeqCst) {
            table.waiters.retain(|&w| w != me);
            self.registered.store(table.waiters.len(), Ordering::SeqCst);
        }
        drop(table);
        // Handed over (if at all) holding the table, which we took since.
        if !waiter.filled.swap(false, Ordering::SeqCst) {
            return None;
        }
        // SAFETY: `filled` was set after the value was written, and only
        // this call (now, once: it cleared the flag) reads it.
        Some(unsafe { (*waiter.value.get()).assume_init_read() })
    }

    /// Hands `offer`'s value to the oldest registered reader, if any:
    /// `true` if one took it.
    pub(crate) fn hand_off<T: Send>(&self, offer: &Offer<T>) -> bool {
        // Nobody registered: the put goes to the ring, which wakes whoever
        // registers meanwhile (see `wake_waiters`).
        if self.registered.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let mut table = self.table();
        let Some(ptr) = table.waiters.pop_front() else { return false };
        self.registered.store(table.waiters.len(), Ordering::SeqCst);
        // SAFETY: a registered waiter lives until it unregisters, which
        // needs the table, which we hold; every waiter of this table is a
        // `Waiter<T>` of the channel's type (see `Local`).
        let waiter = unsafe { &*(ptr as *const Waiter<T>) };
        // SAFETY: the offer is the writing caller's own, not in the table.
        let value = unsafe { offer.take() };
        // SAFETY: not filled (it is registered only while empty), and no
        // one reads it until `filled` is set.
        unsafe { (*waiter.value.get()).write(value) };
        waiter.head.popped.store(true, Ordering::SeqCst);
        waiter.filled.store(true, Ordering::SeqCst);
        // Woken holding the table: the waiter cannot be gone yet.
        waiter.head.ring();
        true
    }

    /// Tells every registered reader to look again.
    pub(crate) fn wake_waiters(&self) {
        // A reader registers before it looks at the ring (both SeqCst), and
        // a put lands in the ring before this: one of them sees the other.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.registered.load(Ordering::SeqCst) == 0 {
            return;
        }
        let table = self.table();
        for &ptr in &table.waiters {
            // SAFETY: as in `hand_off` (alive while registered); the head
            // is a waiter's first field (`repr(C)`), whatever its `T`.
            let head = unsafe { &*(ptr as *const WaiterHead) };
            head.ring();
        }
    }

    /// Removes the entry of a value its writer took back (a withdrawn
    /// offer): `true` if it was there.
    pub(crate) fn withdraw(&self, ticket: Ticket) -> bool {
        self.remove(ticket).is_some()
    }

    /// Whether the entry `ticket` names is in the table.
    pub(crate) fn holds(&self, ticket: Ticket) -> bool {
        let table = self.table();
        table
            .entries
            .get(ticket.index as usize)
            .is_some_and(|e| e.is_some_and(|e| e.number == ticket.number))
    }

    /// Encodes the value `ticket` names with `codec`, leaving it in the
    /// table; `None` if it is not there.
    ///
    /// # Safety
    ///
    /// As [`take`](Self::take); `codec` is `T`'s.
    pub(crate) unsafe fn encode(
        &self,
        ticket: Ticket,
        codec: &Codec,
    ) -> Option<crate::Result<codec::Encoded>> {
        let table = self.table();
        let entry = (*table.entries.get(ticket.index as usize)?)?;
        if entry.number != ticket.number {
            return None;
        }
        let value = match entry.held {
            Held::Boxed { ptr, .. } => ptr,
            Held::Offered { value, .. } => value,
        };
        // SAFETY: the entry is live (we hold the table), so its box or its
        // writer's offer is, and no one moves the value meanwhile (that
        // takes the entry); `codec` encodes the `T` at `value`.
        Some(unsafe { (codec.encode)(value as *const ()) })
    }

    /// Removes the entry `ticket` names, freeing a boxed value (an offered
    /// one stays with its writer, unmoved).
    pub(crate) fn release(&self, ticket: Ticket) {
        if let Some(Held::Boxed { ptr, free }) = self.remove(ticket) {
            // SAFETY: the entry was removed: the box is ours to free, once.
            unsafe { free(ptr) };
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // Values of a buffered channel nobody read: free them. (A forked
        // child's copy frees its copies, in its own memory.)
        let table = self.table.get_mut().unwrap_or_else(PoisonError::into_inner);
        for entry in table.entries.drain(..).flatten() {
            if let Held::Boxed { ptr, free } = entry.held {
                // SAFETY: a live entry's box, freed once (the table goes).
                unsafe { free(ptr) };
            }
        }
    }
}
