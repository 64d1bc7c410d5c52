//! Connections to one Redis server: a pool per process, retries with
//! backoff until a deadline, replies read later, and errors that name the
//! server without its password.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use redis::{Cmd, FromRedisValue, RedisError, Value};

use super::wire::Wire;
use crate::{Error, Result};

/// How long one command may take on a live connection before the server is
/// taken for gone (blocking commands add their own block time).
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an operation without a timeout of its own keeps trying to reach
/// an unreachable server before it fails with [`Error::Backend`].
pub(crate) const DEFAULT_UNREACHABLE: Duration = Duration::from_secs(10);

/// One server, as every handle of this process built on the same address
/// sees it: the client and its idle connections.
pub(crate) struct Link {
    client: redis::Client,
    url: String,
    address: String,
    idle: Mutex<Vec<Conn>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.address)
    }
}

/// Whether an operation may be sent again after a failure that may have
/// come after the server received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resend {
    /// Sending it twice is harmless, or acceptable (at-least-once).
    Yes,
    /// Only if it surely never reached the server (the connection failed).
    No,
}

impl Link {
    /// The process's link to `url`, made on first use.
    pub(crate) fn get(url: &str) -> Result<Arc<Link>> {
        static LINKS: OnceLock<Mutex<Vec<Arc<Link>>>> = OnceLock::new();
        let links = LINKS.get_or_init(Mutex::default);
        let mut links = links.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(link) = links.iter().find(|l| l.url == url) {
            return Ok(Arc::clone(link));
        }
        let address = redact(url);
        let invalid = |e: RedisError| Error::Backend {
            address: address.clone(),
            detail: "not a valid Redis address".to_owned(),
            source: Some(e.into()),
        };
        // No Nagle delay: an acknowledgement sent without waiting must not
        // hold up the next command behind it.
        let info = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(invalid)?
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info).map_err(invalid)?;
        let link = Arc::new(Link { client, url: url.to_owned(), address, idle: Mutex::default() });
        links.push(Arc::clone(&link));
        Ok(link)
    }

    /// The address without its password.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// An error about this server.
    pub(crate) fn error(&self, detail: impl Into<String>, source: Option<RedisError>) -> Error {
        Error::Backend {
            address: self.address.clone(),
            detail: detail.into(),
            source: source.map(Into::into),
        }
    }

    /// Runs `op` on a connection of the pool, connecting (again) and
    /// retrying with backoff while the server cannot be reached, until
    /// `deadline`. A failure after the command may have reached the server
    /// is retried only if `resend` allows. Server errors are returned at
    /// once, as [`Error::Backend`].
    pub(crate) fn run<R>(
        &self,
        deadline: Instant,
        resend: Resend,
        mut op: impl FnMut(&mut Conn) -> redis::RedisResult<R>,
    ) -> Result<R> {
        let mut backoff = Duration::from_millis(5);
        loop {
            let mut conn = match self.take(deadline) {
                Ok(conn) => conn,
                Err(e) => {
                    if !self.pause(deadline, &mut backoff) {
                        return Err(self.error("cannot reach the server", Some(e)));
                    }
                    continue;
                }
            };
            conn.deadline = deadline;
            match op(&mut conn) {
                Ok(r) => {
                    self.put_back(conn);
                    return Ok(r);
                }
                Err(e) if is_lost(&e) => {
                    drop(conn);
                    // The idle ones are likely as dead (the server went
                    // away or restarted): the next attempt connects anew.
                    self.idle.lock().unwrap_or_else(PoisonError::into_inner).clear();
                    if resend == Resend::No {
                        return Err(self.error("the connection failed during a command", Some(e)));
                    }
                    if !self.pause(deadline, &mut backoff) {
                        return Err(self.error("lost the server", Some(e)));
                    }
                }
                Err(e) => {
                    // The connection is still in step: its reply was read.
                    self.put_back(conn);
                    return Err(self.error("the server refused a command", Some(e)));
                }
            }
        }
    }

    /// Sleeps for the backoff (doubling it, at most 250 ms) unless that
    /// would pass `deadline`; false if the deadline has come.
    fn pause(&self, deadline: Instant, backoff: &mut Duration) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep((*backoff).min(deadline - now));
        *backoff = (*backoff * 2).min(Duration::from_millis(250));
        true
    }

    /// An idle connection made by this process, or a new one.
    fn take(&self, deadline: Instant) -> redis::RedisResult<Conn> {
        let pid = std::process::id();
        loop {
            let conn = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            match conn {
                // A connection inherited through fork is the parent's: its
                // socket is shared with it, so the child only closes its copy.
                Some(conn) if conn.pid != pid => drop(conn),
                Some(conn) => return Ok(conn),
                None => break,
            }
        }
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(10), Duration::from_secs(2));
        let mut con = self.client.get_connection_with_timeout(wait)?;
        con.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        // The crate leaves no read timeout after its handshake: a server
        // that stops answering must not hold the search for the socket.
        con.set_read_timeout(Some(wait))?;
        let wire = Wire::find(&mut con, self.client.get_connection_info())?;
        // `read_timeout: None`: the first command sets its own.
        Ok(Conn { con, wire, pid, unread: 0, read_timeout: None, deadline, broken: false })
    }

    fn put_back(&self, conn: Conn) {
        if conn.broken {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < 64 {
            idle.push(conn);
        }
    }
}

