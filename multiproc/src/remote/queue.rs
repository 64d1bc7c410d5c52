//! Queues on Redis: a Stream with a consumer group (at-least-once) or a
//! list (at-most-once), with the queue's state in a hash beside them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::{Value, cmd};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::link::{
    DEFAULT_UNREACHABLE, Link, Resend, bytes, consumer_name, ring, script, server_block,
    stream_entries, wait_on_bell,
};
use crate::transfer::codec;
use crate::{Error, Result};

/// How a queue on Redis delivers its items when a consumer can die.
///
/// # Examples
///
/// ```
/// use multiproc::queue::Delivery;
/// assert_eq!(Delivery::default(), Delivery::AtLeastOnce);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Delivery {
    /// Every item is delivered; one whose consumer was killed between
    /// taking it from Redis and acknowledging it is delivered again, once
    /// it has been unacknowledged for the visibility timeout. A `get`
    /// acknowledges its item before it returns (a `JoinableQueue`'s item is
    /// acknowledged by `task_done`). Items live in a Redis Stream read by a
    /// consumer group.
    #[default]
    AtLeastOnce,
    /// No item is ever delivered twice; one whose consumer is killed on its
    /// way out of Redis is lost. Items live in a Redis list.
    AtMostOnce,
}

/// How long a blocking command waits on the server before the queue looks
/// again at whether it was closed.
const SLICE: Duration = Duration::from_millis(100);

/// The state of one queue on Redis, shared by a handle's clones.
pub(crate) struct RedisQueue {
    link: Arc<Link>,
    spec: Spec,
    keys: Keys,
    group: String,
    /// Entries this handle took but has not acknowledged yet (joinable
    /// queues acknowledge on `task_done`), oldest first.
    unacked: Mutex<VecDeque<String>>,
    /// When this handle last looked for entries of dead consumers: it looks
    /// at most every tenth of the visibility timeout.
    claimed: Mutex<Option<Instant>>,
}

/// What a handle carries to another process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Spec {
    pub(crate) url: String,
    pub(crate) name: String,
    pub(crate) delivery: Delivery,
    pub(crate) visibility: Duration,
    pub(crate) unreachable: Duration,
    pub(crate) maxsize: u64,
    pub(crate) joinable: bool,
    pub(crate) type_name: String,
}

impl Spec {
    pub(crate) fn new(url: &str, name: &str) -> Self {
        Spec {
            url: url.to_owned(),
            name: name.to_owned(),
            delivery: Delivery::AtLeastOnce,
            visibility: Duration::ZERO,
            unreachable: DEFAULT_UNREACHABLE,
            maxsize: 0,
            joinable: false,
            type_name: String::new(),
        }
    }
}

struct Keys {
    items: String,
    meta: String,
    unfinished: String,
    /// Rung when a bounded queue gains room or closes: blocked puts wait
    /// on it (see [`wait_on_bell`]).
    bell: String,
}

/// The default visibility timeout: how long an unacknowledged item waits
/// before it is delivered again (a queue acknowledges at once, so only a
/// killed consumer leaves one behind; a joinable queue's items stay
/// unacknowledged while they are worked on, as with Celery's `acks_late`).
pub(crate) fn default_visibility(joinable: bool) -> Duration {
    if joinable { Duration::from_secs(3600) } else { Duration::from_secs(30) }
}

const OPEN: &str = r"
local function set(field, value)
  redis.call('HSETNX', KEYS[1], field, value)
  return redis.call('HGET', KEYS[1], field)
end
local kind = set('kind', ARGV[1])
local ty = set('type', ARGV[2])
local delivery = set('delivery', ARGV[3])
local max = set('maxsize', ARGV[4])
if ARGV[3] == 'at-least-once' then
  local ok, err = pcall(redis.call, 'XGROUP', 'CREATE', KEYS[2], 'g', '0', 'MKSTREAM')
  if not ok and not string.find(tostring(err), 'BUSYGROUP') then return redis.error_reply(tostring(err)) end
end
return {kind, ty, delivery, max}
";

const PUT: &str = r"
if redis.call('HEXISTS', KEYS[2], 'closed') == 1 then return -1 end
local max = tonumber(ARGV[1])
if ARGV[3] == 'list' then
  if max > 0 and redis.call('LLEN', KEYS[1]) >= max then return 0 end
  redis.call('LPUSH', KEYS[1], ARGV[2])
else
  if max > 0 and redis.call('XLEN', KEYS[1]) >= max then return 0 end
  redis.call('XADD', KEYS[1], '*', 'v', ARGV[2])
end
if ARGV[4] == '1' then redis.call('INCR', KEYS[3]) end
return 1
";

