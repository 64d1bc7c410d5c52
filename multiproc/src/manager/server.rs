//! The manager's server process: a registry of objects and one thread per
//! client session.
//!
//! A session starts on the listener's socket with the authkey handshake
//! (run in the session's own thread, so a slow client delays nobody). At
//! most [`MAX_HANDSHAKES`] connections are in their handshake at once: the
//! server accepts no more until one of them is through (or fails, or runs
//! out its 10 s), and the kernel's listen queue holds the others, so that
//! peers without the key cost the server no thread and no memory beyond
//! that. (They can still make others wait, up to the handshake timeout,
//! as any peer that fills a listen queue can.) A
//! local client then asks for [`Request::Upgrade`] and the session moves to a
//! shared-memory [`pipe`](crate::pipe) whose other end travels back over the
//! socket; a remote client stays on TCP. A request that does not decode ends
//! its session only. Every object has its own lock, so sessions working on
//! different objects do not wait for each other.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::os::fd::AsFd;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::custom::{Construct, HostedObject, Registered};
use super::dynval::{self, Blob};
use super::protocol::{Create, Failure, Kind, Op, Outcome, Part, Request, Response, Wait};
use crate::Error;
use crate::connection::{Address, Connection, Listener, PendingConnection, pipe_between};
use crate::os::{self, StopSignals, Waker};
use crate::queue::Queue;
use crate::shm::liveness::Liveness;

/// How often a waiting session thread looks whether its client is gone.
const ALIVE_CHECK: Duration = Duration::from_millis(100);
/// Each direction of a local session's pipe: larger messages stream through.
const SESSION_RING: usize = 64 << 10;
/// A session thread's stack: the server holds hundreds of them.
const SESSION_STACK: usize = 1 << 20;
/// The ring of a list's append log: when it is full, appends go by request.
const LOG_RING: usize = 256 << 10;
/// At most this many connections are in their authkey handshake at once.
pub(crate) const MAX_HANDSHAKES: usize = 64;

/// How many accepted connections are still in their handshake.
#[derive(Debug, Default)]
struct Handshakes {
    count: Mutex<usize>,
    done: Condvar,
}

impl Handshakes {
    /// Waits until fewer than [`MAX_HANDSHAKES`] are under way.
    fn wait_for_room(&self) {
        let mut count = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        while *count >= MAX_HANDSHAKES {
            count = self.done.wait(count).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Counts one more under way, until the returned slot is dropped.
    fn begin(self: &Arc<Self>) -> HandshakeSlot {
        *self.count.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        HandshakeSlot(Arc::clone(self))
    }
}

/// One handshake under way: dropping it (done, failed, or its thread never
/// started) makes room for the next.
struct HandshakeSlot(Arc<Handshakes>);

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut count = self.0.count.lock().unwrap_or_else(PoisonError::into_inner);
        *count = count.saturating_sub(1);
        self.0.done.notify_one();
    }
}

/// What the server process is started with (its key travels in the spawn
/// bootstrap only, and `Debug` does not show it).
#[derive(Serialize, Deserialize)]
pub(crate) struct ServerArgs {
    pub(crate) address: Address,
    pub(crate) authkey: Option<Vec<u8>>,
    /// Where the server reports the address it listens on, or why it cannot.
    pub(crate) report: Connection<Result<Address, ListenFailure>, ()>,
    /// How long a proxy on its way keeps its object (see [`Refs::loans`]).
    pub(crate) loan_timeout: Duration,
}

impl std::fmt::Debug for ServerArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerArgs").field("address", &self.address).finish_non_exhaustive()
    }
}

/// Why the server could not listen, as it travels back to `start`: the
/// operating system's error number, if it was one, and the message.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ListenFailure {
    pub(crate) op: String,
    pub(crate) errno: Option<i32>,
    pub(crate) message: String,
}

impl ListenFailure {
    fn new(e: &Error) -> Self {
        match e {
            Error::Os { op, source, .. } => {
                Self { op: (*op).to_owned(), errno: source.raw_os_error(), message: e.to_string() }
            }
            other => Self { op: String::new(), errno: None, message: other.to_string() },
        }
    }

    /// The error `start` reports: [`Error::Os`] naming `address`, with the
    /// OS error as source, when it was one.
    pub(crate) fn into_error(self, address: &Address) -> Error {
        match self.errno {
            Some(errno) => Error::Os {
                op: if self.op == "listen on TCP" {
                    "listen on TCP"
                } else {
                    "listen on a Unix socket"
                },
                address: Some(address.clone()),
                source: std::io::Error::from_raw_os_error(errno),
            },
            None => Error::Manager { message: self.message },
        }
    }
}

/// The server process's entry point (a manager's `start`), knowing the
/// registered types `R`: listens, reports the address, and serves until
/// the owner's `Shutdown`.
pub(crate) fn serve<R: Registered>(args: ServerArgs) {
    let listener = match Listener::bind(args.address, args.authkey.as_deref()) {
        Ok(listener) => listener,
        Err(e) => {
            let _ = args.report.send(&Err(ListenFailure::new(&e)));
            return;
        }
    };
    if args.report.send(&Ok(listener.address().clone())).is_err() {
        return;
    }
    drop(args.report);
    if let Err(e) = run::<R>(&listener, args.authkey.as_deref(), args.loan_timeout, None) {
        log::warn!(target: "multiproc::manager", "the manager's server stopped: {e}");
    }
}

