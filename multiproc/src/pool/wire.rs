//! The bytes a pool sends to its workers and back.
//!
//! A *task* is a chunk of consecutive items of one job. On the task queue it
//! is a [`TASK_HEADER`]-byte header (task id, cancel word, item count, which
//! function) followed by one record per item: `u32 LE length | postcard
//! argument`. A worker answers on the result queue with a message that
//! starts with a [`RESULT_HEADER`]-byte header (kind, worker slot, task id)
//! and, for a finished chunk, one outcome record per item: `tag | u32 LE
//! length | bytes` (the postcard result, or a message).
//!
//! Everything read here comes from another process and is checked: a
//! malformed message is a protocol error for its task, never a panic.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::boot::entry::TaskRef;
use crate::{Error, Result};

/// Bytes before a task's argument records.
pub(crate) const TASK_HEADER: usize = 32;
/// Bytes before a result message's body.
pub(crate) const RESULT_HEADER: usize = 13;
/// A task that cannot be cancelled (no cancel word).
pub(crate) const NO_CANCEL: u32 = u32::MAX;

/// Outcome tags.
pub(crate) const OK: u8 = 0;
pub(crate) const PANICKED: u8 = 1;
pub(crate) const ENCODE_FAILED: u8 = 2;
pub(crate) const DECODE_FAILED: u8 = 3;

/// Result message kinds.
pub(crate) const DONE: u8 = 0;
pub(crate) const EXITED: u8 = 1;
pub(crate) const BOUNCE: u8 = 2;
pub(crate) const SKIPPED: u8 = 3;
pub(crate) const INIT_FAILED: u8 = 4;
pub(crate) const WAKE: u8 = 5;

/// Which function a task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// A function (or closure capturing nothing) named by its entry.
    Entry(TaskRef),
    /// A capturing closure, registered before the worker was forked.
    Closure(u64),
}

/// The parsed header of a task.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TaskHeader {
    pub(crate) id: u64,
    pub(crate) cancel: u32,
    pub(crate) count: u32,
    pub(crate) target: Target,
}

/// Starts a task message: its header, ready for argument records.
pub(crate) fn begin_task(id: u64, cancel: u32, target: Target, capacity: usize) -> Vec<u8> {
    let mut msg = Vec::with_capacity(TASK_HEADER + capacity);
    msg.extend_from_slice(&id.to_le_bytes());
    msg.extend_from_slice(&cancel.to_le_bytes());
    msg.extend_from_slice(&0u32.to_le_bytes());
    let (kind, bits) = match target {
        Target::Entry(entry) => (0u8, entry.to_bits()),
        Target::Closure(id) => (1u8, id),
    };
    msg.push(kind);
    msg.extend_from_slice(&[0; 7]);
    msg.extend_from_slice(&bits.to_le_bytes());
    msg
}

/// Sets the item count of a task message.
pub(crate) fn set_count(msg: &mut [u8], count: u32) {
    msg[12..16].copy_from_slice(&count.to_le_bytes());
}