const GET: &str = r"
if ARGV[3] == '1' then
  local cursor = redis.call('HGET', KEYS[2], 'cursor') or '0-0'
  local claimed = redis.call('XAUTOCLAIM', KEYS[1], 'g', ARGV[1], ARGV[2], cursor, 'COUNT', 1)
  redis.call('HSET', KEYS[2], 'cursor', claimed[1])
  local e = claimed[2][1]
  if e then return {e[1], e[2][2]} end
end
local ok, r = pcall(redis.call, 'XREADGROUP', 'GROUP', 'g', ARGV[1], 'COUNT', 1, 'STREAMS', KEYS[1], '>')
if not ok then
  if string.find(tostring(r), 'NOGROUP') then
    redis.call('XGROUP', 'CREATE', KEYS[1], 'g', '0', 'MKSTREAM')
    r = redis.call('XREADGROUP', 'GROUP', 'g', ARGV[1], 'COUNT', 1, 'STREAMS', KEYS[1], '>')
  else
    return redis.error_reply(tostring(r))
  end
end
if r then
  local e = r[1][2][1]
  return {e[1], e[2][2]}
end
if redis.call('HEXISTS', KEYS[2], 'closed') == 1 then return -1 end
return 0
";

/// Marks the queue closed. A stream's last id is also set to the largest
/// there is, so that a plain `XADD` (the put of an unbounded queue) fails
/// from then on, in the same step as the mark: the entries already in it
/// are still delivered.
const CLOSE: &str = r"
redis.call('HSET', KEYS[1], 'closed', 1)
if ARGV[1] == '1' then
  if redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('XGROUP', 'CREATE', KEYS[2], 'g', '0', 'MKSTREAM')
  end
  redis.call('XSETID', KEYS[2], '18446744073709551615-18446744073709551615')
end
return 1
";

/// What the server says to an `XADD` on a stream closed by [`CLOSE`].
const EXHAUSTED: &str = "exhausted the last possible ID";

/// Puts the items ARGV[5..] (as many as there is room for); returns how
/// many, or -1 if the queue is closed.
const PUT_MANY: &str = r"
if redis.call('HEXISTS', KEYS[2], 'closed') == 1 then return -1 end
local max = tonumber(ARGV[1])
local n = #ARGV - 3
if max > 0 then
  local len
  if ARGV[2] == 'list' then len = redis.call('LLEN', KEYS[1]) else len = redis.call('XLEN', KEYS[1]) end
  n = math.min(n, math.max(max - len, 0))
end
for i = 1, n do
  if ARGV[2] == 'list' then
    redis.call('LPUSH', KEYS[1], ARGV[i + 3])
  else
    redis.call('XADD', KEYS[1], '*', 'v', ARGV[i + 3])
  end
end
if ARGV[3] == '1' and n > 0 then redis.call('INCRBY', KEYS[3], n) end
return n
";

const POP: &str = r"
local v = redis.call('RPOP', KEYS[1])
if v then return {'', v} end
if redis.call('HEXISTS', KEYS[2], 'closed') == 1 then return -1 end
return 0
";

const TASK_DONE: &str = r"
local n = tonumber(redis.call('GET', KEYS[3]) or '0')
if n <= 0 then return 0 end
if ARGV[1] ~= '' then
  redis.call('XACK', KEYS[1], 'g', ARGV[1])
  redis.call('XDEL', KEYS[1], ARGV[1])
end
redis.call('DECR', KEYS[3])
return 1
";

/// What a get found.
pub(crate) enum Got {
    Item(Vec<u8>),
    Empty,
    Closed,
}

/// What a put did.
pub(crate) enum Put {
    Done,
    Full,
    Closed,
}

impl RedisQueue {
    /// Opens (creating if new) the queue `spec.name`, checking that what is
    /// stored under that name is a queue of the same type and delivery.
    pub(crate) fn open(mut spec: Spec) -> Result<Arc<RedisQueue>> {
        if spec.visibility.is_zero() {
            spec.visibility = default_visibility(spec.joinable);
        }
        let link = Link::get(&spec.url)?;
        let name = &spec.name;
        let keys = Keys {
            items: format!("mp:{{{name}}}:items"),
            meta: format!("mp:{{{name}}}:meta"),
            unfinished: format!("mp:{{{name}}}:unfinished"),
            bell: format!("mp:{{{name}}}:bell"),
        };
        let delivery = match spec.delivery {
            Delivery::AtLeastOnce => "at-least-once",
            Delivery::AtMostOnce => "at-most-once",
        };
        let kind = if spec.joinable { "joinable-queue" } else { "queue" };
        let deadline = Instant::now() + spec.unreachable;
        let maxsize = spec.maxsize.to_string();
        let stored: (String, String, String, u64) = link.run(deadline, Resend::Yes, |c| {
            c.script(
                script(OPEN),
                &[&keys.meta, &keys.items],
                &[
                    kind.as_bytes(),
                    spec.type_name.as_bytes(),
                    delivery.as_bytes(),
                    maxsize.as_bytes(),
                ],
            )
        })?;
        let (stored_kind, stored_type, stored_delivery, stored_max) = stored;
        if stored_kind != kind || stored_type != spec.type_name || stored_delivery != delivery {
            return Err(link.error(
                format!(
                    "'{name}' holds a {stored_kind} of `{stored_type}` ({stored_delivery}); \
                     this handle expects a {kind} of `{}` ({delivery})",
                    spec.type_name
                ),
                None,
            ));
        }
        spec.maxsize = stored_max;
        Ok(Arc::new(RedisQueue {
            link,
            spec,
            keys,
            group: consumer_name(),
            unacked: Mutex::default(),
            claimed: Mutex::default(),
        }))
    }