/// Serves clients on `listener` until it is stopped: by a `Shutdown`
/// request (the owner's, for a server `start` made), and for a standalone
/// server (`signals` given, `ManagerServer::serve`) also by a client's
/// `Stop` or a stop signal. Then every session is cut (its client sees the
/// manager gone) and this returns; session threads end on their own.
pub(crate) fn run<R: Registered>(
    listener: &Listener,
    authkey: Option<&[u8]>,
    loan_timeout: Duration,
    signals: Option<&StopSignals>,
) -> Result<(), Error> {
    let address = listener.address().clone();
    // Proxies of this manager decoded here (inside registered objects).
    super::keys::register(&address, authkey.map(super::keys::AuthKey::new).as_ref());
    let waker = Waker::new().map_err(Error::os("make the manager's stop waker"))?;
    listener.set_nonblocking().map_err(Error::os("make the manager's listener non-blocking"))?;
    // Held by this thread, which serves until the server stops.
    let liveness = Liveness::hold_for_life().ok();
    let registry = Arc::new(Registry::new(
        liveness,
        address.clone(),
        R::construct,
        loan_timeout,
        Some(waker),
        signals.is_some(),
    ));
    {
        let registry = Arc::clone(&registry);
        // Without it, loans never run out: objects are kept too long, but
        // nothing breaks.
        let _ = std::thread::Builder::new()
            .name("manager-loans".to_owned())
            .stack_size(SESSION_STACK)
            .spawn(move || registry.expire_loans_until_stopped());
    }
    log::info!(target: "multiproc::manager", "manager server {} listens on {address:?}", std::process::id());
    let handshakes = Arc::new(Handshakes::default());
    let waker = registry.stop.as_ref().map(AsFd::as_fd);
    loop {
        handshakes.wait_for_room();
        let mut fds = vec![listener.fd()];
        fds.extend(waker);
        fds.extend(signals.map(StopSignals::fd));
        let ready = os::wait_readable(&fds, None).ok().flatten().unwrap_or_default();
        if registry.stopped.load(Ordering::Acquire) {
            log::info!(target: "multiproc::manager", "manager server at {address:?} stops: a client asked");
            break;
        }
        if let Some(signal) =
            signals.filter(|_| ready.get(2) == Some(&true)).and_then(StopSignals::take)
        {
            log::info!(target: "multiproc::manager", "manager server at {address:?} stops: signal {signal}");
            break;
        }
        match listener.accept_pending() {
            Ok(pending) => {
                let registry = Arc::clone(&registry);
                let slot = handshakes.begin();
                let started = std::thread::Builder::new()
                    .name("manager-session".to_owned())
                    .stack_size(SESSION_STACK)
                    .spawn(move || session(pending, slot, &registry));
                if started.is_err() {
                    // Out of threads: the dropped connection tells its client.
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            // Nobody there after all (the listener does not block).
            Err(Error::Os { source, .. }) if source.kind() == std::io::ErrorKind::WouldBlock => {}
            // Out of descriptors, or a client that left at once: go on.
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    registry.stop_all();
    Ok(())
}

/// What the server knows of one session: its id (the owner of the locks it
/// takes) and the locks it holds, released for the next taker (who learns
/// that their owner died) if the session ends with them held.
struct Ctx {
    id: u64,
    /// Whether the session's client is still there (asked while waiting).
    client_alive: Box<dyn Fn() -> bool + Send>,
    held: Vec<u64>,
    /// The objects this session used: found again without touching the
    /// registry's lock (an object freed meanwhile says so).
    objects: HashMap<u64, Arc<Object>>,
    /// The objects this session's process holds (a keeper session).
    holds: HashSet<u64>,
}

static SESSION_IDS: AtomicU64 = AtomicU64::new(0);

/// Serves one client until it leaves or breaks the protocol.
fn session(pending: PendingConnection, slot: HandshakeSlot, registry: &Registry) {
    let handshake = pending.handshake::<Response, Request>();
    drop(slot);
    let conn = match handshake {
        Ok(conn) => conn,
        Err(Error::AuthenticationFailed) => {
            log::warn!(
                target: "multiproc::manager",
                "manager at {:?}: a client failed the authkey handshake",
                registry.address
            );
            return;
        }
        Err(e) => {
            log::debug!(
                target: "multiproc::manager",
                "manager at {:?}: a connection ended in its handshake: {e}",
                registry.address
            );
            return;
        }
    };
    let mut ctx = Ctx {
        id: SESSION_IDS.fetch_add(1, Ordering::Relaxed) + 1,
        client_alive: alive_probe(&conn),
        held: Vec::new(),
        objects: HashMap::new(),
        holds: HashSet::new(),
    };
    log::debug!(target: "multiproc::manager", "manager at {:?}: session {} opened", registry.address, ctx.id);
    registry.track(ctx.id, &conn);
    // A panic must not keep this session's locks held: release them anyway.
    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| serve_session(conn, registry, &mut ctx)));
    registry.untrack(ctx.id);
    log::debug!(target: "multiproc::manager", "manager at {:?}: session {} closed", registry.address, ctx.id);
    registry.release_all(&ctx);
    // The process behind a keeper session is gone: so are its holds.
    for id in ctx.holds.drain() {
        registry.decref(id);
    }
}

fn alive_probe(conn: &Connection<Response, Request>) -> Box<dyn Fn() -> bool + Send> {
    let conn = conn.clone();
    Box::new(move || conn.peer_alive())
}

/// What to take back if the answer to a request cannot be delivered (its
/// client died while the server waited for it): the item a `get` took, the
/// unit or lock an `acquire` took.
#[derive(Debug, Clone, Copy)]
enum Undo {
    Nothing,
    Take(u64),
    Unit(u64),
    Lock(u64),
}

impl Undo {
    fn of(request: &Request) -> Self {
        match request {
            Request::Call(id, Kind::Queue, Op::Take(_)) => Self::Take(*id),
            Request::Call(id, Kind::Semaphore, Op::Acquire(_)) => Self::Unit(*id),
            Request::Call(id, Kind::Lock | Kind::RLock | Kind::Condition, Op::Acquire(_)) => {
                Self::Lock(*id)
            }
            _ => Self::Nothing,
        }
    }
}

fn serve_session(mut conn: Connection<Response, Request>, registry: &Registry, ctx: &mut Ctx) {
    loop {
        let Ok(request) = conn.recv() else { return };
        if !request.answered() {
            registry.keep(request, ctx);
            continue;
        }
        let undo = Undo::of(&request);
        let response = match request {
            Request::Upgrade => match pipe_between::<Response, Request>(SESSION_RING) {
                Ok((mine, theirs)) => {
                    if conn.send(&Response::Upgraded(theirs)).is_err() {
                        return;
                    }
                    conn = mine;
                    ctx.client_alive = alive_probe(&conn);
                    registry.track(ctx.id, &conn);
                    continue;
                }
                Err(e) => failed(e.to_string()),
            },
            Request::Stop if !registry.standalone => failed(NOT_STANDALONE),
            Request::Shutdown | Request::Stop => {
                let _ = conn.send(&Response::Done);
                registry.request_stop();
                return;
            }
            other => std::panic::catch_unwind(AssertUnwindSafe(|| registry.handle(other, ctx)))
                .unwrap_or_else(|_| failed("the server failed on this request")),
        };
        // A reply to a dead client may still land in its pipe's ring: for
        // requests that took something, look whether it is still there.
        let delivered =
            conn.send(&response).is_ok() && (matches!(undo, Undo::Nothing) || conn.peer_alive());
        if !delivered {
            registry.undo(undo, response, ctx);
            return;
        }
    }
}

fn failed(message: impl Into<String>) -> Response {
    Response::Failed(Failure::Other(message.into()))
}

#[derive(Debug)]
struct Registry {
    /// Reads "dead" once the server process ends: appenders look at it
    /// instead of asking.
    liveness: Option<Liveness>,
    address: Address,
    /// Makes an object of a type registered with the manager, by name.
    construct: Construct,
    next_id: AtomicU64,
    objects: RwLock<HashMap<u64, Arc<Object>>>,
    names: Mutex<HashMap<String, u64>>,
    refs: Mutex<Refs>,
    /// How long a loan lasts (see [`Refs::loans`]).
    loan_timeout: Duration,
    /// Signalled when a loan is made while none was outstanding, and when
    /// the server stops.
    loans_changed: Condvar,
    /// Woken when a client asks the server to stop.
    stop: Option<Waker>,
    /// Set once the server stops.
    stopped: AtomicBool,
    /// Whether clients may stop the server (`Request::Stop`): a standalone
    /// server (`ManagerServer::serve`), not one a manager `start`ed.
    standalone: bool,
    /// Each open session's connection, cut when the server stops.
    sessions: Mutex<HashMap<u64, Connection<Response, Request>>>,
}

/// The refusal of a client's `Stop` by a server that a manager started.
pub(crate) const NOT_STANDALONE: &str =
    "only the process that started this manager's server stops it";

/// Who keeps each object alive: an object is freed when the last of its
/// holders (processes, loans, names, pins) lets go. An object nobody ever
/// held (its creator died before holding it) lives until the server stops.
#[derive(Debug, Default)]
struct Refs {
    counts: HashMap<u64, u64>,
    /// Loans by token: proxies on their way, with their object. A loan
    /// keeps its object until the proxy arrives and is held, or until the
    /// loan times out: a message that is never received (its pipe dropped,
    /// its receiver killed) cannot keep an object for ever.
    loans: HashMap<u64, u64>,
    /// Tokens repaid before their loan arrived (on another session).
    early: HashSet<u64>,
    /// Loans and early repayments in the order they run out (all last the
    /// same time, so the order they were made in).
    expiries: VecDeque<(Instant, Expiry)>,
    /// Objects stored inside other objects: they live until the end.
    pinned: HashSet<u64>,
}

/// What runs out at a time in [`Refs::expiries`].
#[derive(Debug, Clone, Copy)]
enum Expiry {
    Loan(u64),
    Early(u64),
}

/// At most this many early repayments are remembered (a proxy
/// deserialized twice repays twice).
const EARLY_MAX: usize = 1 << 16;

#[derive(Debug)]
struct Object {
    kind: Kind,
    /// The type of the proxy that created it (`DictProxy<String, i64>`).
    type_name: String,
    /// Set when its last holder let go: sessions that still have it
    /// cached treat it as gone.
    freed: AtomicBool,
    /// A list's append log, made when a local client first asks for it.
    log: OnceLock<Queue<Blob>>,
    state: Mutex<State>,
    /// Where blocking operations (locks, events, queues...) wait.
    changed: Condvar,
}

#[derive(Debug)]
struct State {
    /// Bumped by every change: the check of an optimistic update.
    version: u64,
    data: Data,
}

#[derive(Debug)]
enum Data {
    List(Vec<Blob>),
    Dict(IndexMap<Blob, Blob>),
    Namespace(BTreeMap<String, Blob>),
    Value(Blob),
    Lock(Owned),
    Semaphore {
        value: u64,
        bound: Option<u64>,
    },
    Event(bool),
    /// A condition: its lock, and tickets of the waiters in arrival order;
    /// `notify(n)` moves the `n` oldest waiting tickets to `notified`.
    Condition {
        lock: Owned,
        next_ticket: u64,
        waiting: BTreeSet<u64>,
        notified: BTreeSet<u64>,
    },
    /// A barrier; `resets` counts, per generation ended by `reset`, the
    /// waiters of it still to be told that the barrier broke.
    Barrier {
        parties: u64,
        waiting: u64,
        generation: u64,
        broken: bool,
        resets: HashMap<u64, u64>,
    },
    Queue {
        items: VecDeque<Blob>,
        maxsize: u64,
        unfinished: u64,
    },
    Custom(HostedObject),
}

/// A lock's owner (a session id), its recursion count, and whether its
/// last owner died holding it.
#[derive(Debug, Default)]
struct Owned {
    owner: Option<u64>,
    count: u32,
    died: bool,
}

impl Registry {
    fn new(
        liveness: Option<Liveness>,
        address: Address,
        construct: Construct,
        loan_timeout: Duration,
        stop: Option<Waker>,
        standalone: bool,
    ) -> Self {
        Self {
            liveness,
            address,
            construct,
            next_id: AtomicU64::new(0),
            objects: RwLock::default(),
            names: Mutex::default(),
            refs: Mutex::default(),
            loan_timeout,
            loans_changed: Condvar::new(),
            stop,
            stopped: AtomicBool::new(false),
            standalone,
            sessions: Mutex::default(),
        }
    }

    /// Remembers session `id`'s connection, to cut it when the server stops
    /// (at once if it already has).
    fn track(&self, id: u64, conn: &Connection<Response, Request>) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if self.stopped.load(Ordering::Acquire) {
            conn.close();
        } else {
            sessions.insert(id, conn.clone());
        }
    }

    fn untrack(&self, id: u64) {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }

    /// Asks the accept loop to stop (after the reply to `Shutdown` or
    /// `Stop` went out).
    fn request_stop(&self) {
        self.stopped.store(true, Ordering::Release);
        if let Some(waker) = &self.stop {
            waker.wake();
        }
    }

    /// Ends what the server runs besides the accept loop: every session's
    /// connection is cut (its client sees the manager gone), every list's
    /// append log closed (no append goes in unseen), the loans thread told.
    fn stop_all(&self) {
        let sessions = {
            let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            self.stopped.store(true, Ordering::Release);
            std::mem::take(&mut *sessions)
        };
        for conn in sessions.values() {
            conn.close();
        }
        for object in self.objects.read().unwrap_or_else(PoisonError::into_inner).values() {
            if let Some(log) = object.log.get() {
                log.close();
            }
        }
        // Taken so that the loans thread is either waiting (and woken) or
        // about to look at `stopped`.
        drop(self.refs.lock().unwrap_or_else(PoisonError::into_inner));
        self.loans_changed.notify_all();
    }

    fn handle(&self, request: Request, ctx: &mut Ctx) -> Response {
        match request {
            Request::Create(create, type_name) => {
                let (kind, data) = match create {
                    Create::List(items) => (Kind::List, Data::List(items)),
                    Create::Dict(pairs) => (Kind::Dict, Data::Dict(pairs.into_iter().collect())),
                    Create::Namespace => (Kind::Namespace, Data::Namespace(BTreeMap::new())),
                    Create::Value(v) => (Kind::Value, Data::Value(v)),
                    Create::Array(items) => (Kind::Array, Data::List(items)),
                    Create::Lock => (Kind::Lock, Data::Lock(Owned::default())),
                    Create::RLock => (Kind::RLock, Data::Lock(Owned::default())),
                    Create::Semaphore(value, bound) => {
                        (Kind::Semaphore, Data::Semaphore { value, bound })
                    }
                    Create::Condition => (
                        Kind::Condition,
                        Data::Condition {
                            lock: Owned::default(),
                            next_ticket: 0,
                            waiting: BTreeSet::new(),
                            notified: BTreeSet::new(),
                        },
                    ),
                    Create::Event => (Kind::Event, Data::Event(false)),
                    Create::Barrier(parties) => (
                        Kind::Barrier,
                        Data::Barrier {
                            parties: parties.max(1),
                            waiting: 0,
                            generation: 0,
                            broken: false,
                            resets: HashMap::new(),
                        },
                    ),
                    Create::Queue(maxsize) => (
                        Kind::Queue,
                        Data::Queue { items: VecDeque::new(), maxsize, unfinished: 0 },
                    ),
                    Create::Custom(name, init) => match (self.construct)(&name, &init) {
                        Some(Ok(object)) => (Kind::Custom, Data::Custom(object)),
                        Some(Err(e)) => return failed(format!("{name}: {e}")),
                        None => return failed(format!("no type registered as {name:?}")),
                    },
                };
                let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
                let object = Object {
                    kind,
                    type_name,
                    freed: AtomicBool::new(false),
                    log: OnceLock::new(),
                    state: Mutex::new(State { version: 0, data }),
                    changed: Condvar::new(),
                };
                self.objects
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id, Arc::new(object));
                Response::Created(id)
            }
            Request::Call(id, kind, op) => {
                let object = match ctx.objects.get(&id) {
                    Some(object) if object.freed.load(Ordering::Acquire) => {
                        ctx.objects.remove(&id);
                        None
                    }
                    Some(object) => Some(Arc::clone(object)),
                    None => {
                        let found = self.object(id);
                        if let Some(object) = &found {
                            if ctx.objects.len() >= CACHE_SWEEP {
                                ctx.objects.retain(|_, o| !o.freed.load(Ordering::Acquire));
                            }
                            ctx.objects.insert(id, Arc::clone(object));
                        }
                        found
                    }
                };
                match object {
                    None => failed(format!("no object {id}")),
                    Some(object) if object.kind != kind => {
                        failed(format!("object {id} is a {:?}, not a {kind:?}", object.kind))
                    }
                    Some(object) if matches!(op, Op::AppendLog) => {
                        object.append_log(self.liveness.as_ref())
                    }
                    Some(object) => object.call(id, op, ctx),
                }
            }
            Request::Publish(name, id) => {
                let objects = self.objects.read().unwrap_or_else(PoisonError::into_inner);
                if !objects.contains_key(&id) {
                    return failed(format!("no object {id}"));
                }
                drop(objects);
                let previous =
                    self.names.lock().unwrap_or_else(PoisonError::into_inner).insert(name, id);
                // A name holds its object.
                self.incref(id);
                if let Some(previous) = previous {
                    self.decref(previous);
                }
                Response::Done
            }
            Request::Lookup(name) => {
                let id =
                    self.names.lock().unwrap_or_else(PoisonError::into_inner).get(&name).copied();
                let objects = self.objects.read().unwrap_or_else(PoisonError::into_inner);
                match id.and_then(|id| Some((id, objects.get(&id)?))) {
                    Some((id, object)) => {
                        Response::Found(id, object.kind, object.type_name.clone())
                    }
                    None => failed(format!("no object named {name:?}")),
                }
            }
            Request::Ping => Response::Done,
            Request::ObjectCount => Response::Count(
                self.objects.read().unwrap_or_else(PoisonError::into_inner).len() as u64,
            ),
            Request::Upgrade | Request::Shutdown | Request::Stop => failed("not here"),
            Request::Hold(_)
            | Request::Unhold(_)
            | Request::Lend(..)
            | Request::Repay(_)
            | Request::Pin(_) => failed("not answered"),
        }
    }

    /// Handles a one-way request about who holds what.
    fn keep(&self, request: Request, ctx: &mut Ctx) {
        match request {
            Request::Hold(id) => {
                // A process holds an object once, however often it says so.
                let new = ctx.holds.insert(id);
                if new && !self.incref(id) {
                    ctx.holds.remove(&id);
                }
            }
            Request::Unhold(id) => {
                let held = ctx.holds.remove(&id);
                if held {
                    self.decref(id);
                }
            }
            Request::Lend(id, token) => {
                let mut refs = self.refs.lock().unwrap_or_else(PoisonError::into_inner);
                if !refs.early.remove(&token) && !refs.loans.contains_key(&token) && self.exists(id)
                {
                    *refs.counts.entry(id).or_insert(0) += 1;
                    refs.loans.insert(token, id);
                    self.expire_later(&mut refs, Expiry::Loan(token));
                }
            }
            Request::Repay(token) => {
                let mut refs = self.refs.lock().unwrap_or_else(PoisonError::into_inner);
                match refs.loans.remove(&token) {
                    Some(id) => {
                        drop(refs);
                        self.decref(id);
                    }
                    None => {
                        if refs.early.len() >= EARLY_MAX {
                            refs.early.clear();
                        }
                        if refs.early.insert(token) {
                            self.expire_later(&mut refs, Expiry::Early(token));
                        }
                    }
                }
            }
            Request::Pin(id) => {
                let mut refs = self.refs.lock().unwrap_or_else(PoisonError::into_inner);
                if self.exists(id) && refs.pinned.insert(id) {
                    *refs.counts.entry(id).or_insert(0) += 1;
                }
            }
            _ => {}
        }
    }

    /// Schedules `what` to run out a loan's time from now.
    fn expire_later(&self, refs: &mut Refs, what: Expiry) {
        let when = Instant::now() + self.loan_timeout;
        refs.expiries.push_back((when, what));
        if refs.expiries.len() == 1 {
            self.loans_changed.notify_all();
        }
    }

    /// Ends the loans whose time ran out (their objects lose a holder) and
    /// forgets the early repayments that no loan came for; returns when the
    /// next one runs out.
    fn expire_loans(&self, now: Instant) -> Option<Instant> {
        let mut ended = Vec::new();
        let next = {
            let mut refs = self.refs.lock().unwrap_or_else(PoisonError::into_inner);
            while let Some(&(when, what)) = refs.expiries.front() {
                if when > now {
                    break;
                }
                refs.expiries.pop_front();
                match what {
                    Expiry::Loan(token) => ended.extend(refs.loans.remove(&token)),
                    Expiry::Early(token) => {
                        refs.early.remove(&token);
                    }
                }
            }
            refs.expiries.front().map(|&(when, _)| when)
        };
        for id in ended {
            self.decref(id);
        }
        next
    }

    /// The loans thread: ends each loan when its time runs out, until the
    /// server stops.
    fn expire_loans_until_stopped(&self) {
        loop {
            let now = Instant::now();
            let next = self.expire_loans(now);
            let refs = self.refs.lock().unwrap_or_else(PoisonError::into_inner);
            if self.stopped.load(Ordering::Acquire) {
                return;
            }
            match next {
                // Loans made meanwhile run out later still.
                Some(next) => {
                    let left = next.saturating_duration_since(now);
                    drop(self.loans_changed.wait_timeout(refs, left));
                }
                None if refs.expiries.is_empty() => {
                    drop(self.loans_changed.wait(refs).unwrap_or_else(PoisonError::into_inner));
                }
                None => {}
            }
        }
    }

    fn exists(&self, id: u64) -> bool {
        self.objects.read().unwrap_or_else(PoisonError::into_inner).contains_key(&id)
    }

    /// One more holder of `id`; false if there is no such object.
    fn incref(&self, id: u64) -> bool {
        let mut refs = self.refs.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.exists(id) {
            return false;
        }
        *refs.counts.entry(id).or_insert(0) += 1;
        true
    }

    /// One holder of `id` less: the last one frees it.
    fn decref(&self, id: u64) {
        let mut refs = self.refs.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(count) = refs.counts.get_mut(&id) else { return };
        *count -= 1;
        if *count > 0 {
            return;
        }
        refs.counts.remove(&id);
        let object = self.objects.write().unwrap_or_else(PoisonError::into_inner).remove(&id);
        drop(refs);
        if let Some(object) = object {
            object.free();
        }
    }

    fn object(&self, id: u64) -> Option<Arc<Object>> {
        self.objects.read().unwrap_or_else(PoisonError::into_inner).get(&id).cloned()
    }

    /// Takes back what a request took for a client that is gone.
    fn undo(&self, undo: Undo, response: Response, ctx: &mut Ctx) {
        let (Undo::Take(id) | Undo::Unit(id) | Undo::Lock(id)) = undo else { return };
        let Some(object) = self.object(id) else { return };
        let mut state = object.state.lock().unwrap_or_else(PoisonError::into_inner);
        match (undo, response, &mut state.data) {
            (Undo::Take(_), Response::Value(item), Data::Queue { items, .. }) => {
                items.push_front(item);
            }
            (
                Undo::Unit(_),
                Response::Outcome(Outcome::Acquired),
                Data::Semaphore { value, .. },
            ) => {
                *value += 1;
            }
            (
                Undo::Lock(_),
                Response::Outcome(outcome @ (Outcome::Acquired | Outcome::OwnerDied)),
                data,
            ) => {
                if let Some(lock) = data.lock_part().filter(|l| l.owner == Some(ctx.id)) {
                    lock.count -= 1;
                    if lock.count == 0 {
                        // Whoever comes next must still hear of a death the
                        // gone client never heard of.
                        *lock =
                            Owned { owner: None, count: 0, died: outcome == Outcome::OwnerDied };
                        ctx.held.retain(|&h| h != id);
                    }
                }
            }
            _ => return,
        }
        object.changed.notify_all();
    }

    /// Releases the locks a finished session still held: their next taker
    /// learns that the owner died.
    fn release_all(&self, ctx: &Ctx) {
        for id in &ctx.held {
            let object =
                self.objects.read().unwrap_or_else(PoisonError::into_inner).get(id).cloned();
            let Some(object) = object else { continue };
            let mut state = object.state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(lock) = state.data.lock_part()
                && lock.owner == Some(ctx.id)
            {
                *lock = Owned { owner: None, count: 0, died: true };
                object.changed.notify_all();
            }
        }
    }
}

