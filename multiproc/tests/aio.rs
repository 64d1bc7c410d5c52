//! The async face: every awaitable under tokio's multi-threaded runtime and
//! under `futures::executor::block_on`, across real processes; cancellation
//! in the middle; peers killed while tasks await; many awaiting tasks.

mod common;

use std::time::Duration;

use common::{LIMIT, cpu_ticks, eventually, join};
use multiproc::{JoinableQueue, Process, Queue};

/// A multi-threaded tokio runtime (2 workers, as the machine has 2 CPUs).
fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Runs `f` under tokio, failing the test after `LIMIT`.
fn under_tokio<F: Future<Output = R> + Send + 'static, R: Send + 'static>(f: F) -> R {
    let runtime = tokio();
    runtime.block_on(async {
        tokio::time::timeout(LIMIT, tokio::spawn(f)).await.expect("within the limit").unwrap()
    })
}

/// Runs `f` under `futures::executor::block_on` on a helper thread,
/// failing the test after `LIMIT`.
fn under_block_on<F: Future<Output = R> + Send + 'static, R: Send + 'static>(f: F) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(futures::executor::block_on(f));
    });
    rx.recv_timeout(LIMIT).expect("block_on: within the limit")
}

fn echo(args: (Queue<u64>, Queue<u64>)) {
    let (input, output) = args;
    while let Ok(n) = input.get() {
        output.put(n + 1).unwrap();
    }
}

async fn round_trips(to: Queue<u64>, from: Queue<u64>, n: u64) -> u64 {
    let mut sum = 0;
    for i in 0..n {
        to.put_async(i).await.unwrap();
        sum += from.get_async().await.unwrap();
    }
    sum
}

#[test]
fn queue_round_trips_with_a_process_under_tokio_and_block_on() {
    let (to, from) = (Queue::new().unwrap(), Queue::new().unwrap());
    let child = Process::spawn(echo, (to.clone(), from.clone())).unwrap();
    let n = 2_000;
    let expected = n * (n + 1) / 2;
    assert_eq!(under_tokio(round_trips(to.clone(), from.clone(), n)), expected);
    assert_eq!(under_block_on(round_trips(to.clone(), from.clone(), n)), expected);
    to.close();
    join(child).unwrap();
}

fn produce(args: (Queue<u64>, u64)) {
    let (q, n) = args;
    for i in 0..n {
        q.put(i).unwrap();
    }
}

#[test]
fn ten_thousand_tasks_await_one_queue_and_each_item_reaches_exactly_one() {
    let n = 10_000u64;
    let q: Queue<u64> = Queue::new().unwrap();
    let runtime = tokio();
    let total = runtime.block_on(async {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let q = q.clone();
                tokio::spawn(async move { q.get_async().await.unwrap() })
            })
            .collect();
        let producer = Process::spawn(produce, (q.clone(), n)).unwrap();
        let mut seen = vec![false; n as usize];
        for task in tasks {
            let item =
                tokio::time::timeout(LIMIT, task).await.expect("every task gets one").unwrap();
            assert!(!std::mem::replace(&mut seen[item as usize], true), "{item} twice");
        }
        join(producer).unwrap();
        seen.iter().filter(|s| **s).count()
    });
    assert_eq!(total, n as usize);
    assert!(q.is_empty());
}

#[test]
fn a_cancelled_get_loses_nothing_and_leaves_no_waiter() {
    let q: Queue<u32> = Queue::new().unwrap();
    under_tokio({
        let q = q.clone();
        async move {
            // Cancelled while asleep (past its poll budget) ...
            let cancelled = tokio::time::timeout(Duration::from_millis(20), q.get_async()).await;
            assert!(cancelled.is_err());
            // ... and many times in the middle of polling.
            for _ in 0..1000 {
                let _ = tokio::time::timeout(Duration::from_micros(10), q.get_async()).await;
            }
        }
    });
    q.put(7).unwrap();
    q.put(8).unwrap();
    assert_eq!(q.get_timeout(LIMIT).unwrap(), 7);
    assert_eq!(
        under_block_on({
            let q = q.clone();
            async move { q.get_async().await.unwrap() }
        }),
        8
    );
}

