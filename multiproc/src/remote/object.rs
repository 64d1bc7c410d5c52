//! The objects of a manager on Redis (dicts, lists, namespaces, values,
//! locks, events, semaphores, barriers), named: every handle, on any host,
//! that opens the same app and name shares the object.
//!
//! An object is a few keys under one hash tag, `mpm:{app:name}:*`: `meta`,
//! a hash with its kind, its proxy type, its version and the fields of the
//! synchronization objects; `data`, a hash (dict, namespace), a list or a
//! string (value); `lease`, a lock's lease. Values are the manager's CBOR
//! encodings ([`dynval`]), as the proxies make them, so that Redis objects
//! print, compare and sort as the local ones do.
//!
//! Every change runs as one Lua script that also counts the object's
//! `version` up; an update (`update` on a proxy) reads a part with the
//! version, runs the caller's closure here, and stores the result with a
//! script that refuses if the version moved (then the closure runs again):
//! the optimistic loop of `WATCH`/`MULTI`, without holding a connection
//! across the closure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{Value, cmd};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::link::{Link, Resend, bytes, reach, ring, script, wait_on_bell};
use crate::manager::dynval::{self, Blob};
use crate::manager::protocol::{Kind, Op, Part, Response, Wait};
use crate::manager::server::{bound, find, position};
use crate::{Error, Result};

/// The default lease of a lock on Redis.
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The longest a waiter blocks on an object's bell before it looks again:
/// a lock's lease that runs out rings nothing, so its next holder sees it
/// this late at most.
const BELL_SLICE: Duration = Duration::from_millis(50);

/// What a handle carries to another process, which opens the object again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Spec {
    /// The server's address, with its password.
    pub(crate) url: String,
    pub(crate) app: String,
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// The proxy's type (`DictProxy<String, u64>`), checked at open.
    pub(crate) type_name: String,
    /// How long a lock stays held by a holder that stops renewing it.
    pub(crate) lease: Duration,
    /// How long an operation keeps trying to reach an unreachable server.
    pub(crate) unreachable: Duration,
}

/// What a new object starts with (nothing, when it exists already).
#[derive(Debug, Default)]
pub(crate) struct Init {
    /// A value's initial value.
    pub(crate) value: Option<Blob>,
    /// Fields of `meta` (a semaphore's units, a barrier's parties).
    pub(crate) fields: Vec<(&'static str, String)>,
}

/// One object on Redis, as this process sees it.
pub(crate) struct RedisObject {
    pub(super) link: Arc<Link>,
    pub(super) spec: Spec,
    pub(super) meta: String,
    pub(super) data: String,
    pub(super) lease: String,
    /// A Stream of one entry, added to by every change a waiter may wait
    /// for: waiters block on it (`XREAD`) instead of sleeping.
    pub(super) bell: String,
}

impl std::fmt::Debug for RedisObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisObject")
            .field("address", &self.link.address())
            .field("app", &self.spec.app)
            .field("name", &self.spec.name)
            .finish()
    }
}

const OPEN: &str = r"
redis.call('HSETNX', KEYS[1], 'kind', ARGV[1])
redis.call('HSETNX', KEYS[1], 'type', ARGV[2])
local kind = redis.call('HGET', KEYS[1], 'kind')
local ty = redis.call('HGET', KEYS[1], 'type')
if kind ~= ARGV[1] or ty ~= ARGV[2] then return {kind, ty} end
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'NX') end
for i = 4, #ARGV, 2 do redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) end
return {kind, ty}
";

const FETCH: &str = r"
local v = redis.call('HGET', KEYS[1], 'version') or '0'
if ARGV[1] == 'list' then return {v, redis.call('LRANGE', KEYS[2], 0, -1)} end
if ARGV[1] == 'hash' then return {v, redis.call('HGET', KEYS[2], ARGV[2])} end
return {v, redis.call('GET', KEYS[2])}
";

const STORE: &str = r"
if (redis.call('HGET', KEYS[1], 'version') or '0') ~= ARGV[1] then return 0 end
if ARGV[2] == 'list' then
  redis.call('DEL', KEYS[2])
  for i = 5, #ARGV, 1000 do redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV))) end
