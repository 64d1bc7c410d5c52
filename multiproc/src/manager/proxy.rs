//! Proxies: typed handles to objects that live in a manager's server.

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::client::{self, Link, unexpected};
use super::dynval::{self, Blob};
use super::protocol::{Kind, Op, Part, Request, Response};
use crate::connection::Address;
use crate::queue::{PutError, Queue};
#[cfg(feature = "redis")]
use crate::remote::object::{Init, RedisObject, Spec as RedisSpec};
use crate::shm::liveness::Liveness;
use crate::{Error, Result};

/// Larger items are appended by request, not through the append log.
const LOG_ITEM_MAX: usize = 16 << 10;

/// The object a proxy points to: one in a manager's server, or one on
/// Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// An object of a manager's server.
    Served(Served),
    /// A named object on Redis.
    #[cfg(feature = "redis")]
    Redis(Arc<RedisObject>),
}

/// Which object of which manager, held for as long as a clone of it lives
/// in this process (see [`client::hold`]).
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub(crate) link: Link,
    pub(crate) id: u64,
    hold: Arc<Hold>,
}

/// This process's hold on an object: its last clone lets go.
#[derive(Debug)]
struct Hold {
    link: Link,
    id: u64,
    /// False for a proxy of a manager whose key this process does not
    /// know: it holds nothing, and every call fails.
    known: bool,
    /// A list's append log and the server's liveness word, asked for on
    /// the first append (`None`: the manager is remote, or gave none).
    log: OnceLock<Option<(Queue<Blob>, Liveness)>>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.known {
            client::unhold(&self.link, self.id);
        }
    }
}

impl PartialEq for Served {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.link == other.link
    }
}

impl Eq for Served {}

#[cfg(feature = "redis")]
impl PartialEq for RedisObject {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.spec(), other.spec());
        (&a.url, &a.app, &a.name) == (&b.url, &b.app, &b.name)
    }
}

#[cfg(feature = "redis")]
impl Eq for RedisObject {}

/// A proxy as it travels: its manager's address (never its key: where it
/// arrives, the key is looked up by the address), its object, and the loan
/// that keeps the object alive on the way (none when it was stored inside
/// another object, which pins it instead).
#[derive(Serialize, Deserialize)]
struct Wire {
    address: Address,
    id: u64,
    loan: Option<u64>,
}

/// A proxy of either back-end as it travels: a Redis object carries its
/// address (with the password), app and name, and is opened again where it
/// arrives.
#[derive(Serialize, Deserialize)]
enum Travel<R> {
    Served(Wire),
    Redis(R),
}

#[cfg(feature = "redis")]
type RedisWire = RedisSpec;
#[cfg(not(feature = "redis"))]
type RedisWire = ();

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Target::Served(served) => Travel::<&RedisWire>::Served(served.wire()).serialize(s),
            #[cfg(feature = "redis")]
            Target::Redis(object) => Travel::Redis(object.spec()).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match Travel::<RedisWire>::deserialize(d)? {
            Travel::Served(wire) => Ok(Target::Served(Served::arrived(wire))),
            #[cfg(feature = "redis")]
            Travel::Redis(spec) => RedisObject::open(spec, Init::default())
                .map(Target::Redis)
                .map_err(crate::transfer::codec::refuse),
            #[cfg(not(feature = "redis"))]
            Travel::Redis(()) => Err(crate::transfer::codec::refuse(Error::Unsupported {
                reason: "a proxy of a Redis object reached a build without the `redis` feature",
            })),
        }
    }
}

impl Served {
    /// This proxy as it travels, with a loan (or pin) that keeps its
    /// object alive on the way.
    fn wire(&self) -> Wire {
        let loan = if !self.hold.known {
            None
        } else if dynval::storing() {
            client::pin(&self.link, self.id);
            None
        } else {
            Some(client::lend(&self.link, self.id))
        };
        Wire { address: self.link.address.clone(), id: self.id, loan }
    }

    /// The proxy that `wire` describes, arrived in this process.
    fn arrived(wire: Wire) -> Self {
        let Some(link) = Link::known(&wire.address) else {
            // Its loan runs out on the server (see `Refs::loans`).
            return Self::of_unknown_manager(wire.address, wire.id);
        };
        let served = Self::new(link, wire.id);
        if let Some(token) = wire.loan {
            client::repay(&served.link, token);
        }
        served
    }

    /// A handle on object `id`, held by this process while it lives.
    fn new(link: Link, id: u64) -> Self {
        client::hold(&link, id);
        let hold = Hold { link: link.clone(), id, known: true, log: OnceLock::new() };
        Self { hold: Arc::new(hold), link, id }
    }

    /// A proxy of a manager whose key this process does not know: it
    /// holds nothing and every call fails with a message that says so.
    fn of_unknown_manager(address: Address, id: u64) -> Self {
        let link = Link { address, authkey: None };
        let hold = Hold { link: link.clone(), id, known: false, log: OnceLock::new() };
        Self { hold: Arc::new(hold), link, id }
    }

