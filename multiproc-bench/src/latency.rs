//! Round trips timed one by one, for percentiles: multiproc's blocking
//! round trips and the physical limits of this machine (two processes
//! spinning on shared memory; a plain futex ping-pong).
#![allow(unsafe_code)] // the raw references map shared memory by hand

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use multiproc::{Connection, Event, Process, Queue, StartMethod, pipe};

/// Round trips timed per run.
pub const ROUND_TRIPS: usize = 20_000;

/// One latency scenario: runs `ROUND_TRIPS` round trips between two
/// processes and returns each one's time.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// The row's name; also the key in the Python script's output.
    pub name: &'static str,
    /// Runs the round trips.
    pub run: fn() -> Vec<Duration>,
}

/// The latency rows, multiproc's first, then the references.
pub const LATENCIES: &[Latency] = &[
    Latency { name: "queue: round trip of a small message", run: queue },
    Latency {
        name: "queue: awaited round trip of a small message (tokio, both processes)",
        run: queue_awaited,
    },
    Latency { name: "pipe: round trip of a small message", run: pipe_trip },
    Latency { name: "event: ping-pong round trip, 2 processes", run: event },
    Latency { name: "csp: rendezvous round trip over two channels, 2 processes", run: csp_trip },
    Latency { name: "raw: spinning on shared memory (physical limit, reference)", run: raw_spin },
    Latency { name: "raw: futex ping-pong (reference)", run: raw_futex },
];

/// `p`-th percentile (0..=100) of `samples` (sorted here).
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

fn fork<A, R>(f: fn(A) -> R, args: A) -> Process<R>
where
    A: serde::Serialize + serde::de::DeserializeOwned + 'static,
    R: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    Process::builder().start_method(StartMethod::Fork).spawn(f, args).expect("spawn")
}

/// Untimed round trips first, for this long: a forked child starts on its
/// parent's CPU and the scheduler moves it only after ~15 ms, during which
/// every round trip is two context switches (the same for Python's rows).
pub const WARM_UP: Duration = Duration::from_millis(30);

/// Round trips `n = 0, 1, ...`: untimed for [`WARM_UP`], then
/// [`ROUND_TRIPS`] timed one by one. The partner must answer every `n`.
pub(crate) fn timed_loop(mut one: impl FnMut(u64)) -> Vec<Duration> {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < WARM_UP {
        one(n);
        n += 1;
    }
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    for n in n..n + ROUND_TRIPS as u64 {
        let start = Instant::now();
        one(n);
        times.push(start.elapsed());
    }
    times
}

fn echo(queues: (Queue<u64>, Queue<u64>)) {
    let (input, output) = queues;
    while let Ok(n) = input.get() {
        output.put(n).expect("put");
    }
}

fn queue() -> Vec<Duration> {
    let (there, back) = (Queue::new().expect("queue"), Queue::new().expect("queue"));
    let child = fork(echo, (there.clone(), back.clone()));
    let times = timed_loop(|n| {
        there.put(n).expect("put");
        assert_eq!(back.get().expect("get"), n);
    });
    there.close();
    child.join().expect("join");
    times
}

/// A single-threaded tokio runtime, as a process that awaits would run.
pub(crate) fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// [`timed_loop`] for an awaited round trip.
pub(crate) async fn timed_loop_async(mut one: impl AsyncFnMut(u64)) -> Vec<Duration> {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < WARM_UP {
        one(n).await;
        n += 1;
    }
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    for n in n..n + ROUND_TRIPS as u64 {
        let start = Instant::now();
        one(n).await;
        times.push(start.elapsed());
    }
    times
}

fn echo_awaiting(queues: (Queue<u64>, Queue<u64>)) {
    let (input, output) = queues;
    current_thread().block_on(async {
        while let Ok(n) = input.get_async().await {
            output.put_async(n).await.expect("put");
        }
    });
}

fn queue_awaited() -> Vec<Duration> {
    let (there, back) = (Queue::new().expect("queue"), Queue::new().expect("queue"));
    let child = fork(echo_awaiting, (there.clone(), back.clone()));
    let times = current_thread().block_on(timed_loop_async(async |n| {
        there.put_async(n).await.expect("put");
        assert_eq!(back.get_async().await.expect("get"), n);
    }));
    there.close();
    child.join().expect("join");
    times
}

fn pipe_echo(conn: Connection<u64>) {
    while let Ok(n) = conn.recv() {
        conn.send(&n).expect("send");
    }
}

fn pipe_trip() -> Vec<Duration> {
    let (mine, theirs) = pipe::<u64>().expect("pipe");
    let child = fork(pipe_echo, theirs);
    let times = timed_loop(|n| {
        mine.send(&n).expect("send");
        assert_eq!(mine.recv().expect("recv"), n);
    });
    mine.close();
    child.join().expect("join");
    times
}

