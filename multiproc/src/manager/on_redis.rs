//! [`RedisManager`]: a manager whose objects live on a Redis server,
//! named, shared by every host that names them.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::proxy::{Target, proxy_type, sealed::Sealed};
use super::{
    BarrierProxy, DictProxy, EventProxy, ListProxy, LockProxy, Manager, Namespace, RLockProxy,
    SemaphoreProxy, ValueProxy, dynval,
};
use crate::Result;
use crate::remote::link::{DEFAULT_UNREACHABLE, Link, Resend};
use crate::remote::object::{self, DEFAULT_LEASE, Init, RedisObject, Spec};

/// A manager on a Redis (or Valkey) server: named objects that every
/// process on every host shares when it opens them under the same app and
/// name (made by [`Manager::connect_redis`]).
///
/// Its objects are the local manager's proxy types ([`DictProxy`],
/// [`ListProxy`], [`LockProxy`]...): code written against them works
/// unchanged on either back-end; their `backend()` and `Debug` tell which.
/// An object is created by its first open; later opens check that the name
/// holds an object of the same proxy type (`DictProxy<String, u64>` is not
/// `DictProxy<String, String>`) and fail with
/// [`Error::Backend`](crate::Error::Backend) naming both otherwise. The
/// first open's initial value, units or parties stand.
///
/// Objects live on the server until [`delete`](Self::delete)d, whoever
/// holds proxies. Proxies travel to other processes (as arguments, inside
/// messages and other objects): they carry the address (with its
/// password), the app and the name, and open the object again where they
/// arrive.
///
/// What differs from a manager's server:
///
/// - A dict's `keys`, `values` and `items` come in no particular order
///   (a Redis hash); the other orders are as locally.
/// - Locks are leases (see [`lease`](Self::lease)): a holder that dies
///   loses the lock once its lease runs out, and the next taker gets
///   [`Error::OwnerDied`](crate::Error::OwnerDied) holding it; each hold
///   has a fencing token ([`LockProxy::token`]); a holder that stalls past
///   its lease is told by its release
///   ([`Error::LeaseExpired`](crate::Error::LeaseExpired)).
/// - Waits (locks, events, semaphores, barriers) look again after pauses
///   that grow to 50 ms, within their timeout; a party that dies inside a
///   barrier's wait, or with semaphore units, keeps them (as locally).
/// - The `_async` calls run their command on the calling thread.
/// - Conditions, queues, arrays and registered types are not offered (use
///   [`Queue::builder().redis(..)`](crate::QueueBuilder::redis) for
///   queues); [`Manager::publish`] of a Redis object fails with
///   [`Error::Unsupported`](crate::Error::Unsupported) (it has a name).
///
/// Every operation reconnects with backoff while the server cannot be
/// reached, until the [`unreachable_timeout`](Self::unreachable_timeout),
/// then fails with [`Error::Backend`](crate::Error::Backend); a timed wait
/// gives up at its own timeout if that comes first.
///
/// # Examples
///
/// ```no_run
/// use multiproc::Manager;
///
/// let m = Manager::connect_redis("redis://127.0.0.1:6379/0", "app")?;
/// let counts = m.dict::<String, u64>("counts")?;
/// counts.update("hits".into(), |n| Some(n.unwrap_or(0) + 1))?;
/// let lock = m.lock("deploy")?;
/// let guard = lock.lock()?;
/// println!("deploying under fencing token {:?}", guard.token());
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisManager {
    link: Arc<Link>,
    url: String,
    app: String,
    lease: Duration,
    unreachable: Duration,
}

impl fmt::Debug for RedisManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisManager")
            .field("backend", &"redis")
            .field("address", &self.link.address())
            .field("app", &self.app)
            .finish()
    }
}