    pub(crate) fn spec(&self) -> &Spec {
        &self.spec
    }

    pub(crate) fn link(&self) -> &Link {
        &self.link
    }

    /// Encodes `item` for Redis: no file descriptor may travel across hosts.
    pub(crate) fn encode<T: Serialize + ?Sized>(&self, item: &T, max: usize) -> Result<Vec<u8>> {
        let encoded = codec::encode(item)?;
        if !encoded.fds.is_empty() {
            return Err(Error::Unsupported {
                reason: "a value carrying a local handle (a pipe, a local queue, shared memory) \
                         cannot travel through Redis",
            });
        }
        if encoded.bytes.len() > max {
            return Err(Error::FrameTooLarge { len: encoded.bytes.len() as u64, max: max as u64 });
        }
        Ok(encoded.bytes)
    }

    /// One try to put an encoded item.
    pub(crate) fn try_put(&self, bytes: &[u8], deadline: Instant) -> Result<Put> {
        let list = if self.spec.delivery == Delivery::AtMostOnce { "list" } else { "stream" };
        let max = self.spec.maxsize.to_string();
        let joinable = if self.spec.joinable { "1" } else { "0" };
        // At-least-once may put twice after a lost reply; at-most-once may not.
        let resend =
            if self.spec.delivery == Delivery::AtLeastOnce { Resend::Yes } else { Resend::No };
        if self.spec.delivery == Delivery::AtLeastOnce
            && self.spec.maxsize == 0
            && !self.spec.joinable
        {
            // No room to check and no count to keep: one plain command,
            // which a closed queue's stream refuses (see CLOSE).
            let mut add = cmd("XADD");
            add.arg(&self.keys.items).arg("*").arg("v").arg(bytes);
            return self.link.run(deadline, resend, |c| match c.query::<Value>(&add) {
                Ok(_) => Ok(Put::Done),
                Err(e) if e.to_string().contains(EXHAUSTED) => Ok(Put::Closed),
                Err(e) => Err(e),
            });
        }
        let r: i64 = self.link.run(deadline, resend, |c| {
            c.script(
                script(PUT),
                &[&self.keys.items, &self.keys.meta, &self.keys.unfinished],
                &[max.as_bytes(), bytes, list.as_bytes(), joinable.as_bytes()],
            )
        })?;
        Ok(match r {
            1 => Put::Done,
            0 => Put::Full,
            _ => Put::Closed,
        })
    }

    /// Puts an encoded item, waiting for room until `wait` (`None`: without
    /// end; a past instant: not at all). A full queue is looked at again
    /// when a take rings its bell, or every [`SLICE`].
    pub(crate) fn put(&self, bytes: &[u8], wait: Option<Instant>) -> Result<Put> {
        let done = wait_on_bell(
            &self.link,
            &self.keys.bell,
            wait,
            SLICE,
            |u| self.reach(u),
            |d| {
                Ok(match self.try_put(bytes, d)? {
                    Put::Full => None,
                    done => Some(done),
                })
            },
        )?;
        Ok(done.unwrap_or(Put::Full))
    }

    /// The deadline for reaching the server during a wait that ends at
    /// `wait` (see [`super::link::reach`]).
    fn reach(&self, wait: Option<Instant>) -> Instant {
        super::link::reach(wait, self.spec.unreachable)
    }

