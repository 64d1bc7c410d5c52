//! Queues between processes: FIFO, bounds, close, joinable, sizes, kills.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{LIMIT, METHODS, cpu_ticks, eventually, join, wait};
use multiproc::{Error, JoinableQueue, Process, PutError, Queue, SimpleQueue};
use serde::{Deserialize, Serialize};

fn seed(q: Queue<(i32, Option<()>, String)>) {
    q.put((42, None, "hello".to_owned())).unwrap();
}

#[test]
fn the_seed_scenario_passes_a_tuple_from_a_child_with_every_start_method() {
    for method in METHODS {
        let q = Queue::new().unwrap();
        let p = common::builder(method).spawn(seed, q.clone()).unwrap();
        let item = q.get_timeout(LIMIT).unwrap();
        assert_eq!(format!("{item:?}"), r#"(42, None, "hello")"#, "{method:?}");
        join(p).unwrap();
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Message {
    producer: u32,
    seq: u32,
    payload: Vec<u8>,
    checksum: u64,
}

fn checksum(producer: u32, seq: u32, payload: &[u8]) -> u64 {
    payload.iter().fold(u64::from(producer) << 32 | u64::from(seq), |h, &b| {
        h.wrapping_mul(0x100_0000_01b3).wrapping_add(u64::from(b))
    })
}

fn message(producer: u32, seq: u32) -> Message {
    let len = (seq as usize * 7 + producer as usize) % 300;
    let payload: Vec<u8> = (0..len).map(|i| (i as u32 ^ seq) as u8).collect();
    Message { producer, seq, checksum: checksum(producer, seq, &payload), payload }
}

fn check(m: &Message) -> bool {
    m.checksum == checksum(m.producer, m.seq, &m.payload)
}

const PER_PRODUCER: u32 = 5_000;

fn produce(args: (Queue<Option<Message>>, u32)) {
    let (q, producer) = args;
    for seq in 0..PER_PRODUCER {
        q.put(Some(message(producer, seq))).unwrap();
    }
}

fn consume(q: Queue<Option<Message>>) -> Vec<(u32, u32)> {
    let mut seen = Vec::new();
    while let Some(m) = q.get_timeout(LIMIT).unwrap() {
        assert!(check(&m), "corrupted message {}/{}", m.producer, m.seq);
        seen.push((m.producer, m.seq));
    }
    seen
}

#[test]
fn four_producers_and_four_consumers_keep_per_producer_fifo_and_lose_nothing() {
    let q = Queue::builder().ring_bytes(64 << 10).build().unwrap();
    let consumers: Vec<_> = (0..4).map(|_| Process::spawn(consume, q.clone()).unwrap()).collect();
    let producers: Vec<_> = (0..4)
        .map(|i| common::builder(METHODS[i % 3]).spawn(produce, (q.clone(), i as u32)))
        .map(Result::unwrap)
        .collect();
    for p in producers {
        join(p).unwrap();
    }
    for _ in 0..4 {
        q.put(None).unwrap(); // one stop sign per consumer
    }
    let mut all: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for c in consumers {
        let seen = join(c).unwrap();
        // FIFO per producer, as seen by each consumer.
        let mut last: BTreeMap<u32, u32> = BTreeMap::new();
        for (producer, seq) in seen {
            if let Some(prev) = last.insert(producer, seq) {
                assert!(seq > prev, "producer {producer}: {seq} after {prev}");
            }
            all.entry(producer).or_default().push(seq);
        }
    }
    for producer in 0..4 {
        let mut seqs = all.remove(&producer).unwrap_or_default();
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (0..PER_PRODUCER).collect::<Vec<_>>(),
            "exactly once, producer {producer}"
        );
    }
    assert!(q.is_empty());
}

#[test]
fn a_bounded_queue_blocks_and_times_out() {
    let q = Queue::bounded(2).unwrap();
    q.put(1).unwrap();
    q.try_put(2).unwrap();
    assert!(q.is_full());
    assert_eq!(q.len(), 2);
    assert!(matches!(q.try_put(3), Err(PutError::Full(3))));
    let start = Instant::now();
    assert!(matches!(q.put_timeout(3, Duration::from_millis(30)), Err(PutError::Timeout(3))));
    assert!(start.elapsed() >= Duration::from_millis(30));
    let getter = q.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        getter.get().unwrap()
    });
    q.put_timeout(3, LIMIT).unwrap(); // unblocked by the get
    assert_eq!(t.join().unwrap(), 1);
    assert_eq!((q.get().unwrap(), q.get().unwrap()), (2, 3));
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    let start = Instant::now();
    assert!(matches!(q.get_timeout(Duration::from_millis(30)), Err(Error::Timeout)));
    assert!(start.elapsed() >= Duration::from_millis(30));
}

