//! Managers: a server process holding shared lists, dicts, namespaces and
//! values, reached through typed proxies (Python's `multiprocessing.Manager`
//! and `BaseManager`).
//!
//! [`Manager::start`] starts the server process; each proxy it hands out
//! ([`ListProxy`], [`DictProxy`], [`Namespace`], [`ValueProxy`]) is plain
//! data that travels to children as an argument, over connections, or into
//! another shared object, and works wherever it arrives in a process that
//! knows the manager's authkey: the one that started or connected to the
//! manager, and the children it starts. The key itself never travels with
//! a proxy (see [`Manager::connect`]). Each thread of each
//! process talks to the server over its own session: a shared-memory pipe
//! for a local manager, TCP for a remote one. The server keeps values in a
//! self-describing encoding (CBOR), so it prints, compares and sorts them
//! without knowing their Rust types.
//!
//! An object lives while a proxy of it exists in some process (or travels,
//! or is published, or is stored inside another object): dropping the last
//! proxy everywhere frees it, and a process that dies lets go of what it
//! held. See [`Manager::object_count`].
//!
//! A manager may also listen on TCP or a Unix path with an authkey and
//! publish objects by name, for other programs to reach with
//! [`Manager::connect`] (Python's remote `BaseManager`).
//!
//! ```
//! use multiproc::{Manager, Process};
//! use multiproc::manager::Namespace;
//!
//! fn bump(ns: Namespace) {
//!     ns.update("x", |x: i64| x + 5).unwrap();
//!     ns.update("y", |y: i64| y * 10).unwrap();
//! }
//!
//! let manager = Manager::start()?;
//! let ns = manager.namespace()?;
//! ns.set("x", 1)?;
//! ns.set("y", 1)?;
//! Process::spawn(bump, ns.clone())?.join()?;
//! assert_eq!(ns.to_string(), "Namespace(x=6, y=10)");
//! # Ok::<(), multiproc::Error>(())
//! ```

mod client;
mod custom;
pub(crate) mod dynval;
mod keys;
#[cfg(feature = "redis")]
mod on_redis;
pub(crate) mod protocol;
mod proxy;
pub(crate) mod server;
mod sync_proxy;

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;

use crate::connection::{Address, Listener, pipe_between};
use crate::process::{Process, StartMethod};
use crate::{Error, Result};
pub(crate) use client::{ForkLoans, lock_for_fork};
use client::{Link, unexpected};
pub use custom::{HostedObject, Registered, SharedObject};
use keys::AuthKey;
pub(crate) use keys::{KnownKeys, inherit as inherit_keys, snapshot as known_keys};
#[cfg(feature = "redis")]
pub use on_redis::RedisManager;
use protocol::{Create, Request, Response};
pub use proxy::{CustomProxy, DictProxy, EntryUpdate, ListProxy, Namespace, Proxy, ValueProxy};
use proxy::{Target, sealed::Sealed};
pub use sync_proxy::{
    ArrayProxy, BarrierProxy, ConditionProxy, EventProxy, LockProxy, ManagedGuard, QueueProxy,
    RLockProxy, SemaphoreProxy,
};

/// Decodes `bytes` as a manager request and runs it against an in-process
/// registry: the entry point of the fuzz target. Never panics.
#[doc(hidden)]
pub fn fuzz_request(bytes: &[u8]) {
    server::fuzz_request(bytes);
}

/// How long `start` waits for the server to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long dropping a manager waits for its server to exit before killing it.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a proxy on its way keeps its object, by default.
const LOAN_TIMEOUT: Duration = Duration::from_secs(60);