elseif ARGV[2] == 'hash' then
  if ARGV[4] == 'del' then redis.call('HDEL', KEYS[2], ARGV[3]) else redis.call('HSET', KEYS[2], ARGV[3], ARGV[5]) end
else
  redis.call('SET', KEYS[2], ARGV[5])
end
redis.call('HINCRBY', KEYS[1], 'version', 1)
return 1
";

/// The changes that need no closure: `{1, value}` when done, `{0, len}`
/// when an index is out of range or the entry is missing.
const WRITE: &str = r"
local m, d, op = KEYS[1], KEYS[2], ARGV[1]
local r = false
if op == 'rpush' then
  for i = 2, #ARGV, 1000 do redis.call('RPUSH', d, unpack(ARGV, i, math.min(i + 999, #ARGV))) end
elseif op == 'lset' then
  local len = redis.call('LLEN', d)
  local i = tonumber(ARGV[2])
  if i < 0 then i = i + len end
  if i < 0 or i >= len then return {0, len} end
  redis.call('LSET', d, i, ARGV[3])
elseif op == 'rpop' then
  r = redis.call('RPOP', d)
  if not r then return {0, 0} end
elseif op == 'del' then
  redis.call('DEL', d)
elseif op == 'hset' then
  r = redis.call('HGET', d, ARGV[2])
  redis.call('HSET', d, ARGV[2], ARGV[3])
elseif op == 'hdel' then
  r = redis.call('HGET', d, ARGV[2])
  if not r then return {0, 0} end
  redis.call('HDEL', d, ARGV[2])
elseif op == 'hmset' then
  for i = 2, #ARGV, 1000 do redis.call('HSET', d, unpack(ARGV, i, math.min(i + 999, #ARGV))) end
elseif op == 'hsetnx' then
  if redis.call('HSETNX', d, ARGV[2], ARGV[3]) == 0 then return {1, redis.call('HGET', d, ARGV[2])} end
  r = ARGV[3]
elseif op == 'set' then
  redis.call('SET', d, ARGV[2])
end
redis.call('HINCRBY', m, 'version', 1)
return {1, r}
";

/// How a part of an object is stored.
#[derive(Clone, Copy)]
enum Shape {
    List,
    Hash,
    String,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::List => "list",
            Shape::Hash => "hash",
            Shape::String => "string",
        }
    }
}

/// An operation that Redis objects do not offer.
pub(crate) fn unsupported(kind: Kind) -> Error {
    Error::Unsupported {
        reason: match kind {
            Kind::Condition => "conditions are not available on Redis",
            Kind::Queue => "manager queues are not available on Redis: use Queue::builder().redis",
            Kind::Array => "arrays are not available on Redis: use a list",
            Kind::Custom => "registered types are not available on Redis",
            _ => "this operation is not available on Redis",
        },
    }
}

fn blob(bytes: Vec<u8>) -> Blob {
    ByteBuf::from(bytes)
}

fn blobs(items: Vec<Vec<u8>>) -> Vec<Blob> {
    items.into_iter().map(blob).collect()
}

/// A reply that is not what the script returns.
pub(super) fn unexpected(reply: &Value) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply",
        format!("{reply:?}"),
    ))
}

impl RedisObject {
    /// Opens (creating if new) object `spec.name` of `spec.app`, checking
    /// that what the name holds is an object of the same kind and proxy
    /// type.
    pub(crate) fn open(spec: Spec, init: Init) -> Result<Arc<RedisObject>> {
        let link = Link::get(&spec.url)?;
        let base = format!("mpm:{{{}:{}}}", spec.app, spec.name);
        let object = RedisObject {
            meta: format!("{base}:meta"),
            data: format!("{base}:data"),
            lease: format!("{base}:lease"),
            bell: format!("{base}:bell"),
            link,
            spec,
        };
        let kind = format!("{:?}", object.spec.kind);
        let value = init.value.map(ByteBuf::into_vec).unwrap_or_default();
        let mut args: Vec<&[u8]> =
            vec![kind.as_bytes(), object.spec.type_name.as_bytes(), value.as_slice()];
        for (field, v) in &init.fields {
            args.push(field.as_bytes());
            args.push(v.as_bytes());
        }
        let deadline = Instant::now() + object.spec.unreachable;
        let (found_kind, found_type): (String, String) =
            object.link.run(deadline, Resend::Yes, |c| {
                c.script(script(OPEN), &[&object.meta, &object.data], &args)
            })?;
        if found_kind != kind || found_type != object.spec.type_name {
            return Err(object.link.error(
                format!(
                    "{:?} of app {:?} holds a {found_type}: it cannot be opened as a {}",
                    object.spec.name, object.spec.app, object.spec.type_name
                ),
                None,
            ));
        }
        Ok(Arc::new(object))
    }

