//! PyCSP's own test suite (`test/autotest.py`, `commtest.py`,
//! `buffertest.py`, `poisontest.py`, `guardtest.py`, `selecttest.py`, and
//! `unix/multiprocesstest.py`, which is autotest with `@multiprocess`)
//! rewritten against `multiproc::csp`. Every test runs its network with the
//! processes in threads and again in OS processes, under PyCSP's sleeper
//! combinations; then fault tests: a buffered channel outliving its writer,
//! random SIGKILLs in running networks, alternations on both sides of
//! channels under load.
//!
//! PyCSP's `check.Assert` only prints; here its checks fail the test, and
//! every report carries the value read as well as the reader's id, so each
//! test also checks that no value arrives twice and that every value read
//! was written. Every wait is bounded: processes read and write with
//! `LIMIT` timeouts (a hang ends as `Error::Timeout`, which fails the test)
//! and OS processes spawned by hand are joined with `common::join`.

mod common;

use std::cell::Cell;
use std::collections::BTreeSet;
use std::time::Duration;

use common::LIMIT;
use multiproc::csp::{
    self, Alternation, Channel, Error, Parallel, Reader, Sequence, Writer, process,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------
// The harness: where processes run, PyCSP's sleepers, check.Assert.
// ---------------------------------------------------------------------------

/// Where a test's processes run: PyCSP's `@process` or `@multiprocess`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Threads,
    Os,
}

const MODES: [Mode; 2] = [Mode::Threads, Mode::Os];

/// `p`, to run where `mode` says.
fn placed<F, A, R>(p: csp::Process<F, A, R>, mode: Mode) -> csp::Process<F, A, R>
where
    F: Fn(A) -> R + Copy + Send + 'static,
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    match mode {
        Mode::Threads => p,
        Mode::Os => p.os(),
    }
}

/// PyCSP's sleepers (`sleep_one`, `sleep_random`, `sleep_long`...), which
/// shake the timing of a network: a process naps before each communication.
/// A nap waits for nothing; it only changes who comes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Sleeper {
    /// PyCSP's `None`.
    Zero,
    /// This many microseconds, always.
    Fixed(u64),
    /// Up to this many microseconds, at random.
    Random(u64),
}

impl Sleeper {
    fn nap(self) {
        let micros = match self {
            Sleeper::Zero => return,
            Sleeper::Fixed(us) => us,
            Sleeper::Random(max) => random_below(max + 1),
        };
        std::thread::sleep(Duration::from_micros(micros));
    }
}

/// autotest's, commtest's, buffertest's and poisontest's sleepers, a tenth
/// as long as PyCSP's (10 ms and up to 10 ms there).
const ZERO: Sleeper = Sleeper::Zero;
const ONE: Sleeper = Sleeper::Fixed(1_000);
const RANDOM: Sleeper = Sleeper::Random(1_000);

/// PyCSP's (read sleeper, write sleeper) pairs: every pair but both
/// `sleep_one` ("no reason to test with both sleep_one").
const PAIRS: [(Sleeper, Sleeper); 8] = [
    (ZERO, ZERO),
    (ZERO, ONE),
    (ZERO, RANDOM),
    (ONE, ZERO),
    (ONE, RANDOM),
    (RANDOM, ZERO),
    (RANDOM, ONE),
    (RANDOM, RANDOM),
];

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(common::thread_id()) << 32) ^ u64::from(std::process::id())) | 1
}

/// A number below `n` (xorshift: the tests need only shaken timing and
/// random victims, not good randomness).
fn random_below(n: u64) -> u64 {
    RNG.with(|rng| {
        let mut x = rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        rng.set(x);
        x % n.max(1)
    })
}

/// A value: (the id of its writer, its number among that writer's values).
type Msg = (u64, u64);

/// What a reader tells check.Assert: PyCSP's reader sends its id (or the
/// index of the guard that fired); here the value read comes along.
type Report = (u64, Msg);

/// How check.Assert's loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Ended {
    Retired,
    Poisoned,
    /// `quit_on_count` reached.
    Count,
}

/// check.Assert's loop: reads reports until its channel is retired or
/// poisoned (or `quit_on_count` of them came, if not 0).
#[process]
fn assert_reports(cin: Reader<Report>, quit_on_count: usize) -> csp::Result<(Vec<Report>, Ended)> {
    let mut received = Vec::new();
    loop {
        match cin.read_timeout(LIMIT) {
            Ok(report) => received.push(report),
            Err(Error::Retired) => return Ok((received, Ended::Retired)),
            Err(Error::Poisoned) => return Ok((received, Ended::Poisoned)),
            Err(error) => return Err(error),
        }
        if quit_on_count != 0 && received.len() == quit_on_count {
            return Ok((received, Ended::Count));
        }
    }
}

/// check.Assert's arguments.
#[derive(Clone, Copy, Debug)]
struct Expect {
    /// With `minimum`, the most values; without, exactly this many.
    count: usize,
    minimum: usize,
    /// The ids a report may carry.
    vocabulary: &'static [u64],
}

