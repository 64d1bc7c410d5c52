//! How values, and the file descriptors inside them, travel between processes.
//!
//! Every handle multiproc gives out (the shared-memory segments, locks, queues,
//! connection ends and manager proxies of later components, and [`FdHandle`]
//! now) is a serde value. When such a value is a process argument, a return
//! value or a message, multiproc encodes it with a compact binary codec; each
//! file descriptor inside it is replaced by an index into a side table, and
//! the descriptors of the table travel beside the bytes with `SCM_RIGHTS` over
//! a Unix socket (or are simply inherited, for the fork start method). On the
//! other side the table is filled with the received descriptors and decoding
//! takes each one back at its index, so the handle arrives open and working.
//!
//! A type of your own can carry a descriptor the same way, with
//! `#[serde(with = "multiproc::transfer::fd")]` on a field of type `OwnedFd`,
//! `File`, `UnixStream` (anything `AsFd + From<OwnedFd>`):
//!
//! ```
//! use std::io::{Read, Write};
//! use std::os::unix::net::UnixStream;
//! use multiproc::Process;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Job {
//!     id: u32,
//!     #[serde(with = "multiproc::transfer::fd")]
//!     reply: UnixStream,
//! }
//!
//! fn work(mut job: Job) {
//!     write!(job.reply, "job {} done", job.id).unwrap();
//! }
//!
//! let (mut ours, theirs) = UnixStream::pair()?;
//! Process::spawn(work, Job { id: 7, reply: theirs })?.join()?;
//! let mut text = String::new();
//! ours.read_to_string(&mut text)?;
//! assert_eq!(text, "job 7 done");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Serializing such a value with any other serde serializer fails with an
//! error saying that a descriptor can only travel through multiproc.

/// The largest message any transport accepts by default (64 MiB): socket
/// frames and messages streamed through shared-memory rings alike. A
/// receiver refuses a larger one before holding it whole.
///
/// # Examples
///
/// ```
/// use multiproc::transfer::DEFAULT_MAX_MESSAGE;
///
/// let q = multiproc::Queue::<serde_bytes::ByteBuf>::new()?;
/// let too_big = serde_bytes::ByteBuf::from(vec![0u8; DEFAULT_MAX_MESSAGE as usize + 1]);
/// assert!(matches!(
///     q.put(too_big),
///     Err(multiproc::PutError::Failed(_, multiproc::Error::FrameTooLarge { .. }))
/// ));
/// # Ok::<(), multiproc::Error>(())
/// ```
pub const DEFAULT_MAX_MESSAGE: u64 = 64 << 20;

pub(crate) mod codec;
pub mod fd;
pub(crate) mod frame;
mod handle;
pub(crate) mod scratch;

pub use handle::FdHandle;

/// A number for a message whose descriptors travel beside it (on a
/// socket), random so that an orphan descriptor frame (its message never
/// came) cannot pass for the next message's.
pub(crate) fn message_tag() -> u64 {
    let mut random = [0u8; 8];
    if rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty()).is_ok() {
        return u64::from_le_bytes(random);
    }
    // No random bytes: this process, this instant and a counter.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (u64::from(std::process::id()) << 40)
        ^ nanos
        ^ NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