    pub(crate) fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The server's address, without its password.
    pub(crate) fn address(&self) -> &str {
        self.link.address()
    }

    /// The deadline to reach the server for a wait ending at `wait`.
    pub(super) fn reach(&self, wait: Option<Instant>) -> Instant {
        reach(wait, self.spec.unreachable)
    }

    /// Runs `op` until the handle's unreachable timeout.
    pub(super) fn run<R>(
        &self,
        resend: Resend,
        op: impl FnMut(&mut super::link::Conn) -> redis::RedisResult<R>,
    ) -> Result<R> {
        self.link.run(self.reach(None), resend, op)
    }

    /// Looks with `look` (given the deadline to reach the server) until it
    /// finds something or `wait` ends (`None`). Between looks it blocks on
    /// the object's bell, which every change a waiter may wait for rings
    /// (see [`ring`](RedisObject::ring)), for at most [`BELL_SLICE`]: a
    /// lease that runs out rings nothing.
    pub(super) fn poll<R>(
        &self,
        wait: Wait,
        look: impl FnMut(Instant) -> Result<Option<R>>,
    ) -> Result<Option<R>> {
        wait_on_bell(&self.link, &self.bell, wait.deadline(), BELL_SLICE, |u| self.reach(u), look)
    }

    /// Rings the bell (without waiting for the reply) after a change that
    /// may end a wait: a lock or units released, an event set, a barrier
    /// passed, broken or reset.
    pub(super) fn ring(&self, c: &mut super::link::Conn) {
        ring(c, &self.bell);
    }

    /// Runs `op` on the object: the manager's protocol, answered by Redis.
    pub(crate) fn call(self: &Arc<Self>, op: Op) -> Result<Response> {
        match self.spec.kind {
            Kind::List => self.list(op),
            Kind::Dict => self.dict(op),
            Kind::Namespace => self.namespace(op),
            Kind::Value => self.value(op),
            Kind::Lock | Kind::RLock => self.lock(op),
            Kind::Semaphore => self.semaphore(op),
            Kind::Event => self.event(op),
            Kind::Barrier => self.barrier(op),
            kind => Err(unsupported(kind)),
        }
    }

    fn write(&self, resend: Resend, args: &[&[u8]]) -> Result<(i64, Option<Vec<u8>>)> {
        self.run(resend, |c| {
            let reply: Value = c.script(script(WRITE), &[&self.meta, &self.data], args)?;
            match reply {
                Value::Array(parts) => {
                    let mut parts = parts.into_iter();
                    let status = match parts.next() {
                        Some(Value::Int(i)) => i,
                        other => return Err(unexpected(&other.unwrap_or(Value::Nil))),
                    };
                    let value = match parts.next() {
                        Some(Value::Int(i)) => Some(i.to_string().into_bytes()),
                        Some(v) => bytes(v),
                        None => None,
                    };
                    Ok((status, value))
                }
                other => Err(unexpected(&other)),
            }
        })
    }

    fn read<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Result<T> {
        self.run(Resend::Yes, |c| c.query(command))
    }

