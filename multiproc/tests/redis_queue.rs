//! Queues on both back-ends through one suite, then what only Redis has:
//! re-delivery after a consumer dies, a server killed and restarted, an
//! unreachable server, AUTH, and names that hold another type.
#![cfg(feature = "redis")]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use multiproc::queue::Delivery;
use multiproc::remote::RedisServer;
use multiproc::{Error, JoinableQueue, Process, PutError, Queue, QueueBuilder, StartMethod};

/// A back-end to run the suite on: local, or a fresh Redis server.
enum Backend {
    Local,
    Redis(RedisServer),
}

impl Backend {
    fn all() -> Vec<Backend> {
        vec![Backend::Local, Backend::Redis(common::redis_server(RedisServer::builder()))]
    }

    fn queue<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        name: &str,
        settings: impl FnOnce(QueueBuilder<T>) -> QueueBuilder<T>,
    ) -> QueueBuilder<T> {
        let b = Queue::<T>::builder();
        let b = match self {
            Backend::Local => b,
            Backend::Redis(server) => b.redis(&server.url(), name),
        };
        settings(b)
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Redis(_) => "redis",
        }
    }
}

#[test]
fn fifo_len_and_close_hold_on_both_backends() {
    for backend in Backend::all() {
        let q: Queue<(u32, Option<String>)> = backend.queue("fifo", |b| b).build().unwrap();
        assert_eq!(q.backend(), backend.name());
        assert!(format!("{q:?}").contains(backend.name()), "{q:?}");
        for i in 0..5 {
            q.put((i, (i % 2 == 0).then(|| format!("n{i}")))).unwrap();
        }
        assert_eq!(q.len(), 5, "{}", backend.name());
        assert_eq!(q.try_len().unwrap(), 5);
        for i in 0..3 {
            assert_eq!(q.get().unwrap().0, i, "{}", backend.name());
        }
        q.close();
        assert!(q.is_closed());
        assert!(matches!(q.put((9, None)), Err(PutError::Closed((9, None)))));
        assert_eq!(q.get().unwrap().0, 3);
        assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap().0, 4);
        assert!(matches!(q.get(), Err(Error::Closed)), "{}", backend.name());
        assert!(matches!(q.try_get(), Err(Error::Closed)), "{}", backend.name());
        assert!(q.is_empty());
    }
}

#[test]
fn try_and_timeout_forms_keep_their_promise_on_both_backends() {
    for backend in Backend::all() {
        let q: Queue<u8> = backend.queue("bounded", |b| b.maxsize(1)).build().unwrap();
        assert_eq!(q.maxsize(), Some(1));
        assert!(matches!(q.try_get(), Err(Error::Empty)), "{}", backend.name());
        let start = Instant::now();
        assert!(matches!(q.get_timeout(Duration::from_millis(150)), Err(Error::Timeout)));
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(150) && waited < common::LIMIT, "{waited:?}");
        q.put(1).unwrap();
        assert!(q.is_full());
        assert!(matches!(q.try_put(2), Err(PutError::Full(2))), "{}", backend.name());
        let start = Instant::now();
        assert!(matches!(q.put_timeout(3, Duration::from_millis(100)), Err(PutError::Timeout(3))));
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert_eq!(q.get().unwrap(), 1);
        q.put_timeout(4, Duration::from_millis(100)).unwrap();
        assert_eq!(q.try_get().unwrap(), 4);
    }
}

/// A timed get ends near its deadline, not at the server's next timer tick
/// (a blocking command's timeout is answered up to 100 ms late).
#[test]
fn timed_gets_end_near_their_deadline_on_both_backends() {
    for backend in Backend::all() {
        let q: Queue<u8> = backend.queue("late", |b| b).build().unwrap();
        for timeout in [Duration::from_millis(30), Duration::from_millis(250)] {
            let mut over: Vec<Duration> = (0..5)
                .map(|_| {
                    let start = Instant::now();
                    assert!(matches!(q.get_timeout(timeout), Err(Error::Timeout)));
                    start.elapsed().checked_sub(timeout).expect("waited the whole timeout")
                })
                .collect();
            over.sort();
            let median = over[2];
            assert!(
                median < Duration::from_millis(40),
                "{}: get_timeout({timeout:?}) ends {median:?} late",
                backend.name()
            );
        }
    }
}

fn produce((q, from, n): (Queue<u64>, u64, u64)) {
    for i in from..from + n {
        q.put(i).unwrap();
    }
}

