//! Pool and ProcessPoolExecutor: results, faults, shutdown, with real
//! worker processes. Every wait is bounded.

mod common;

use std::time::{Duration, Instant};

use common::{LIMIT, METHODS, eventually, proc_state};
use multiproc::{Error, Pool, PoolBuilder, ProcessPoolExecutor, StartMethod, Value, as_completed};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A pool builder for `method` (fork pools opt in: the harness is threaded).
fn pool_builder(method: StartMethod) -> PoolBuilder {
    let builder = Pool::builder().start_method(method);
    if method == StartMethod::Fork {
        // SAFETY: the tasks of these tests take no lock of the harness's
        // other threads: they compute, sleep, signal themselves.
        unsafe { builder.allow_threaded_fork() }
    } else {
        builder
    }
}

fn pool(method: StartMethod, n: usize) -> Pool {
    pool_builder(method).processes(n).build().expect("pool")
}

fn square(x: u64) -> u64 {
    x * x
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn kill_self(signal: i32) -> u64 {
    // SAFETY: resetting a signal's action and raising it on ourselves has
    // no memory effects (the default action of SIGSEGV is a crash, as a
    // real segfault's: Rust's own handler would otherwise return).
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
    std::thread::sleep(Duration::from_secs(60));
    0
}

fn exit_with(code: i32) -> u64 {
    std::process::exit(code)
}

fn panics_on_odd(x: u64) -> u64 {
    assert!(x.is_multiple_of(2), "odd {x}");
    x
}

fn my_pid(_: u64) -> u32 {
    std::process::id()
}

/// Ends the test's pool within the limit.
fn finish(pool: Pool) {
    pool.close();
    assert!(pool.join_timeout(LIMIT).expect("join"), "the pool did not end within {LIMIT:?}");
}

#[test]
fn map_returns_results_in_order_for_every_start_method() {
    for method in METHODS {
        let pool = pool(method, 2);
        let v = pool.map(square, 0..10_000u64).unwrap();
        assert_eq!(v, (0..10_000u64).map(square).collect::<Vec<_>>(), "{method:?}");
        assert_eq!(pool.map_chunked(square, 0..100u64, 7).unwrap()[99], 99 * 99);
        assert_eq!(pool.map(square, Vec::<u64>::new()).unwrap(), Vec::<u64>::new());
        finish(pool);
    }
}

#[test]
fn starmap_unpacks_tuples() {
    let pool = pool(StartMethod::ForkServer, 2);
    let v =
        pool.starmap(|a: u32, b: String| format!("{b}{a}"), [(1, "x".to_owned()), (2, "y".into())]);
    assert_eq!(v.unwrap(), ["x1", "y2"]);
    let r = pool.starmap_async(|a: u8, b: u8, c: u8| a + b + c, [(1, 2, 3)]).unwrap();
    assert_eq!(r.get_timeout(LIMIT).unwrap(), [6]);
    finish(pool);
}

#[test]
fn imap_is_ordered_and_lazy_on_an_endless_input() {
    let pool = pool(StartMethod::Spawn, 2);
    let pulled = std::cell::Cell::new(0u64);
    let input = (0u64..).inspect(|_| pulled.set(pulled.get() + 1));
    let first: Vec<u64> = pool.imap(square, input).take(1000).collect::<Result<_, _>>().unwrap();
    assert_eq!(first, (0..1000u64).map(square).collect::<Vec<_>>());
    // Bounded read-ahead.
    assert!(pulled.get() < 1000 + 10_000, "pulled {}", pulled.get());
    let mut unordered: Vec<u64> =
        pool.imap_unordered(square, 0..500u64).collect::<Result<_, _>>().unwrap();
    unordered.sort_unstable();
    assert_eq!(unordered, (0..500u64).map(square).collect::<Vec<_>>());
    let chunked: Vec<u64> =
        pool.imap_chunked(square, 0..100u64, 9).collect::<Result<_, _>>().unwrap();
    assert_eq!(chunked[99], 99 * 99);
    assert_eq!(pool.imap_unordered_chunked(square, 0..100u64, 9).count(), 100);
    finish(pool);
}

#[test]
fn apply_async_result_reports_ready_and_successful() {
    let pool = pool(StartMethod::Spawn, 2);
    assert_eq!(pool.apply(square, 9).unwrap(), 81);
    let slow = pool.apply_async(nap, 200).unwrap();
    assert!(matches!(slow.get_timeout(Duration::from_millis(1)), Err(Error::Timeout)));
    assert!(slow.wait_timeout(LIMIT));
    assert!(slow.ready());
    assert_eq!(slow.successful(), Some(true));
    assert_eq!(slow.get().unwrap(), 200);
    assert_eq!(slow.get().unwrap(), 200, "get may be called again");
    let bad = pool.apply_async(panics_on_odd, 3).unwrap();
    bad.wait();
    assert_eq!(bad.successful(), Some(false));
    let m = pool.map_async(square, 0..5u64).unwrap();
    assert_eq!(m.get_timeout(LIMIT).unwrap(), [0, 1, 4, 9, 16]);
    finish(pool);
}

#[test]
fn callbacks_run_with_the_result_or_the_error() {
    let pool = pool(StartMethod::Spawn, 1);
    let (tx, rx) = std::sync::mpsc::channel();
    let tx2 = tx.clone();
    pool.apply_async_with(square, 5, move |v| tx.send(Ok(*v)).unwrap(), |_| unreachable!())
        .unwrap();
    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), Ok(25));
    pool.map_async_with(
        panics_on_odd,
        [2u64, 3],
        |_| unreachable!(),
        move |e| tx2.send(Err(e.to_string())).unwrap(),
    )
    .unwrap();
    let message = rx.recv_timeout(LIMIT).unwrap().unwrap_err();
    assert!(message.contains("odd 3"), "{message}");
    finish(pool);
}