    /// Appends an encoded item to a list: through the list's append log in
    /// shared memory when the manager is local (no request, no wake-up of
    /// the server), by request otherwise or when the log is full.
    fn append(&self, item: Blob) -> Result<()> {
        let item = match self.log() {
            Some((log, server)) if item.len() <= LOG_ITEM_MAX => match log.try_put(item) {
                // The server must still be there to fold it in: a dead one
                // must not take appends silently. One load tells.
                Ok(()) => {
                    return match server.alive() {
                        Some(true) => Ok(()),
                        Some(false) => Err(Error::ManagerGone),
                        None => client::alive(&self.link),
                    };
                }
                Err(PutError::Closed(_)) => {
                    return Err(Error::Manager { message: format!("no object {}", self.id) });
                }
                Err(e) => e.into_inner(),
            },
            _ => item,
        };
        match self.call(Kind::List, Op::Append(item))? {
            Response::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    fn log(&self) -> Option<&(Queue<Blob>, Liveness)> {
        self.hold
            .log
            .get_or_init(|| {
                if matches!(self.link.address, Address::Tcp(_)) {
                    return None;
                }
                match self.call(Kind::List, Op::AppendLog) {
                    Ok(Response::Log(log, server)) => Some((log, server)),
                    _ => None,
                }
            })
            .as_ref()
    }

    fn call(&self, kind: Kind, op: Op) -> Result<Response> {
        if !self.hold.known {
            return Err(Link::unknown(&self.link.address));
        }
        client::call(&self.link, &Request::Call(self.id, kind, op))
    }
}

impl Target {
    /// A handle on object `id` of a manager's server, held by this process
    /// while it lives.
    pub(crate) fn new(link: Link, id: u64) -> Self {
        Target::Served(Served::new(link, id))
    }

    /// The manager's object, if this is one.
    pub(crate) fn served(&self) -> Option<&Served> {
        match self {
            Target::Served(served) => Some(served),
            #[cfg(feature = "redis")]
            Target::Redis(_) => None,
        }
    }

    /// Which back-end holds the object: `"local"` or `"redis"`.
    pub(super) fn backend(&self) -> &'static str {
        match self {
            Target::Served(_) => "local",
            #[cfg(feature = "redis")]
            Target::Redis(_) => "redis",
        }
    }

    /// The fencing token of the Redis lock lease this thread holds.
    pub(super) fn token(&self) -> Option<u64> {
        match self {
            Target::Served(_) => None,
            #[cfg(feature = "redis")]
            Target::Redis(object) => object.token(),
        }
    }

    /// `Debug` of a proxy: the object's contents (a manager's), or where
    /// it lives (Redis: contents may be large, and cost a round trip).
    pub(super) fn debug(&self, kind: Kind, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        #[cfg(not(feature = "redis"))]
        let _ = name;
        match self {
            Target::Served(_) => self.display(kind, f),
            #[cfg(feature = "redis")]
            Target::Redis(object) => f
                .debug_struct(name)
                .field("backend", &"redis")
                .field("address", &object.address())
                .field("app", &object.spec().app)
                .field("name", &object.spec().name)
                .finish(),
        }
    }

    /// Appends an encoded item to a list.
    pub(super) fn append(&self, item: Blob) -> Result<()> {
        match self {
            Target::Served(served) => served.append(item),
            #[cfg(feature = "redis")]
            Target::Redis(_) => self.done(Kind::List, Op::Append(item)),
        }
    }

    pub(super) fn call(&self, kind: Kind, op: Op) -> Result<Response> {
        match self {
            Target::Served(served) => served.call(kind, op),
            #[cfg(feature = "redis")]
            Target::Redis(object) => object.call(op),
        }
    }

    /// [`call`](Self::call), awaited. On Redis, the command runs on a
    /// thread of its own (a round trip, or a wait for an unreachable
    /// server, must not hold the executor's thread); a future dropped
    /// meanwhile does not call it off.
    pub(super) async fn call_async(&self, kind: Kind, op: Op) -> Result<Response> {
        match self {
            Target::Served(served) => {
                if !served.hold.known {
                    return Err(Link::unknown(&served.link.address));
                }
                client::call_async(&served.link, &Request::Call(served.id, kind, op)).await
            }
            #[cfg(feature = "redis")]
            Target::Redis(object) => {
                let object = Arc::clone(object);
                crate::aio::off_thread("redis-call", move || object.call(op))?.await
            }
        }
    }

    pub(super) async fn done_async(&self, kind: Kind, op: Op) -> Result<()> {
        match self.call_async(kind, op).await? {
            Response::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    pub(super) async fn value_async<T: DeserializeOwned>(&self, kind: Kind, op: Op) -> Result<T> {
        match self.call_async(kind, op).await? {
            Response::Value(v) => dynval::decode(&v),
            other => Err(unexpected(&other)),
        }
    }

    pub(super) async fn maybe_async<T: DeserializeOwned>(
        &self,
        kind: Kind,
        op: Op,
    ) -> Result<Option<T>> {
        match self.call_async(kind, op).await? {
            Response::Maybe(v) => v.map(|v| dynval::decode(&v)).transpose(),
            other => Err(unexpected(&other)),
        }
    }

    pub(super) async fn count_async(&self, kind: Kind, op: Op) -> Result<usize> {
        match self.call_async(kind, op).await? {
            Response::Count(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            other => Err(unexpected(&other)),
        }
    }

    pub(super) async fn many_async<T: DeserializeOwned>(
        &self,
        kind: Kind,
        op: Op,
    ) -> Result<Vec<T>> {
        match self.call_async(kind, op).await? {
            Response::Many(vs) => vs.iter().map(|v| dynval::decode(v)).collect(),
            other => Err(unexpected(&other)),
        }
    }

    pub(super) async fn boolean_async(&self, kind: Kind, op: Op) -> Result<bool> {
        match self.call_async(kind, op).await? {
            Response::Bool(b) => Ok(b),
            other => Err(unexpected(&other)),
        }
    }

    pub(super) fn done(&self, kind: Kind, op: Op) -> Result<()> {
        match self.call(kind, op)? {
            Response::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    pub(super) fn value<T: DeserializeOwned>(&self, kind: Kind, op: Op) -> Result<T> {
        match self.call(kind, op)? {
            Response::Value(v) => dynval::decode(&v),
            other => Err(unexpected(&other)),
        }
    }

    pub(super) fn maybe<T: DeserializeOwned>(&self, kind: Kind, op: Op) -> Result<Option<T>> {
        match self.call(kind, op)? {
            Response::Maybe(v) => v.map(|v| dynval::decode(&v)).transpose(),
            other => Err(unexpected(&other)),
        }
    }

    pub(super) fn many<T: DeserializeOwned>(&self, kind: Kind, op: Op) -> Result<Vec<T>> {
        match self.call(kind, op)? {
            Response::Many(vs) => vs.iter().map(|v| dynval::decode(v)).collect(),
            other => Err(unexpected(&other)),
        }
    }

    pub(super) fn count(&self, kind: Kind, op: Op) -> Result<usize> {
        match self.call(kind, op)? {
            Response::Count(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            other => Err(unexpected(&other)),
        }
    }

    pub(super) fn boolean(&self, kind: Kind, op: Op) -> Result<bool> {
        match self.call(kind, op)? {
            Response::Bool(b) => Ok(b),
            other => Err(unexpected(&other)),
        }
    }

    pub(super) fn repr(&self, kind: Kind) -> Result<String> {
        match self.call(kind, Op::Repr)? {
            Response::Text(text) => Ok(text),
            other => Err(unexpected(&other)),
        }
    }

    /// Reads `part` with the object's version.
    pub(super) fn fetch(&self, kind: Kind, part: Part) -> Result<(u64, Option<Vec<Blob>>)> {
        match self.call(kind, Op::Fetch(part))? {
            Response::Versioned(version, slot) => Ok((version, slot)),
            other => Err(unexpected(&other)),
        }
    }

    /// An optimistic read-modify-write of `part`: reads it, lets `f` compute
    /// the new contents, stores them if nobody changed the object meanwhile,
    /// and tries again otherwise. Nothing is locked while `f` runs, so a
    /// client killed in the middle blocks nobody.
    pub(super) fn update(
        &self,
        kind: Kind,
        part: impl Fn() -> Part,
        mut f: impl FnMut(Option<Vec<Blob>>) -> Result<Option<Vec<Blob>>>,
    ) -> Result<()> {
        loop {
            let (version, slot) = self.fetch(kind, part())?;
            let new = f(slot)?;
            if self.boolean(kind, Op::CompareStore(part(), version, new))? {
                return Ok(());
            }
        }
    }

    /// [`update`](Self::update), awaited: each call of the loop awaits its
    /// answer.
    pub(super) async fn update_async(
        &self,
        kind: Kind,
        part: impl Fn() -> Part,
        mut f: impl FnMut(Option<Vec<Blob>>) -> Result<Option<Vec<Blob>>>,
    ) -> Result<()> {
        loop {
            let (version, slot) = match self.call_async(kind, Op::Fetch(part())).await? {
                Response::Versioned(version, slot) => (version, slot),
                other => return Err(unexpected(&other)),
            };
            let new = f(slot)?;
            if self.boolean_async(kind, Op::CompareStore(part(), version, new)).await? {
                return Ok(());
            }
        }
    }

    /// [`update_value`](Self::update_value), awaited.
    async fn update_value_async<V: Serialize + DeserializeOwned>(
        &self,
        kind: Kind,
        part: impl Fn() -> Part,
        missing: impl Fn() -> crate::Error,
        mut f: impl FnMut(V) -> V,
    ) -> Result<V> {
        let mut stored = None;
        self.update_async(kind, part, |slot| {
            let old = slot.and_then(|mut v| v.pop()).ok_or_else(&missing)?;
            let new = f(dynval::decode(&old)?);
            let encoded = dynval::encode(&new)?;
            stored = Some(new);
            Ok(Some(vec![encoded]))
        })
        .await?;
        stored.ok_or_else(|| crate::Error::protocol("update stored nothing"))
    }

    /// [`update`](Self::update) of one value that must exist (`missing`
    /// says which error if not): returns the value stored.
    fn update_value<V: Serialize + DeserializeOwned>(
        &self,
        kind: Kind,
        part: impl Fn() -> Part,
        missing: impl Fn() -> crate::Error,
        mut f: impl FnMut(V) -> V,
    ) -> Result<V> {
        let mut stored = None;
        self.update(kind, part, |slot| {
            let old = slot.and_then(|mut v| v.pop()).ok_or_else(&missing)?;
            let new = f(dynval::decode(&old)?);
            let encoded = dynval::encode(&new)?;
            stored = Some(new);
            Ok(Some(vec![encoded]))
        })?;
        stored.ok_or_else(|| crate::Error::protocol("update stored nothing"))
    }

    pub(super) fn display(&self, kind: Kind, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.repr(kind) {
            Ok(text) => f.write_str(&text),
            Err(e) => write!(f, "<{kind:?} proxy: {e}>"),
        }
    }
}

/// One try of an update of a whole sequence: its items as stored
/// (`slot`), changed by `f`, and their encodings to store.
pub(super) fn edit_items<T: Serialize + DeserializeOwned, S: ?Sized>(
    slot: Option<Vec<Blob>>,
    f: &mut impl FnMut(&mut S),
) -> Result<(Vec<T>, Vec<Blob>)>
where
    Vec<T>: std::borrow::BorrowMut<S>,
{
    use std::borrow::BorrowMut;
    let mut items: Vec<T> =
        slot.unwrap_or_default().iter().map(|b| dynval::decode(b)).collect::<Result<_>>()?;
    f(items.borrow_mut());
    let encoded = items.iter().map(dynval::encode).collect::<Result<_>>()?;
    Ok((items, encoded))
}

/// One try of an update of one entry that may be missing: its new value
/// (from `f`, given the stored one) and what to store (`None`: remove it).
fn edit_entry<V: Serialize + DeserializeOwned>(
    slot: Option<Vec<Blob>>,
    f: &mut impl FnMut(Option<V>) -> Option<V>,
) -> Result<(Option<V>, Option<Vec<Blob>>)> {
    let old = slot.and_then(|mut v| v.pop()).map(|v| dynval::decode(&v)).transpose()?;
    let new = f(old);
    let encoded = new.as_ref().map(|v| dynval::encode(v).map(|b| vec![b])).transpose()?;
    Ok((new, encoded))
}

/// Proxies' common face: what a manager can publish by name and look up.
pub trait Proxy: sealed::Sealed + Sized {}

#[allow(private_interfaces)]
pub(crate) mod sealed {
    use super::{Kind, Target};

    /// Keeps [`super::Proxy`] for the library's own proxies.
    pub trait Sealed {
        /// The kind of object this proxy points to.
        const KIND: Kind;
        /// The object pointed to.
        fn target(&self) -> &Target;
        /// A proxy for `target`.
        fn from_target(target: Target) -> Self;
    }
}

/// The type of proxy `P` as the server keeps it, without module paths
/// (`DictProxy<String, i64>`): what a lookup compares, and a message shows.
pub(crate) fn proxy_type<P>() -> String {
    let full = std::any::type_name::<P>();
    let mut short = String::with_capacity(full.len());
    // Where the path being read began in `short`: a `::` drops it.
    let mut path_start = 0;
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            short.truncate(path_start);
        } else {
            short.push(c);
            if !(c.is_alphanumeric() || c == '_') {
                path_start = short.len();
            }
        }
    }
    short
}

pub(super) fn python_index(i: isize) -> i64 {
    i as i64
}

fn range_bounds(range: impl RangeBounds<isize>) -> (Option<i64>, Option<i64>) {
    let start = match range.start_bound() {
        Bound::Included(&i) => Some(python_index(i)),
        Bound::Excluded(&i) => Some(python_index(i).saturating_add(1)),
        Bound::Unbounded => None,
    };
    let end = match range.end_bound() {
        Bound::Excluded(&i) => Some(python_index(i)),
        Bound::Included(&-1) | Bound::Unbounded => None,
        Bound::Included(&i) => Some(python_index(i).saturating_add(1)),
    };
    (start, end)
}

macro_rules! proxy_common {
    ($name:ident, $kind:expr) => {
        proxy_common!($name<>, $kind);
    };
    ($name:ident < $($t:ident),* >, $kind:expr) => {
        impl<$($t),*> Clone for $name<$($t),*> {
            fn clone(&self) -> Self {
                Self { target: self.target.clone(), _types: PhantomData }
            }
        }

        impl<$($t),*> PartialEq for $name<$($t),*> {
            /// Two proxies are equal when they point to the same object.
            fn eq(&self, other: &Self) -> bool {
                self.target == other.target
            }
        }

        // The sealed trait names crate-private types: nobody outside can
        // call these, which is the point.
        #[allow(private_interfaces)]
        impl<$($t),*> sealed::Sealed for $name<$($t),*> {
            const KIND: Kind = $kind;
            fn target(&self) -> &Target {
                &self.target
            }
            fn from_target(target: Target) -> Self {
                Self { target, _types: PhantomData }
            }
        }

        impl<$($t),*> Proxy for $name<$($t),*> {}

        impl<$($t),*> Serialize for $name<$($t),*> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                self.target.serialize(s)
            }
        }

        impl<'de, $($t),*> Deserialize<'de> for $name<$($t),*> {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                Ok(Self { target: Target::deserialize(d)?, _types: PhantomData })
            }
        }

        impl<$($t),*> fmt::Display for $name<$($t),*> {
            /// Python's `repr` of the object's current contents.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.target.display($kind, f)
            }
        }

        impl<$($t),*> fmt::Debug for $name<$($t),*> {
            /// A manager's object shows its contents (as `Display`); a Redis
            /// object shows its back-end, server (without password), app
            /// and name.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.target.debug($kind, stringify!($name), f)
            }
        }

        impl<$($t),*> $name<$($t),*> {
            /// Which back-end holds the object: `"local"` (a manager's
            /// server) or `"redis"` ([`Manager::connect_redis`](crate::Manager::connect_redis)).
            ///
            /// # Examples
            ///
            /// ```
            /// let m = multiproc::Manager::start()?;
            /// assert_eq!(m.namespace()?.backend(), "local");
            /// # Ok::<(), multiproc::Error>(())
            /// ```
            pub fn backend(&self) -> &'static str {
                self.target.backend()
            }
        }
    };
}

