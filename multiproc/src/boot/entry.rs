//! What a spawned child runs: an entry of a table that the library builds at
//! compile time, one per target function.
//!
//! A spawned child runs the same executable as its parent, but at another
//! load address, and must learn which function to run. A target is a
//! zero-sized function item (or non-capturing closure), so its type alone
//! names it: [`EntryRef::of`] places, for each target type, a constant
//! [`Entry`] in the program's read-only data, holding the magic words that
//! mark an entry and a pointer to the monomorphic `run::<F, A, R>` that
//! decodes `A`, calls `F` and reports `R`. Only the entry's offset from an
//! anchor travels. The child checks that the offset lands, aligned, inside
//! its own loaded image, that the magic words are there, and that the entry's
//! function pointer points into its own code, before calling it. No code
//! address sent by anyone is ever jumped to, and a target cannot be paired
//! with another target's decoder: both are one entry.
#![allow(unsafe_code)]

use std::mem::{align_of, size_of};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::os;
use crate::process::ChildStart;
use crate::{Error, Result};

/// Marks an entry: 128 random bits (not text, which a string literal could
/// hold). The check below compares against a value computed at run time, so
/// the words appear nowhere in code, only in entries.
const MAGIC: [u64; 2] = [0xb7e1_5162_8aed_2a6b, 0xd3f5_c9a1_07e4_9b26];

/// One runnable target.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Entry {
    magic: [u64; 2],
    run: fn(ChildStart) -> !,
}

/// The reference point for offsets: an entry that is not one (no magic).
static ANCHOR: Entry = Entry { magic: [0, 0], run: unreachable_entry };

fn unreachable_entry(start: ChildStart) -> ! {
    crate::process::fail(&start.sock, "the anchor entry was run".to_owned())
}

fn anchor() -> usize {
    (&raw const ANCHOR) as usize
}

/// Where, relative to an anchor of this image, a child finds its entry.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct EntryRef {
    offset: i64,
}

impl EntryRef {
    /// The entry that runs the target `F` on an `A` and reports its `R`.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] if `F` is not zero-sized (a function pointer or
    /// a capturing closure rather than a function item or a closure that
    /// captures nothing: its value would have to travel), or if the entry is not in the same loaded object
    /// as multiproc (a target instantiated in a dynamic library loaded
    /// beside it): its offset would mean nothing in the child.
    pub(crate) fn of<F, A, R>(_target: &F) -> Result<Self>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: DeserializeOwned,
        R: Serialize,
    {
        if size_of::<F>() != 0 {
            return Err(Error::Unsupported {
                reason: "a child started by spawn or forkserver runs a function named by its \
                         type: pass the function itself, or a closure that captures nothing, \
                         not a function pointer",
            });
        }
        let entry: &'static Entry = const { &Entry { magic: MAGIC, run: run::<F, A, R> } };
        let addr = (entry as *const Entry) as usize;
        let home = os::object_base(anchor());
        if home.is_none() || os::object_base(addr) != home {
            return Err(Error::Unsupported {
                reason: "the target function is not in the same executable image as multiproc",
            });
        }
        Ok(Self { offset: addr.wrapping_sub(anchor()) as i64 })
    }

    /// The entry this reference names in this image, if it names one.
    ///
    /// # Errors
    ///
    /// Says why, if the reference does not lead to an entry.
    pub(crate) fn resolve(self) -> Result<fn(ChildStart) -> !, &'static str> {
        let run = resolve_word(self.offset, MAGIC)?;
        // SAFETY: `resolve_word` found the magic words of `MAGIC`, which only
        // the constants made by `EntryRef::of` hold, always beside a
        // `fn(ChildStart) -> !` that the compiler placed (and the loader
        // relocated) in this image; so the word after them is such a
        // function pointer, here into our own code (checked there). Our
        // parent, who chose the offset, is authenticated by the kernel
        // (`boot::trust`); this check is the second line.
        Ok(unsafe { std::mem::transmute::<usize, fn(ChildStart) -> !>(run) })
    }
}

/// Finds the entry `offset` bytes from the anchor marked by `magic` (the
/// complement of the words, so that they appear nowhere in code), and
/// returns its function word, checked to point into this image's code.
fn resolve_word(offset: i64, magic: [u64; 2]) -> Result<usize, &'static str> {
    let addr = anchor().wrapping_add(offset as usize);
    let end = addr.checked_add(size_of::<Entry>()).ok_or("out of range")?;
    if !addr.is_multiple_of(align_of::<Entry>()) {
        return Err("misaligned");
    }
    let segments = os::segments_of_object(anchor());
    // Entries are constants: in data that nothing writes once the
    // program runs (read-only, or read-only after relocation).
    if !segments.iter().any(|s| s.readable && s.read_only && s.start <= addr && end <= s.end) {
        return Err("outside this program's read-only data");
    }
    let expected = [std::hint::black_box(!magic[0]), std::hint::black_box(!magic[1])];
    // SAFETY: `addr..end` lies within one readable, read-only range that
    // the loader mapped for this executable (checked just above) and that
    // stays mapped, unchanged, for the program's life; `addr` is aligned
    // for `Entry`, whose fields are plain words, so reading them as words
    // is valid whatever bytes are there.
    let (found, run) = unsafe {
        let words = addr as *const [usize; 3];
        let w = words.read();
        ([w[0] as u64, w[1] as u64], w[2])
    };
    if found != [!expected[0], !expected[1]] {
        return Err("not an entry");
    }
    if !segments.iter().any(|s| s.executable && (s.start..s.end).contains(&run)) {
        return Err("an entry whose code lies outside this program");
    }
    Ok(run)
}

