//! CSP: channels, retire and poison, processes in threads and OS processes.

mod common;

use std::time::Duration;

use common::LIMIT;
use multiproc::csp::{self, Channel, Error, Parallel, Reader, Writer, process};

#[process]
fn producer(out: Writer<u64>, n: u64) -> csp::Result<()> {
    for i in 0..n {
        out.write(i)?;
    }
    out.retire();
    Ok(())
}

/// The sum of what `inp` delivers until it retires.
fn sum_until_retired(inp: &Reader<u64>) -> csp::Result<u64> {
    let mut sum = 0;
    loop {
        match inp.read_timeout(LIMIT) {
            Ok(v) => sum += v,
            Err(e) if e.is_retired() => return Ok(sum),
            Err(e) => return Err(e),
        }
    }
}

#[process]
fn consumer(inp: Reader<u64>) -> csp::Result<u64> {
    sum_until_retired(&inp)
}

#[test]
fn the_issue_program_runs_with_threads_and_with_os_processes() {
    let ch = Channel::<u64>::new().unwrap();
    let (done, sum) = csp::parallel!(producer(ch.writer(), 1000), consumer(ch.reader())).unwrap();
    done.unwrap();
    assert_eq!(sum.unwrap(), 499_500);

    let ch = Channel::<u64>::new().unwrap();
    let (done, sum) =
        csp::parallel!(producer(ch.writer(), 1000).os(), consumer(ch.reader()).os()).unwrap();
    done.unwrap();
    assert_eq!(sum.unwrap(), 499_500);
}

#[process]
fn produce_then_sum(out: Writer<u64>, inp: Reader<u64>, n: u64) -> csp::Result<u64> {
    // A producer that is also a consumer, so one Parallel holds one type.
    if n > 0 {
        for i in 0..n {
            out.write(i)?;
        }
        out.retire();
        return Ok(0);
    }
    sum_until_retired(&inp)
}

#[test]
fn one_writer_four_readers_share_the_values_exactly_once() {
    for os in [false, true] {
        let ch = Channel::<u64>::new().unwrap();
        let idle = Channel::<u64>::new().unwrap();
        let mut readers = produce_then_sum(idle.writer(), ch.reader(), 0) * 4;
        let mut writer = produce_then_sum(ch.writer(), idle.reader(), 1000);
        if os {
            readers = readers.into_iter().map(|p| p.os()).collect();
            writer = writer.os();
        }
        drop(idle);
        let sums = Parallel::new().add(writer).add_all(readers).run().unwrap();
        let total: u64 = sums.into_iter().map(|s| s.unwrap()).sum();
        assert_eq!(total, 499_500, "os: {os}");
    }
}

#[test]
fn a_rendezvous_write_waits_for_a_reader_and_a_timed_out_one_delivers_nothing() {
    let ch = Channel::<u32>::new().unwrap();
    let (r, w) = (ch.reader(), ch.writer());
    assert_eq!(w.write_timeout(1, Duration::from_millis(20)), Err(Error::Timeout));
    assert_eq!(w.try_write(2), Err(Error::WouldBlock));
    // Nothing of either write is left in the channel.
    assert_eq!(r.try_read(), Err(Error::WouldBlock));
    let t = std::thread::spawn(move || w.write(3));
    assert_eq!(r.read_timeout(LIMIT), Ok(3));
    t.join().unwrap().unwrap();
}

fn fill(w: Writer<String>) {
    for word in ["buffered", "before", "reading"] {
        w.write(word.to_owned()).unwrap();
    }
}

#[test]
fn a_buffered_channel_is_written_with_no_reader_and_read_later_in_another_process() {
    let ch = Channel::<String>::buffered(3).unwrap();
    csp::Process::new(fill, ch.writer()).os().run().unwrap();
    let r = ch.reader();
    let words: Vec<String> = (0..3).map(|_| r.read_timeout(LIMIT).unwrap()).collect();
    assert_eq!(words, ["buffered", "before", "reading"]);
    // Its writer retired when the process ended.
    assert_eq!(r.read_timeout(LIMIT), Err(Error::Retired));
}