/// Whether `e` means the connection is gone or out of step (so it must be
/// dropped), rather than a reply the server gave.
fn is_lost(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

/// One connection, with replies still to read for commands sent without
/// waiting (acknowledgements).
pub(crate) struct Conn {
    con: redis::Connection,
    /// Its socket, read directly (plain TCP): see [`Wire`].
    wire: Option<Wire>,
    pid: u32,
    unread: usize,
    read_timeout: Option<Duration>,
    /// The deadline of the operation using it: no read waits past it by
    /// more than [`READ_SLACK`].
    deadline: Instant,
    /// A send failed: the connection may be out of step and is dropped.
    broken: bool,
}

/// How long past its operation's deadline a read may wait for the reply
/// of a command that does not block on the server.
const READ_SLACK: Duration = Duration::from_millis(50);
/// The same for a blocking command: the server answers its timeout only
/// at its next timer tick (100 ms apart by default), and a read that gave
/// up first would make a timed-out wait look like a lost server.
const BLOCKED_READ_SLACK: Duration = Duration::from_millis(300);

impl Conn {
    /// Reads the replies of commands sent earlier with [`send`](Conn::send).
    /// Their server errors are dropped (they were best-effort cleanups);
    /// a lost connection is reported.
    fn drain(&mut self) -> redis::RedisResult<()> {
        while self.unread > 0 {
            match self.recv(true) {
                Ok(_) => {}
                Err(e) if is_lost(&e) => return Err(e),
                Err(_) => {}
            }
            self.unread -= 1;
        }
        Ok(())
    }

    /// Sets the read timeout for a command that the server may hold for
    /// `block`: the command timeout plus `block`, but no later than the
    /// operation's deadline plus its slack, so that a server that stopped
    /// answering cannot hold a `try_` or `_timeout` call for the whole
    /// command timeout.
    fn timeout(&mut self, block: Duration) -> redis::RedisResult<()> {
        let slack = if block.is_zero() { READ_SLACK } else { BLOCKED_READ_SLACK };
        let left = self.deadline.saturating_duration_since(Instant::now()) + slack;
        let t = (COMMAND_TIMEOUT + block).min(left);
        if self.read_timeout != Some(t) {
            self.con.set_read_timeout(Some(t))?;
            self.read_timeout = Some(t);
        }
        Ok(())
    }

    /// Sends `cmd` and returns its reply.
    pub(crate) fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> redis::RedisResult<T> {
        self.query_blocking(cmd, Duration::ZERO)
    }

    /// As [`query`](Conn::query) for a command that the server may hold for
    /// up to `block`. The command goes out before the replies still owed
    /// for earlier sends are read: those cost no round trip of their own.
    pub(crate) fn query_blocking<T: FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        block: Duration,
    ) -> redis::RedisResult<T> {
        self.timeout(block)?;
        self.con.send_packed_command(&cmd.get_packed_command())?;
        self.drain()?;
        Ok(redis::from_redis_value(self.recv(block.is_zero())?.extract_error()?)?)
    }

    /// The next reply; `prompt` for a command the server answers at once,
    /// whose reply is looked for before the read sleeps.
    fn recv(&mut self, prompt: bool) -> redis::RedisResult<Value> {
        match &mut self.wire {
            Some(wire) => wire.recv(prompt),
            None => self.con.recv_response(),
        }
    }

    /// Whether replies are read from the socket directly.
    #[cfg(test)]
    pub(crate) fn direct(&self) -> bool {
        self.wire.is_some()
    }

    /// Runs a script (by its digest, loading it if the server lacks it).
    pub(crate) fn script<T: FromRedisValue>(
        &mut self,
        script: &redis::Script,
        keys: &[&str],
        args: &[&[u8]],
    ) -> redis::RedisResult<T> {
        let mut call = redis::cmd("EVALSHA");
        call.arg(script.get_hash()).arg(keys.len()).arg(keys).arg(args);
        match self.query(&call) {
            Err(e) if e.code() == Some("NOSCRIPT") => {
                let mut load = redis::cmd("SCRIPT");
                load.arg("LOAD").arg(script_source(script));
                self.query::<()>(&load)?;
                self.query(&call)
            }
            done => done,
        }
    }

    /// Sends the commands of `pipe` without waiting for their replies, which
    /// the next command on this connection reads first. Once this returns,
    /// the commands are in the kernel's hands: they reach the server even if
    /// this process is killed at once.
    pub(crate) fn send(&mut self, pipe: &redis::Pipeline) -> redis::RedisResult<()> {
        let sent =
            self.drain().and_then(|()| self.con.send_packed_command(&pipe.get_packed_pipeline()));
        if let Err(e) = sent {
            // Perhaps half written: never used again, even if the caller
            // goes on without it.
            self.broken = true;
            return Err(e);
        }
        // One reply per command; an atomic pipeline's are OK, one QUEUED per
        // command, then EXEC's.
        self.unread += pipe.cmd_iter().count() + if pipe.is_transaction() { 2 } else { 0 };
        Ok(())
    }
}

