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
//!
//! PyCSP's sleepers are scaled down (see [`Sleeper`]); where PyCSP asserts
//! a minimum count that is not a guarantee (poisontest), the test asserts
//! the bound that is, and says why. The tests at the end show library bugs
//! found on the way (fixed since).

mod common;

use std::cell::Cell;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::LIMIT;
use multiproc::csp::{
    self, Alternation, Channel, Error, Parallel, Reader, Sequence, Writer, process,
};
use multiproc::{RawArray, StartMethod};
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

/// Selects over `cins` as `choice` says until an input fires (at most
/// `LIMIT`): the guard that fired and the value read.
fn select_input(cins: &[&Reader<Msg>], choice: Choice) -> csp::Result<(usize, Msg)> {
    let mut alt = Alternation::new().inputs(cins.iter().copied()).timeout(LIMIT);
    let chosen = choice.select(&mut alt)?;
    alt.take::<Msg>(chosen).map(|value| (chosen, value)).ok_or(Error::Timeout)
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
    let cins: Vec<&Reader<Msg>> = cins.iter().collect();
    loop {
        sleeper.nap();
        let (chosen, got) = select_input(&cins, choice)?;
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
fn run_network<R: std::fmt::Debug + Send + 'static>(
    name: &str,
    readers: Parallel<R>,
    writers: Parallel<Written>,
) -> (Vec<R>, Vec<Written>) {
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

// ---------------------------------------------------------------------------
// guardtest.py: PriSelect with a SkipGuard between inputs, or a
// TimeoutGuard after them; the reader selects `4 * cnt` times, then
// retires its inputs. Its writers do not retire (PyCSP does not retire an
// end when its process returns): the test holds a writer on each channel so
// that none retires before the reader is done.
// ---------------------------------------------------------------------------

/// guardtest's sleepers and timeout, a hundredth of PyCSP's (0.5 s, 2 s,
/// up to 2 s, 0.1 s).
const GUARD_RANDOM: Sleeper = Sleeper::Random(5_000);
const GUARD_LONG: Sleeper = Sleeper::Fixed(20_000);
const GUARD_LONG_RANDOM: Sleeper = Sleeper::Random(20_000);
const GUARD_TIMEOUT_US: u64 = 1_000;

/// What one selection did: the channel it read and the value, or `None`
/// (the skip or the timeout fired).
type Fired = Option<(u64, Msg)>;

/// guardtest's four readers: `_sel` returns the guard that fired, `_exec`
/// runs the guard's action (here: the arms of `pri_select!`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum GuardReader {
    SkipSel,
    TimeoutSel,
    SkipExec,
    TimeoutExec,
}

#[process]
fn guard_reader(
    cins: Vec<Reader<Msg>>,
    how: GuardReader,
    cnt: u64,
    sleeper: Sleeper,
) -> csp::Result<Vec<Fired>> {
    let timeout = Duration::from_micros(GUARD_TIMEOUT_US);
    let mut log = Vec::new();
    for _ in 0..cnt * 4 {
        sleeper.nap();
        let fired = match how {
            GuardReader::SkipSel => {
                let mut alt = Alternation::new()
                    .input(&cins[0])
                    .input(&cins[1])
                    .skip()
                    .input(&cins[2])
                    .input(&cins[3]);
                let chosen = alt.pri_select()?;
                let channel = [Some(0), Some(1), None, Some(2), Some(3)][chosen];
                channel.map(|c| (c, alt.take::<Msg>(chosen).unwrap()))
            }
            GuardReader::TimeoutSel => {
                let mut alt = Alternation::new().inputs(&cins).timeout(timeout);
                let chosen = alt.pri_select()?;
                alt.take::<Msg>(chosen).map(|v| (chosen as u64, v))
            }
            GuardReader::SkipExec => csp::pri_select! {
                read(cins[0]) -> v => Some((0, v)),
                read(cins[1]) -> v => Some((1, v)),
                skip => None,
                read(cins[2]) -> v => Some((2, v)),
                read(cins[3]) -> v => Some((3, v)),
            }?,
            GuardReader::TimeoutExec => csp::pri_select! {
                read(cins[0]) -> v => Some((0, v)),
                read(cins[1]) -> v => Some((1, v)),
                read(cins[2]) -> v => Some((2, v)),
                read(cins[3]) -> v => Some((3, v)),
                timeout(timeout) => None,
            }?,
        };
        log.push(fired);
    }
    csp::retire(&cins);
    Ok(log)
}

/// guardtest's Any2One_Alting_Test (`per_channel` 1, `cnt` 10) and
/// Any2Any_Alting_Test (`per_channel` 4, `cnt` 40): writer `id` writes on
/// channel `id / per_channel`. Returns the reader's log.
fn guard_network(
    name: &str,
    how: GuardReader,
    per_channel: u64,
    cnt: u64,
    mode: Mode,
    rs: Sleeper,
    ws: Sleeper,
) -> Vec<Fired> {
    let cs = channels(&RENDEZVOUS);
    let keep = writers_of(&cs);
    let readers = Parallel::new().add(placed(guard_reader(readers_of(&cs), how, cnt, rs), mode));
    let mut writers = Parallel::new();
    for id in 0..4 * per_channel {
        let c = &cs[(id / per_channel) as usize];
        writers = writers.add(placed(writer(c.writer(), id, cnt, ws, Then::Retire), mode));
    }
    let (mut read, written) = run_network(name, readers, writers);
    drop(keep);
    let log = read.remove(0).unwrap_or_else(|e| panic!("{name}: the reader failed: {e}"));
    assert_eq!(log.len() as u64, cnt * 4, "{name}");
    for &(channel, (id, _)) in log.iter().flatten() {
        assert_eq!(channel, id / per_channel, "{name}: a value on the wrong channel");
    }
    // Exactly once: a writer's write returned Ok for just the values the
    // reader took, in order; the rest of its writes found the channel
    // retired.
    for (id, &(n, ref how_ended)) in (0..).zip(&written) {
        let got: Vec<u64> = log.iter().flatten().filter(|f| f.1.0 == id).map(|f| f.1.1).collect();
        assert_eq!(got, (0..n).collect::<Vec<_>>(), "{name}: writer {id}");
        let expected = if n == cnt { Ok(()) } else { Err(Error::Retired) };
        assert_eq!(*how_ended, expected, "{name}: writer {id}");
    }
    log
}

#[test]
fn guardtest_any2one_pri_select_with_a_skip_between_inputs_never_reads_the_inputs_after_it() {
    for mode in MODES {
        for how in [GuardReader::SkipSel, GuardReader::SkipExec] {
            let name = format!("guardtest Any2One_Alting_Test {how:?} {mode:?}");
            let log = guard_network(&name, how, 1, 10, mode, GUARD_RANDOM, GUARD_RANDOM);
            assert!(log.iter().flatten().all(|&(c, _)| c < 2), "{name}: {log:?}");
        }
    }
}

#[test]
fn guardtest_any2one_pri_select_with_a_timeout_reads_each_value_once_or_times_out() {
    for mode in MODES {
        for how in [GuardReader::TimeoutSel, GuardReader::TimeoutExec] {
            let name = format!("guardtest Any2One_Alting_Test {how:?} {mode:?}");
            let log = guard_network(&name, how, 1, 10, mode, GUARD_RANDOM, GUARD_LONG_RANDOM);
            // Writers that nap up to 20 ms and a 1 ms timeout: some
            // selections time out.
            assert!(log.contains(&None), "{name}: no timeout in {log:?}");
        }
    }
}

#[test]
fn guardtest_any2any_pri_select_with_a_skip_between_inputs_never_reads_the_inputs_after_it() {
    for mode in MODES {
        let name = format!("guardtest Any2Any_Alting_Test SkipSel {mode:?}");
        let log = guard_network(&name, GuardReader::SkipSel, 4, 40, mode, ZERO, GUARD_LONG);
        assert!(log.iter().flatten().all(|&(c, _)| c < 2), "{name}: {log:?}");
    }
}

#[test]
fn guardtest_any2any_pri_select_with_a_timeout_reads_sixteen_writers_each_value_once() {
    for mode in MODES {
        let name = format!("guardtest Any2Any_Alting_Test TimeoutSel {mode:?}");
        let log = guard_network(&name, GuardReader::TimeoutSel, 4, 40, mode, ZERO, GUARD_LONG);
        assert!(log.contains(&None), "{name}: no timeout in {log:?}");
    }
}

// ---------------------------------------------------------------------------
// selecttest.py: one reader selects exactly `4 * cnt` times over four
// writers' channels, with AltSelect, PriSelect and FairSelect.
// ---------------------------------------------------------------------------

/// selecttest's `par_reader`: `n` selections; returns the guard that fired
/// and the value, for each.
#[process]
fn select_reader(
    cins: Vec<Reader<Msg>>,
    choice: Choice,
    n: u64,
    sleeper: Sleeper,
) -> csp::Result<Vec<(u64, Msg)>> {
    let mut log = Vec::new();
    for _ in 0..n {
        sleeper.nap();
        let mut alt = Alternation::new().inputs(&cins).timeout(LIMIT);
        let chosen = choice.select(&mut alt)?;
        log.push((chosen as u64, alt.take::<Msg>(chosen).ok_or(Error::Timeout)?));
    }
    Ok(log)
}

/// selecttest's Any2One_Alting_Test, sleepers a hundredth of PyCSP's (up to
/// 100 ms).
fn select_test(choice: Choice) {
    let sleeper = Sleeper::Random(1_000);
    for mode in MODES {
        let name = format!("selecttest Any2One_Alting_Test {choice:?} {mode:?}");
        let cs = channels(&RENDEZVOUS);
        // PyCSP's writers do not retire as they end: these keep the
        // channels open until the reader made its 40 selections.
        let keep = writers_of(&cs);
        let cnt = 10;
        let readers = Parallel::new()
            .add(placed(select_reader(readers_of(&cs), choice, cnt * 4, sleeper), mode));
        let mut writers = Parallel::new();
        for (id, c) in (0..).zip(&cs) {
            writers = writers.add(placed(writer(c.writer(), id, cnt, sleeper, Then::Retire), mode));
        }
        let (mut read, written) = run_network(&name, readers, writers);
        drop(keep);
        let log = read.remove(0).unwrap_or_else(|e| panic!("{name}: the reader failed: {e}"));
        assert_all_written(&name, &written, cnt);
        assert!(log.iter().all(|&(guard, (id, _))| guard == id), "{name}: {log:?}");
        let reports: Vec<Report> = log;
        for id in 0..4 {
            assert_eq!(from_writer(&reports, id), (0..cnt).collect::<Vec<_>>(), "{name}");
        }
    }
}

#[test]
fn selecttest_alt_select_reads_all_forty_values_each_from_its_own_guard() {
    select_test(Choice::Alt);
}

#[test]
fn selecttest_pri_select_reads_all_forty_values_each_from_its_own_guard() {
    select_test(Choice::Pri);
}

#[test]
fn selecttest_fair_select_reads_all_forty_values_each_from_its_own_guard() {
    select_test(Choice::Fair);
}

// ---------------------------------------------------------------------------
// Priority, deterministically: buffered channels filled beforehand by
// another process, drained by a reader in yet another.
// ---------------------------------------------------------------------------

/// Writes `(k, 0)` to `(k, n - 1)` on channel `k`, for each channel.
#[process]
fn fill(couts: Vec<Writer<Msg>>, n: u64) -> csp::Result<()> {
    for (k, cout) in (0..).zip(&couts) {
        for i in 0..n {
            cout.write_timeout((k, i), LIMIT)?;
        }
    }
    Ok(())
}

/// `pri_select`s over `cins` (with a skip guard after input `skip_after`,
/// if given) until a selection fails or `n` were made; returns what each
/// did and how the last ended.
#[process]
fn pri_drain(
    cins: Vec<Reader<Msg>>,
    skip_after: Option<usize>,
    n: usize,
) -> (Vec<Fired>, csp::Result<()>) {
    let mut log = Vec::new();
    while log.len() < n {
        let mut alt = Alternation::new();
        let mut channel_of = Vec::new();
        for (k, cin) in (0..).zip(&cins) {
            alt = alt.input(cin);
            channel_of.push(Some(k));
            if skip_after == Some(k as usize) {
                alt = alt.skip();
                channel_of.push(None);
            }
        }
        match alt.pri_select() {
            Ok(chosen) => {
                log.push(channel_of[chosen].map(|c| (c, alt.take::<Msg>(chosen).unwrap())))
            }
            Err(e) => return (log, Err(e)),
        }
    }
    (log, Ok(()))
}

#[test]
fn pri_select_takes_ready_inputs_in_list_order_and_a_skip_between_them_hides_the_later_ones() {
    for mode in MODES {
        let cs = channels(&[5; 4]);
        placed(fill(writers_of(&cs), 5), mode).run().unwrap().unwrap();
        // Every channel is full, and retired: its writer ended.
        let (log, last) = placed(pri_drain(readers_of(&cs), None, 100), mode).run().unwrap();
        let expected: Vec<Fired> =
            (0..4).flat_map(|k| (0..5).map(move |i| Some((k, (k, i))))).collect();
        assert_eq!(log, expected, "{mode:?}");
        assert_eq!(last, Err(Error::Retired), "{mode:?}: drained, then retired");

        // With the skip after the second input: the first two drain, then
        // the skip fires for ever and the last two keep their values.
        let cs = channels(&[5; 4]);
        placed(fill(writers_of(&cs), 5), mode).run().unwrap().unwrap();
        let (log, last) = placed(pri_drain(readers_of(&cs), Some(1), 15), mode).run().unwrap();
        let mut expected: Vec<Fired> =
            (0..2).flat_map(|k| (0..5).map(move |i| Some((k, (k, i))))).collect();
        expected.extend([None; 5]);
        assert_eq!((log, last), (expected, Ok(())), "{mode:?}");
        for (k, c) in (0..).zip(&cs).skip(2) {
            let r = c.reader();
            let left: Vec<Msg> = (0..5).map(|_| r.try_read().unwrap()).collect();
            assert_eq!(left, (0..5).map(|i| (k, i)).collect::<Vec<_>>(), "{mode:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// Faults: SIGKILLs at random moments in running networks of OS processes.
// ---------------------------------------------------------------------------

/// What the processes of a network under fire tally, in shared memory, so
/// that it outlives a SIGKILL.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Tally {
    /// Per writer: how many of its values it began to write.
    begun: RawArray<u64>,
    /// Per writer: how many of its values it delivered (writes that
    /// returned `Ok`).
    delivered: RawArray<u64>,
    /// Per value `(w, i)`, at `w * per_writer + i`: how many times it was
    /// read. The last slot counts values read that no writer wrote.
    seen: RawArray<u32>,
    /// `[0]`: how many values were read, by all readers.
    reads: RawArray<u64>,
}

impl Tally {
    fn new(writers: u64, per_writer: u64) -> Self {
        Tally {
            begun: RawArray::new(writers as usize).unwrap(),
            delivered: RawArray::new(writers as usize).unwrap(),
            seen: RawArray::new((writers * per_writer) as usize + 1).unwrap(),
            reads: RawArray::new(1).unwrap(),
        }
    }
}

/// A writer of a network under fire: writes `(id, 0)` to `(id, n - 1)`,
/// each to whichever of its outputs takes it (an alternation, if it has
/// several), tallying as it goes.
fn doomed_writer(args: (Vec<Writer<Msg>>, u64, u64, Tally)) -> csp::Result<u64> {
    let (couts, id, n, tally) = args;
    for i in 0..n {
        tally.begun.store(id as usize, i + 1);
        if let [cout] = &couts[..] {
            cout.write_timeout((id, i), LIMIT)?;
        } else {
            let mut alt = Alternation::new();
            for cout in &couts {
                alt = alt.output(cout, (id, i));
            }
            if alt.timeout(LIMIT).alt_select()? == couts.len() {
                return Err(Error::Timeout);
            }
        }
        tally.delivered.store(id as usize, i + 1);
    }
    Ok(n)
}

/// A reader of a network under fire: reads (selecting, if it has several
/// inputs) until an error ends it; tallies each value. Returns how many it
/// read and the error.
fn doomed_reader(args: (Vec<Reader<Msg>>, u64, u64, Tally)) -> (u64, Error) {
    let (cins, writers, per_writer, tally) = args;
    let mut count = 0;
    loop {
        let got = if let [cin] = &cins[..] {
            cin.read_timeout(LIMIT)
        } else {
            select_input(&cins.iter().collect::<Vec<_>>(), Choice::Alt).map(|(_, value)| value)
        };
        match got {
            Ok((w, i)) => {
                let slot = if w < writers && i < per_writer {
                    w * per_writer + i
                } else {
                    writers * per_writer
                };
                tally.seen.fetch_add(slot as usize, 1);
                tally.reads.fetch_add(0, 1);
                count += 1;
            }
            Err(error) => return (count, error),
        }
    }
}

/// A network under fire: its channels, and how its processes start.
#[derive(Clone, Copy, Debug)]
struct Fire {
    /// 0: rendezvous.
    capacity: usize,
    /// 1: plain reads and writes; more: alternations on both sides.
    channels: usize,
    method: StartMethod,
}

const FIRE_WRITERS: u64 = 4;
const FIRE_READERS: u64 = 4;
const FIRE_VALUES: u64 = 1_500;

/// Four writers and four readers on any-to-any channels, OS processes; one
/// or two writers and one or two readers are SIGKILLed, each once the
/// network has read a random number of values. The surviving writers
/// finish; then the test poisons the channels (from writer ends of its
/// own, so that buffered values still reach the readers) and the surviving
/// readers end. Checks: no value read twice, every value read was written,
/// every value delivered was read (but for at most one per killed reader:
/// the one it had taken and not yet tallied), and no survivor hung.
fn sigkill_network(fire: Fire) {
    let (writers, readers, n) = (FIRE_WRITERS, FIRE_READERS, FIRE_VALUES);
    // Victims: (after how many reads, a writer?, which).
    let mut victims = Vec::new();
    for (is_writer, count) in [(true, writers), (false, readers)] {
        let mut order: Vec<u64> = (0..count).collect();
        for k in (1..order.len()).rev() {
            order.swap(k, random_below(k as u64 + 1) as usize);
        }
        let k = 1 + random_below(2) as usize;
        for &index in &order[..k] {
            // Below what the two writers that always survive write alone
            // (2n, less a value per killed reader): always reached.
            let after = n / 4 + random_below(3 * n / 2);
            victims.push((after, is_writer, index as usize));
        }
    }
    victims.sort_unstable();
    let name = format!("{fire:?}, victims (after reads, writer?, index) {victims:?}");
    let tally = Tally::new(writers, n);
    let chs = channels(&vec![fire.capacity; fire.channels]);
    let ours = writers_of(&chs);
    let spawn_writer = |id| {
        let args = (writers_of(&chs), id, n, tally.clone());
        common::builder(fire.method).spawn(doomed_writer, args).unwrap()
    };
    let spawn_reader = |_| {
        let args = (readers_of(&chs), writers, n, tally.clone());
        common::builder(fire.method).spawn(doomed_reader, args).unwrap()
    };
    let mut ws: Vec<_> = (0..writers).map(spawn_writer).map(Some).collect();
    let mut rs: Vec<_> = (0..readers).map(spawn_reader).map(Some).collect();

    let mut killed = Vec::new();
    for &(after, is_writer, index) in &victims {
        // The fault injector's timing: it looks at the tally until its
        // moment comes (a stalled network fails here).
        let deadline = Instant::now() + LIMIT;
        while tally.reads.load(0) < after {
            let reads = tally.reads.load(0);
            assert!(Instant::now() < deadline, "{name}: stalled at {reads} reads before kill");
            std::thread::sleep(Duration::from_micros(200));
        }
        // Its end: killed (or, had it ended before, its result).
        let end = if is_writer {
            let victim = ws[index].take().unwrap();
            victim.kill().unwrap();
            common::join(victim).map(drop)
        } else {
            let victim = rs[index].take().unwrap();
            victim.kill().unwrap();
            common::join(victim).map(drop)
        };
        killed.push((if is_writer { "writer" } else { "reader" }, index, end));
    }
    // A reader ends only by poison, which comes later: each reader victim
    // died of its SIGKILL. (A writer victim may have finished first.)
    for (kind, index, end) in &killed {
        let by_kill = matches!(end, Err(multiproc::Error::Signaled { signal: 9 }));
        assert!(by_kill || *kind == "writer", "{name}: reader {index} ended {end:?}");
    }
    let killed_readers = victims.iter().filter(|v| !v.1).count();

    // The surviving writers finish on their own...
    for (id, w) in ws.into_iter().enumerate() {
        if let Some(w) = w {
            assert_eq!(common::join(w).unwrap(), Ok(n), "{name}: writer {id}");
        }
    }
    // ... and the surviving readers end when the test poisons.
    csp::poison(&ours);
    let mut survivors_read = 0;
    for (id, r) in rs.into_iter().enumerate() {
        if let Some(r) = r {
            let (count, error) = common::join(r).unwrap();
            assert_eq!(error, Error::Poisoned, "{name}: reader {id}");
            survivors_read += count;
        }
    }

    let seen = tally.seen.to_vec();
    let (begun, delivered) = (tally.begun.to_vec(), tally.delivered.to_vec());
    assert_eq!(seen[(writers * n) as usize], 0, "{name}: read a value no writer wrote");
    let mut missing = Vec::new();
    for w in 0..writers {
        for i in 0..n {
            let times = seen[(w * n + i) as usize];
            assert!(times <= 1, "{name}: ({w}, {i}) read {times} times");
            assert!(times == 0 || i < begun[w as usize], "{name}: ({w}, {i}) read, never written");
            if times == 0 && i < delivered[w as usize] {
                missing.push((w, i));
            }
        }
    }
    assert!(
        missing.len() <= killed_readers,
        "{name}: delivered, never read: {missing:?} ({killed_readers} readers killed; {killed:?})"
    );
    let total_seen: u64 = seen.iter().map(|&t| u64::from(t)).sum();
    assert!(survivors_read <= total_seen, "{name}");
}

#[test]
fn sigkills_in_a_rendezvous_any_to_any_network_lose_and_duplicate_nothing() {
    for _ in 0..2 {
        sigkill_network(Fire { capacity: 0, channels: 1, method: StartMethod::Spawn });
        sigkill_network(Fire { capacity: 0, channels: 1, method: StartMethod::ForkServer });
    }
}

#[test]
fn sigkills_in_a_buffered_any_to_any_network_lose_and_duplicate_nothing() {
    for _ in 0..2 {
        sigkill_network(Fire { capacity: 8, channels: 1, method: StartMethod::ForkServer });
        sigkill_network(Fire { capacity: 8, channels: 1, method: StartMethod::Fork });
    }
}

#[test]
fn sigkills_among_alternating_writers_and_readers_lose_and_duplicate_nothing() {
    for _ in 0..2 {
        sigkill_network(Fire { capacity: 0, channels: 2, method: StartMethod::Spawn });
        sigkill_network(Fire { capacity: 0, channels: 2, method: StartMethod::Fork });
    }
}

// ---------------------------------------------------------------------------
// Alternations on both sides of channels, across OS processes, under load.
// ---------------------------------------------------------------------------

/// Selects, `n` times over, between writing its next value to either
/// output and reading from either input (the same channels: every
/// communication is between two alternations); then retires its outputs and
/// reads on until every writer retired, dropping each input as it retires
/// (as PyCSP's merges do). Returns what it read, in order.
///
/// A plain function, not a `#[process]`: in a `#[process]` body, retiring
/// an argument end does not retire it until the process returns (see
/// `a_writer_retired_inside_a_process_body_retires_its_channel_at_once`).
fn both_ways(args: (Vec<Writer<Msg>>, Vec<Reader<Msg>>, u64, u64)) -> csp::Result<Vec<Msg>> {
    let (outs, ins, id, n) = args;
    let mut got = Vec::new();
    let mut written = 0;
    while written < n {
        let mut alt = Alternation::new();
        for out in &outs {
            alt = alt.output(out, (id, written));
        }
        let mut alt = alt.inputs(&ins).timeout(LIMIT);
        let chosen = alt.fair_select()?;
        if chosen < outs.len() {
            written += 1;
        } else {
            got.push(alt.take::<Msg>(chosen).ok_or(Error::Timeout)?);
        }
    }
    csp::retire(&outs);
    let mut live: Vec<&Reader<Msg>> = ins.iter().collect();
    while !live.is_empty() {
        match select_input(&live, Choice::Alt) {
            Ok((_, value)) => got.push(value),
            Err(Error::Retired) => {
                let mut still = Vec::new();
                for r in live {
                    match r.try_read() {
                        Ok(v) => {
                            got.push(v);
                            still.push(r);
                        }
                        Err(Error::Retired) => {}
                        Err(Error::WouldBlock) => still.push(r),
                        Err(e) => return Err(e),
                    }
                }
                live = still;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Six processes, each alternating between writing and reading on the same
/// two rendezvous channels, on a machine kept busy meanwhile (two threads
/// spinning here, on top of the six processes, on what may be two CPUs).
#[test]
fn alternations_on_both_sides_of_two_channels_deliver_every_value_once_under_load() {
    const PROCESSES: u64 = 6;
    const N: u64 = 300;
    for mode in MODES {
        let chs = channels(&[0, 0]);
        let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let load: Vec<_> = (0..2)
            .map(|_| {
                let busy = busy.clone();
                std::thread::spawn(move || {
                    let mut spins = 0u64;
                    while busy.load(std::sync::atomic::Ordering::Relaxed) {
                        spins = std::hint::black_box(spins.wrapping_add(1));
                    }
                })
            })
            .collect();
        let mut all = Parallel::new();
        for id in 0..PROCESSES {
            let p = csp::Process::new(both_ways, (writers_of(&chs), readers_of(&chs), id, N));
            all = all.add(placed(p, mode));
        }
        let results = all.run();
        busy.store(false, std::sync::atomic::Ordering::Relaxed);
        for t in load {
            t.join().unwrap();
        }
        let got: Vec<Vec<Msg>> =
            ended(&format!("{mode:?}"), results).into_iter().map(|r| r.unwrap()).collect();
        // Exactly once: together the processes read every value written,
        // once; and each saw each writer's values in the order written.
        let mut every: Vec<Msg> = got.iter().flatten().copied().collect();
        every.sort_unstable();
        let expected: Vec<Msg> =
            (0..PROCESSES).flat_map(|id| (0..N).map(move |i| (id, i))).collect();
        assert_eq!(every, expected, "{mode:?}");
        for (id, read) in got.iter().enumerate() {
            assert!(in_writer_order(read), "{mode:?}: process {id}");
            assert!(
                read.iter().all(|&(w, _)| w != id as u64),
                "{mode:?}: process {id} read itself"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// A library bug found on the way.
// ---------------------------------------------------------------------------

#[process]
fn retire_then_wait(out: Writer<u64>, go_on: Reader<u64>) -> csp::Result<()> {
    out.retire();
    go_on.read_timeout(LIMIT).map(drop)
}

/// PyCSP's `retire(end)` leaves the channel at once, wherever it is
/// called, and so does `Writer::retire` in plain code. In a `#[process]`
/// body it does not: the process holds a registered clone of each argument
/// end until it returns, so the channel retires only then.
#[test]
fn a_writer_retired_inside_a_process_body_retires_its_channel_at_once() {
    for mode in MODES {
        let (ch, go_on) = (Channel::<u64>::new().unwrap(), Channel::<u64>::new().unwrap());
        let r = ch.reader();
        let running = placed(retire_then_wait(ch.writer(), go_on.reader()), mode).start().unwrap();
        // Its only writer retired: a read fails at once (2 s is plenty).
        let read = r.read_timeout(Duration::from_secs(2));
        go_on.writer().write_timeout(0, LIMIT).unwrap();
        running.join().unwrap().unwrap();
        assert_eq!(read, Err(Error::Retired), "{mode:?}");
    }
}

/// Reads one value (the process is ready once `ready` is set).
fn read_one_value(args: (Reader<u64>, multiproc::Event)) -> csp::Result<u64> {
    let (cin, ready) = args;
    ready.set();
    cin.read_timeout(LIMIT)
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: sends a signal to our own child; no memory is involved.
    #[allow(unsafe_code)]
    let sent = unsafe { libc::kill(pid as i32, signal) };
    assert_eq!(sent, 0);
}

/// The setting of the two tests below: another process blocked in a plain
/// read of `ch` (which holds the channel's consumer side while it waits),
/// stopped; and an alternation over an input of `ch` in a thread here, with
/// a 5 s timeout guard, asleep. `change` then changes the channel (each
/// change rings the alternation's bell: it looks again, finds the channel
/// held, and sleeps again); the other reader goes on and lets go of the
/// channel. Returns the other reader's result, and the alternation's
/// (guard, value) and how long it took after the other reader ended.
fn alternation_after_a_competing_reader(
    ch: &Channel<u64>,
    change: impl FnOnce(),
) -> (csp::Result<u64>, (csp::Result<usize>, Option<u64>), Duration) {
    let ready = multiproc::Event::new().unwrap();
    let other = multiproc::Process::spawn(read_one_value, (ch.reader(), ready.clone())).unwrap();
    assert!(ready.wait_timeout(LIMIT), "the other reader did not start");
    common::wait_until_process_asleep("the other reader waits in its read", other.pid());
    signal(other.pid(), libc::SIGSTOP);
    let r = ch.reader();
    let (tx, rx) = std::sync::mpsc::channel();
    let selecting = std::thread::spawn(move || {
        tx.send(common::thread_id()).unwrap();
        let mut alt = Alternation::new().input(&r).timeout(Duration::from_secs(5));
        let chosen = alt.pri_select();
        (chosen, alt.take::<u64>(0))
    });
    let tid = rx.recv_timeout(LIMIT).unwrap();
    common::eventually("the alternation sleeps", || common::thread_asleep(tid));
    change();
    // Woken by the change, it looked again and sleeps again (asleep after
    // the bell rang: it went back to sleep since).
    common::eventually("the alternation sleeps again", || common::thread_asleep(tid));
    signal(other.pid(), libc::SIGCONT);
    let theirs = common::join(other).unwrap();
    let start = Instant::now();
    let ours = selecting.join().unwrap();
    (theirs, ours, start.elapsed())
}

/// An alternation whose input guard found the channel held by another
/// reader sleeps until something rings the channel's bell again; the other
/// reader letting go rings none. Here a value waits in the channel, nobody
/// else reads it, and the alternation sleeps on until its timeout (with no
/// timeout guard: for ever). Under load, networks of alternating readers
/// stall the same way (`Any_Alting2Any_Alting_Test`'s readers, at the end).
#[test]
fn an_alternation_takes_a_value_left_once_a_competing_reader_lets_go_of_the_channel() {
    let ch = Channel::<u64>::buffered(4).unwrap();
    let w = ch.writer();
    let (theirs, ours, took) = alternation_after_a_competing_reader(&ch, || {
        w.write(1).unwrap();
        w.write(2).unwrap();
    });
    assert_eq!(theirs, Ok(1));
    assert_eq!(ours, (Ok(0), Some(2)));
    assert!(took < Duration::from_secs(2), "a value was ready; the alternation slept {took:?}");
}

/// The same with a retire: the channel retires while another reader holds
/// it; once that reader has let go, the alternation (whose only channel
/// guard is retired) should fail with `Retired`, not sleep until its
/// timeout.
#[test]
fn an_alternation_sees_its_channel_retire_once_a_competing_reader_lets_go_of_it() {
    let ch = Channel::<u64>::buffered(4).unwrap();
    let w = ch.writer();
    let (theirs, ours, took) = alternation_after_a_competing_reader(&ch, || w.retire());
    assert_eq!(theirs, Err(Error::Retired));
    assert_eq!(ours.0, Err(Error::Retired), "after {took:?}");
    assert!(took < Duration::from_secs(2), "the channel retired; the alternation slept {took:?}");
}
