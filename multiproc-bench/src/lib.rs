//! Benchmark scenarios of multiproc, shared by the criterion benches
//! (`cargo bench -p multiproc-bench`) and the comparison command
//! (`cargo run --release -p multiproc-bench --bin compare`).
//!
//! Each [`Scenario`] names the matching scenario of `python/bench.py`, which
//! runs the same work with Python's `multiprocessing`.

pub mod csp;
pub mod latency;
#[cfg(feature = "peers")]
pub mod peers;
pub mod pool;
pub mod redis;

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use multiproc::connection::{Address, Client, Connection, Listener, pipe_with_ring};
use multiproc::manager::ListProxy;
use multiproc::{Event, Lock, Manager, Process, Queue, StartMethod, Value, pipe};
use rustix::io::Errno;
use rustix::net::RecvFlags;
use serde_bytes::ByteBuf;

/// One measured operation, run here and in Python.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// The row's name; also the key in the Python script's output.
    pub name: &'static str,
    /// How many timed samples the comparison takes (after warm-up).
    pub samples: usize,
    /// Runs the operation (or a batch of it) and returns the time of one.
    pub run: fn() -> Duration,
}

/// The Go reference row, when a Go toolchain is on the `PATH`.
pub const GO_SCENARIO: Scenario = Scenario {
    name: "go: Commstime, goroutines (reference; only with a Go toolchain)",
    samples: 5,
    run: csp::commstime_go,
};