pub(super) use proxy_common;

/// A list in a manager's server (Python's `ListProxy`).
///
/// Indices are `isize`, negative ones counting from the end as in Python.
/// Every method is one request to the server, except `append`/`push` from a
/// process on the manager's machine: those write into the list's append log
/// in shared memory, which the server folds into the list before any other
/// operation on it. `update` changes the whole list atomically.
///
/// # Examples
///
/// ```
/// use multiproc::{Manager, Process};
/// use multiproc::manager::ListProxy;
///
/// fn add(records: ListProxy<(String, u32)>) {
///     records.append(("English".to_owned(), 3)).unwrap();
/// }
///
/// let manager = Manager::start()?;
/// let records = manager.list([("Computers".to_owned(), 1)])?;
/// Process::spawn(add, records.clone())?.join()?;
/// assert_eq!(records.len()?, 2);
/// assert_eq!(records.get(-1)?.0, "English");
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct ListProxy<T> {
    target: Target,
    _types: PhantomData<fn() -> T>,
}

proxy_common!(ListProxy<T>, Kind::List);

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    /// Adds `value` at the end (Python's `append`).
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`](crate::Error::ManagerGone) if the server is
    /// gone; [`Error::Encode`](crate::Error::Encode).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list::<u8>([])?;
    /// l.append(1)?;
    /// assert_eq!(l.to_vec()?, [1]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn append(&self, value: T) -> Result<()> {
        self.target.append(dynval::encode(&value)?)
    }

    /// The same as [`append`](Self::append), named as `Vec::push`.
    ///
    /// # Errors
    ///
    /// As [`append`](Self::append).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list::<u8>([])?;
    /// l.push(1)?;
    /// assert_eq!(l.len()?, 1);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn push(&self, value: T) -> Result<()> {
        self.append(value)
    }

    /// Adds every item at the end, in one request.
    ///
    /// # Errors
    ///
    /// As [`append`](Self::append).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list([1])?;
    /// l.extend([2, 3])?;
    /// assert_eq!(l.to_vec()?, [1, 2, 3]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn extend(&self, items: impl IntoIterator<Item = T>) -> Result<()> {
        let items = items.into_iter().map(|v| dynval::encode(&v)).collect::<Result<_>>()?;
        self.target.done(Kind::List, Op::Extend(items))
    }

    /// The element at `index` (negative counts from the end).
    ///
    /// # Errors
    ///
    /// [`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange);
    /// [`Error::Decode`](crate::Error::Decode) if it is not a `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list([1, 2, 3])?;
    /// assert_eq!(l.get(0)?, 1);
    /// assert_eq!(l.get(-1)?, 3);
    /// assert!(l.get(3).is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn get(&self, index: isize) -> Result<T> {
        self.target.value(Kind::List, Op::Get(python_index(index)))
    }

    /// [`append`](Self::append), awaited: the call waits for the manager's
    /// answer without holding a thread. **Cancel-safe** as every `_async`
    /// proxy call: dropped before the answer, the request may still have
    /// run in the server (as a request whose answer was lost); the
    /// connection it used is closed, and later calls open another.
    ///
    /// # Errors
    ///
    /// As [`append`](Self::append).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list::<u8>([])?;
    /// l.append_async(1).await?;
    /// assert_eq!(l.len_async().await?, 1);
    /// assert_eq!(l.get_async(0).await?, 1);
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn append_async(&self, value: T) -> Result<()> {
        let item = dynval::encode(&value)?;
        self.target.done_async(Kind::List, Op::Extend(vec![item])).await
    }

    /// [`get`](Self::get), awaited (as [`append_async`](Self::append_async)).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// See [`append_async`](Self::append_async).
    pub async fn get_async(&self, index: isize) -> Result<T> {
        self.target.value_async(Kind::List, Op::Get(python_index(index))).await
    }

    /// [`len`](Self::len), awaited (as [`append_async`](Self::append_async)).
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    ///
    /// # Examples
    ///
    /// See [`append_async`](Self::append_async).
    pub async fn len_async(&self) -> Result<usize> {
        self.target.count_async(Kind::List, Op::Len).await
    }
    /// [`extend`](Self::extend), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`extend`](Self::extend).
    ///
    /// # Examples
    ///
    /// See [`append_async`](Self::append_async).
    pub async fn extend_async(&self, items: impl IntoIterator<Item = T>) -> Result<()> {
        let items = items.into_iter().map(|v| dynval::encode(&v)).collect::<Result<_>>()?;
        self.target.done_async(Kind::List, Op::Extend(items)).await
    }

    /// [`set`](Self::set), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    ///
    /// # Examples
    ///
    /// See [`append_async`](Self::append_async).
    pub async fn set_async(&self, index: isize, value: T) -> Result<()> {
        let op = Op::Set(python_index(index), dynval::encode(&value)?);
        self.target.done_async(Kind::List, op).await
    }

    /// [`insert`](Self::insert), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    ///
    /// # Examples
    ///
    /// See [`append_async`](Self::append_async).
    pub async fn insert_async(&self, index: isize, value: T) -> Result<()> {
        let op = Op::Insert(python_index(index), dynval::encode(&value)?);
        self.target.done_async(Kind::List, op).await
    }

    /// [`pop`](Self::pop), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`pop`](Self::pop).
    ///
    /// # Examples
    ///
    /// See [`append_async`](Self::append_async).
    pub async fn pop_async(&self) -> Result<T> {
        self.target.value_async(Kind::List, Op::Pop(None)).await
    }

    /// [`pop_at`](Self::pop_at), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`pop_at`](Self::pop_at).
    ///
    /// # Examples
    ///
    /// See [`append_async`](Self::append_async).
    pub async fn pop_at_async(&self, index: isize) -> Result<T> {
        self.target.value_async(Kind::List, Op::Pop(Some(python_index(index)))).await
    }

    /// [`remove`](Self::remove), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`remove`](Self::remove).
    ///
    /// # Examples
    ///
    /// See [`append_async`](Self::append_async).
    pub async fn remove_async(&self, value: &T) -> Result<()> {
        let op = Op::Remove(dynval::encode(value)?);
        self.target.done_async(Kind::List, op).await
    }

    /// [`contains`](Self::contains), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`contains`](Self::contains).
    ///
    /// # Examples
    ///
    /// See [`append_async`](Self::append_async).
    pub async fn contains_async(&self, value: &T) -> Result<bool> {
        let op = Op::Contains(dynval::encode(value)?);
        self.target.boolean_async(Kind::List, op).await
    }

    /// [`index`](Self::index), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`index`](Self::index).
    ///
    /// # Examples
    ///
    /// See [`append_async`](Self::append_async).
    pub async fn index_async(&self, value: &T) -> Result<usize> {
        let op = Op::Index(dynval::encode(value)?);
        self.target.count_async(Kind::List, op).await
    }

    /// [`count`](Self::count), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`count`](Self::count).
    ///
    /// # Examples
    ///
    /// See [`append_async`](Self::append_async).
    pub async fn count_async(&self, value: &T) -> Result<usize> {
        let op = Op::Count(dynval::encode(value)?);
        self.target.count_async(Kind::List, op).await
    }

    /// [`clear`](Self::clear), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`clear`](Self::clear).
    ///
    /// # Examples
    ///
    /// See [`append_async`](Self::append_async).
    pub async fn clear_async(&self) -> Result<()> {
        self.target.done_async(Kind::List, Op::Clear).await
    }

    /// [`slice`](Self::slice), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`slice`](Self::slice).
    ///
    /// # Examples
    ///
    /// See [`append_async`](Self::append_async).
    pub async fn slice_async(&self, range: impl RangeBounds<isize>) -> Result<Vec<T>> {
        let (start, end) = range_bounds(range);
        self.target.many_async(Kind::List, Op::Slice(start, end)).await
    }

    /// [`to_vec`](Self::to_vec), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`to_vec`](Self::to_vec).
    ///
    /// # Examples
    ///
    /// See [`append_async`](Self::append_async).
    pub async fn to_vec_async(&self) -> Result<Vec<T>> {
        self.target.many_async(Kind::List, Op::All).await
    }

    /// Replaces the element at `index`.
    ///
    /// # Errors
    ///
    /// [`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list([1, 2, 3])?;
    /// l.set(-1, 30)?;
    /// assert_eq!(l.to_vec()?, [1, 2, 30]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn set(&self, index: isize, value: T) -> Result<()> {
        self.target.done(Kind::List, Op::Set(python_index(index), dynval::encode(&value)?))
    }

    /// Inserts before `index` (clamped to the list, as Python's `insert`).
    ///
    /// # Errors
    ///
    /// As [`append`](Self::append).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list([1, 3])?;
    /// l.insert(1, 2)?;
    /// l.insert(100, 4)?;
    /// assert_eq!(l.to_vec()?, [1, 2, 3, 4]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn insert(&self, index: isize, value: T) -> Result<()> {
        self.target.done(Kind::List, Op::Insert(python_index(index), dynval::encode(&value)?))
    }

    /// Removes and returns the last element.
    ///
    /// # Errors
    ///
    /// [`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange) if empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list([1, 2])?;
    /// assert_eq!(l.pop()?, 2);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn pop(&self) -> Result<T> {
        self.target.value(Kind::List, Op::Pop(None))
    }

    /// Removes and returns the element at `index`.
    ///
    /// # Errors
    ///
    /// [`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list([1, 2, 3])?;
    /// assert_eq!(l.pop_at(0)?, 1);
    /// assert_eq!(l.to_vec()?, [2, 3]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn pop_at(&self, index: isize) -> Result<T> {
        self.target.value(Kind::List, Op::Pop(Some(python_index(index))))
    }

    /// Removes the first element equal to `value`.
    ///
    /// # Errors
    ///
    /// [`Error::ValueNotFound`](crate::Error::ValueNotFound).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list([1, 2, 1])?;
    /// l.remove(&1)?;
    /// assert_eq!(l.to_vec()?, [2, 1]);
    /// assert!(l.remove(&7).is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn remove(&self, value: &T) -> Result<()> {
        self.target.done(Kind::List, Op::Remove(dynval::encode(value)?))
    }

    /// The number of elements.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`](crate::Error::ManagerGone).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.list([1, 2])?.len()?, 2);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn len(&self) -> Result<usize> {
        self.target.count(Kind::List, Op::Len)
    }

    /// Whether the list is empty.
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(m.list::<u8>([])?.is_empty()?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Whether an element equals `value` (Python's `in`).
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list(["a".to_owned()])?;
    /// assert!(l.contains(&"a".to_owned())?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn contains(&self, value: &T) -> Result<bool> {
        self.target.boolean(Kind::List, Op::Contains(dynval::encode(value)?))
    }

    /// The position of the first element equal to `value`.
    ///
    /// # Errors
    ///
    /// [`Error::ValueNotFound`](crate::Error::ValueNotFound).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.list([5, 6, 7])?.index(&6)?, 1);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn index(&self, value: &T) -> Result<usize> {
        self.target.count(Kind::List, Op::Index(dynval::encode(value)?))
    }

    /// How many elements equal `value`.
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.list([1, 2, 1])?.count(&1)?, 2);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn count(&self, value: &T) -> Result<usize> {
        self.target.count(Kind::List, Op::Count(dynval::encode(value)?))
    }

    /// Removes every element.
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list([1, 2])?;
    /// l.clear()?;
    /// assert!(l.is_empty()?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn clear(&self) -> Result<()> {
        self.target.done(Kind::List, Op::Clear)
    }

    /// A copy of the elements in `range`, as Python's `l[a:b]` (negative
    /// bounds count from the end; bounds outside the list are clamped).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list([0, 1, 2, 3, 4])?;
    /// assert_eq!(l.slice(1..3)?, [1, 2]);
    /// assert_eq!(l.slice(-2..)?, [3, 4]);
    /// assert_eq!(l.slice(..=-2)?, [0, 1, 2, 3]);
    /// assert_eq!(l.slice(3..100)?, [3, 4]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn slice(&self, range: impl RangeBounds<isize>) -> Result<Vec<T>> {
        let (start, end) = range_bounds(range);
        self.target.many(Kind::List, Op::Slice(start, end))
    }

    /// A copy of the whole list (Python's `l[:]`).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.list([1, 2])?.to_vec()?, [1, 2]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn to_vec(&self) -> Result<Vec<T>> {
        self.target.many(Kind::List, Op::All)
    }

    /// Sorts the list in the server, in Python's order (numbers by value,
    /// text and sequences lexicographically); stable.
    ///
    /// # Errors
    ///
    /// [`Error::Manager`](crate::Error::Manager) if two elements cannot be
    /// compared (a number and a text); the list is left unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list([3, 1, 2])?;
    /// l.sort()?;
    /// assert_eq!(l.to_vec()?, [1, 2, 3]);
    /// l.sort_descending()?;
    /// assert_eq!(l.to_vec()?, [3, 2, 1]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn sort(&self) -> Result<()> {
        self.target.done(Kind::List, Op::Sort { reverse: false })
    }

    /// Sorts in descending order (Python's `sort(reverse=True)`).
    ///
    /// # Errors
    ///
    /// As [`sort`](Self::sort).
    ///
    /// # Examples
    ///
    /// See [`sort`](Self::sort).
    pub fn sort_descending(&self) -> Result<()> {
        self.target.done(Kind::List, Op::Sort { reverse: true })
    }

    /// Changes the whole list atomically: `f` gets the current elements and
    /// changes them; if another process changed the list meanwhile, `f` runs
    /// again on the new contents. Returns the list as stored.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list([1, 2, 3])?;
    /// l.update(|v| v.retain(|x| x % 2 == 1))?;
    /// assert_eq!(l.to_vec()?, [1, 3]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn update(&self, mut f: impl FnMut(&mut Vec<T>)) -> Result<Vec<T>> {
        let mut stored = Vec::new();
        self.target.update(
            Kind::List,
            || Part::Whole,
            |slot| {
                let (items, encoded) = edit_items(slot, &mut f)?;
                stored = items;
                Ok(Some(encoded))
            },
        )?;
        Ok(stored)
    }
    /// [`update`](Self::update), awaited (cancel-safe as
    /// [`append_async`](Self::append_async): a dropped update stored
    /// nothing, or the whole new list).
    ///
    /// # Errors
    ///
    /// As [`update`](Self::update).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list([3, 1, 2])?;
    /// assert_eq!(l.update_async(|v| v.sort()).await?, [1, 2, 3]);
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn update_async(&self, mut f: impl FnMut(&mut Vec<T>)) -> Result<Vec<T>> {
        let mut stored = Vec::new();
        self.target
            .update_async(
                Kind::List,
                || Part::Whole,
                |slot| {
                    let (items, encoded) = edit_items(slot, &mut f)?;
                    stored = items;
                    Ok(Some(encoded))
                },
            )
            .await?;
        Ok(stored)
    }
}