#[test]
fn a_cancelled_put_puts_nothing_and_a_woken_put_goes_in() {
    let q: Queue<u32> = Queue::bounded(1).unwrap();
    q.put(1).unwrap();
    under_tokio({
        let q = q.clone();
        async move {
            let cancelled = tokio::time::timeout(Duration::from_millis(20), q.put_async(2)).await;
            assert!(cancelled.is_err());
            assert_eq!(q.len(), 1);
            // A put asleep for room is woken by a get in another thread.
            let getter = {
                let q = q.clone();
                std::thread::spawn(move || q.get_timeout(LIMIT).unwrap())
            };
            q.put_async(3).await.unwrap();
            assert_eq!(getter.join().unwrap(), 1);
        }
    });
    assert_eq!(q.get_timeout(LIMIT).unwrap(), 3);
    assert!(q.is_empty());
}

#[test]
fn closing_a_queue_ends_awaiting_gets_and_its_stream() {
    use futures::StreamExt;
    let q: Queue<u32> = Queue::new().unwrap();
    let closer = q.clone();
    let got = under_tokio({
        let q = q.clone();
        async move {
            let waiting = tokio::spawn({
                let q = q.clone();
                async move { q.get_async().await }
            });
            let streamed = tokio::spawn({
                let q = q.clone();
                async move { q.stream().collect::<Vec<_>>().await }
            });
            closer.close();
            (waiting.await.unwrap(), streamed.await.unwrap())
        }
    });
    assert!(matches!(got.0, Err(multiproc::Error::Closed)), "{:?}", got.0);
    assert!(got.1.is_empty());
}

fn work(q: JoinableQueue<u32>) {
    while let Ok(_job) = q.get() {
        q.task_done().unwrap();
    }
}

#[test]
fn join_async_waits_for_workers_in_another_process() {
    let q = JoinableQueue::new().unwrap();
    let worker = Process::spawn(work, q.clone()).unwrap();
    under_tokio({
        let q = q.clone();
        async move {
            for job in 0..50 {
                q.put_async(job).await.unwrap();
            }
            q.join_async().await;
            assert!(q.is_empty());
        }
    });
    q.close();
    join(worker).unwrap();
}

fn await_one(args: (Queue<u8>, multiproc::Event)) -> u8 {
    let (q, ready) = args;
    ready.set();
    futures::executor::block_on(q.get_async()).unwrap()
}

#[test]
fn an_idle_awaiting_process_uses_no_cpu() {
    let q = Queue::new().unwrap();
    let ready = multiproc::Event::new().unwrap();
    let p = Process::spawn(await_one, (q.clone(), ready.clone())).unwrap();
    assert!(ready.wait_timeout(LIMIT), "the consumer did not start");
    // Every thread of it (the executor's and the reactor's) asleep.
    let task_dir = format!("/proc/{}/task", p.pid());
    eventually("the awaiting process sleeps", || {
        std::fs::read_dir(&task_dir).unwrap().flatten().all(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            stat.rsplit_once(')').and_then(|(_, a)| a.trim_start().chars().next()) == Some('S')
        })
    });
    let before = cpu_ticks(p.pid());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(p.pid()) - before;
    q.put(9).unwrap();
    assert_eq!(join(p).unwrap(), 9);
    assert!(used <= 1, "an awaiting consumer used {used} ticks of CPU in one second");
}

fn set_event(event: multiproc::Event) {
    event.set();
}

#[test]
fn events_locks_and_semaphores_are_awaited_across_processes() {
    use multiproc::{Event, Lock, Semaphore};
    let event = Event::new().unwrap();
    let setter = Process::spawn(set_event, event.clone()).unwrap();
    under_tokio({
        let event = event.clone();
        async move { event.wait_async().await }
    });
    assert!(event.is_set());
    join(setter).unwrap();

    // A lock held by another thread; the awaiting task gets it on release,
    // holds it across an await on another worker thread, releases it there.
    let lock = Lock::new().unwrap();
    let held = lock.clone();
    let (locked, is_locked) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let _guard = held.lock().unwrap();
        locked.send(()).unwrap();
    });
    is_locked.recv_timeout(LIMIT).unwrap();
    under_tokio({
        let lock = lock.clone();
        async move {
            let guard = lock.lock_async().await.unwrap();
            tokio::task::yield_now().await;
            assert!(lock.is_locked());
            drop(guard);
            assert!(!lock.is_locked());
        }
    });
    holder.join().unwrap();

    let sem = Semaphore::new(0).unwrap();
    let releaser = {
        let sem = sem.clone();
        std::thread::spawn(move || sem.release().unwrap())
    };
    under_block_on({
        let sem = sem.clone();
        async move { sem.acquire_async().await }
    });
    assert!(!sem.try_acquire());
    releaser.join().unwrap();
}

