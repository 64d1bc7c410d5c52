//! CSP alternation: guards, priorities, and alternations facing each other
//! across processes.

mod common;

use std::time::{Duration, Instant};

use common::LIMIT;
use multiproc::csp::{self, Alternation, Channel, Error, Reader, Writer};

#[test]
fn pri_select_with_a_skip_between_inputs_never_takes_the_input_after_it() {
    let (a, b) = (Channel::<u8>::buffered(1).unwrap(), Channel::<u8>::buffered(1).unwrap());
    let (ra, rb) = (a.reader(), b.reader());
    b.writer().write(2).unwrap();
    let chosen = Alternation::new().input(&ra).skip().input(&rb).pri_select().unwrap();
    assert_eq!(chosen, 1, "skip, not the second input");
    a.writer().write(1).unwrap();
    let mut alt = Alternation::new().input(&ra).skip().input(&rb);
    assert_eq!(alt.pri_select(), Ok(0));
    assert_eq!(alt.take::<u8>(0), Some(1));
    // The second input's value is still there.
    assert_eq!(rb.read_timeout(LIMIT), Ok(2));
}

#[test]
fn a_timeout_guard_fires_after_its_time_and_not_before() {
    let ch = Channel::<u8>::new().unwrap();
    let r = ch.reader();
    let start = Instant::now();
    let chosen =
        Alternation::new().input(&r).timeout(Duration::from_millis(50)).pri_select().unwrap();
    assert_eq!(chosen, 1);
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[test]
fn a_poisoned_guard_raises_only_when_nothing_else_can_fire() {
    let (a, b) = (Channel::<u8>::new().unwrap(), Channel::<u8>::buffered(1).unwrap());
    let (ra, rb) = (a.reader(), b.reader());
    a.writer().poison();
    b.writer().write(5).unwrap();
    let mut alt = Alternation::new().input(&ra).input(&rb);
    assert_eq!(alt.pri_select(), Ok(1));
    assert_eq!(Alternation::new().input(&ra).input(&rb).pri_select(), Err(Error::Poisoned));
}

fn write_all(args: (Writer<u64>, u64)) -> csp::Result<()> {
    let (w, n) = args;
    for i in 0..n {
        w.write(i)?;
    }
    Ok(())
}

#[test]
fn an_alternation_reads_from_writers_in_other_processes_each_value_once() {
    let (a, b) = (Channel::<u64>::new().unwrap(), Channel::<u64>::new().unwrap());
    let (ra, rb) = (a.reader(), b.reader());
    // As in PyCSP, a selection fails once a guarded channel is retired and
    // no guard can fire: writers kept here keep both channels open.
    let _keep = (a.writer(), b.writer());
    let pa = multiproc::Process::spawn(write_all, (a.writer(), 200)).unwrap();
    let pb = multiproc::Process::spawn(write_all, (b.writer(), 200)).unwrap();
    let (mut from_a, mut from_b) = (Vec::new(), Vec::new());
    while from_a.len() + from_b.len() < 400 {
        csp::fair_select! {
            read(ra) -> v => from_a.push(v),
            read(rb) -> v => from_b.push(v),
            timeout(LIMIT) => panic!("no value within the limit"),
        }
        .unwrap();
    }
    assert_eq!(from_a, (0..200).collect::<Vec<_>>());
    assert_eq!(from_b, (0..200).collect::<Vec<_>>());
    common::join(pa).unwrap().unwrap();
    common::join(pb).unwrap().unwrap();
}

fn read_all(args: (Reader<u64>, u64)) -> csp::Result<Vec<u64>> {
    let (r, n) = args;
    (0..n).map(|_| r.read_timeout(LIMIT)).collect()
}

#[test]
fn output_guards_hand_values_to_a_reader_in_another_process() {
    let ch = Channel::<u64>::new().unwrap();
    let idle = Channel::<u64>::new().unwrap();
    let (w, r_idle) = (ch.writer(), idle.reader());
    let p = multiproc::Process::spawn(read_all, (ch.reader(), 100)).unwrap();
    for i in 0..100 {
        let chosen = csp::pri_select! {
            read(r_idle) -> _v => "idle",
            write(w, i) => "wrote",
            timeout(LIMIT) => "timeout",
        }
        .unwrap();
        assert_eq!(chosen, "wrote");
    }
    assert_eq!(common::join(p).unwrap().unwrap(), (0..100).collect::<Vec<_>>());
}

/// Alternates `n` times between writing on `out` and reading on `inp`;
/// returns what it read and how many it wrote.
fn alternate(args: (Writer<u64>, Reader<u64>, u64, u64)) -> csp::Result<(Vec<u64>, u64)> {
    let (out, inp, n, base) = args;
    let (mut read, mut written) = (Vec::new(), 0);
    while read.len() as u64 + written < n {
        let value = base + written;
        csp::select! {
            write(out, value) => written += 1,
            read(inp) -> v => read.push(v),
            timeout(LIMIT) => panic!("the alternations deadlocked"),
        }?;
    }
    Ok((read, written))
}

#[test]
fn alternations_with_output_guards_on_both_sides_never_deadlock_across_processes() {
    // Each process alternates between writing to the other and reading
    // from it: every communication is between two alternations.
    let (ab, ba) = (Channel::<u64>::new().unwrap(), Channel::<u64>::new().unwrap());
    const N: u64 = 200;
    let pa = multiproc::Process::spawn(alternate, (ab.writer(), ba.reader(), N, 0)).unwrap();
    let pb =
        multiproc::Process::spawn(alternate, (ba.writer(), ab.reader(), N, 1_000_000)).unwrap();
    let (read_a, wrote_a) = common::join(pa).unwrap().unwrap();
    let (read_b, wrote_b) = common::join(pb).unwrap().unwrap();
    // Exactly once: what each read is exactly what the other wrote, in order.
    assert_eq!(read_b, (0..wrote_a).collect::<Vec<_>>());
    assert_eq!(read_a, (1_000_000..1_000_000 + wrote_b).collect::<Vec<_>>());
    assert_eq!(read_a.len() as u64 + wrote_a, N);
}

#[test]
fn two_alternating_readers_share_a_writers_values_exactly_once() {
    let ch = Channel::<u64>::new().unwrap();
    let w = ch.writer();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let r = ch.reader();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let mut alt = Alternation::new().input(&r).timeout(Duration::from_millis(500));
                    match alt.alt_select() {
                        Ok(0) => got.push(alt.take::<u64>(0).unwrap()),
                        Ok(_) | Err(_) => return got,
                    }
                }
            })
        })
        .collect();
    for i in 0..500 {
        w.write_timeout(i, LIMIT).unwrap();
    }
    let mut all: Vec<u64> = readers.into_iter().flat_map(|t| t.join().unwrap()).collect();
    all.sort_unstable();
    assert_eq!(all, (0..500).collect::<Vec<_>>());
}