#[test]
fn items_cross_process_boundaries_with_every_start_method_on_both_backends() {
    for backend in Backend::all() {
        for method in common::METHODS {
            let name = format!("cross-{method:?}");
            let q: Queue<u64> = backend.queue(&name, |b| b).build().unwrap();
            let producers: Vec<_> = (0..2)
                .map(|k| {
                    common::builder(method).spawn(produce, (q.clone(), k * 1000, 200)).unwrap()
                })
                .collect();
            let mut got = BTreeSet::new();
            for _ in 0..400 {
                got.insert(q.get_timeout(common::LIMIT).unwrap());
            }
            for p in producers {
                common::join(p).unwrap();
            }
            let want: BTreeSet<u64> = (0..200).chain(1000..1200).collect();
            assert_eq!(got, want, "{} {method:?}", backend.name());
            assert!(matches!(q.try_get(), Err(Error::Empty)));
        }
    }
}

fn work(q: JoinableQueue<u64>) -> u64 {
    let mut sum = 0;
    while let Ok(job) = q.get_timeout(common::LIMIT) {
        sum += job;
        q.task_done().unwrap();
    }
    sum
}

#[test]
fn joinable_counts_are_exact_across_processes_on_both_backends() {
    for backend in Backend::all() {
        let q: JoinableQueue<u64> = backend.queue("joinable", |b| b).build_joinable().unwrap();
        assert!(q.join_timeout(Duration::from_millis(10)), "nothing was put");
        let workers: Vec<_> = (0..2).map(|_| Process::spawn(work, q.clone()).unwrap()).collect();
        for job in 1..=100 {
            q.put(job).unwrap();
        }
        assert!(q.join_timeout(common::LIMIT), "{}", backend.name());
        q.close();
        let total: u64 = workers.into_iter().map(|w| common::join(w).unwrap()).sum();
        assert_eq!(total, 5050, "{}", backend.name());
        assert!(matches!(q.task_done(), Err(Error::TaskDoneTooOften)), "{}", backend.name());
    }
}

#[test]
fn oversized_items_are_refused_and_the_queue_goes_on_on_both_backends() {
    for backend in Backend::all() {
        let q: Queue<Vec<u8>> = backend.queue("big", |b| b.max_message(1000)).build().unwrap();
        match q.put(vec![1; 2000]) {
            Err(PutError::Failed(item, Error::FrameTooLarge { .. })) => {
                assert_eq!(item.len(), 2000)
            }
            other => panic!("{}: {other:?}", backend.name()),
        }
        let roomy = q.clone().with_max_message(1 << 20);
        roomy.put(vec![2; 5000]).unwrap();
        roomy.put(vec![3; 10]).unwrap();
        assert!(matches!(q.get(), Err(Error::FrameTooLarge { .. })), "{}", backend.name());
        assert_eq!(q.get().unwrap(), vec![3; 10], "{}", backend.name());
    }
}

#[test]
fn a_name_that_holds_another_type_or_delivery_is_refused() {
    let server = common::redis_server(RedisServer::builder());
    let _q: Queue<u64> = Queue::builder().redis(&server.url(), "typed").build().unwrap();
    let err = Queue::<String>::builder().redis(&server.url(), "typed").build().unwrap_err();
    assert!(matches!(&err, Error::Backend { .. }), "{err:?}");
    assert!(err.to_string().contains("`u64`") && err.to_string().contains("String"), "{err}");
    let err = Queue::<u64>::builder()
        .redis(&server.url(), "typed")
        .delivery(Delivery::AtMostOnce)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("at-least-once"), "{err}");
    let err = JoinableQueue::<u64>::builder().redis(&server.url(), "typed").build_joinable();
    assert!(err.is_err());
}

/// Takes one item from `q` the way a consumer does, then waits to be
/// killed before it can acknowledge it (a joinable queue acknowledges on
/// `task_done`).
fn take_and_hang(q: JoinableQueue<u64>) {
    let item = q.get_timeout(common::LIMIT).unwrap();
    assert_eq!(item, 7);
    std::thread::sleep(common::LIMIT); // killed here, before task_done
}