fn hold_lock_and_die(args: (multiproc::Lock, multiproc::Event)) {
    let (lock, locked) = args;
    std::mem::forget(lock.lock().unwrap());
    locked.set();
    std::thread::sleep(LIMIT);
}

#[test]
fn a_lock_awaited_from_a_killed_holder_comes_with_owner_died() {
    let lock = multiproc::Lock::new().unwrap();
    let locked = multiproc::Event::new().unwrap();
    let holder = Process::spawn(hold_lock_and_die, (lock.clone(), locked.clone())).unwrap();
    assert!(locked.wait_timeout(LIMIT));
    let got = under_tokio({
        let lock = lock.clone();
        let pid = holder.pid();
        async move {
            let waiter = tokio::spawn({
                let lock = lock.clone();
                async move { matches!(lock.lock_async().await, Err(multiproc::LockError::OwnerDied(_))) }
            });
            // SAFETY: plain kill(2) of our own child.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            waiter.await.unwrap()
        }
    });
    assert!(got, "the awaiting task did not take the dead holder's lock");
    let _ = common::wait(&holder);
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn processes_are_joined_awaiting_and_a_killed_one_is_an_error() {
    let child = Process::spawn(nap, 20).unwrap();
    assert_eq!(under_tokio(child.join_async()).unwrap(), 20);
    let sleeper = Process::spawn(nap, 60_000).unwrap();
    let pid = sleeper.pid();
    let joined = under_block_on(async move {
        let join = sleeper.join_async();
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        join.await
    });
    assert!(matches!(joined, Err(multiproc::Error::Signaled { signal: 9 })), "{joined:?}");
}

fn pipe_echo(conn: multiproc::Connection<u64>) {
    while let Ok(n) = conn.recv() {
        conn.send(&(n * 2)).unwrap();
    }
}

fn pipe_then_die(conn: multiproc::Connection<u64>) {
    conn.send(&1).unwrap();
    std::thread::sleep(LIMIT);
}

#[test]
fn pipes_are_awaited_both_ways_and_a_killed_peer_ends_them() {
    use futures::StreamExt;
    let (ours, theirs) = multiproc::pipe::<u64>().unwrap();
    let child = Process::spawn(pipe_echo, theirs).unwrap();
    let sum = under_tokio({
        let ours = ours.clone();
        async move {
            let mut sum = 0;
            for i in 0..500 {
                ours.send_async(&i).await.unwrap();
                sum += ours.recv_async().await.unwrap();
            }
            sum
        }
    });
    assert_eq!(sum, 2 * (0..500).sum::<u64>());
    drop(ours);
    join(child).unwrap();

    let (ours, theirs) = multiproc::pipe::<u64>().unwrap();
    let child = Process::spawn(pipe_then_die, theirs).unwrap();
    let pid = child.pid();
    let got = under_tokio(async move {
        let mut stream = ours.stream();
        let first = stream.next().await;
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        (first.map(Result::unwrap), stream.next().await.is_none())
    });
    assert_eq!(got, (Some(1), true));
    let _ = common::wait(&child);
}

#[test]
fn listeners_accept_and_clients_connect_awaiting() {
    use multiproc::connection::{Address, Client, Connection, Listener};
    let listener =
        Listener::bind(Address::Tcp("127.0.0.1:0".parse().unwrap()), Some(b"key")).unwrap();
    let address = listener.address().clone();
    let got = under_tokio(async move {
        let server = tokio::spawn(async move {
            let conn: Connection<String> = listener.accept_async().await.unwrap();
            let wrong: multiproc::Result<Connection<String>> = listener.accept_async().await;
            (conn.recv_async().await.unwrap(), wrong.is_err())
        });
        let client: Connection<String> =
            Client::connect_async(&address, Some(b"key")).await.unwrap();
        client.send_async(&"over tcp".to_owned()).await.unwrap();
        let refused = Client::connect_async::<String, String>(&address, Some(b"wrong")).await;
        (server.await.unwrap(), refused.is_err())
    });
    assert_eq!(got, (("over tcp".to_owned(), true), true));
}

fn csp_write_all(args: (multiproc::csp::Writer<u64>, u64)) {
    let (w, n) = args;
    for i in 0..n {
        w.write(i).unwrap();
    }
    w.retire();
}

fn csp_read_all(r: multiproc::csp::Reader<u64>) -> u64 {
    let mut sum = 0;
    while let Ok(v) = r.read() {
        sum += v;
    }
    sum
}

fn csp_write_and_die(w: multiproc::csp::Writer<u64>) {
    w.write(1).unwrap();
    std::thread::sleep(LIMIT);
}

#[test]
fn channel_ends_are_awaited_across_processes_rendezvous_and_buffered() {
    use futures::StreamExt;
    use multiproc::csp::Channel;
    for ch in [Channel::<u64>::new().unwrap(), Channel::<u64>::buffered(4).unwrap()] {
        // Awaiting reader, blocking writer in another process.
        let writer = Process::spawn(csp_write_all, (ch.writer(), 300)).unwrap();
        let reader = ch.reader();
        let sum = under_tokio(async move {
            reader.stream().map(Result::unwrap).fold(0, |a, v| async move { a + v }).await
        });
        assert_eq!(sum, (0..300).sum::<u64>());
        join(writer).unwrap();
    }
    for ch in [Channel::<u64>::new().unwrap(), Channel::<u64>::buffered(4).unwrap()] {
        // Awaiting writer, blocking reader in another process.
        let reader = Process::spawn(csp_read_all, ch.reader()).unwrap();
        let writer = ch.writer();
        under_block_on(async move {
            for i in 0..300 {
                writer.write_async(i).await.unwrap();
            }
            writer.retire();
        });
        drop(ch);
        assert_eq!(join(reader).unwrap(), (0..300).sum::<u64>());
    }
}

#[test]
fn an_awaiting_reader_of_a_killed_writer_is_retired() {
    let ch = multiproc::csp::Channel::<u64>::new().unwrap();
    let writer = Process::spawn(csp_write_and_die, ch.writer()).unwrap();
    let pid = writer.pid();
    let reader = ch.reader();
    drop(ch);
    let got = under_tokio(async move {
        let first = reader.read_async().await;
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        (first, reader.read_async().await)
    });
    assert_eq!(got, (Ok(1), Err(multiproc::csp::Error::Retired)));
    let _ = common::wait(&writer);
}

#[test]
fn cancelled_channel_writes_deliver_each_value_once_or_not_at_all() {
    use multiproc::csp::Channel;
    for ch in [Channel::<u64>::new().unwrap(), Channel::<u64>::buffered(2).unwrap()] {
        let reader = ch.reader();
        let read = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let slow_reader = {
            let (read, stop) = (read.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Ok(v) = reader.read_timeout(Duration::from_millis(1)) {
                        read.lock().unwrap().push(v);
                    }
                }
                while let Ok(v) = reader.try_read() {
                    read.lock().unwrap().push(v);
                }
            })
        };
        let writer = ch.writer();
        let completed = under_tokio(async move {
            let mut completed = Vec::new();
            for i in 0..2_000u64 {
                let deadline = Duration::from_micros(i % 50);
                if let Ok(Ok(())) = tokio::time::timeout(deadline, writer.write_async(i)).await {
                    completed.push(i);
                }
            }
            completed
        });
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        slow_reader.join().unwrap();
        let read = read.lock().unwrap().clone();
        let mut sorted = read.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), read.len(), "a value was read twice");
        for v in &completed {
            assert!(read.contains(v), "{v} completed but was never read");
        }
    }
}

