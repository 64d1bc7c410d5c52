//! Managers: a real server process, proxies used from parents and children,
//! remote managers over TCP, and the faults the server must survive.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{LIMIT, METHODS, join};
use multiproc::connection::{Address, Client, Connection};
use multiproc::manager::{
    ArrayProxy, BarrierProxy, ConditionProxy, CustomProxy, DictProxy, EventProxy, ListProxy,
    LockProxy, Namespace, QueueProxy, RLockProxy, SemaphoreProxy, SharedObject, ValueProxy,
};
use multiproc::{Error, Manager, Process, StartMethod};

fn list_ops(l: ListProxy<i64>) -> Vec<i64> {
    l.append(4).unwrap();
    l.extend([5, 6]).unwrap();
    l.insert(0, -1).unwrap();
    l.set(-1, 60).unwrap();
    assert_eq!(l.get(0).unwrap(), -1);
    assert_eq!(l.get(-2).unwrap(), 5);
    assert!(matches!(l.get(100), Err(Error::IndexOutOfRange { index: 100, len: 7 })));
    assert_eq!(l.pop().unwrap(), 60);
    assert_eq!(l.pop_at(0).unwrap(), -1);
    l.remove(&2).unwrap();
    assert!(matches!(l.remove(&2), Err(Error::ValueNotFound)));
    assert!(l.contains(&3).unwrap());
    assert!(!l.contains(&2).unwrap());
    assert_eq!(l.index(&4).unwrap(), 2);
    assert!(matches!(l.index(&99), Err(Error::ValueNotFound)));
    l.append(1).unwrap();
    assert_eq!(l.count(&1).unwrap(), 2);
    assert_eq!(l.len().unwrap(), 5);
    assert_eq!(l.slice(1..3).unwrap(), [3, 4]);
    assert_eq!(l.slice(-2..).unwrap(), [5, 1]);
    l.sort().unwrap();
    assert_eq!(l.to_vec().unwrap(), [1, 1, 3, 4, 5]);
    l.sort_descending().unwrap();
    assert_eq!(l.to_string(), "[5, 4, 3, 1, 1]");
    let kept = l.update(|v| v.retain(|x| *x != 1)).unwrap();
    assert_eq!(kept, [5, 4, 3]);
    l.to_vec().unwrap()
}

#[test]
fn every_list_method_works_from_the_parent_and_from_a_child() {
    let m = Manager::start().unwrap();
    let here = m.list([1i64, 2, 3]).unwrap();
    assert_eq!(list_ops(here.clone()), [5, 4, 3]);
    here.clear().unwrap();
    assert!(here.is_empty().unwrap());
    let there = m.list([1i64, 2, 3]).unwrap();
    let p = Process::spawn(list_ops, there.clone()).unwrap();
    assert_eq!(join(p).unwrap(), [5, 4, 3]);
    assert_eq!(there.to_vec().unwrap(), [5, 4, 3]);
}

fn dict_ops(d: DictProxy<String, i64>) -> Vec<(String, i64)> {
    let k = |s: &str| s.to_owned();
    assert_eq!(d.insert(k("b"), 2).unwrap(), None);
    assert_eq!(d.insert(k("a"), 1).unwrap(), None);
    assert_eq!(d.insert(k("b"), 20).unwrap(), Some(2));
    assert_eq!(d.get(&k("b")).unwrap(), Some(20));
    assert_eq!(d.get(&k("zz")).unwrap(), None);
    assert!(d.contains_key(&k("a")).unwrap());
    assert_eq!(d.len().unwrap(), 2);
    d.extend([(k("c"), 3), (k("d"), 4)]).unwrap();
    assert_eq!(d.keys().unwrap(), ["b", "a", "c", "d"]);
    assert_eq!(d.values().unwrap(), [20, 1, 3, 4]);
    assert_eq!(d.setdefault(k("c"), 30).unwrap(), 3);
    assert_eq!(d.setdefault(k("e"), 5).unwrap(), 5);
    assert_eq!(d.pop(&k("e")).unwrap(), 5);
    assert!(matches!(d.pop(&k("e")), Err(Error::KeyNotFound)));
    assert_eq!(d.remove(&k("d")).unwrap(), Some(4));
    assert_eq!(d.update(k("a"), |v| v.map(|v| v + 10)).unwrap(), Some(11));
    let snapshot: BTreeMap<String, i64> = d.snapshot().unwrap();
    assert_eq!(snapshot.len(), 3);
    assert_eq!(d.to_string(), "{'b': 20, 'a': 11, 'c': 3}");
    d.items().unwrap()
}

#[test]
fn every_dict_method_works_from_the_parent_and_from_a_child() {
    let m = Manager::start().unwrap();
    let here = m.dict().unwrap();
    let expected = [("b".to_owned(), 20), ("a".to_owned(), 11), ("c".to_owned(), 3)];
    assert_eq!(dict_ops(here.clone()), expected);
    here.clear().unwrap();
    assert!(here.is_empty().unwrap());
    let there = m.dict().unwrap();
    assert_eq!(join(Process::spawn(dict_ops, there.clone()).unwrap()).unwrap(), expected);
    assert_eq!(there.items().unwrap(), expected);
}

fn namespace_ops(ns: Namespace) -> String {
    ns.set("x", 1).unwrap();
    ns.set("name", "seed").unwrap();
    ns.set("ratio", 0.5).unwrap();
    ns.set("tags", vec!["a", "b"]).unwrap();
    assert_eq!(ns.get::<i64>("x").unwrap(), 1);
    assert_eq!(ns.get::<String>("name").unwrap(), "seed");
    assert!(matches!(ns.get::<String>("x"), Err(Error::Decode { .. })));
    assert!(matches!(ns.get::<i64>("nope"), Err(Error::NoAttribute { name }) if name == "nope"));
    ns.delete("ratio").unwrap();
    assert!(matches!(ns.delete("ratio"), Err(Error::NoAttribute { .. })));
    ns.to_string()
}

#[test]
fn namespaces_set_get_delete_and_print_as_python_does() {
    let m = Manager::start().unwrap();
    let expected = "Namespace(name='seed', tags=['a', 'b'], x=1)";
    assert_eq!(namespace_ops(m.namespace().unwrap()), expected);
    let ns = m.namespace().unwrap();
    assert_eq!(join(Process::spawn(namespace_ops, ns.clone()).unwrap()).unwrap(), expected);
    assert_eq!(format!("{ns}"), expected);
    assert_eq!(format!("{ns:?}"), expected);
}

fn add_many(args: (Namespace, ValueProxy<u64>, DictProxy<String, u64>, u32)) {
    let (ns, value, dict, n) = args;
    for _ in 0..n {
        ns.update("x", |x: u64| x + 1).unwrap();
        value.update(|v| v + 1).unwrap();
        dict.update("hits".to_owned(), |v| Some(v.unwrap_or(0) + 1)).unwrap();
    }
}

