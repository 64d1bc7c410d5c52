//! Locks on Redis: leases with fencing tokens, renewed while held.
//!
//! A holder owns the lock's `lease` key (`SET NX PX`), whose value names it
//! (host, process, thread) and its token; the token comes from a counter
//! in the lock's `meta` hash that only grows (the fencing token). `meta`'s
//! `held` field keeps the holder's token until it releases: a taker that
//! finds it still there knows that the previous holder's lease ran out
//! instead, and gets [`Error::OwnerDied`] (holding the lock).
//!
//! One thread per process renews the leases its threads hold, every third
//! of the lease. A holder that stalls (or loses the server) past its lease
//! loses the lock; its release then fails with [`Error::LeaseExpired`].

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use redis::cmd;

use super::link::{Resend, consumer_name, script};
use super::object::RedisObject;
use crate::manager::protocol::{Kind, Op, Outcome, Response, Wait};
use crate::{Error, Result};

/// Takes the lease for holder `ARGV[1]`: `{token, died}`, or `{0, 0}` if
/// another holds it. Sent again after a lost reply, it finds the lease its
/// first run took and answers its token.
const ACQUIRE: &str = r"
local current = redis.call('GET', KEYS[2])
if current then
  local mine = ARGV[1] .. '|'
  if string.sub(current, 1, #mine) == mine then return {tonumber(string.sub(current, #mine + 1)), 0} end
  return {0, 0}
end
local token = redis.call('HINCRBY', KEYS[1], 'fence', 1)
redis.call('SET', KEYS[2], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
local died = redis.call('HGET', KEYS[1], 'held')
redis.call('HSET', KEYS[1], 'held', token)
if died then return {token, 1} end
return {token, 0}
";

const RELEASE: &str = r"
local mine = redis.call('GET', KEYS[2]) == ARGV[1]
if mine then redis.call('DEL', KEYS[2]) end
if redis.call('HGET', KEYS[1], 'held') == ARGV[2] then redis.call('HDEL', KEYS[1], 'held') end
if mine then return 1 end
return 0
";

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// A lease a thread of this process holds.
struct Held {
    pid: u32,
    thread: ThreadId,
    object: Arc<RedisObject>,
    /// The lease key's value: holder and token.
    value: String,
    token: u64,
    /// How many times a re-entrant lock was taken by its holder.
    depth: u32,
}

/// The leases this process holds, and the renewing thread's wake-up.
static HELD: Mutex<Vec<Held>> = Mutex::new(Vec::new());
static RENEW_NOW: Condvar = Condvar::new();

fn held() -> std::sync::MutexGuard<'static, Vec<Held>> {
    let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    // A child made by fork inherits its parent's table, not its leases.
    let pid = std::process::id();
    held.retain(|h| h.pid == pid);
    held
}

fn find(held: &[Held], object: &RedisObject) -> Option<usize> {
    let me = std::thread::current().id();
    held.iter().position(|h| h.thread == me && *h.object == *object)
}

fn millis(d: Duration) -> String {
    d.as_millis().clamp(1, u128::from(u64::MAX)).to_string()
}

impl RedisObject {
    pub(super) fn lock(self: &Arc<Self>, op: Op) -> Result<Response> {
        match op {
            Op::Acquire(wait) => self.acquire(wait).map(Response::Outcome),
            Op::Release => self.release().map(|()| Response::Done),
            Op::IsSet => {
                let mut exists = cmd("EXISTS");
                exists.arg(&self.lease);
                Ok(Response::Bool(self.run(Resend::Yes, |c| c.query(&exists))?))
            }
            _ => Err(super::object::unsupported(Kind::Lock)),
        }
    }

    /// The fencing token of the lease this thread holds, if it holds one.
    pub(crate) fn token(&self) -> Option<u64> {
        let held = held();
        find(&held, self).map(|i| held[i].token)
    }

    fn acquire(self: &Arc<Self>, wait: Wait) -> Result<Outcome> {
        if self.spec.kind == Kind::RLock {
            let mut held = held();
            if let Some(i) = find(&held, self) {
                held[i].depth += 1;
                return Ok(Outcome::Acquired);
            }
        }
        if self.token().is_some() {
            // A lock is not re-entrant: its holder waits for itself, as
            // with a manager's lock, without asking the server.
            return self.wait_out(wait);
        }
        let me = std::thread::current().id();
        let holder = format!("{}:{me:?}", consumer_name());
        let lease = millis(self.spec.lease);
        let keys = [self.meta.as_str(), self.lease.as_str()];
        let got = self.poll(wait, |deadline| {
            let (token, died): (u64, u8) = self.link.run(deadline, Resend::Yes, |c| {
                c.script(script(ACQUIRE), &keys, &[holder.as_bytes(), lease.as_bytes()])
            })?;
            Ok((token > 0).then_some((token, died == 1)))
        })?;
        let Some((token, died)) = got else {
            return Ok(if matches!(wait, Wait::Never) {
                Outcome::WouldBlock
            } else {
                Outcome::Timeout
            });
        };
        held().push(Held {
            pid: std::process::id(),
            thread: me,
            object: Arc::clone(self),
            value: format!("{holder}|{token}"),
            token,
            depth: 1,
        });
        start_renewing();
        RENEW_NOW.notify_all();
        Ok(if died { Outcome::OwnerDied } else { Outcome::Acquired })
    }

    /// The acquisition of a lock this thread holds already: it never
    /// succeeds, so it waits out `wait`.
    fn wait_out(&self, wait: Wait) -> Result<Outcome> {
        match wait.deadline() {
            Some(deadline) => {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                Ok(if matches!(wait, Wait::Never) { Outcome::WouldBlock } else { Outcome::Timeout })
            }
            None => loop {
                std::thread::park();
            },
        }
    }

    fn release(&self) -> Result<()> {
        let h = {
            let mut held = held();
            let Some(i) = find(&held, self) else { return Err(Error::NotOwner) };
            if held[i].depth > 1 {
                held[i].depth -= 1;
                return Ok(());
            }
            held.remove(i)
        };
        let token = h.token.to_string();
        let keys = [self.meta.as_str(), self.lease.as_str()];
        let released: i64 = self.run(Resend::No, |c| {
            let released =
                c.script(script(RELEASE), &keys, &[h.value.as_bytes(), token.as_bytes()])?;
            self.ring(c);
            Ok(released)
        })?;
        if released == 1 { Ok(()) } else { Err(Error::LeaseExpired) }
    }
}

/// Starts this process's renewing thread if it is not running.
fn start_renewing() {
    static RUNNING_IN: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    if RUNNING_IN.swap(pid, Ordering::AcqRel) == pid {
        return;
    }
    let started =
        std::thread::Builder::new().name("multiproc-redis-lease".into()).spawn(renew_forever);
    if let Err(e) = started {
        RUNNING_IN.store(0, Ordering::Release);
        log::warn!("cannot start the thread that renews Redis leases: {e}");
    }
}

/// Renews every lease this process holds, every third of its lease.
fn renew_forever() {
    let mut next: Vec<(Instant, String)> = Vec::new();
    loop {
        let due: Vec<(Arc<RedisObject>, String)> = {
            let held = held();
            let now = Instant::now();
            // A lease seen for the first time is due a third of its lease
            // after now (it was just taken).
            next.retain(|(_, v)| held.iter().any(|h| &h.value == v));
            for h in held.iter() {
                if !next.iter().any(|(_, v)| v == &h.value) {
                    next.push((now + h.object.spec.lease / 3, h.value.clone()));
                }
            }
            let soonest = next.iter().map(|(t, _)| *t).min();
            let pause =
                soonest.map_or(Duration::from_secs(1), |t| t.saturating_duration_since(now));
            if !pause.is_zero() {
                let waited = RENEW_NOW.wait_timeout(held, pause);
                drop(waited.unwrap_or_else(PoisonError::into_inner));
                continue;
            }
            let due_values: Vec<String> =
                next.iter().filter(|(t, _)| *t <= now).map(|(_, v)| v.clone()).collect();
            held.iter()
                .filter(|h| due_values.contains(&h.value))
                .map(|h| (Arc::clone(&h.object), h.value.clone()))
                .collect()
        };
        for (object, value) in due {
            let third = object.spec.lease / 3;
            let lease = millis(object.spec.lease);
            let renewed: Result<i64> = object.link.run(Instant::now() + third, Resend::Yes, |c| {
                c.script(script(RENEW), &[&object.lease], &[value.as_bytes(), lease.as_bytes()])
            });
            match renewed {
                Ok(1) => {}
                Ok(_) => log::warn!("{object:?}: the lease was lost before it could be renewed"),
                Err(e) => log::warn!("{object:?}: cannot renew the lease: {e}"),
            }
            if let Some(slot) = next.iter_mut().find(|(_, v)| *v == value) {
                slot.0 = Instant::now() + third;
            }
        }
    }
}