/// check.Assert's checks, failing the test; and, beyond PyCSP's, that no
/// value came twice and that each came from one of `writers` (ids
/// `0..writers`), numbered below `per_writer`. Returns the reports.
fn check(
    name: &str,
    got: csp::Result<(Vec<Report>, Ended)>,
    expect: Expect,
    writers: u64,
    per_writer: u64,
) -> (Vec<Report>, Ended) {
    let (received, ended) = got.unwrap_or_else(|e| panic!("{name}: check.Assert failed: {e}"));
    let n = received.len();
    assert!(n >= expect.minimum, "{name}: {n} values, expected at least {}", expect.minimum);
    if expect.minimum > 0 {
        assert!(n <= expect.count, "{name}: {n} values, expected at most {}", expect.count);
    } else {
        assert_eq!(n, expect.count, "{name}: wrong number of values ({ended:?})");
    }
    for &(id, msg) in &received {
        assert!(expect.vocabulary.contains(&id), "{name}: id {id} not in the vocabulary");
        assert!(msg.0 < writers && msg.1 < per_writer, "{name}: {msg:?} was never written");
    }
    let unique: BTreeSet<Msg> = received.iter().map(|&(_, msg)| msg).collect();
    assert_eq!(unique.len(), n, "{name}: a value came twice: {received:?}");
    (received, ended)
}

/// The values of `reports` from writer `id`, in the order they came.
fn from_writer(reports: &[Report], id: u64) -> Vec<u64> {
    reports.iter().filter(|(_, (w, _))| *w == id).map(|(_, (_, i))| *i).collect()
}

/// Which PyCSP selection a reader uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Choice {
    Alt,
    Pri,
    Fair,
}

impl Choice {
    fn select(self, alt: &mut Alternation<'_>) -> csp::Result<usize> {
        match self {
            Choice::Alt => alt.alt_select(),
            Choice::Pri => alt.pri_select(),
            Choice::Fair => alt.fair_select(),
        }
    }
}

/// What a writer does after its last value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Then {
    Retire,
    Poison,
}

// ---------------------------------------------------------------------------
// PyCSP's processes.
// ---------------------------------------------------------------------------

/// PyCSP's `reader`: reads for ever, reporting each value; ends with the
/// error that stopped it (PyCSP's process dies of the exception), which
/// retires or poisons its ends.
#[process]
fn reader(cin: Reader<Msg>, id: u64, sleeper: Sleeper, report: Writer<Report>) -> csp::Result<()> {
    loop {
        sleeper.nap();
        let got = cin.read_timeout(LIMIT)?;
        report.write_timeout((id, got), LIMIT)?;
    }
}

/// How many values a writer delivered, and how it ended.
type Written = (u64, csp::Result<()>);

/// PyCSP's `writer`: writes `(id, i)` for `i` in `0..cnt`, then retires or
/// poisons its end.
#[process]
fn writer(cout: Writer<Msg>, id: u64, cnt: u64, sleeper: Sleeper, then: Then) -> Written {
    for i in 0..cnt {
        sleeper.nap();
        if let Err(e) = cout.write_timeout((id, i), LIMIT) {
            return (i, Err(e));
        }
    }
    match then {
        Then::Retire => cout.retire(),
        Then::Poison => cout.poison(),
    }
    (cnt, Ok(()))
}

/// PyCSP's `par_reader` (and `par_fair_reader`, `par_pri_reader`): selects
/// over its inputs for ever, reporting the index of the guard that fired.
#[process]
fn par_reader(
    cins: Vec<Reader<Msg>>,
    choice: Choice,
    sleeper: Sleeper,
    report: Writer<Report>,
) -> csp::Result<()> {
    loop {
        sleeper.nap();
        let mut alt = Alternation::new().inputs(&cins).timeout(LIMIT);
        let chosen = choice.select(&mut alt)?;
        let got = alt.take::<Msg>(chosen).ok_or(Error::Timeout)?;
        report.write_timeout((chosen as u64, got), LIMIT)?;
    }
}

/// PyCSP's `par_writer`: `4 * cnt` times, writes `(id, i)` to whichever of
/// its outputs can take it; then retires or poisons them all.
#[process]
fn par_writer(couts: Vec<Writer<Msg>>, id: u64, cnt: u64, sleeper: Sleeper, then: Then) -> Written {
    for i in 0..cnt * 4 {
        sleeper.nap();
        let mut alt = Alternation::new();
        for cout in &couts {
            alt = alt.output(cout, (id, i));
        }
        match alt.timeout(LIMIT).alt_select() {
            Ok(chosen) if chosen < couts.len() => {}
            Ok(_) => return (i, Err(Error::Timeout)),
            Err(e) => {
                // PyCSP's process dies of the poison and poisons its ends.
                if e.is_poisoned() {
                    csp::poison(&couts);
                }
                return (i, Err(e));
            }
        }
    }
    match then {
        Then::Retire => csp::retire(&couts),
        Then::Poison => csp::poison(&couts),
    }
    (cnt * 4, Ok(()))
}

/// PyCSP's `return_msg`: one value, returned.
#[process]
fn return_msg(cin: Reader<Msg>, sleeper: Sleeper) -> csp::Result<Option<Msg>> {
    sleeper.nap();
    cin.read_timeout(LIMIT).map(Some)
}