static SCRIPTS: OnceLock<Mutex<Vec<(&'static str, &'static redis::Script)>>> = OnceLock::new();

/// The source of a script made by [`script`].
fn script_source(made: &redis::Script) -> &'static str {
    let all = SCRIPTS.get_or_init(Mutex::default).lock().unwrap_or_else(PoisonError::into_inner);
    all.iter().find(|(_, s)| std::ptr::eq(*s, made)).map_or("", |(src, _)| src)
}

/// The script of source `src`, made once per process (its digest is
/// computed once; the server loads it on first use).
pub(crate) fn script(src: &'static str) -> &'static redis::Script {
    let mut all =
        SCRIPTS.get_or_init(Mutex::default).lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, s)) = all.iter().find(|(k, _)| std::ptr::eq(*k, src)) {
        return s;
    }
    let s: &'static redis::Script = Box::leak(Box::new(redis::Script::new(src)));
    all.push((src, s));
    s
}

/// How late a server may answer the timeout of a blocking command: it
/// looks at blocked clients' timeouts on its timer, ten times a second by
/// default (`hz 10`), so `BLOCK 10` answers after up to 100 ms.
const SERVER_TICK: Duration = Duration::from_millis(110);

/// How long a blocking command may block on the server within a wait that
/// ends at `until` (`None`: never), at most `slice`: short enough that its
/// answer comes by `until` even when the server is a tick late. `None` when
/// the wait is too short for that: look again after a pause instead (see
/// [`pause`]).
pub(crate) fn server_block(until: Option<Instant>, slice: Duration) -> Option<Duration> {
    let Some(until) = until else { return Some(slice) };
    let left = until.saturating_duration_since(Instant::now());
    let block = left.checked_sub(SERVER_TICK)?.min(slice);
    (block >= Duration::from_millis(1)).then_some(block)
}

