//! Pools on Redis: tasks on a Redis Stream read by a consumer group of
//! workers on any host, results on a stream of the caller's own.
//!
//! A task entry holds the task message (the same bytes as on a local
//! pool's task queue), the key to answer on, the caller's build id and the
//! retries left. A worker reads one (or takes over one whose worker stopped
//! renewing its lease), runs it, and answers and acknowledges in one round
//! trip. The caller's collector thread files the answers in the jobs; an
//! answer for a task already answered (its worker stalled past its lease
//! and another ran it too) is dropped, so every task counts once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use redis::{Value, cmd};
use serde::{Deserialize, Serialize};

use super::core::Config;
use super::job::{Failure, Job, JobState, Piece, Signal};
use super::wire::{self, TASK_HEADER, Target};
use crate::boot::entry::TaskFn;
use crate::remote::link::{
    Conn, DEFAULT_UNREACHABLE, Link, Resend, bytes, consumer_name, fields, script, stream_entries,
};
use crate::{Error, Process, Result};

/// How long a blocking read waits on the server before looking around.
const SLICE: Duration = Duration::from_millis(100);
/// A worker's default lease on a task it runs (renewed every third of it).
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Result message kind: the task's workers kept dying (body: the last one).
pub(crate) const LOST: u8 = 6;

/// Where a pool lives on Redis.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PoolSpec {
    pub(crate) url: String,
    pub(crate) name: String,
    pub(crate) lease: Duration,
}

struct Keys {
    tasks: String,
    results: String,
    stop: String,
}

fn tasks_key(name: &str) -> String {
    format!("mp:{{{name}}}:pool-tasks")
}

/// A task as the table holds it.
struct Task {
    job: Arc<Job>,
    start: usize,
    count: u32,
    entry: String,
    cancelled: bool,
}

#[derive(Default)]
struct Inner {
    table: HashMap<u64, Task>,
    closed: bool,
    feeders: usize,
    workers: Vec<Option<Process<()>>>,
    generation: u32,
    collector_done: bool,
    watcher_done: bool,
}

/// A pool's caller side on Redis, with its local workers.
pub(crate) struct RedisCore {
    pub(crate) config: Config,
    spec: PoolSpec,
    link: Arc<Link>,
    keys: Keys,
    client: String,
    build: Arc<str>,
    inner: Mutex<Inner>,
    next_task: AtomicU64,
    terminated: AtomicBool,
    pub(crate) signal: Signal,
}

impl std::fmt::Debug for RedisCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCore")
            .field("address", &self.link.address())
            .field("name", &self.spec.name)
            .field("processes", &self.config.processes)
            .finish_non_exhaustive()
    }
}

/// The id of this program's build: a SHA-256 of its executable file's
/// size and of 32 samples of 32 KiB spread over it (the whole file would
/// take seconds for a large debug build), computed once. Tasks carry it; a
/// worker of another build refuses them (the functions they name are at
/// other places there).
pub(crate) fn build_id() -> Result<Arc<str>> {
    static ID: OnceLock<std::result::Result<Arc<str>, String>> = OnceLock::new();
    ID.get_or_init(|| {
        use sha2::Digest;
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open("/proc/self/exe").map_err(|e| e.to_string())?;
        let size = file.metadata().map_err(|e| e.to_string())?.len();
        let mut hash = sha2::Sha256::new();
        hash.update(size.to_le_bytes());
        let mut buf = vec![0u8; 32 << 10];
        for k in 0..32u64 {
            let at = size.saturating_sub(buf.len() as u64) * k / 31;
            let n = file.read_at(&mut buf, at).map_err(|e| e.to_string())?;
            hash.update(&buf[..n]);
        }
        Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>().into())
    })
    .clone()
    .map_err(|e| Error::Unsupported {
        reason: Box::leak(
            format!("cannot read this program to name its build: {e}").into_boxed_str(),
        ),
    })
}

