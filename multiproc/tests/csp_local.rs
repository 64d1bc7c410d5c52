//! CSP channels whose ends stay in one process: values move without being
//! encoded (and need not be serde types) until an end travels, and then
//! the values in flight travel too.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::LIMIT;
use multiproc::StartMethod;
use multiproc::csp::{self, Alternation, Channel, Error, Reader, Writer, process};
use serde::{Deserialize, Serialize};

/// A value that counts its encodings and its drops.
#[derive(Debug)]
struct Counted {
    n: u64,
    encodings: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

impl Serialize for Counted {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.encodings.fetch_add(1, Ordering::SeqCst);
        self.n.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        Ok(Self { n, encodings: Arc::default(), drops: Arc::default() })
    }
}

struct Counters {
    encodings: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
}

impl Counters {
    fn new() -> Self {
        Self { encodings: Arc::default(), drops: Arc::default() }
    }

    fn value(&self, n: u64) -> Counted {
        Counted { n, encodings: self.encodings.clone(), drops: self.drops.clone() }
    }

    fn encodings(&self) -> usize {
        self.encodings.load(Ordering::SeqCst)
    }

    fn drops(&self) -> usize {
        self.drops.load(Ordering::SeqCst)
    }
}

#[test]
fn values_between_threads_are_never_encoded() {
    for capacity in [0, 4] {
        let counters = Counters::new();
        let ch = Channel::<Counted>::buffered(capacity).unwrap();
        let (r, w) = (ch.reader(), ch.writer());
        let values: Vec<Counted> = (0..100).map(|n| counters.value(n)).collect();
        let writer = std::thread::spawn(move || {
            for v in values {
                w.write(v).unwrap();
            }
        });
        let got: Vec<u64> = (0..100).map(|_| r.read_timeout(LIMIT).unwrap().n).collect();
        writer.join().unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>(), "capacity {capacity}");
        assert_eq!(counters.encodings(), 0, "capacity {capacity}");
        assert_eq!(counters.drops(), 100, "each value dropped once, by its reader");
    }
}

/// Not a serde type: a closure.
type Job = Box<dyn FnOnce() -> u64 + Send>;

#[process]
fn run_jobs(inp: Reader<Job>) -> csp::Result<u64> {
    let mut sum = 0;
    loop {
        match inp.read_timeout(LIMIT) {
            Ok(job) => sum += job(),
            Err(e) if e.is_retired() => return Ok(sum),
            Err(e) => return Err(e),
        }
    }
}

#[process]
fn send_jobs(out: Writer<Job>, n: u64) -> csp::Result<()> {
    for i in 0..n {
        out.write(Box::new(move || i * 2))?;
    }
    out.retire();
    Ok(())
}

#[test]
fn values_that_are_not_serde_types_pass_between_thread_processes() {
    for capacity in [0, 3] {
        let ch = Channel::<Job>::buffered(capacity).unwrap();
        let (sent, sum) =
            csp::parallel!(send_jobs(ch.writer(), 100), run_jobs(ch.reader())).unwrap();
        sent.unwrap();
        assert_eq!(sum.unwrap(), 9900);
    }
}

#[test]
fn alternations_move_values_that_are_not_serde_types() {
    let (a, b) = (Channel::<Job>::new().unwrap(), Channel::<Job>::new().unwrap());
    let (ra, wb) = (a.reader(), b.writer());
    let (wa, rb) = (a.writer(), b.reader());
    let t = std::thread::spawn(move || {
        wa.write(Box::new(|| 1u64)).unwrap();
        rb.read_timeout(LIMIT).unwrap()()
    });
    // First the input fires, then the output (the thread now reads).
    let mut fired = Vec::new();
    for _ in 0..2 {
        let mut alt = Alternation::new().input(&ra).output(&wb, Box::new(|| 2u64) as Job);
        let i = alt.pri_select().unwrap();
        fired.push(i);
        if i == 0 {
            let job: Job = alt.take::<Job>(0).unwrap();
            assert_eq!(job(), 1);
        }
    }
    assert_eq!(t.join().unwrap(), 2);
    fired.sort_unstable();
    assert_eq!(fired, [0, 1]);
}

#[test]
fn a_value_not_taken_in_time_is_dropped_once_and_an_unread_buffered_one_with_its_channel() {
    let counters = Counters::new();
    let ch = Channel::<Counted>::new().unwrap();
    let (_r, w) = (ch.reader(), ch.writer());
    assert_eq!(w.write_timeout(counters.value(1), Duration::from_millis(20)), Err(Error::Timeout));
    assert_eq!(w.try_write(counters.value(2)), Err(Error::WouldBlock));
    assert_eq!(counters.drops(), 2);
    drop((ch, _r, w));

    let ch = Channel::<Counted>::buffered(3).unwrap();
    let w = ch.writer();
    for n in 0..3 {
        w.write(counters.value(n)).unwrap();
    }
    assert_eq!(counters.drops(), 2);
    drop((ch, w));
    assert_eq!(counters.drops(), 5, "the buffered values go with the channel");
    assert_eq!(counters.encodings(), 0);
}