fn block_on_get(q: Queue<u8>) -> bool {
    matches!(q.get_timeout(LIMIT), Err(Error::Closed))
}

#[test]
fn close_fails_puts_drains_gets_and_wakes_blocked_consumers() {
    let q = Queue::new().unwrap();
    let blocked = Process::spawn(block_on_get, q.clone()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    q.close();
    assert!(join(blocked).unwrap(), "a blocked consumer learns of the close");

    let q = Queue::new().unwrap();
    q.put(1u8).unwrap();
    q.put(2).unwrap();
    q.close();
    assert!(q.is_closed());
    assert!(matches!(q.put(3), Err(PutError::Closed(3))));
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(q.try_get().unwrap(), 2);
    assert!(matches!(q.get(), Err(Error::Closed)));
    assert!(matches!(q.try_get(), Err(Error::Closed)));
}

fn work(q: JoinableQueue<u32>) -> u32 {
    let mut done = 0;
    while let Ok(job) = q.get_timeout(LIMIT) {
        if job == u32::MAX {
            q.task_done().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_micros(100));
        done += 1;
        q.task_done().unwrap();
    }
    done
}

#[test]
fn a_joinable_queue_joins_on_workers_in_other_processes() {
    let q = JoinableQueue::new().unwrap();
    let workers: Vec<_> = (0..3).map(|_| Process::spawn(work, q.clone()).unwrap()).collect();
    for job in 0..300 {
        q.put(job).unwrap();
    }
    assert!(q.join_timeout(LIMIT), "all jobs processed");
    assert!(q.is_empty());
    for _ in 0..3 {
        q.put(u32::MAX).unwrap();
    }
    let done: u32 = workers.into_iter().map(|w| join(w).unwrap()).sum();
    assert_eq!(done, 300);
    assert!(q.join_timeout(LIMIT));
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooOften)));
}

fn echo_len(args: (Queue<serde_bytes::ByteBuf>, Queue<usize>)) {
    let (input, output) = args;
    // Items over the default 64 MiB limit come: this handle takes them.
    let input = input.with_max_message(512 << 20);
    while let Ok(item) = input.get_timeout(LIMIT) {
        let sum = item.iter().map(|&b| b as usize).sum::<usize>();
        output.put(item.len() ^ (sum << 1)).unwrap();
    }
}

#[test]
fn messages_of_every_size_pass_including_256_mib_through_a_small_ring() {
    let ring = 64 << 10;
    let input = Queue::builder().ring_bytes(ring).max_message(512 << 20).build().unwrap();
    let output = Queue::new().unwrap();
    let child = Process::spawn(echo_len, (input.clone(), output.clone())).unwrap();
    let sizes = [0, 1, 7, ring - 16, ring - 8, ring, ring + 1, 3 * ring + 5, 256 << 20];
    for size in sizes {
        let bytes: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let sum = bytes.iter().map(|&b| b as usize).sum::<usize>();
        input.put(serde_bytes::ByteBuf::from(bytes)).unwrap();
        assert_eq!(output.get_timeout(LIMIT).unwrap(), size ^ (sum << 1), "size {size}");
    }
    input.close();
    join(child).unwrap();
}

fn put_and_exit(q: Queue<String>) {
    q.put("made it".to_owned()).unwrap();
    std::process::exit(0); // at once: no feeder thread to flush
}