    /// Takes an item, waiting until `wait` (`None`: without end; a past
    /// instant: not at all).
    pub(crate) fn get(&self, wait: Option<Instant>) -> Result<Got> {
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(got) = self.get_once(wait, &mut pause)? {
                return Ok(got);
            }
        }
    }

    /// One step of [`get`](RedisQueue::get): a look, then at most one block
    /// on the server (for up to [`SLICE`]) or, at the end of a timed wait,
    /// one `pause`. `None`: nothing yet, look again.
    fn get_once(&self, wait: Option<Instant>, pause: &mut Duration) -> Result<Option<Got>> {
        match self.get_now(self.reach(wait))? {
            Got::Empty => {}
            got => return Ok(Some(got)),
        }
        if wait.is_some_and(|w| Instant::now() >= w) {
            return Ok(Some(Got::Empty));
        }
        match server_block(wait, SLICE) {
            Some(block) => {
                if let Some(item) = self.get_blocking(block, wait)? {
                    return Ok(Some(Got::Item(item)));
                }
            }
            // The end of a timed wait: the server would answer late.
            None => super::link::pause(wait, pause),
        }
        Ok(None)
    }

    /// One look at the queue, without blocking on the server.
    fn get_now(&self, deadline: Instant) -> Result<Got> {
        let keys = [self.keys.items.as_str(), self.keys.meta.as_str()];
        let min_idle = (self.spec.visibility.as_millis() as u64).to_string();
        let claim = {
            let mut last = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
            let due = last.is_none_or(|t| t.elapsed() >= self.spec.visibility / 10);
            if due {
                *last = Some(Instant::now());
            }
            if due { "1" } else { "0" }
        };
        if claim == "0" {
            // The common case in one plain command, without a script: the
            // queue's state is read only when it is empty.
            let take = match self.spec.delivery {
                Delivery::AtLeastOnce => {
                    let mut read = cmd("XREADGROUP");
                    read.arg("GROUP").arg("g").arg(&self.group).arg("COUNT").arg(1);
                    read.arg("STREAMS").arg(&self.keys.items).arg(">");
                    read
                }
                Delivery::AtMostOnce => {
                    let mut pop = cmd("RPOP");
                    pop.arg(&self.keys.items);
                    pop
                }
            };
            let got = self.link.run(deadline, Resend::Yes, |c| {
                let reply: Value = match c.query(&take) {
                    Err(e) if e.code() == Some("NOGROUP") => return Ok(None),
                    other => other?,
                };
                let item = match self.spec.delivery {
                    Delivery::AtMostOnce => {
                        let item = bytes(reply);
                        if item.is_some() {
                            self.freed(c);
                        }
                        item
                    }
                    Delivery::AtLeastOnce => match items(reply).next() {
                        Some((id, item)) => {
                            self.taken(c, id)?;
                            Some(item)
                        }
                        None => None,
                    },
                };
                Ok(Some(item.map_or(Got::Empty, Got::Item)))
            });
            match got? {
                Some(Got::Empty) => {
                    let mut closed = cmd("HEXISTS");
                    closed.arg(&self.keys.meta).arg("closed");
                    if !self.link.run(deadline, Resend::Yes, |c| c.query::<bool>(&closed))? {
                        return Ok(Got::Empty);
                    }
                    // Closed: whether it is also empty is decided by the
                    // script below, in one step.
                }
                Some(got) => return Ok(got),
                None => {} // no group (the stream was deleted): the script makes it
            }
        }
        let (src, args): (&'static str, Vec<&[u8]>) = match self.spec.delivery {
            Delivery::AtLeastOnce => {
                (GET, vec![self.group.as_bytes(), min_idle.as_bytes(), claim.as_bytes()])
            }
            Delivery::AtMostOnce => (POP, vec![]),
        };
        self.link.run(deadline, Resend::Yes, |c| {
            let reply: Value = c.script(script(src), &keys, &args)?;
            match reply {
                Value::Int(0) => Ok(Got::Empty),
                Value::Int(_) => Ok(Got::Closed),
                Value::Array(mut parts) if parts.len() == 2 => {
                    let item = bytes(parts.pop().unwrap_or(Value::Nil)).unwrap_or_default();
                    let id = bytes(parts.pop().unwrap_or(Value::Nil)).unwrap_or_default();
                    if self.spec.delivery == Delivery::AtLeastOnce {
                        self.taken(c, String::from_utf8_lossy(&id).into_owned())?;
                    } else {
                        self.freed(c);
                    }
                    Ok(Got::Item(item))
                }
                other => Err(unexpected(other)),
            }
        })
    }

    /// Blocks on the server for up to `block` for a new item.
    fn get_blocking(&self, block: Duration, wait: Option<Instant>) -> Result<Option<Vec<u8>>> {
        let ms = block.as_millis().max(1) as u64;
        match self.spec.delivery {
            Delivery::AtMostOnce => {
                let mut brpop = cmd("BRPOP");
                brpop.arg(&self.keys.items).arg(ms as f64 / 1000.0);
                self.link.run(self.reach(wait), Resend::No, |c| {
                    let r: Option<(String, Vec<u8>)> = c.query_blocking(&brpop, block)?;
                    if r.is_some() {
                        self.freed(c);
                    }
                    Ok(r.map(|(_, v)| v))
                })
            }
            Delivery::AtLeastOnce => {
                let mut read = cmd("XREADGROUP");
                read.arg("GROUP").arg("g").arg(&self.group).arg("COUNT").arg(1);
                read.arg("BLOCK").arg(ms).arg("STREAMS").arg(&self.keys.items).arg(">");
                // A read whose reply is lost leaves its entry pending: it is
                // delivered again after the visibility timeout.
                self.link.run(self.reach(wait), Resend::Yes, |c| {
                    let reply: Value = match c.query_blocking(&read, block) {
                        Err(e) if e.code() == Some("NOGROUP") => {
                            return Ok(None); // the next look makes the group again
                        }
                        other => other?,
                    };
                    let Some((id, item)) = items(reply).next() else { return Ok(None) };
                    self.taken(c, id)?;
                    Ok(Some(item))
                })
            }
        }
    }

    /// Acknowledges entry `id` now (a queue) or keeps it for `task_done`
    /// (a joinable queue).
    fn taken(&self, c: &mut super::link::Conn, id: String) -> redis::RedisResult<()> {
        if self.spec.joinable {
            self.unacked.lock().unwrap_or_else(PoisonError::into_inner).push_back(id);
            return Ok(());
        }
        c.send(&ack_pipe(&self.keys.items, &[&id]))?;
        self.freed(c);
        Ok(())
    }

    /// Rings the bell of a bounded queue after room was made (sent without
    /// waiting, after the command that made it).
    fn freed(&self, c: &mut super::link::Conn) {
        if self.spec.maxsize > 0 {
            ring(c, &self.keys.bell);
        }
    }

    /// Marks one item done: acknowledges the oldest item this handle took
    /// and has not marked yet. False if every item put is already marked.
    pub(crate) fn task_done(&self) -> Result<bool> {
        let id = self.unacked.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
        let arg = id.clone().unwrap_or_default();
        let keys =
            [self.keys.items.as_str(), self.keys.meta.as_str(), self.keys.unfinished.as_str()];
        let r: Result<i64> = self.link.run(self.reach(None), Resend::No, |c| {
            let done = c.script(script(TASK_DONE), &keys, &[arg.as_bytes()])?;
            self.freed(c);
            Ok(done)
        });
        match r {
            Ok(done) => Ok(done == 1),
            Err(e) => {
                if let Some(id) = id {
                    self.unacked.lock().unwrap_or_else(PoisonError::into_inner).push_front(id);
                }
                Err(e)
            }
        }
    }

    /// How many items were put and not yet marked done.
    /// The server is reached within a wait that ends at `wait`.
    fn unfinished_by(&self, wait: Option<Instant>) -> Result<u64> {
        let mut get = cmd("GET");
        get.arg(&self.keys.unfinished);
        self.link
            .run(self.reach(wait), Resend::Yes, |c| Ok(c.query::<Option<u64>>(&get)?.unwrap_or(0)))
    }

    /// Waits until every item put was marked done, looking again after a
    /// pause that grows from 1 ms to 50 ms; false at `wait`.
    pub(crate) fn join(&self, wait: Option<Instant>) -> Result<bool> {
        let mut pause = Duration::from_millis(1);
        loop {
            if self.unfinished_by(wait)? == 0 {
                return Ok(true);
            }
            let now = Instant::now();
            if wait.is_some_and(|w| now >= w) {
                return Ok(false);
            }
            std::thread::sleep(wait.map_or(pause, |w| pause.min(w - now)));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// The number of items in the queue (a taken item stays counted until
    /// it is acknowledged).
    pub(crate) fn len(&self) -> Result<usize> {
        let mut len = cmd(if self.spec.delivery == Delivery::AtMostOnce { "LLEN" } else { "XLEN" });
        len.arg(&self.keys.items);
        self.link.run(self.reach(None), Resend::Yes, |c| c.query(&len))
    }

    pub(crate) fn close(&self) -> Result<()> {
        let keys = [self.keys.meta.as_str(), self.keys.items.as_str()];
        let stream = if self.spec.delivery == Delivery::AtLeastOnce { "1" } else { "0" };
        self.link.run(self.reach(None), Resend::Yes, |c| {
            let closed = c.script::<i64>(script(CLOSE), &keys, &[stream.as_bytes()])?;
            self.freed(c); // blocked puts see the close at once
            Ok(closed)
        })?;
        Ok(())
    }

    pub(crate) fn is_closed(&self) -> Result<bool> {
        let mut get = cmd("HEXISTS");
        get.arg(&self.keys.meta).arg("closed");
        self.link.run(self.reach(None), Resend::Yes, |c| c.query(&get))
    }

    /// Decodes an item taken from Redis.
    pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        codec::decode(bytes, Vec::new())
    }
}

