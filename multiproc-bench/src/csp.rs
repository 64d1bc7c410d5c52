//! CSP rows: Commstime (PyCSP's classic: a ring of prefix, delta and
//! successor feeding a consumer) with threads and with OS processes, an
//! any-to-any farm of 4 writers and 4 readers, and the same networks over
//! `std::sync::mpsc::sync_channel(0)` (crossbeam's `bounded(0)` among the
//! peers) for reference.

use std::time::{Duration, Instant};

use multiproc::csp::{self, Channel, Parallel, Reader, Writer, process};
use serde_bytes::ByteBuf;

/// Values the Commstime consumer times (after as many untimed).
pub(crate) const COMMSTIME_VALUES: u64 = 20_000;
/// Channel communications per value in Commstime: prefix→delta,
/// delta→successor, delta→consumer, successor→prefix.
pub(crate) const PER_VALUE: u32 = 4;

#[process]
fn prefix(inp: Reader<u64>, out: Writer<u64>) -> csp::Result<()> {
    out.write(0)?;
    loop {
        out.write(inp.read()?)?;
    }
}

#[process]
fn delta(inp: Reader<u64>, to_consumer: Writer<u64>, to_successor: Writer<u64>) -> csp::Result<()> {
    loop {
        let value = inp.read()?;
        to_consumer.write(value)?;
        to_successor.write(value)?;
    }
}

#[process]
fn successor(inp: Reader<u64>, out: Writer<u64>) -> csp::Result<()> {
    loop {
        out.write(inp.read()? + 1)?;
    }
}

/// Reads `COMMSTIME_VALUES` untimed, then as many timed; returns the time
/// per communication in nanoseconds, then poisons the ring to end it.
#[process]
fn consumer(inp: Reader<u64>) -> csp::Result<u64> {
    for _ in 0..COMMSTIME_VALUES {
        inp.read()?;
    }
    let start = Instant::now();
    for _ in 0..COMMSTIME_VALUES {
        inp.read()?;
    }
    let per = start.elapsed() / (COMMSTIME_VALUES as u32 * PER_VALUE);
    inp.poison();
    Ok(per.as_nanos() as u64)
}

/// Commstime with every process a thread (`os == false`) or an OS process.
fn commstime(os: bool) -> Duration {
    let channels: Vec<Channel<u64>> = (0..4).map(|_| Channel::new().expect("channel")).collect();
    let [a, b, c, d] = [&channels[0], &channels[1], &channels[2], &channels[3]];
    // prefix -a-> delta -b-> consumer; delta -c-> successor -d-> prefix
    let mut processes = (
        prefix(d.reader(), a.writer()),
        delta(a.reader(), b.writer(), c.writer()),
        successor(c.reader(), d.writer()),
        consumer(b.reader()),
    );
    if os {
        processes = (processes.0.os(), processes.1.os(), processes.2.os(), processes.3.os());
    }
    drop(channels);
    let (p, q, r, time) =
        csp::parallel!(processes.0, processes.1, processes.2, processes.3).expect("commstime ran");
    for ended in [p, q, r] {
        assert!(ended.is_err_and(|e| e.is_poisoned()), "the ring ends by poison");
    }
    Duration::from_nanos(time.expect("the consumer's time"))
}

#[process]
async fn light_prefix(inp: Reader<u64>, out: Writer<u64>) -> csp::Result<()> {
    out.write_async(0).await?;
    loop {
        out.write_async(inp.read_async().await?).await?;
    }
}

#[process]
async fn light_delta(
    inp: Reader<u64>,
    to_consumer: Writer<u64>,
    to_successor: Writer<u64>,
) -> csp::Result<()> {
    loop {
        let value = inp.read_async().await?;
        to_consumer.write_async(value).await?;
        to_successor.write_async(value).await?;
    }
}

#[process]
async fn light_successor(inp: Reader<u64>, out: Writer<u64>) -> csp::Result<()> {
    loop {
        out.write_async(inp.read_async().await? + 1).await?;
    }
}

#[process]
async fn light_consumer(inp: Reader<u64>) -> csp::Result<u64> {
    for _ in 0..COMMSTIME_VALUES {
        inp.read_async().await?;
    }
    let start = Instant::now();
    for _ in 0..COMMSTIME_VALUES {
        inp.read_async().await?;
    }
    let per = start.elapsed() / (COMMSTIME_VALUES as u32 * PER_VALUE);
    inp.poison();
    Ok(per.as_nanos() as u64)
}

