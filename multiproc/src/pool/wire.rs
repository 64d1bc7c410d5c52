//! The bytes a pool sends to its workers and back.
//!
//! A *task* is a chunk of consecutive items of one job. On the task queue it
//! is a [`TASK_HEADER`]-byte header (task id, cancel word, item count, items
//! to skip, which function) followed by the items' arguments, postcard
//! values one after the other: the type says where each ends, so no item
//! carries a length. A task that runs a chunk again from its `k`th item
//! keeps the chunk's bytes and says to skip `k` items.
//!
//! A worker answers on the result queue with a message that starts with a
//! [`RESULT_HEADER`]-byte header (kind, worker slot, task id). The body of a
//! finished chunk is postcard too: a byte that says whether every item
//! succeeded, then per item a tag and either the result (`OK`) or a
//! message (bytes).
//!
//! Everything read here comes from another process and is checked: a
//! malformed message is a protocol error for its task, never a panic. An
//! argument or result that does not decode fails its item and the rest of
//! its chunk (whose items cannot be found without it).

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer as _};

use crate::boot::entry::TaskRef;
use crate::{Error, Result};

/// Bytes before a task's arguments.
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
    /// Items to run.
    pub(crate) count: u32,
    /// Items of the message to pass over before those that run.
    pub(crate) skip: u32,
    pub(crate) target: Target,
}

/// Starts a task message: its header, ready for arguments.
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
    msg.extend_from_slice(&[0; 3]);
    msg.extend_from_slice(&0u32.to_le_bytes());
    msg.extend_from_slice(&bits.to_le_bytes());
    msg
}

/// Sets the item count of a task message.
pub(crate) fn set_count(msg: &mut [u8], count: u32) {
    msg[12..16].copy_from_slice(&count.to_le_bytes());
}

/// Sets the items a task message passes over before those that run.
pub(crate) fn set_skip(msg: &mut [u8], skip: u32) {
    msg[20..24].copy_from_slice(&skip.to_le_bytes());
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
    let skip = u32_at(msg, 20)?;
    let bits = u64_at(msg, 24)?;
    let target = match msg.get(16)? {
        0 => Target::Entry(TaskRef::from_bits(bits)),
        1 => Target::Closure(bits),
        _ => return None,
    };
    Some(TaskHeader { id, cancel, count, skip, target })
}

/// Appends one argument, encoded straight into `msg`; `Err` (and nothing
/// appended) if the value does not encode. Call inside
/// [`codec::carried_fds`](crate::transfer::codec::carried_fds) to learn
/// whether any carried descriptors.
#[inline(always)]
pub(crate) fn push_arg<A: Serialize>(msg: &mut Vec<u8>, arg: &A) -> Result<()> {
    let at = msg.len();
    match arg.serialize(&mut postcard::Serializer { output: Extend(msg) }) {
        Ok(()) => Ok(()),
        Err(e) => Err(not_encoded(msg, at, e)),
    }
}

/// Takes back what an argument that failed to encode left in `msg`.
#[cold]
fn not_encoded(msg: &mut Vec<u8>, at: usize, e: postcard::Error) -> Error {
    msg.truncate(at);
    Error::Encode { source: e.into() }
}

/// Appends an argument already encoded (with postcard).
pub(crate) fn push_raw_arg(msg: &mut Vec<u8>, encoded: &[u8]) {
    msg.extend_from_slice(encoded);
}

/// A postcard output that appends to a borrowed `Vec`, copying the short
/// slices postcard hands it (varints) by their length as arrays: no call to
/// `memcpy`, and one length check per slice, not per byte.
struct Extend<'a>(&'a mut Vec<u8>);

impl Extend<'_> {
    #[inline(always)]
    fn array<const N: usize>(&mut self, bytes: &[u8]) {
        match <&[u8; N]>::try_from(bytes) {
            Ok(array) => self.0.extend_from_slice(array),
            Err(_) => self.0.extend_from_slice(bytes),
        }
    }
}