impl Manager {
    /// A manager on the Redis (or Valkey) server at `url`, whose objects
    /// are named under `app` (see [`RedisManager`]).
    ///
    /// `url` is `redis://[user[:password]@]host[:port][/db]`, or `rediss://`
    /// for TLS (with the `redis-tls` feature).
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) if `url` is not a Redis
    /// address, or the server does not answer within 10 s (or refuses the
    /// password).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let m = multiproc::Manager::connect_redis("redis://:secret@10.0.0.5:6379/0", "app")?;
    /// let ns = m.namespace("settings")?;
    /// ns.set("workers", 8)?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn connect_redis(url: &str, app: &str) -> Result<RedisManager> {
        let link = Link::get(url)?;
        let ping = redis::cmd("PING");
        let deadline = Instant::now() + DEFAULT_UNREACHABLE;
        link.run(deadline, Resend::Yes, |c| c.query::<()>(&ping))?;
        Ok(RedisManager {
            link,
            url: url.to_owned(),
            app: app.to_owned(),
            lease: DEFAULT_LEASE,
            unreachable: DEFAULT_UNREACHABLE,
        })
    }
}

impl RedisManager {
    /// The lease of the locks this manager opens (default 30 s): how long
    /// a lock stays held by a holder that stopped renewing it (it died, or
    /// lost the server). A thread of each process renews its leases every
    /// third of the lease while they are held.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let m = multiproc::Manager::connect_redis("redis://127.0.0.1:6379/0", "app")?
    ///     .lease(Duration::from_secs(5));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(3));
        self
    }

    /// How long an operation of the objects this manager opens keeps
    /// trying to reach a server that does not answer before it fails with
    /// [`Error::Backend`](crate::Error::Backend) (default 10 s).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let m = multiproc::Manager::connect_redis("redis://127.0.0.1:6379/0", "app")?
    ///     .unreachable_timeout(Duration::from_secs(2));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[must_use]
    pub fn unreachable_timeout(mut self, timeout: Duration) -> Self {
        self.unreachable = timeout;
        self
    }

    /// The app under which objects are named.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let m = multiproc::Manager::connect_redis("redis://127.0.0.1:6379/0", "app")?;
    /// assert_eq!(m.app(), "app");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The server's address, without its password.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let m = multiproc::Manager::connect_redis("redis://:pw@127.0.0.1:6379/0", "app")?;
    /// assert_eq!(m.address(), "redis://127.0.0.1:6379/0");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn address(&self) -> &str {
        self.link.address()
    }

    fn open<P: Sealed>(&self, name: &str, init: Init) -> Result<P> {
        let spec = Spec {
            url: self.url.clone(),
            app: self.app.clone(),
            name: name.to_owned(),
            kind: P::KIND,
            type_name: proxy_type::<P>(),
            lease: self.lease,
            unreachable: self.unreachable,
        };
        Ok(P::from_target(Target::Redis(RedisObject::open(spec, init)?)))
    }

    /// The dict `name` (a Redis hash), created empty if new.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) if the server cannot be
    /// reached, or `name` holds another type of object.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let m = multiproc::Manager::connect_redis("redis://127.0.0.1:6379/0", "app")?;
    /// let d = m.dict::<String, u64>("counts")?;
    /// d.insert("a".into(), 1)?;
    /// assert_eq!(d.update("a".into(), |n| n.map(|n| n + 1))?, Some(2));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn dict<K, V>(&self, name: &str) -> Result<DictProxy<K, V>> {
        self.open(name, Init::default())
    }

    /// The list `name` (a Redis list), created empty if new.
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let m = multiproc::Manager::connect_redis("redis://127.0.0.1:6379/0", "app")?;
    /// let l = m.list::<String>("log")?;
    /// l.append("started".into())?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn list<T>(&self, name: &str) -> Result<ListProxy<T>> {
        self.open(name, Init::default())
    }

    /// The namespace `name` (a Redis hash of attributes), created empty if
    /// new.
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let m = multiproc::Manager::connect_redis("redis://127.0.0.1:6379/0", "app")?;
    /// let ns = m.namespace("settings")?;
    /// ns.set("x", 1)?;
    /// assert_eq!(ns.update("x", |x: i64| x + 5)?, 6);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn namespace(&self, name: &str) -> Result<Namespace> {
        self.open(name, Init::default())
    }

    /// The value `name` (a Redis string), holding `initial` if new.
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict); [`Error::Encode`](crate::Error::Encode) if
    /// `initial` does not encode (it carries a local handle).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let m = multiproc::Manager::connect_redis("redis://127.0.0.1:6379/0", "app")?;
    /// let v = m.value("temperature", 20.5f64)?;
    /// v.update(|t| t + 1.0)?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn value<T: Serialize>(&self, name: &str, initial: T) -> Result<ValueProxy<T>> {
        self.open(name, Init { value: Some(dynval::encode(&initial)?), fields: Vec::new() })
    }

    /// The lock `name`, a lease (see [`lease`](Self::lease)).
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let m = multiproc::Manager::connect_redis("redis://127.0.0.1:6379/0", "app")?;
    /// let lock = m.lock("deploy")?;
    /// if lock.acquire_timeout(std::time::Duration::from_secs(1))? {
    ///     let token = lock.token();
    ///     lock.release()?;
    /// }
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn lock(&self, name: &str) -> Result<LockProxy> {
        self.open(name, Init::default())
    }

    /// The re-entrant lock `name`: a lease as [`lock`](Self::lock), which
    /// the thread holding it may take again (and releases as often).
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let m = multiproc::Manager::connect_redis("redis://127.0.0.1:6379/0", "app")?;
    /// let lock = m.rlock("tree")?;
    /// lock.acquire()?;
    /// lock.acquire()?;
    /// lock.release()?;
    /// lock.release()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn rlock(&self, name: &str) -> Result<RLockProxy> {
        self.open(name, Init::default())
    }

    /// The event `name`, created clear if new.
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let m = multiproc::Manager::connect_redis("redis://127.0.0.1:6379/0", "app")?;
    /// let ready = m.event("ready")?;
    /// ready.set()?;
    /// assert!(ready.wait_timeout(std::time::Duration::from_secs(1))?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn event(&self, name: &str) -> Result<EventProxy> {
        self.open(name, Init::default())
    }

    /// The semaphore `name`, with `value` units if new.
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let m = multiproc::Manager::connect_redis("redis://127.0.0.1:6379/0", "app")?;
    /// let slots = m.semaphore("slots", 4)?;
    /// slots.acquire()?;
    /// slots.release()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn semaphore(&self, name: &str, value: u32) -> Result<SemaphoreProxy> {
        self.open(name, Init { value: None, fields: vec![("value", value.to_string())] })
    }

    /// The semaphore `name`, with `value` units if new, that refuses to be
    /// released past them.
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let m = multiproc::Manager::connect_redis("redis://127.0.0.1:6379/0", "app")?;
    /// let s = m.bounded_semaphore("one", 1)?;
    /// assert!(s.release().is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn bounded_semaphore(&self, name: &str, value: u32) -> Result<SemaphoreProxy> {
        let fields = vec![("value", value.to_string()), ("bound", value.to_string())];
        self.open(name, Init { value: None, fields })
    }

    /// The barrier `name`, for `parties` parties (at least 1) if new.
    ///
    /// # Errors
    ///
    /// As [`dict`](Self::dict).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let m = multiproc::Manager::connect_redis("redis://127.0.0.1:6379/0", "app")?;
    /// let b = m.barrier("start", 3)?;
    /// let index = b.wait_timeout(std::time::Duration::from_secs(60))?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn barrier(&self, name: &str, parties: u32) -> Result<BarrierProxy> {
        self.open(name, Init { value: None, fields: vec![("parties", parties.max(1).to_string())] })
    }

    /// Deletes object `name` from the server, whatever it is; true if there
    /// was one. Proxies of it that are still around see an empty object of
    /// their kind (a semaphore or barrier loses its settings: open it
    /// again).
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let m = multiproc::Manager::connect_redis("redis://127.0.0.1:6379/0", "app")?;
    /// m.list::<u8>("scratch")?.append(1)?;
    /// assert!(m.delete("scratch")?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn delete(&self, name: &str) -> Result<bool> {
        object::delete(&self.link, &self.app, name, Instant::now() + self.unreachable)
    }
}