const GROUP: &str = r"
local ok, err = pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], 'g', '0', 'MKSTREAM')
if not ok and not string.find(tostring(err), 'BUSYGROUP') then return redis.error_reply(tostring(err)) end
return 1
";

/// A worker's next task: one whose worker stopped renewing its lease, or
/// a new one. Returns `{id, fields, previous consumer, deliveries}`, 0 if
/// there is none, -1 if the worker's stop key (KEYS[2]) is set.
const TAKE: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local p = redis.call('XPENDING', KEYS[1], 'g', 'IDLE', ARGV[2], '-', '+', 1)
if p[1] then
  local id, prev, n = p[1][1], p[1][2], p[1][4]
  local c = redis.call('XCLAIM', KEYS[1], 'g', ARGV[1], ARGV[2], id)
  if c[1] then return {id, c[1][2], prev, n + 1} end
  redis.call('XACK', KEYS[1], 'g', id)
end
local ok, r = pcall(redis.call, 'XREADGROUP', 'GROUP', 'g', ARGV[1], 'COUNT', 1, 'STREAMS', KEYS[1], '>')
if not ok then
  if string.find(tostring(r), 'NOGROUP') then
    redis.call('XGROUP', 'CREATE', KEYS[1], 'g', '0', 'MKSTREAM')
    return 0
  end
  return redis.error_reply(tostring(r))
end
if r then
  local e = r[1][2][1]
  return {e[1], e[2], '', 1}
end
return 0
";

/// Renews a lease: resets the idle time of a task this consumer holds.
const RENEW: &str = r"
local p = redis.call('XPENDING', KEYS[1], 'g', ARGV[2], ARGV[2], 1)
if p[1] and p[1][2] == ARGV[1] then
  redis.call('XCLAIM', KEYS[1], 'g', ARGV[1], 0, ARGV[2], 'JUSTID')
  return 1
end
return 0
";

/// Makes the tasks of a dead consumer ready to be taken over at once.
const RELEASE: &str = r"
local p = redis.call('XPENDING', KEYS[1], 'g', '-', '+', 100, ARGV[1])
for _, e in ipairs(p) do
  redis.call('XCLAIM', KEYS[1], 'g', ARGV[1], 0, e[1], 'IDLE', ARGV[2], 'JUSTID')
end
return #p
";

/// Cancels a task if no worker took it.
const CANCEL: &str = r"
local p = redis.call('XPENDING', KEYS[1], 'g', ARGV[1], ARGV[1], 1)
if p[1] then return 0 end
return redis.call('XDEL', KEYS[1], ARGV[1])
";

fn deadline() -> Instant {
    Instant::now() + DEFAULT_UNREACHABLE
}