impl postcard::ser_flavors::Flavor for Extend<'_> {
    type Output = ();

    #[inline(always)]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    #[inline(always)]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        match bytes.len() {
            1 => self.0.push(bytes[0]),
            2 => self.array::<2>(bytes),
            3 => self.array::<3>(bytes),
            4 => self.array::<4>(bytes),
            5 => self.array::<5>(bytes),
            6 => self.array::<6>(bytes),
            7 => self.array::<7>(bytes),
            8 => self.array::<8>(bytes),
            9 => self.array::<9>(bytes),
            10 => self.array::<10>(bytes),
            _ => self.0.extend_from_slice(bytes),
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// The error for task arguments that hold file descriptors.
pub(crate) fn fds_refused() -> Error {
    Error::Unsupported {
        reason: "a task argument that holds file descriptors (a handle such as a Queue or \
                 Lock): give handles to the workers through the pool's initializer",
    }
}

/// Writes outcome records into a result message, behind the byte that
/// says whether every item succeeded.
struct Outcomes<'a> {
    ser: postcard::Serializer<Extend<'a>>,
    /// Where the all-succeeded byte is.
    clean: usize,
}

impl<'a> Outcomes<'a> {
    fn begin(out: &'a mut Vec<u8>) -> Self {
        let clean = out.len();
        out.push(1);
        Self { ser: postcard::Serializer { output: Extend(out) }, clean }
    }

    fn out(&mut self) -> &mut Vec<u8> {
        self.ser.output.0
    }

    /// Appends a failed item's record.
    fn fail(&mut self, tag: u8, message: &str) {
        let clean = self.clean;
        let out = self.out();
        out[clean] = 0;
        out.push(tag);
        // Bytes always encode.
        let _ = (&mut self.ser).serialize_bytes(message.as_bytes());
    }

    /// Appends `n` failed items' records.
    fn fail_many(&mut self, n: u32, tag: u8, message: &str) {
        for _ in 0..n {
            self.fail(tag, message);
        }
    }
}

/// Appends the outcomes of `count` items that all failed with `message`
/// (tagged `tag`) to a result message.
pub(crate) fn push_failures(out: &mut Vec<u8>, count: u32, tag: u8, message: &str) {
    Outcomes::begin(out).fail_many(count, tag, message);
}

/// Runs `f` on the arguments of `input` after the first `skip`, `count`
/// of them, appending their outcomes to `out`; stores `i` in `progress`
/// before item `i` starts (a relaxed store: it is read once this process is
/// dead). A panic and a result that does not encode each fail their item
/// only; an argument that does not decode fails the rest of the chunk.
pub(crate) fn run_chunk<F, A, R>(
    f: &F,
    input: &[u8],
    skip: u32,
    count: u32,
    out: &mut Vec<u8>,
    progress: &AtomicU64,
) where
    F: Fn(A) -> R,
    A: DeserializeOwned,
    R: Serialize,
{
    let mut outcomes = Outcomes::begin(out);
    let mut args = postcard::Deserializer::from_bytes(input);
    for _ in 0..skip {
        if let Err(e) = A::deserialize(&mut args) {
            let message = format!("could not decode the task's argument: {e}");
            outcomes.fail_many(count, DECODE_FAILED, &message);
            return;
        }
    }
    for i in 0..count {
        progress.store(u64::from(i), Ordering::Relaxed);
        let arg = match A::deserialize(&mut args) {
            Ok(arg) => arg,
            Err(e) => {
                let message = format!("could not decode the task's argument: {e}");
                outcomes.fail_many(count - i, DECODE_FAILED, &message);
                return;
            }
        };
        let at = outcomes.out().len();
        outcomes.out().push(OK);
        // The result is encoded straight into `out`, behind its tag.
        let ser = &mut outcomes.ser;
        match panic::catch_unwind(AssertUnwindSafe(|| f(arg).serialize(ser))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                outcomes.out().truncate(at);
                let message = format!("could not encode the task's result: {e}");
                outcomes.fail(ENCODE_FAILED, &message);
            }
            Err(payload) => {
                outcomes.out().truncate(at);
                let message = crate::process::panic_message(payload.as_ref());
                std::mem::forget(payload);
                outcomes.fail(PANICKED, &message);
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

/// One item's outcome as read.
enum Item<'a, R> {
    Ok(R),
    /// The item failed: its tag and message.
    Failed(u8, &'a [u8]),
}

/// Reads the outcomes of a finished chunk's body, one by one.
struct Reader<'a> {
    de: postcard::Deserializer<'a, postcard::de_flavors::Slice<'a>>,
}

impl<'a> Reader<'a> {
    fn new(body: &'a [u8]) -> Self {
        let records = body.get(1..).unwrap_or_default();
        Self { de: postcard::Deserializer::from_bytes(records) }
    }

    /// The next item's outcome; `Err` if it cannot be read (the body is
    /// short, or a result does not decode), and then neither can the rest.
    #[inline]
    fn next<R: DeserializeOwned>(&mut self) -> Result<Item<'a, R>> {
        match u8::deserialize(&mut self.de) {
            Ok(OK) => R::deserialize(&mut self.de).map(Item::Ok).map_err(Error::decode::<R>),
            Ok(tag) => self.message().map(|bytes| Item::Failed(tag, bytes)),
            Err(_) => Err(fewer()),
        }
    }

    /// The message of a failed item, after its tag.
    fn message(&mut self) -> Result<&'a [u8]> {
        <&'a [u8]>::deserialize(&mut self.de)
            .map_err(|_| Error::protocol("a worker sent a malformed outcome"))
    }

    /// The error of a failed item tagged `tag`, after its tag.
    #[cold]
    fn failure(&mut self, tag: u8) -> Error {
        match self.message() {
            Ok(bytes) => failure(tag, bytes),
            Err(e) => e,
        }
    }
}