type Guard<'a> = MutexGuard<'a, State>;

/// A session sweeps freed objects out of its cache when it holds this many.
const CACHE_SWEEP: usize = 64;

impl Object {
    /// Marks the object freed (its last holder let go).
    fn free(&self) {
        self.freed.store(true, Ordering::Release);
        if let Some(log) = self.log.get() {
            // Appenders still holding the log learn the list is gone.
            log.close();
        }
        self.changed.notify_all();
    }

    /// Locks the object's state, first folding a list's append log into it:
    /// whatever was appended there comes before anything done now.
    fn lock(&self) -> Guard<'_> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(log) = self.log.get() {
            let mut appended = false;
            // What was appended before now; later appends may come after
            // this operation (they were concurrent with it), and a busy
            // appender cannot keep the server here.
            for _ in 0..log.len() {
                match log.try_get() {
                    Ok(item) => {
                        if let Data::List(items) = &mut state.data {
                            items.push(item);
                        }
                        appended = true;
                    }
                    // A record that does not decode (a hostile client's) is
                    // dropped; the next one may be fine.
                    Err(Error::Decode { .. }) => {}
                    Err(_) => break,
                }
            }
            if appended {
                state.version += 1;
            }
        }
        state
    }

    /// A list's append log, made on first demand.
    fn append_log(&self, liveness: Option<&Liveness>) -> Response {
        if self.kind != Kind::List {
            return failed(format!("a {:?} has no append log", self.kind));
        }
        let Some(liveness) = liveness else { return failed("no liveness word") };
        if let Some(log) = self.log.get() {
            return Response::Log(log.clone(), liveness.clone());
        }
        match Queue::builder().ring_bytes(LOG_RING).build() {
            Ok(log) => Response::Log(self.log.get_or_init(|| log).clone(), liveness.clone()),
            Err(e) => failed(e.to_string()),
        }
    }

    /// Runs `op` for session `ctx`; blocking operations wait here, on the
    /// object's condition variable, with the object's lock released.
    fn call(&self, id: u64, op: Op, ctx: &mut Ctx) -> Response {
        if !fits(self.kind, &op) {
            return failed(format!("operation {op:?} does not apply to a {:?}", self.kind));
        }
        let state = self.lock();
        match op {
            Op::Acquire(wait) if self.kind == Kind::Semaphore => {
                let (mut state, ready) = self.wait_until(
                    state,
                    wait,
                    ctx,
                    |data| matches!(data, Data::Semaphore { value, .. } if *value > 0),
                );
                if !ready {
                    return Response::Outcome(missed(wait));
                }
                if let Data::Semaphore { value, .. } = &mut state.data {
                    *value -= 1;
                }
                Response::Outcome(Outcome::Acquired)
            }
            Op::Acquire(wait) => self.acquire(state, id, wait, ctx),
            Op::Release if self.kind != Kind::Semaphore => self.release(state, id, ctx),
            Op::WaitFlag(wait) => {
                let (_state, set) =
                    self.wait_until(state, wait, ctx, |data| matches!(data, Data::Event(true)));
                Response::Bool(set)
            }
            Op::CondWait(wait) => self.cond_wait(state, wait, ctx),
            Op::Notify(n) => {
                let mut state = state;
                match &mut state.data {
                    Data::Condition { lock, waiting, notified, .. } => {
                        if lock.owner != Some(ctx.id) {
                            return Response::Failed(Failure::NotOwner);
                        }
                        // Only those waiting now, oldest first (as Python).
                        for _ in 0..n {
                            let Some(ticket) = waiting.pop_first() else { break };
                            notified.insert(ticket);
                        }
                        self.changed.notify_all();
                        Response::Done
                    }
                    _ => failed("not a condition"),
                }
            }
            Op::BarrierWait(wait) => self.barrier_wait(state, wait, ctx),
            Op::Put(item, wait) => {
                let (mut state, room) = self.wait_until(state, wait, ctx, |data| {
                    matches!(data, Data::Queue { items, maxsize, .. }
                        if *maxsize == 0 || (items.len() as u64) < *maxsize)
                });
                if !room {
                    return Response::Failed(if matches!(wait, Wait::Never) {
                        Failure::Full
                    } else {
                        Failure::Timeout
                    });
                }
                if let Data::Queue { items, unfinished, .. } = &mut state.data {
                    items.push_back(item);
                    *unfinished += 1;
                }
                self.changed.notify_all();
                Response::Done
            }
            Op::Take(wait) => {
                let (mut state, some) = self.wait_until(
                    state,
                    wait,
                    ctx,
                    |data| matches!(data, Data::Queue { items, .. } if !items.is_empty()),
                );
                let item = match &mut state.data {
                    Data::Queue { items, .. } if some => items.pop_front(),
                    _ => None,
                };
                match item {
                    Some(item) => {
                        self.changed.notify_all();
                        Response::Value(item)
                    }
                    None if matches!(wait, Wait::Never) => Response::Failed(Failure::Empty),
                    None => Response::Failed(Failure::Timeout),
                }
            }
            Op::Join(wait) => {
                let (_state, done) = self.wait_until(state, wait, ctx, |data| {
                    matches!(data, Data::Queue { unfinished: 0, .. })
                });
                if done { Response::Done } else { Response::Failed(Failure::Timeout) }
            }
            op => {
                let mut state = state;
                let before = state.version;
                let response = state.apply(op);
                if state.version != before && self.kind.has_waiters() {
                    self.changed.notify_all();
                }
                response
            }
        }
    }

    /// Waits until `ready` holds of the object's data, or `wait` runs out,
    /// or the session's client is gone (looked at every [`ALIVE_CHECK`]).
    fn wait_until<'a>(
        &'a self,
        mut state: Guard<'a>,
        wait: Wait,
        ctx: &Ctx,
        mut ready: impl FnMut(&mut Data) -> bool,
    ) -> (Guard<'a>, bool) {
        let deadline = wait.deadline();
        loop {
            if ready(&mut state.data) {
                return (state, true);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return (state, false);
            }
            let slice = deadline.map_or(ALIVE_CHECK, |d| (d - now).min(ALIVE_CHECK));
            let (guard, timeout) =
                self.changed.wait_timeout(state, slice).unwrap_or_else(PoisonError::into_inner);
            state = guard;
            if timeout.timed_out() && !ready(&mut state.data) && !(ctx.client_alive)() {
                return (state, false);
            }
        }
    }

    fn acquire<'a>(&'a self, state: Guard<'a>, id: u64, wait: Wait, ctx: &mut Ctx) -> Response {
        let reentrant = matches!(self.kind, Kind::RLock | Kind::Condition);
        let me = ctx.id;
        let (mut state, ready) = self.wait_until(state, wait, ctx, |data| {
            data.lock_part()
                .is_some_and(|l| l.owner.is_none() || (reentrant && l.owner == Some(me)))
        });
        if !ready {
            return Response::Outcome(missed(wait));
        }
        let Some(lock) = state.data.lock_part() else { return failed("not a lock") };
        lock.owner = Some(me);
        lock.count += 1;
        if lock.count == 1 {
            ctx.held.push(id);
        }
        if std::mem::take(&mut lock.died) {
            Response::Outcome(Outcome::OwnerDied)
        } else {
            Response::Outcome(Outcome::Acquired)
        }
    }

    fn release(&self, mut state: Guard<'_>, id: u64, ctx: &mut Ctx) -> Response {
        let Some(lock) = state.data.lock_part() else { return failed("not a lock") };
        if lock.owner != Some(ctx.id) {
            return Response::Failed(Failure::NotOwner);
        }
        lock.count -= 1;
        if lock.count == 0 {
            lock.owner = None;
            ctx.held.retain(|&h| h != id);
            self.changed.notify_all();
        }
        Response::Done
    }

    fn cond_wait<'a>(&'a self, mut state: Guard<'a>, wait: Wait, ctx: &Ctx) -> Response {
        let me = ctx.id;
        let (ticket, saved) = match &mut state.data {
            Data::Condition { lock, next_ticket, waiting, .. } if lock.owner == Some(me) => {
                let ticket = *next_ticket;
                *next_ticket += 1;
                waiting.insert(ticket);
                let saved = lock.count;
                *lock = Owned { owner: None, count: 0, died: false };
                (ticket, saved)
            }
            Data::Condition { .. } => return Response::Failed(Failure::NotOwner),
            _ => return failed("not a condition"),
        };
        self.changed.notify_all();
        let (mut state, _) = self.wait_until(
            state,
            wait,
            ctx,
            |data| matches!(data, Data::Condition { notified, .. } if notified.contains(&ticket)),
        );
        let mut was_notified = false;
        if let Data::Condition { waiting, notified, .. } = &mut state.data {
            was_notified = notified.remove(&ticket);
            waiting.remove(&ticket);
        }
        // Take the lock back, however long that takes (as Python does),
        // unless the client is gone.
        let (mut state, free) = self.wait_until(state, Wait::Forever, ctx, |data| {
            data.lock_part().is_some_and(|l| l.owner.is_none())
        });
        if !free {
            return Response::Failed(Failure::Timeout);
        }
        let Some(lock) = state.data.lock_part() else { return failed("not a condition") };
        let died = lock.died;
        *lock = Owned { owner: Some(me), count: saved, died: false };
        if died { Response::Outcome(Outcome::OwnerDied) } else { Response::Bool(was_notified) }
    }

    fn barrier_wait<'a>(&'a self, mut state: Guard<'a>, wait: Wait, ctx: &Ctx) -> Response {
        let (index, generation) = match &mut state.data {
            Data::Barrier { broken: true, .. } => {
                return Response::Failed(Failure::BrokenBarrier);
            }
            Data::Barrier { parties, waiting, generation, .. } => {
                let index = *waiting;
                *waiting += 1;
                if *waiting == *parties {
                    *waiting = 0;
                    *generation += 1;
                    self.changed.notify_all();
                    return Response::Count(index);
                }
                (index, *generation)
            }
            _ => return failed("not a barrier"),
        };
        let (mut state, passed) = self.wait_until(state, wait, ctx, |data| {
            matches!(data, Data::Barrier { generation: g, broken, .. } if *g != generation || *broken)
        });
        match &mut state.data {
            Data::Barrier { resets, .. } if passed && resets.contains_key(&generation) => {
                if let Some(left) = resets.get_mut(&generation) {
                    *left -= 1;
                    if *left == 0 {
                        resets.remove(&generation);
                    }
                }
                Response::Failed(Failure::BrokenBarrier)
            }
            Data::Barrier { generation: g, .. } if passed && *g != generation => {
                Response::Count(index)
            }
            Data::Barrier { broken, .. } => {
                // Timed out, or broken meanwhile: the barrier is broken for all.
                *broken = true;
                self.changed.notify_all();
                Response::Failed(Failure::BrokenBarrier)
            }
            _ => failed("not a barrier"),
        }
    }
}

