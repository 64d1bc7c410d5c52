//! The client side: each thread of each process has its own session with a
//! manager, opened on first use and kept for the next calls.
//!
//! Proxies are plain data (the manager's address, its authkey and an object
//! id), so they travel anywhere: to a child as an argument, over a
//! connection, into another shared object. Whoever uses one connects.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};

use super::protocol::{Request, Response};
use crate::connection::{Address, Client, Connection};
use crate::{Error, Result, os};

/// How to reach a manager.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Link {
    pub(crate) address: Address,
    pub(crate) authkey: Option<Vec<u8>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Link").field("address", &self.address).finish_non_exhaustive()
    }
}

struct Session {
    link: Link,
    /// The fork generation the session was opened in: a forked child must
    /// not talk on its parent's session.
    generation: u64,
    conn: Connection<Request, Response>,
}

thread_local! {
    static SESSIONS: RefCell<Vec<Session>> = const { RefCell::new(Vec::new()) };
}

/// Opens a session: the handshake on the listener's socket, then, for a
/// local manager, the move to a shared-memory pipe.
fn open(link: &Link, generation: u64) -> Result<Session> {
    let conn: Connection<Request, Response> =
        Client::connect(&link.address, link.authkey.as_deref()).map_err(|e| match e {
            Error::Os { .. } | Error::Disconnected => Error::ManagerGone,
            other => other,
        })?;
    let conn = match link.address {
        Address::Tcp(_) => conn,
        Address::Unix(_) | Address::Abstract(_) => {
            conn.send(&Request::Upgrade).map_err(gone)?;
            match conn.recv().map_err(gone)? {
                Response::Upgraded(pipe) => pipe,
                other => return Err(unexpected(&other)),
            }
        }
    };
    Ok(Session { link: link.clone(), generation, conn })
}

fn gone(e: Error) -> Error {
    match e {
        Error::Disconnected => Error::ManagerGone,
        other => other,
    }
}

/// An answer that does not fit the request: a bug or a hostile server.
pub(crate) fn unexpected(response: &Response) -> Error {
    Error::protocol(format!("unexpected answer from the manager: {response:?}"))
}

/// Sends `request` to the manager at `link` and waits for the answer; a
/// failure the server reports becomes the matching [`Error`].
pub(crate) fn call(link: &Link, request: &Request) -> Result<Response> {
    let generation = os::fork_generation();
    SESSIONS.with(|cell| {
        let mut sessions = cell.borrow_mut();
        sessions.retain(|s| s.generation == generation);
        let index = match sessions.iter().position(|s| s.link == *link) {
            Some(index) => index,
            None => {
                sessions.push(open(link, generation)?);
                sessions.len() - 1
            }
        };
        let conn = &sessions[index].conn;
        let result = conn.send(request).and_then(|()| conn.recv());
        match result {
            Ok(Response::Failed(failure)) => Err(failure.into()),
            Ok(response) => Ok(response),
            Err(e) => {
                // The session is broken (the server died, or sent garbage):
                // the next call opens a new one.
                sessions.swap_remove(index);
                Err(gone(e))
            }
        }
    })
}

/// Forgets this thread's session with `link` (after a shutdown).
pub(crate) fn forget(link: &Link) {
    let _ = SESSIONS.try_with(|cell| cell.borrow_mut().retain(|s| s.link != *link));
}