/// A dict in a manager's server (Python's `DictProxy`), keeping insertion
/// order as Python's dicts do.
///
/// # Examples
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let d = m.dict::<String, i64>()?;
/// d.insert("a".to_owned(), 1)?;
/// assert_eq!(d.get(&"a".to_owned())?, Some(1));
/// assert_eq!(d.keys()?, ["a"]);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct DictProxy<K, V> {
    target: Target,
    _types: PhantomData<fn() -> (K, V)>,
}

proxy_common!(DictProxy<K, V>, Kind::Dict);

impl<K, V> DictProxy<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// Sets `key` to `value`; returns the value it replaces.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`](crate::Error::ManagerGone);
    /// [`Error::Encode`](crate::Error::Encode).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let d = m.dict()?;
    /// assert_eq!(d.insert(1, "one".to_owned())?, None);
    /// assert_eq!(d.insert(1, "uno".to_owned())?, Some("one".to_owned()));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>> {
        let op = Op::DictInsert(dynval::encode(&key)?, dynval::encode(&value)?);
        self.target.maybe(Kind::Dict, op)
    }

    /// The value of `key`, if any.
    ///
    /// The key may be any borrowed form of `K` that encodes as `K` does,
    /// as with [`HashMap::get`](std::collections::HashMap::get): `&str` for
    /// a `String` key, `&[T]` for a `Vec<T>` one.
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert); [`Error::Decode`](crate::Error::Decode).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let d = m.dict::<u8, u8>()?;
    /// assert_eq!(d.get(&1)?, None);
    /// let hits = m.dict::<String, u64>()?;
    /// hits.insert("home".to_owned(), 3)?;
    /// assert_eq!(hits.get("home")?, Some(3)); // a &str for a String key
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.target.maybe(Kind::Dict, Op::DictGet(dynval::encode(key)?))
    }

    /// [`insert`](Self::insert), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let m = multiproc::Manager::start()?;
    /// let d = m.dict::<String, u64>()?;
    /// d.insert_async("hits".to_owned(), 1).await?;
    /// assert_eq!(d.get_async("hits").await?, Some(1));
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn insert_async(&self, key: K, value: V) -> Result<Option<V>> {
        let op = Op::DictInsert(dynval::encode(&key)?, dynval::encode(&value)?);
        self.target.maybe_async(Kind::Dict, op).await
    }

    /// [`get`](Self::get), awaited (as [`insert_async`](Self::insert_async)).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// See [`insert_async`](Self::insert_async).
    pub async fn get_async<Q>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let op = Op::DictGet(dynval::encode(key)?);
        self.target.maybe_async(Kind::Dict, op).await
    }

    /// [`remove`](Self::remove), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`remove`](Self::remove).
    ///
    /// # Examples
    ///
    /// See [`insert_async`](Self::insert_async).
    pub async fn remove_async<Q>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let op = Op::DictRemove(dynval::encode(key)?);
        self.target.maybe_async(Kind::Dict, op).await
    }

    /// [`contains_key`](Self::contains_key), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`contains_key`](Self::contains_key).
    ///
    /// # Examples
    ///
    /// See [`insert_async`](Self::insert_async).
    pub async fn contains_key_async<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let op = Op::Contains(dynval::encode(key)?);
        self.target.boolean_async(Kind::Dict, op).await
    }

    /// [`len`](Self::len), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`len`](Self::len).
    ///
    /// # Examples
    ///
    /// See [`insert_async`](Self::insert_async).
    pub async fn len_async(&self) -> Result<usize> {
        self.target.count_async(Kind::Dict, Op::Len).await
    }

    /// [`keys`](Self::keys), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`keys`](Self::keys).
    ///
    /// # Examples
    ///
    /// See [`insert_async`](Self::insert_async).
    pub async fn keys_async(&self) -> Result<Vec<K>> {
        self.target.many_async(Kind::Dict, Op::Keys).await
    }

    /// [`values`](Self::values), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`values`](Self::values).
    ///
    /// # Examples
    ///
    /// See [`insert_async`](Self::insert_async).
    pub async fn values_async(&self) -> Result<Vec<V>> {
        self.target.many_async(Kind::Dict, Op::Values).await
    }

    /// [`setdefault`](Self::setdefault), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`setdefault`](Self::setdefault).
    ///
    /// # Examples
    ///
    /// See [`insert_async`](Self::insert_async).
    pub async fn setdefault_async(&self, key: K, default: V) -> Result<V> {
        let op = Op::SetDefault(dynval::encode(&key)?, dynval::encode(&default)?);
        self.target.value_async(Kind::Dict, op).await
    }

    /// [`clear`](Self::clear), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`clear`](Self::clear).
    ///
    /// # Examples
    ///
    /// See [`insert_async`](Self::insert_async).
    pub async fn clear_async(&self) -> Result<()> {
        self.target.done_async(Kind::Dict, Op::Clear).await
    }

    /// Removes `key`; returns its value if it was there. The key may be a
    /// borrowed form of `K`, as for [`get`](Self::get).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let d = m.dict()?;
    /// d.insert(1, 2)?;
    /// assert_eq!(d.remove(&1)?, Some(2));
    /// assert_eq!(d.remove(&1)?, None);
    /// let names = m.dict::<String, u8>()?;
    /// names.insert("a".to_owned(), 1)?;
    /// assert_eq!(names.remove("a")?, Some(1));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.target.maybe(Kind::Dict, Op::DictRemove(dynval::encode(key)?))
    }

    /// Removes `key` and returns its value (Python's `pop(key)`). The key
    /// may be a borrowed form of `K`, as for [`get`](Self::get).
    ///
    /// # Errors
    ///
    /// [`Error::KeyNotFound`](crate::Error::KeyNotFound) if it is not there.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let d = m.dict()?;
    /// d.insert(1, 2)?;
    /// assert_eq!(d.pop(&1)?, 2);
    /// assert!(matches!(d.pop(&1), Err(multiproc::Error::KeyNotFound)));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn pop<Q>(&self, key: &Q) -> Result<V>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.remove(key)?.ok_or(crate::Error::KeyNotFound)
    }

    /// Whether `key` is there (Python's `in`). The key may be a borrowed
    /// form of `K`, as for [`get`](Self::get).
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let d = m.dict()?;
    /// d.insert('k', 0)?;
    /// assert!(d.contains_key(&'k')?);
    /// let words = m.dict::<String, u8>()?;
    /// assert!(!words.contains_key("absent")?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.target.boolean(Kind::Dict, Op::Contains(dynval::encode(key)?))
    }

    /// The number of entries.
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.dict::<u8, u8>()?.len()?, 0);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn len(&self) -> Result<usize> {
        self.target.count(Kind::Dict, Op::Len)
    }

    /// Whether there are no entries.
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(m.dict::<u8, u8>()?.is_empty()?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The keys, in insertion order.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let d = m.dict()?;
    /// d.extend([(2, 'b'), (1, 'a')])?;
    /// assert_eq!(d.keys()?, [2, 1]);
    /// assert_eq!(d.values()?, ['b', 'a']);
    /// assert_eq!(d.items()?, [(2, 'b'), (1, 'a')]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn keys(&self) -> Result<Vec<K>> {
        self.target.many(Kind::Dict, Op::Keys)
    }

    /// The values, in insertion order of their keys.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// See [`keys`](Self::keys).
    pub fn values(&self) -> Result<Vec<V>> {
        self.target.many(Kind::Dict, Op::Values)
    }

    /// The entries, in insertion order.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// See [`keys`](Self::keys).
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        match self.target.call(Kind::Dict, Op::Items)? {
            Response::Pairs(pairs) => {
                pairs.iter().map(|(k, v)| Ok((dynval::decode(k)?, dynval::decode(v)?))).collect()
            }
            other => Err(unexpected(&other)),
        }
    }

    /// A snapshot of the whole dict in any collection of pairs
    /// (`HashMap`, `BTreeMap`, `Vec`...).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// let m = multiproc::Manager::start()?;
    /// let d = m.dict()?;
    /// d.insert("x".to_owned(), 1)?;
    /// let copy: HashMap<String, i32> = d.snapshot()?;
    /// assert_eq!(copy["x"], 1);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn snapshot<M: FromIterator<(K, V)>>(&self) -> Result<M> {
        Ok(self.items()?.into_iter().collect())
    }

    /// Sets every entry of `pairs`, in one request (Python's `update`).
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    ///
    /// # Examples
    ///
    /// See [`keys`](Self::keys).
    pub fn extend(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        let pairs = pairs
            .into_iter()
            .map(|(k, v)| Ok((dynval::encode(&k)?, dynval::encode(&v)?)))
            .collect::<Result<_>>()?;
        self.target.done(Kind::Dict, Op::DictExtend(pairs))
    }

    /// The value of `key`, after setting it to `default` if it was not
    /// there (Python's `setdefault`), atomically.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let d = m.dict()?;
    /// assert_eq!(d.setdefault("k".to_owned(), 1)?, 1);
    /// assert_eq!(d.setdefault("k".to_owned(), 2)?, 1);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn setdefault(&self, key: K, default: V) -> Result<V> {
        let op = Op::SetDefault(dynval::encode(&key)?, dynval::encode(&default)?);
        self.target.value(Kind::Dict, op)
    }

    /// Removes every entry.
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let d = m.dict()?;
    /// d.insert(1, 1)?;
    /// d.clear()?;
    /// assert!(d.is_empty()?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn clear(&self) -> Result<()> {
        self.target.done(Kind::Dict, Op::Clear)
    }

    /// Changes the entry of `key` atomically: `f` gets its value (`None` if
    /// absent) and returns the new one, either a value or an `Option` whose
    /// `None` removes the entry (see [`EntryUpdate`]); if another process
    /// changed the dict meanwhile, `f` runs again. Returns what was stored.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let hits = m.dict::<String, u64>()?;
    /// hits.update("page".into(), |n| n.unwrap_or(0) + 1)?;
    /// hits.update("page".into(), |n| Some(n.unwrap_or(0) + 1))?;
    /// assert_eq!(hits.get(&"page".to_owned())?, Some(2));
    /// hits.update("page".into(), |_| None)?; // removes it
    /// assert!(hits.is_empty()?);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn update<R: EntryUpdate<V>>(
        &self,
        key: K,
        mut f: impl FnMut(Option<V>) -> R,
    ) -> Result<Option<V>> {
        let key = dynval::encode(&key)?;
        let mut stored = None;
        let mut f = |old: Option<V>| f(old).into_entry();
        self.target.update(
            Kind::Dict,
            || Part::Key(key.clone()),
            |slot| {
                let (new, encoded) = edit_entry(slot, &mut f)?;
                stored = new;
                Ok(encoded)
            },
        )?;
        Ok(stored)
    }
    /// [`update`](Self::update), awaited (as
    /// [`ListProxy::update_async`]).
    ///
    /// # Errors
    ///
    /// As [`update`](Self::update).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let m = multiproc::Manager::start()?;
    /// let hits = m.dict::<String, u64>()?;
    /// hits.update_async("page".to_owned(), |n| Some(n.unwrap_or(0) + 1)).await?;
    /// assert_eq!(hits.get_async("page").await?, Some(1));
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn update_async<R: EntryUpdate<V>>(
        &self,
        key: K,
        mut f: impl FnMut(Option<V>) -> R,
    ) -> Result<Option<V>> {
        let key = dynval::encode(&key)?;
        let mut stored = None;
        let mut f = |old: Option<V>| f(old).into_entry();
        self.target
            .update_async(
                Kind::Dict,
                || Part::Key(key.clone()),
                |slot| {
                    let (new, encoded) = edit_entry(slot, &mut f)?;
                    stored = new;
                    Ok(encoded)
                },
            )
            .await?;
        Ok(stored)
    }
}