#[test]
fn a_panic_fails_its_task_only_and_the_worker_survives() {
    for method in METHODS {
        let pool = pool(method, 1);
        let pid = pool.apply(my_pid, 0).unwrap();
        let results: Vec<_> = pool.imap(panics_on_odd, 0..6u64).collect();
        for (i, r) in results.iter().enumerate() {
            match r {
                Ok(v) => assert_eq!(*v, i as u64),
                Err(Error::Panicked { message, .. }) => assert_eq!(message, &format!("odd {i}")),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), 3);
        assert_eq!(pool.apply(my_pid, 0).unwrap(), pid, "{method:?}: the worker was replaced");
        finish(pool);
    }
}

fn assert_died(result: &multiproc::Result<u64>, signal: Option<i32>, code: Option<i32>) {
    match result {
        Err(Error::WorkerDied { signal: s, code: c, .. }) => {
            assert_eq!((*s, *c), (signal, code), "{result:?}");
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
}

#[test]
fn a_worker_killed_mid_task_fails_that_task_and_is_replaced() {
    for method in METHODS {
        let pool = pool(method, 2);
        let a = pool.apply_async(kill_self, libc::SIGKILL).unwrap();
        let b = pool.apply_async(kill_self, libc::SIGSEGV).unwrap();
        let c = pool.apply_async(exit_with, 7).unwrap();
        assert_died(&a.get_timeout(LIMIT), Some(libc::SIGKILL), None);
        assert_died(&b.get_timeout(LIMIT), Some(libc::SIGSEGV), None);
        assert_died(&c.get_timeout(LIMIT), None, Some(7));
        let message = a.get().unwrap_err().to_string();
        assert!(message.contains("SIGKILL"), "{message}");
        // The pool goes on, with replacements.
        assert_eq!(pool.map(square, 0..100u64).unwrap()[10], 100);
        eventually("two workers again", || pool.pids().len() == 2);
        finish(pool);
    }
}

#[test]
fn a_killed_chunk_fails_only_the_item_that_ran() {
    fn kill_at_5(x: u64) -> u64 {
        if x == 5 {
            kill_self(libc::SIGKILL);
        }
        x
    }
    let pool = pool(StartMethod::Spawn, 2);
    let results: Vec<_> = pool.imap_chunked(kill_at_5, 0..20u64, 10).collect();
    for (i, r) in results.iter().enumerate() {
        if i == 5 {
            assert_died(r, Some(libc::SIGKILL), None);
        } else {
            assert_eq!(*r.as_ref().unwrap(), i as u64);
        }
    }
    finish(pool);
}

#[test]
fn retries_run_a_task_again_after_its_worker_died() {
    fn die_once(path: String) -> u64 {
        if std::fs::File::create_new(&path).is_ok() {
            kill_self(libc::SIGKILL);
        }
        42
    }
    let path = format!("/tmp/multiproc-pool-retry-{}", std::process::id());
    let _ = std::fs::remove_file(&path);
    let pool = Pool::builder().processes(1).retry_on_worker_death(1).build().unwrap();
    assert_eq!(pool.apply_async(die_once, path.clone()).unwrap().get_timeout(LIMIT).unwrap(), 42);
    let _ = std::fs::remove_file(&path);
    finish(pool);
}

/// Serializes fine, never deserializes.
#[derive(Debug)]
struct OneWay;

impl Serialize for OneWay {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(1)
    }
}

impl<'de> Deserialize<'de> for OneWay {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("OneWay never decodes"))
    }
}