/// autotest's `writer`, in a `Parallel` with `return_msg`s: PyCSP's
/// `Parallel` returns `None` for it.
#[process]
fn writer_none(cout: Writer<Msg>, cnt: u64, sleeper: Sleeper) -> csp::Result<Option<Msg>> {
    for i in 0..cnt {
        sleeper.nap();
        cout.write_timeout((0, i), LIMIT)?;
    }
    cout.retire();
    Ok(None)
}

/// Starts check.Assert (in a thread: it is the checker, not the network).
fn start_assert(
    x: &Channel<Report>,
    quit_on_count: usize,
) -> csp::Running<csp::Result<(Vec<Report>, Ended)>> {
    assert_reports(x.reader(), quit_on_count).start().unwrap()
}

/// `n` rendezvous channels, or buffered ones of the `capacities` given.
fn channels(capacities: &[usize]) -> Vec<Channel<Msg>> {
    capacities.iter().map(|&n| Channel::buffered(n).unwrap()).collect()
}

fn writers_of(chs: &[Channel<Msg>]) -> Vec<Writer<Msg>> {
    chs.iter().map(Channel::writer).collect()
}

fn readers_of(chs: &[Channel<Msg>]) -> Vec<Reader<Msg>> {
    chs.iter().map(Channel::reader).collect()
}

/// Unwraps `Parallel`'s results: every process ran to its end.
fn ended<R: std::fmt::Debug>(name: &str, results: multiproc::Result<Vec<R>>) -> Vec<R> {
    results.unwrap_or_else(|e| panic!("{name}: a process did not run to its end: {e}"))
}

#[process]
fn whoami() -> csp::ProcessId {
    csp::current_process_id()
}

/// The harness itself: `Mode::Os` runs each process in an OS process of
/// its own, `Mode::Threads` in a thread of this one.
#[test]
fn the_os_mode_runs_each_process_in_an_os_process_of_its_own() {
    let ids = Parallel::new().add_all((0..3).map(|_| placed(whoami(), Mode::Os))).run().unwrap();
    let pids: BTreeSet<u32> = ids.iter().map(|id| id.pid).collect();
    assert_eq!(pids.len(), 3, "{ids:?}");
    assert!(!pids.contains(&std::process::id()));
    let ids =
        Parallel::new().add_all((0..3).map(|_| placed(whoami(), Mode::Threads))).run().unwrap();
    assert!(ids.iter().all(|id| id.pid == std::process::id()), "{ids:?}");
}

// ---------------------------------------------------------------------------
// autotest.py (and unix/multiprocesstest.py: the same with OS processes)
// ---------------------------------------------------------------------------

/// autotest's Sequence_Test: a spawned writer, ten `return_msg`s run one
/// after another.
#[test]
fn autotest_sequence_runs_ten_readers_one_after_another_each_getting_the_next_value() {
    for mode in MODES {
        for sleeper in [ZERO, ONE, RANDOM] {
            let name = format!("Sequence_Test {mode:?} {sleeper:?}");
            let c1 = Channel::<Msg>::new().unwrap();
            csp::spawn(placed(writer(c1.writer(), 0, 10, sleeper, Then::Retire), mode)).unwrap();
            let readers = return_msg(c1.reader(), sleeper) * 10;
            let l = ended(
                &name,
                Sequence::new().add_all(readers.into_iter().map(|p| placed(p, mode))).run(),
            );
            // One reader at a time, one writer: the values in order.
            let values: Vec<Option<Msg>> = l.into_iter().map(|r| r.unwrap()).collect();
            let expected: Vec<Option<Msg>> = (0..10).map(|i| Some((0, i))).collect();
            assert_eq!(values, expected, "{name}");
            csp::join_spawned().unwrap();
        }
    }
}

/// autotest's Parallel_Test: `Parallel(writer, 10 * return_msg)` returns
/// eleven results, `None` for the writer, a value for each reader.
#[test]
fn autotest_parallel_returns_none_for_the_writer_and_a_distinct_value_for_each_reader() {
    for mode in MODES {
        for sleeper in [ZERO, ONE, RANDOM] {
            let name = format!("Parallel_Test {mode:?} {sleeper:?}");
            let c1 = Channel::<Msg>::new().unwrap();
            let readers = return_msg(c1.reader(), sleeper) * 10;
            let l = ended(
                &name,
                Parallel::new()
                    .add(placed(writer_none(c1.writer(), 10, sleeper), mode))
                    .add_all(readers.into_iter().map(|p| placed(p, mode)))
                    .run(),
            );
            assert_eq!(l.len(), 11, "{name}");
            assert_eq!(l[0], Ok(None), "{name}");
            let values: BTreeSet<Msg> =
                l[1..].iter().map(|r| r.clone().unwrap().unwrap()).collect();
            assert_eq!(values, (0..10).map(|i| (0, i)).collect(), "{name}");
        }
    }
}