/// Sets the task id (and cancel word) of a task message.
pub(crate) fn set_id(msg: &mut [u8], id: u64, cancel: u32) {
    msg[0..8].copy_from_slice(&id.to_le_bytes());
    msg[8..12].copy_from_slice(&cancel.to_le_bytes());
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Reads a task header; `None` if malformed.
pub(crate) fn parse_task(msg: &[u8]) -> Option<TaskHeader> {
    let id = u64_at(msg, 0)?;
    let cancel = u32_at(msg, 8)?;
    let count = u32_at(msg, 12)?;
    let bits = u64_at(msg, 24)?;
    let target = match msg.get(16)? {
        0 => Target::Entry(TaskRef::from_bits(bits)),
        1 => Target::Closure(bits),
        _ => return None,
    };
    Some(TaskHeader { id, cancel, count, target })
}

/// Appends one argument record, encoded straight into `msg`; `Err` (and
/// nothing appended) if the value does not encode. Call inside
/// [`codec::carried_fds`] to learn whether any carried descriptors.
pub(crate) fn push_arg<A: Serialize>(msg: &mut Vec<u8>, arg: &A) -> Result<()> {
    push_encoded(msg, arg).map_err(|e| Error::Encode { source: e.into() })
}

/// Appends `value` as a record (`u32 LE length | postcard`), encoded in
/// place behind a length written afterwards; on failure `msg` is as it was.
#[inline]
fn push_encoded<T: Serialize + ?Sized>(msg: &mut Vec<u8>, value: &T) -> postcard::Result<()> {
    let at = msg.len();
    msg.extend_from_slice(&[0; 4]);
    let encoded = postcard::serialize_with_flavor(value, Extend(msg));
    let len = msg.len() - at - 4;
    match (encoded, u32::try_from(len)) {
        (Ok(()), Ok(len)) => {
            msg[at..at + 4].copy_from_slice(&len.to_le_bytes());
            Ok(())
        }
        (Err(e), _) => {
            msg.truncate(at);
            Err(e)
        }
        (Ok(()), Err(_)) => {
            msg.truncate(at);
            Err(postcard::Error::SerializeBufferFull)
        }
    }
}

/// A postcard output that appends to a borrowed `Vec`, copying the short
/// slices postcard hands it (varints) without a call to `memcpy`.
struct Extend<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Extend<'_> {
    type Output = ();

    #[inline(always)]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    #[inline(always)]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        if bytes.len() <= SHORT {
            self.0.reserve(SHORT);
            for &byte in bytes {
                self.0.push(byte);
            }
        } else {
            self.0.extend_from_slice(bytes);
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Slices up to this long are copied byte by byte.
const SHORT: usize = 16;

/// The error for task arguments that hold file descriptors.
pub(crate) fn fds_refused() -> Error {
    Error::Unsupported {
        reason: "a task argument that holds file descriptors (a handle such as a Queue or \
                 Lock): give handles to the workers through the pool's initializer",
    }
}

/// Splits one length-prefixed record off `bytes`.
pub(crate) fn take_record(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32_at(bytes, 0)? as usize;
    let end = 4usize.checked_add(len)?;
    Some((bytes.get(4..end)?, bytes.get(end..)?))
}

/// The argument records of a task message (after its header), by item.
pub(crate) fn arg_records(msg: &[u8]) -> Vec<&[u8]> {
    let mut rest = msg.get(TASK_HEADER..).unwrap_or_default();
    let mut out = Vec::new();
    while let Some((record, tail)) = take_record(rest) {
        out.push(record);
        rest = tail;
    }
    out
}

/// Appends an argument record holding already-encoded bytes.
pub(crate) fn push_raw_arg(msg: &mut Vec<u8>, record: &[u8]) {
    msg.extend_from_slice(&(record.len() as u32).to_le_bytes());
    msg.extend_from_slice(record);
}

/// Appends one outcome record.
fn push_outcome(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Splits one outcome record off `bytes`: its tag and bytes.
pub(crate) fn take_outcome(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (record, rest) = take_record(rest)?;
    Some((tag, record, rest))
}

/// Runs `f` on each of the `count` argument records of `input`, appending
/// one outcome record per item to `out`; stores `i` in `progress` before
/// item `i` starts (a relaxed store: it is read once this process is dead).
/// A panic, an argument that does not decode and a result that does not
/// encode each fail their item only.
pub(crate) fn run_chunk<F, A, R>(
    f: &F,
    input: &[u8],
    count: u32,
    out: &mut Vec<u8>,
    progress: &AtomicU64,
) where
    F: Fn(A) -> R,
    A: DeserializeOwned,
    R: Serialize,
{
    let mut rest = input;
    for i in 0..count {
        progress.store(u64::from(i), Ordering::Relaxed);
        let Some((record, tail)) = take_record(rest) else {
            push_outcome(out, DECODE_FAILED, b"the task message is truncated");
            continue;
        };
        rest = tail;
        let arg = match postcard::from_bytes::<A>(record) {
            Ok(arg) => arg,
            Err(e) => {
                let message = format!("could not decode the task's argument: {e}");
                push_outcome(out, DECODE_FAILED, message.as_bytes());
                continue;
            }
        };
        let at = out.len();
        out.push(OK);
        // The result is encoded straight into `out`, behind its tag.
        match panic::catch_unwind(AssertUnwindSafe(|| push_encoded(out, &f(arg)))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                out.truncate(at);
                let message = format!("could not encode the task's result: {e}");
                push_outcome(out, ENCODE_FAILED, message.as_bytes());
            }
            Err(payload) => {
                out.truncate(at);
                let message = crate::process::panic_message(payload.as_ref());
                std::mem::forget(payload);
                push_outcome(out, PANICKED, message.as_bytes());
            }
        }
    }
}

/// Starts a result message.
pub(crate) fn begin_result(kind: u8, slot: u32, task: u64) -> Vec<u8> {
    let mut msg = Vec::with_capacity(256);
    msg.push(kind);
    msg.extend_from_slice(&slot.to_le_bytes());
    msg.extend_from_slice(&task.to_le_bytes());
    msg
}

/// Resets `msg` to a result message header, keeping its allocation.
pub(crate) fn reset_result(msg: &mut Vec<u8>, kind: u8, slot: u32, task: u64) {
    msg.clear();
    msg.push(kind);
    msg.extend_from_slice(&slot.to_le_bytes());
    msg.extend_from_slice(&task.to_le_bytes());
}

/// A parsed result message header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResultHeader {
    pub(crate) kind: u8,
    pub(crate) slot: u32,
    pub(crate) task: u64,
}

/// Reads a result message header; `None` if malformed.
pub(crate) fn parse_result(msg: &[u8]) -> Option<ResultHeader> {
    Some(ResultHeader { kind: *msg.first()?, slot: u32_at(msg, 1)?, task: u64_at(msg, 5)? })
}

/// Decodes the outcome records of `body` (exactly `count` of them), calling
/// `each` with every item's result.
pub(crate) fn decode_outcomes<R: DeserializeOwned>(
    body: &[u8],
    count: usize,
    mut each: impl FnMut(Result<R>),
) {
    let mut rest = body;
    for _ in 0..count {
        match take_outcome(rest) {
            Some((tag, bytes, tail)) => {
                rest = tail;
                each(outcome::<R>(tag, bytes));
            }
            None => {
                rest = &[];
                each(Err(Error::protocol("a worker sent fewer outcomes than tasks")));
            }
        }
    }
}

/// One item's result from its outcome record.
pub(crate) fn outcome<R: DeserializeOwned>(tag: u8, bytes: &[u8]) -> Result<R> {
    let text = || String::from_utf8_lossy(bytes).into_owned();
    match tag {
        OK => postcard::from_bytes(bytes).map_err(Error::decode::<R>),
        PANICKED => Err(Error::Panicked {
            process: "pool worker".to_owned(),
            location: None,
            message: text(),
        }),
        ENCODE_FAILED | DECODE_FAILED => Err(Error::TaskFailed { message: text() }),
        _ => Err(Error::protocol(format!("unknown task outcome tag {tag}"))),
    }
}

/// Whether every one of the `count` outcome records of `body` is a success.
pub(crate) fn all_ok(body: &[u8], count: usize) -> bool {
    let mut rest = body;
    for _ in 0..count {
        match take_outcome(rest) {
            Some((OK, _, tail)) => rest = tail,
            _ => return false,
        }
    }
    true
}