/// The error of a body that ends before its items do.
#[cold]
fn fewer() -> Error {
    Error::protocol("a worker sent fewer outcomes than tasks")
}

/// The error of the items after one whose outcome could not be read.
fn unreadable() -> Error {
    Error::protocol("an outcome before this one in its chunk could not be read")
}

/// An item's failure from its outcome record.
fn failure(tag: u8, bytes: &[u8]) -> Error {
    let text = || String::from_utf8_lossy(bytes).into_owned();
    match tag {
        PANICKED => {
            Error::Panicked { process: "pool worker".to_owned(), location: None, message: text() }
        }
        ENCODE_FAILED | DECODE_FAILED => Error::TaskFailed { message: text() },
        _ => Error::protocol(format!("unknown task outcome tag {tag}")),
    }
}

/// Decodes the outcomes of `body` (exactly `count` of them), calling
/// `each` with every item's result.
pub(crate) fn decode_outcomes<R: DeserializeOwned>(
    body: &[u8],
    count: usize,
    mut each: impl FnMut(Result<R>),
) {
    let mut reader = Reader::new(body);
    for i in 0..count {
        match reader.next::<R>() {
            Ok(Item::Ok(value)) => each(Ok(value)),
            Ok(Item::Failed(tag, bytes)) => each(Err(failure(tag, bytes))),
            Err(e) => {
                each(Err(e));
                for _ in i + 1..count {
                    each(Err(unreadable()));
                }
                return;
            }
        }
    }
}

/// Decodes the results of `body` (exactly `count` of them) onto `out`;
/// the first item's error, if any failed (and then `out` holds some of
/// them).
pub(crate) fn decode_into<R: DeserializeOwned>(
    body: &[u8],
    count: usize,
    out: &mut Vec<R>,
) -> Result<()> {
    out.reserve(count);
    let mut reader = Reader::new(body);
    for _ in 0..count {
        match u8::deserialize(&mut reader.de) {
            Ok(OK) => match R::deserialize(&mut reader.de) {
                Ok(value) => out.push(value),
                Err(e) => return Err(Error::decode::<R>(e)),
            },
            Ok(tag) => return Err(reader.failure(tag)),
            Err(_) => return Err(fewer()),
        }
    }
    Ok(())
}