impl RedisCore {
    /// Opens the pool's task stream and starts the local workers and the
    /// collector and watcher threads.
    pub(crate) fn start(config: Config, spec: PoolSpec) -> Result<Arc<Self>> {
        if config.init.is_some() {
            return Err(Error::Unsupported {
                reason: "a pool on Redis has no initializer (its workers may run anywhere)",
            });
        }
        let link = Link::get(&spec.url)?;
        let build = build_id()?;
        static CLIENTS: AtomicU64 = AtomicU64::new(0);
        let client = format!("{}-{}", consumer_name(), CLIENTS.fetch_add(1, Ordering::Relaxed));
        let name = &spec.name;
        let keys = Keys {
            tasks: tasks_key(name),
            results: format!("mp:{{{name}}}:pool-results:{client}"),
            stop: format!("mp:{{{name}}}:pool-stop:{client}"),
        };
        let tasks = keys.tasks.clone();
        link.run(deadline(), Resend::Yes, |c| c.script::<i64>(script(GROUP), &[&tasks], &[]))?;
        let core = Arc::new(RedisCore {
            config,
            spec,
            link,
            keys,
            client,
            build,
            inner: Mutex::default(),
            next_task: AtomicU64::new(1),
            terminated: AtomicBool::new(false),
            signal: Signal::default(),
        });
        let n = core.config.processes;
        let mut workers = Vec::with_capacity(n);
        for slot in 0..n {
            match core.spawn_worker(slot as u32, 0) {
                Ok(p) => workers.push(Some(p)),
                Err(e) => {
                    for p in workers.iter().flatten() {
                        let _ = Process::kill(p);
                    }
                    return Err(e);
                }
            }
        }
        core.lock().workers = workers;
        let collector = Arc::clone(&core);
        std::thread::Builder::new()
            .name("multiproc-redis-pool-results".into())
            .spawn(move || collector.collect())
            .map_err(Error::os("start a thread"))?;
        let watcher = Arc::clone(&core);
        std::thread::Builder::new()
            .name("multiproc-redis-pool-watch".into())
            .spawn(move || watcher.watch())
            .map_err(Error::os("start a thread"))?;
        Ok(core)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn worker_name(&self, slot: u32, generation: u32) -> String {
        format!("{}-w{slot}.{generation}", self.client)
    }

    fn spawn_worker(&self, slot: u32, generation: u32) -> Result<Process<()>> {
        let args = WorkerArgs {
            spec: self.spec.clone(),
            consumer: self.worker_name(slot, generation),
            stop: Some(self.keys.stop.clone()),
            build: self.build.to_string(),
            max_tasks: self.config.max_tasks,
        };
        let method = match self.config.method {
            // A pool on Redis names its functions by entry: no closures.
            crate::StartMethod::Fork => crate::StartMethod::Spawn,
            m => m,
        };
        Process::builder()
            .daemon(true)
            .name(format!("PoolWorker-{}", slot + 1))
            .start_method(method)
            .spawn(worker_main, args)
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.terminated.load(Ordering::SeqCst)
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        let inner = self.lock();
        if self.is_terminated() {
            Err(Error::PoolTerminated)
        } else if inner.closed {
            Err(Error::PoolClosed)
        } else {
            Ok(())
        }
    }

    fn fail(&self, job: &Arc<Job>, start: usize, count: u32, failure: Failure) {
        job.deliver(Piece { start, count: count as usize, body: Err(failure) });
    }

    /// Submits a task: one entry on the task stream.
    pub(crate) fn submit(
        &self,
        job: &Arc<Job>,
        start: usize,
        count: u32,
        mut msg: Vec<u8>,
        _cancellable: bool,
    ) -> Result<u64> {
        if self.is_terminated() {
            self.fail(job, start, count, Failure::Terminated);
            return Err(Error::PoolTerminated);
        }
        if wire::parse_task(&msg).is_some_and(|h| matches!(h.target, Target::Closure(_))) {
            let why = "a closure that captures cannot travel to a pool on Redis: use a function";
            self.fail(job, start, count, Failure::NotSent(why.to_owned()));
            return Err(Error::Unsupported { reason: why });
        }
        wire::set_count(&mut msg, count);
        let id = self.next_task.fetch_add(1, Ordering::Relaxed);
        wire::set_id(&mut msg, id, wire::NO_CANCEL);
        // Filed first: the answer may come before XADD's reply.
        self.lock().table.insert(
            id,
            Task { job: Arc::clone(job), start, count, entry: String::new(), cancelled: false },
        );
        let mut add = cmd("XADD");
        add.arg(&self.keys.tasks).arg("*").arg("m").arg(&msg).arg("r").arg(&self.keys.results);
        add.arg("b").arg(&*self.build).arg("n").arg(self.config.retries);
        // A task sent twice is answered twice; the second answer is dropped.
        match self.link.run(deadline(), Resend::Yes, |c| c.query::<String>(&add)) {
            Ok(entry) => {
                if let Some(task) = self.lock().table.get_mut(&id) {
                    task.entry = entry;
                }
                Ok(id)
            }
            Err(e) => {
                if let Some(task) = self.lock().table.remove(&id) {
                    self.fail(&task.job, start, count, Failure::NotSent(e.to_string()));
                }
                Err(e)
            }
        }
    }

    /// Cancels task `id` if no worker took it yet.
    pub(crate) fn cancel(&self, id: u64) -> bool {
        let entry = match self.lock().table.get(&id) {
            Some(task) if task.cancelled => return true,
            Some(task) if !task.entry.is_empty() => task.entry.clone(),
            _ => return false,
        };
        let tasks = [self.keys.tasks.as_str()];
        let done = self
            .link
            .run(deadline(), Resend::Yes, |c| {
                c.script::<i64>(script(CANCEL), &tasks, &[entry.as_bytes()])
            })
            .unwrap_or(0);
        if done != 1 {
            return false;
        }
        let task = self.lock().table.remove(&id);
        if let Some(task) = task {
            self.fail(&task.job, task.start, task.count, Failure::Cancelled);
        }
        self.after_change();
        true
    }

    /// Whether a worker holds task `id` now.
    pub(crate) fn running(&self, id: u64) -> bool {
        let entry = match self.lock().table.get(&id) {
            Some(task) if !task.entry.is_empty() => task.entry.clone(),
            _ => return false,
        };
        let mut pending = cmd("XPENDING");
        pending.arg(&self.keys.tasks).arg("g").arg(&entry).arg(&entry).arg(1);
        self.link
            .run(deadline(), Resend::Yes, |c| c.query::<Vec<Value>>(&pending))
            .is_ok_and(|v| !v.is_empty())
    }

    pub(crate) fn cancellable_tasks(&self) -> Vec<u64> {
        self.lock().table.iter().filter(|(_, t)| !t.cancelled).map(|(&id, _)| id).collect()
    }

    pub(crate) fn feeder(&self, starts: bool) {
        let mut inner = self.lock();
        if starts {
            inner.feeders += 1;
        } else {
            inner.feeders = inner.feeders.saturating_sub(1);
        }
        drop(inner);
        self.after_change();
    }

    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.after_change();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed || self.is_terminated()
    }