#[test]
fn an_item_whose_consumer_is_killed_before_task_done_is_delivered_again() {
    let server = common::redis_server(RedisServer::builder());
    let q: JoinableQueue<u64> = JoinableQueue::builder()
        .redis(&server.url(), "redeliver")
        .visibility_timeout(Duration::from_millis(300))
        .build() // the form; build_joinable() is the same
        .unwrap();
    q.put(7).unwrap();
    let consumer = Process::spawn(take_and_hang, q.clone()).unwrap();
    common::eventually("the consumer takes the item", || {
        matches!(q.try_get(), Err(Error::Empty)) && q.len() == 1
    });
    assert!(!q.join_timeout(Duration::from_millis(1)));
    consumer.kill().unwrap();
    let _ = common::wait(&consumer);
    // After the visibility timeout another consumer gets it again.
    assert_eq!(q.get_timeout(common::LIMIT).unwrap(), 7);
    assert!(!q.join_timeout(Duration::from_millis(1)), "one item is still not done");
    q.task_done().unwrap();
    assert!(q.join_timeout(common::LIMIT));
    assert_eq!(q.len(), 0);
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooOften)));
}

#[test]
fn an_entry_read_and_never_acknowledged_comes_back_after_the_visibility_timeout() {
    let server = common::redis_server(RedisServer::builder());
    let q: Queue<u64> = Queue::builder()
        .redis(&server.url(), "acks")
        .visibility_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    // A consumer that read entry 1 and died before its acknowledgement.
    let client = redis::Client::open(server.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg(&["GROUP", "g", "dead-consumer", "COUNT", "1", "STREAMS", "mp:{acks}:items", ">"])
        .query(&mut con)
        .unwrap();
    assert_eq!(q.get().unwrap(), 2, "entry 1 is still the dead consumer's");
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    assert_eq!(q.len(), 1, "the unacknowledged entry still counts");
    assert_eq!(q.get_timeout(common::LIMIT).unwrap(), 1);
    common::eventually("the acknowledgement lands", || q.is_empty());
}

/// A batch taken by `get_many` is acknowledged by cutting the stream short
/// of the oldest entry still pending: an entry a dead consumer holds is
/// neither cut nor counted out, and comes back.
#[test]
fn a_batch_acknowledgement_removes_only_what_it_acknowledged() {
    let server = common::redis_server(RedisServer::builder());
    let q: Queue<u64> = Queue::builder()
        .redis(&server.url(), "batches")
        .visibility_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    q.put_many(0..300).unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg(&["GROUP", "g", "dead-consumer", "COUNT", "1", "STREAMS", "mp:{batches}:items", ">"])
        .query(&mut con)
        .unwrap();
    assert_eq!(q.get_many(100, common::LIMIT).unwrap(), (1..=100).collect::<Vec<_>>());
    common::eventually("200 left, the dead consumer's entry among them", || q.len() == 200);
    assert_eq!(q.get_many(1000, common::LIMIT).unwrap(), (101..300).collect::<Vec<_>>());
    common::eventually("only the dead consumer's entry is left", || q.len() == 1);
    assert_eq!(q.get_timeout(common::LIMIT).unwrap(), 0, "it comes back");
    // With nothing pending, whole batches are cut off the stream.
    q.put_many(0..2000).unwrap();
    let mut got = Vec::new();
    while got.len() < 2000 {
        got.extend(q.get_many(512, common::LIMIT).unwrap());
    }
    assert_eq!(got, (0..2000).collect::<Vec<_>>());
    // More ids than Redis's Lua unpacks at once (7,999): acknowledged in
    // several calls, none of them lost.
    q.put_many(0..10_000).unwrap();
    let mut big = Vec::new();
    while big.len() < 10_000 {
        big.extend(q.get_many(10_000, common::LIMIT).unwrap());
    }
    assert_eq!(big, (0..10_000).collect::<Vec<_>>());
    let mut xlen =
        || -> usize { redis::cmd("XLEN").arg("mp:{batches}:items").query(&mut con).unwrap() };
    common::eventually("every entry left the stream", || xlen() == 0);
    assert!(q.is_empty());
}

#[test]
fn at_most_once_queues_deliver_in_order_and_close() {
    let server = common::redis_server(RedisServer::builder());
    let q: Queue<String> = Queue::builder()
        .redis(&server.url(), "amo")
        .delivery(Delivery::AtMostOnce)
        .build()
        .unwrap();
    for w in ["a", "b", "c"] {
        q.put(w.to_owned()).unwrap();
    }
    assert_eq!(q.len(), 3);
    assert_eq!(q.get().unwrap(), "a");
    let other = Process::spawn(|q: Queue<String>| q.get_timeout(common::LIMIT).unwrap(), q.clone())
        .unwrap();
    assert_eq!(common::join(other).unwrap(), "b");
    q.close();
    assert_eq!(q.get().unwrap(), "c");
    assert!(matches!(q.get_timeout(common::LIMIT), Err(Error::Closed)));
}

#[test]
fn a_blocked_get_sees_a_close_from_another_process() {
    let server = common::redis_server(RedisServer::builder());
    let q: Queue<u8> = Queue::builder().redis(&server.url(), "closing").build().unwrap();
    let waiter = common::asleep_in_thread("a get on an empty queue", {
        let q = q.clone();
        move || q.get_timeout(common::LIMIT)
    });
    let closer = Process::spawn(|q: Queue<u8>| q.close(), q.clone()).unwrap();
    common::join(closer).unwrap();
    assert!(matches!(waiter.join().unwrap(), Err(Error::Closed)));
}

/// Puts `0..n`; returns how many were put before the first failure.
fn put_numbers((q, n): (Queue<u64>, u64)) -> u64 {
    (0..n).take_while(|&i| q.put(i).is_ok()).count() as u64
}

#[test]
fn a_server_killed_and_restarted_mid_run_loses_no_acknowledged_item() {
    let mut server = common::redis_server(RedisServer::builder().persistent(true));
    let q: Queue<u64> = Queue::builder().redis(&server.url(), "restart").build().unwrap();
    let n = 3000;
    let producer = Process::spawn(put_numbers, (q.clone(), n)).unwrap();
    let mut got = Vec::new();
    while got.len() < 500 {
        got.push(q.get_timeout(common::LIMIT).unwrap());
    }
    server.kill();
    // While it is down, a get with a short timeout fails cleanly.
    let start = Instant::now();
    let down = q.get_timeout(Duration::from_millis(200));
    assert!(matches!(down, Err(Error::Backend { .. } | Error::Timeout)), "{down:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    server.restart().unwrap();
    loop {
        match q.get_timeout(Duration::from_secs(3)) {
            Ok(item) => got.push(item),
            Err(Error::Timeout) => break,
            Err(e) => panic!("after {} items: {e:?}", got.len()),
        }
    }
    assert_eq!(common::join(producer).unwrap(), n, "every put reconnected and succeeded");
    let distinct: BTreeSet<u64> = got.iter().copied().collect();
    let missing: Vec<u64> = (0..n).filter(|i| !distinct.contains(i)).take(10).collect();
    assert!(
        missing.is_empty(),
        "at least once, yet {} missing: {missing:?}...",
        n - distinct.len() as u64
    );
    assert!(got.len() - distinct.len() < 10, "{} duplicates", got.len() - distinct.len());
}

#[test]
fn an_unreachable_server_fails_cleanly_and_names_itself() {
    let mut server = common::redis_server(RedisServer::builder());
    let url = server.url();
    let q: Queue<u8> = Queue::builder()
        .redis(&url, "gone")
        .unreachable_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    q.put(1).unwrap();
    server.kill();
    let start = Instant::now();
    match q.put(2) {
        Err(PutError::Failed(2, Error::Backend { address, .. })) => assert_eq!(address, url),
        other => panic!("{other:?}"),
    }
    assert!(matches!(q.get(), Err(Error::Backend { .. })));
    assert!(matches!(q.try_get(), Err(Error::Backend { .. })));
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    assert_eq!(q.len(), 0, "len logs the failure");
}

#[test]
fn auth_is_required_and_passwords_stay_out_of_debug_and_errors() {
    let server = common::redis_server(RedisServer::builder().password("s3cret-pw"));
    let url = server.url();
    let q: Queue<u8> = Queue::builder().redis(&url, "auth").build().unwrap();
    q.put(5).unwrap();
    assert!(!format!("{q:?}").contains("s3cret"), "{q:?}");
    let child =
        Process::spawn(|q: Queue<u8>| q.get_timeout(common::LIMIT).unwrap(), q.clone()).unwrap();
    assert_eq!(common::join(child).unwrap(), 5, "the password travels with the handle");
    let wrong = url.replace("s3cret-pw", "wrong-pw");
    let err = Queue::<u8>::builder()
        .redis(&wrong, "auth")
        .unreachable_timeout(Duration::from_millis(200))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert!(
        !err.to_string().contains("wrong-pw") && !format!("{err:?}").contains("wrong-pw"),
        "{err:?}"
    );
    let none = url.replace(":s3cret-pw@", "");
    assert!(Queue::<u8>::builder().redis(&none, "auth").build().is_err());
}

#[test]
fn async_faces_work_on_redis_and_a_dropped_get_gives_its_item_back() {
    use futures::StreamExt;
    let server = common::redis_server(RedisServer::builder());
    let q: Queue<u32> = Queue::builder().redis(&server.url(), "async").build().unwrap();
    futures::executor::block_on(async {
        q.put_async(1).await.unwrap();
        assert_eq!(q.get_async().await.unwrap(), 1);
        // A get whose future is dropped before the item arrives.
        {
            let get = q.get_async();
            futures::pin_mut!(get);
            assert!(futures::poll!(get.as_mut()).is_pending());
        }
        q.put(2).unwrap();
        q.put(3).unwrap();
        q.close();
        let items: Vec<u32> = q.stream().map(Result::unwrap).collect().await;
        let mut sorted = items.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [2, 3], "the dropped get gave back what it took: {items:?}");
    });
}

/// An awaited get on an empty queue blocks on the server (about ten reads
/// a second), rather than looking again every few milliseconds.
#[test]
fn an_idle_awaited_get_blocks_on_the_server() {
    let server = common::redis_server(RedisServer::builder());
    let q: Queue<u32> = Queue::builder().redis(&server.url(), "idle").build().unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let mut reads = || -> u64 {
        let info: String = redis::cmd("INFO").arg("commandstats").query(&mut con).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_xreadgroup:calls="))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or(0)
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let before = reads();
    let started = Instant::now();
    // An awaited get that finds nothing for a second.
    let got = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(1), q.get_async()).await });
    assert!(got.is_err(), "nothing was put: {got:?}");
    let per_second = (reads() - before) as f64 / started.elapsed().as_secs_f64();
    assert!(per_second < 40.0, "{per_second:.0} reads a second while idle");
}