#[test]
fn a_light_reader_and_a_thread_writer_share_a_local_channel_without_encoding() {
    use multiproc::csp::Channel;
    // Not a serde type: the channel stays local, and the awaiting reader
    // takes boxed closures from a thread.
    let ch: Channel<Box<dyn FnOnce() -> u64 + Send>> = Channel::new().unwrap();
    let writer = ch.writer();
    let thread = std::thread::spawn(move || {
        for i in 0..100u64 {
            writer.write(Box::new(move || i * 3)).unwrap();
        }
        writer.retire();
    });
    let reader = ch.reader();
    drop(ch);
    let sum = under_tokio(async move {
        let mut sum = 0;
        while let Ok(f) = reader.read_async().await {
            sum += f();
        }
        sum
    });
    thread.join().unwrap();
    assert_eq!(sum, 3 * (0..100).sum::<u64>());
}

fn csp_write_one(w: multiproc::csp::Writer<u64>) {
    w.write(7).unwrap();
}

fn csp_read_one(r: multiproc::csp::Reader<u64>) -> u64 {
    r.read().unwrap()
}

#[test]
fn alternations_are_awaited_over_inputs_and_outputs_of_other_processes() {
    use multiproc::csp::{Alternation, Channel};
    // An input guard fires when another process writes.
    let (a, b) = (Channel::<u64>::new().unwrap(), Channel::<u64>::new().unwrap());
    let writer = Process::spawn(csp_write_one, b.writer()).unwrap();
    let (ra, rb) = (a.reader(), b.reader());
    let got = under_tokio(async move {
        let mut alt = Alternation::new().input(&ra).input(&rb);
        let i = alt.fair_select_async().await.unwrap();
        (i, alt.take::<u64>(i))
    });
    assert_eq!(got, (1, Some(7)));
    join(writer).unwrap();

    // An output guard fires when another process reads.
    let ch = Channel::<u64>::new().unwrap();
    let reader = Process::spawn(csp_read_one, ch.reader()).unwrap();
    let w = ch.writer();
    let fired = under_block_on(async move {
        let mut alt = Alternation::new().output(&w, 11).timeout(LIMIT);
        alt.pri_select_async().await.unwrap()
    });
    assert_eq!(fired, 0);
    assert_eq!(join(reader).unwrap(), 11);
}

