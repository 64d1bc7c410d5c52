//! Queues between processes: Python's `Queue`, `SimpleQueue` and
//! `JoinableQueue`, typed.
//!
//! A queue is a ring of bytes in shared memory. `put` encodes the item
//! straight into the ring (postcard) and returns once it is there: there is
//! no feeder thread, so a process may exit right after `put` without losing
//! the item. `get` decodes straight out of it. Producers take turns through
//! one robust lock, consumers through another, and both sides spin briefly,
//! then sleep on a futex: an idle consumer uses no CPU.
//!
//! Items of any size travel, also larger than the ring: they stream through
//! it in pieces while a consumer reads them. Killing a producer or a consumer
//! at any moment leaves the queue working for the others: a half-written item
//! is never delivered, and an item whose `put` returned `Ok` is delivered
//! exactly once, unless the consumer that was taking it was killed.
//!
//! The `try_` and `_timeout` forms keep their promise whatever other
//! producers and consumers do: a put that waits for room does not hold up
//! the other producers, and a failed put leaves nothing of its item behind
//! (a large item that does not stream through in time is called off, and
//! consumers drop what they read of it). A get that gives up on a large
//! item whose producer stalled leaves the item to be put again whole.
//!
//! Items are any `Serialize + DeserializeOwned` type, except values holding
//! file descriptors (library handles such as `Lock` or `Value`): those travel
//! as process arguments instead (Python also refuses to put a `Lock` in a
//! queue). For byte buffers, `serde_bytes::ByteBuf` encodes in one copy where
//! `Vec<u8>` goes byte by byte.

mod awaiting;
mod error;
mod iter;
mod joinable;
pub(crate) mod raw;
mod simple;
mod typed;

pub(crate) use typed::Imp;

#[cfg(feature = "redis")]
pub use crate::remote::queue::Delivery;
pub use awaiting::Stream;
pub use error::PutError;
pub use iter::{Iter, TryIter};
pub use joinable::JoinableQueue;
pub use simple::SimpleQueue;
pub use typed::{Joinable, Plain, Queue, QueueBuilder};