/// What a [`DictProxy::update`] closure returns: the new value, or an
/// `Option` of it whose `None` removes the entry.
///
/// # Examples
///
/// ```
/// use multiproc::manager::EntryUpdate;
/// assert_eq!(5u64.into_entry(), Some(5));
/// assert_eq!(EntryUpdate::<u64>::into_entry(None::<u64>), None);
/// ```
pub trait EntryUpdate<V> {
    /// The entry to store (`None`: none).
    fn into_entry(self) -> Option<V>;
}

impl<V> EntryUpdate<V> for V {
    fn into_entry(self) -> Option<V> {
        Some(self)
    }
}

impl<V> EntryUpdate<V> for Option<V> {
    fn into_entry(self) -> Option<V> {
        self
    }
}

/// A namespace in a manager's server (Python's `Namespace`): attributes of
/// any serde type, set and read by name. Displays as Python prints it,
/// `Namespace(x=1, y=1)`.
///
/// # Examples
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let ns = m.namespace()?;
/// ns.set("x", 1)?;
/// ns.set("name", "seed")?;
/// assert_eq!(ns.get::<i64>("x")?, 1);
/// assert_eq!(ns.to_string(), "Namespace(name='seed', x=1)");
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Namespace {
    target: Target,
    _types: PhantomData<()>,
}