#[test]
fn retire_as_pycsp_counts_it() {
    // Every reader retires: writers get Retired.
    let ch = Channel::<u8>::buffered(4).unwrap();
    let (r1, r2, w) = (ch.reader(), ch.reader(), ch.writer());
    r1.retire();
    r1.retire(); // twice: a no-op, not a second reader leaving
    w.write(1).unwrap();
    r2.retire();
    assert_eq!(w.write(2), Err(Error::Retired));

    // Every writer retires: readers drain what is buffered, then Retired.
    let ch = Channel::<u8>::buffered(4).unwrap();
    let (r, w1, w2) = (ch.reader(), ch.writer(), ch.writer());
    w1.write(1).unwrap();
    drop(w1); // dropping retires
    w2.write(2).unwrap();
    w2.retire();
    assert_eq!((r.read(), r.read(), r.read()), (Ok(1), Ok(2), Err(Error::Retired)));
}

#[test]
fn poison_from_a_writer_lets_buffered_values_through_and_from_a_reader_drops_them() {
    let ch = Channel::<u8>::buffered(4).unwrap();
    let (r, w) = (ch.reader(), ch.writer());
    w.write(1).unwrap();
    w.poison();
    assert_eq!(w.write(2), Err(Error::Poisoned));
    assert_eq!(r.read(), Ok(1));
    assert_eq!(r.read(), Err(Error::Poisoned));

    let ch = Channel::<u8>::buffered(4).unwrap();
    let (r, w) = (ch.reader(), ch.writer());
    w.write(1).unwrap();
    r.poison();
    assert_eq!(r.read(), Err(Error::Poisoned));
    assert_eq!(w.write(2), Err(Error::Poisoned));
}

#[test]
fn poison_wakes_a_blocked_reader_in_another_process() {
    let ch = Channel::<u64>::new().unwrap();
    let ready = multiproc::Event::new().unwrap();
    let p = multiproc::Process::spawn(read_one, (ch.reader(), ready.clone())).unwrap();
    assert!(ready.wait_timeout(LIMIT), "the reader did not start");
    common::wait_until_process_asleep("the reader sleeps in read", p.pid());
    ch.writer().poison();
    assert_eq!(common::join(p).unwrap(), Err(Error::Poisoned));
}

fn read_one(args: (Reader<u64>, multiproc::Event)) -> csp::Result<u64> {
    let (inp, ready) = args;
    ready.set();
    inp.read_timeout(LIMIT)
}

#[process]
fn relay(inp: Reader<u64>, out: Writer<u64>) -> csp::Result<()> {
    loop {
        out.write(inp.read_timeout(LIMIT)?)?;
    }
}

#[process]
fn poison_after(out: Writer<u64>, n: u64) -> csp::Result<()> {
    for i in 0..n {
        out.write(i)?;
    }
    Err(Error::Poisoned)
}

#[test]
fn poison_spreads_through_a_network_from_one_process() {
    for os in [false, true] {
        let (a, b) = (Channel::<u64>::new().unwrap(), Channel::<u64>::new().unwrap());
        let (mut source, mut middle) =
            (poison_after(a.writer(), 10), relay(a.reader(), b.writer()));
        let mut sink = consumer(b.reader());
        if os {
            (source, middle, sink) = (source.os(), middle.os(), sink.os());
        }
        let (first, second, third) = csp::parallel!(source, middle, sink).unwrap();
        assert_eq!(first, Err(Error::Poisoned));
        assert_eq!(second, Err(Error::Poisoned), "os: {os}");
        assert_eq!(third, Err(Error::Poisoned), "os: {os}");
    }
}

fn use_sent_end(ends: multiproc::Connection<Writer<u64>>) -> csp::Result<()> {
    let w = ends.recv_timeout(LIMIT)?;
    w.write(77)
}

