//! Across machines: the Redis back-end of queues, pools, managers and
//! locks, and [`RedisServer`], a server of one's own for tests and examples.
//!
//! The objects keep their types and methods: a [`Queue`](crate::Queue)
//! built with [`QueueBuilder::redis`](crate::QueueBuilder::redis) is a
//! `Queue`, and code written against it does not know which back-end it
//! runs on ([`Queue::backend`](crate::Queue::backend) and `Debug` tell).
//! The manager's objects keep theirs too: [`Manager::connect_redis`](crate::Manager::connect_redis)
//! makes named dicts, lists, locks... that are the same
//! [`DictProxy`](crate::manager::DictProxy), [`LockProxy`](crate::manager::LockProxy)...
//! as a local manager's. The README's section "Across machines" gives each object's guarantees.

mod lease;
pub(crate) mod link;
pub(crate) mod object;
pub(crate) mod queue;
mod server;
mod sync;
mod wire;

pub use server::{RedisServer, RedisServerBuilder};