/// autotest's One2One_Test: ten values, then the writer retires and the
/// retire reaches check.Assert through the reader.
#[test]
fn autotest_one2one_delivers_ten_values_then_retires() {
    for mode in MODES {
        for (rs, ws) in PAIRS {
            let name = format!("One2One_Test {mode:?} {rs:?} {ws:?}");
            let x = Channel::<Report>::new().unwrap();
            let assert = start_assert(&x, 0);
            let c1 = Channel::<Msg>::new().unwrap();
            let (r, w) = csp::parallel!(
                placed(reader(c1.reader(), 0, rs, x.writer()), mode),
                placed(writer(c1.writer(), 1, 10, ws, Then::Retire), mode),
            )
            .unwrap();
            assert_eq!(r, Err(Error::Retired), "{name}");
            assert_eq!(w, (10, Ok(())), "{name}");
            let expect = Expect { count: 10, minimum: 0, vocabulary: &[0] };
            let (got, how) = check(&name, assert.join().unwrap(), expect, 2, 10);
            assert_eq!(how, Ended::Retired, "{name}");
            assert_eq!(from_writer(&got, 1), (0..10).collect::<Vec<_>>(), "{name}");
        }
    }
}

/// autotest's Any2One_Alting_Test, Any2One_FairAlting_Test and
/// Any2One_PriAlting_Test: four writers on four channels, one reader
/// selecting over them; check.Assert quits at 40 values.
fn any2one_alting(name: &str, choice: Choice, mode: Mode, rs: Sleeper, ws: Sleeper) {
    let x = Channel::<Report>::new().unwrap();
    let assert = start_assert(&x, 40);
    let cs = channels(&[0; 4]);
    let cnt = 10;
    let mut writers = Parallel::new();
    for (id, c) in cs.iter().enumerate() {
        writers = writers.add(placed(writer(c.writer(), id as u64, cnt, ws, Then::Retire), mode));
    }
    let reading =
        placed(par_reader(readers_of(&cs), choice, rs, x.writer()), mode).start().unwrap();
    let written = ended(name, writers.run());
    // It ends when a retired guard is all it can select (or check.Assert
    // quit): retired either way.
    assert_eq!(reading.join().unwrap(), Err(Error::Retired), "{name}");
    let expect = Expect { count: 40, minimum: 10, vocabulary: &[0, 1, 2, 3] };
    let (got, how) = check(name, assert.join().unwrap(), expect, 4, cnt);
    // Each guard fired for its own writer's values, in order; every value
    // a writer delivered reached check.Assert.
    for (id, (delivered, _)) in written.iter().enumerate() {
        let id = id as u64;
        assert!(got.iter().all(|&(g, (w, _))| (g == id) == (w == id)), "{name}: {got:?}");
        assert_eq!(from_writer(&got, id), (0..*delivered).collect::<Vec<_>>(), "{name}");
    }
    if how == Ended::Count {
        assert_eq!(got.len(), 40, "{name}");
    } else {
        assert_eq!(how, Ended::Retired, "{name}");
    }
}

#[test]
fn autotest_any2one_alting_alt_select_reports_each_guard_its_own_writers_values() {
    for mode in MODES {
        for (rs, ws) in PAIRS {
            let name = format!("Any2One_Alting_Test {mode:?} {rs:?} {ws:?}");
            any2one_alting(&name, Choice::Alt, mode, rs, ws);
        }
    }
}

#[test]
fn autotest_any2one_fair_alting_reports_each_guard_its_own_writers_values() {
    for mode in MODES {
        for (rs, ws) in PAIRS {
            let name = format!("Any2One_FairAlting_Test {mode:?} {rs:?} {ws:?}");
            any2one_alting(&name, Choice::Fair, mode, rs, ws);
        }
    }
}

#[test]
fn autotest_any2one_pri_alting_reports_each_guard_its_own_writers_values() {
    for mode in MODES {
        for (rs, ws) in PAIRS {
            let name = format!("Any2One_PriAlting_Test {mode:?} {rs:?} {ws:?}");
            any2one_alting(&name, Choice::Pri, mode, rs, ws);
        }
    }
}

// ---------------------------------------------------------------------------
// commtest.py (rendezvous channels) and buffertest.py (buffered channels):
// one function each, given the channels' capacities (0: a rendezvous).
// ---------------------------------------------------------------------------

/// Runs `readers` and `writers` together (PyCSP's one `Parallel`), waiting
/// for all of them.
fn run_network(
    name: &str,
    readers: Parallel<csp::Result<()>>,
    writers: Parallel<Written>,
) -> (Vec<csp::Result<()>>, Vec<Written>) {
    let reading = std::thread::spawn(move || readers.run());
    let written = ended(name, writers.run());
    let read = ended(name, reading.join().unwrap());
    (read, written)
}

/// Every writer delivered all `cnt` of its values and ended well.
fn assert_all_written(name: &str, written: &[Written], cnt: u64) {
    assert!(written.iter().all(|w| *w == (cnt, Ok(()))), "{name}: {written:?}");
}

/// Every process ended with `error` (PyCSP's processes die of it).
fn assert_all_ended_with(name: &str, results: &[csp::Result<()>], error: Error) {
    assert!(results.iter().all(|r| *r == Err(error.clone())), "{name}: {results:?}");
}

/// The values reader `id` reported, in the order it read them.
fn read_by(reports: &[Report], id: u64) -> Vec<Msg> {
    reports.iter().filter(|(r, _)| *r == id).map(|&(_, msg)| msg).collect()
}