fn read_three(r: Reader<Counted>) -> Vec<u64> {
    (0..3).map(|_| r.read_timeout(LIMIT).unwrap().n).collect()
}

#[test]
fn values_waiting_when_an_end_first_travels_reach_the_other_process() {
    for method in common::METHODS {
        // Buffered: three values wait in the channel, held here.
        let counters = Counters::new();
        let ch = Channel::<Counted>::buffered(3).unwrap();
        let (w, _kept) = (ch.writer(), ch.reader());
        for n in 0..3 {
            w.write(counters.value(n)).unwrap();
        }
        assert_eq!(counters.encodings(), 0);
        let child = common::builder(method).spawn(read_three, ch.reader()).unwrap();
        assert_eq!(common::join(child).unwrap(), [0, 1, 2], "{method:?}");
        assert_eq!(counters.encodings(), 3);
        assert_eq!(counters.drops(), 3, "the values held here went once encoded");
        // From now on, values are encoded.
        w.write(counters.value(3)).unwrap();
        assert_eq!(counters.encodings(), 4);
    }
}

fn read_one(r: Reader<Counted>) -> u64 {
    r.read_timeout(LIMIT).unwrap().n
}

#[test]
fn a_writer_waiting_when_the_reader_end_travels_is_taken_by_the_other_process() {
    let counters = Counters::new();
    let ch = Channel::<Counted>::new().unwrap();
    let (w, r) = (ch.writer(), ch.reader());
    let value = counters.value(42);
    // The writer's value is in the channel (held here) before the end
    // travels: the writer sleeps waiting for a reader to take it.
    let writer =
        common::asleep_in_thread("the writer waits", move || w.write_timeout(value, LIMIT));
    let child = common::builder(StartMethod::Spawn).spawn(read_one, r).unwrap();
    assert_eq!(common::join(child).unwrap(), 42);
    assert_eq!(writer.join().unwrap(), Ok(()));
    assert_eq!(counters.encodings(), 1);
    assert_eq!(counters.drops(), 1, "the writer's own value, after its copy was taken");
}

#[test]
fn a_forked_copy_of_a_local_channel_end_fails_clearly() {
    let ch = Channel::<u64>::buffered(1).unwrap();
    let (r, w) = (ch.reader(), ch.writer());
    w.write(1).unwrap();
    let builder = common::builder(StartMethod::Fork);
    // SAFETY: the closure touches only the channel end and the allocator.
    let child = unsafe {
        builder.fork_closure_unchecked(move || match r.try_read() {
            Err(Error::Failed { message }) => message,
            other => format!("{other:?}"),
        })
    }
    .unwrap();
    let message = common::join(child).unwrap();
    assert!(message.contains("forked"), "{message}");
}

#[test]
fn values_handed_to_waiting_readers_are_delivered_exactly_once_under_timeouts() {
    // Writers and readers with short deadlines race on a local rendezvous
    // channel: a write that returned `Ok` was read exactly once, and a
    // timed-out write was read by nobody.
    let ch = Channel::<u64>::new().unwrap();
    let writers: Vec<_> = (0..3u64)
        .map(|k| {
            let w = ch.writer();
            std::thread::spawn(move || {
                let mut sent = Vec::new();
                for i in 0..2000 {
                    let v = k * 1_000_000 + i;
                    if w.write_timeout(v, Duration::from_micros(50)).is_ok() {
                        sent.push(v);
                    }
                }
                sent
            })
        })
        .collect();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let r = ch.reader();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut idle = 0;
                while idle < 200 {
                    match r.read_timeout(Duration::from_micros(100)) {
                        Ok(v) => {
                            got.push(v);
                            idle = 0;
                        }
                        Err(Error::Timeout) => idle += 1,
                        Err(Error::Retired) => break, // every writer is done
                        Err(e) => panic!("{e:?}"),
                    }
                }
                got
            })
        })
        .collect();
    let mut sent: Vec<u64> = writers.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let mut got: Vec<u64> = readers.into_iter().flat_map(|t| t.join().unwrap()).collect();
    sent.sort_unstable();
    got.sort_unstable();
    assert!(!sent.is_empty());
    assert_eq!(got, sent, "every value written was read once, and no other");
}

#[test]
fn a_waiting_reader_is_released_by_poison_and_by_its_channel_becoming_shared() {
    let ch = Channel::<u64>::new().unwrap();
    let r = ch.reader();
    let waiting = common::asleep_in_thread("the reader waits", move || r.read_timeout(LIMIT));
    ch.poison();
    assert_eq!(waiting.join().unwrap(), Err(Error::Poisoned));

    // Waiting here when a writer end leaves for another process: the value
    // written there reaches it.
    let ch = Channel::<u64>::new().unwrap();
    let (r, w) = (ch.reader(), ch.writer());
    let waiting = common::asleep_in_thread("the reader waits", move || r.read_timeout(LIMIT));
    let child = common::builder(StartMethod::Spawn).spawn(write_42, w).unwrap();
    assert_eq!(waiting.join().unwrap(), Ok(42));
    common::join(child).unwrap();
}

fn write_42(w: Writer<u64>) {
    w.write_timeout(42, LIMIT).unwrap();
}