proxy_common!(Namespace, Kind::Namespace);

impl Namespace {
    /// Sets attribute `name` to `value`.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`](crate::Error::ManagerGone);
    /// [`Error::Encode`](crate::Error::Encode).
    ///
    /// # Examples
    ///
    /// See [`Namespace`].
    pub fn set<V: Serialize>(&self, name: &str, value: V) -> Result<()> {
        self.target.done(Kind::Namespace, Op::SetAttr(name.to_owned(), dynval::encode(&value)?))
    }

    /// The value of attribute `name`, as a `V`.
    ///
    /// # Errors
    ///
    /// [`Error::NoAttribute`](crate::Error::NoAttribute);
    /// [`Error::Decode`](crate::Error::Decode) if it is not a `V`.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let ns = m.namespace()?;
    /// assert!(matches!(ns.get::<i64>("x"), Err(multiproc::Error::NoAttribute { .. })));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn get<V: DeserializeOwned>(&self, name: &str) -> Result<V> {
        self.target.value(Kind::Namespace, Op::GetAttr(name.to_owned()))
    }

    /// [`set`](Self::set), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let m = multiproc::Manager::start()?;
    /// let ns = m.namespace()?;
    /// ns.set_async("x", 5).await?;
    /// assert_eq!(ns.get_async::<i32>("x").await?, 5);
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn set_async<V: Serialize>(&self, name: &str, value: V) -> Result<()> {
        let op = Op::SetAttr(name.to_owned(), dynval::encode(&value)?);
        self.target.done_async(Kind::Namespace, op).await
    }

    /// [`get`](Self::get), awaited (as [`set_async`](Self::set_async)).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// See [`set_async`](Self::set_async).
    pub async fn get_async<V: DeserializeOwned>(&self, name: &str) -> Result<V> {
        self.target.value_async(Kind::Namespace, Op::GetAttr(name.to_owned())).await
    }
    /// [`delete`](Self::delete), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`delete`](Self::delete).
    ///
    /// # Examples
    ///
    /// See [`set_async`](Self::set_async).
    pub async fn delete_async(&self, name: &str) -> Result<()> {
        self.target.done_async(Kind::Namespace, Op::DelAttr(name.to_owned())).await
    }

    /// Deletes attribute `name` (Python's `del ns.name`).
    ///
    /// # Errors
    ///
    /// [`Error::NoAttribute`](crate::Error::NoAttribute).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let ns = m.namespace()?;
    /// ns.set("x", 1)?;
    /// ns.delete("x")?;
    /// assert_eq!(ns.to_string(), "Namespace()");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn delete(&self, name: &str) -> Result<()> {
        self.target.done(Kind::Namespace, Op::DelAttr(name.to_owned()))
    }

    /// Changes attribute `name` atomically (`ns.x += 5` without the race):
    /// `f` gets the current value and returns the new one; if another
    /// process changed the namespace meanwhile, `f` runs again. Returns the
    /// value stored.
    ///
    /// # Errors
    ///
    /// [`Error::NoAttribute`](crate::Error::NoAttribute) if it is not set;
    /// [`Error::Decode`](crate::Error::Decode) if it is not a `V`.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let ns = m.namespace()?;
    /// ns.set("x", 1)?;
    /// assert_eq!(ns.update("x", |x: i64| x + 5)?, 6);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn update<V: Serialize + DeserializeOwned>(
        &self,
        name: &str,
        f: impl FnMut(V) -> V,
    ) -> Result<V> {
        self.target.update_value(
            Kind::Namespace,
            || Part::Attr(name.to_owned()),
            || crate::Error::NoAttribute { name: name.to_owned() },
            f,
        )
    }

    /// [`update`](Self::update), awaited (as
    /// [`ListProxy::update_async`]).
    ///
    /// # Errors
    ///
    /// As [`update`](Self::update).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let m = multiproc::Manager::start()?;
    /// let ns = m.namespace()?;
    /// ns.set_async("x", 1).await?;
    /// assert_eq!(ns.update_async("x", |x: i64| x + 5).await?, 6);
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn update_async<V: Serialize + DeserializeOwned>(
        &self,
        name: &str,
        f: impl FnMut(V) -> V,
    ) -> Result<V> {
        self.target
            .update_value_async(
                Kind::Namespace,
                || Part::Attr(name.to_owned()),
                || crate::Error::NoAttribute { name: name.to_owned() },
                f,
            )
            .await
    }
}