/// Never serializes.
#[derive(Debug, PartialEq)]
struct Unsendable;

impl Serialize for Unsendable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("Unsendable never encodes"))
    }
}

impl<'de> Deserialize<'de> for Unsendable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u8::deserialize(d).map(|_| Unsendable)
    }
}

#[test]
fn encode_and_decode_failures_fail_their_task_only() {
    fn takes(_: OneWay) -> u8 {
        1
    }
    fn gives(x: u8) -> Result<u8, Unsendable> {
        if x == 1 { Err(Unsendable) } else { Ok(x) }
    }
    let pool = pool(StartMethod::Spawn, 1);
    let err = pool.apply(takes, OneWay).unwrap_err();
    assert!(matches!(&err, Error::TaskFailed { message } if message.contains("decode")), "{err}");
    let results: Vec<_> = pool.imap(gives, [0u8, 1, 2]).collect();
    assert_eq!(*results[0].as_ref().unwrap(), Ok(0));
    assert!(
        matches!(&results[1], Err(Error::TaskFailed { message }) if message.contains("encode")),
        "{:?}",
        results[1]
    );
    assert_eq!(*results[2].as_ref().unwrap(), Ok(2));
    // An argument that does not encode here never leaves.
    let sent: Vec<_> = pool.imap(|_: Unsendable| 0u8, [Unsendable]).collect();
    assert!(matches!(&sent[0], Err(Error::TaskFailed { .. })), "{:?}", sent[0]);
    // Handles travel through the initializer, not as task arguments.
    let q = multiproc::Queue::<u8>::new().unwrap();
    let err = pool.apply(|_: multiproc::Queue<u8>| 0u8, q).unwrap_err();
    assert!(matches!(err, Error::TaskFailed { .. }), "{err}");
    finish(pool);
}

/// Encodes fine, panics as it decodes.
struct Boom;

impl Serialize for Boom {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(0)
    }
}

impl<'de> Deserialize<'de> for Boom {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        panic!("Boom panics as it decodes")
    }
}

#[test]
fn a_result_that_panics_as_it_decodes_leaves_the_pool_working() {
    fn boom(_: u8) -> Boom {
        Boom
    }
    let pool = pool(StartMethod::Spawn, 2);
    let map = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.map(boom, 0..4u8)));
    assert!(map.is_err());
    // The caller that panicked was reading the result queue: others can now.
    let r = pool.apply_async(square, 7).unwrap();
    assert_eq!(r.get_timeout(LIMIT).unwrap(), 49);
    assert_eq!(pool.map(square, 0..100).unwrap()[99], 99 * 99);
    finish(pool);
}

#[test]
fn terminate_ends_running_work_in_bounded_time() {
    for method in METHODS {
        let pool = pool(method, 2);
        let pids = pool.pids();
        let running: Vec<_> = (0..6).map(|_| pool.apply_async(nap, 60_000).unwrap()).collect();
        eventually("tasks started", || pids.iter().all(|&p| proc_state(p).is_some()));
        let start = Instant::now();
        pool.terminate();
        for r in &running {
            assert!(matches!(r.get_timeout(LIMIT), Err(Error::PoolTerminated)), "{method:?}");
        }
        assert!(pool.join_timeout(LIMIT).unwrap());
        assert!(start.elapsed() < LIMIT);
        for pid in pids {
            assert_eq!(proc_state(pid), None, "worker {pid} left behind");
        }
        assert!(matches!(pool.apply(square, 1), Err(Error::PoolTerminated)));
    }
}

fn children_of_this_process() -> Vec<u32> {
    let me = std::process::id();
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((_, after)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(me) {
            children.push(pid);
        }
    }
    children
}

