//! The one wait policy: every blocking operation honours its timeout under
//! each policy, a blocked waiter ends up asleep, and no wake-up is lost
//! with more processes than CPUs. (Speed lives in the benchmarks.)

mod common;

use std::time::{Duration, Instant};

use common::{LIMIT, join};
use multiproc::{Barrier, Event, Lock, Process, Queue, Semaphore, WaitPolicy, set_wait_policy};

const POLICIES: [WaitPolicy; 3] =
    [WaitPolicy::LowestLatency, WaitPolicy::Balanced, WaitPolicy::LowestCpu];

/// In a child (the policy is per process): every timed wait that cannot
/// succeed returns its timeout, no sooner than asked.
fn timed_waits_fail_on_time(policy: WaitPolicy) -> Vec<String> {
    set_wait_policy(policy);
    let timeout = Duration::from_millis(30);
    let mut late = Vec::new();
    let mut check = |what: &str, timed_out: bool, since: Instant| {
        if !timed_out || since.elapsed() < timeout {
            late.push(format!("{what}: timed out {timed_out} after {:?}", since.elapsed()));
        }
    };
    let lock = Lock::new().unwrap();
    let held = lock.clone();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (taken_tx, taken) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let _guard = held.lock().unwrap();
        taken_tx.send(()).unwrap();
        let _ = rx.recv_timeout(LIMIT);
    });
    taken.recv_timeout(LIMIT).unwrap();
    let t = Instant::now();
    check("lock", lock.lock_timeout(timeout).is_err(), t);
    drop(tx);
    holder.join().unwrap();

    let q = Queue::<u8>::new().unwrap();
    let t = Instant::now();
    check("queue get", q.get_timeout(timeout).is_err(), t);
    let full = Queue::<u8>::bounded(1).unwrap();
    full.put(1).unwrap();
    let t = Instant::now();
    check("queue put", full.put_timeout(2, timeout).is_err(), t);
    let event = Event::new().unwrap();
    let t = Instant::now();
    check("event", !event.wait_timeout(timeout), t);
    let semaphore = Semaphore::new(0).unwrap();
    let t = Instant::now();
    check("semaphore", !semaphore.acquire_timeout(timeout), t);
    let barrier = Barrier::new(2).unwrap();
    let t = Instant::now();
    check("barrier", barrier.wait_timeout(timeout).is_err(), t);
    let (a, _b) = multiproc::pipe::<u8>().unwrap();
    let t = Instant::now();
    check("pipe", a.recv_timeout(timeout).is_err(), t);
    late
}

#[test]
fn timed_waits_keep_their_timeout_under_every_policy() {
    for policy in POLICIES {
        let late = join(Process::spawn(timed_waits_fail_on_time, policy).unwrap()).unwrap();
        assert!(late.is_empty(), "{policy:?}: {late:?}");
    }
}

fn wait_for_one(args: (Queue<u8>, WaitPolicy, multiproc::Event)) -> u8 {
    let (q, policy, ready) = args;
    set_wait_policy(policy);
    ready.set();
    q.get_timeout(LIMIT).unwrap()
}

#[test]
fn a_blocked_waiter_ends_up_asleep_under_every_policy() {
    for policy in POLICIES {
        let q = Queue::new().unwrap();
        let ready = multiproc::Event::new().unwrap();
        let p = Process::spawn(wait_for_one, (q.clone(), policy, ready.clone())).unwrap();
        assert!(ready.wait_timeout(LIMIT), "{policy:?}: the waiter did not start");
        // Past its poll budget, whatever the policy, it sleeps in the
        // kernel (the CPU it then uses is measured in `queue.rs`).
        common::wait_until_process_asleep(&format!("{policy:?}: the waiter sleeps"), p.pid());
        q.put(7).unwrap();
        assert_eq!(join(p).unwrap(), 7);
    }
}

const HOPS: u32 = 300;

/// One process of a ring: passes the token on, `HOPS` times.
fn pass_on(args: (Queue<u32>, Queue<u32>, WaitPolicy)) -> u32 {
    let (input, output, policy) = args;
    set_wait_policy(policy);
    let mut last = 0;
    for _ in 0..HOPS {
        last = input.get_timeout(LIMIT).expect("a wake-up was lost");
        output.put(last + 1).unwrap();
    }
    last
}

#[test]
fn no_wake_up_is_lost_among_eight_processes_under_every_policy() {
    const N: usize = 8; // more processes than CPUs
    for policy in POLICIES {
        let queues: Vec<Queue<u32>> = (0..N).map(|_| Queue::new().unwrap()).collect();
        let ring: Vec<_> = (0..N)
            .map(|i| {
                let args = (queues[i].clone(), queues[(i + 1) % N].clone(), policy);
                Process::spawn(pass_on, args).unwrap()
            })
            .collect();
        queues[0].put(0).unwrap();
        let mut lasts: Vec<u32> = ring.into_iter().map(|p| join(p).unwrap()).collect();
        lasts.sort_unstable();
        // The token made N * HOPS hops; the last process passed it on last.
        assert_eq!(*lasts.last().unwrap(), N as u32 * HOPS - 1, "{policy:?}");
        assert_eq!(queues[0].get_timeout(LIMIT).unwrap(), N as u32 * HOPS, "{policy:?}");
    }
}

fn policy_here(_: ()) -> WaitPolicy {
    multiproc::wait_policy()
}

fn spawn_under(policy: WaitPolicy) -> WaitPolicy {
    set_wait_policy(policy);
    join(Process::spawn(policy_here, ()).unwrap()).unwrap()
}

#[test]
fn a_child_starts_with_its_parents_policy() {
    for policy in POLICIES {
        assert_eq!(join(Process::spawn(spawn_under, policy).unwrap()).unwrap(), policy);
    }
}