#[test]
fn atomic_updates_from_two_processes_lose_nothing() {
    let m = Manager::start().unwrap();
    let ns = m.namespace().unwrap();
    ns.set("x", 0u64).unwrap();
    let value = m.value(0u64).unwrap();
    let dict = m.dict().unwrap();
    let n = 10_000;
    let workers: Vec<_> = (0..2)
        .map(|_| Process::spawn(add_many, (ns.clone(), value.clone(), dict.clone(), n)).unwrap())
        .collect();
    for w in workers {
        join(w).unwrap();
    }
    assert_eq!(ns.get::<u64>("x").unwrap(), 20_000);
    assert_eq!(value.get().unwrap(), 20_000);
    assert_eq!(dict.get(&"hits".to_owned()).unwrap(), Some(20_000));
}

fn use_nested(d: DictProxy<String, ListProxy<i64>>) -> Vec<i64> {
    let inner = d.get(&"numbers".to_owned()).unwrap().unwrap();
    inner.append(3).unwrap();
    inner.to_vec().unwrap()
}

#[test]
fn a_proxy_stored_in_another_shared_object_works_from_there() {
    let m = Manager::start().unwrap();
    let numbers = m.list([1i64, 2]).unwrap();
    let d = m.dict().unwrap();
    d.insert("numbers".to_owned(), numbers.clone()).unwrap();
    assert_eq!(join(Process::spawn(use_nested, d).unwrap()).unwrap(), [1, 2, 3]);
    assert_eq!(numbers.to_vec().unwrap(), [1, 2, 3]);
}

fn start_a_server_and_append(method: StartMethod) -> Vec<String> {
    let m = Manager::builder().start_method(method).start().unwrap();
    let l = m.list(["x".to_owned()]).unwrap();
    let p = common::builder(method).spawn(append_y, l.clone()).unwrap();
    join(p).unwrap();
    l.to_vec().unwrap()
}

#[test]
fn the_server_starts_with_every_start_method() {
    for method in METHODS {
        // The fork start method refuses this multi-threaded test process:
        // start that manager from a (single-threaded) child instead.
        let list = if method == StartMethod::Fork {
            join(Process::spawn(start_a_server_and_append, method).unwrap()).unwrap()
        } else {
            start_a_server_and_append(method)
        };
        assert_eq!(list, ["x", "y"], "{method:?}");
    }
}

fn append_y(l: ListProxy<String>) {
    l.append("y".to_owned()).unwrap();
}

fn remote_client(args: (Address, Vec<u8>)) -> Result<Vec<String>, String> {
    let (address, key) = args;
    let m = Manager::connect(&address, Some(&key)).map_err(|e| e.to_string())?;
    let jobs: ListProxy<String> = m.lookup("jobs").map_err(|e| e.to_string())?;
    jobs.append("from afar".to_owned()).map_err(|e| e.to_string())?;
    assert!(m.lookup::<DictProxy<String, String>>("jobs").is_err(), "wrong kind accepted");
    assert!(m.shutdown().is_err(), "a connected manager stopped the server");
    jobs.to_vec().map_err(|e| e.to_string())
}

#[test]
fn a_remote_manager_over_tcp_serves_right_keys_and_refuses_wrong_ones() {
    let m = Manager::builder()
        .address(Address::Tcp("127.0.0.1:0".parse().unwrap()))
        .authkey(b"right key")
        .start()
        .unwrap();
    let jobs = m.list(["local".to_owned()]).unwrap();
    m.publish("jobs", &jobs).unwrap();
    let address = m.address().clone();
    let good = Process::spawn(remote_client, (address.clone(), b"right key".to_vec())).unwrap();
    assert_eq!(join(good).unwrap().unwrap(), ["local", "from afar"]);
    let bad = Process::spawn(remote_client, (address, b"wrong key".to_vec())).unwrap();
    let err = join(bad).unwrap().unwrap_err();
    assert!(err.contains("authentication"), "{err}");
    assert_eq!(jobs.len().unwrap(), 2, "the server keeps serving after a wrong key");
}

#[test]
fn a_killed_server_makes_every_call_fail_promptly() {
    let m = Manager::start().unwrap();
    let l = m.list([1]).unwrap();
    l.append(2).unwrap(); // through the append log in shared memory
    assert_eq!(l.len().unwrap(), 2);
    m.process().unwrap().kill().unwrap();
    m.process().unwrap().wait_timeout(LIMIT).unwrap().unwrap();
    let start = Instant::now();
    assert!(matches!(l.append(2), Err(Error::ManagerGone)));
    assert!(matches!(l.len(), Err(Error::ManagerGone)));
    assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
}

fn busy_on_server(l: ListProxy<u8>) -> String {
    // Blocks in a request only if the server stops answering.
    loop {
        if let Err(e) = l.len() {
            return e.to_string();
        }
    }
}

fn blocked_in_get(args: (QueueProxy<u8>, multiproc::Event)) -> String {
    let (q, started) = args;
    started.set();
    q.get().unwrap_err().to_string()
}

fn blocked_in_acquire(args: (LockProxy, multiproc::Event)) -> String {
    let (lock, started) = args;
    started.set();
    lock.acquire().unwrap_err().to_string()
}

#[test]
fn clients_waiting_on_a_server_that_is_killed_learn_it_within_a_second() {
    let m = Manager::start().unwrap();
    let (l, q, lock) = (m.list([1u8]).unwrap(), m.queue::<u8>().unwrap(), m.lock().unwrap());
    lock.acquire().unwrap();
    let mut clients = Vec::new();
    for _ in 0..2 {
        clients.push(Process::spawn(busy_on_server, l.clone()).unwrap());
        let started = multiproc::Event::new().unwrap();
        clients.push(Process::spawn(blocked_in_get, (q.clone(), started.clone())).unwrap());
        assert!(started.wait_timeout(LIMIT));
        let started = multiproc::Event::new().unwrap();
        clients.push(Process::spawn(blocked_in_acquire, (lock.clone(), started.clone())).unwrap());
        assert!(started.wait_timeout(LIMIT));
    }
    std::thread::sleep(Duration::from_millis(50)); // all of them wait in the server
    m.process().unwrap().kill().unwrap();
    let start = Instant::now();
    for c in clients {
        assert_eq!(join(c).unwrap(), Error::ManagerGone.to_string());
    }
    assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
}

fn hammer(l: ListProxy<u64>) {
    loop {
        l.append(1).unwrap();
        let _ = l.len().unwrap();
    }
}