#[test]
fn channel_ends_travel_through_pipes_and_work_there() {
    let (mine, theirs) = multiproc::pipe::<Writer<u64>>().unwrap();
    let data = Channel::<u64>::new().unwrap();
    let r = data.reader();
    let running = csp::Process::new(use_sent_end, theirs).os().start().unwrap();
    mine.send(&data.writer()).unwrap();
    assert_eq!(r.read_timeout(LIMIT), Ok(77));
    running.join().unwrap().unwrap();
    // The travelling writer retired when the child ended: the channel has
    // no writer left.
    assert_eq!(r.read_timeout(LIMIT), Err(Error::Retired));
}

fn use_end_from_channel(ends: Reader<Writer<u64>>) -> csp::Result<()> {
    let w = ends.read_timeout(LIMIT)?;
    w.write(88)
}

#[test]
fn channel_ends_travel_through_channels_and_work_there() {
    for os in [false, true] {
        let ends = Channel::<Writer<u64>>::new().unwrap();
        let data = Channel::<u64>::new().unwrap();
        let r = data.reader();
        let mut p = csp::Process::new(use_end_from_channel, ends.reader());
        if os {
            p = p.os();
        }
        let running = p.start().unwrap();
        ends.writer().write_timeout(data.writer(), LIMIT).unwrap();
        assert_eq!(r.read_timeout(LIMIT), Ok(88), "os: {os}");
        running.join().unwrap().unwrap();
        // The travelling writer retired where it ended.
        assert_eq!(r.read_timeout(LIMIT), Err(Error::Retired), "os: {os}");
    }
}

#[test]
fn a_value_taken_back_leaves_its_descriptors_behind_and_the_next_gets_its_own() {
    let ch = Channel::<(u32, multiproc::FdHandle)>::new().unwrap();
    let (r, w) = (ch.reader(), ch.writer());
    // No reader: taken back, its descriptor record left on the socket.
    assert_eq!(
        w.write_timeout((1, common::numbered_fd(1)), Duration::from_millis(20)),
        Err(Error::Timeout)
    );
    let t = std::thread::spawn(move || w.write_timeout((2, common::numbered_fd(2)), LIMIT));
    let (index, fd) = r.read_timeout(LIMIT).unwrap();
    t.join().unwrap().unwrap();
    assert_eq!((index, common::number_of(fd)), (2, 2));
}

fn panics(w: Writer<u8>) {
    let _keep = w;
    panic!("deliberate CSP panic");
}

#[test]
fn a_panicking_process_fails_parallel_after_the_others_end_and_retires_its_ends() {
    let ch = Channel::<u8>::new().unwrap();
    let reader = ch.reader();
    let waiting = std::thread::spawn(move || reader.read_timeout(LIMIT));
    let err = csp::Process::new(panics, ch.writer()).run().unwrap_err();
    assert!(err.to_string().contains("deliberate CSP panic"), "{err}");
    assert_eq!(waiting.join().unwrap(), Err(Error::Retired));
}

fn blocked_writer(w: Writer<u64>) -> csp::Result<()> {
    w.write(1)?;
    w.write(2)
}

#[test]
fn a_writer_killed_in_a_rendezvous_leaves_the_channel_working() {
    let ch = Channel::<u64>::new().unwrap();
    let r = ch.reader();
    let child = multiproc::Process::spawn(blocked_writer, ch.writer()).unwrap();
    assert_eq!(r.read_timeout(LIMIT), Ok(1));
    // Kill it once it sleeps again: in writing 2, waiting for a reader
    // (or still in writing 1, not woken yet: both cases end below).
    common::wait_until_process_asleep("the writer sleeps in write", child.pid());
    child.kill().unwrap();
    let _ = common::join(child);
    // Its value was put before it died: delivered once, or not at all.
    let w = ch.writer();
    let t = std::thread::spawn(move || w.write(3));
    let mut got = vec![r.read_timeout(LIMIT).unwrap()];
    if got[0] == 2 {
        got.push(r.read_timeout(LIMIT).unwrap());
    }
    assert_eq!(got.last(), Some(&3));
    t.join().unwrap().unwrap();
}

