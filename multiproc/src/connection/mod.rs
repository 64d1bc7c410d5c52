//! Connections between processes: Python's `Pipe()`,
//! `multiprocessing.connection` `Listener`/`Client` with an `authkey`, and
//! `connection.wait`.
//!
//! A [`Connection`] sends and receives typed messages (serde), or raw bytes.
//! A [`pipe`] goes through shared memory (two of the queue's crash-safe
//! rings, one per direction) beside a Unix socket, which carries file
//! descriptors and tells each side when the other is gone. A connection made
//! by a [`Listener`] and a [`Client`] goes through the socket itself: a Unix
//! path, a Linux abstract name, or TCP.
//!
//! When the other side is gone (dropped, exited or killed), `recv` first
//! returns what was already sent, then [`Error::Disconnected`]
//! (Python's `EOFError`); `send` fails with the same error, never with a
//! `SIGPIPE` death.
//!
//! [`Error::Disconnected`]: crate::Error::Disconnected

mod auth;
mod conn;
mod iter;
mod listener;
mod oneway;
mod wait;

pub(crate) use conn::pipe_between;
pub use conn::{Connection, Stream, pipe, pipe_with_ring};
pub use iter::{Iter, TryIter};
pub use listener::{Address, Client, Listener, PendingConnection};
pub use oneway::{Receiver, Sender, pipe_oneway};
pub use wait::{Waitable, wait};