/// Whether a Go toolchain is on the `PATH` (for [`GO_SCENARIO`]).
pub fn go_available() -> bool {
    std::process::Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// The target of the process scenarios: does nothing.
pub fn trivial(_: ()) {}

/// Starts a child running [`trivial`] with `method` and joins it.
///
/// # Panics
///
/// If the child cannot be started or joined: a benchmark has no use for a
/// failure.
pub fn spawn_join(method: StartMethod) {
    let child = Process::builder().start_method(method).spawn(trivial, ()).expect("spawn");
    child.join().expect("join");
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// Operations per batch in the micro scenarios.
const LOCK_BATCH: u32 = 100_000;
const INCREMENTS: u64 = 200_000;
const ROUND_TRIPS: u32 = 2_000;

/// One uncontended `lock` + unlock, averaged over a batch.
pub fn lock_unlock() -> Duration {
    let lock = Lock::new().expect("lock");
    let start = Instant::now();
    for _ in 0..LOCK_BATCH {
        drop(std::hint::black_box(lock.lock().expect("lock")));
    }
    start.elapsed() / LOCK_BATCH
}

fn add_under_lock(counter: Value<u64>) {
    for _ in 0..INCREMENTS {
        *counter.lock().expect("lock") += 1;
    }
}

/// Two processes increment one `Value` under its lock at once; returns the
/// time per increment (of the total). Checks the exact count.
pub fn value_increments_two_processes() -> Duration {
    let counter = Value::new(0u64).expect("value");
    let start = Instant::now();
    let child = Process::builder()
        .start_method(StartMethod::Fork)
        .spawn(add_under_lock, counter.clone())
        .expect("spawn");
    add_under_lock(counter.clone());
    child.join().expect("join");
    let elapsed = start.elapsed();
    assert_eq!(counter.get(), 2 * INCREMENTS, "lost increments");
    elapsed / (2 * INCREMENTS as u32)
}

fn pong(events: (Event, Event)) {
    let (ping, pong) = events;
    for _ in 0..ROUND_TRIPS {
        ping.wait();
        ping.clear();
        pong.set();
    }
}

/// Event ping-pong between two processes; returns one round trip.
pub fn event_ping_pong() -> Duration {
    let (ping, pong_event) = (Event::new().expect("event"), Event::new().expect("event"));
    let child = Process::builder()
        .start_method(StartMethod::Fork)
        .spawn(pong, (ping.clone(), pong_event.clone()))
        .expect("spawn");
    let start = Instant::now();
    for _ in 0..ROUND_TRIPS {
        ping.set();
        pong_event.wait();
        pong_event.clear();
    }
    let elapsed = start.elapsed();
    child.join().expect("join");
    elapsed / ROUND_TRIPS
}

const QUEUE_ROUND_TRIPS: u64 = 20_000;
const SMALL_MESSAGES: u64 = 1_000_000;
const BIG_MESSAGES: u64 = 300;
/// The size of a "big" message.
pub const BIG: usize = 1 << 20;
/// The ring of the big-message rows: room for three messages in flight. (A
/// ring much larger than the caches is slower: 8 MiB costs ~40% more per
/// message here; one smaller than the message streams it in pieces, ~2.5x.)
const BIG_RING: usize = 4 << 20;

fn echo(queues: (Queue<u64>, Queue<u64>)) {
    let (input, output) = queues;
    while let Ok(n) = input.get() {
        output.put(n).expect("put");
    }
}

/// Two queues, a child echoing: one round trip of a small message.
pub fn queue_round_trip() -> Duration {
    let (there, back) = (Queue::new().expect("queue"), Queue::new().expect("queue"));
    let child = Process::builder()
        .start_method(StartMethod::Fork)
        .spawn(echo, (there.clone(), back.clone()))
        .expect("spawn");
    let start = Instant::now();
    for n in 0..QUEUE_ROUND_TRIPS {
        there.put(n).expect("put");
        assert_eq!(back.get().expect("get"), n);
    }
    let elapsed = start.elapsed();
    there.close();
    child.join().expect("join");
    elapsed / QUEUE_ROUND_TRIPS as u32
}

/// How long a one-way row waits for its reader to start.
const READER_START: Duration = Duration::from_secs(30);

fn drain(args: (Queue<ByteBuf>, u64, Event)) -> u64 {
    let (q, n, ready) = args;
    ready.set();
    (0..n).map(|_| std::hint::black_box(q.get().expect("get")).len() as u64).sum()
}

/// The time per message of `messages` one way; the clock starts once the
/// reader runs, as in the iceoryx2 rows (whose subscriber is made first).
/// The message and what the reader takes pass through `black_box`, as in
/// the peers' rows, so that no copy is optimized away on either side.
fn one_way(size: usize, messages: u64, ring: usize) -> Duration {
    let q = Queue::builder().ring_bytes(ring).build().expect("queue");
    let ready = Event::new().expect("event");
    let child = Process::builder()
        .start_method(StartMethod::Fork)
        .spawn(drain, (q.clone(), messages, ready.clone()))
        .expect("spawn");
    let message = ByteBuf::from(std::hint::black_box(vec![7u8; size]));
    assert!(ready.wait_timeout(READER_START), "the reader did not start");
    let start = Instant::now();
    for _ in 0..messages {
        q.put_ref(&message).expect("put");
    }
    assert_eq!(child.join().expect("join"), messages * size as u64);
    start.elapsed() / messages as u32
}

/// One-way throughput of 64-byte messages: the time per message.
pub fn queue_small_one_way() -> Duration {
    one_way(64, SMALL_MESSAGES, 1 << 20)
}

/// One-way throughput of 1 MiB messages (4 MiB ring: three in flight, as
/// the iceoryx2 row's subscriber buffer holds up to four): the time per
/// message.
pub fn queue_big_one_way() -> Duration {
    one_way(BIG, BIG_MESSAGES, BIG_RING)
}

const PIPE_ROUND_TRIPS: u32 = 20_000;
const SOCKET_ROUND_TRIPS: u32 = 5_000;

fn pipe_echo(conn: Connection<u64>) {
    while let Ok(n) = conn.recv() {
        conn.send(&n).expect("send");
    }
}

/// A small message there and back through a `pipe()`.
pub fn pipe_round_trip() -> Duration {
    let (mine, theirs) = pipe::<u64>().expect("pipe");
    let child =
        Process::builder().start_method(StartMethod::Fork).spawn(pipe_echo, theirs).expect("spawn");
    let start = Instant::now();
    for n in 0..u64::from(PIPE_ROUND_TRIPS) {
        mine.send(&n).expect("send");
        assert_eq!(mine.recv().expect("recv"), n);
    }
    let elapsed = start.elapsed();
    mine.close();
    child.join().expect("join");
    elapsed / PIPE_ROUND_TRIPS
}

fn pipe_drain(args: (Connection<ByteBuf>, u64, Event)) -> u64 {
    let (conn, n, ready) = args;
    ready.set();
    (0..n).map(|_| std::hint::black_box(conn.recv().expect("recv")).len() as u64).sum()
}

/// As [`one_way`], through a `pipe()`.
fn pipe_one_way(size: usize, messages: u64, ring: usize) -> Duration {
    let (mine, theirs) = pipe_with_ring::<ByteBuf>(ring).expect("pipe");
    let ready = Event::new().expect("event");
    let child = Process::builder()
        .start_method(StartMethod::Fork)
        .spawn(pipe_drain, (theirs, messages, ready.clone()))
        .expect("spawn");
    let message = ByteBuf::from(std::hint::black_box(vec![7u8; size]));
    assert!(ready.wait_timeout(READER_START), "the reader did not start");
    let start = Instant::now();
    for _ in 0..messages {
        mine.send(&message).expect("send");
    }
    assert_eq!(child.join().expect("join"), messages * size as u64);
    start.elapsed() / messages as u32
}

/// One-way 64-byte messages through a `pipe()`: time per message.
pub fn pipe_small_one_way() -> Duration {
    pipe_one_way(64, SMALL_MESSAGES, 1 << 20)
}

/// One-way 1 MiB messages through a `pipe()` with 4 MiB rings.
pub fn pipe_big_one_way() -> Duration {
    pipe_one_way(BIG, BIG_MESSAGES, BIG_RING)
}

fn client_echo(address: Address) {
    let conn: Connection<u64> = Client::connect(&address, Some(b"bench")).expect("connect");
    while let Ok(n) = conn.recv() {
        conn.send(&n).expect("send");
    }
}

fn listener_round_trip(address: Address) -> Duration {
    let listener = Listener::bind(address, Some(b"bench")).expect("bind");
    let child = Process::builder()
        .start_method(StartMethod::Fork)
        .spawn(client_echo, listener.address().clone())
        .expect("spawn");
    let conn: Connection<u64> = listener.accept().expect("accept");
    let start = Instant::now();
    for n in 0..u64::from(SOCKET_ROUND_TRIPS) {
        conn.send(&n).expect("send");
        assert_eq!(conn.recv().expect("recv"), n);
    }
    let elapsed = start.elapsed();
    conn.close();
    child.join().expect("join");
    elapsed / SOCKET_ROUND_TRIPS
}

/// `Listener`/`Client` (with an authkey) over a Unix socket: a round trip.
pub fn unix_connection_round_trip() -> Duration {
    listener_round_trip(Address::Abstract(format!("mp-bench-{}", std::process::id())))
}

/// `Listener`/`Client` (with an authkey) over loopback TCP: a round trip.
pub fn tcp_connection_round_trip() -> Duration {
    listener_round_trip(Address::Tcp("127.0.0.1:0".parse().expect("address")))
}

/// Reads exactly `buf.len()` bytes from `fd`. With `polling`, first polls
/// for 50 µs, yielding the CPU between polls, as multiproc's connections
/// do; then (or without it) blocks in the kernel.
fn read_full(fd: BorrowedFd<'_>, buf: &mut [u8], polling: bool) -> bool {
    let until = Instant::now() + Duration::from_micros(50);
    let mut got = 0;
    while got < buf.len() {
        let flags = if polling && Instant::now() < until {
            RecvFlags::DONTWAIT
        } else {
            RecvFlags::empty()
        };
        match rustix::net::recv(fd, &mut buf[got..], flags) {
            Ok((0, _)) => return false,
            Ok((n, _)) => got += n,
            Err(Errno::AGAIN) => std::thread::yield_now(),
            Err(Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
}

fn raw_echo<S: AsFd + Write>(mut stream: S, polling: bool) {
    let mut buf = [0u8; 8];
    while read_full(stream.as_fd(), &mut buf, polling) {
        if stream.write_all(&buf).is_err() {
            return;
        }
    }
}

fn raw_round_trip<S: AsFd + Write>(mut stream: S, child: Process<()>, polling: bool) -> Duration {
    let mut buf = [0u8; 8];
    let start = Instant::now();
    for n in 0..u64::from(SOCKET_ROUND_TRIPS) {
        stream.write_all(&n.to_le_bytes()).expect("write");
        assert!(read_full(stream.as_fd(), &mut buf, polling), "read");
    }
    let elapsed = start.elapsed();
    drop(stream);
    child.join().expect("join");
    elapsed / SOCKET_ROUND_TRIPS
}

fn raw_unix(polling: bool) -> Duration {
    let (mine, theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
    // Spawn, not fork: a forked child would inherit `mine` too and never see
    // the end of the stream.
    let child = Process::builder()
        .start_method(StartMethod::Spawn)
        .spawn(
            |(fd, polling): (multiproc::FdHandle, bool)| {
                let stream = std::os::unix::net::UnixStream::from(OwnedFd::from(fd));
                raw_echo(stream, polling);
            },
            (multiproc::FdHandle::new(theirs), polling),
        )
        .expect("spawn");
    raw_round_trip(mine, child, polling)
}

fn raw_tcp(polling: bool) -> Duration {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let child = Process::builder()
        .start_method(StartMethod::Fork)
        .spawn(
            |(address, polling): (std::net::SocketAddr, bool)| {
                let stream = std::net::TcpStream::connect(address).expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                raw_echo(stream, polling);
            },
            (address, polling),
        )
        .expect("spawn");
    let (stream, _) = listener.accept().expect("accept");
    stream.set_nodelay(true).expect("nodelay");
    raw_round_trip(stream, child, polling)
}

/// The reference: 8 bytes there and back over a raw Unix socket pair,
/// blocking reads.
pub fn raw_unix_round_trip() -> Duration {
    raw_unix(false)
}

/// The same, polling 50 µs before blocking as multiproc's connections do.
pub fn raw_unix_polling_round_trip() -> Duration {
    raw_unix(true)
}

/// The reference: 8 bytes there and back over raw loopback TCP, blocking
/// reads.
pub fn raw_tcp_round_trip() -> Duration {
    raw_tcp(false)
}

/// The same, polling 50 µs before blocking as multiproc's connections do.
pub fn raw_tcp_polling_round_trip() -> Duration {
    raw_tcp(true)
}

/// Proxy operations per manager sample.
const MANAGER_OPS: u32 = 2000;

/// A proxy operation of a manager.
#[derive(Debug, Clone, Copy)]
pub enum ManagerOp {
    /// `list.append(i)`.
    ListAppend,
    /// `dict["k"] = i`.
    DictSet,
    /// `dict["k"]`.
    DictGet,
    /// `ns.x = i`.
    NamespaceSet,
    /// `ns.x`.
    NamespaceGet,
}

/// Time per proxy operation `op` from this process, with a manager that
/// listens on `address` (a local one if `None`).
pub fn manager_op(op: ManagerOp, address: Option<Address>) -> Duration {
    let mut builder = Manager::builder().start_method(StartMethod::Fork).authkey(b"bench");
    if let Some(address) = address {
        builder = builder.address(address);
    }
    let manager = builder.start().expect("manager");
    let list = manager.list::<u32>([]).expect("list");
    let dict = manager.dict::<String, u32>().expect("dict");
    let ns = manager.namespace().expect("namespace");
    ns.set("x", 0).expect("set");
    dict.insert("k".to_owned(), 0).expect("insert");
    let key = "k".to_owned();
    let run = |i: u32| match op {
        ManagerOp::ListAppend => list.append(i).expect("append"),
        ManagerOp::DictSet => drop(dict.insert(key.clone(), i).expect("insert")),
        ManagerOp::DictGet => drop(dict.get(&key).expect("get")),
        ManagerOp::NamespaceSet => ns.set("x", i).expect("set"),
        ManagerOp::NamespaceGet => drop(ns.get::<u32>("x").expect("get")),
    };
    // The first milliseconds of a new server are slow while the scheduler
    // places its threads (both sides may share a CPU at first): measure the
    // steady state, as the Python side does.
    let warm = Instant::now();
    while warm.elapsed() < MANAGER_WARM_UP {
        run(0);
    }
    let start = Instant::now();
    for i in 0..MANAGER_OPS {
        run(i);
    }
    start.elapsed() / MANAGER_OPS
}

/// Operations run, untimed, before a manager sample is timed.
const MANAGER_WARM_UP: Duration = Duration::from_millis(20);

/// Appends per process in the two-appender scenario: enough that starting
/// and ending the processes (inside the timing) weigh little.
const APPENDS_EACH: u32 = 20_000;

fn append_n(args: (ListProxy<u32>, Event)) {
    let (list, go) = args;
    go.wait();
    for i in 0..APPENDS_EACH {
        list.append(i).expect("append");
    }
}

/// Two processes appending to one manager list: time per append, both
/// together.
pub fn manager_two_appenders() -> Duration {
    let manager = Manager::builder().start_method(StartMethod::Fork).start().expect("manager");
    let list = manager.list::<u32>([]).expect("list");
    let go = Event::new().expect("event");
    let workers: Vec<_> = (0..2)
        .map(|_| {
            Process::builder()
                .start_method(StartMethod::Fork)
                .spawn(append_n, (list.clone(), go.clone()))
                .expect("spawn")
        })
        .collect();
    // Each worker opens its session on its first append, inside the timing,
    // as Python's do.
    let start = Instant::now();
    go.set();
    for w in workers {
        w.join().expect("join");
    }
    let elapsed = start.elapsed();
    assert_eq!(list.len().expect("len"), 2 * APPENDS_EACH as usize);
    elapsed / (2 * APPENDS_EACH)
}

fn tcp_loopback() -> Option<Address> {
    Some(Address::Tcp("127.0.0.1:0".parse().expect("address")))
}

/// Rows measured against another row of the same run rather than against
/// Python: `(row, reference row)`. The comparison command prints row /
/// reference for each pair.
pub const REFERENCES: &[(&str, &str)] = &[
    (
        "csp: Commstime, light processes (time per communication)",
        "go: Commstime, goroutines (reference; only with a Go toolchain)",
    ),
    (
        "pool: map of 100,000 trivial tasks, default chunks, 2 workers",
        "pool: rayon par_iter map of the same 100,000 tasks (reference)",
    ),
    (
        "connection: Listener/Client round trip, Unix socket",
        "socket: raw Unix socket round trip, polling as multiproc (reference)",
    ),
    (
        "connection: Listener/Client round trip, TCP loopback",
        "socket: raw TCP loopback round trip, polling as multiproc (reference)",
    ),
    (
        "manager: remote over TCP loopback, list append",
        "socket: raw TCP loopback round trip, polling as multiproc (reference)",
    ),
    (
        "connection: Listener/Client round trip, Unix socket",
        "socket: raw Unix socket round trip (reference)",
    ),
    (
        "connection: Listener/Client round trip, TCP loopback",
        "socket: raw TCP loopback round trip (reference)",
    ),
    (
        "manager: remote over TCP loopback, list append",
        "socket: raw TCP loopback round trip (reference)",
    ),
];

/// Every scenario, in the order of the comparison table.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "process: start + join, spawn",
        samples: 200,
        run: || timed(|| spawn_join(StartMethod::Spawn)),
    },
    Scenario {
        name: "process: start + join, forkserver",
        samples: 300,
        run: || timed(|| spawn_join(StartMethod::ForkServer)),
    },
    Scenario {
        name: "process: start + join, fork",
        samples: 300,
        run: || timed(|| spawn_join(StartMethod::Fork)),
    },
    Scenario { name: "lock: uncontended lock + unlock", samples: 30, run: lock_unlock },
    Scenario {
        name: "value: locked increment, 2 processes (time per increment)",
        samples: 15,
        run: value_increments_two_processes,
    },
    Scenario {
        name: "event: ping-pong round trip, 2 processes",
        samples: 15,
        run: event_ping_pong,
    },
    Scenario { name: "queue: round trip of a small message", samples: 11, run: queue_round_trip },
    Scenario {
        name: "queue: one-way 64-byte messages (time per message)",
        samples: 7,
        run: queue_small_one_way,
    },
    Scenario {
        name: "queue: one-way 1 MiB messages (time per message)",
        samples: 7,
        run: queue_big_one_way,
    },
    Scenario { name: "pipe: round trip of a small message", samples: 11, run: pipe_round_trip },
    Scenario {
        name: "pipe: one-way 64-byte messages (time per message)",
        samples: 7,
        run: pipe_small_one_way,
    },
    Scenario {
        name: "pipe: one-way 1 MiB messages (time per message)",
        samples: 7,
        run: pipe_big_one_way,
    },
    Scenario {
        name: "manager: list append",
        samples: 11,
        run: || manager_op(ManagerOp::ListAppend, None),
    },
    Scenario {
        name: "manager: dict set",
        samples: 11,
        run: || manager_op(ManagerOp::DictSet, None),
    },
    Scenario {
        name: "manager: dict get",
        samples: 11,
        run: || manager_op(ManagerOp::DictGet, None),
    },
    Scenario {
        name: "manager: namespace set",
        samples: 11,
        run: || manager_op(ManagerOp::NamespaceSet, None),
    },
    Scenario {
        name: "manager: namespace get",
        samples: 11,
        run: || manager_op(ManagerOp::NamespaceGet, None),
    },
    Scenario {
        name: "manager: two processes appending to one list (time per append)",
        samples: 11,
        run: manager_two_appenders,
    },
    Scenario {
        name: "manager: remote over TCP loopback, list append",
        samples: 11,
        run: || manager_op(ManagerOp::ListAppend, tcp_loopback()),
    },
    Scenario {
        name: "socket: raw Unix socket round trip (reference)",
        samples: 11,
        run: raw_unix_round_trip,
    },
    Scenario {
        name: "socket: raw Unix socket round trip, polling as multiproc (reference)",
        samples: 11,
        run: raw_unix_polling_round_trip,
    },
    Scenario {
        name: "connection: Listener/Client round trip, Unix socket",
        samples: 11,
        run: unix_connection_round_trip,
    },
    Scenario {
        name: "socket: raw TCP loopback round trip (reference)",
        samples: 11,
        run: raw_tcp_round_trip,
    },
    Scenario {
        name: "socket: raw TCP loopback round trip, polling as multiproc (reference)",
        samples: 11,
        run: raw_tcp_polling_round_trip,
    },
    Scenario {
        name: "connection: Listener/Client round trip, TCP loopback",
        samples: 11,
        run: tcp_connection_round_trip,
    },
    Scenario {
        name: "csp: Commstime, threads (time per communication)",
        samples: 15,
        run: csp::commstime_threads,
    },
    Scenario {
        name: "csp: Commstime, OS processes (time per communication)",
        samples: 15,
        run: csp::commstime_processes,
    },
    Scenario {
        name: "csp: Commstime, light processes (time per communication)",
        samples: 15,
        run: csp::commstime_light,
    },
    Scenario {
        name: "csp: a million light processes, created and each reading one value (total time)",
        samples: 3,
        run: csp::million_light,
    },
    Scenario {
        name: "csp: Commstime over std sync_channel(0), threads (reference)",
        samples: 15,
        run: csp::commstime_std,
    },
    Scenario {
        name: "csp: any-to-any, 4 writers and 4 readers, threads (time per communication)",
        samples: 9,
        run: csp::any_to_any_threads,
    },
    Scenario {
        name: "csp: any-to-any, 4 writers and 4 readers, OS processes (time per communication)",
        samples: 9,
        run: csp::any_to_any_processes,
    },
    Scenario {
        name: "csp: buffered channel one way, 64 B values, threads, local: never encoded (per value)",
        samples: 11,
        run: csp::one_way_local_small,
    },
    Scenario {
        name: "csp: buffered channel one way, 64 B values, threads, shared: encoded (per value)",
        samples: 11,
        run: csp::one_way_shared_small,
    },
    Scenario {
        name: "csp: buffered channel one way, 64 KiB values, threads, local: never encoded (per value)",
        samples: 11,
        run: csp::one_way_local_big,
    },
    Scenario {
        name: "csp: buffered channel one way, 64 KiB values, threads, shared: encoded (per value)",
        samples: 11,
        run: csp::one_way_shared_big,
    },
];

/// The pool rows (see [`pool`]).
pub const POOL_SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "pool: map of 100,000 trivial tasks, default chunks, 2 workers",
        samples: 30,
        run: pool::map_default_chunks,
    },
    Scenario {
        name: "pool: map with chunksize 1, 2 workers (time per task)",
        samples: 11,
        run: pool::map_chunksize_one,
    },
    Scenario {
        name: "pool: imap, 2 workers (time per task)",
        samples: 11,
        run: pool::imap_per_task,
    },
    Scenario {
        name: "pool: apply_async + get, one at a time, 2 workers (time per task)",
        samples: 11,
        run: pool::apply_async_get,
    },
    Scenario {
        name: "pool: start 2 workers (spawn) + close + join",
        samples: 30,
        run: pool::start_two_spawn,
    },
    Scenario {
        name: "pool: rayon par_iter map of the same 100,000 tasks (reference)",
        samples: 30,
        run: pool::rayon_map,
    },
];

/// The median of `samples` (which it sorts).
///
/// # Panics
///
/// If `samples` is empty.
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    let mid = samples.len() / 2;
    if samples.len() % 2 == 1 { samples[mid] } else { (samples[mid - 1] + samples[mid]) / 2 }
}