/// A manager: the handle to a server process of shared objects.
///
/// The manager that [`start`](Manager::start)ed the server shuts it down
/// when dropped (Python's `with Manager() as m:`); a manager from
/// [`connect`](Manager::connect) only talks to it.
///
/// # Examples
///
/// ```
/// use multiproc::Manager;
///
/// let manager = Manager::start()?;
/// let records = manager.list([("Computers".to_owned(), 1), ("Hindi".to_owned(), 9)])?;
/// records.append(("English".to_owned(), 3))?;
/// assert_eq!(records.len()?, 3);
/// manager.shutdown()?;
/// assert!(matches!(records.len(), Err(multiproc::Error::ManagerGone)));
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Manager {
    link: Link,
    server: Option<Process<()>>,
    /// The process that started the server: only it shuts it down on drop
    /// (a forked child holding a copy does not).
    owner: u32,
}

/// Chooses how a manager's server starts and where it listens.
///
/// # Examples
///
/// ```
/// use multiproc::{Manager, StartMethod};
/// use multiproc::connection::Address;
///
/// let manager = Manager::builder()
///     .start_method(StartMethod::Fork)
///     .address(Address::Tcp("127.0.0.1:0".parse().unwrap()))
///     .authkey(b"secret")
///     .start()?;
/// assert!(matches!(manager.address(), Address::Tcp(a) if a.port() != 0));
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct ManagerBuilder<R = ()> {
    start_method: Option<StartMethod>,
    address: Option<Address>,
    authkey: Option<Vec<u8>>,
    loan_timeout: Duration,
    _registered: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for ManagerBuilder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagerBuilder")
            .field("start_method", &self.start_method)
            .field("address", &self.address)
            .field("loan_timeout", &self.loan_timeout)
            .finish_non_exhaustive()
    }
}

impl<R: Registered> ManagerBuilder<R> {
    /// Lets the server hold objects of the user's type `T` (Python's
    /// `BaseManager.register`); create them with [`Manager::create`].
    ///
    /// # Examples
    ///
    /// See [`SharedObject`].
    pub fn register<T: SharedObject>(self) -> ManagerBuilder<(T, R)> {
        ManagerBuilder {
            start_method: self.start_method,
            address: self.address,
            authkey: self.authkey,
            loan_timeout: self.loan_timeout,
            _registered: PhantomData,
        }
    }

    /// How the server process starts (default [`StartMethod::Spawn`]).
    ///
    /// # Examples
    ///
    /// See [`ManagerBuilder`].
    #[must_use]
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.start_method = Some(method);
        self
    }

    /// Where the server listens (default: a fresh Linux abstract socket
    /// name). A TCP address makes a remote manager; port 0 picks a free one.
    ///
    /// # Examples
    ///
    /// See [`ManagerBuilder`].
    #[must_use]
    pub fn address(mut self, address: Address) -> Self {
        self.address = Some(address);
        self
    }

    /// The key clients must prove they know. By default a manager makes
    /// one of 32 random bytes (on TCP too, as Python does), which this
    /// process and the children it starts afterwards know: a manager always
    /// has a key. Proxies never carry it: another program reaches the
    /// manager with [`Manager::connect`] and the key.
    ///
    /// # Examples
    ///
    /// See [`ManagerBuilder`].
    #[must_use]
    pub fn authkey(mut self, key: &[u8]) -> Self {
        self.authkey = Some(key.to_vec());
        self
    }

    /// How long a proxy on its way to another process keeps its object
    /// (default 60 s).
    ///
    /// A proxy serialized to travel (a process argument, a message on a
    /// pipe or queue) keeps its object alive, even if every process drops
    /// its proxies meanwhile, until it is received, or until this time has
    /// passed: a message that is never received (its pipe dropped, its
    /// receiver killed) lets the object go then. A proxy received later
    /// still works if someone else held the object meanwhile; if nobody
    /// did, its calls fail with [`Error::Manager`] ("no object").
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let manager = multiproc::Manager::builder().loan_timeout(Duration::from_secs(600)).start()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[must_use]
    pub fn loan_timeout(mut self, timeout: Duration) -> Self {
        self.loan_timeout = timeout;
        self
    }

    /// Starts the server process and waits until it listens.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] naming the address if the server cannot listen there
    /// (in use, no permission), with the OS error as its `source`; errors
    /// of [`Process::spawn`].
    ///
    /// # Examples
    ///
    /// See [`ManagerBuilder`].
    pub fn start(self) -> Result<Manager> {
        let authkey = match self.authkey {
            Some(key) => key,
            None => {
                let mut key = vec![0u8; 32];
                rustix::rand::getrandom(&mut key, rustix::rand::GetRandomFlags::empty()).map_err(
                    |e| Error::Os { op: "make an authkey", address: None, source: e.into() },
                )?;
                key
            }
        };
        let address = self.address.unwrap_or_else(fresh_address);
        let (report, server_report) =
            pipe_between::<(), Result<Address, server::ListenFailure>>(4096)?;
        let args = server::ServerArgs {
            address: address.clone(),
            authkey: Some(authkey.clone()),
            report: server_report,
            loan_timeout: self.loan_timeout,
        };
        let server = Process::builder()
            .name("Manager")
            .daemon(true)
            .start_method(self.start_method.unwrap_or_default())
            .spawn(server::serve::<R>, args)?;
        let address = match report.recv_timeout(START_TIMEOUT) {
            Ok(Ok(address)) => address,
            Ok(Err(failure)) => return Err(failure.into_error(&address)),
            Err(e) => {
                let _ = server.kill();
                return Err(e);
            }
        };
        log::debug!("manager server started (pid {}) on {address:?}", server.pid());
        let authkey = AuthKey::new(&authkey);
        keys::register(&address, Some(&authkey));
        Ok(Manager {
            link: Link { address, authkey: Some(authkey) },
            server: Some(server),
            owner: std::process::id(),
        })
    }
}

