//! The client side: each thread of each process has its own session with a
//! manager, opened on first use and kept for the next calls.
//!
//! Proxies are plain data (the manager's address and an object id; the
//! authkey stays behind, see [`keys`](super::keys)), so they travel
//! anywhere: to a child as an argument, over a connection, into another
//! shared object. Whoever uses one connects.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::keys::{self, AuthKey};
use super::protocol::{Request, Response};
use crate::connection::{Address, Client, Connection};
use crate::{Error, Result, os};

/// How to reach a manager. Never serialized: its key stays in this
/// process (proxies travel with the address only).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Link {
    pub(crate) address: Address,
    pub(crate) authkey: Option<AuthKey>,
}

impl Link {
    /// The link to the manager at `address` with the key this process
    /// knows for it, or `None` if it does not know that manager.
    pub(crate) fn known(address: &Address) -> Option<Self> {
        keys::lookup(address).map(|authkey| Self { address: address.clone(), authkey })
    }

    /// Why a proxy of the manager at `address` cannot be used here.
    pub(crate) fn unknown(address: &Address) -> Error {
        Error::Manager {
            message: format!(
                "this process does not know the authkey of the manager at {address:?}: \
                 call Manager::connect(address, authkey) before receiving its proxies"
            ),
        }
    }

    fn key(&self) -> Option<&[u8]> {
        self.authkey.as_ref().map(AuthKey::bytes)
    }
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
///
/// A manager this process reached before (it has proxies of it) and can no
/// longer reach is gone ([`Error::ManagerGone`]); one it has not reached
/// yet (`first`, from [`Manager::connect`](super::Manager::connect)) may
/// never have been there: the OS error naming the address says why.
fn open(link: &Link, generation: u64, first: bool) -> Result<Session> {
    let conn: Connection<Request, Response> =
        Client::connect(&link.address, link.key()).map_err(|e| match e {
            Error::Os { .. } if first => e,
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
                sessions.push(open(link, generation, false)?);
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

/// [`call`], awaited: the session (this thread's, or a new one) is the
/// call's alone until its answer came, then it joins the sessions of the
/// thread the call ends on. A call dropped before its answer closes its
/// session (a request that went out still runs in the server; its answer
/// is dropped with the connection).
pub(crate) async fn call_async(link: &Link, request: &Request) -> Result<Response> {
    let generation = os::fork_generation();
    let taken = SESSIONS.with(|cell| {
        let mut sessions = cell.borrow_mut();
        sessions.retain(|s| s.generation == generation);
        sessions.iter().position(|s| s.link == *link).map(|index| sessions.swap_remove(index))
    });
    let session = match taken {
        Some(session) => session,
        None => open(link, generation, false)?,
    };
    let result = match session.conn.send_async(request).await {
        Ok(()) => session.conn.recv_async().await,
        Err(e) => Err(e),
    };
    let give_back = |session: Session| {
        // A task may end on another thread than it began: its session
        // goes to that thread's.
        let _ = SESSIONS.try_with(|cell| cell.borrow_mut().push(session));
    };
    match result {
        Ok(Response::Failed(failure)) => {
            give_back(session);
            Err(failure.into())
        }
        Ok(response) => {
            give_back(session);
            Ok(response)
        }
        Err(e) => Err(gone(e)),
    }
}

/// Opens this thread's session with the manager at `link` afresh, for
/// [`Manager::connect`](super::Manager::connect): a manager that cannot be
/// reached is an [`Error::Os`] naming its address.
pub(crate) fn connect(link: &Link) -> Result<()> {
    let generation = os::fork_generation();
    let session = open(link, generation, true)?;
    SESSIONS.with(|cell| {
        let mut sessions = cell.borrow_mut();
        sessions.retain(|s| s.generation == generation && s.link != *link);
        sessions.push(session);
    });
    Ok(())
}

/// Whether the manager at `link` is still there, asked of this thread's
/// session (opened if needed) without a request: `Ok` if it is.
pub(crate) fn alive(link: &Link) -> Result<()> {
    let generation = os::fork_generation();
    SESSIONS.with(|cell| {
        let mut sessions = cell.borrow_mut();
        sessions.retain(|s| s.generation == generation);
        match sessions.iter().position(|s| s.link == *link) {
            Some(index) if sessions[index].conn.peer_alive() => Ok(()),
            Some(index) => {
                sessions.swap_remove(index);
                Err(Error::ManagerGone)
            }
            None => {
                sessions.push(open(link, generation, false)?);
                Ok(())
            }
        }
    })
}

/// Forgets this thread's session and this process's keeper with `link`
/// (after a shutdown).
pub(crate) fn forget(link: &Link) {
    let _ = SESSIONS.try_with(|cell| cell.borrow_mut().retain(|s| s.link != *link));
    let mut holds = holds();
    holds.keepers.retain(|(l, _)| l != link);
    holds.counts.retain(|(l, _), _| l != link);
}

/// What this process holds: how many proxies it has of each object, and
/// its keeper session with each manager.
///
/// An object lives while some process holds it (or it is lent, pinned or
/// published). A process tells the server only when its count of an object
/// goes from 0 to 1 (`Hold`) and back (`Unhold`), one-way on its keeper
/// session, a connection that lives as long as the process: when the
/// process ends, even by `SIGKILL`, the server sees the keeper close and
/// drops its holds.
#[derive(Default)]
struct Holds {
    /// The fork generation these holds and keepers belong to.
    generation: u64,
    keepers: Vec<(Link, Connection<Request, Response>)>,
    counts: HashMap<(Link, u64), usize>,
}

static HOLDS: Mutex<Option<Holds>> = Mutex::new(None);

/// This process's holds. A forked child inherits its parent's proxies but
/// not its keepers: it opens its own and holds again what it has.
fn holds() -> HoldsGuard {
    let mut guard = HOLDS.lock().unwrap_or_else(PoisonError::into_inner);
    guard.get_or_insert_with(Holds::default).refresh();
    HoldsGuard(guard)
}

/// What a fork made by multiproc carries over: this process's holds,
/// locked across the fork, and a loan of each held object to the child, so
/// that the parent dropping its proxies right after the fork frees nothing
/// the child still has. (A fork made without multiproc has no loans: its
/// child holds its objects again on its first manager call.)
pub(crate) struct ForkHolds {
    guard: MutexGuard<'static, Option<Holds>>,
    loans: Vec<(Link, u64)>,
    /// The known authkeys, which the child has in its memory.
    _keys: MutexGuard<'static, Option<HashMap<Address, Option<AuthKey>>>>,
}

/// Locks this process's holds and known keys for a fork and lends every
/// held object.
pub(crate) fn lock_for_fork() -> ForkHolds {
    let keys = keys::lock_for_fork();
    let mut guard = HOLDS.lock().unwrap_or_else(PoisonError::into_inner);
    let mut loans = Vec::new();
    if let Some(holds) = guard.as_mut() {
        holds.refresh();
        let held: Vec<(Link, u64)> = holds.counts.keys().cloned().collect();
        for (link, id) in held {
            let token = new_token();
            holds.tell(&link, &Request::Lend(id, token));
            loans.push((link, token));
        }
    }
    ForkHolds { guard, loans, _keys: keys }
}

/// The loans a fork made to its child, kept by the parent: a child killed
/// before it repaid them would otherwise keep every object its parent held
/// until the loans time out. The parent repays them once the child is gone
/// (a second repayment of a loan the child repaid is forgotten in time).
#[derive(Debug, Default)]
pub(crate) struct ForkLoans(Vec<(Link, u64)>);

impl ForkLoans {
    /// Gives back whatever the child did not: call once the child ended.
    pub(crate) fn repay(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let mut holds = holds();
        for (link, token) in self.0.drain(..) {
            holds.tell(&link, &Request::Repay(token));
        }
    }
}

impl ForkHolds {
    /// In the parent: unlocks the holds; the loans stay to be repaid
    /// once the child has ended.
    pub(crate) fn in_parent(self) -> ForkLoans {
        ForkLoans(self.loans)
    }

    /// In the child: holds what the parent held, on the child's own
    /// keepers, then gives the loans back.
    pub(crate) fn in_child(mut self) {
        let Some(holds) = self.guard.as_mut() else { return };
        holds.refresh();
        for (link, token) in &self.loans {
            holds.tell(link, &Request::Repay(*token));
        }
    }
}

/// The process's [`Holds`], locked.
struct HoldsGuard(MutexGuard<'static, Option<Holds>>);

impl std::ops::Deref for HoldsGuard {
    type Target = Holds;
    fn deref(&self) -> &Holds {
        self.0.as_ref().unwrap_or_else(|| unreachable!("set up by holds()"))
    }
}

impl std::ops::DerefMut for HoldsGuard {
    fn deref_mut(&mut self) -> &mut Holds {
        self.0.as_mut().unwrap_or_else(|| unreachable!("set up by holds()"))
    }
}

impl Holds {
    /// Catches up with a fork: the parent's keepers are the parent's (this
    /// process closes its copies of their sockets; the parent's stay open),
    /// and what the parent's proxies held, this process holds again.
    fn refresh(&mut self) {
        let generation = os::fork_generation();
        if self.generation == generation {
            return;
        }
        self.keepers.clear();
        self.generation = generation;
        let held: Vec<(Link, u64)> = self.counts.keys().cloned().collect();
        for (link, id) in held {
            self.tell(&link, &Request::Hold(id));
        }
    }

    /// Sends a one-way `request` on the keeper session with `link`, opening
    /// it if needed. A manager that is gone has nothing to keep: failures
    /// are dropped (the next message tries a new keeper).
    fn tell(&mut self, link: &Link, request: &Request) {
        let index = match self.keepers.iter().position(|(l, _)| l == link) {
            Some(index) => index,
            None => match Client::connect(&link.address, link.key()) {
                Ok(conn) => {
                    self.keepers.push((link.clone(), conn));
                    self.keepers.len() - 1
                }
                Err(_) => return,
            },
        };
        if self.keepers[index].1.send(request).is_err() {
            self.keepers.swap_remove(index);
        }
    }
}

/// How long [`sync_holds`] waits for the server's answer.
const SYNC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Returns once the server has handled every hold, drop and loan this
/// process sent to the manager at `link` (a ping on the keeper session,
/// which the server answers in order).
pub(crate) fn sync_holds(link: &Link) -> Result<()> {
    let holds = holds();
    let Some((_, keeper)) = holds.keepers.iter().find(|(l, _)| l == link) else { return Ok(()) };
    keeper.send(&Request::Ping).map_err(gone)?;
    match keeper.recv_timeout(SYNC_TIMEOUT).map_err(gone)? {
        Response::Done => Ok(()),
        other => Err(unexpected(&other)),
    }
}

/// Counts one more proxy of object `id` in this process.
pub(crate) fn hold(link: &Link, id: u64) {
    let mut holds = holds();
    let count = holds.counts.entry((link.clone(), id)).or_insert(0);
    *count += 1;
    if *count == 1 {
        holds.tell(link, &Request::Hold(id));
    }
}

/// Counts one proxy of object `id` less in this process.
pub(crate) fn unhold(link: &Link, id: u64) {
    let mut holds = holds();
    let key = (link.clone(), id);
    let Some(count) = holds.counts.get_mut(&key) else { return };
    *count -= 1;
    if *count == 0 {
        holds.counts.remove(&key);
        holds.tell(link, &Request::Unhold(id));
    }
}

/// Keeps object `id` alive while a serialized proxy of it travels: returns
/// the token its receiver repays.
pub(crate) fn lend(link: &Link, id: u64) -> u64 {
    let token = new_token();
    holds().tell(link, &Request::Lend(id, token));
    token
}

/// A fresh loan token, unique among all clients' with near certainty.
fn new_token() -> u64 {
    let mut token = [0u8; 8];
    if rustix::rand::getrandom(&mut token, rustix::rand::GetRandomFlags::empty()).is_err() {
        // Without randomness, a counter still tells this process's loans
        // apart; mixing in the pid keeps other processes' apart.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        token = ((u64::from(std::process::id()) << 32) ^ n).to_le_bytes();
    }
    u64::from_le_bytes(token)
}

/// Says that the proxy lent under `token` arrived (after holding it).
pub(crate) fn repay(link: &Link, token: u64) {
    holds().tell(link, &Request::Repay(token));
}

/// Keeps object `id` until the server stops (a proxy of it was stored
/// inside another object).
pub(crate) fn pin(link: &Link, id: u64) {
    holds().tell(link, &Request::Pin(id));
}