fn pong(events: (Event, Event, Event)) {
    let (ping, pong, stop) = events;
    loop {
        ping.wait();
        ping.clear();
        if stop.is_set() {
            return;
        }
        pong.set();
    }
}

fn event() -> Vec<Duration> {
    let (ping, pong_event) = (Event::new().expect("event"), Event::new().expect("event"));
    let stop = Event::new().expect("event");
    let child = fork(pong, (ping.clone(), pong_event.clone(), stop.clone()));
    let times = timed_loop(|_| {
        ping.set();
        pong_event.wait();
        pong_event.clear();
    });
    stop.set();
    ping.set();
    child.join().expect("join");
    times
}

/// A shared anonymous page, inherited by forked children at the same
/// address: two words, "ping" and "pong".
struct Page(*mut AtomicU32);

impl Page {
    fn new() -> Self {
        // SAFETY: a fresh anonymous mapping; nothing else refers to it.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                4096,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
            )
        }
        .expect("mmap");
        Self(ptr.cast())
    }

    fn word(&self, i: usize) -> &AtomicU32 {
        // SAFETY: the page is mapped, zeroed, aligned, lives as long as `self`
        // (and in a forked child for its whole life), and is only accessed
        // through atomics.
        unsafe { &*self.0.add(i) }
    }

    fn addr(&self) -> u64 {
        self.0 as u64
    }

    fn at(addr: u64) -> Self {
        Self(addr as *mut AtomicU32)
    }
}

/// Answers every ping `n` with pong `n`, until ping `u32::MAX`.
fn spin_pong(addr: u64) {
    let page = Page::at(addr);
    let mut n = 1;
    loop {
        let ping = loop {
            let now = page.word(0).load(Ordering::Acquire);
            if now >= n {
                break now;
            }
            std::hint::spin_loop();
        };
        if ping == u32::MAX {
            return;
        }
        page.word(1).store(ping, Ordering::Release);
        n = ping + 1;
    }
}

fn raw_spin() -> Vec<Duration> {
    let page = Page::new();
    let child = fork(spin_pong, page.addr());
    let mut n = 0u32;
    let times = timed_loop(|_| {
        n += 1;
        page.word(0).store(n, Ordering::Release);
        while page.word(1).load(Ordering::Acquire) != n {
            std::hint::spin_loop();
        }
    });
    page.word(0).store(u32::MAX, Ordering::Release);
    child.join().expect("join");
    times
}

fn futex_wait_for(word: &AtomicU32, n: u32) {
    loop {
        let now = word.load(Ordering::Acquire);
        if now == n {
            return;
        }
        let _ = rustix::thread::futex::wait(word, rustix::thread::futex::Flags::empty(), now, None);
    }
}

fn futex_set(word: &AtomicU32, n: u32) {
    word.store(n, Ordering::Release);
    let _ = rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), 1);
}

/// Answers every ping `n` with pong `n`, until ping `u32::MAX`.
fn futex_pong(addr: u64) {
    let page = Page::at(addr);
    let mut n = 1;
    loop {
        let ping = futex_wait_from(page.word(0), n);
        if ping == u32::MAX {
            return;
        }
        futex_set(page.word(1), ping);
        n = ping + 1;
    }
}

/// Waits until `word` is at least `n`; returns it.
fn futex_wait_from(word: &AtomicU32, n: u32) -> u32 {
    loop {
        let now = word.load(Ordering::Acquire);
        if now >= n {
            return now;
        }
        let _ = rustix::thread::futex::wait(word, rustix::thread::futex::Flags::empty(), now, None);
    }
}

fn raw_futex() -> Vec<Duration> {
    let page = Page::new();
    let child = fork(futex_pong, page.addr());
    let mut n = 0u32;
    let times = timed_loop(|_| {
        n += 1;
        futex_set(page.word(0), n);
        futex_wait_for(page.word(1), n);
    });
    futex_set(page.word(0), u32::MAX);
    child.join().expect("join");
    times
}

fn csp_echo(ends: (multiproc::csp::Reader<u64>, multiproc::csp::Writer<u64>)) {
    let (input, output) = ends;
    while let Ok(n) = input.read() {
        output.write(n).expect("write");
    }
}

/// Two rendezvous channels, a child echoing: a write completes only when
/// the other side has taken the value, so one round trip is two
/// rendezvous.
fn csp_trip() -> Vec<Duration> {
    use multiproc::csp::Channel;
    let (there, back) =
        (Channel::<u64>::new().expect("channel"), Channel::<u64>::new().expect("channel"));
    let child = fork(csp_echo, (there.reader(), back.writer()));
    let (out, input) = (there.writer(), back.reader());
    let times = timed_loop(|n| {
        out.write(n).expect("write");
        assert_eq!(input.read().expect("read"), n);
    });
    out.retire();
    drop(input);
    child.join().expect("join");
    times
}