/// One value in a manager's server (Python's `manager.Value`).
///
/// # Examples
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let v = m.value(1.5f64)?;
/// v.set(2.5)?;
/// assert_eq!(v.get()?, 2.5);
/// assert_eq!(v.update(|x| x * 2.0)?, 5.0);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct ValueProxy<T> {
    target: Target,
    _types: PhantomData<fn() -> T>,
}

proxy_common!(ValueProxy<T>, Kind::Value);

impl<T: Serialize + DeserializeOwned> ValueProxy<T> {
    /// The current value (Python's `.value`).
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`](crate::Error::ManagerGone);
    /// [`Error::Decode`](crate::Error::Decode).
    ///
    /// # Examples
    ///
    /// See [`ValueProxy`].
    pub fn get(&self) -> Result<T> {
        self.target.value(Kind::Value, Op::Load)
    }

    /// Replaces the value (Python's `.value = x`).
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`](crate::Error::ManagerGone);
    /// [`Error::Encode`](crate::Error::Encode).
    ///
    /// # Examples
    ///
    /// See [`ValueProxy`].
    pub fn set(&self, value: T) -> Result<()> {
        self.target.done(Kind::Value, Op::Store(dynval::encode(&value)?))
    }

    /// [`get`](Self::get), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let m = multiproc::Manager::start()?;
    /// let v = m.value(1.5f64)?;
    /// v.set_async(2.5).await?;
    /// assert_eq!(v.get_async().await?, 2.5);
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn get_async(&self) -> Result<T> {
        self.target.value_async(Kind::Value, Op::Load).await
    }

    /// [`set`](Self::set), awaited (as [`get_async`](Self::get_async)).
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    ///
    /// # Examples
    ///
    /// See [`get_async`](Self::get_async).
    pub async fn set_async(&self, value: T) -> Result<()> {
        self.target.done_async(Kind::Value, Op::Store(dynval::encode(&value)?)).await
    }

    /// Changes the value atomically: `f` gets the current value and returns
    /// the new one; if another process changed it meanwhile, `f` runs again.
    /// Returns the value stored.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// See [`ValueProxy`].
    pub fn update(&self, f: impl FnMut(T) -> T) -> Result<T> {
        self.target.update_value(Kind::Value, || Part::Whole, || crate::Error::KeyNotFound, f)
    }

    /// [`update`](Self::update), awaited (as
    /// [`ListProxy::update_async`]).
    ///
    /// # Errors
    ///
    /// As [`update`](Self::update).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let m = multiproc::Manager::start()?;
    /// let v = m.value(1u32)?;
    /// assert_eq!(v.update_async(|x| x * 10).await?, 10);
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn update_async(&self, f: impl FnMut(T) -> T) -> Result<T> {
        let (part, missing) = (|| Part::Whole, || crate::Error::KeyNotFound);
        self.target.update_value_async(Kind::Value, part, missing, f).await
    }
}