/// Whether a waiting operation applies to objects of `kind` (checked before
/// waiting, or a wrong one would wait for ever).
fn fits(kind: Kind, op: &Op) -> bool {
    match op {
        Op::Acquire(_) => {
            matches!(kind, Kind::Lock | Kind::RLock | Kind::Condition | Kind::Semaphore)
        }
        Op::Release => matches!(kind, Kind::Lock | Kind::RLock | Kind::Condition),
        Op::WaitFlag(_) => kind == Kind::Event,
        Op::CondWait(_) | Op::Notify(_) => kind == Kind::Condition,
        Op::BarrierWait(_) => kind == Kind::Barrier,
        Op::Put(..) | Op::Take(_) | Op::Join(_) => kind == Kind::Queue,
        // Answered by the registry, which knows the liveness word.
        Op::AppendLog => false,
        _ => true,
    }
}

/// Why an acquisition that did not happen failed.
fn missed(wait: Wait) -> Outcome {
    if matches!(wait, Wait::Never) { Outcome::WouldBlock } else { Outcome::Timeout }
}

impl Kind {
    /// Whether operations of objects of this kind may wait for changes.
    fn has_waiters(self) -> bool {
        matches!(
            self,
            Kind::Lock
                | Kind::RLock
                | Kind::Semaphore
                | Kind::Condition
                | Kind::Event
                | Kind::Barrier
                | Kind::Queue
        )
    }
}