#[test]
fn a_client_killed_mid_request_leaves_the_server_and_others_working() {
    let m = Manager::start().unwrap();
    let l = m.list::<u64>([]).unwrap();
    for _ in 0..20 {
        let p = common::builder(StartMethod::Fork).spawn(hammer, l.clone()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        p.kill().unwrap();
        common::wait(&p);
    }
    let before = l.len().unwrap();
    l.append(7).unwrap();
    assert_eq!(l.len().unwrap(), before + 1);
    assert_eq!(l.get(-1).unwrap(), 7);
}

/// A raw session with the manager's listener, past the handshake.
fn raw_session(m: &Manager, key: &[u8]) -> Connection<(), ()> {
    Client::connect(m.address(), Some(key)).unwrap()
}

#[test]
fn malformed_truncated_and_oversized_requests_end_only_their_session() {
    let m = Manager::builder().authkey(b"k").start().unwrap();
    let l = m.list([1u8]).unwrap();
    let conn = raw_session(&m, b"k");
    conn.send_bytes(&[0xff, 0xff, 0xff, 0xff, 0x01]).unwrap(); // not a request
    assert!(matches!(conn.recv_bytes(), Err(Error::Disconnected)));
    let conn = raw_session(&m, b"k");
    conn.send_bytes(&[3]).unwrap(); // a request cut short
    assert!(matches!(conn.recv_bytes(), Err(Error::Disconnected)));
    let conn = raw_session(&m, b"k");
    let _ = conn.send_bytes(&vec![0u8; (64 << 20) + 1]); // over the frame limit
    assert!(matches!(conn.recv_bytes(), Err(Error::Disconnected)));
    assert!(matches!(
        Client::connect::<(), ()>(m.address(), Some(b"wrong")),
        Err(Error::AuthenticationFailed)
    ));
    // The server still serves everyone else.
    l.append(2).unwrap();
    assert_eq!(l.to_vec().unwrap(), [1, 2]);
}

fn hold_sessions(args: (ListProxy<u8>, multiproc::Event)) {
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (l, done) = args.clone();
            std::thread::spawn(move || {
                l.len().unwrap();
                done.wait_timeout(LIMIT);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn the_server_holds_256_clients_at_once() {
    let m = Manager::start().unwrap();
    let l = m.list([0u8]).unwrap();
    let done = multiproc::Event::new().unwrap();
    // 256 sessions: 32 processes of 8 threads each.
    let clients: Vec<_> = (0..32)
        .map(|_| Process::spawn(hold_sessions, (l.clone(), done.clone())).unwrap())
        .collect();
    // Every client has its session once the server counts 256 + ours.
    let deadline = Instant::now() + LIMIT;
    while session_threads(&m) < 256 {
        assert!(Instant::now() < deadline, "only {} sessions", session_threads(&m));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(l.len().unwrap(), 1);
    done.set();
    for c in clients {
        join(c).unwrap();
    }
}

/// How many session threads the server runs now.
fn session_threads(m: &Manager) -> usize {
    let pid = m.process().unwrap().pid();
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter(|t| {
            let comm = t.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|c| c.trim() == "manager-session")
        })
        .count()
}

#[test]
fn shutdown_leaves_no_process_or_descriptor_behind() {
    // Counted in a child of its own: other tests open and close descriptors
    // in this process meanwhile.
    let child = Process::spawn(start_and_shut_down_managers, 20).unwrap();
    let (before, after) = join(child).unwrap();
    assert_eq!(after, before);
}

/// Starts and shuts down `n` managers; returns the open descriptors before
/// and after.
fn start_and_shut_down_managers(n: usize) -> (usize, usize) {
    let before = common::open_fds();
    for _ in 0..n {
        let m = Manager::start().unwrap();
        let l = m.list([1]).unwrap();
        l.append(2).unwrap(); // maps the list's append log
        assert_eq!(l.len().unwrap(), 2);
        let pid = m.process().unwrap().pid();
        drop(m);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "server {pid} lives");
        assert!(matches!(l.len(), Err(Error::ManagerGone)));
    }
    (before, common::open_fds())
}

fn locked_increments(args: (LockProxy, Namespace, u32)) {
    let (lock, ns, n) = args;
    for _ in 0..n {
        let _guard = lock.lock().unwrap();
        let x: u64 = ns.get("x").unwrap(); // a read and a write: racy without the lock
        ns.set("x", x + 1).unwrap();
    }
}

#[test]
fn a_manager_lock_excludes_other_processes() {
    let m = Manager::start().unwrap();
    let (lock, ns) = (m.lock().unwrap(), m.namespace().unwrap());
    ns.set("x", 0u64).unwrap();
    let workers: Vec<_> = (0..3)
        .map(|_| Process::spawn(locked_increments, (lock.clone(), ns.clone(), 500)).unwrap())
        .collect();
    for w in workers {
        join(w).unwrap();
    }
    assert_eq!(ns.get::<u64>("x").unwrap(), 1500);
    assert!(!lock.is_locked().unwrap());
}

fn take_and_hang(args: (LockProxy, RLockProxy, multiproc::Event)) {
    let (lock, rlock, held) = args;
    lock.acquire().unwrap();
    rlock.acquire().unwrap();
    rlock.acquire().unwrap();
    held.set();
    std::thread::sleep(LIMIT);
}

#[test]
fn a_lock_held_by_a_killed_client_goes_to_the_next_with_owner_died() {
    let m = Manager::start().unwrap();
    let (lock, rlock) = (m.lock().unwrap(), m.rlock().unwrap());
    let held = multiproc::Event::new().unwrap();
    let p = Process::spawn(take_and_hang, (lock.clone(), rlock.clone(), held.clone())).unwrap();
    assert!(held.wait_timeout(LIMIT));
    assert!(!lock.try_acquire().unwrap());
    assert!(matches!(lock.release(), Err(Error::NotOwner)));
    p.kill().unwrap();
    common::wait(&p);
    assert!(matches!(lock.acquire_timeout(LIMIT), Err(Error::OwnerDied)));
    lock.release().unwrap();
    let guard = rlock.lock().unwrap();
    assert!(guard.previous_owner_died());
    drop(guard);
    assert!(rlock.try_acquire().unwrap()); // the death is reported once
    rlock.release().unwrap();
}

fn consume(args: (QueueProxy<u32>, EventProxy, SemaphoreProxy)) -> u64 {
    let (q, started, sem) = args;
    started.set().unwrap();
    sem.acquire().unwrap();
    let mut sum = 0;
    loop {
        let item = q.get_timeout(LIMIT).unwrap();
        q.task_done().unwrap();
        if item == u32::MAX {
            return sum;
        }
        sum += u64::from(item);
    }
}

#[test]
fn queues_events_and_semaphores_work_across_processes() {
    let m = Manager::start().unwrap();
    let q = m.joinable_queue::<u32>().unwrap();
    let started = m.event().unwrap();
    let sem = m.semaphore(0).unwrap();
    let consumer = Process::spawn(consume, (q.clone(), started.clone(), sem.clone())).unwrap();
    assert!(started.wait_timeout(LIMIT).unwrap());
    for i in 1..=100 {
        q.put(i).unwrap();
    }
    q.put(u32::MAX).unwrap();
    assert_eq!(q.len().unwrap(), 101);
    sem.release().unwrap(); // let it start
    q.join_timeout(LIMIT).unwrap();
    assert_eq!(join(consumer).unwrap(), 5050);
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooOften)));
    assert!(q.is_empty().unwrap());
}