/// Whether each writer's values came in the order it wrote them.
fn in_writer_order(values: &[Msg]) -> bool {
    values.iter().enumerate().all(|(k, a)| values[k + 1..].iter().all(|b| b.0 != a.0 || b.1 > a.1))
}

const IDS: &[u64] = &[0, 1, 2, 3];

/// buffertest's Buffer_Test: a writer fills a buffered channel that has no
/// reader yet and ends; a reader that comes later (in another process)
/// reads it all, then finds the channel retired.
#[test]
fn buffertest_buffer_is_written_with_no_reader_and_read_later_in_another_process() {
    for mode in MODES {
        for (rs, ws) in PAIRS {
            let name = format!("Buffer_Test {mode:?} {rs:?} {ws:?}");
            let x = Channel::<Report>::new().unwrap();
            let assert = start_assert(&x, 0);
            let cnt = 10;
            let c = Channel::<Msg>::buffered(cnt as usize).unwrap();
            let wrote = placed(writer(c.writer(), 0, cnt, ws, Then::Retire), mode).run().unwrap();
            assert_eq!(wrote, (cnt, Ok(())), "{name}: the writer waited for a reader");
            let read = placed(reader(c.reader(), 0, rs, x.writer()), mode).run().unwrap();
            assert_eq!(read, Err(Error::Retired), "{name}");
            let expect = Expect { count: 10, minimum: 0, vocabulary: &[0] };
            let (got, how) = check(&name, assert.join().unwrap(), expect, 1, cnt);
            assert_eq!(how, Ended::Retired, "{name}");
            assert_eq!(from_writer(&got, 0), (0..cnt).collect::<Vec<_>>(), "{name}");
        }
    }
}

/// One2One_Test: four channels, a reader and a writer on each.
fn one2one(name: &str, capacities: [usize; 4], mode: Mode, rs: Sleeper, ws: Sleeper) {
    let x = Channel::<Report>::new().unwrap();
    let assert = start_assert(&x, 0);
    let cs = channels(&capacities);
    let cnt = 10;
    let (mut readers, mut writers) = (Parallel::new(), Parallel::new());
    for (id, c) in (0..).zip(&cs) {
        readers = readers.add(placed(reader(c.reader(), id, rs, x.writer()), mode));
        writers = writers.add(placed(writer(c.writer(), id, cnt, ws, Then::Retire), mode));
    }
    let (read, written) = run_network(name, readers, writers);
    assert_all_ended_with(name, &read, Error::Retired);
    assert_all_written(name, &written, cnt);
    let expect = Expect { count: 40, minimum: 0, vocabulary: IDS };
    let (got, how) = check(name, assert.join().unwrap(), expect, 4, cnt);
    assert_eq!(how, Ended::Retired, "{name}");
    for id in 0..4 {
        let expected: Vec<Msg> = (0..cnt).map(|i| (id, i)).collect();
        assert_eq!(read_by(&got, id), expected, "{name}: reader {id}");
    }
}

/// Any2One_Test: four writers, one reader, one channel.
fn any2one(name: &str, capacity: usize, mode: Mode, rs: Sleeper, ws: Sleeper) {
    let x = Channel::<Report>::new().unwrap();
    let assert = start_assert(&x, 0);
    let c1 = Channel::<Msg>::buffered(capacity).unwrap();
    let cnt = 10;
    let readers = Parallel::new().add(placed(reader(c1.reader(), 0, rs, x.writer()), mode));
    let mut writers = Parallel::new();
    for id in 0..4 {
        writers = writers.add(placed(writer(c1.writer(), id, cnt, ws, Then::Retire), mode));
    }
    let (read, written) = run_network(name, readers, writers);
    assert_all_ended_with(name, &read, Error::Retired);
    assert_all_written(name, &written, cnt);
    let expect = Expect { count: 40, minimum: 0, vocabulary: &[0] };
    let (got, _) = check(name, assert.join().unwrap(), expect, 4, cnt);
    for id in 0..4 {
        assert_eq!(from_writer(&got, id), (0..cnt).collect::<Vec<_>>(), "{name}: writer {id}");
    }
}

/// One2Any_Test: one writer of 40 values, four readers, one channel.
fn one2any(name: &str, capacity: usize, mode: Mode, rs: Sleeper, ws: Sleeper) {
    let x = Channel::<Report>::new().unwrap();
    let assert = start_assert(&x, 0);
    let c1 = Channel::<Msg>::buffered(capacity).unwrap();
    let cnt = 10;
    let writers =
        Parallel::new().add(placed(writer(c1.writer(), 0, cnt * 4, ws, Then::Retire), mode));
    let mut readers = Parallel::new();
    for id in 0..4 {
        readers = readers.add(placed(reader(c1.reader(), id, rs, x.writer()), mode));
    }
    let (read, written) = run_network(name, readers, writers);
    assert_all_ended_with(name, &read, Error::Retired);
    assert_all_written(name, &written, cnt * 4);
    let expect = Expect { count: 40, minimum: 0, vocabulary: IDS };
    let (got, _) = check(name, assert.join().unwrap(), expect, 1, cnt * 4);
    for id in 0..4 {
        assert!(in_writer_order(&read_by(&got, id)), "{name}: reader {id}: {got:?}");
    }
}