#[test]
fn an_item_put_just_before_exit_arrives() {
    for method in METHODS {
        let q = Queue::new().unwrap();
        let p = common::builder(method).spawn(put_and_exit, q.clone()).unwrap();
        assert_eq!(wait(&p), 0);
        assert_eq!(q.try_get().unwrap(), "made it", "{method:?}");
    }
}

#[test]
fn simple_queue_basics() {
    let q = SimpleQueue::new().unwrap();
    assert!(q.is_empty());
    q.put(vec![1, 2]).unwrap();
    assert!(!q.is_empty());
    assert_eq!(q.get().unwrap(), vec![1, 2]);
    q.close();
    assert!(q.put(vec![]).is_err());
}

fn file_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn ten_thousand_queue_cycles_leak_nothing() {
    drop(Queue::<u8>::new().unwrap());
    let fds = file_descriptors();
    for i in 0..10_000u32 {
        let q = Queue::new().unwrap();
        q.put(i).unwrap();
        assert_eq!(q.get().unwrap(), i);
        drop(JoinableQueue::<u8>::new().unwrap());
    }
    eventually("no descriptor is left behind", || file_descriptors() <= fds);
}

fn wait_for_one(args: (Queue<u8>, multiproc::Event)) -> u8 {
    let (q, ready) = args;
    ready.set();
    q.get().unwrap()
}

#[test]
fn a_blocked_consumer_uses_no_cpu() {
    let q = Queue::new().unwrap();
    let ready = multiproc::Event::new().unwrap();
    let p = Process::spawn(wait_for_one, (q.clone(), ready.clone())).unwrap();
    // Started (its start-up CPU is not measured), then asleep in get.
    assert!(ready.wait_timeout(LIMIT), "the consumer did not start");
    common::wait_until_process_asleep("the consumer sleeps in get", p.pid());
    let before = cpu_ticks(p.pid());
    // The measure itself: CPU used over one second of waiting.
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(p.pid()) - before;
    q.put(7).unwrap();
    assert_eq!(join(p).unwrap(), 7);
    // Clock ticks are 10 ms: 1% of a second is one tick.
    assert!(used <= 1, "a blocked consumer used {used} ticks of CPU in one second");
}

/// Runs `f` on a helper thread and returns its result, failing the test if
/// it takes longer than `within` (the thread is left behind, blocked).
fn within<R: Send + 'static>(
    within: Duration,
    what: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(within).unwrap_or_else(|_| panic!("{what}: still blocked after {within:?}"))
}

#[test]
fn try_and_timed_puts_return_while_another_producer_is_blocked_in_put() {
    let q = Queue::bounded(1).unwrap();
    q.put(1).unwrap();
    let blocked = q.clone();
    let (put_done, blocked_put) = std::sync::mpsc::channel();
    common::asleep_in_thread("the other producer sleeps in put", move || {
        let _ = put_done.send(blocked.put(2).is_ok());
    });
    let tried = q.clone();
    let full = within(Duration::from_secs(3), "try_put", move || tried.try_put(3));
    assert!(matches!(full, Err(PutError::Full(3))), "{full:?}");
    let timed = q.clone();
    let (timed_out, elapsed) = within(Duration::from_secs(3), "put_timeout", move || {
        let start = Instant::now();
        (timed.put_timeout(4, Duration::from_millis(100)), start.elapsed())
    });
    assert!(matches!(timed_out, Err(PutError::Timeout(4))), "{timed_out:?}");
    assert!(elapsed >= Duration::from_millis(100));
    // The blocked put still completes once there is room.
    assert_eq!(q.get_timeout(LIMIT).unwrap(), 1);
    assert!(blocked_put.recv_timeout(LIMIT).unwrap());
    assert_eq!(q.get_timeout(LIMIT).unwrap(), 2);
    assert!(q.is_empty());
}