/// In a child of its own (other tests open descriptors meanwhile): the
/// descriptors open before and after `n` channels came and went.
fn channel_cycles(n: u32) -> (usize, usize) {
    let before = common::open_fds();
    for _ in 0..n {
        let ch = Channel::<u8>::buffered(1).unwrap();
        let (r, w) = (ch.reader(), ch.writer());
        w.write(1).unwrap();
        assert_eq!(r.read(), Ok(1));
    }
    (before, common::open_fds())
}

#[test]
fn ten_thousand_channels_come_and_go_without_leaking_descriptors() {
    let (before, after) =
        common::join(multiproc::Process::spawn(channel_cycles, 10_000).unwrap()).unwrap();
    assert_eq!(after, before, "descriptors leaked");
}

fn write_twice(w: Writer<u64>) -> csp::Result<()> {
    w.write(1)?;
    w.write(2)
}

#[test]
fn ends_given_to_a_plain_process_move_there_with_every_start_method() {
    for method in common::METHODS {
        let ch = Channel::<u64>::buffered(2).unwrap();
        let r = ch.reader();
        // The parent's copy of the writer must not retire when the
        // arguments are dropped here (with fork, the child's copy lives on).
        let p = common::builder(method).spawn(write_twice, ch.writer()).unwrap();
        assert_eq!(r.read_timeout(LIMIT), Ok(1), "{method:?}");
        assert_eq!(r.read_timeout(LIMIT), Ok(2), "{method:?}");
        common::join(p).unwrap().unwrap();
        assert_eq!(r.read_timeout(LIMIT), Err(Error::Retired), "{method:?}");
    }
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: sends a signal to our own child; no memory is involved.
    #[allow(unsafe_code)]
    let sent = unsafe { libc::kill(pid as i32, signal) };
    assert_eq!(sent, 0);
}

#[test]
fn a_timed_write_keeps_its_deadline_while_a_stopped_reader_holds_the_channel() {
    let ch = Channel::<u64>::new().unwrap();
    let w = ch.writer();
    let ready = multiproc::Event::new().unwrap();
    let p = multiproc::Process::spawn(read_one, (ch.reader(), ready.clone())).unwrap();
    assert!(ready.wait_timeout(LIMIT), "the reader did not start");
    common::wait_until_process_asleep("the reader sleeps in read", p.pid());
    signal(p.pid(), libc::SIGSTOP);
    let start = std::time::Instant::now();
    let timed = w.write_timeout(1, Duration::from_millis(100));
    let elapsed = start.elapsed();
    signal(p.pid(), libc::SIGCONT);
    assert_eq!(timed, Err(Error::Timeout));
    assert!(elapsed < Duration::from_secs(5), "the timed write took {elapsed:?}");
    // Taken back: the reader, running again, skips it and gets the next.
    w.write_timeout(2, LIMIT).unwrap();
    assert_eq!(common::join(p).unwrap(), Ok(2));
}

#[process]
fn send_one(out: Writer<u64>, value: u64) -> csp::Result<()> {
    out.write(value)
}

#[process]
fn spawner(out: Writer<u64>) -> csp::Result<()> {
    // Spawned processes run on while this one goes on; they are joined as
    // it returns.
    csp::spawn(send_one(out.clone(), 1)).unwrap();
    csp::spawn(send_one(out.clone(), 2).os()).unwrap();
    Ok(())
}