/// A server that accepts a connection and its handshake, then stops
/// answering: building a queue fails within the handle's unreachable
/// timeout, never hanging on a read.
#[test]
fn a_server_that_stops_answering_after_the_handshake_cannot_hold_a_build() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                // Answers OK to every command up to the first CLIENT INFO.
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                let mut answered = 0;
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&seen).to_uppercase();
                    if text.contains("\r\nINFO\r\n") {
                        // Silent from here on, until the client hangs up.
                        while stream.read(&mut buf).is_ok_and(|n| n > 0) {}
                        return;
                    }
                    let commands = text.matches('*').count();
                    while answered < commands {
                        let _ = stream.write_all(b"+OK\r\n");
                        answered += 1;
                    }
                }
            });
        }
    });
    let start = Instant::now();
    let built = Queue::<u8>::builder()
        .redis(&format!("redis://127.0.0.1:{port}/0"), "silent")
        .unreachable_timeout(Duration::from_secs(1))
        .build();
    assert!(matches!(built, Err(Error::Backend { .. })), "{:?}", built.err());
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
}

/// A put blocked on a full bounded queue waits on the queue's bell: the
/// take that makes room wakes it at once, and so does a close.
#[test]
fn a_blocked_put_is_woken_by_the_take_that_makes_room_and_by_a_close() {
    let server = common::redis_server(RedisServer::builder());
    let client = redis::Client::open(server.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let mut blocked_on_the_bell = || {
        let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
        clients.lines().any(|c| c.contains("cmd=xread") && c.contains("flags=b"))
    };
    for delivery in [Delivery::AtLeastOnce, Delivery::AtMostOnce] {
        let q: Queue<u64> = Queue::builder()
            .redis(&server.url(), &format!("room-{delivery:?}"))
            .delivery(delivery)
            .maxsize(1)
            .build()
            .unwrap();
        q.put(0).unwrap();
        let mut lags = Vec::new();
        for i in 1..=5u64 {
            let producer = std::thread::spawn({
                let q = q.clone();
                move || {
                    q.put(i).unwrap();
                    Instant::now()
                }
            });
            common::eventually("the put waits on the bell", &mut blocked_on_the_bell);
            let took = Instant::now();
            assert_eq!(q.get().unwrap(), i - 1);
            lags.push(producer.join().unwrap() - took);
        }
        lags.sort();
        assert!(lags[2] < Duration::from_millis(20), "{delivery:?}: woken late: {lags:?}");
        let producer = std::thread::spawn({
            let q = q.clone();
            move || q.put(99)
        });
        common::eventually("the put waits on the bell", &mut blocked_on_the_bell);
        q.close();
        assert!(matches!(producer.join().unwrap(), Err(PutError::Closed(99))), "{delivery:?}");
    }
}

#[test]
fn a_forked_child_uses_its_own_connection() {
    let server = common::redis_server(RedisServer::builder());
    let q: Queue<u64> = Queue::builder().redis(&server.url(), "fork").build().unwrap();
    q.put(1).unwrap();
    assert_eq!(q.get().unwrap(), 1); // the parent has a pooled connection now
    let child = common::builder(StartMethod::Fork).spawn(produce, (q.clone(), 10, 50)).unwrap();
    for i in 0..50 {
        q.put(100 + i).unwrap();
    }
    common::join(child).unwrap();
    let mut got: Vec<u64> = (0..100).map(|_| q.get_timeout(common::LIMIT).unwrap()).collect();
    got.sort_unstable();
    let want: Vec<u64> = (10..60).chain(100..150).collect();
    assert_eq!(got, want);
}

#[test]
fn batches_keep_order_bounds_and_close_on_both_backends() {
    for backend in Backend::all() {
        let q: Queue<u32> = backend.queue("batch", |b| b).build().unwrap();
        assert_eq!(q.put_many(0..1000).unwrap(), 1000, "{}", backend.name());
        let mut got = Vec::new();
        while got.len() < 1000 {
            got.extend(q.get_many(300, common::LIMIT).unwrap());
        }
        assert_eq!(got, (0..1000).collect::<Vec<u32>>(), "{}", backend.name());
        assert!(matches!(q.get_many(5, Duration::from_millis(20)), Err(Error::Timeout)));
        // A bounded queue takes a batch as room comes.
        let b: Queue<u32> = backend.queue("batch-bounded", |b| b.maxsize(10)).build().unwrap();
        let producer =
            Process::spawn(|b: Queue<u32>| b.put_many(0..100).unwrap(), b.clone()).unwrap();
        let mut got = Vec::new();
        while got.len() < 100 {
            got.extend(b.get_many(7, common::LIMIT).unwrap());
            assert!(b.len() <= 10);
        }
        assert_eq!(common::join(producer).unwrap(), 100);
        assert_eq!(got, (0..100).collect::<Vec<u32>>(), "{}", backend.name());
        b.close();
        assert!(matches!(b.put_many([1]), Err(Error::Closed)), "{}", backend.name());
    }
}

#[cfg(feature = "redis-tls")]
#[test]
fn a_queue_crosses_tls_and_a_plain_client_is_refused() {
    let server = common::redis_server(RedisServer::builder().tls(true).password("tls-pw"));
    let url = server.url();
    assert!(url.starts_with("rediss://"), "{url}");
    let q: Queue<String> = Queue::builder().redis(&url, "tls").build().unwrap();
    q.put("over TLS".to_owned()).unwrap();
    let child = Process::spawn(|q: Queue<String>| q.get_timeout(common::LIMIT).unwrap(), q.clone())
        .unwrap();
    assert_eq!(common::join(child).unwrap(), "over TLS");
    assert!(!format!("{q:?}").contains("tls-pw"), "{q:?}");
    // Plain TCP to the TLS port fails cleanly, within its timeout.
    let plain = url.replace("rediss://", "redis://").replace("#insecure", "");
    let err = Queue::<String>::builder()
        .redis(&plain, "tls")
        .unreachable_timeout(Duration::from_millis(300))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
}

fn signal(pid: u32, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}

#[test]
fn try_and_timeout_forms_keep_their_bound_while_the_server_stops_answering() {
    let server = common::redis_server(RedisServer::builder());
    let q: Queue<u8> = Queue::builder()
        .redis(&server.url(), "stopped")
        .unreachable_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let jq: JoinableQueue<u8> = JoinableQueue::builder()
        .redis(&server.url(), "stopped-joinable")
        .unreachable_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    q.put(1).unwrap();
    jq.put(1).unwrap();
    let pid = server.pid().unwrap();
    signal(pid, rustix::process::Signal::STOP); // connected, but silent
    let start = Instant::now();
    assert!(matches!(q.try_get(), Err(Error::Backend { .. })));
    assert!(matches!(q.get_timeout(Duration::from_millis(200)), Err(Error::Backend { .. })));
    assert!(matches!(q.try_put(2), Err(PutError::Failed(2, Error::Backend { .. }))));
    let many = q.get_many(10, Duration::from_millis(200));
    assert!(matches!(many, Err(Error::Backend { .. })), "{many:?}");
    assert!(!jq.join_timeout(Duration::from_millis(200)), "not done, and not held");
    // Not the 5 s command timeout nor the 20 s unreachable timeout.
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    signal(pid, rustix::process::Signal::CONT);
    assert_eq!(q.get_timeout(common::LIMIT).unwrap(), 1, "nothing was lost");
}