    fn fetch(&self, shape: Shape, field: &[u8]) -> Result<(u64, Option<Vec<Blob>>)> {
        self.run(Resend::Yes, |c| {
            let reply: Value = c.script(
                script(FETCH),
                &[&self.meta, &self.data],
                &[shape.name().as_bytes(), field],
            )?;
            let Value::Array(parts) = reply else { return Err(unexpected(&reply)) };
            let mut parts = parts.into_iter();
            let version = parts
                .next()
                .and_then(bytes)
                .and_then(|v| String::from_utf8(v).ok()?.parse::<u64>().ok())
                .ok_or_else(|| unexpected(&Value::Nil))?;
            let slot = match (shape, parts.next()) {
                (Shape::List, Some(Value::Array(items))) => {
                    Some(items.into_iter().filter_map(bytes).map(blob).collect())
                }
                (_, Some(Value::Nil) | None) => None,
                (_, Some(v)) => bytes(v).map(|b| vec![blob(b)]),
            };
            Ok((version, slot))
        })
    }

    /// Stores `new` in the part if the object is still at `version`.
    fn store(
        &self,
        shape: Shape,
        field: &[u8],
        version: u64,
        new: Option<Vec<Blob>>,
    ) -> Result<bool> {
        let version = version.to_string();
        let what: &[u8] = if new.is_some() { b"set" } else { b"del" };
        let values = new.unwrap_or_default();
        if !matches!(shape, Shape::List) && values.len() > 1 {
            return Err(Error::Manager { message: "an update stores one value".into() });
        }
        if matches!(shape, Shape::String) && values.is_empty() {
            return Err(Error::Manager { message: "a value cannot be deleted".into() });
        }
        let mut args: Vec<&[u8]> = vec![version.as_bytes(), shape.name().as_bytes(), field, what];
        args.extend(values.iter().map(|v| v.as_slice()));
        // A store whose reply was lost and that ran finds the version moved
        // when sent again: the update runs once more, as after a conflict.
        let stored: i64 =
            self.run(Resend::Yes, |c| c.script(script(STORE), &[&self.meta, &self.data], &args))?;
        Ok(stored == 1)
    }

    /// A part with the object's version, for an update.
    fn versioned(&self, shape: Shape, field: &[u8]) -> Result<Response> {
        let (version, slot) = self.fetch(shape, field)?;
        Ok(Response::Versioned(version, slot))
    }

    fn all(&self) -> Result<Vec<Blob>> {
        let mut range = cmd("LRANGE");
        range.arg(&self.data).arg(0).arg(-1);
        Ok(blobs(self.read(&range)?))
    }

    /// Changes the whole list with `f`, read and stored back unless another
    /// process changed the list meanwhile (then again).
    fn rewrite<R>(&self, mut f: impl FnMut(&mut Vec<Blob>) -> Result<R>) -> Result<R> {
        loop {
            let (version, items) = self.fetch(Shape::List, b"")?;
            let mut items = items.unwrap_or_default();
            let r = f(&mut items)?;
            if self.store(Shape::List, b"", version, Some(items))? {
                return Ok(r);
            }
        }
    }