#[test]
fn spawned_processes_run_on_and_are_joined_when_their_spawner_ends() {
    let ch = Channel::<u64>::new().unwrap();
    let r = ch.reader();
    let running = spawner(ch.writer()).start().unwrap();
    let mut got = [r.read_timeout(LIMIT).unwrap(), r.read_timeout(LIMIT).unwrap()];
    got.sort_unstable();
    assert_eq!(got, [1, 2]);
    running.join().unwrap().unwrap();
    // Every writer (the spawner's and the spawned ones') has retired.
    assert_eq!(r.read_timeout(LIMIT), Err(Error::Retired));
}

fn my_id(_: ()) -> csp::ProcessId {
    csp::current_process_id()
}

#[test]
fn every_process_has_its_own_id() {
    let ids = Parallel::new()
        .add(csp::Process::new(my_id, ()))
        .add(csp::Process::new(my_id, ()))
        .add(csp::Process::new(my_id, ()).os())
        .run()
        .unwrap();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "{ids:?}");
    assert!(!ids.contains(&csp::current_process_id()));
}

fn write_then_hang(args: (Writer<u64>, multiproc::Event)) {
    let (w, wrote) = args;
    w.write(1).unwrap();
    wrote.set();
    std::thread::sleep(LIMIT * 2);
}

fn read_then_hang(args: (Reader<u64>, multiproc::Event)) {
    let (r, read) = args;
    assert_eq!(r.read_timeout(LIMIT), Ok(1));
    read.set();
    std::thread::sleep(LIMIT * 2);
}

#[test]
fn the_ends_of_a_killed_process_retire_and_release_those_blocked_on_it() {
    // A reader blocked on a channel whose only writer is killed.
    let ch = Channel::<u64>::new().unwrap();
    let (r, wrote) = (ch.reader(), multiproc::Event::new().unwrap());
    let writer = multiproc::Process::spawn(write_then_hang, (ch.writer(), wrote.clone())).unwrap();
    assert_eq!(r.read_timeout(LIMIT), Ok(1));
    assert!(wrote.wait_timeout(LIMIT));
    let blocked = std::thread::spawn(move || r.read_timeout(LIMIT));
    writer.kill().unwrap();
    common::wait(&writer);
    assert_eq!(blocked.join().unwrap(), Err(Error::Retired));

    // A writer blocked on a rendezvous whose only reader is killed.
    let ch = Channel::<u64>::new().unwrap();
    let (w, read) = (ch.writer(), multiproc::Event::new().unwrap());
    let reader = multiproc::Process::spawn(read_then_hang, (ch.reader(), read.clone())).unwrap();
    w.write_timeout(1, LIMIT).unwrap();
    assert!(read.wait_timeout(LIMIT));
    let blocked = std::thread::spawn(move || w.write_timeout(2, LIMIT));
    reader.kill().unwrap();
    common::wait(&reader);
    assert_eq!(blocked.join().unwrap(), Err(Error::Retired));

    // An alternation waiting on inputs whose writers are all killed.
    let (a, b) = (Channel::<u64>::new().unwrap(), Channel::<u64>::new().unwrap());
    let (ra, rb) = (a.reader(), b.reader());
    let (wrote_a, wrote_b) = (multiproc::Event::new().unwrap(), multiproc::Event::new().unwrap());
    let wa = multiproc::Process::spawn(write_then_hang, (a.writer(), wrote_a.clone())).unwrap();
    let wb = multiproc::Process::spawn(write_then_hang, (b.writer(), wrote_b.clone())).unwrap();
    assert_eq!(ra.read_timeout(LIMIT), Ok(1));
    assert_eq!(rb.read_timeout(LIMIT), Ok(1));
    assert!(wrote_a.wait_timeout(LIMIT) && wrote_b.wait_timeout(LIMIT));
    drop((a, b));
    let blocked = std::thread::spawn(move || {
        csp::Alternation::new().input(&ra).input(&rb).timeout(LIMIT).pri_select()
    });
    for p in [&wa, &wb] {
        p.kill().unwrap();
        common::wait(p);
    }
    assert_eq!(blocked.join().unwrap(), Err(Error::Retired));
}