#[test]
fn try_and_timed_gets_return_while_another_consumer_is_blocked_in_get() {
    let q = Queue::<u32>::new().unwrap();
    let blocked = q.clone();
    let (got, blocked_get) = std::sync::mpsc::channel();
    common::asleep_in_thread("the other consumer sleeps in get", move || {
        let _ = got.send(blocked.get().ok());
    });
    let tried = q.clone();
    let empty = within(Duration::from_secs(3), "try_get", move || tried.try_get());
    assert!(matches!(empty, Err(Error::Empty)), "{empty:?}");
    let timed = q.clone();
    let (timed_out, elapsed) = within(Duration::from_secs(3), "get_timeout", move || {
        let start = Instant::now();
        (timed.get_timeout(Duration::from_millis(100)), start.elapsed())
    });
    assert!(matches!(timed_out, Err(Error::Timeout)), "{timed_out:?}");
    assert!(elapsed >= Duration::from_millis(100));
    q.put(7).unwrap();
    assert_eq!(blocked_get.recv_timeout(LIMIT).unwrap(), Some(7));
}

type Bytes = serde_bytes::ByteBuf;

fn pattern(len: usize, seed: u8) -> Bytes {
    Bytes::from((0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect::<Vec<u8>>())
}

fn take_one(q: Queue<Bytes>) -> Bytes {
    q.get_timeout(LIMIT).unwrap()
}

#[test]
fn a_timed_or_try_put_of_an_item_larger_than_the_ring_gives_it_back_and_changes_nothing() {
    let q = Queue::<Bytes>::builder().ring_bytes(16 << 10).build().unwrap();
    let big = pattern(64 << 10, 1);
    let (putter, other) = (q.clone(), q.clone());
    let (timed_out, elapsed, other_put) =
        within(Duration::from_secs(3), "put_timeout", move || {
            // Another producer is not held up beyond its own deadline while
            // the large item waits for room (once it sleeps waiting).
            let putter_tid = common::thread_id();
            let other = std::thread::spawn(move || {
                eventually("the large put sleeps", || common::thread_asleep(putter_tid));
                let start = Instant::now();
                let r = other.put_timeout(pattern(8, 9), Duration::from_millis(50));
                (r.map_err(|e| e.into_inner()), start.elapsed())
            });
            let start = Instant::now();
            let r = putter.put_timeout(big, Duration::from_millis(300));
            (r, start.elapsed(), other.join().unwrap())
        });
    let Err(PutError::Timeout(back)) = timed_out else { panic!("{timed_out:?}") };
    assert_eq!(back, pattern(64 << 10, 1), "the item comes back whole");
    assert!(elapsed >= Duration::from_millis(300));
    assert_eq!(other_put.0, Err(pattern(8, 9)), "no room for the other producer either");
    assert!(other_put.1 < Duration::from_secs(2), "the other producer waited {:?}", other_put.1);
    let tried = q.clone();
    let full = within(Duration::from_secs(3), "try_put", move || tried.try_put(back));
    assert!(matches!(full, Err(PutError::Full(_))), "{full:?}");
    assert!(q.is_empty());
    // A consumer sees neither the abandoned item nor a piece of it, and
    // later items, small and large, flow.
    q.put_timeout(pattern(5, 2), LIMIT).unwrap();
    let consumer = Process::spawn(take_one, q.clone()).unwrap();
    assert_eq!(join(consumer).unwrap(), pattern(5, 2));
    let consumer = Process::spawn(take_one, q.clone()).unwrap();
    q.put_timeout(pattern(64 << 10, 3), LIMIT).unwrap();
    assert_eq!(join(consumer).unwrap(), pattern(64 << 10, 3));
    assert!(q.is_empty());
}

const STREAMED: usize = 1 << 20;

fn put_streamed(args: (Queue<Bytes>, multiproc::Event)) {
    let (q, started) = args;
    started.set();
    q.put(pattern(STREAMED, 4)).unwrap();
}

/// Starts a child that puts 1 MiB through `q`'s 64 KiB ring, and returns
/// once the child sleeps in the middle of the item, the ring full.
fn producer_stuck_mid_item(q: &Queue<Bytes>) -> Process<()> {
    let started = multiproc::Event::new().unwrap();
    let p = Process::spawn(put_streamed, (q.clone(), started.clone())).unwrap();
    assert!(started.wait_timeout(LIMIT), "the producer did not start");
    common::wait_until_process_asleep("the producer sleeps mid-item", p.pid());
    p
}

#[test]
fn a_consumer_of_an_item_whose_producer_is_killed_keeps_its_deadline() {
    let q = Queue::<Bytes>::builder().ring_bytes(64 << 10).build().unwrap();
    let p = producer_stuck_mid_item(&q);
    p.kill().unwrap();
    wait(&p);
    let getter = q.clone();
    let (got, elapsed) = within(Duration::from_secs(5), "get_timeout", move || {
        let start = Instant::now();
        (getter.get_timeout(Duration::from_millis(300)), start.elapsed())
    });
    assert!(matches!(got, Err(Error::Timeout)), "{got:?}");
    assert!(elapsed >= Duration::from_millis(300));
    let tried = q.clone();
    assert!(matches!(
        within(Duration::from_secs(3), "try_get", move || tried.try_get()),
        Err(Error::Empty)
    ));
    q.put_timeout(pattern(3, 5), LIMIT).unwrap();
    assert_eq!(q.get_timeout(LIMIT).unwrap(), pattern(3, 5));
}

#[test]
fn a_blocking_get_drops_the_item_of_a_killed_producer_and_waits_for_the_next() {
    let q = Queue::<Bytes>::builder().ring_bytes(64 << 10).build().unwrap();
    let p = producer_stuck_mid_item(&q);
    let getter = q.clone();
    let (got, blocked_get) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = got.send(getter.get());
    });
    p.kill().unwrap();
    wait(&p);
    // The getter notices the death (within its 20 ms liveness poll) and
    // goes on waiting for a whole item: no result comes in 200 ms.
    assert!(
        blocked_get.recv_timeout(Duration::from_millis(200)).is_err(),
        "get returned without an item"
    );
    q.put_timeout(pattern(70 << 10, 6), LIMIT).unwrap();
    assert_eq!(blocked_get.recv_timeout(LIMIT).unwrap().unwrap(), pattern(70 << 10, 6));
}