    /// Kills the local workers now; every pending task fails with
    /// [`Error::PoolTerminated`], and its entry leaves the task stream if no
    /// worker took it.
    pub(crate) fn terminate(&self) {
        let (tasks, workers) = {
            let mut inner = self.lock();
            self.terminated.store(true, Ordering::SeqCst);
            inner.closed = true;
            let tasks: Vec<Task> = inner.table.drain().map(|(_, t)| t).collect();
            let workers: Vec<u32> = inner.workers.iter().flatten().map(Process::pid).collect();
            (tasks, workers)
        };
        for pid in workers {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid as i32).expect("a pid is positive"),
                rustix::process::Signal::KILL,
            );
        }
        let mut del = cmd("XDEL");
        del.arg(&self.keys.tasks);
        let mut any = false;
        for task in &tasks {
            if !task.entry.is_empty() {
                del.arg(&task.entry);
                any = true;
            }
        }
        if any {
            let _ = self.link.run(deadline(), Resend::Yes, |c| c.query::<i64>(&del));
        }
        for task in tasks {
            if !task.cancelled {
                self.fail(&task.job, task.start, task.count, Failure::Terminated);
            }
        }
        self.signal.notify();
    }

    fn after_change(&self) {
        self.signal.notify();
    }

    pub(crate) fn join(&self, deadline: Option<Instant>) -> Result<bool> {
        if !self.is_closed() {
            return Err(Error::PoolRunning);
        }
        Ok(self.signal.wait_for(deadline, || {
            let inner = self.lock();
            inner.collector_done && inner.watcher_done
        }))
    }

    pub(crate) fn pids(&self) -> Vec<u32> {
        self.lock().workers.iter().flatten().map(Process::pid).collect()
    }

    /// Waits until `ready(job's state)` holds or `deadline` passes (the
    /// collector thread files the answers).
    pub(crate) fn wait_job<'j>(
        &self,
        job: &'j Job,
        deadline: Option<Instant>,
        mut ready: impl FnMut(&mut JobState) -> bool,
    ) -> (MutexGuard<'j, JobState>, bool) {
        loop {
            let seen = job.signal.seen();
            {
                let mut state = job.lock();
                if ready(&mut state) {
                    return (state, true);
                }
            }
            if !job.signal.wait(seen, deadline) {
                let mut state = job.lock();
                let ok = ready(&mut state);
                return (state, ok);
            }
        }
    }

    /// Whether the work is over: closed (or terminated) with no task left.
    fn finished(&self) -> bool {
        let inner = self.lock();
        self.is_terminated() || (inner.closed && inner.table.is_empty() && inner.feeders == 0)
    }

    /// The collector: reads the answers and files them in their jobs.
    fn collect(self: Arc<Self>) {
        let mut last = "0-0".to_owned();
        let mut done: Vec<String> = Vec::new();
        while !self.finished() {
            let mut read = cmd("XREAD");
            read.arg("COUNT").arg(256).arg("BLOCK").arg(SLICE.as_millis() as u64);
            read.arg("STREAMS").arg(&self.keys.results).arg(&last);
            let mut del = redis::pipe();
            del.atomic();
            if !done.is_empty() {
                del.cmd("XDEL").arg(&self.keys.results).arg(&done);
            }
            let reply = self.link.run(Instant::now() + SLICE * 10, Resend::Yes, |c| {
                if !done.is_empty() {
                    c.send(&del)?;
                }
                c.query_blocking::<Value>(&read, SLICE)
            });
            done.clear();
            let reply = match reply {
                Ok(reply) => reply,
                Err(e) => {
                    log::warn!("pool '{}': reading results: {e}", self.spec.name);
                    continue;
                }
            };
            for (id, msg) in answers(reply) {
                last.clone_from(&id);
                done.push(id);
                self.handle(&msg);
            }
        }
        let mut set = cmd("SET");
        set.arg(&self.keys.stop).arg(1).arg("EX").arg(3600);
        let _ = self.link.run(deadline(), Resend::Yes, |c| c.query::<()>(&set));
        let mut del = cmd("DEL");
        del.arg(&self.keys.results);
        let _ = self.link.run(deadline(), Resend::Yes, |c| c.query::<()>(&del));
        self.lock().collector_done = true;
        self.signal.notify();
    }

    fn handle(&self, msg: &[u8]) {
        let Some(header) = wire::parse_result(msg) else { return };
        let body = msg.get(wire::RESULT_HEADER..).unwrap_or_default();
        let task = self.lock().table.remove(&header.task);
        let Some(task) = task else { return }; // answered already
        let piece = match header.kind {
            wire::DONE => Ok(body.to_vec()),
            LOST => Err(Failure::Lost { worker: String::from_utf8_lossy(body).into_owned() }),
            _ => Err(Failure::NotSent("a malformed answer from a worker".to_owned())),
        };
        if !task.cancelled {
            task.job.deliver(Piece { start: task.start, count: task.count as usize, body: piece });
        }
        self.after_change();
    }

    /// The watcher: replaces local workers that die while the pool is open,
    /// handing their tasks to the others at once, and reaps them at the end.
    fn watch(self: Arc<Self>) {
        loop {
            let collector_done = self.lock().collector_done;
            let mut dead = Vec::new();
            {
                let mut inner = self.lock();
                for (slot, w) in inner.workers.iter_mut().enumerate() {
                    if let Some(p) = w
                        && !p.is_alive()
                    {
                        dead.push((slot as u32, p.name().to_owned()));
                        *w = None;
                    }
                }
            }
            let generation = {
                let mut inner = self.lock();
                inner.generation += 1;
                inner.generation
            };
            for (slot, _) in &dead {
                // Its consumer name: every generation of the slot is tried.
                let tasks = [self.keys.tasks.as_str()];
                let lease = (self.spec.lease.as_millis() as u64 + 1).to_string();
                for g in 0..generation {
                    let name = self.worker_name(*slot, g);
                    let _ = self.link.run(deadline(), Resend::Yes, |c| {
                        c.script::<i64>(
                            script(RELEASE),
                            &tasks,
                            &[name.as_bytes(), lease.as_bytes()],
                        )
                    });
                }
                if !self.finished() {
                    match self.spawn_worker(*slot, generation) {
                        Ok(p) => self.lock().workers[*slot as usize] = Some(p),
                        Err(e) => log::warn!("pool '{}': no new worker: {e}", self.spec.name),
                    }
                }
            }
            let all_gone = self.lock().workers.iter().all(Option::is_none);
            if collector_done && all_gone {
                break;
            }
            if self.is_terminated() {
                let mut inner = self.lock();
                for w in inner.workers.iter_mut() {
                    if let Some(p) = w.take() {
                        let _ = p.kill();
                        let _ = p.wait_timeout(Duration::from_secs(5));
                    }
                }
                continue;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.lock().watcher_done = true;
        self.signal.notify();
    }
}

/// The ids and messages (field `m`) of an `XREAD` reply.
fn answers(reply: Value) -> Vec<(String, Vec<u8>)> {
    let entries = stream_entries(reply).into_iter();
    entries.filter_map(|(id, mut f)| Some((id, f.remove(&b"m"[..])?))).collect()
}

/// What a worker is given.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    pub(crate) spec: PoolSpec,
    pub(crate) consumer: String,
    /// Set by the caller whose local worker this is when its pool ends.
    pub(crate) stop: Option<String>,
    pub(crate) build: String,
    pub(crate) max_tasks: u64,
}

