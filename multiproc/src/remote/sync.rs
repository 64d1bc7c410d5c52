//! Semaphores, events and barriers on Redis: their state in the object's
//! `meta` hash, changed by Lua scripts; waiters block on the object's bell
//! between looks (see `RedisObject::poll`).

use std::sync::Arc;

use redis::{Value, cmd};

use super::link::{Resend, script};
use super::object::{RedisObject, unexpected, unsupported};
use crate::manager::protocol::{Kind, Op, Outcome, Response, Wait};
use crate::{Error, Result};

const TAKE: &str = r"
local v = tonumber(redis.call('HGET', KEYS[1], 'value') or '0')
if v > 0 then
  redis.call('HINCRBY', KEYS[1], 'value', -1)
  return 1
end
return 0
";

const GIVE: &str = r"
local v = tonumber(redis.call('HGET', KEYS[1], 'value') or '0')
local bound = tonumber(redis.call('HGET', KEYS[1], 'bound') or '0')
if bound > 0 and v + tonumber(ARGV[1]) > bound then return 0 end
redis.call('HINCRBY', KEYS[1], 'value', ARGV[1])
return 1
";

/// A party arrives: `{-1}` if broken, else its index, the generation and
/// epoch it waits in.
const ARRIVE: &str = r"
local m = KEYS[1]
if redis.call('HGET', m, 'broken') == '1' then return {-1, 0, 0} end
local parties = tonumber(redis.call('HGET', m, 'parties'))
local gen = tonumber(redis.call('HGET', m, 'generation') or '0')
local epoch = tonumber(redis.call('HGET', m, 'epoch') or '0')
local index = redis.call('HINCRBY', m, 'count', 1) - 1
if index + 1 >= parties then
  redis.call('HSET', m, 'count', 0)
  redis.call('HINCRBY', m, 'generation', 1)
end
return {index, gen, epoch}
";

/// Breaks the barrier unless generation `ARGV[1]` has passed already.
const BREAK: &str = r"
local gen = tonumber(redis.call('HGET', KEYS[1], 'generation') or '0')
if ARGV[1] ~= '' and gen > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'broken', 1, 'count', 0)
return 1
";

const RESET: &str = r"
redis.call('HSET', KEYS[1], 'broken', 0, 'count', 0)
redis.call('HINCRBY', KEYS[1], 'epoch', 1)
return 1
";

fn number(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::Int(i)) => *i,
        Some(Value::BulkString(b)) => {
            std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
        }
        _ => 0,
    }
}

impl RedisObject {
    fn fields(&self, names: &[&str]) -> Result<Vec<i64>> {
        let mut get = cmd("HMGET");
        get.arg(&self.meta).arg(names);
        let values: Vec<Option<i64>> = self.run(Resend::Yes, |c| c.query(&get))?;
        // As many as asked for, whatever the server answered.
        Ok((0..names.len()).map(|i| values.get(i).copied().flatten().unwrap_or(0)).collect())
    }

    fn set_field(&self, name: &str, value: i64) -> Result<Response> {
        let mut set = cmd("HSET");
        set.arg(&self.meta).arg(name).arg(value);
        self.run(Resend::Yes, |c| c.query::<()>(&set))?;
        Ok(Response::Done)
    }

    /// Runs script `src` on the object's `meta` hash, then rings the bell
    /// for the waiters.
    fn change_and_ring(&self, src: &'static str, resend: Resend, args: &[&[u8]]) -> Result<Value> {
        self.run(resend, |c| {
            let reply = c.script(script(src), &[&self.meta], args)?;
            self.ring(c);
            Ok(reply)
        })
    }