/// Commstime with light processes (tasks on the scheduler thread): the
/// time per channel communication.
pub fn commstime_light() -> Duration {
    let channels: Vec<Channel<u64>> = (0..4).map(|_| Channel::new().expect("channel")).collect();
    let [a, b, c, d] = [&channels[0], &channels[1], &channels[2], &channels[3]];
    let processes = (
        light_prefix(d.reader(), a.writer()),
        light_delta(a.reader(), b.writer(), c.writer()),
        light_successor(c.reader(), d.writer()),
        light_consumer(b.reader()),
    );
    drop(channels);
    let (p, q, r, time) =
        csp::parallel!(processes.0, processes.1, processes.2, processes.3).expect("commstime ran");
    for ended in [p, q, r] {
        assert!(ended.is_err_and(|e| e.is_poisoned()), "the ring ends by poison");
    }
    Duration::from_nanos(time.expect("the consumer's time"))
}

#[process]
async fn read_one(inp: Reader<u64>) -> u64 {
    inp.read_async().await.expect("a value")
}

#[process]
async fn write_all(out: Writer<u64>, n: u64) -> u64 {
    for i in 0..n {
        out.write_async(i).await.expect("a reader");
    }
    0
}

/// PyCSP's 1MillionProcesses: a million light processes each read one
/// value from one channel, a light writer writes a million values; the
/// total time, creation included.
pub fn million_light() -> Duration {
    let n = 1_000_000u64;
    let start = Instant::now();
    let ch = Channel::<u64>::new().expect("channel");
    let all = Parallel::new()
        .add_all((0..n).map(|_| read_one(ch.reader())))
        .add(write_all(ch.writer(), n));
    drop(ch);
    let got = all.run().expect("ran");
    let elapsed = start.elapsed();
    assert_eq!(got.iter().sum::<u64>(), n * (n - 1) / 2);
    drop(got);
    elapsed
}

/// Go's Commstime (goroutines and unbuffered channels), run by `go run`:
/// the time per communication.
pub fn commstime_go() -> Duration {
    let program = concat!(env!("CARGO_MANIFEST_DIR"), "/go/commstime.go");
    let output = std::process::Command::new("go").args(["run", program]).output().expect("go run");
    let text = String::from_utf8_lossy(&output.stdout);
    let nanos: f64 = text.trim().parse().unwrap_or_else(|_| panic!("go printed {text:?}"));
    Duration::from_secs_f64(nanos / 1e9)
}

/// Commstime with threads: the time per channel communication.
pub fn commstime_threads() -> Duration {
    commstime(false)
}

/// Commstime with OS processes: the time per channel communication.
pub fn commstime_processes() -> Duration {
    commstime(true)
}

/// Commstime between threads over channels made by `$channel` (an
/// expression giving a `(sender, receiver)` pair with `send` and `recv`
/// returning `Result`s, such as `sync_channel(0)`): the time per
/// communication. Dropping the consumer's end unwinds the ring.
macro_rules! commstime_over {
    ($channel:expr) => {{
        let (to_delta, delta_in) = $channel;
        let (to_consumer, consumer_in) = $channel;
        let (to_successor, successor_in) = $channel;
        let (to_prefix, prefix_in) = $channel;
        let threads = [
            std::thread::spawn(move || {
                let _ = to_delta.send(0);
                while let Ok(v) = prefix_in.recv() {
                    if to_delta.send(v).is_err() {
                        break;
                    }
                }
            }),
            std::thread::spawn(move || {
                while let Ok(v) = delta_in.recv() {
                    if to_consumer.send(v).is_err() || to_successor.send(v).is_err() {
                        break;
                    }
                }
            }),
            std::thread::spawn(move || {
                while let Ok(v) = successor_in.recv() {
                    if to_prefix.send(v + 1).is_err() {
                        break;
                    }
                }
            }),
        ];
        for _ in 0..$crate::csp::COMMSTIME_VALUES {
            consumer_in.recv().expect("value");
        }
        let start = std::time::Instant::now();
        for _ in 0..$crate::csp::COMMSTIME_VALUES {
            consumer_in.recv().expect("value");
        }
        let per = start.elapsed() / ($crate::csp::COMMSTIME_VALUES as u32 * $crate::csp::PER_VALUE);
        drop(consumer_in);
        for thread in threads {
            thread.join().expect("thread");
        }
        per
    }};
}
#[cfg(feature = "peers")]
pub(crate) use commstime_over;