fn stop_signal(pid: u32, signal: i32) {
    // SAFETY: sends a signal to our own child; no memory is involved.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal})");
}

#[test]
fn a_consumer_gives_up_on_a_stalled_producer_at_its_deadline_and_the_item_is_not_lost() {
    let q = Queue::<Bytes>::builder().ring_bytes(64 << 10).build().unwrap();
    let p = producer_stuck_mid_item(&q);
    stop_signal(p.pid(), libc::SIGSTOP);
    let getter = q.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let start = Instant::now();
        let _ = tx.send((getter.get_timeout(Duration::from_millis(300)), start.elapsed()));
    });
    let outcome = rx.recv_timeout(Duration::from_secs(5));
    stop_signal(p.pid(), libc::SIGCONT);
    let Ok((got, elapsed)) = outcome else {
        let _ = p.kill();
        panic!("get_timeout: still blocked after 5 s");
    };
    assert!(matches!(got, Err(Error::Timeout)), "{got:?}");
    assert!(elapsed >= Duration::from_millis(300));
    // The producer lives on: its item arrives whole, exactly once.
    assert_eq!(q.get_timeout(LIMIT).unwrap(), pattern(STREAMED, 4));
    join(p).unwrap();
    assert!(matches!(q.try_get(), Err(Error::Empty)));
}

fn take_one_signalling(args: (Queue<Bytes>, multiproc::Event)) -> Bytes {
    let (q, started) = args;
    started.set();
    q.get_timeout(LIMIT).unwrap()
}