/// Deletes entries, then acknowledges them: no transaction is needed,
/// for a server that stops between the two leaves deleted entries pending,
/// which the next look for dead consumers' entries drops (`XAUTOCLAIM`
/// reports and forgets deleted entries); the other order could leave an
/// acknowledged entry in the stream for good.
fn ack_pipe(items: &str, ids: &[&str]) -> redis::Pipeline {
    let mut ack = redis::pipe();
    ack.cmd("XDEL").arg(items).arg(ids);
    ack.cmd("XACK").arg(items).arg("g").arg(ids);
    ack
}

/// Lua's `less(a, b)` for stream ids: whether id `a` comes before id `b`,
/// comparing their two parts as decimal strings (exact at any size, where
/// Lua's numbers are not). The start of the scripts that compare ids.
macro_rules! id_less {
    () => {
        r"
local function less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  local function lt(x, y)
    if #x ~= #y then return #x < #y end
    return x < y
  end
  if am ~= bm then return lt(am, bm) end
  return lt(as, bs)
end
"
    };
}

/// Acknowledges the entries ARGV[1..] (in stream order, as `XREADGROUP`
/// gives them) and removes them
/// from the stream: the entries before the oldest one still pending, or
/// before the last of these, are cut off as whole nodes (`XTRIM MINID`),
/// and only the few left after that cut are deleted one by one (`XDEL`
/// looks each entry up: 4 µs apiece, against well under 1 µs for a cut).
const ACK_MANY: &str = concat!(
    id_less!(),
    r"
redis.call('XACK', KEYS[1], 'g', unpack(ARGV))
local keep = ARGV[#ARGV]
local pending = redis.call('XPENDING', KEYS[1], 'g')
if pending[1] > 0 and less(pending[2], keep) then keep = pending[2] end
redis.call('XTRIM', KEYS[1], 'MINID', keep)
local left = {}
local i = #ARGV
while i > 0 and not less(ARGV[i], keep) do
  left[#left + 1] = ARGV[i]
  i = i - 1
end
if #left > 0 then redis.call('XDEL', KEYS[1], unpack(left)) end
return #ARGV
"
);

/// The most ids one [`ACK_MANY`] call takes: Redis's Lua unpacks at most
/// 7,999 values (`unpack` of more fails, and an acknowledgement sent
/// without waiting would fail unseen: its entries would come back).
const ACK_MANY_MOST: usize = 4000;

/// The acknowledgement of a batch of entries (see [`ACK_MANY`]), sent as
/// `EVAL` so that it can go without waiting for its reply.
fn ack_many_pipe(items: &str, ids: &[&str]) -> redis::Pipeline {
    let mut ack = redis::pipe();
    ack.cmd("EVAL").arg(ACK_MANY).arg(1).arg(items).arg(ids);
    ack
}

/// The ids and items of an `XREADGROUP` reply.
fn items(reply: Value) -> impl Iterator<Item = (String, Vec<u8>)> {
    stream_entries(reply).into_iter().filter_map(|(id, mut f)| Some((id, f.remove(&b"v"[..])?)))
}

fn unexpected(reply: Value) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply",
        format!("{reply:?}"),
    ))
}