/// A proxy to an object of a user's type registered with the manager
/// (Python's proxies of `BaseManager.register`ed types).
///
/// # Examples
///
/// See [`SharedObject`](super::SharedObject).
pub struct CustomProxy<T> {
    target: Target,
    _types: PhantomData<fn() -> T>,
}

proxy_common!(CustomProxy<T>, Kind::Custom);

impl<T: super::SharedObject> CustomProxy<T> {
    /// Applies `call` to the object in the server, atomically, and returns
    /// its reply.
    ///
    /// # Errors
    ///
    /// [`Error::ManagerGone`](crate::Error::ManagerGone);
    /// [`Error::Manager`](crate::Error::Manager) if the object is of another
    /// type.
    ///
    /// # Examples
    ///
    /// See [`SharedObject`](super::SharedObject).
    pub fn call(&self, call: T::Call) -> Result<T::Reply> {
        self.target.value(Kind::Custom, Op::Invoke(dynval::encode(&call)?))
    }

    /// [`call`](Self::call), awaited (cancel-safe as
    /// [`ListProxy::append_async`]).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    ///
    /// # Examples
    ///
    /// See [`SharedObject`](super::SharedObject).
    pub async fn call_async(&self, call: T::Call) -> Result<T::Reply> {
        self.target.value_async(Kind::Custom, Op::Invoke(dynval::encode(&call)?)).await
    }
}