fn wait_on_condition(args: (ConditionProxy, Namespace)) -> bool {
    let (c, ns) = args;
    let _guard = c.lock().unwrap();
    ns.set("waiting", true).unwrap();
    while !ns.get::<bool>("ready").unwrap() {
        if !c.wait_timeout(LIMIT).unwrap() {
            return false;
        }
    }
    true
}

fn barrier_party(b: BarrierProxy) -> usize {
    b.wait_timeout(LIMIT).unwrap()
}

#[test]
fn conditions_and_barriers_work_across_processes() {
    let m = Manager::start().unwrap();
    let (c, ns) = (m.condition().unwrap(), m.namespace().unwrap());
    ns.set("ready", false).unwrap();
    ns.set("waiting", false).unwrap();
    let waiter = Process::spawn(wait_on_condition, (c.clone(), ns.clone())).unwrap();
    let deadline = Instant::now() + LIMIT;
    while !ns.get::<bool>("waiting").unwrap() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    {
        let _guard = c.lock().unwrap();
        ns.set("ready", true).unwrap();
        c.notify(1).unwrap();
    }
    assert!(join(waiter).unwrap());

    let b = m.barrier(3).unwrap();
    let parties: Vec<_> =
        (0..3).map(|_| Process::spawn(barrier_party, b.clone()).unwrap()).collect();
    let mut indices: Vec<usize> = parties.into_iter().map(|p| join(p).unwrap()).collect();
    indices.sort_unstable();
    assert_eq!(indices, [0, 1, 2]);
    assert!(!b.is_broken().unwrap());
}

fn negate(a: ArrayProxy<i32>) {
    a.update(|v| v.iter_mut().for_each(|x| *x = -*x)).unwrap();
}

#[test]
fn arrays_and_values_work_across_processes() {
    let m = Manager::start().unwrap();
    let a = m.array(0..10).unwrap();
    join(Process::spawn(negate, a.clone()).unwrap()).unwrap();
    assert_eq!(a.to_vec().unwrap(), [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]);
    assert!(matches!(a.get(10), Err(Error::IndexOutOfRange { .. })));
    let v = m.value("text".to_owned()).unwrap();
    assert_eq!(v.to_string(), "'text'");
}