    pub(super) fn semaphore(self: &Arc<Self>, op: Op) -> Result<Response> {
        match op {
            Op::Acquire(wait) => {
                let got = self.poll(wait, |deadline| {
                    let taken: i64 = self.link.run(deadline, Resend::No, |c| {
                        c.script(script(TAKE), &[&self.meta], &[] as &[&[u8]])
                    })?;
                    Ok((taken == 1).then_some(()))
                })?;
                Ok(Response::Outcome(match (got, wait) {
                    (Some(()), _) => Outcome::Acquired,
                    (None, Wait::Never) => Outcome::WouldBlock,
                    (None, _) => Outcome::Timeout,
                }))
            }
            Op::ReleaseN(n) => {
                let n = n.to_string();
                match number(Some(&self.change_and_ring(GIVE, Resend::No, &[n.as_bytes()])?)) {
                    1 => Ok(Response::Done),
                    _ => Err(Error::TooManyReleases),
                }
            }
            Op::Len => Ok(Response::Count(self.fields(&["value"])?[0].max(0) as u64)),
            _ => Err(unsupported(Kind::Semaphore)),
        }
    }

    pub(super) fn event(self: &Arc<Self>, op: Op) -> Result<Response> {
        match op {
            Op::SetFlag => {
                let mut set = cmd("HSET");
                set.arg(&self.meta).arg("flag").arg(1);
                self.run(Resend::Yes, |c| {
                    c.query::<()>(&set)?;
                    self.ring(c);
                    Ok(())
                })?;
                Ok(Response::Done)
            }
            Op::ClearFlag => self.set_field("flag", 0),
            Op::IsSet => Ok(Response::Bool(self.fields(&["flag"])?[0] == 1)),
            Op::WaitFlag(wait) => {
                let mut get = cmd("HGET");
                get.arg(&self.meta).arg("flag");
                let set = self.poll(wait, |deadline| {
                    let flag: Option<i64> =
                        self.link.run(deadline, Resend::Yes, |c| c.query(&get))?;
                    Ok((flag == Some(1)).then_some(()))
                })?;
                Ok(Response::Bool(set.is_some()))
            }
            _ => Err(unsupported(Kind::Event)),
        }
    }

    pub(super) fn barrier(self: &Arc<Self>, op: Op) -> Result<Response> {
        match op {
            Op::BarrierWait(wait) => self.barrier_wait(wait),
            Op::Abort => {
                self.change_and_ring(BREAK, Resend::Yes, &[b""])?;
                Ok(Response::Done)
            }
            Op::Reset => {
                self.change_and_ring(RESET, Resend::No, &[])?;
                Ok(Response::Done)
            }
            Op::BarrierState => {
                let f = self.fields(&["parties", "count", "broken"])?;
                Ok(Response::Barrier(f[0].max(0) as u64, f[1].max(0) as u64, f[2] == 1))
            }
            _ => Err(unsupported(Kind::Barrier)),
        }
    }

    fn barrier_wait(self: &Arc<Self>, wait: Wait) -> Result<Response> {
        // Sent twice, an arrival would count this party twice.
        let arrived = self.change_and_ring(ARRIVE, Resend::No, &[])?;
        let Value::Array(parts) = &arrived else {
            return Err(self.link.error(format!("{:?}", unexpected(&arrived)), None));
        };
        let (index, generation, epoch) =
            (number(parts.first()), number(parts.get(1)), number(parts.get(2)));
        if index < 0 {
            return Err(Error::BrokenBarrier);
        }
        let mut state = cmd("HMGET");
        state.arg(&self.meta).arg(&["generation", "broken", "epoch"]);
        let passed = self.poll(wait, |deadline| {
            let f: Vec<Option<i64>> = self.link.run(deadline, Resend::Yes, |c| c.query(&state))?;
            let field = |i: usize| f.get(i).copied().flatten().unwrap_or(0);
            if field(0) > generation {
                Ok(Some(true))
            } else if field(1) == 1 || field(2) != epoch {
                Ok(Some(false))
            } else {
                Ok(None)
            }
        })?;
        match passed {
            Some(true) => Ok(Response::Count(index as u64)),
            Some(false) => Err(Error::BrokenBarrier),
            None => {
                // A timeout breaks the barrier, as in Python, unless the
                // barrier passed in the meantime.
                let generation = generation.to_string();
                let broke = self.change_and_ring(BREAK, Resend::Yes, &[generation.as_bytes()])?;
                if number(Some(&broke)) == 0 {
                    Ok(Response::Count(index as u64))
                } else {
                    Err(Error::BrokenBarrier)
                }
            }
        }
    }
}