/// Puts back an item taken for a dropped future. A closed stream (see
/// [`CLOSE`]) is opened for this one entry, then closed again: its last id
/// is set to the larger of its last entry's and the group's last delivered
/// one, so that the new entry comes after every entry delivered (and is
/// delivered in turn).
const GIVE_BACK: &str = concat!(
    id_less!(),
    r"
if ARGV[2] == 'list' then
  redis.call('RPUSH', KEYS[1], ARGV[1])
elseif not pcall(redis.call, 'XADD', KEYS[1], '*', 'v', ARGV[1]) then
  local floor = '0-1'
  local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
  if top then floor = top[1] end
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local fields = {}
    for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
    if fields['name'] == 'g' and less(floor, fields['last-delivered-id']) then
      floor = fields['last-delivered-id']
    end
  end
  redis.call('XSETID', KEYS[1], floor)
  redis.call('XADD', KEYS[1], '*', 'v', ARGV[1])
  redis.call('XSETID', KEYS[1], '18446744073709551615-18446744073709551615')
end
return 1
"
);

impl RedisQueue {
    /// Puts back an item this handle took for a future that was dropped
    /// before it saw it: at the consumers' end of an at-most-once queue (it
    /// is the next taken), at the end of an at-least-once one. A joinable
    /// queue's count does not change; the taken entry is acknowledged.
    fn give_back(&self, bytes: &[u8]) {
        let kind = if self.spec.delivery == Delivery::AtMostOnce { "list" } else { "stream" };
        let keys = [self.keys.items.as_str()];
        let r = self.link.run(self.reach(None), Resend::Yes, |c| {
            c.script::<i64>(script(GIVE_BACK), &keys, &[bytes, kind.as_bytes()])
        });
        if let Err(e) = r {
            log::warn!("a Redis queue item taken for a dropped future is lost: {e}");
            return;
        }
        if self.spec.joinable {
            let id = self.unacked.lock().unwrap_or_else(PoisonError::into_inner).pop_back();
            if let Some(id) = id {
                let ack = ack_pipe(&self.keys.items, &[&id]);
                let _ = self.link.run(self.reach(None), Resend::Yes, |c| c.send(&ack));
            }
        }
    }