#[test]
fn a_large_timed_put_that_runs_out_while_a_consumer_waits_is_never_delivered() {
    let q = Queue::<Bytes>::builder().ring_bytes(16 << 10).build().unwrap();
    let started = multiproc::Event::new().unwrap();
    let consumer = Process::spawn(take_one_signalling, (q.clone(), started.clone())).unwrap();
    assert!(started.wait_timeout(LIMIT), "the consumer did not start");
    eventually("the consumer sleeps in get", || common::proc_state(consumer.pid()) == Some('S'));
    // Stopped while it holds the consumer side: it reads nothing, and the
    // put cannot take its pieces back.
    stop_signal(consumer.pid(), libc::SIGSTOP);
    let putter = q.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(putter.put_timeout(pattern(64 << 10, 7), Duration::from_millis(200)));
    });
    let outcome = rx.recv_timeout(Duration::from_secs(3));
    stop_signal(consumer.pid(), libc::SIGCONT);
    let Ok(put) = outcome else {
        let _ = consumer.kill();
        panic!("put_timeout: still blocked after 3 s");
    };
    let Err(PutError::Timeout(back)) = put else { panic!("{put:?}") };
    assert_eq!(back, pattern(64 << 10, 7));
    // The consumer drops what it reads of the called-off item and takes
    // the next one.
    q.put_timeout(pattern(9, 8), LIMIT).unwrap();
    assert_eq!(join(consumer).unwrap(), pattern(9, 8));
    assert!(q.is_empty());
}

fn tagged(seq: u32) -> Bytes {
    pattern(3 * (16 << 10) + seq as usize * 8, seq as u8)
}

fn put_tagged(args: (Queue<Bytes>, u32)) {
    let (q, n) = args;
    for seq in 0..n {
        q.put(tagged(seq)).unwrap();
    }
}