    fn list(&self, op: Op) -> Result<Response> {
        let done = |_| Response::Done;
        match op {
            Op::Append(v) => self.write(Resend::No, &[b"rpush", &v]).map(done),
            Op::Extend(vs) if vs.is_empty() => Ok(Response::Done),
            Op::Extend(vs) => {
                let mut args: Vec<&[u8]> = vec![b"rpush"];
                args.extend(vs.iter().map(|v| v.as_slice()));
                self.write(Resend::No, &args).map(done)
            }
            Op::Get(i) => {
                let mut index = cmd("LINDEX");
                index.arg(&self.data).arg(i);
                match self.read::<Option<Vec<u8>>>(&index)? {
                    Some(v) => Ok(Response::Value(blob(v))),
                    None => {
                        let len: u64 = self.read(cmd("LLEN").arg(&self.data))?;
                        Err(Error::IndexOutOfRange { index: i, len })
                    }
                }
            }
            Op::Set(i, v) => {
                let index = i.to_string();
                match self.write(Resend::Yes, &[b"lset", index.as_bytes(), &v])? {
                    (1, _) => Ok(Response::Done),
                    (_, len) => Err(Error::IndexOutOfRange { index: i, len: count(len) }),
                }
            }
            Op::Pop(None) => match self.write(Resend::No, &[b"rpop"])? {
                (1, Some(v)) => Ok(Response::Value(blob(v))),
                _ => Err(Error::IndexOutOfRange { index: -1, len: 0 }),
            },
            Op::Pop(Some(i)) => self.rewrite(|items| match position(i, items.len()) {
                Some(p) => Ok(Response::Value(items.remove(p))),
                None => Err(Error::IndexOutOfRange { index: i, len: items.len() as u64 }),
            }),
            Op::Insert(i, v) => self.rewrite(|items| {
                let p = bound(Some(i), 0, items.len());
                items.insert(p, v.clone());
                Ok(Response::Done)
            }),
            Op::Remove(v) => self.rewrite(|items| match find(items, &v) {
                Some(p) => {
                    items.remove(p);
                    Ok(Response::Done)
                }
                None => Err(Error::ValueNotFound),
            }),
            Op::Sort { reverse } => self.rewrite(|items| {
                dynval::sort(items, reverse)?;
                Ok(Response::Done)
            }),
            Op::Len => Ok(Response::Count(self.read(cmd("LLEN").arg(&self.data))?)),
            Op::Contains(v) => Ok(Response::Bool(find(&self.all()?, &v).is_some())),
            Op::Index(v) => match find(&self.all()?, &v) {
                Some(p) => Ok(Response::Count(p as u64)),
                None => Err(Error::ValueNotFound),
            },
            Op::Count(v) => {
                let needle = dynval::Needle::new(&v);
                let n = self.all()?.iter().filter(|x| needle.matches(x)).count();
                Ok(Response::Count(n as u64))
            }
            Op::Clear => self.write(Resend::Yes, &[b"del"]).map(done),
            Op::Slice(start, end) => {
                let mut items = self.all()?;
                let len = items.len();
                let (s, e) = (bound(start, 0, len), bound(end, len, len));
                Ok(Response::Many(if s < e { items.drain(s..e).collect() } else { Vec::new() }))
            }
            Op::All => Ok(Response::Many(self.all()?)),
            Op::Repr => Ok(Response::Text(dynval::repr_list(self.all()?.iter()))),
            Op::Fetch(Part::Whole) => self.versioned(Shape::List, b""),
            Op::CompareStore(Part::Whole, version, new) => {
                Ok(Response::Bool(self.store(Shape::List, b"", version, new)?))
            }
            _ => Err(unsupported(Kind::List)),
        }
    }

    fn pairs(&self) -> Result<Vec<(Blob, Blob)>> {
        let all: Vec<(Vec<u8>, Vec<u8>)> = self.read(cmd("HGETALL").arg(&self.data))?;
        Ok(all.into_iter().map(|(k, v)| (blob(k), blob(v))).collect())
    }

    fn dict(&self, op: Op) -> Result<Response> {
        match op {
            Op::DictInsert(k, v) => {
                let (_, old) = self.write(Resend::Yes, &[b"hset", &k, &v])?;
                Ok(Response::Maybe(old.map(blob)))
            }
            Op::DictGet(k) => Ok(Response::Maybe(
                self.read::<Option<Vec<u8>>>(cmd("HGET").arg(&self.data).arg(&*k))?.map(blob),
            )),
            Op::DictRemove(k) => match self.write(Resend::No, &[b"hdel", &k])? {
                (1, old) => Ok(Response::Maybe(old.map(blob))),
                _ => Ok(Response::Maybe(None)),
            },
            Op::Contains(k) => {
                Ok(Response::Bool(self.read(cmd("HEXISTS").arg(&self.data).arg(&*k))?))
            }
            Op::Len => Ok(Response::Count(self.read(cmd("HLEN").arg(&self.data))?)),
            Op::Keys => Ok(Response::Many(blobs(self.read(cmd("HKEYS").arg(&self.data))?))),
            Op::Values => Ok(Response::Many(blobs(self.read(cmd("HVALS").arg(&self.data))?))),
            Op::Items => Ok(Response::Pairs(self.pairs()?)),
            Op::DictExtend(pairs) if pairs.is_empty() => Ok(Response::Done),
            Op::DictExtend(pairs) => {
                let mut args: Vec<&[u8]> = vec![b"hmset"];
                for (k, v) in &pairs {
                    args.push(k);
                    args.push(v);
                }
                self.write(Resend::Yes, &args).map(|_| Response::Done)
            }
            Op::SetDefault(k, v) => match self.write(Resend::Yes, &[b"hsetnx", &k, &v])? {
                (_, Some(value)) => Ok(Response::Value(blob(value))),
                (_, None) => Err(Error::protocol("setdefault found no value")),
            },
            Op::Clear => self.write(Resend::Yes, &[b"del"]).map(|_| Response::Done),
            Op::Repr => {
                let pairs = self.pairs()?;
                Ok(Response::Text(dynval::repr_dict(pairs.iter().map(|(k, v)| (k, v)))))
            }
            Op::Fetch(Part::Key(k)) => self.versioned(Shape::Hash, &k),
            Op::CompareStore(Part::Key(k), version, new) => {
                Ok(Response::Bool(self.store(Shape::Hash, &k, version, new)?))
            }
            _ => Err(unsupported(Kind::Dict)),
        }
    }