#[test]
fn a_cancelled_alternation_offers_its_value_once_or_not_at_all() {
    use multiproc::csp::{Alternation, Channel};
    let ch = Channel::<u64>::new().unwrap();
    let (r, w) = (ch.reader(), ch.writer());
    let fired = under_tokio(async move {
        let mut fired = Vec::new();
        for i in 0..300u64 {
            let mut alt = Alternation::new().output(&w, i);
            let deadline = Duration::from_micros(i % 40);
            if let Ok(Ok(0)) = tokio::time::timeout(deadline, alt.alt_select_async()).await {
                fired.push(i);
            }
        }
        fired
    });
    let mut read = Vec::new();
    while let Ok(v) = r.read_timeout(Duration::from_millis(20)) {
        read.push(v);
    }
    // Nobody read during the selections: nothing fired, nothing is left.
    assert!(fired.is_empty(), "{fired:?}");
    assert!(read.is_empty(), "{read:?}");
}

#[test]
fn manager_proxies_are_awaited_by_many_tasks_and_a_dead_manager_is_an_error() {
    let manager = multiproc::Manager::start().unwrap();
    let list = manager.list::<u64>([]).unwrap();
    let dict = manager.dict::<String, u64>().unwrap();
    let total = under_tokio({
        let (list, dict) = (list.clone(), dict.clone());
        async move {
            let tasks: Vec<_> = (0..64u64)
                .map(|i| {
                    let (list, dict) = (list.clone(), dict.clone());
                    tokio::spawn(async move {
                        list.append_async(i).await.unwrap();
                        dict.insert_async(format!("k{i}"), i).await.unwrap();
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            // Cancelled in the middle: later calls work.
            for _ in 0..50 {
                let _ = tokio::time::timeout(Duration::from_micros(30), list.len_async()).await;
            }
            assert_eq!(dict.get_async("k7").await.unwrap(), Some(7));
            list.len_async().await.unwrap()
        }
    });
    assert_eq!(total, 64);
    let mut sorted = list.to_vec().unwrap();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..64).collect::<Vec<_>>());
    manager.shutdown().unwrap();
    let after = under_block_on(async move { list.len_async().await });
    assert!(after.is_err(), "{after:?}");
}

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn pool_results_and_futures_are_awaited() {
    let pool = multiproc::Pool::new(2).unwrap();
    let one = pool.apply_async(square, 7).unwrap();
    let many = pool.map_async(square, 0..100).unwrap();
    let executor = multiproc::pool::ProcessPoolExecutor::new(2).unwrap();
    let future = executor.submit(square, 9).unwrap();
    let got = under_tokio(async move { (one.await, many.await, future.await) });
    assert_eq!(got.0.unwrap(), 49);
    assert_eq!(got.1.unwrap(), (0..100).map(square).collect::<Vec<_>>());
    assert_eq!(got.2.unwrap(), 81);
}

#[test]
fn a_value_handed_to_a_dropped_awaiting_reader_goes_to_the_next_reader() {
    use std::task::Context;
    let ch = multiproc::csp::Channel::<String>::new().unwrap();
    let (r, w) = (ch.reader(), ch.writer());
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    {
        let mut read = std::pin::pin!(r.read_async());
        // Registered as a waiting reader ...
        assert!(read.as_mut().poll(&mut cx).is_pending());
        // ... a writer hands it a value and returns at once ...
        w.try_write("handed".to_owned()).unwrap();
        // ... and the read is dropped before it looked.
    }
    assert_eq!(r.read_timeout(LIMIT).unwrap(), "handed");
    // The channel works on, both ways.
    let writer = std::thread::spawn(move || w.write("next".to_owned()));
    assert_eq!(under_block_on(async move { r.read_async().await }).unwrap(), "next");
    writer.join().unwrap().unwrap();
}

#[test]
fn cancelled_lock_semaphore_event_and_recv_waits_leave_their_objects_working() {
    use multiproc::{Event, Lock, Semaphore};
    let lock = Lock::new().unwrap();
    let sem = Semaphore::new(0).unwrap();
    let event = Event::new().unwrap();
    let (a, b) = multiproc::pipe::<u32>().unwrap();
    let held = lock.clone();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked, is_locked) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let guard = held.lock().unwrap();
        locked.send(()).unwrap();
        let _ = released.recv_timeout(LIMIT);
        drop(guard);
    });
    is_locked.recv_timeout(LIMIT).unwrap();
    under_tokio({
        let (lock, sem, event, b) = (lock.clone(), sem.clone(), event.clone(), b.clone());
        async move {
            let short = Duration::from_millis(20);
            // Each cancelled asleep, and many times mid-poll.
            for wait in [short, Duration::from_micros(5)] {
                for _ in 0..20 {
                    assert!(tokio::time::timeout(wait, lock.lock_async()).await.is_err());
                    assert!(tokio::time::timeout(wait, sem.acquire_async()).await.is_err());
                    assert!(tokio::time::timeout(wait, event.wait_async()).await.is_err());
                    assert!(tokio::time::timeout(wait, b.recv_async()).await.is_err());
                    if wait == short {
                        break;
                    }
                }
            }
        }
    });
    release.send(()).unwrap();
    holder.join().unwrap();
    // Nothing was taken by a cancelled future.
    assert!(!lock.is_locked());
    drop(lock.try_lock().unwrap());
    sem.release().unwrap();
    assert!(sem.try_acquire());
    assert!(!sem.try_acquire());
    event.set();
    assert!(event.wait_timeout(LIMIT));
    a.send(&5).unwrap();
    assert_eq!(b.recv_timeout(LIMIT).unwrap(), 5);
    // And awaiting works after.
    let got = under_block_on({
        let (lock, b) = (lock.clone(), b.clone());
        async move {
            let guard = lock.lock_async().await.unwrap();
            drop(guard);
            a.send(&6).unwrap();
            b.recv_async().await.unwrap()
        }
    });
    assert_eq!(got, 6);
}