/// The entry of a worker process.
pub(crate) fn worker_main(args: WorkerArgs) {
    if let Err(e) = run_worker(&args) {
        log::error!("pool '{}' worker {}: {e}", args.spec.name, args.consumer);
    }
}

/// The worker loop: take a task, run it, answer and acknowledge; until the
/// stop key is set, `max_tasks` ran, or the server stays unreachable.
pub(crate) fn run_worker(args: &WorkerArgs) -> Result<()> {
    let link = Link::get(&args.spec.url)?;
    let tasks = tasks_key(&args.spec.name);
    let lease_ms = (args.spec.lease.as_millis() as u64).max(1);
    link.run(deadline(), Resend::Yes, |c| c.script::<i64>(script(GROUP), &[&tasks], &[]))?;
    // The task held now, whose lease a thread renews.
    let held: Arc<Mutex<Option<String>>> = Arc::default();
    {
        let held = Arc::clone(&held);
        let (link, tasks, me) = (Arc::clone(&link), tasks.clone(), args.consumer.clone());
        let every = Duration::from_millis(lease_ms / 3).max(Duration::from_millis(1));
        std::thread::Builder::new()
            .name("multiproc-lease".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    let id = held.lock().unwrap_or_else(PoisonError::into_inner).clone();
                    if let Some(id) = id {
                        let _ = link.run(Instant::now() + every, Resend::Yes, |c| {
                            c.script::<i64>(
                                script(RENEW),
                                &[&tasks],
                                &[me.as_bytes(), id.as_bytes()],
                            )
                        });
                    }
                }
            })
            .map_err(Error::os("start a thread"))?;
    }
    let mut resolved: HashMap<u64, TaskFn> = HashMap::new();
    let mut out = Vec::with_capacity(256);
    let mut done = 0u64;
    let lease = lease_ms.to_string();
    // A worker served for other hosts has no stop key: a name no one sets.
    let stop = args.stop.clone().unwrap_or_else(|| format!("mp:{{{}}}:pool-never", args.spec.name));
    loop {
        let got: Value = link.run(deadline(), Resend::Yes, |c| {
            c.script(script(TAKE), &[&tasks, &stop], &[args.consumer.as_bytes(), lease.as_bytes()])
        })?;
        let (entry, fields, previous, deliveries) = match got {
            Value::Array(mut parts) if parts.len() == 4 => {
                let deliveries = match parts.pop() {
                    Some(Value::Int(n)) => n,
                    _ => 1,
                };
                let previous = parts.pop().and_then(bytes).unwrap_or_default();
                let fields = fields(parts.pop().unwrap_or(Value::Nil));
                let entry = parts.pop().and_then(bytes).unwrap_or_default();
                (String::from_utf8_lossy(&entry).into_owned(), fields, previous, deliveries)
            }
            Value::Int(-1) => return Ok(()),
            _ => {
                // Nothing now: block on the server for a new one.
                let mut read = cmd("XREADGROUP");
                read.arg("GROUP").arg("g").arg(&args.consumer).arg("COUNT").arg(1);
                read.arg("BLOCK").arg(SLICE.as_millis() as u64).arg("STREAMS").arg(&tasks).arg(">");
                let reply: Value =
                    link.run(deadline(), Resend::Yes, |c| match c.query_blocking(&read, SLICE) {
                        Err(e) if e.code() == Some("NOGROUP") => Ok(Value::Nil),
                        other => other,
                    })?;
                match stream_entries(reply).into_iter().next() {
                    Some((entry, fields)) => (entry, fields, Vec::new(), 1),
                    None => continue,
                }
            }
        };
        *held.lock().unwrap_or_else(PoisonError::into_inner) = Some(entry.clone());
        let reply_to = fields.get(&b"r"[..]).cloned().unwrap_or_default();
        let msg = fields.get(&b"m"[..]).cloned().unwrap_or_default();
        let retries: i64 = fields
            .get(&b"n"[..])
            .and_then(|n| std::str::from_utf8(n).ok()?.parse().ok())
            .unwrap_or(0);
        let header = wire::parse_task(&msg);
        match header {
            None => out.clear(),
            Some(h) if deliveries > retries + 1 => {
                // Its workers died `deliveries - 1` times: give up on it.
                wire::reset_result(&mut out, LOST, 0, h.id);
                out.extend_from_slice(&previous);
            }
            Some(h) if fields.get(&b"b"[..]).map(Vec::as_slice) != Some(args.build.as_bytes()) => {
                wire::reset_result(&mut out, wire::DONE, 0, h.id);
                let message = format!(
                    "a worker of another build of the program (its build {}, the task's {}) \
                     refused the task: run the same executable on every host",
                    &args.build[..12.min(args.build.len())],
                    String::from_utf8_lossy(
                        fields.get(&b"b"[..]).map_or(&[][..], |b| &b[..12.min(b.len())])
                    )
                );
                wire::push_failures(&mut out, h.count, wire::DECODE_FAILED, &message);
            }
            Some(h) => {
                wire::reset_result(&mut out, wire::DONE, 0, h.id);
                let input = msg.get(TASK_HEADER..).unwrap_or_default();
                let runner = match h.target {
                    Target::Entry(entry) => match resolved.get(&entry.to_bits()) {
                        Some(&f) => Ok(f),
                        None => entry.resolve().inspect(|&f| {
                            resolved.insert(entry.to_bits(), f);
                        }),
                    },
                    Target::Closure(_) => Err("a closure cannot run on a pool on Redis"),
                };
                match runner {
                    Ok(f) => f(input, h.skip, h.count, &mut out, &AtomicU64::new(0)),
                    Err(why) => {
                        let message = format!("the task names no function of this program: {why}");
                        wire::push_failures(&mut out, h.count, wire::DECODE_FAILED, &message);
                    }
                }
            }
        }
        // Answer and acknowledge without waiting: the replies are read after
        // the next take goes out, so a chunk costs the worker one round trip.
        let mut answer = redis::pipe();
        answer.atomic();
        if !out.is_empty() && !reply_to.is_empty() {
            answer.cmd("XADD").arg(&reply_to[..]).arg("*").arg("m").arg(&out[..]).ignore();
        }
        answer.cmd("XACK").arg(&tasks).arg("g").arg(&entry).ignore();
        answer.cmd("XDEL").arg(&tasks).arg(&entry).ignore();
        link.run(deadline(), Resend::Yes, |c: &mut Conn| c.send(&answer))?;
        *held.lock().unwrap_or_else(PoisonError::into_inner) = None;
        if out.capacity() > 1 << 20 {
            out = Vec::with_capacity(256);
        }
        done += 1;
        if args.max_tasks != 0 && done >= args.max_tasks {
            return Ok(());
        }
    }
}