/// Sleeps before the next look of a wait that ends at `until`: `pause`,
/// which grows from 1 ms to 10 ms, cut short by `until`.
pub(crate) fn pause(until: Option<Instant>, pause: &mut Duration) {
    let left = until.map_or(*pause, |u| u.saturating_duration_since(Instant::now()));
    std::thread::sleep((*pause).min(left));
    *pause = (*pause * 2).min(Duration::from_millis(10));
}

/// Looks with `look` (given the deadline to reach the server) until it
/// finds something or `until` passes (`None`: never), blocking on `bell`
/// between looks for at most `slice`. A bell is a Stream of one entry that
/// every change a waiter may wait for adds to ([`ring`]); the waiter reads
/// its last ring before it looks again, then blocks from there, so a
/// change made after that look wakes it at once. Near `until` it pauses
/// instead (see [`server_block`]). `reach` gives the deadline to reach the
/// server during a wait that ends at `until`.
pub(crate) fn wait_on_bell<R>(
    link: &Link,
    bell: &str,
    until: Option<Instant>,
    slice: Duration,
    reach: impl Fn(Option<Instant>) -> Instant,
    mut look: impl FnMut(Instant) -> Result<Option<R>>,
) -> Result<Option<R>> {
    if let Some(found) = look(reach(until))? {
        return Ok(Some(found));
    }
    let mut pauses = Duration::from_millis(1);
    loop {
        if until.is_some_and(|u| Instant::now() >= u) {
            return Ok(None);
        }
        let mut last = redis::cmd("XREVRANGE");
        last.arg(bell).arg("+").arg("-").arg("COUNT").arg(1);
        let rung: Value = link.run(reach(until), Resend::Yes, |c| c.query(&last))?;
        let seen = last_id(rung).unwrap_or_else(|| "0-0".to_owned());
        if let Some(found) = look(reach(until))? {
            return Ok(Some(found));
        }
        match server_block(until, slice) {
            Some(block) => {
                let mut read = redis::cmd("XREAD");
                read.arg("BLOCK").arg(block.as_millis() as u64);
                read.arg("STREAMS").arg(bell).arg(&seen);
                link.run(reach(until), Resend::Yes, |c| c.query_blocking::<Value>(&read, block))?;
            }
            // The end of a timed wait: the server would answer late.
            None => pause(until, &mut pauses),
        }
    }
}

/// Rings `bell` (see [`wait_on_bell`]) without waiting for the reply. A
/// ring that cannot be sent is left out: waiters look again within their
/// slice, and the connection is dropped (its send failed).
pub(crate) fn ring(c: &mut Conn, bell: &str) {
    let mut ring = redis::pipe();
    ring.cmd("XADD").arg(bell).arg("MAXLEN").arg(1).arg("*").arg("r").arg(1);
    let _ = c.send(&ring);
}

/// The id of the entry of an `XREVRANGE ... COUNT 1` reply.
fn last_id(reply: Value) -> Option<String> {
    let Value::Array(entries) = reply else { return None };
    let Value::Array(entry) = entries.into_iter().next()? else { return None };
    String::from_utf8(bytes(entry.into_iter().next()?)?).ok()
}

/// The deadline for reaching the server during a wait that ends at `wait`
/// (`None`: never): the wait's own, but at least a moment from now, and at
/// most `unreachable` from now.
pub(crate) fn reach(wait: Option<Instant>, unreachable: Duration) -> Instant {
    let now = Instant::now();
    let moment = now + Duration::from_millis(20);
    let limit = (now + unreachable).max(moment);
    wait.map_or(limit, |w| w.clamp(moment, limit))
}

/// A stream entry's fields by name.
pub(crate) type Fields = std::collections::HashMap<Vec<u8>, Vec<u8>>;

