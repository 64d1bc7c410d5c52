//! Light CSP processes: `#[process] async fn` bodies on the scheduler
//! thread, talking to each other, to threads and to OS processes.

mod common;

use multiproc::csp::{self, Channel, Light, Parallel, Reader, Writer, process};

#[process]
async fn produce(out: Writer<u64>, n: u64) -> csp::Result<()> {
    for i in 0..n {
        out.write_async(i).await?;
    }
    out.retire();
    Ok(())
}

#[process]
async fn sum(inp: Reader<u64>) -> csp::Result<u64> {
    let mut total = 0;
    loop {
        match inp.read_async().await {
            Ok(v) => total += v,
            Err(csp::Error::Retired) => return Ok(total),
            Err(e) => return Err(e),
        }
    }
}

#[test]
fn light_processes_talk_over_rendezvous_and_buffered_channels() {
    for ch in [Channel::<u64>::new().unwrap(), Channel::<u64>::buffered(8).unwrap()] {
        let (done, total) = csp::parallel!(produce(ch.writer(), 10_000), sum(ch.reader())).unwrap();
        done.unwrap();
        assert_eq!(total.unwrap(), (0..10_000).sum::<u64>());
    }
}

/// PyCSP's Commstime network, every process light.
#[process]
async fn prefix(inp: Reader<u64>, out: Writer<u64>, first: u64) -> csp::Result<()> {
    out.write_async(first).await?;
    loop {
        out.write_async(inp.read_async().await?).await?;
    }
}

#[process]
async fn delta(inp: Reader<u64>, a: Writer<u64>, b: Writer<u64>) -> csp::Result<()> {
    loop {
        let v = inp.read_async().await?;
        a.write_async(v).await?;
        b.write_async(v).await?;
    }
}

#[process]
async fn successor(inp: Reader<u64>, out: Writer<u64>) -> csp::Result<()> {
    loop {
        out.write_async(inp.read_async().await? + 1).await?;
    }
}

#[process]
async fn consume(inp: Reader<u64>, n: u64) -> csp::Result<()> {
    for expected in 0..n {
        assert_eq!(inp.read_async().await?, expected);
    }
    inp.poison();
    Ok(())
}

#[test]
fn commstime_runs_with_light_processes_and_poison_ends_it() {
    let (a, b, c, d) = (
        Channel::new().unwrap(),
        Channel::new().unwrap(),
        Channel::new().unwrap(),
        Channel::new().unwrap(),
    );
    let results = Parallel::new()
        .add(prefix(c.reader(), a.writer(), 0))
        .add(delta(a.reader(), b.writer(), d.writer()))
        .add(successor(b.reader(), c.writer()))
        .add(consume(d.reader(), 5_000))
        .run()
        .unwrap();
    assert_eq!(results.last(), Some(&Ok(())));
    for result in &results[..3] {
        assert_eq!(result, &Err(csp::Error::Poisoned));
    }
}

fn os_sum(inp: Reader<u64>) -> u64 {
    let mut total = 0;
    while let Ok(v) = inp.read() {
        total += v;
    }
    total
}

#[test]
fn a_light_writer_feeds_a_thread_and_an_os_process_on_one_channel() {
    let ch = Channel::<u64>::new().unwrap();
    let os = multiproc::Process::spawn(os_sum, ch.reader()).unwrap();
    let reader = ch.reader();
    let thread = std::thread::spawn(move || {
        let mut total = 0;
        while let Ok(v) = reader.read() {
            total += v;
        }
        total
    });
    produce(ch.writer(), 2_000).run().unwrap().unwrap();
    drop(ch);
    let total = thread.join().unwrap() + common::join(os).unwrap();
    assert_eq!(total, (0..2_000).sum::<u64>());
}

#[test]
fn a_panicking_light_process_fails_alone() {
    let boom = Light::new(async { panic!("light boom") }).name("boom");
    let err = boom.run().unwrap_err();
    assert!(matches!(&err, multiproc::Error::Panicked { message, .. } if message == "light boom"));
    // The scheduler goes on.
    assert_eq!(Light::new(async { 5 }).run().unwrap(), 5);
}

#[process]
async fn read_one(inp: Reader<u64>) -> u64 {
    inp.read_async().await.unwrap()
}

#[test]
fn a_hundred_thousand_light_readers_each_take_one_value() {
    let n = 100_000u64;
    let ch = Channel::<u64>::new().unwrap();
    let mut all = Parallel::new();
    for _ in 0..n {
        all = all.add(read_one(ch.reader()));
    }
    let writer = ch.writer();
    let feeder = std::thread::spawn(move || {
        for i in 0..n {
            writer.write(i).unwrap();
        }
    });
    drop(ch);
    let mut got = all.run().unwrap();
    feeder.join().unwrap();
    got.sort_unstable();
    assert_eq!(got, (0..n).collect::<Vec<_>>());
}