impl Data {
    /// The lock of a lock or a condition.
    fn lock_part(&mut self) -> Option<&mut Owned> {
        match self {
            Data::Lock(lock) | Data::Condition { lock, .. } => Some(lock),
            _ => None,
        }
    }
}

/// Python's index: negative counts from the end; `None` if outside.
pub(crate) fn position(index: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if index < 0 { index + len } else { index };
    (0..len).contains(&i).then_some(i as usize)
}

/// Python's slice bound: clamped into `0..=len`.
pub(crate) fn bound(index: Option<i64>, default: usize, len: usize) -> usize {
    let Some(index) = index else { return default };
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let i = if index < 0 { index.saturating_add(len_i) } else { index };
    i.clamp(0, len_i) as usize
}

/// Where the first element `==` to `value` is (Python's equality on the
/// decoded values, not on their encodings).
pub(crate) fn find(items: &[Blob], value: &[u8]) -> Option<usize> {
    let needle = dynval::Needle::new(value);
    items.iter().position(|x| needle.matches(x))
}

fn out_of_range(index: i64, len: usize) -> Response {
    Response::Failed(Failure::IndexOutOfRange { index, len: len as u64 })
}

impl State {
    fn touch(&mut self) {
        self.version = self.version.wrapping_add(1);
    }