/// Stops and continues a process over and over until dropped; then lets it
/// run (or kills it, if the test failed).
struct Staller {
    pid: u32,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Staller {
    fn new(pid: u32) -> Self {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = done.clone();
        let thread = std::thread::spawn(move || {
            // The stalls are the fault injected, so they are timed: each
            // is longer than the ring's 50 ms stream stall, after which a
            // consumer past its deadline gives up on the item.
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                stop_signal(pid, libc::SIGSTOP);
                std::thread::sleep(Duration::from_millis(60));
                stop_signal(pid, libc::SIGCONT);
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Self { pid, done, thread: Some(thread) }
    }
}

impl Drop for Staller {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        stop_signal(self.pid, libc::SIGCONT);
        if std::thread::panicking() {
            stop_signal(self.pid, libc::SIGKILL);
        }
    }
}

#[test]
fn short_gets_against_a_stalling_producer_of_large_items_lose_and_duplicate_nothing() {
    const ITEMS: u32 = 40;
    let q = Queue::<Bytes>::builder().ring_bytes(16 << 10).build().unwrap();
    let producer = Process::spawn(put_tagged, (q.clone(), ITEMS)).unwrap();
    let staller = Staller::new(producer.pid());
    // Gets that gave up in the middle of an item take longer than their
    // timeout (the producer must stall first).
    let (mut got, mut timeouts, mut gave_up_mid_item) = (Vec::new(), 0, 0);
    let deadline = Instant::now() + LIMIT;
    while got.len() < ITEMS as usize {
        assert!(Instant::now() < deadline, "{} items within {LIMIT:?}", got.len());
        let start = Instant::now();
        match q.get_timeout(Duration::from_millis(5)) {
            Ok(item) => got.push(item),
            Err(Error::Timeout) if start.elapsed() >= Duration::from_millis(40) => {
                gave_up_mid_item += 1;
            }
            Err(Error::Timeout) => timeouts += 1,
            Err(e) => panic!("{e}"),
        }
    }
    drop(staller);
    join(producer).unwrap();
    println!("{timeouts} timeouts, {gave_up_mid_item} gave up mid-item");
    for (seq, item) in got.iter().enumerate() {
        assert!(*item == tagged(seq as u32), "item {seq} wrong or out of order");
    }
    assert!(matches!(q.try_get(), Err(Error::Empty)));
}

#[test]
fn a_put_over_the_message_limit_hands_the_item_back_and_changes_nothing() {
    let q = Queue::<serde_bytes::ByteBuf>::builder().max_message(64 << 10).build().unwrap();
    for size in [100 << 10, 4 << 20] {
        match q.put(serde_bytes::ByteBuf::from(vec![7u8; size])) {
            Err(PutError::Failed(item, Error::FrameTooLarge { max, .. })) => {
                assert_eq!(item.len(), size);
                assert_eq!(max, 64 << 10);
            }
            other => panic!("{size}: expected FrameTooLarge, got {other:?}"),
        }
    }
    assert_eq!(q.len(), 0);
    q.put(serde_bytes::ByteBuf::from(vec![1u8; 10])).unwrap();
    assert_eq!(q.get_timeout(LIMIT).unwrap().len(), 10);
}

/// Puts items of the given sizes (this handle has the default limit).
fn put_sizes(args: (Queue<serde_bytes::ByteBuf>, Vec<usize>)) {
    let (q, sizes) = args;
    for size in sizes {
        q.put(serde_bytes::ByteBuf::from(vec![3u8; size])).unwrap();
    }
}

#[test]
fn a_receiver_drops_items_over_its_limit_as_they_come_and_gets_the_next() {
    // The receiver's limit is its own: the sender's handle (in the child)
    // has the default and puts what this one refuses.
    let q = Queue::<serde_bytes::ByteBuf>::builder()
        .ring_bytes(64 << 10)
        .max_message(16 << 10)
        .build()
        .unwrap();
    // Whole records and a stream through the ring, each followed by a
    // small item that must still arrive.
    let sizes = vec![32 << 10, 5, 1 << 20, 6, 16 << 10, 7];
    let child = Process::spawn(put_sizes, (q.clone(), sizes)).unwrap();
    for expected in [Err(()), Ok(5), Err(()), Ok(6), Err(()), Ok(7)] {
        match (q.get_timeout(LIMIT), expected) {
            (Err(Error::FrameTooLarge { max, .. }), Err(())) => assert_eq!(max, 16 << 10),
            (Ok(item), Ok(len)) => assert_eq!(item.len(), len),
            (other, expected) => panic!("expected {expected:?}, got {other:?}"),
        }
    }
    join(child).unwrap();
    assert_eq!(q.len(), 0);
}

/// Puts, by reference, messages larger than the ring (streamed) between
/// small ones (written whole), each with content of its own.
fn put_patterned(q: Queue<Vec<u8>>) {
    for i in 0..4u8 {
        let big: Vec<u8> = (0..(300 << 10) + usize::from(i)).map(|j| (j as u8) ^ i).collect();
        q.put_ref(&big).unwrap();
        q.put_ref(&vec![i; 3]).unwrap();
    }
}

#[test]
fn put_ref_streams_large_and_small_items_intact_across_processes() {
    // A 64 KiB ring: the large items stream through it in pieces, and are
    // put together in the receiver's scratch buffer, reused between them.
    let q = Queue::<Vec<u8>>::builder().ring_bytes(64 << 10).build().unwrap();
    let p = common::builder(multiproc::StartMethod::Spawn).spawn(put_patterned, q.clone()).unwrap();
    for i in 0..4u8 {
        let big = q.get_timeout(LIMIT).unwrap();
        assert_eq!(big.len(), (300 << 10) + usize::from(i));
        assert!(big.iter().enumerate().all(|(j, &b)| b == (j as u8) ^ i), "item {i} corrupted");
        assert_eq!(q.get_timeout(LIMIT).unwrap(), vec![i; 3]);
    }
    join(p).unwrap();
}

#[test]
fn put_ref_keeps_the_callers_value_and_reports_a_closed_queue() {
    let q = Queue::<String>::new().unwrap();
    let text = "kept".to_owned();
    q.put_ref(&text).unwrap();
    assert_eq!(text, "kept");
    assert_eq!(q.get_timeout(LIMIT).unwrap(), "kept");
    q.close();
    assert!(matches!(q.put_ref(&text), Err(Error::Closed)));
}

fn drain_with_iter(q: Queue<u32>) -> Vec<u32> {
    q.iter().map(|item| item.expect("an item")).collect()
}

#[test]
fn iterating_a_queue_takes_every_item_and_ends_once_it_is_closed() {
    for method in METHODS {
        let q = Queue::new().unwrap();
        let consumer = common::builder(method).spawn(drain_with_iter, q.clone()).unwrap();
        for i in 0..100 {
            q.put(i).unwrap();
        }
        q.close();
        assert_eq!(join(consumer).unwrap(), (0..100).collect::<Vec<_>>(), "{method:?}");
        // `for x in &q` on the closed, empty queue ends at once.
        assert_eq!((&q).into_iter().count(), 0);
    }
}

#[test]
fn try_iter_takes_what_a_queue_holds_now_and_stops_when_it_is_empty() {
    let q = Queue::new().unwrap();
    for i in 0..5u8 {
        q.put(i).unwrap();
    }
    let got: Vec<u8> = q.try_iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(got, [0, 1, 2, 3, 4]);
    assert_eq!(q.try_iter().count(), 0);
    assert!(!q.is_closed(), "an empty queue is not a closed one");
    q.put(9).unwrap();
    assert_eq!(q.try_iter().next().unwrap().unwrap(), 9);
}

#[test]
fn an_item_that_does_not_decode_is_yielded_as_an_error_and_ends_the_iteration() {
    let bytes = Queue::<u8>::new().unwrap();
    bytes.put(5).unwrap(); // a string of 5 bytes that are not there
    bytes.put(0).unwrap(); // an empty string
    let q: Queue<String> = retype(&bytes);
    let mut it = q.iter();
    assert!(matches!(it.next(), Some(Err(_))), "the bad item is reported");
    assert!(it.next().is_none());
    // The queue itself goes on.
    assert_eq!(q.get_timeout(LIMIT).unwrap(), "");
}

/// The same queue as a handle of another item type (what a program whose
/// two sides disagree on the type gets): sent as one type over a socket,
/// received as the other.
fn retype<U>(q: &Queue<u8>) -> Queue<U> {
    use multiproc::connection::{Address, Client, Connection, Listener};
    let address = Address::Abstract(format!("mp-retype-{}", std::process::id()));
    let listener = Listener::bind_unauthenticated(address).unwrap();
    let address = listener.address().clone();
    let q = q.clone();
    let sender = std::thread::spawn(move || {
        let conn: Connection<Queue<u8>, ()> = Client::connect(&address, None).unwrap();
        conn.send(&q).unwrap();
        conn
    });
    let conn: Connection<(), Queue<U>> = listener.accept().unwrap();
    let got = conn.recv_timeout(LIMIT).unwrap();
    drop(sender.join().unwrap());
    got
}

#[test]
fn a_lock_put_in_a_queue_is_refused_saying_what_to_use_instead() {
    let q = Queue::<multiproc::Lock>::new().unwrap();
    let err = match q.put(multiproc::Lock::new().unwrap()) {
        Err(PutError::Failed(_, err)) => err,
        other => panic!("expected a refusal, got {:?}", other.map_err(|e| e.to_string())),
    };
    let text = err.to_string();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert!(text.contains("file descriptor"), "{text}");
    assert!(text.contains("argument") && text.contains("Connection"), "{text}");
    // Plain values still go through.
    let q = Queue::<u8>::new().unwrap();
    q.put(1).unwrap();
    assert_eq!(q.get_timeout(LIMIT).unwrap(), 1);
}

fn drain_simple_queue(q: SimpleQueue<u32>) -> Vec<u32> {
    (&q).into_iter().map(|item| item.expect("an item")).collect()
}

#[test]
fn a_simple_queue_iterates_like_a_queue() {
    let q = SimpleQueue::new().unwrap();
    let consumer = Process::spawn(drain_simple_queue, q.clone()).unwrap();
    for i in 0..50 {
        q.put(i).unwrap();
    }
    q.close();
    assert_eq!(join(consumer).unwrap(), (0..50).collect::<Vec<_>>());
    assert_eq!(q.iter().count(), 0, "closed and empty: the end");

    let q = SimpleQueue::new().unwrap();
    q.put(1u8).unwrap();
    q.put(2).unwrap();
    let now: Vec<u8> = q.try_iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(now, [1, 2]);
    assert_eq!(q.try_iter().count(), 0, "empty: the end, without waiting");
}