#[test]
fn dropping_a_pool_leaves_no_worker_or_zombie() {
    for method in [StartMethod::Spawn, StartMethod::Fork] {
        let pool = pool(method, 3);
        let pids = pool.pids();
        let _busy = pool.apply_async(nap, 60_000).unwrap();
        assert_eq!(pool.map(square, 0..10u64).unwrap()[3], 9);
        drop(pool);
        let children = children_of_this_process();
        for pid in pids {
            assert!(!children.contains(&pid), "{method:?}: worker {pid} is still our child");
        }
    }
}

#[test]
fn twenty_random_kills_during_a_10000_task_map_fail_at_most_those_tasks() {
    fn work(x: u64) -> u64 {
        std::thread::sleep(Duration::from_micros(200));
        x * 3
    }
    let pool = pool(StartMethod::ForkServer, 2);
    let done = std::sync::atomic::AtomicBool::new(false);
    let kills = std::thread::scope(|s| {
        let killer = s.spawn(|| {
            let mut seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
            let mut kills = 0;
            while kills < 20 && !done.load(std::sync::atomic::Ordering::SeqCst) {
                let pids = pool.pids();
                if pids.len() < 2 {
                    std::thread::yield_now();
                    continue;
                }
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let victim = pids[(seed % pids.len() as u64) as usize];
                // SAFETY: kill(2) has no memory effects.
                unsafe { libc::kill(victim as i32, libc::SIGKILL) };
                kills += 1;
                common::eventually("the killed worker is replaced", || {
                    let pids = pool.pids();
                    !pids.contains(&victim) && pids.len() == 2
                });
            }
            kills
        });
        let results: Vec<_> = pool.imap(work, 0..10_000u64).collect();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let kills = killer.join().unwrap();
        assert_eq!(results.len(), 10_000);
        let mut died = 0;
        for (i, r) in results.iter().enumerate() {
            match r {
                Ok(v) => assert_eq!(*v, 3 * i as u64),
                Err(Error::WorkerDied { signal: Some(9), .. }) => died += 1,
                Err(e) => panic!("item {i}: {e}"),
            }
        }
        assert!(died <= kills, "{died} failures for {kills} kills");
        kills
    });
    assert!(kills > 0);
    finish(pool);
}

#[test]
fn closures_that_capture_run_in_fork_pools_only() {
    let pool = pool(StartMethod::Fork, 2);
    let offset = 1000u64;
    assert_eq!(
        pool.map(move |x: u64| x + offset, 0..5u64).unwrap(),
        [1000, 1001, 1002, 1003, 1004]
    );
    let factor = 3u64;
    assert_eq!(pool.apply(move |x: u64| x * factor, 5).unwrap(), 15);
    finish(pool);
    // Refused in a threaded process without the opt-in, as fork_closure is.
    let err = Pool::builder().start_method(StartMethod::Fork).processes(1).build().unwrap_err();
    assert!(matches!(err, Error::ThreadedFork { .. }), "{err}");
    let spawn_pool = pool_builder(StartMethod::Spawn).processes(1).build().unwrap();
    let err = spawn_pool.map(move |x: u64| x + offset, [1u64]).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    finish(spawn_pool);
}

fn count_start(starts: Value<u32>) {
    *starts.lock().unwrap() += 1;
}

fn bad_init(_: ()) {
    panic!("no setup today");
}

#[test]
fn initializer_runs_once_per_worker_and_its_failure_breaks_the_pool() {
    let starts = Value::new(0u32).unwrap();
    let pool = Pool::builder()
        .processes(2)
        .max_tasks_per_child(1)
        .initializer(count_start, starts.clone())
        .build()
        .unwrap();
    let pids = pool.map_chunked(my_pid, 0..4u64, 1).unwrap();
    let mut distinct = pids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "each worker runs one task: {pids:?}");
    finish(pool);
    assert!(starts.get() >= 4, "{} starts", starts.get());

    let pool = Pool::builder().processes(1).initializer(bad_init, ()).build().unwrap();
    let err = pool.apply_async(square, 2).and_then(|r| r.get_timeout(LIMIT)).unwrap_err();
    assert!(
        matches!(&err, Error::PoolBroken { message } if message.contains("no setup today")),
        "{err}"
    );
    drop(pool);
}