fn barrier_party(barrier: multiproc::Barrier) -> u32 {
    barrier.wait_timeout(LIMIT).map(|r| r.index()).unwrap_or(u32::MAX)
}

#[test]
fn a_barrier_is_awaited_with_other_processes_and_a_dropped_wait_breaks_it() {
    let barrier = multiproc::Barrier::new(3).unwrap();
    let others: Vec<_> =
        (0..2).map(|_| Process::spawn(barrier_party, barrier.clone()).unwrap()).collect();
    let mine = under_tokio({
        let barrier = barrier.clone();
        async move { barrier.wait_async().await.unwrap().index() }
    });
    let mut indices: Vec<u32> = others.into_iter().map(|p| join(p).unwrap()).collect();
    indices.push(mine);
    indices.sort_unstable();
    assert_eq!(indices, [0, 1, 2]);

    // An awaiting party dropped after it arrived breaks the cycle for the
    // one already waiting, which fails at once rather than wait for it.
    let barrier = multiproc::Barrier::new(3).unwrap();
    let waiting = std::thread::spawn({
        let barrier = barrier.clone();
        move || barrier.wait_timeout(LIMIT).map(|r| r.index())
    });
    eventually("the first party waits", || barrier.n_waiting() == 1);
    under_tokio({
        let barrier = barrier.clone();
        async move {
            let dropped =
                tokio::time::timeout(Duration::from_millis(20), barrier.wait_async()).await;
            assert!(dropped.is_err());
        }
    });
    assert!(matches!(waiting.join().unwrap(), Err(multiproc::Error::BrokenBarrier)));
    assert!(barrier.is_broken());
}