#[test]
fn a_proxy_of_the_wrong_kind_is_refused() {
    let m = Manager::start().unwrap();
    let l = m.list([1u8]).unwrap();
    m.publish("l", &l).unwrap();
    assert!(matches!(m.lookup::<QueueProxy<u8>>("l"), Err(Error::Manager { .. })));
    assert!(matches!(m.lookup::<ListProxy<u8>>("nothing"), Err(Error::Manager { .. })));
    // Bytes of a list proxy read as a dict proxy: the server checks kinds.
    let (a, b) = multiproc::pipe::<ListProxy<u8>>().unwrap();
    a.send(&l).unwrap();
    let raw = b.recv_bytes().unwrap();
    let (c, d) = multiproc::pipe::<DictProxy<u8, u8>>().unwrap();
    c.send_bytes(&raw).unwrap();
    let as_dict = d.recv().unwrap();
    assert!(matches!(as_dict.len(), Err(Error::Manager { .. })));
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Tally {
    name: String,
    hits: Vec<u32>,
}

#[derive(serde::Serialize, serde::Deserialize)]
enum TallyCall {
    Hit(u32),
    Total,
}

impl SharedObject for Tally {
    type Call = TallyCall;
    type Reply = u64;
    fn call(&mut self, call: TallyCall) -> u64 {
        if let TallyCall::Hit(n) = call {
            self.hits.push(n);
        }
        self.hits.iter().map(|&h| u64::from(h)).sum()
    }
}

fn hit_tally(t: CustomProxy<Tally>) {
    for n in 1..=100 {
        t.call(TallyCall::Hit(n)).unwrap();
    }
}

#[test]
fn a_registered_custom_type_is_called_through_its_proxy_from_children() {
    let m = Manager::builder().register::<Tally>().start().unwrap();
    let t = m.create(Tally { name: "t".to_owned(), hits: Vec::new() }).unwrap();
    let workers: Vec<_> = (0..2).map(|_| Process::spawn(hit_tally, t.clone()).unwrap()).collect();
    for w in workers {
        join(w).unwrap();
    }
    assert_eq!(t.call(TallyCall::Total).unwrap(), 2 * 5050);
    assert!(t.to_string().starts_with("{'name': 't', 'hits': ["), "{t}");
    // A manager that did not register the type refuses it.
    let plain = Manager::start().unwrap();
    let err = plain.create(Tally { name: "x".to_owned(), hits: Vec::new() }).unwrap_err();
    assert!(matches!(err, Error::Manager { .. }), "{err:?}");
}

fn wait_notified(args: (ConditionProxy, Namespace)) -> bool {
    let (c, ns) = args;
    let _guard = c.lock().unwrap();
    ns.set("waiting", true).unwrap();
    c.wait_timeout(LIMIT).unwrap()
}

#[test]
fn a_notify_wakes_only_those_already_waiting() {
    let m = Manager::start().unwrap();
    let (c, ns) = (m.condition().unwrap(), m.namespace().unwrap());
    ns.set("waiting", false).unwrap();
    let waiter = Process::spawn(wait_notified, (c.clone(), ns.clone())).unwrap();
    let deadline = Instant::now() + LIMIT;
    loop {
        let guard = c.lock().unwrap(); // once the waiter set the flag, it waits
        if ns.get::<bool>("waiting").unwrap() {
            c.notify(1).unwrap();
            // Our own wait comes after the notify: it must not take it.
            assert!(!c.wait_timeout(Duration::from_millis(50)).unwrap());
            drop(guard);
            break;
        }
        drop(guard);
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(join(waiter).unwrap(), "the waiter was not woken");
}

fn block_on(args: (QueueProxy<u32>, LockProxy, multiproc::Event)) {
    let (q, lock, started) = args;
    started.set();
    if lock.try_acquire().unwrap() {
        unreachable!("the parent holds the lock");
    }
    let _ = q.get(); // blocks in the server
}

fn block_on_lock(args: (LockProxy, multiproc::Event)) {
    let (lock, started) = args;
    started.set();
    let _ = lock.acquire(); // blocks in the server
}

#[test]
fn a_client_killed_while_blocked_in_the_server_takes_nothing_with_it() {
    let m = Manager::start().unwrap();
    let q = m.queue::<u32>().unwrap();
    let lock = m.lock().unwrap();
    lock.acquire().unwrap();
    let started = multiproc::Event::new().unwrap();
    let getter = Process::spawn(block_on, (q.clone(), lock.clone(), started.clone())).unwrap();
    assert!(started.wait_timeout(LIMIT));
    started.clear();
    let locker = Process::spawn(block_on_lock, (lock.clone(), started.clone())).unwrap();
    assert!(started.wait_timeout(LIMIT));
    std::thread::sleep(Duration::from_millis(50)); // both wait in the server now
    getter.kill().unwrap();
    locker.kill().unwrap();
    common::wait(&getter);
    common::wait(&locker);
    q.put(7).unwrap(); // may go to the dead getter's server thread, and back
    lock.release().unwrap(); // may go to the dead locker's server thread, and back
    assert_eq!(q.get_timeout(LIMIT).unwrap(), 7);
    assert!(lock.acquire_timeout(LIMIT).unwrap(), "the lock stayed with a dead client");
    lock.release().unwrap();
}

/// A proxy as it travels over a connection.
fn wire_bytes(l: &ListProxy<u8>) -> Vec<u8> {
    let (a, b) = multiproc::pipe::<ListProxy<u8>>().unwrap();
    a.send(l).unwrap();
    b.recv_bytes().unwrap()
}

#[test]
fn a_waiting_operation_on_the_wrong_kind_of_object_fails_at_once() {
    let m = Manager::start().unwrap();
    let l = m.list([1u8]).unwrap();
    // A list's proxy bytes read as a lock's: the server checks the kind.
    let raw = wire_bytes(&l);
    let (c, d) = multiproc::pipe::<LockProxy>().unwrap();
    c.send_bytes(&raw).unwrap();
    let as_lock = d.recv().unwrap();
    assert!(matches!(as_lock.acquire(), Err(Error::Manager { .. })));
    assert_eq!(l.len().unwrap(), 1);
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Fragile;

impl SharedObject for Fragile {
    type Call = bool;
    type Reply = u8;
    fn call(&mut self, explode: bool) -> u8 {
        assert!(!explode, "boom");
        1
    }
}

#[test]
fn a_panicking_registered_type_fails_its_call_and_nothing_else() {
    let m = Manager::builder().register::<Fragile>().start().unwrap();
    let f = m.create(Fragile).unwrap();
    let lock = m.lock().unwrap();
    lock.acquire().unwrap();
    assert!(matches!(f.call(true), Err(Error::Manager { .. })));
    assert_eq!(f.call(false).unwrap(), 1);
    assert!(lock.is_locked().unwrap());
    lock.release().unwrap();
}

fn count_is(m: &Manager, n: usize) -> bool {
    m.object_count().unwrap() == n
}

#[test]
fn dropping_the_last_proxy_frees_the_object() {
    let m = Manager::start().unwrap();
    let (l, d) = (m.list([1u8]).unwrap(), m.dict::<u8, u8>().unwrap());
    let l2 = l.clone();
    assert_eq!(m.object_count().unwrap(), 2);
    drop(l);
    drop(d);
    // `eventually`: a child another test forks meanwhile holds what this
    // process held, until it ends.
    common::eventually("the dict freed", || count_is(&m, 1));
    // The clone still holds the list.
    assert_eq!(l2.len().unwrap(), 1);
    drop(l2);
    common::eventually("the list freed", || count_is(&m, 0));
}

fn append_later(l: ListProxy<u8>) -> usize {
    std::thread::sleep(Duration::from_millis(200));
    l.append(2).unwrap();
    l.len().unwrap()
}

#[test]
fn a_proxy_on_its_way_to_a_child_keeps_its_object() {
    let m = Manager::start().unwrap();
    for method in METHODS {
        let l = m.list([1u8]).unwrap();
        // The parent lets go as soon as the child is started.
        let p = common::builder(method).spawn(append_later, l).unwrap();
        assert_eq!(join(p).unwrap(), 2, "{method:?}");
        common::eventually("the list freed after the child", || count_is(&m, 0));
    }
}

fn hold_forever(args: (ListProxy<u8>, multiproc::Event)) {
    let (l, ready) = args;
    l.append(2).unwrap();
    ready.set();
    std::thread::sleep(LIMIT);
}

#[test]
fn a_killed_process_lets_go_of_what_it_held() {
    let m = Manager::start().unwrap();
    let l = m.list([1u8]).unwrap();
    let ready = multiproc::Event::new().unwrap();
    let p = Process::spawn(hold_forever, (l, ready.clone())).unwrap();
    assert!(ready.wait_timeout(LIMIT));
    assert_eq!(m.object_count().unwrap(), 1);
    p.kill().unwrap();
    common::wait(&p);
    common::eventually("the list freed after the kill", || count_is(&m, 0));
}

#[test]
fn names_and_enclosing_objects_keep_their_objects() {
    let m = Manager::start().unwrap();
    let named = m.list([1u8]).unwrap();
    m.publish("kept", &named).unwrap();
    drop(named);
    let d = m.dict::<String, ListProxy<u8>>().unwrap();
    let inner = m.list([7u8]).unwrap();
    d.insert("inner".to_owned(), inner).unwrap();
    assert_eq!(m.object_count().unwrap(), 3);
    assert_eq!(m.lookup::<ListProxy<u8>>("kept").unwrap().to_vec().unwrap(), [1]);
    let inner = d.get(&"inner".to_owned()).unwrap().unwrap();
    inner.append(8).unwrap();
    drop(inner);
    assert_eq!(m.object_count().unwrap(), 3);
    assert_eq!(d.get(&"inner".to_owned()).unwrap().unwrap().to_vec().unwrap(), [7, 8]);
    assert_eq!(m.object_count().unwrap(), 3);
}

#[test]
fn a_proxy_of_a_freed_object_fails_cleanly() {
    let m = Manager::start().unwrap();
    let l = m.list([1u8]).unwrap();
    // The same bytes, received twice: the first copy repays the loan.
    let bytes = wire_bytes(&l);
    let (a, b) = multiproc::pipe::<ListProxy<u8>>().unwrap();
    a.send_bytes(&bytes).unwrap();
    let first = b.recv().unwrap();
    drop(l);
    assert_eq!(first.len().unwrap(), 1);
    drop(first);
    common::eventually("the list freed", || count_is(&m, 0));
    a.send_bytes(&bytes).unwrap();
    let stale = b.recv().unwrap();
    assert!(matches!(stale.len(), Err(Error::Manager { .. })), "{:?}", stale.len());
    assert!(matches!(stale.append(2), Err(Error::Manager { .. })));
}

fn append_run(args: (ListProxy<u64>, u64, u64)) {
    let (l, base, n) = args;
    for i in 0..n {
        l.append(base + i).unwrap();
    }
}

#[test]
fn appends_from_several_processes_lose_nothing_and_keep_their_order() {
    let m = Manager::start().unwrap();
    let l = m.list::<u64>([]).unwrap();
    // More than the append log holds: some appends go by request.
    let n = 30_000;
    let children: Vec<_> = [0, 1_000_000]
        .into_iter()
        .map(|base| Process::spawn(append_run, (l.clone(), base, n)).unwrap())
        .collect();
    // Reads meanwhile see a prefix of each appender's items.
    let mut seen = 0;
    while seen < 2 * n {
        let now = l.len().unwrap() as u64;
        assert!(now >= seen);
        seen = now;
        if children.iter().all(|c| !c.is_alive()) {
            break;
        }
    }
    for c in children {
        join(c).unwrap();
    }
    let all = l.to_vec().unwrap();
    assert_eq!(all.len() as u64, 2 * n);
    for base in [0, 1_000_000] {
        let mine: Vec<u64> =
            all.iter().copied().filter(|&x| (base..base + n).contains(&x)).collect();
        assert_eq!(mine, (base..base + n).collect::<Vec<_>>());
    }
}

/// A map that serializes its entries in the order given (as a `HashMap`
/// does in whatever order its hasher picks) and compares regardless of it.
#[derive(Debug, Clone)]
struct Entries(Vec<(String, i64)>);

impl PartialEq for Entries {
    fn eq(&self, other: &Self) -> bool {
        let sorted = |e: &Entries| e.0.iter().cloned().collect::<BTreeMap<_, _>>();
        sorted(self) == sorted(other)
    }
}

impl serde::Serialize for Entries {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Entries(BTreeMap::<String, i64>::deserialize(d)?.into_iter().collect()))
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Record {
    name: String,
    tags: Entries,
}

#[test]
fn list_searches_compare_values_as_python_does_not_their_encodings() {
    let m = Manager::start().unwrap();
    let record = |order: &[&str]| Record {
        name: "r".to_owned(),
        tags: Entries(order.iter().map(|k| ((*k).to_owned(), k.len() as i64)).collect()),
    };
    let stored = record(&["a", "bb", "ccc"]);
    let equal = record(&["ccc", "a", "bb"]); // == stored, encoded in another order
    assert_eq!(stored, equal);
    let l = m.list([record(&["x"]), stored.clone(), stored]).unwrap();
    assert!(l.contains(&equal).unwrap());
    assert_eq!(l.index(&equal).unwrap(), 1);
    assert_eq!(l.count(&equal).unwrap(), 2);
    l.remove(&equal).unwrap();
    assert_eq!(l.len().unwrap(), 2);

    // Real hash maps built separately, and Python's number equality.
    let map = |keys: std::ops::Range<u32>| {
        keys.map(|k| (k.to_string(), k)).collect::<std::collections::HashMap<_, _>>()
    };
    let maps = m.list([map(0..32)]).unwrap();
    assert!(maps.contains(&map(0..32)).unwrap());
    assert!(!maps.contains(&map(0..31)).unwrap());
    let zeros = m.list([-0.0f64, 1.5]).unwrap();
    assert!(zeros.contains(&0.0).unwrap()); // Python: 0.0 in [-0.0]
    assert_eq!(zeros.index(&0.0).unwrap(), 0);
    let nans = m.list([f64::NAN]).unwrap();
    assert!(!nans.contains(&f64::NAN).unwrap()); // NaN equals nothing
    assert!(matches!(nans.index(&f64::NAN), Err(Error::ValueNotFound)));
    // Integers found by floats (a lookup with other element types is
    // refused, so one list type holds both).
    #[derive(serde::Serialize, serde::Deserialize)]
    #[serde(untagged)]
    enum Number {
        Int(i64),
        Float(f64),
    }
    let numbers = m.list([Number::Int(1), Number::Int(2)]).unwrap();
    assert!(numbers.contains(&Number::Float(2.0)).unwrap()); // Python: 2.0 in [1, 2]
    assert_eq!(numbers.count(&Number::Float(1.0)).unwrap(), 1);
}

#[test]
fn silent_unauthenticated_connections_get_no_more_than_a_few_server_threads() {
    // In a child of its own: a child another test forks from this process
    // meanwhile would hold copies of the silent sockets open.
    join(Process::spawn(flood_with_silent_connections, ()).unwrap()).unwrap();
}

fn flood_with_silent_connections(_: ()) {
    let m = Manager::start().unwrap();
    let l = m.list([1u8]).unwrap(); // our own session and keeper
    let silent = silent_peers(&m);
    std::thread::sleep(Duration::from_millis(300));
    let threads = session_threads(&m);
    assert!(threads <= 64 + 2, "{threads} session threads for silent peers");
    // Once they go, everyone gets in again.
    drop(silent);
    let (l2, (tx, rx)) = (l.clone(), std::sync::mpsc::channel());
    std::thread::spawn(move || tx.send(l2.len().unwrap())); // a new session
    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), 1);
}

/// 200 connections to `m` that never say a word, once the server has taken
/// in as many of them as it will handshake with at once: until they go,
/// whoever else connects waits.
fn silent_peers(m: &Manager) -> Vec<std::os::unix::net::UnixStream> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixStream};
    let Address::Abstract(name) = m.address().clone() else { unreachable!() };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        for _ in 0..200 {
            // Connected (the kernel queues it) whether or not it is accepted.
            if tx.send(UnixStream::connect_addr(&addr).unwrap()).is_err() {
                return;
            }
        }
    });
    let silent: Vec<UnixStream> = (0..200).map(|_| rx.recv_timeout(LIMIT).unwrap()).collect();
    // The server takes some of them in, then stops taking more.
    common::eventually("the server accepts", || session_threads(m) >= 32);
    silent
}