/// Runs `processes` workers of the pool `name` on the Redis server at
/// `url` in this host, until they are killed (or the server stays
/// unreachable): the other hosts' half of [`PoolBuilder::redis`](super::PoolBuilder::redis).
pub(crate) fn serve(url: &str, name: &str, processes: usize, lease: Duration) -> Result<()> {
    let spec = PoolSpec { url: url.to_owned(), name: name.to_owned(), lease };
    let build = build_id()?.to_string();
    let mut workers = Vec::new();
    for slot in 0..processes.max(1) {
        let args = WorkerArgs {
            spec: spec.clone(),
            consumer: format!("{}-w{slot}", consumer_name()),
            stop: None,
            build: build.clone(),
            max_tasks: 0,
        };
        // Daemons: killing this process (the host's server) ends them too.
        let worker = Process::builder().daemon(true).name(format!("PoolWorker-{}", slot + 1));
        workers.push(worker.spawn(worker_main, args)?);
    }
    for w in workers {
        w.join()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::entry::TaskRef;
    use crate::remote::RedisServer;

    fn double(x: u64) -> u64 {
        x * 2
    }

    /// Runs one task through a worker whose build id is `build`; the
    /// outcome of its one item.
    fn run_one_task(build: &str) -> Result<u64> {
        // Where redis-server is missing (the integration tests install it),
        // the caller skips.
        let server = RedisServer::start()?;
        let url = server.url();
        let spec = PoolSpec { url: url.clone(), name: "builds".into(), lease: DEFAULT_LEASE };
        let args = WorkerArgs {
            spec,
            consumer: "test-worker".into(),
            stop: Some("mp:{builds}:stop".into()),
            build: build.to_owned(),
            max_tasks: 1,
        };
        let worker = std::thread::spawn(move || run_worker(&args));
        let mut msg = wire::begin_task(7, wire::NO_CANCEL, Target::Entry(TaskRef::of(&double)?), 8);
        wire::push_arg(&mut msg, &21u64)?;
        wire::set_count(&mut msg, 1);
        let link = Link::get(&url)?;
        let mut add = cmd("XADD");
        add.arg(tasks_key("builds")).arg("*").arg("m").arg(&msg).arg("r").arg("answers");
        add.arg("b").arg(&*build_id()?).arg("n").arg(0);
        link.run(deadline(), Resend::Yes, |c| c.query::<String>(&add))?;
        let mut read = cmd("XREAD");
        read.arg("BLOCK").arg(30_000).arg("STREAMS").arg("answers").arg("0-0");
        let reply: Value = link
            .run(deadline(), Resend::Yes, |c| c.query_blocking(&read, Duration::from_secs(30)))?;
        assert!(worker.join().expect("worker").is_ok(), "one task, then it retires");
        let (_, answer) = answers(reply).pop().expect("an answer");
        let header = wire::parse_result(&answer).expect("a result header");
        assert_eq!((header.kind, header.task), (wire::DONE, 7));
        let mut outcome = None;
        wire::decode_outcomes::<u64>(&answer[wire::RESULT_HEADER..], 1, |r| outcome = Some(r));
        outcome.expect("one outcome")
    }

    #[test]
    fn a_worker_of_the_same_build_runs_the_task_and_one_of_another_build_refuses_it() {
        let ours = build_id().unwrap();
        match run_one_task(&ours) {
            Ok(v) => assert_eq!(v, 42),
            Err(Error::Backend { detail, .. }) if detail.contains("could not run") => return,
            Err(e) => panic!("{e}"),
        }
        let err = run_one_task("0123456789abcdef-another-build").unwrap_err();
        assert!(
            matches!(&err, Error::TaskFailed { message } if message.contains("another build")),
            "{err:?}"
        );
    }
}