    /// [`get`](RedisQueue::get) awaited: the wait runs on a thread of its
    /// own, which looks whether the future was dropped between blocks on
    /// the server (at most 200 ms apart: a block of 100 ms, which the server
    /// may end on its next 100 ms tick). An item taken for a future dropped
    /// meanwhile is given back.
    pub(crate) async fn get_async(self: Arc<Self>, wait: Option<Instant>) -> Result<Got> {
        let q = Arc::clone(&self);
        let mut pause = Duration::from_millis(1);
        let step = move || q.get_once(wait, &mut pause).transpose();
        let orphan = move |got: Result<Got>| {
            if let Ok(Got::Item(bytes)) = got {
                self.give_back(&bytes);
            }
        };
        on_thread("multiproc-redis-get", step, orphan).await?
    }

    /// [`join`](RedisQueue::join) awaited on a thread of its own, which
    /// ends within 50 ms of the future being dropped.
    pub(crate) async fn join_async(self: Arc<Self>) -> Result<()> {
        let step = move || match self.join(Some(Instant::now() + Duration::from_millis(50))) {
            Ok(false) => None,
            Ok(true) => Some(Ok(())),
            Err(e) => Some(Err(e)),
        };
        on_thread("multiproc-redis-join", step, drop).await?
    }
}

/// Runs `step` on a thread of its own until it gives a value or the future
/// is dropped (looked at between steps); a value that comes for a dropped
/// future goes to `orphan`.
async fn on_thread<T: Send + 'static>(
    name: &str,
    mut step: impl FnMut() -> Option<T> + Send + 'static,
    orphan: impl Fn(T) + Send + Sync + 'static,
) -> Result<T> {
    let slot = Arc::new(Mutex::new(Slot::<T>::default()));
    let orphan: Arc<dyn Fn(T) + Send + Sync> = Arc::new(orphan);
    let (mine, theirs) = (Arc::clone(&slot), Arc::clone(&orphan));
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let value = loop {
                if mine.lock().unwrap_or_else(PoisonError::into_inner).dropped {
                    return;
                }
                if let Some(value) = step() {
                    break value;
                }
            };
            let mut s = mine.lock().unwrap_or_else(PoisonError::into_inner);
            if s.dropped {
                drop(s);
                theirs(value);
                return;
            }
            s.value = Some(value);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        })
        .map_err(Error::os("start a thread"))?;
    // Dropped after the value was seen, it finds nothing to hand over.
    let _dropped = Dropped { slot: Arc::clone(&slot), orphan };
    Ok(std::future::poll_fn(|cx| {
        let mut s = slot.lock().unwrap_or_else(PoisonError::into_inner);
        match s.value.take() {
            Some(v) => std::task::Poll::Ready(v),
            None => {
                s.waker = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        }
    })
    .await)
}

/// Where a waiting thread leaves its result for the future.
struct Slot<T> {
    value: Option<T>,
    waker: Option<std::task::Waker>,
    dropped: bool,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot { value: None, waker: None, dropped: false }
    }
}

/// Marks a slot dropped when its future is; hands a value that arrived
/// but was not seen to the orphan handler.
struct Dropped<T> {
    slot: Arc<Mutex<Slot<T>>>,
    orphan: Arc<dyn Fn(T) + Send + Sync>,
}

impl<T> Drop for Dropped<T> {
    fn drop(&mut self) {
        let left = {
            let mut s = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            s.dropped = true;
            s.value.take()
        };
        if let Some(value) = left {
            (self.orphan)(value);
        }
    }
}

impl RedisQueue {
    /// Puts encoded items in one round trip (a pipeline of puts, in order);
    /// how many went in before the queue was full or closed.
    pub(crate) fn put_batch(&self, items: &[Vec<u8>]) -> Result<(usize, Put)> {
        let list = if self.spec.delivery == Delivery::AtMostOnce { "list" } else { "stream" };
        let max = self.spec.maxsize.to_string();
        let joinable = if self.spec.joinable { "1" } else { "0" };
        let mut args: Vec<&[u8]> = vec![max.as_bytes(), list.as_bytes(), joinable.as_bytes()];
        args.extend(items.iter().map(Vec::as_slice));
        let keys =
            [self.keys.items.as_str(), self.keys.meta.as_str(), self.keys.unfinished.as_str()];
        let resend =
            if self.spec.delivery == Delivery::AtLeastOnce { Resend::Yes } else { Resend::No };
        let n: i64 = self
            .link
            .run(self.reach(None), resend, |c| c.script(script(PUT_MANY), &keys, &args))?;
        Ok(match usize::try_from(n) {
            Err(_) => (0, Put::Closed),
            Ok(n) if n < items.len() => (n, Put::Full),
            Ok(n) => (n, Put::Done),
        })
    }