#[test]
fn a_forked_child_killed_before_it_held_its_parents_objects_keeps_none() {
    // In a child of its own, as above.
    join(Process::spawn(fork_a_child_and_kill_it_before_it_holds, ()).unwrap()).unwrap();
}

fn do_nothing(_: ()) {}

fn fork_a_child_and_kill_it_before_it_holds(_: ()) {
    let m = Manager::start().unwrap();
    let l = m.list([1u8]).unwrap();
    // The child must hold `l` again (the fork lends it `l` until then), but
    // it cannot reach the server past the silent peers: it never does.
    let silent = silent_peers(&m);
    let child = common::builder(StartMethod::Fork).spawn(do_nothing, ()).unwrap();
    child.kill().unwrap();
    common::wait(&child);
    drop(silent);
    drop(l);
    // Well before the loan would time out (a minute).
    common::eventually("the list freed", || count_is(&m, 0));
}

#[test]
fn a_manager_given_no_key_makes_a_random_one_even_on_tcp() {
    let tcp = Manager::builder().address(Address::Tcp("127.0.0.1:0".parse().unwrap())).start();
    let tcp = tcp.unwrap();
    assert!(Manager::connect(tcp.address(), None).is_err());
    assert!(matches!(
        Manager::connect(tcp.address(), Some(b"guess")),
        Err(Error::AuthenticationFailed)
    ));
}