#[test]
fn every_simple_proxy_call_has_an_awaited_twin() {
    let manager = multiproc::Manager::start().unwrap();
    let list = manager.list([3u32, 1, 2]).unwrap();
    let dict = manager.dict::<String, u32>().unwrap();
    let ns = manager.namespace().unwrap();
    under_block_on(async move {
        list.extend_async([4, 5]).await.unwrap();
        list.insert_async(0, 9).await.unwrap();
        list.set_async(-1, 6).await.unwrap();
        assert!(list.contains_async(&6).await.unwrap());
        assert_eq!(list.index_async(&1).await.unwrap(), 2);
        assert_eq!(list.count_async(&9).await.unwrap(), 1);
        assert_eq!(list.pop_async().await.unwrap(), 6);
        assert_eq!(list.pop_at_async(0).await.unwrap(), 9);
        list.remove_async(&1).await.unwrap();
        assert_eq!(list.slice_async(0..2).await.unwrap(), [3, 2]);
        assert_eq!(list.to_vec_async().await.unwrap(), [3, 2, 4]);
        list.clear_async().await.unwrap();
        assert_eq!(list.len_async().await.unwrap(), 0);

        assert_eq!(dict.setdefault_async("a".into(), 1).await.unwrap(), 1);
        dict.insert_async("b".into(), 2).await.unwrap();
        assert!(dict.contains_key_async("b").await.unwrap());
        assert_eq!(dict.len_async().await.unwrap(), 2);
        let mut keys = dict.keys_async().await.unwrap();
        keys.sort();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(dict.values_async().await.unwrap().iter().sum::<u32>(), 3);
        assert_eq!(dict.remove_async("a").await.unwrap(), Some(1));
        dict.clear_async().await.unwrap();
        assert_eq!(dict.len_async().await.unwrap(), 0);

        ns.set_async("x", 1).await.unwrap();
        ns.delete_async("x").await.unwrap();
        assert!(ns.get_async::<i32>("x").await.is_err());
    });
}