#[test]
fn close_refuses_new_work_and_join_needs_close() {
    let pool = pool(StartMethod::Spawn, 1);
    assert!(matches!(pool.join(), Err(Error::PoolRunning)));
    let r = pool.apply_async(nap, 50).unwrap();
    pool.close();
    assert!(matches!(pool.apply(square, 1), Err(Error::PoolClosed)));
    assert!(pool.join_timeout(LIMIT).unwrap());
    assert_eq!(r.get().unwrap(), 50, "work submitted before close completes");
}

#[test]
fn executor_futures_result_cancel_done_and_as_completed() {
    let executor = Pool::builder().processes(1).build_executor().unwrap();
    let busy = executor.submit(nap, 300).unwrap();
    let queued: Vec<_> = (0..5).map(|_| executor.submit(nap, 0).unwrap()).collect();
    eventually("the first task runs", || busy.running());
    assert!(queued[4].cancel(), "a queued task can be cancelled");
    assert!(queued[4].cancelled() && queued[4].done());
    assert!(matches!(queued[4].result(), Err(Error::Cancelled)));
    assert!(!busy.cancel(), "a running task cannot");
    assert!(matches!(busy.result_timeout(Duration::from_millis(1)), Err(Error::Timeout)));
    assert_eq!(busy.result_timeout(LIMIT).unwrap(), 300);
    let mut seen = 0;
    for f in as_completed(queued.into_iter().take(4), Some(LIMIT)) {
        assert_eq!(f.unwrap().result().unwrap(), 0);
        seen += 1;
    }
    assert_eq!(seen, 4);
    let squares: Vec<u64> =
        executor.map(square, 0..5u64, Some(LIMIT)).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(squares, [0, 1, 4, 9, 16]);
    let mut timed = executor.map(nap, [400u64, 0, 0], Some(Duration::from_millis(10))).unwrap();
    assert!(matches!(timed.next(), Some(Err(Error::Timeout))));
    executor.shutdown(true, false).unwrap();
    assert!(matches!(executor.submit(square, 1), Err(Error::PoolClosed)));
}

#[test]
fn shutdown_can_cancel_the_futures_not_started() {
    let executor = ProcessPoolExecutor::new(1).unwrap();
    let busy = executor.submit(nap, 200).unwrap();
    let queued: Vec<_> = (0..10).map(|_| executor.submit(nap, 0).unwrap()).collect();
    eventually("the first task runs", || busy.running());
    executor.shutdown(true, true).unwrap();
    assert_eq!(busy.result().unwrap(), 200);
    assert!(queued.iter().all(|f| f.done()));
    assert!(queued.iter().any(|f| f.cancelled()));
}

#[test]
fn futures_are_std_futures() {
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let executor = ProcessPoolExecutor::new(1).unwrap();
    let mut f = Box::pin(executor.submit(nap, 50).unwrap());
    let flag = Arc::new(Flag(std::sync::atomic::AtomicBool::new(false)));
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    let deadline = Instant::now() + LIMIT;
    loop {
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(r) => {
                assert_eq!(r.unwrap(), 50);
                break;
            }
            Poll::Pending => {
                eventually("woken", || flag.0.load(std::sync::atomic::Ordering::SeqCst));
                flag.0.store(false, std::sync::atomic::Ordering::SeqCst);
            }
        }
        assert!(Instant::now() < deadline);
    }
}

#[test]
fn idle_workers_killed_in_turn_never_leave_a_task_untaken() {
    // One idle worker waits on the task queue, the other sleeps until rung:
    // whichever is killed, the next task is taken (by the other, or by the
    // replacement), within the test's bound.
    let pool = pool(StartMethod::Spawn, 2);
    assert_eq!(pool.apply(square, 3).unwrap(), 9);
    for round in 0..6u64 {
        let pids = pool.pids();
        let victim = pids[(round as usize) % pids.len()];
        // SAFETY: kill(2) has no memory effects.
        unsafe { libc::kill(victim as i32, libc::SIGKILL) };
        common::eventually("the killed worker is replaced", || {
            let now = pool.pids();
            now.len() == 2 && !now.contains(&victim)
        });
        let r = pool.apply_async(square, round).unwrap();
        assert_eq!(r.get_timeout(LIMIT).unwrap(), round * round, "round {round}");
    }
    // Both at once.
    for pid in pool.pids() {
        // SAFETY: as above.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    assert_eq!(pool.apply_async(square, 7).unwrap().get_timeout(LIMIT).unwrap(), 49);
}