/// A key whose bytes are all below 24: CBOR writes them as they are, so it
/// shows whole in every encoding (and as `3,17,7...` in JSON and reprs).
const SECRET: &[u8] = b"\x03\x11\x07\x15\x01\x0e\x16\x09\x10\x02\x13\x0b\x05\x17\x0c\x08";

/// Whether `text` shows [`SECRET`], as bytes or as a list of numbers.
fn shows_secret(text: &[u8]) -> bool {
    let numbers: Vec<String> = SECRET.iter().map(u8::to_string).collect();
    let text_forms = [numbers.join(","), numbers.join(", ")];
    text.windows(SECRET.len()).any(|w| w == SECRET)
        || text_forms.iter().any(|form| text.windows(form.len()).any(|w| w == form.as_bytes()))
}

fn use_sent_proxy(conn: Connection<ListProxy<u8>>) -> Result<usize, String> {
    let l = conn.recv_timeout(LIMIT).map_err(|e| e.to_string())?;
    l.append(9).map_err(|e| e.to_string())?;
    l.len().map_err(|e| e.to_string())
}

fn proxy_from_an_unknown_manager(
    args: (Connection<ListProxy<u8>>, Connection<Address>),
) -> Result<(String, usize), String> {
    let (proxies, addresses) = args;
    let address = addresses.recv_timeout(LIMIT).map_err(|e| e.to_string())?;
    // Started before the manager: this process does not know its key.
    let unknown = proxies.recv_timeout(LIMIT).map_err(|e| e.to_string())?;
    let refused = match unknown.len() {
        Err(e @ Error::Manager { .. }) => e.to_string(),
        other => return Err(format!("{other:?} without the key")),
    };
    let _m = Manager::connect(&address, Some(SECRET)).map_err(|e| e.to_string())?;
    let l = proxies.recv_timeout(LIMIT).map_err(|e| e.to_string())?;
    Ok((refused, l.len().map_err(|e| e.to_string())?))
}

#[test]
fn no_serialized_proxy_carries_the_authkey_yet_proxies_work_where_they_travel() {
    let (proxies, their_proxies) = multiproc::pipe::<ListProxy<u8>>().unwrap();
    let (addresses, their_addresses) = multiproc::pipe::<Address>().unwrap();
    let stranger =
        Process::spawn(proxy_from_an_unknown_manager, (their_proxies, their_addresses)).unwrap();
    let m = Manager::builder().authkey(SECRET).start().unwrap();
    let l = m.list([1u8]).unwrap();
    assert!(!shows_secret(&postcard::to_allocvec(&l).unwrap()));
    assert!(!shows_secret(serde_json::to_string(&l).unwrap().as_bytes()));
    let mut cbor = Vec::new();
    ciborium::into_writer(&l, &mut cbor).unwrap();
    assert!(!shows_secret(&cbor));
    assert!(!shows_secret(&wire_bytes(&l)));
    let nested = m.list([l.clone()]).unwrap();
    assert!(!shows_secret(nested.to_string().as_bytes()), "{nested}");
    assert!(!shows_secret(format!("{m:?} {l:?} {nested:?}").as_bytes()));

    // A process that never learned the key gets a clear error, until it
    // connects to the manager with the key.
    addresses.send(m.address()).unwrap();
    proxies.send(&l).unwrap();
    proxies.send(&l).unwrap();
    let (refused, len) = join(stranger).unwrap().unwrap();
    assert!(refused.contains("Manager::connect"), "{refused}");
    assert_eq!(len, 1);

    // Through a pipe to a child started with the manager known.
    for method in METHODS {
        let (mine, theirs) = multiproc::pipe::<ListProxy<u8>>().unwrap();
        let child = common::builder(method).spawn(use_sent_proxy, theirs).unwrap();
        mine.send(&l).unwrap();
        assert!(join(child).unwrap().is_ok(), "{method:?}");
    }
    assert_eq!(l.len().unwrap(), 4);
}

fn never_reads(args: (Connection<ListProxy<u8>>, multiproc::Event)) {
    let (_conn, ready) = args;
    ready.set();
    std::thread::sleep(LIMIT);
}

#[test]
fn a_proxy_in_a_message_never_received_lets_its_object_go() {
    let loan = Duration::from_millis(300);
    let m = Manager::builder().loan_timeout(loan).start().unwrap();
    // Both ends of the pipe dropped with the proxy still in it.
    let l = m.list([1u8]).unwrap();
    let (a, b) = multiproc::pipe::<ListProxy<u8>>().unwrap();
    a.send(&l).unwrap();
    drop((l, a, b));
    common::eventually("the list freed after its pipe went", || count_is(&m, 0));

    // The receiver killed before it decoded the message.
    let l = m.list([1u8]).unwrap();
    let (a, b) = multiproc::pipe::<ListProxy<u8>>().unwrap();
    let ready = multiproc::Event::new().unwrap();
    let receiver = Process::spawn(never_reads, (b, ready.clone())).unwrap();
    assert!(ready.wait_timeout(LIMIT));
    a.send(&l).unwrap();
    drop(l);
    receiver.kill().unwrap();
    common::wait(&receiver);
    drop(a);
    common::eventually("the list freed after its receiver died", || count_is(&m, 0));

    // A proxy received in time holds its object past the loan.
    let l = m.list([1u8]).unwrap();
    let (a, b) = multiproc::pipe::<ListProxy<u8>>().unwrap();
    a.send(&l).unwrap();
    drop(l);
    let received = b.recv_timeout(LIMIT).unwrap();
    std::thread::sleep(loan * 3);
    assert_eq!(received.len().unwrap(), 1);
    assert_eq!(m.object_count().unwrap(), 1);
}

#[test]
fn a_manager_whose_port_is_taken_reports_the_address_and_the_os_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = Address::Tcp(taken.local_addr().unwrap());
    let err = Manager::builder().address(address.clone()).start().unwrap_err();
    match &err {
        Error::Os { address: Some(at), source, .. } => {
            assert_eq!(*at, address);
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse, "{source:?}");
        }
        other => panic!("expected an OS error naming the address, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&address.to_string()), "{text}");
    assert!(!text.contains("Some(") && !text.contains("Os {"), "Debug in a message: {text}");
}