impl<R: Registered> ManagerBuilder<R> {
    /// Listens on the builder's address in this process, for a standalone
    /// server program (Python's `BaseManager.get_server()`); run it with
    /// [`ManagerServer::serve`]. [`serve`](Self::serve) does both.
    ///
    /// From this call until the server is dropped, `SIGTERM` and `SIGINT`
    /// no longer end the process: they stop [`ManagerServer::serve`]
    /// (also when they arrive before it runs). The start method is not
    /// used: the server runs in the calling process.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] without an [`authkey`](Self::authkey) (the
    /// clients of a standalone server must know it), or if another
    /// `ManagerServer` lives in this process; [`Error::Os`] if the address
    /// cannot be bound (in use, no permission) or the signal handlers
    /// cannot be installed.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::Manager;
    /// use multiproc::connection::Address;
    ///
    /// let server = Manager::builder()
    ///     .address(Address::Tcp("127.0.0.1:0".parse().unwrap()))
    ///     .authkey(b"secret")
    ///     .bind()?;
    /// println!("serving on {:?}", server.address());
    /// // server.serve()?; // until SIGTERM, SIGINT or a client's shutdown()
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn bind(self) -> Result<ManagerServer<R>> {
        let Some(authkey) = self.authkey else {
            return Err(Error::Unsupported {
                reason: "a standalone manager server needs an authkey (ManagerBuilder::authkey)",
            });
        };
        let address = self.address.unwrap_or_else(fresh_address);
        let signals = crate::os::StopSignals::install().map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                Error::Unsupported { reason: "another manager server already runs in this process" }
            }
            _ => Error::Os { op: "watch SIGTERM and SIGINT", address: None, source: e },
        })?;
        let listener = Listener::bind(address, Some(&authkey))?;
        Ok(ManagerServer {
            listener,
            authkey,
            loan_timeout: self.loan_timeout,
            signals,
            _registered: PhantomData,
        })
    }

    /// Runs the manager's server in this process until it is stopped
    /// (Python's `serve_forever`): by `SIGTERM` or `SIGINT`, or by a client
    /// calling [`Manager::shutdown`] on a manager from
    /// [`Manager::connect`]. `bind()?.serve()`; see [`bind`](Self::bind).
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind) and [`ManagerServer::serve`].
    ///
    /// # Examples
    ///
    /// A server program:
    ///
    /// ```no_run
    /// use multiproc::Manager;
    /// use multiproc::connection::Address;
    ///
    /// fn main() -> Result<(), multiproc::Error> {
    ///     Manager::builder()
    ///         .address(Address::Tcp("0.0.0.0:50000".parse().unwrap()))
    ///         .authkey(b"abracadabra")
    ///         .serve() // returns Ok(()) once stopped
    /// }
    /// ```
    ///
    /// Stopped by a client:
    ///
    /// ```
    /// use multiproc::Manager;
    /// use multiproc::connection::Address;
    ///
    /// let server = Manager::builder().address(Address::Tcp("127.0.0.1:0".parse().unwrap())).authkey(b"k").bind()?;
    /// let address = server.address().clone();
    /// let running = std::thread::spawn(move || server.serve());
    /// let client = Manager::connect(&address, Some(b"k"))?;
    /// let hits = client.dict::<String, u64>()?;
    /// hits.insert("home".to_owned(), 1)?;
    /// assert_eq!(hits.get("home")?, Some(1));
    /// client.shutdown()?;
    /// running.join().unwrap()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn serve(self) -> Result<()> {
        self.bind()?.serve()
    }
}