#[test]
fn an_rlock_awaited_by_tasks_excludes_tasks_and_threads() {
    let lock = multiproc::RLock::new().unwrap();
    let inside = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    under_tokio({
        let (lock, inside) = (lock.clone(), inside.clone());
        async move {
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let (lock, inside) = (lock.clone(), inside.clone());
                    tokio::spawn(async move {
                        for _ in 0..20 {
                            let _guard = lock.lock_async().await.unwrap();
                            let now = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            assert_eq!(now, 0, "two tasks inside");
                            tokio::task::yield_now().await;
                            inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            // A thread of this process is excluded too while a task holds it.
            let guard = lock.lock_async().await.unwrap();
            let thread = std::thread::spawn({
                let lock = lock.clone();
                move || lock.try_lock().is_err()
            });
            assert!(thread.join().unwrap(), "a thread took a task's RLock");
            drop(guard);
            for task in tasks {
                task.await.unwrap();
            }
        }
    });
    let _reentrant = lock.lock().unwrap();
    let _again = lock.lock().unwrap();
}

fn notify_when_set(args: (multiproc::Condition, multiproc::Value<u32>)) {
    let (cond, flag) = args;
    let guard = cond.lock().unwrap();
    *flag.lock().unwrap() = 1;
    cond.notify_all().unwrap();
    drop(guard);
}

#[test]
fn a_condition_is_awaited_with_a_notifier_in_another_process_and_a_cancelled_wait_leaves_nothing() {
    let cond = multiproc::Condition::new().unwrap();
    let flag = multiproc::Value::new(0u32).unwrap();
    let seen = under_tokio({
        let (cond, flag) = (cond.clone(), flag.clone());
        async move {
            let mut guard = cond.lock_async().await.unwrap();
            let notifier = Process::spawn(notify_when_set, (cond.clone(), flag.clone())).unwrap();
            while *flag.lock().unwrap() == 0 {
                cond.wait_async(&mut guard).await.unwrap();
            }
            drop(guard);
            join(notifier).unwrap();
            *flag.lock().unwrap()
        }
    });
    assert_eq!(seen, 1);

    // Cancelled while waiting: the guard holds nothing, the lock is free,
    // and a notification finds no waiter left behind.
    under_tokio({
        let cond = cond.clone();
        async move {
            let mut guard = cond.lock_async().await.unwrap();
            let waited =
                tokio::time::timeout(Duration::from_millis(20), cond.wait_async(&mut guard)).await;
            assert!(waited.is_err());
            assert!(matches!(guard.notify(1), Err(multiproc::Error::NotOwner)));
            drop(guard);
        }
    });
    let guard = cond.lock().unwrap();
    cond.notify_all().unwrap();
    assert!(!cond.wait_timeout(&mut { guard }, Duration::from_millis(10)).unwrap());
}

#[test]
fn awaited_updates_from_many_tasks_count_exactly() {
    let manager = multiproc::Manager::start().unwrap();
    let hits = manager.dict::<String, u64>().unwrap();
    under_tokio({
        let hits = hits.clone();
        async move {
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let hits = hits.clone();
                    tokio::spawn(async move {
                        for _ in 0..20 {
                            hits.update_async("n".into(), |n| Some(n.unwrap_or(0) + 1))
                                .await
                                .unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        }
    });
    assert_eq!(hits.get("n").unwrap(), Some(320));
}

#[test]
fn reads_that_keep_timing_out_on_an_idle_local_channel_leave_nothing_behind() {
    let ch = multiproc::csp::Channel::<u64>::buffered(4).unwrap();
    let (r, w) = (ch.reader(), ch.writer());
    under_tokio(async move {
        for _ in 0..200 {
            let _ = tokio::time::timeout(Duration::from_micros(1), r.read_async()).await;
        }
        // Still works, and the next value reaches the next read.
        w.write_async(42).await.unwrap();
        assert_eq!(r.read_async().await.unwrap(), 42);
    });
}

#[test]
fn pool_results_under_block_on_and_a_writer_sink_under_tokio() {
    use futures::SinkExt;
    let pool = multiproc::Pool::new(2).unwrap();
    let one = pool.apply_async(square, 5).unwrap();
    assert_eq!(under_block_on(one).unwrap(), 25);

    let ch = multiproc::csp::Channel::<u64>::new().unwrap();
    let reader = Process::spawn(csp_read_all, ch.reader()).unwrap();
    let writer = ch.writer();
    drop(ch);
    under_tokio(async move {
        let mut sink = writer.sink();
        for i in 0..100 {
            sink.send(i).await.unwrap();
        }
        sink.close().await.unwrap();
    });
    assert_eq!(join(reader).unwrap(), (0..100).sum::<u64>());
}