#[test]
fn connecting_to_a_manager_nobody_serves_names_the_address_not_a_dead_server() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        Address::Tcp(listener.local_addr().unwrap())
    };
    let missing = Address::Unix(std::env::temp_dir().join(format!(
        "multiproc-no-manager-{}-{:?}.sock",
        std::process::id(),
        std::thread::current().id()
    )));
    for (address, kind) in
        [(closed, std::io::ErrorKind::ConnectionRefused), (missing, std::io::ErrorKind::NotFound)]
    {
        let err = Manager::connect(&address, Some(b"key")).unwrap_err();
        match &err {
            Error::Os { address: Some(at), source, .. } => {
                assert_eq!(*at, address);
                assert_eq!(source.kind(), kind, "{source:?}");
            }
            other => panic!("{address}: expected an OS error naming it, got {other:?}"),
        }
        assert!(err.to_string().contains(&address.to_string()), "{err}");
    }
}

const SERVE_KEY: &[u8] = b"standalone key";

/// A standalone server program: binds, tells the parent where, serves.
fn serve_standalone(args: (Address, Connection<Address>)) -> Result<(), String> {
    let (address, tell) = args;
    let server =
        Manager::builder().address(address).authkey(SERVE_KEY).bind().map_err(|e| e.to_string())?;
    tell.send(server.address()).map_err(|e| e.to_string())?;
    server.serve().map_err(|e| e.to_string())
}

/// Starts a standalone server in a child and returns it with its address.
fn standalone_server(address: Address) -> (Process<Result<(), String>>, Address) {
    let (here, there) = multiproc::pipe::<Address>().unwrap();
    let p =
        Process::builder().name("standalone").spawn(serve_standalone, (address, there)).unwrap();
    let address = here.recv_timeout(LIMIT).expect("the server tells its address");
    (p, address)
}

/// Uses a dict of the server at `address` the way a client program does.
fn use_a_dict(address: &Address) -> (Manager, DictProxy<String, u64>) {
    let m = Manager::connect(address, Some(SERVE_KEY)).unwrap();
    let hits = m.dict::<String, u64>().unwrap();
    hits.insert("hits".to_owned(), 1).unwrap();
    assert_eq!(hits.update("hits".to_owned(), |v| v.map(|v| v + 1)).unwrap(), Some(2));
    assert_eq!(hits.get("hits").unwrap(), Some(2));
    (m, hits)
}

/// `serve()` returned `Ok(())` in the child, which exited 0.
fn assert_served_and_exited(p: Process<Result<(), String>>) {
    assert_eq!(common::wait(&p), 0, "the server process's exit code");
    assert_eq!(join(p).unwrap(), Ok(()));
}

#[test]
fn a_standalone_server_stops_when_a_client_shuts_it_down() {
    let addresses = [
        Address::Tcp("127.0.0.1:0".parse().unwrap()),
        Address::Abstract(format!("multiproc-test-serve-{}", std::process::id())),
    ];
    for address in addresses {
        let (p, address) = standalone_server(address);
        let (m, hits) = use_a_dict(&address);
        m.shutdown().unwrap();
        assert_served_and_exited(p);
        assert!(matches!(hits.len(), Err(Error::ManagerGone)), "{address:?}");
        assert!(Manager::connect(&address, Some(SERVE_KEY)).is_err(), "{address:?}");
    }
}

#[test]
fn a_client_without_a_key_is_refused_by_a_keyed_manager_at_connect() {
    let m = Manager::builder()
        .address(Address::Tcp("127.0.0.1:0".parse().unwrap()))
        .authkey(b"key")
        .start()
        .unwrap();
    let err = Manager::connect(m.address(), None).unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed), "{err:?}");
    // And the manager serves whoever has the key.
    let good = Manager::connect(m.address(), Some(b"key")).unwrap();
    assert_eq!(good.list([1u8]).unwrap().len().unwrap(), 1);
}

#[test]
fn a_dict_looked_up_with_other_element_types_is_refused_naming_both() {
    let m = Manager::start().unwrap();
    let d = m.dict::<String, i64>().unwrap();
    d.insert("a".to_owned(), 1).unwrap();
    m.publish("scores", &d).unwrap();
    let err = m.lookup::<DictProxy<String, String>>("scores").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Manager { .. }), "{err:?}");
    assert!(text.contains("DictProxy<String, i64>"), "{text}");
    assert!(text.contains("DictProxy<String, String>"), "{text}");
    // The right types still find it, and the creator's view is intact.
    let same = m.lookup::<DictProxy<String, i64>>("scores").unwrap();
    assert_eq!(same.get(&"a".to_owned()).unwrap(), Some(1));
    assert_eq!(d.len().unwrap(), 1);
}

#[test]
fn a_standalone_server_stops_on_sigterm() {
    let path =
        std::env::temp_dir().join(format!("multiproc-test-serve-{}.sock", std::process::id()));
    let addresses = [Address::Tcp("127.0.0.1:0".parse().unwrap()), Address::Unix(path.clone())];
    for address in addresses {
        let (p, address) = standalone_server(address);
        let (_m, hits) = use_a_dict(&address);
        p.terminate().unwrap();
        assert_served_and_exited(p);
        assert!(matches!(hits.len(), Err(Error::ManagerGone)), "{address:?}");
    }
    assert!(!path.exists(), "the Unix socket's file is removed");
}

#[test]
fn a_standalone_server_needs_an_authkey_and_a_started_one_refuses_a_clients_shutdown() {
    let err = Manager::builder().address(Address::Tcp("127.0.0.1:0".parse().unwrap())).bind();
    assert!(matches!(err, Err(Error::Unsupported { .. })));
    let m = Manager::builder().authkey(b"k").start().unwrap();
    let client = Manager::connect(m.address(), Some(b"k")).unwrap();
    assert!(matches!(client.shutdown(), Err(Error::Unsupported { .. })));
    assert!(m.process().unwrap().is_alive());
}

fn count_str_keys(d: DictProxy<String, u64>) -> (Option<u64>, bool, Option<u64>, u64) {
    let key: &str = "hits";
    (
        d.get(key).unwrap(),
        d.contains_key("misses").unwrap(),
        d.remove("gone").unwrap(),
        d.pop(key).unwrap(),
    )
}

#[test]
fn dict_lookups_take_borrowed_keys_in_a_child() {
    let m = Manager::start().unwrap();
    let d = m.dict::<String, u64>().unwrap();
    d.insert("hits".to_owned(), 7).unwrap();
    d.insert("gone".to_owned(), 1).unwrap();
    let p = Process::spawn(count_str_keys, d.clone()).unwrap();
    assert_eq!(join(p).unwrap(), (Some(7), false, Some(1), 7));
    assert!(d.is_empty().unwrap());
    let paths = m.dict::<Vec<u8>, u8>().unwrap();
    paths.insert(vec![1, 2], 3).unwrap();
    assert_eq!(paths.get(&[1u8, 2][..]).unwrap(), Some(3));
}