    /// Takes up to `max` items that are there now, in one round trip, or
    /// `None` when none are there or this handle is due to look for dead
    /// consumers' entries first (then [`get`](RedisQueue::get) takes the
    /// first item).
    pub(crate) fn take_now(
        &self,
        max: usize,
        wait: Option<Instant>,
    ) -> Result<Option<Vec<Vec<u8>>>> {
        let due = self
            .claimed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none_or(|t| t.elapsed() >= self.spec.visibility / 10);
        if due {
            return Ok(None);
        }
        let batch = self.take_more(max, wait)?;
        Ok(if batch.is_empty() { None } else { Some(batch) })
    }

    /// Takes up to `max` more items that are there now (after a first one
    /// taken by [`get`](RedisQueue::get)), acknowledging them as `get` does.
    pub(crate) fn take_more(&self, max: usize, wait: Option<Instant>) -> Result<Vec<Vec<u8>>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        match self.spec.delivery {
            Delivery::AtMostOnce => {
                let mut pop = cmd("RPOP");
                pop.arg(&self.keys.items).arg(max);
                self.link.run(self.reach(wait), Resend::No, |c| {
                    let batch = c.query::<Option<Vec<Vec<u8>>>>(&pop)?.unwrap_or_default();
                    if !batch.is_empty() {
                        self.freed(c);
                    }
                    Ok(batch)
                })
            }
            Delivery::AtLeastOnce => {
                let mut read = cmd("XREADGROUP");
                read.arg("GROUP").arg("g").arg(&self.group).arg("COUNT").arg(max);
                read.arg("STREAMS").arg(&self.keys.items).arg(">");
                self.link.run(self.reach(wait), Resend::Yes, |c| {
                    let reply: Value = match c.query(&read) {
                        // The stream was deleted: the next `get` makes it again.
                        Err(e) if e.code() == Some("NOGROUP") => return Ok(Vec::new()),
                        other => other?,
                    };
                    let entries: Vec<(String, Vec<u8>)> = items(reply).collect();
                    if entries.is_empty() {
                        return Ok(Vec::new());
                    }
                    if self.spec.joinable {
                        let mut unacked =
                            self.unacked.lock().unwrap_or_else(PoisonError::into_inner);
                        unacked.extend(entries.iter().map(|(id, _)| id.clone()));
                    } else {
                        let ids: Vec<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
                        let ack = if ids.len() > 1 { ack_many_pipe } else { ack_pipe };
                        for ids in ids.chunks(ACK_MANY_MOST) {
                            c.send(&ack(&self.keys.items, ids))?;
                        }
                        self.freed(c);
                    }
                    Ok(entries.into_iter().map(|(_, v)| v).collect())
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::RedisServer;

    /// An unbounded at-least-once queue puts with a plain `XADD`, which
    /// `close` makes fail; an item given back after the close is kept.
    #[test]
    fn a_closed_stream_refuses_puts_but_takes_back_what_was_taken() -> Result<()> {
        let server = RedisServer::start()?;
        let q = RedisQueue::open(Spec::new(&server.url(), "closing"))?;
        let soon = || Instant::now() + Duration::from_secs(5);
        assert!(matches!(q.try_put(b"a", soon())?, Put::Done));
        assert!(matches!(q.try_put(b"b", soon())?, Put::Done));
        q.close()?;
        assert!(matches!(q.try_put(b"c", soon())?, Put::Closed));
        let Got::Item(first) = q.get(Some(soon()))? else { panic!("the first item is kept") };
        assert_eq!(first, b"a");
        q.give_back(&first);
        assert!(matches!(q.try_put(b"d", soon())?, Put::Closed), "closed again after");
        let mut rest = Vec::new();
        while let Got::Item(item) = q.get(Some(soon()))? {
            rest.push(item);
        }
        assert_eq!(rest, [b"b".to_vec(), b"a".to_vec()]);
        assert!(matches!(q.get(Some(soon()))?, Got::Closed));
        // Every entry taken and deleted: the stream's last entry is gone, so
        // the id given back must still come after the last one delivered.
        q.give_back(b"again");
        let Got::Item(again) = q.get(Some(soon()))? else { panic!("given back, delivered") };
        assert_eq!(again, b"again");
        assert!(matches!(q.get(Some(soon()))?, Got::Closed));
        Ok(())
    }
}