    fn namespace(&self, op: Op) -> Result<Response> {
        match op {
            Op::SetAttr(name, v) => {
                self.write(Resend::Yes, &[b"hset", name.as_bytes(), &v]).map(|_| Response::Done)
            }
            Op::GetAttr(name) => {
                match self.read::<Option<Vec<u8>>>(cmd("HGET").arg(&self.data).arg(&name))? {
                    Some(v) => Ok(Response::Value(blob(v))),
                    None => Err(Error::NoAttribute { name }),
                }
            }
            Op::DelAttr(name) => match self.write(Resend::Yes, &[b"hdel", name.as_bytes()])? {
                (1, _) => Ok(Response::Done),
                _ => Err(Error::NoAttribute { name }),
            },
            Op::Repr => {
                let attrs: Vec<(String, Blob)> = self
                    .pairs()?
                    .into_iter()
                    .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
                    .collect();
                let mut text = String::new();
                let _ = dynval::namespace_repr(&mut text, attrs.iter().map(|(k, v)| (k, v)));
                Ok(Response::Text(text))
            }
            Op::Fetch(Part::Attr(name)) => self.versioned(Shape::Hash, name.as_bytes()),
            Op::CompareStore(Part::Attr(name), version, new) => {
                Ok(Response::Bool(self.store(Shape::Hash, name.as_bytes(), version, new)?))
            }
            _ => Err(unsupported(Kind::Namespace)),
        }
    }

    fn value(&self, op: Op) -> Result<Response> {
        match op {
            Op::Load => match self.read::<Option<Vec<u8>>>(cmd("GET").arg(&self.data))? {
                Some(v) => Ok(Response::Value(blob(v))),
                None => Err(Error::KeyNotFound),
            },
            Op::Store(v) => self.write(Resend::Yes, &[b"set", &v]).map(|_| Response::Done),
            Op::Repr => {
                let v: Option<Vec<u8>> = self.read(cmd("GET").arg(&self.data))?;
                Ok(Response::Text(v.map_or_else(|| "None".to_owned(), |v| dynval::repr(&v))))
            }
            Op::Fetch(Part::Whole) => self.versioned(Shape::String, b""),
            Op::CompareStore(Part::Whole, version, new) => {
                Ok(Response::Bool(self.store(Shape::String, b"", version, new)?))
            }
            _ => Err(unsupported(Kind::Value)),
        }
    }
}

/// Deletes every key of object `name` of `app`, whatever it holds; true
/// if there was one.
pub(crate) fn delete(link: &Link, app: &str, name: &str, deadline: Instant) -> Result<bool> {
    let base = format!("mpm:{{{app}:{name}}}");
    let mut del = cmd("DEL");
    del.arg(format!("{base}:meta")).arg(format!("{base}:data")).arg(format!("{base}:lease"));
    del.arg(format!("{base}:bell"));
    let n: u64 = link.run(deadline, Resend::Yes, |c| c.query(&del))?;
    Ok(n > 0)
}

/// A length from a script's reply.
fn count(len: Option<Vec<u8>>) -> u64 {
    len.and_then(|l| String::from_utf8(l).ok()?.parse().ok()).unwrap_or(0)
}