/// Whether the worker said that every item of `body` succeeded.
pub(crate) fn all_ok(body: &[u8]) -> bool {
    body.first() == Some(&1)
}

/// The initializer's outcome (one item of `()`), as its error message.
pub(crate) fn init_outcome(body: &[u8]) -> Result<(), String> {
    match Reader::new(body).next::<()>() {
        Ok(Item::Ok(())) => Ok(()),
        Ok(Item::Failed(_, message)) => {
            Err(format!("the initializer failed: {}", String::from_utf8_lossy(message)))
        }
        Err(_) => Err("the initializer reported nothing".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task's arguments, as `send_chunk` encodes them.
    fn args(items: impl IntoIterator<Item = u64>) -> Vec<u8> {
        let mut msg = Vec::new();
        for item in items {
            push_arg(&mut msg, &item).unwrap();
        }
        msg
    }

    fn run(f: fn(u64) -> u64, input: &[u8], skip: u32, count: u32) -> Vec<u8> {
        let mut out = Vec::new();
        run_chunk(&f, input, skip, count, &mut out, &AtomicU64::new(0));
        out
    }

    fn outcomes(body: &[u8], count: usize) -> Vec<Result<u64>> {
        let mut all = Vec::new();
        decode_outcomes(body, count, |r| all.push(r));
        all
    }

    #[test]
    fn a_chunk_passes_over_its_skipped_items_and_runs_the_next_ones() {
        let body = run(|x| x * x, &args(0..10), 3, 4);
        let mut out = Vec::new();
        decode_into::<u64>(&body, 4, &mut out).unwrap();
        assert_eq!(out, [9, 16, 25, 36]);
        assert!(all_ok(&body));
    }

    #[test]
    fn a_failed_item_fails_alone_and_clears_the_all_ok_byte() {
        fn odd_panics(x: u64) -> u64 {
            assert!(x.is_multiple_of(2), "odd {x}");
            x
        }
        let body = run(odd_panics, &args([2, 3, 4, 300, 5]), 0, 5);
        assert!(!all_ok(&body));
        let all = outcomes(&body, 5);
        assert_eq!(all.len(), 5);
        assert!(matches!(all[0], Ok(2)));
        assert!(matches!(&all[1], Err(Error::Panicked { message, .. }) if message == "odd 3"));
        assert!(matches!(all[2], Ok(4)));
        assert!(matches!(all[3], Ok(300)));
        assert!(matches!(&all[4], Err(Error::Panicked { message, .. }) if message == "odd 5"));
        let mut out = Vec::new();
        let first = decode_into::<u64>(&body, 5, &mut out).unwrap_err();
        assert!(matches!(first, Error::Panicked { message, .. } if message == "odd 3"));
    }

    #[test]
    fn an_argument_that_does_not_decode_fails_the_rest_of_its_chunk() {
        // A u64 varint cut short: the second argument never ends.
        let mut input = args([7]);
        input.push(0x80);
        let all = outcomes(&run(|x| x, &input, 0, 3), 3);
        assert!(matches!(all[0], Ok(7)));
        for r in &all[1..] {
            assert!(matches!(r, Err(Error::TaskFailed { message }) if message.contains("decode")));
        }
    }

    #[test]
    fn short_or_corrupt_bodies_fail_their_items_without_panicking() {
        let body = run(|x| x.wrapping_mul(0x9e37_79b9_7f4a_7c15), &args(0..50), 0, 50);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for cut in 0..=body.len() {
            let mut bytes = body[..cut].to_vec();
            // Every other prefix also gets a corrupted byte.
            if cut % 2 == 1 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed as usize) % bytes.len();
                bytes[at] = (seed >> 32) as u8;
            }
            assert_eq!(outcomes(&bytes, 50).len(), 50);
            let mut out = Vec::new();
            let _ = decode_into::<u64>(&bytes, 50, &mut out);
            assert!(out.len() <= 50);
            let _ = decode_into::<String>(&bytes, 50, &mut Vec::new());
            let _ = init_outcome(&bytes);
            let _ = parse_task(&bytes);
            let _ = parse_result(&bytes);
        }
    }
}