/// One_Alting2Any_Test: one `par_writer` over four channels, a reader on
/// each.
fn one_alting2any(name: &str, capacities: [usize; 4], mode: Mode, rs: Sleeper, ws: Sleeper) {
    let x = Channel::<Report>::new().unwrap();
    let assert = start_assert(&x, 0);
    let cs = channels(&capacities);
    let cnt = 10;
    let writers =
        Parallel::new().add(placed(par_writer(writers_of(&cs), 0, cnt, ws, Then::Retire), mode));
    let mut readers = Parallel::new();
    for (id, c) in (0..).zip(&cs) {
        readers = readers.add(placed(reader(c.reader(), id, rs, x.writer()), mode));
    }
    let (read, written) = run_network(name, readers, writers);
    assert_all_ended_with(name, &read, Error::Retired);
    assert_all_written(name, &written, cnt * 4);
    let expect = Expect { count: 40, minimum: 0, vocabulary: IDS };
    let (got, _) = check(name, assert.join().unwrap(), expect, 1, cnt * 4);
    for id in 0..4 {
        assert!(in_writer_order(&read_by(&got, id)), "{name}: reader {id}: {got:?}");
    }
}

/// Any2Any_Test: four readers and four writers on one channel.
fn any2any(name: &str, capacity: usize, mode: Mode, rs: Sleeper, ws: Sleeper) {
    let x = Channel::<Report>::new().unwrap();
    let assert = start_assert(&x, 0);
    let c1 = Channel::<Msg>::buffered(capacity).unwrap();
    let cnt = 10;
    let (mut readers, mut writers) = (Parallel::new(), Parallel::new());
    for id in 0..4 {
        readers = readers.add(placed(reader(c1.reader(), id, rs, x.writer()), mode));
        writers = writers.add(placed(writer(c1.writer(), id, cnt, ws, Then::Retire), mode));
    }
    let (read, written) = run_network(name, readers, writers);
    assert_all_ended_with(name, &read, Error::Retired);
    assert_all_written(name, &written, cnt);
    let expect = Expect { count: 40, minimum: 0, vocabulary: IDS };
    let (got, _) = check(name, assert.join().unwrap(), expect, 4, cnt);
    for id in 0..4 {
        assert!(in_writer_order(&read_by(&got, id)), "{name}: reader {id}: {got:?}");
    }
}

/// Any_Alting2Any_Alting_Test: four `par_writer`s and four `par_reader`s
/// over the same four channels: alternations on both sides.
fn any_alting2any_alting(name: &str, capacities: [usize; 4], mode: Mode, rs: Sleeper, ws: Sleeper) {
    let x = Channel::<Report>::new().unwrap();
    let assert = start_assert(&x, 0);
    let cs = channels(&capacities);
    let cnt = 10;
    let (mut readers, mut writers) = (Parallel::new(), Parallel::new());
    for id in 0..4 {
        let w = par_writer(writers_of(&cs), id, cnt, ws, Then::Retire);
        writers = writers.add(placed(w, mode));
        let r = par_reader(readers_of(&cs), Choice::Alt, rs, x.writer());
        readers = readers.add(placed(r, mode));
    }
    let (read, written) = run_network(name, readers, writers);
    assert_all_ended_with(name, &read, Error::Retired);
    assert_all_written(name, &written, cnt * 4);
    let expect = Expect { count: 160, minimum: 40, vocabulary: IDS };
    let (got, how) = check(name, assert.join().unwrap(), expect, 4, cnt * 4);
    assert_eq!(how, Ended::Retired, "{name}");
    // Beyond PyCSP's bounds: a rendezvous write returns once a reader took
    // its value, and every par_reader reports what it took before it
    // selects again, so all 160 arrive. A buffered channel may still hold
    // values when a par_reader finds another guarded channel retired and
    // ends (at most what the four buffers hold, 36).
    let lost = 160 - got.len();
    if capacities == [0; 4] {
        assert_eq!(lost, 0, "{name}");
    } else {
        assert!(lost <= capacities.iter().sum(), "{name}: {lost} values lost");
    }
}

const RENDEZVOUS: [usize; 4] = [0; 4];
const BUFFERS: [usize; 4] = [1, 5, 10, 20];

/// Runs `test` for both modes and every sleeper pair.
fn for_all(what: &str, test: impl Fn(&str, Mode, Sleeper, Sleeper)) {
    for mode in MODES {
        for (rs, ws) in PAIRS {
            test(&format!("{what} {mode:?} {rs:?} {ws:?}"), mode, rs, ws);
        }
    }
}

#[test]
fn commtest_one2one_delivers_each_channels_values_in_order_to_its_reader() {
    for_all("commtest One2One_Test", |name, mode, rs, ws| one2one(name, RENDEZVOUS, mode, rs, ws));
}

#[test]
fn commtest_any2one_delivers_all_four_writers_values_to_one_reader() {
    for_all("commtest Any2One_Test", |name, mode, rs, ws| any2one(name, 0, mode, rs, ws));
}

#[test]
fn commtest_one2any_shares_one_writers_values_among_four_readers() {
    for_all("commtest One2Any_Test", |name, mode, rs, ws| one2any(name, 0, mode, rs, ws));
}