/// A manager's server bound in this process, ready to
/// [`serve`](Self::serve) (Python's `Server` from `get_server()`).
///
/// # Examples
///
/// See [`ManagerBuilder::bind`] and [`ManagerBuilder::serve`].
pub struct ManagerServer<R = ()> {
    listener: Listener,
    authkey: Vec<u8>,
    loan_timeout: Duration,
    signals: crate::os::StopSignals,
    _registered: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for ManagerServer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagerServer")
            .field("address", self.listener.address())
            .finish_non_exhaustive()
    }
}

impl<R: Registered> ManagerServer<R> {
    /// The address the server listens on (a TCP port 0 becomes the port
    /// chosen).
    ///
    /// # Examples
    ///
    /// See [`ManagerBuilder::bind`].
    pub fn address(&self) -> &Address {
        self.listener.address()
    }

    /// Serves clients until `SIGTERM` or `SIGINT` arrives or a client calls
    /// [`Manager::shutdown`] (Python's `serve_forever`), then cuts every
    /// session (their proxies fail with [`Error::ManagerGone`]), stops
    /// listening (a Unix socket's file is removed), restores the signals'
    /// previous handling and returns `Ok(())`. The objects it held are gone.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the server cannot start its machinery.
    ///
    /// # Examples
    ///
    /// See [`ManagerBuilder::serve`].
    pub fn serve(self) -> Result<()> {
        server::run::<R>(
            &self.listener,
            Some(&self.authkey),
            self.loan_timeout,
            Some(&self.signals),
        )
    }
}

/// A name no other manager uses: pid, a counter and random bits.
fn fresh_address() -> Address {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut random = [0u8; 8];
    let _ = rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty());
    Address::Abstract(format!(
        "multiproc-manager-{}-{}-{:016x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        u64::from_ne_bytes(random)
    ))
}

impl Manager {
    /// Starts a manager's server process with the default settings.
    ///
    /// # Errors
    ///
    /// As [`ManagerBuilder::start`].
    ///
    /// # Examples
    ///
    /// See [`Manager`].
    pub fn start() -> Result<Self> {
        Self::builder().start()
    }