/// A flat `[field, value, ...]` list as [`Fields`].
pub(crate) fn fields(list: Value) -> Fields {
    let mut map = Fields::new();
    if let Value::Array(list) = list {
        let mut it = list.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            if let (Some(k), Some(v)) = (bytes(k), bytes(v)) {
                map.insert(k, v);
            }
        }
    }
    map
}

/// The entries of an `XREAD` or `XREADGROUP` reply, in order: each id with
/// its fields. Malformed parts are left out.
pub(crate) fn stream_entries(reply: Value) -> Vec<(String, Fields)> {
    let mut out = Vec::new();
    let Value::Array(streams) = reply else { return out };
    for stream in streams {
        let Value::Array(mut parts) = stream else { continue };
        let Some(Value::Array(entries)) = parts.pop() else { continue };
        for entry in entries {
            let Value::Array(entry) = entry else { continue };
            let mut entry = entry.into_iter();
            let (Some(id), Some(list)) = (entry.next(), entry.next()) else { continue };
            if let Some(id) = bytes(id).and_then(|b| String::from_utf8(b).ok()) {
                out.push((id, fields(list)));
            }
        }
    }
    out
}

/// `value` as bytes, if it is a bulk string.
pub(crate) fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

/// `url` without its password: `redis://user:secret@host/0` becomes
/// `redis://user@host/0`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if user.is_empty() {
                format!("{scheme}://{host}{path}")
            } else {
                format!("{scheme}://{user}@{host}{path}")
            }
        }
        None => url.to_owned(),
    }
}

/// A name for this process's consumers that no other process, on this host
/// or another, uses: host, pid and a random part.
pub(crate) fn consumer_name() -> String {
    static NAME: Mutex<Option<(u32, String)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = NAME.lock().unwrap_or_else(PoisonError::into_inner);
    match &*slot {
        // A forked child finds its parent's name here and makes its own.
        Some((p, name)) if *p == pid => name.clone(),
        _ => {
            let mut random = [0u8; 6];
            let _ = rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty());
            let host = rustix::system::uname().nodename().to_string_lossy().into_owned();
            let nonce: String = random.iter().map(|b| format!("{b:02x}")).collect();
            let name = format!("{host}-{pid}-{nonce}");
            *slot = Some((pid, name.clone()));
            name
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Link, Resend, redact};
    use crate::remote::RedisServer;
    use std::time::{Duration, Instant};

    /// On plain TCP the socket is found and read directly, so a reply is
    /// looked for before the read sleeps; the replies stay in step.
    #[test]
    fn plain_tcp_connections_are_read_directly_and_stay_in_step() -> crate::Result<()> {
        let server = RedisServer::start()?;
        let link = Link::get(&server.url())?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let direct = link.run(deadline, Resend::Yes, |c| Ok(c.direct()))?;
        assert!(direct, "the socket of a loopback connection is found");
        for i in 0..100u32 {
            let mut set = redis::cmd("SET");
            set.arg("k").arg(i);
            let mut pipe = redis::pipe();
            pipe.cmd("INCR").arg("n").cmd("INCR").arg("n");
            let got: u32 = link.run(deadline, Resend::Yes, |c| {
                c.query::<()>(&set)?;
                c.send(&pipe)?; // replies read with the next command
                c.query(redis::cmd("GET").arg("k"))
            })?;
            assert_eq!(got, i);
        }
        let n: u32 = link.run(deadline, Resend::Yes, |c| c.query(redis::cmd("GET").arg("n")))?;
        assert_eq!(n, 200);
        Ok(())
    }

    #[test]
    fn passwords_are_left_out_of_addresses() {
        assert_eq!(redact("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
        assert_eq!(redact("redis://:pw@h:1/0"), "redis://h:1/0");
        assert_eq!(redact("rediss://bob:p:w@h/2"), "rediss://bob@h/2");
        assert_eq!(redact("redis://bob@h"), "redis://bob@h");
        assert_eq!(redact("redis+unix:///tmp/r.sock"), "redis+unix:///tmp/r.sock");
    }
}