#[test]
fn commtest_one_alting2any_spreads_an_alternating_writers_values_over_four_readers() {
    for_all("commtest One_Alting2Any_Test", |name, mode, rs, ws| {
        one_alting2any(name, RENDEZVOUS, mode, rs, ws)
    });
}

/// commtest's Any2Any_Test (autotest's is the same network).
#[test]
fn commtest_and_autotest_any2any_delivers_forty_values_exactly_once() {
    for_all("commtest Any2Any_Test", |name, mode, rs, ws| any2any(name, 0, mode, rs, ws));
}

#[test]
fn commtest_any_alting2any_alting_delivers_all_160_values_exactly_once() {
    for_all("commtest Any_Alting2Any_Alting_Test", |name, mode, rs, ws| {
        any_alting2any_alting(name, RENDEZVOUS, mode, rs, ws)
    });
}

#[test]
fn buffertest_one2one_over_buffers_of_1_5_10_and_20_delivers_in_order() {
    for_all("buffertest One2One_Test", |name, mode, rs, ws| one2one(name, BUFFERS, mode, rs, ws));
}

#[test]
fn buffertest_any2one_over_a_buffer_of_20_delivers_all_values() {
    for_all("buffertest Any2One_Test", |name, mode, rs, ws| any2one(name, 20, mode, rs, ws));
}

#[test]
fn buffertest_one2any_over_a_buffer_of_20_shares_the_values_exactly_once() {
    for_all("buffertest One2Any_Test", |name, mode, rs, ws| one2any(name, 20, mode, rs, ws));
}

#[test]
fn buffertest_one_alting2any_over_buffers_of_1_5_10_and_20_delivers_all_values() {
    for_all("buffertest One_Alting2Any_Test", |name, mode, rs, ws| {
        one_alting2any(name, BUFFERS, mode, rs, ws)
    });
}

#[test]
fn buffertest_any2any_over_a_buffer_of_20_delivers_forty_values_exactly_once() {
    for_all("buffertest Any2Any_Test", |name, mode, rs, ws| any2any(name, 20, mode, rs, ws));
}

#[test]
fn buffertest_any_alting2any_alting_over_buffers_delivers_between_40_and_160_values_once() {
    for_all("buffertest Any_Alting2Any_Alting_Test", |name, mode, rs, ws| {
        any_alting2any_alting(name, BUFFERS, mode, rs, ws)
    });
}

// ---------------------------------------------------------------------------
// poisontest.py: writers poison their channels after their last value;
// poison spreads through every process it reaches.
// ---------------------------------------------------------------------------

/// The values writers delivered (their writes returned `Ok`): writer `id`
/// delivered `(id, 0)` to `(id, written[id].0 - 1)`.
fn delivered(written: &[Written]) -> BTreeSet<Msg> {
    (0..).zip(written).flat_map(|(id, &(n, _))| (0..n).map(move |i| (id, i))).collect()
}

/// A writer ended after its last value, or was poisoned on the way.
fn assert_written_or_poisoned(name: &str, written: &[Written], cnt: u64) {
    for w in written {
        assert!(*w == (cnt, Ok(())) || (w.0 < cnt && w.1 == Err(Error::Poisoned)), "{name}: {w:?}");
    }
    // The first writer to finish delivered all it had and poisoned.
    assert!(written.iter().any(|w| w.0 == cnt), "{name}: {written:?}");
}

/// poisontest's One2One_Test.
#[test]
fn poisontest_one2one_delivers_ten_values_then_the_poison_reaches_check_assert() {
    for_all("poisontest One2One_Test", |name, mode, rs, ws| {
        let x = Channel::<Report>::new().unwrap();
        let assert = start_assert(&x, 0);
        let c1 = Channel::<Msg>::new().unwrap();
        let (r, w) = csp::parallel!(
            placed(reader(c1.reader(), 0, rs, x.writer()), mode),
            placed(writer(c1.writer(), 1, 10, ws, Then::Poison), mode),
        )
        .unwrap();
        assert_eq!(r, Err(Error::Poisoned), "{name}");
        assert_eq!(w, (10, Ok(())), "{name}");
        let expect = Expect { count: 10, minimum: 0, vocabulary: &[0] };
        let (got, how) = check(name, assert.join().unwrap(), expect, 2, 10);
        // The reader died of the poison and poisoned check.Assert's channel.
        assert_eq!(how, Ended::Poisoned, "{name}");
        assert_eq!(from_writer(&got, 1), (0..10).collect::<Vec<_>>(), "{name}");
    });
}