/// Marks a pool task entry: other random bits than [`MAGIC`], so that a
/// task reference can never name a process entry, nor the other way round.
const TASK_MAGIC: [u64; 2] = [0x6a09_e667_f3bc_c908, 0x3c6e_f372_fe94_f82b];

/// What a pool worker runs for a chunk of tasks (see `pool::wire`): the
/// encoded arguments, how many to pass over, how many to run, where the
/// outcomes go, and the word in shared memory that says which item runs.
pub(crate) type TaskFn = fn(&[u8], u32, u32, &mut Vec<u8>, &std::sync::atomic::AtomicU64);

/// One runnable pool task, laid out as [`Entry`].
#[repr(C)]
#[derive(Debug)]
struct TaskEntry {
    magic: [u64; 2],
    run: TaskFn,
}

const _: () = assert!(size_of::<TaskEntry>() == size_of::<Entry>());
const _: () = assert!(align_of::<TaskEntry>() == align_of::<Entry>());

/// Where, relative to the anchor, a pool worker finds a task function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TaskRef {
    offset: i64,
}

impl TaskRef {
    /// The entry that runs the zero-sized target `F` on chunks of `A`s,
    /// reporting `R`s (`pool::wire::run_chunk::<F, A, R>`).
    ///
    /// # Errors
    ///
    /// As [`EntryRef::of`].
    pub(crate) fn of<F, A, R>(_target: &F) -> Result<Self>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: DeserializeOwned,
        R: Serialize,
    {
        if size_of::<F>() != 0 {
            return Err(Error::Unsupported {
                reason: "a pool of spawned or fork-server workers runs a function named by its \
                         type: pass the function itself, or a closure that captures nothing \
                         (closures that capture need StartMethod::Fork)",
            });
        }
        let entry: &'static TaskEntry =
            const { &TaskEntry { magic: TASK_MAGIC, run: run_task::<F, A, R> } };
        let addr = (entry as *const TaskEntry) as usize;
        let home = os::object_base(anchor());
        if home.is_none() || os::object_base(addr) != home {
            return Err(Error::Unsupported {
                reason: "the task function is not in the same executable image as multiproc",
            });
        }
        Ok(Self { offset: addr.wrapping_sub(anchor()) as i64 })
    }

    /// The task function this reference names in this image.
    ///
    /// # Errors
    ///
    /// Says why, if the reference does not lead to a task entry.
    pub(crate) fn resolve(self) -> Result<TaskFn, &'static str> {
        let run = resolve_word(self.offset, TASK_MAGIC)?;
        // SAFETY: as in `EntryRef::resolve`: the task magic words are only
        // held by `TaskEntry` constants, beside a `TaskFn`.
        Ok(unsafe { std::mem::transmute::<usize, TaskFn>(run) })
    }
}

const _: () = assert!(size_of::<Entry>() == 3 * size_of::<usize>() && size_of::<usize>() == 8);

#[cfg(test)]
impl EntryRef {
    /// A reference `delta` bytes away from this one (tests only).
    pub(crate) fn shifted(self, delta: i64) -> Self {
        Self { offset: self.offset.wrapping_add(delta) }
    }

    /// A reference to an arbitrary address of this image (tests only).
    pub(crate) fn to_address(addr: usize) -> Self {
        Self { offset: addr.wrapping_sub(anchor()) as i64 }
    }
}

/// Decodes the arguments, runs `F`, reports. Never returns.
fn run<F, A, R>(start: ChildStart) -> !
where
    F: Fn(A) -> R + Copy + 'static,
    A: DeserializeOwned,
    R: Serialize,
{
    if size_of::<F>() != 0 {
        crate::process::fail(&start.sock, "the target is not zero-sized".to_owned());
    }
    // SAFETY: `F` is zero-sized (checked just above) and `Copy`: a function
    // item or a closure that captured nothing, or only zero-sized copies.
    // Such a value holds no bytes, and our parent had one when it made this
    // entry (`EntryRef::of` is only called with a target in hand); producing
    // it here is the copy that crossing the process boundary stands for.
    // A zero-sized read through a dangling, aligned, non-null pointer is valid.
    let target: F = unsafe { std::ptr::NonNull::<F>::dangling().as_ptr().read() };
    crate::process::run_target(target, start)
}

/// Runs a chunk of pool tasks with the zero-sized target `F`.
fn run_task<F, A, R>(
    input: &[u8],
    skip: u32,
    count: u32,
    out: &mut Vec<u8>,
    progress: &std::sync::atomic::AtomicU64,
) where
    F: Fn(A) -> R + Copy + 'static,
    A: DeserializeOwned,
    R: Serialize,
{
    if size_of::<F>() != 0 {
        return;
    }
    // SAFETY: as in `run`: `F` is zero-sized (checked just above) and
    // `Copy`, and the parent had one when it made this entry
    // (`TaskRef::of` takes the target by reference).
    let target: F = unsafe { std::ptr::NonNull::<F>::dangling().as_ptr().read() };
    crate::pool::wire::run_chunk(&target, input, skip, count, out, progress);
}

impl TaskRef {
    /// The reference as a word, for a task message.
    pub(crate) fn to_bits(self) -> u64 {
        self.offset as u64
    }

    /// A reference from [`to_bits`](Self::to_bits) (checked on `resolve`).
    pub(crate) fn from_bits(bits: u64) -> Self {
        Self { offset: bits as i64 }
    }
}