    /// Settings for a manager: start method, address, authkey.
    ///
    /// # Examples
    ///
    /// See [`ManagerBuilder`].
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder {
            start_method: None,
            address: None,
            authkey: None,
            loan_timeout: LOAN_TIMEOUT,
            _registered: PhantomData,
        }
    }

    /// Connects to a manager another program started (Python's
    /// `BaseManager(address, authkey).connect()`).
    ///
    /// From then on this process knows the manager's key, as do the children
    /// it starts afterwards: proxies of that manager that arrive here (over
    /// a connection, from another object) work. A proxy of a manager this
    /// process does not know fails to decode, with [`Error::Decode`].
    ///
    /// # Errors
    ///
    /// [`Error::AuthenticationFailed`] with a wrong key or none;
    /// [`Error::Os`] naming the address if nobody listens there (connection
    /// refused, no such socket file), with the OS error as its `source`.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::Manager;
    /// use multiproc::connection::Address;
    ///
    /// let server = Manager::builder()
    ///     .address(Address::Tcp("127.0.0.1:0".parse().unwrap()))
    ///     .authkey(b"key")
    ///     .start()?;
    /// server.publish("jobs", &server.list(["a".to_owned()])?)?;
    ///
    /// let remote = Manager::connect(server.address(), Some(b"key"))?;
    /// let jobs = remote.lookup::<multiproc::manager::ListProxy<String>>("jobs")?;
    /// assert_eq!(jobs.to_vec()?, ["a"]);
    /// assert!(Manager::connect(server.address(), Some(b"wrong")).is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn connect(address: &Address, authkey: Option<&[u8]>) -> Result<Self> {
        let link = Link { address: address.clone(), authkey: authkey.map(AuthKey::new) };
        client::connect(&link)?;
        match client::call(&link, &Request::Ping)? {
            Response::Done => {
                log::debug!("connected to the manager at {address:?}");
                keys::register(&link.address, link.authkey.as_ref());
                Ok(Self { link, server: None, owner: std::process::id() })
            }
            other => Err(unexpected(&other)),
        }
    }

    /// The address the server listens on.
    ///
    /// # Examples
    ///
    /// See [`ManagerBuilder`].
    pub fn address(&self) -> &Address {
        &self.link.address
    }

    /// The server process, if this manager started it.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(m.process().unwrap().is_alive());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn process(&self) -> Option<&Process<()>> {
        self.server.as_ref()
    }

    fn create_object<P: Sealed>(&self, create: Create) -> Result<P> {
        match client::call(&self.link, &Request::Create(create, proxy::proxy_type::<P>()))? {
            Response::Created(id) => Ok(P::from_target(Target::new(self.link.clone(), id))),
            other => Err(unexpected(&other)),
        }
    }

    /// A new shared list holding `items` (Python's `manager.list(...)`).
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`]; [`Error::Encode`].
    ///
    /// # Examples
    ///
    /// See [`ListProxy`].
    pub fn list<T: Serialize>(&self, items: impl IntoIterator<Item = T>) -> Result<ListProxy<T>> {
        let items = items.into_iter().map(|v| dynval::encode(&v)).collect::<Result<_>>()?;
        self.create_object(Create::List(items))
    }

    /// A new, empty shared dict (Python's `manager.dict()`).
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`DictProxy`].
    pub fn dict<K, V>(&self) -> Result<DictProxy<K, V>> {
        self.create_object(Create::Dict(Vec::new()))
    }

    /// A new, empty namespace (Python's `manager.Namespace()`).
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`Namespace`].
    pub fn namespace(&self) -> Result<Namespace> {
        self.create_object(Create::Namespace)
    }

    /// A new shared value (Python's `manager.Value(typecode, x)`; the type is
    /// `T`'s).
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`]; [`Error::Encode`].
    ///
    /// # Examples
    ///
    /// See [`ValueProxy`].
    pub fn value<T: Serialize>(&self, value: T) -> Result<ValueProxy<T>> {
        self.create_object(Create::Value(dynval::encode(&value)?))
    }

    /// A new fixed-length array holding `items` (Python's
    /// `manager.Array(typecode, sequence)`).
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`]; [`Error::Encode`].
    ///
    /// # Examples
    ///
    /// See [`ArrayProxy`].
    pub fn array<T: Serialize>(&self, items: impl IntoIterator<Item = T>) -> Result<ArrayProxy<T>> {
        let items = items.into_iter().map(|v| dynval::encode(&v)).collect::<Result<_>>()?;
        self.create_object(Create::Array(items))
    }

    /// A new lock (Python's `manager.Lock()`).
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`LockProxy`].
    pub fn lock(&self) -> Result<LockProxy> {
        self.create_object(Create::Lock)
    }

    /// A new re-entrant lock (Python's `manager.RLock()`).
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`RLockProxy`].
    pub fn rlock(&self) -> Result<RLockProxy> {
        self.create_object(Create::RLock)
    }

    /// A new semaphore with `value` units (Python's `manager.Semaphore(n)`).
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`SemaphoreProxy`].
    pub fn semaphore(&self, value: u32) -> Result<SemaphoreProxy> {
        self.create_object(Create::Semaphore(u64::from(value), None))
    }

    /// A new semaphore that refuses to be released past `value` units
    /// (Python's `manager.BoundedSemaphore(n)`).
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`SemaphoreProxy`].
    pub fn bounded_semaphore(&self, value: u32) -> Result<SemaphoreProxy> {
        self.create_object(Create::Semaphore(u64::from(value), Some(u64::from(value))))
    }

    /// A new condition variable with its own re-entrant lock (Python's
    /// `manager.Condition()`).
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`ConditionProxy`].
    pub fn condition(&self) -> Result<ConditionProxy> {
        self.create_object(Create::Condition)
    }

    /// A new event (Python's `manager.Event()`).
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`EventProxy`].
    pub fn event(&self) -> Result<EventProxy> {
        self.create_object(Create::Event)
    }

    /// A new barrier for `parties` parties (Python's `manager.Barrier(n)`).
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`BarrierProxy`].
    pub fn barrier(&self, parties: u32) -> Result<BarrierProxy> {
        self.create_object(Create::Barrier(u64::from(parties)))
    }

    /// A new unbounded queue (Python's `manager.Queue()`).
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`QueueProxy`].
    pub fn queue<T>(&self) -> Result<QueueProxy<T>> {
        self.create_object(Create::Queue(0))
    }

    /// A new queue holding at most `maxsize` items (Python's
    /// `manager.Queue(maxsize)`).
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`QueueProxy::try_put`].
    pub fn bounded_queue<T>(&self, maxsize: u32) -> Result<QueueProxy<T>> {
        self.create_object(Create::Queue(u64::from(maxsize.max(1))))
    }

    /// A new queue with `task_done` and `join` (Python's
    /// `manager.JoinableQueue()`; every [`QueueProxy`] has them).
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`QueueProxy::join_timeout`].
    pub fn joinable_queue<T>(&self) -> Result<QueueProxy<T>> {
        self.queue()
    }

    /// A new object of a type registered with
    /// [`ManagerBuilder::register`], holding `value`.
    ///
    /// # Errors
    ///
    /// [`Error::Manager`] if the server does not know the type.
    ///
    /// # Examples
    ///
    /// See [`SharedObject`].
    pub fn create<T: SharedObject>(&self, value: T) -> Result<CustomProxy<T>> {
        self.create_object(Create::Custom(T::type_name().to_owned(), dynval::encode(&value)?))
    }

    /// Gives `proxy`'s object a name under which other programs find it
    /// with [`lookup`](Self::lookup).
    ///
    /// # Errors
    ///
    /// [`Error::Manager`] if the proxy belongs to another manager.
    ///
    /// # Examples
    ///
    /// See [`connect`](Self::connect).
    pub fn publish<P: Proxy>(&self, name: &str, proxy: &P) -> Result<()> {
        let Some(target) = proxy.target().served() else {
            return Err(Error::Unsupported {
                reason: "an object on Redis is named already: open it by its name",
            });
        };
        if target.link != self.link {
            return Err(Error::Manager { message: "the proxy belongs to another manager".into() });
        }
        match client::call(&self.link, &Request::Publish(name.to_owned(), target.id))? {
            Response::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The object published as `name`, through a proxy of type `P`.
    ///
    /// # Errors
    ///
    /// [`Error::Manager`] if there is no such name, or the object was
    /// created through another proxy type than `P` (another kind, or other
    /// element types: a `DictProxy<String, i64>` is not a
    /// `DictProxy<String, String>`); the message names both types.
    ///
    /// # Examples
    ///
    /// See [`connect`](Self::connect).
    pub fn lookup<P: Proxy>(&self, name: &str) -> Result<P> {
        match client::call(&self.link, &Request::Lookup(name.to_owned()))? {
            Response::Found(id, kind, found) => {
                let wanted = proxy::proxy_type::<P>();
                // An object made by another program (or an older one) may
                // not say its type: its kind must do.
                if kind == P::KIND && (found.is_empty() || found == wanted) {
                    Ok(P::from_target(Target::new(self.link.clone(), id)))
                } else {
                    let found = if found.is_empty() { format!("{kind:?}") } else { found };
                    Err(Error::Manager {
                        message: format!(
                            "{name:?} was created as a {found}: it cannot be looked up as a \
                             {wanted}"
                        ),
                    })
                }
            }
            other => Err(unexpected(&other)),
        }
    }

    /// How many objects the server keeps now (Python's private
    /// `_number_of_objects`): a diagnostic for leaks.
    ///
    /// An object lives while a proxy of it exists in some process, is on
    /// its way to one (serialized as a process argument or a message, for
    /// at most [`ManagerBuilder::loan_timeout`]), is
    /// published under a name, or is stored inside another object (then it
    /// lives until the server stops). Dropping the last proxy frees it; a
    /// process that ends, even killed, lets go of what it held. The count
    /// includes every drop this process made before the call; other
    /// processes' drops reach the server a moment after they happen.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let list = m.list([1, 2])?;
    /// assert_eq!(m.object_count()?, 1);
    /// drop(list);
    /// assert_eq!(m.object_count()?, 0);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn object_count(&self) -> Result<usize> {
        client::sync_holds(&self.link)?;
        match client::call(&self.link, &Request::ObjectCount)? {
            Response::Count(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            other => Err(unexpected(&other)),
        }
    }

    /// Stops the server: every proxy of this manager fails with
    /// [`Error::ManagerGone`] from now on. Dropping the manager that started
    /// the server does the same.
    ///
    /// On a manager from [`connect`](Self::connect), this stops a
    /// standalone server ([`ManagerBuilder::serve`], Python's
    /// `serve_forever`): its `serve` returns. A server that another
    /// program's manager [`start`](Self::start)ed refuses.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] on a manager from [`connect`](Self::connect)
    /// to a server that a manager started, or in a child that inherited the
    /// manager that started its server; [`Error::ManagerGone`].
    ///
    /// # Examples
    ///
    /// See [`Manager`] and [`ManagerBuilder::serve`].
    pub fn shutdown(&self) -> Result<()> {
        if std::process::id() != self.owner {
            return Err(Error::Unsupported {
                reason: "only the process that started a manager's server stops it",
            });
        }
        let Some(server) = &self.server else {
            return match client::call(&self.link, &Request::Stop) {
                Ok(Response::Done) => {
                    client::forget(&self.link);
                    Ok(())
                }
                Ok(other) => Err(unexpected(&other)),
                Err(Error::Manager { message }) if message == server::NOT_STANDALONE => {
                    Err(Error::Unsupported { reason: server::NOT_STANDALONE })
                }
                Err(e) => Err(e),
            };
        };
        let _ = client::call(&self.link, &Request::Shutdown);
        client::forget(&self.link);
        if server.wait_timeout(SHUTDOWN_TIMEOUT)?.is_none() {
            server.kill()?;
            server.wait()?;
        }
        Ok(())
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if std::process::id() == self.owner && self.server.as_ref().is_some_and(Process::is_alive) {
            let _ = self.shutdown();
        }
        client::forget(&self.link);
    }
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("address", &self.link.address)
            .field("pid", &self.server.as_ref().map(Process::pid))
            .finish()
    }
}