/// poisontest's Any2One_Alting_Test: the first writer to finish poisons
/// its channel; the selecting reader dies of it (once no other guard can
/// fire) and poisons every channel it holds.
#[test]
fn poisontest_any2one_alting_stops_the_network_after_the_first_writer_finishes() {
    for_all("poisontest Any2One_Alting_Test", |name, mode, rs, ws| {
        let x = Channel::<Report>::new().unwrap();
        let assert = start_assert(&x, 40);
        let cs = channels(&RENDEZVOUS);
        let cnt = 10;
        let readers = Parallel::new()
            .add(placed(par_reader(readers_of(&cs), Choice::Alt, rs, x.writer()), mode));
        let mut writers = Parallel::new();
        for (id, c) in (0..).zip(&cs) {
            writers = writers.add(placed(writer(c.writer(), id, cnt, ws, Then::Poison), mode));
        }
        let (read, written) = run_network(name, readers, writers);
        assert_written_or_poisoned(name, &written, cnt);
        let expect = Expect { count: 40, minimum: 10, vocabulary: IDS };
        let (got, how) = check(name, assert.join().unwrap(), expect, 4, cnt);
        if how == Ended::Count {
            // check.Assert quit first: the reader then found its report
            // channel retired, or its inputs poisoned.
            assert!(matches!(read[0], Err(Error::Retired | Error::Poisoned)), "{name}: {read:?}");
        } else {
            assert_eq!(how, Ended::Poisoned, "{name}");
            assert_eq!(read[0], Err(Error::Poisoned), "{name}");
        }
        // The reader reports each value before it selects again, and only
        // its own death poisons check.Assert's channel: every value
        // delivered was reported, in order.
        for (id, &(n, _)) in (0..).zip(&written) {
            assert_eq!(from_writer(&got, id), (0..n).collect::<Vec<_>>(), "{name}");
        }
    });
}

/// poisontest's Any2Any_Test: four readers and four writers on one
/// channel; the first writer to finish poisons it.
///
/// PyCSP asks for at least 10 values at check.Assert, which holds only
/// when the writers delivered at least 14: a reader that took a value may
/// find check.Assert's channel poisoned (by another reader that died of the
/// poison first) before it can report it, so up to one value per reader
/// goes unreported. Tested: what is reported was delivered, once, and at
/// most four delivered values go unreported.
#[test]
fn poisontest_any2any_reports_every_delivered_value_but_one_per_reader_at_most() {
    for_all("poisontest Any2Any_Test", |name, mode, rs, ws| {
        let x = Channel::<Report>::new().unwrap();
        let assert = start_assert(&x, 0);
        let c1 = Channel::<Msg>::new().unwrap();
        let cnt = 10;
        let (mut readers, mut writers) = (Parallel::new(), Parallel::new());
        for id in 0..4 {
            readers = readers.add(placed(reader(c1.reader(), id, rs, x.writer()), mode));
            writers = writers.add(placed(writer(c1.writer(), id, cnt, ws, Then::Poison), mode));
        }
        let (read, written) = run_network(name, readers, writers);
        assert_all_ended_with(name, &read, Error::Poisoned);
        assert_written_or_poisoned(name, &written, cnt);
        let delivered = delivered(&written);
        let minimum = delivered.len() - 4;
        let expect = Expect { count: 40, minimum, vocabulary: IDS };
        let (got, how) = check(name, assert.join().unwrap(), expect, 4, cnt);
        assert_eq!(how, Ended::Poisoned, "{name}");
        let reported: BTreeSet<Msg> = got.iter().map(|&(_, msg)| msg).collect();
        assert!(reported.is_subset(&delivered), "{name}: {got:?}, delivered {delivered:?}");
        for id in 0..4 {
            assert!(in_writer_order(&read_by(&got, id)), "{name}: reader {id}: {got:?}");
        }
    });
}

/// poisontest's Any_Alting2Any_Alting_Test: two `par_writer`s, two
/// `par_reader`s, four channels; the first `par_writer` to finish poisons
/// them all. (PyCSP runs it without sleepers, as here, eight times.)
///
/// PyCSP asks for 40 to 80 values; as in Any2Any_Test, up to one value
/// per reader may go unreported, so the minimum tested is what the writers
/// delivered (at least 40) less two.
#[test]
fn poisontest_any_alting2any_alting_reports_every_delivered_value_but_one_per_reader_at_most() {
    for mode in MODES {
        for round in 0..PAIRS.len() {
            let name = format!("poisontest Any_Alting2Any_Alting_Test {mode:?} #{round}");
            let x = Channel::<Report>::new().unwrap();
            let assert = start_assert(&x, 0);
            let cs = channels(&RENDEZVOUS);
            let cnt = 10;
            let (mut readers, mut writers) = (Parallel::new(), Parallel::new());
            for id in 0..2 {
                let w = par_writer(writers_of(&cs), id, cnt, ZERO, Then::Poison);
                writers = writers.add(placed(w, mode));
                let r = par_reader(readers_of(&cs), Choice::Alt, ZERO, x.writer());
                readers = readers.add(placed(r, mode));
            }
            let (read, written) = run_network(&name, readers, writers);
            assert_all_ended_with(&name, &read, Error::Poisoned);
            assert_written_or_poisoned(&name, &written, cnt * 4);
            let delivered = delivered(&written);
            let minimum = delivered.len() - 2;
            assert!(minimum >= 38, "{name}");
            let expect = Expect { count: 80, minimum, vocabulary: IDS };
            let (got, how) = check(&name, assert.join().unwrap(), expect, 2, cnt * 4);
            assert_eq!(how, Ended::Poisoned, "{name}");
            let reported: BTreeSet<Msg> = got.iter().map(|&(_, msg)| msg).collect();
            assert!(reported.is_subset(&delivered), "{name}: {got:?}, delivered {delivered:?}");
        }
    }
}