    #[allow(clippy::too_many_lines)] // one arm per operation reads best
    fn apply(&mut self, op: Op) -> Response {
        match (&mut self.data, op) {
            (_, Op::Repr) => Response::Text(self.repr()),
            (_, Op::Fetch(part)) => self.fetch(part),
            (_, Op::CompareStore(part, version, new)) => {
                if version != self.version {
                    return Response::Bool(false);
                }
                let response = self.store(part, new);
                if matches!(response, Response::Done) {
                    self.touch();
                    Response::Bool(true)
                } else {
                    response
                }
            }

            (Data::List(items), Op::Append(v)) => {
                items.push(v);
                self.touch();
                Response::Done
            }
            (Data::List(items), Op::Extend(vs)) => {
                items.extend(vs);
                self.touch();
                Response::Done
            }
            (Data::List(items), Op::Get(i)) => match position(i, items.len()) {
                Some(p) => Response::Value(items[p].clone()),
                None => out_of_range(i, items.len()),
            },
            (Data::List(items), Op::Set(i, v)) => match position(i, items.len()) {
                Some(p) => {
                    items[p] = v;
                    self.touch();
                    Response::Done
                }
                None => out_of_range(i, items.len()),
            },
            (Data::List(items), Op::Insert(i, v)) => {
                let p = bound(Some(i), 0, items.len());
                items.insert(p, v);
                self.touch();
                Response::Done
            }
            (Data::List(items), Op::Pop(i)) => {
                let index = i.unwrap_or(-1);
                match position(index, items.len()) {
                    Some(p) => {
                        let v = items.remove(p);
                        self.touch();
                        Response::Value(v)
                    }
                    None => out_of_range(index, items.len()),
                }
            }
            (Data::List(items), Op::Remove(v)) => match find(items, &v) {
                Some(p) => {
                    items.remove(p);
                    self.touch();
                    Response::Done
                }
                None => Response::Failed(Failure::ValueNotFound),
            },
            (Data::List(items), Op::Len) => Response::Count(items.len() as u64),
            (Data::List(items), Op::Contains(v)) => Response::Bool(find(items, &v).is_some()),
            (Data::List(items), Op::Index(v)) => match find(items, &v) {
                Some(p) => Response::Count(p as u64),
                None => Response::Failed(Failure::ValueNotFound),
            },
            (Data::List(items), Op::Count(v)) => {
                let needle = dynval::Needle::new(&v);
                Response::Count(items.iter().filter(|x| needle.matches(x)).count() as u64)
            }
            (Data::List(items), Op::Clear) => {
                items.clear();
                self.touch();
                Response::Done
            }
            (Data::List(items), Op::Slice(start, end)) => {
                let len = items.len();
                let (s, e) = (bound(start, 0, len), bound(end, len, len));
                Response::Many(if s < e { items[s..e].to_vec() } else { Vec::new() })
            }
            (Data::List(items), Op::Sort { reverse }) => match dynval::sort(items, reverse) {
                Ok(()) => {
                    self.touch();
                    Response::Done
                }
                Err(e) => failed(e.to_string()),
            },
            (Data::List(items), Op::All) => Response::Many(items.clone()),

            (Data::Dict(map), Op::DictInsert(k, v)) => {
                let old = map.insert(k, v);
                self.touch();
                Response::Maybe(old)
            }
            (Data::Dict(map), Op::DictGet(k)) => Response::Maybe(map.get(&k).cloned()),
            (Data::Dict(map), Op::DictRemove(k)) => {
                let old = map.shift_remove(&k);
                if old.is_some() {
                    self.touch();
                }
                Response::Maybe(old)
            }
            (Data::Dict(map), Op::Contains(k)) => Response::Bool(map.contains_key(&k)),
            (Data::Dict(map), Op::Len) => Response::Count(map.len() as u64),
            (Data::Dict(map), Op::Keys) => Response::Many(map.keys().cloned().collect()),
            (Data::Dict(map), Op::Values) => Response::Many(map.values().cloned().collect()),
            (Data::Dict(map), Op::Items) => {
                Response::Pairs(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            }
            (Data::Dict(map), Op::DictExtend(pairs)) => {
                map.extend(pairs);
                self.touch();
                Response::Done
            }
            (Data::Dict(map), Op::SetDefault(k, v)) => {
                let len = map.len();
                let value = map.entry(k).or_insert(v).clone();
                if map.len() != len {
                    self.touch();
                }
                Response::Value(value)
            }
            (Data::Dict(map), Op::Clear) => {
                map.clear();
                self.touch();
                Response::Done
            }

            (Data::Namespace(attrs), Op::SetAttr(name, v)) => {
                attrs.insert(name, v);
                self.touch();
                Response::Done
            }
            (Data::Namespace(attrs), Op::GetAttr(name)) => match attrs.get(&name) {
                Some(v) => Response::Value(v.clone()),
                None => Response::Failed(Failure::NoAttribute(name)),
            },
            (Data::Namespace(attrs), Op::DelAttr(name)) => match attrs.remove(&name) {
                Some(_) => {
                    self.touch();
                    Response::Done
                }
                None => Response::Failed(Failure::NoAttribute(name)),
            },

            (Data::Value(v), Op::Load) => Response::Value(v.clone()),
            (Data::Value(v), Op::Store(new)) => {
                *v = new;
                self.touch();
                Response::Done
            }

            (Data::Semaphore { value, bound }, Op::ReleaseN(n)) => {
                let new = value.saturating_add(n);
                if bound.is_some_and(|b| new > b) {
                    return Response::Failed(Failure::TooManyReleases);
                }
                *value = new;
                self.touch();
                Response::Done
            }
            (Data::Semaphore { value, .. }, Op::Len) => Response::Count(*value),
            (Data::Event(flag), Op::IsSet) => Response::Bool(*flag),
            (Data::Event(flag), Op::SetFlag) => {
                *flag = true;
                self.touch();
                Response::Done
            }
            (Data::Event(flag), Op::ClearFlag) => {
                *flag = false;
                self.touch();
                Response::Done
            }
            (Data::Lock(lock) | Data::Condition { lock, .. }, Op::IsSet) => {
                Response::Bool(lock.owner.is_some())
            }
            (Data::Barrier { broken, .. }, Op::Abort) => {
                *broken = true;
                self.touch();
                Response::Done
            }
            (Data::Barrier { waiting, generation, broken, resets, .. }, Op::Reset) => {
                if *waiting > 0 {
                    resets.insert(*generation, *waiting);
                }
                *waiting = 0;
                *generation += 1;
                *broken = false;
                self.touch();
                Response::Done
            }
            (Data::Barrier { parties, waiting, broken, .. }, Op::BarrierState) => {
                Response::Barrier(*parties, *waiting, *broken)
            }
            (Data::Queue { items, .. }, Op::Len) => Response::Count(items.len() as u64),
            (Data::Queue { maxsize, .. }, Op::BarrierState) => Response::Count(*maxsize),
            (Data::Queue { unfinished, .. }, Op::TaskDone) => {
                if *unfinished == 0 {
                    return Response::Failed(Failure::TaskDoneTooOften);
                }
                *unfinished -= 1;
                self.touch();
                Response::Done
            }

            (Data::Custom(object), Op::Invoke(call)) => match object.invoke(&call) {
                Ok(reply) => {
                    self.touch();
                    Response::Value(reply)
                }
                Err(e) => failed(e.to_string()),
            },

            (_, op) => failed(format!("operation {op:?} does not apply to this object")),
        }
    }

    fn fetch(&self, part: Part) -> Response {
        let slot = match (&self.data, part) {
            (Data::Value(v), Part::Whole) => Some(vec![v.clone()]),
            (Data::List(items), Part::Whole) => Some(items.clone()),
            (Data::Namespace(attrs), Part::Attr(name)) => attrs.get(&name).map(|v| vec![v.clone()]),
            (Data::Dict(map), Part::Key(k)) => map.get(&k).map(|v| vec![v.clone()]),
            _ => return failed("this part does not exist in this object"),
        };
        Response::Versioned(self.version, slot)
    }

    fn store(&mut self, part: Part, new: Option<Vec<Blob>>) -> Response {
        let one = |new: Option<Vec<Blob>>| -> Result<Option<Blob>, Response> {
            match new {
                None => Ok(None),
                Some(mut values) if values.len() == 1 => Ok(values.pop()),
                Some(_) => Err(failed("an update stores one value")),
            }
        };
        match (&mut self.data, part) {
            (Data::List(items), Part::Whole) => match new {
                Some(values) => *items = values,
                None => return failed("a list cannot be deleted"),
            },
            (Data::Value(v), Part::Whole) => match one(new) {
                Ok(Some(new)) => *v = new,
                Ok(None) => return failed("a value cannot be deleted"),
                Err(response) => return response,
            },
            (Data::Namespace(attrs), Part::Attr(name)) => match one(new) {
                Ok(Some(v)) => {
                    attrs.insert(name, v);
                }
                Ok(None) => {
                    attrs.remove(&name);
                }
                Err(response) => return response,
            },
            (Data::Dict(map), Part::Key(k)) => match one(new) {
                Ok(Some(v)) => {
                    map.insert(k, v);
                }
                Ok(None) => {
                    map.shift_remove(&k);
                }
                Err(response) => return response,
            },
            _ => return failed("this part does not exist in this object"),
        }
        Response::Done
    }

    fn repr(&self) -> String {
        let mut out = String::new();
        match &self.data {
            Data::Namespace(attrs) => {
                let _ = dynval::namespace_repr(&mut out, attrs.iter());
            }
            Data::List(items) => out.push_str(&dynval::repr_list(items.iter())),
            Data::Dict(map) => out.push_str(&dynval::repr_dict(map.iter())),
            Data::Value(v) => out.push_str(&dynval::repr(v)),
            Data::Lock(lock) | Data::Condition { lock, .. } => {
                let state = if lock.owner.is_some() { "locked" } else { "unlocked" };
                let _ = write!(out, "<{state}>");
            }
            Data::Semaphore { value, .. } => {
                let _ = write!(out, "<value={value}>");
            }
            Data::Event(set) => out.push_str(if *set { "<set>" } else { "<unset>" }),
            Data::Barrier { parties, waiting, broken, .. } => {
                let _ = write!(out, "<parties={parties}, waiting={waiting}, broken={broken}>");
            }
            Data::Queue { items, .. } => {
                let _ = write!(out, "<{} items>", items.len());
            }
            Data::Custom(object) => out.push_str(&object.repr()),
        }
        out
    }
}

/// Turns every wait of `op` into no wait, so that a fuzzed request can
/// never block its single-threaded driver.
fn without_waits(op: Op) -> Op {
    match op {
        Op::Acquire(_) => Op::Acquire(Wait::Never),
        Op::WaitFlag(_) => Op::WaitFlag(Wait::Never),
        Op::CondWait(_) => Op::CondWait(Wait::Never),
        Op::BarrierWait(_) => Op::BarrierWait(Wait::Never),
        Op::Put(item, _) => Op::Put(item, Wait::Never),
        Op::Take(_) => Op::Take(Wait::Never),
        Op::Join(_) => Op::Join(Wait::Never),
        other => other,
    }
}

/// Decodes `bytes` as a request, as a session does, and runs it against a
/// registry of this thread (its waits turned into no waits). What the fuzz
/// target (`fuzz/fuzz_targets/manager_request.rs`) and its bounded test
/// drive: it must never panic, whatever the bytes.
pub(crate) fn fuzz_request(bytes: &[u8]) {
    thread_local! {
        static REGISTRY: (Registry, std::cell::Cell<u32>) = (
            Registry::new(
                None,
                Address::Abstract("fuzz".to_owned()),
                <() as Registered>::construct,
                Duration::from_secs(60),
                None,
                false,
            ),
            std::cell::Cell::new(0),
        );
    }
    let Ok(request) = crate::transfer::codec::decode::<Request>(bytes, Vec::new()) else {
        return;
    };
    let request = match request {
        // These end or move the session: the session loop handles them.
        Request::Upgrade | Request::Shutdown | Request::Stop => return,
        // Aim at the objects that exist.
        Request::Call(id, kind, op) => Request::Call(id % 16 + 1, kind, without_waits(op)),
        other => other,
    };
    REGISTRY.with(|(registry, calls)| {
        // Start afresh now and then, so that memory stays bounded.
        calls.set(calls.get() + 1);
        if calls.get() % 4096 == 0 {
            registry.objects.write().unwrap_or_else(PoisonError::into_inner).clear();
            *registry.refs.lock().unwrap_or_else(PoisonError::into_inner) = Refs::default();
            registry.next_id.store(0, Ordering::Relaxed);
        }
        let mut ctx = Ctx {
            id: 1,
            client_alive: Box::new(|| true),
            held: Vec::new(),
            objects: HashMap::new(),
            holds: HashSet::new(),
        };
        if request.answered() {
            let _ = registry.handle(request, &mut ctx);
        } else {
            registry.keep(request, &mut ctx);
        }
        registry.release_all(&ctx);
        for id in ctx.holds.drain() {
            registry.decref(id);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::codec;

    /// Valid requests of every kind, to mutate.
    fn corpus() -> Vec<Vec<u8>> {
        let blob = |v: i64| dynval::encode(&v).unwrap();
        let requests = [
            Request::Create(Create::List(vec![blob(3), blob(1), blob(2)]), String::new()),
            Request::Create(Create::Dict(vec![(blob(1), blob(2))]), String::new()),
            Request::Create(Create::Namespace, String::new()),
            Request::Create(Create::Value(blob(7)), String::new()),
            Request::Create(Create::Lock, String::new()),
            Request::Create(Create::Condition, String::new()),
            Request::Create(Create::Barrier(2), String::new()),
            Request::Create(Create::Queue(1), String::new()),
            Request::Create(Create::Semaphore(1, Some(1)), String::new()),
            Request::Call(1, Kind::List, Op::Append(blob(4))),
            Request::Call(1, Kind::List, Op::Sort { reverse: true }),
            Request::Call(1, Kind::List, Op::Slice(Some(-2), None)),
            Request::Call(2, Kind::Dict, Op::SetDefault(blob(5), blob(6))),
            Request::Call(3, Kind::Namespace, Op::SetAttr("x".into(), blob(1))),
            Request::Call(4, Kind::Value, Op::CompareStore(Part::Whole, 0, Some(vec![blob(8)]))),
            Request::Call(5, Kind::Lock, Op::Acquire(Wait::Forever)),
            Request::Call(6, Kind::Condition, Op::CondWait(Wait::Millis(5))),
            Request::Call(7, Kind::Barrier, Op::BarrierWait(Wait::Forever)),
            Request::Call(8, Kind::Queue, Op::Put(blob(1), Wait::Forever)),
            Request::Call(9, Kind::Semaphore, Op::ReleaseN(3)),
            Request::Publish("n".into(), 1),
            Request::Lookup("n".into()),
        ];
        requests.iter().map(|r| codec::encode(r).unwrap().bytes).collect()
    }

    #[test]
    fn the_request_decoder_survives_random_and_mutated_input() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let corpus = corpus();
        for bytes in &corpus {
            fuzz_request(bytes);
        }
        for round in 0..100_000u32 {
            let mut bytes = if round % 4 == 0 {
                (0..next() % 48).map(|_| next() as u8).collect()
            } else {
                corpus[(next() % corpus.len() as u64) as usize].clone()
            };
            for _ in 0..=next() % 3 {
                let at = (next() as usize) % (bytes.len() + 1);
                match next() % 3 {
                    0 if at < bytes.len() => bytes[at] = next() as u8,
                    1 => bytes.insert(at, next() as u8),
                    _ if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => {}
                }
            }
            fuzz_request(&bytes);
        }
    }
}