/// Commstime over `std::sync::mpsc::sync_channel(0)` between threads.
pub fn commstime_std() -> Duration {
    commstime_over!(std::sync::mpsc::sync_channel::<u64>(0))
}

/// Values each writer of the any-to-any farm writes.
const FARM_VALUES: u64 = 5_000;
const FARM_WIDTH: usize = 4;

#[process]
fn farm_writer(out: Writer<u64>, start: multiproc::Barrier) -> csp::Result<u64> {
    start.wait()?;
    for i in 0..FARM_VALUES {
        out.write(i)?;
    }
    out.retire();
    Ok(0)
}

#[process]
fn farm_reader(inp: Reader<u64>) -> csp::Result<u64> {
    let mut count = 0;
    loop {
        match inp.read() {
            Ok(_) => count += 1,
            Err(e) if e.is_retired() => return Ok(count),
            Err(e) => return Err(e),
        }
    }
}

/// One rendezvous channel, 4 writers and 4 readers: the time per
/// communication, from the moment all writers are ready (start-up not
/// counted) to the end of the last process.
fn any_to_any(os: bool) -> Duration {
    let ch = Channel::<u64>::new().expect("channel");
    let start = multiproc::Barrier::new(FARM_WIDTH as u32 + 1).expect("barrier");
    let mut writers = farm_writer(ch.writer(), start.clone()) * FARM_WIDTH;
    let mut readers = farm_reader(ch.reader()) * FARM_WIDTH;
    if os {
        writers = writers.into_iter().map(|p| p.os()).collect();
        readers = readers.into_iter().map(|p| p.os()).collect();
    }
    drop(ch);
    let timer = std::thread::spawn(move || {
        start.wait().expect("barrier");
        Instant::now()
    });
    let counts = Parallel::new().add_all(writers).add_all(readers).run().expect("farm ran");
    let elapsed = timer.join().expect("timer").elapsed();
    let read: u64 = counts.into_iter().map(|c| c.expect("count")).sum();
    assert_eq!(read, FARM_VALUES * FARM_WIDTH as u64);
    elapsed / (FARM_VALUES as u32 * FARM_WIDTH as u32)
}

/// Any-to-any, 4 writers and 4 readers, threads.
pub fn any_to_any_threads() -> Duration {
    any_to_any(false)
}

/// Any-to-any, 4 writers and 4 readers, OS processes.
pub fn any_to_any_processes() -> Duration {
    any_to_any(true)
}

/// Values the one-way channel rows pass.
const ONE_WAY_VALUES: usize = 20_000;

/// A buffered channel (64 values) between two threads, one way: the time
/// per value of `size` bytes. `shared`: an end has travelled first (through
/// a `pipe()` and back), so every value is encoded, as between processes;
/// otherwise the channel is local and values move without encoding.
fn one_way_threads(size: usize, shared: bool) -> Duration {
    let ch = Channel::<ByteBuf>::buffered(64).expect("channel");
    let (mut r, w) = (ch.reader(), ch.writer());
    if shared {
        let (a, b) = multiproc::pipe::<Reader<ByteBuf>>().expect("pipe");
        a.send(&r).expect("send an end");
        r = b.recv().expect("receive an end");
    }
    drop(ch);
    let values: Vec<ByteBuf> =
        (0..ONE_WAY_VALUES).map(|_| ByteBuf::from(vec![7u8; size])).collect();
    let start = Instant::now();
    let writer = std::thread::spawn(move || {
        for v in values {
            w.write(v).expect("write");
        }
    });
    let mut bytes = 0;
    for _ in 0..ONE_WAY_VALUES {
        bytes += r.read().expect("read").len();
    }
    let elapsed = start.elapsed();
    writer.join().expect("writer");
    assert_eq!(bytes, size * ONE_WAY_VALUES);
    elapsed / ONE_WAY_VALUES as u32
}

/// One way between threads, 64 B values, a local channel (never encoded).
pub fn one_way_local_small() -> Duration {
    one_way_threads(64, false)
}

/// One way between threads, 64 B values, a shared channel (encoded).
pub fn one_way_shared_small() -> Duration {
    one_way_threads(64, true)
}

/// One way between threads, 64 KiB values, a local channel.
pub fn one_way_local_big() -> Duration {
    one_way_threads(64 << 10, false)
}

/// One way between threads, 64 KiB values, a shared channel.
pub fn one_way_shared_big() -> Duration {
    one_way_threads(64 << 10, true)
}
