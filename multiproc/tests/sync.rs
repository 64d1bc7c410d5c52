//! Cross-process locks, semaphores, conditions, events and barriers.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{LIMIT, METHODS, join, wait};
use multiproc::{
    Barrier, BoundedSemaphore, Condition, Error, Event, Lock, LockError, Process, RLock, RawValue,
    Semaphore, Value,
};

const INCREMENTS: u64 = 100_000;

fn add_under_value_lock(counter: Value<u64>) {
    for _ in 0..INCREMENTS {
        *counter.lock().unwrap() += 1;
    }
}

#[test]
fn four_processes_of_locked_increments_give_the_exact_count() {
    let counter = Value::new(0u64).unwrap();
    let children: Vec<_> =
        (0..4).map(|_| Process::spawn(add_under_value_lock, counter.clone()).unwrap()).collect();
    for child in children {
        join(child).unwrap();
    }
    assert_eq!(counter.get(), 4 * INCREMENTS);
}

fn add_under_separate_lock(args: (Lock, RawValue<u64>)) {
    let (lock, counter) = args;
    for _ in 0..INCREMENTS {
        let _guard = lock.lock().unwrap();
        counter.set(counter.get() + 1); // not atomic: only the lock protects it
    }
}

#[test]
fn a_lock_protects_unsynchronized_data_across_processes_and_start_methods() {
    let lock = Lock::new().unwrap();
    let counter = RawValue::new(0u64).unwrap();
    let children: Vec<_> = METHODS
        .iter()
        .map(|&m| {
            common::builder(m)
                .spawn(add_under_separate_lock, (lock.clone(), counter.clone()))
                .unwrap()
        })
        .collect();
    add_under_separate_lock((lock.clone(), counter.clone()));
    for child in children {
        join(child).unwrap();
    }
    assert_eq!(counter.get(), 4 * INCREMENTS);
}

#[test]
fn lock_try_and_timeout_forms() {
    let lock = Lock::new().unwrap();
    let guard = lock.lock().unwrap();
    assert!(lock.is_locked());
    assert!(matches!(lock.try_lock(), Err(LockError::WouldBlock)));
    let start = Instant::now();
    assert!(matches!(lock.lock_timeout(Duration::from_millis(30)), Err(LockError::Timeout)));
    assert!(start.elapsed() >= Duration::from_millis(30));
    drop(guard);
    assert!(lock.try_lock().is_ok());
    assert!(matches!(lock.release(), Err(Error::NotOwner)));
}

fn release_someone_elses(rlock: RLock) -> bool {
    matches!(rlock.release(), Err(Error::NotOwner))
}

#[test]
fn an_rlock_is_reentrant_and_refuses_release_by_a_non_owner() {
    let rlock = RLock::new().unwrap();
    rlock.acquire().unwrap();
    rlock.acquire().unwrap();
    assert_eq!(rlock.depth(), 2);
    let child = Process::spawn(release_someone_elses, rlock.clone()).unwrap();
    assert!(join(child).unwrap(), "a child may not release our RLock");
    let other_thread = rlock.clone();
    assert!(std::thread::spawn(move || release_someone_elses(other_thread)).join().unwrap());
    rlock.release().unwrap();
    assert_eq!(rlock.depth(), 1);
    rlock.release().unwrap();
    assert_eq!(rlock.depth(), 0);
    assert!(matches!(rlock.release(), Err(Error::NotOwner)));
}

fn take_units(args: (Semaphore, u32)) -> u32 {
    let (sem, n) = args;
    (0..n).filter(|_| sem.acquire_timeout(LIMIT)).count() as u32
}

#[test]
fn a_semaphore_counts_across_processes() {
    let sem = Semaphore::new(0).unwrap();
    let child = Process::spawn(take_units, (sem.clone(), 5)).unwrap();
    for _ in 0..5 {
        sem.release().unwrap();
    }
    assert_eq!(join(child).unwrap(), 5);
    assert_eq!(sem.value(), 0);
    assert!(!sem.try_acquire());
    sem.release_n(3).unwrap();
    assert_eq!(sem.value(), 3);
    assert!(!Semaphore::new(0).unwrap().acquire_timeout(Duration::from_millis(10)));
}

#[test]
fn a_bounded_semaphore_refuses_over_release() {
    let sem = BoundedSemaphore::new(2).unwrap();
    assert!(matches!(sem.release(), Err(Error::TooManyReleases)));
    sem.acquire();
    sem.acquire();
    assert!(!sem.try_acquire());
    sem.release().unwrap();
    sem.release().unwrap();
    assert!(matches!(sem.release(), Err(Error::TooManyReleases)));
    assert_eq!(sem.value(), 2);
    {
        let _unit = sem.guard();
        assert_eq!(sem.value(), 1);
    }
    assert_eq!(sem.value(), 2);
}

const ITEMS: u32 = 200;

fn produce(args: (Condition, RawValue<u32>, RawValue<u32>)) {
    let (cond, produced, consumed) = args;
    for _ in 0..ITEMS {
        let mut guard = cond.lock().unwrap();
        // A one-slot buffer: wait until the consumer took the last item.
        cond.wait_while(&mut guard, || produced.get() != consumed.get()).unwrap();
        produced.set(produced.get() + 1);
        cond.notify_all().unwrap();
    }
}

#[test]
fn a_condition_hands_items_from_a_producer_to_a_consumer_process() {
    for cond in [Condition::new().unwrap(), Condition::with_lock(Lock::new().unwrap()).unwrap()] {
        let produced = RawValue::new(0u32).unwrap();
        let consumed = RawValue::new(0u32).unwrap();
        let producer =
            Process::spawn(produce, (cond.clone(), produced.clone(), consumed.clone())).unwrap();
        for n in 1..=ITEMS {
            let mut guard = cond.lock().unwrap();
            let ok = cond.wait_for(&mut guard, || produced.get() == n, Some(LIMIT)).unwrap();
            assert!(ok, "item {n} did not arrive");
            consumed.set(n);
            cond.notify_all().unwrap();
        }
        join(producer).unwrap();
    }
}

#[test]
fn condition_timeouts_and_misuse() {
    let cond = Condition::new().unwrap();
    assert!(matches!(cond.notify(1), Err(Error::NotOwner)));
    let mut guard = cond.lock().unwrap();
    let start = Instant::now();
    assert!(!cond.wait_timeout(&mut guard, Duration::from_millis(20)).unwrap());
    assert!(start.elapsed() >= Duration::from_millis(20));
    assert!(!cond.wait_for(&mut guard, || false, Some(Duration::from_millis(5))).unwrap());
}

fn pong(args: (Event, Event, u32)) {
    let (ping, pong, rounds) = args;
    for _ in 0..rounds {
        assert!(ping.wait_timeout(LIMIT));
        ping.clear();
        pong.set();
    }
}

#[test]
fn events_ping_pong_between_processes() {
    for method in METHODS {
        let (ping, pong_event) = (Event::new().unwrap(), Event::new().unwrap());
        let child =
            common::builder(method).spawn(pong, (ping.clone(), pong_event.clone(), 100)).unwrap();
        for _ in 0..100 {
            ping.set();
            assert!(pong_event.wait_timeout(LIMIT), "{method:?}");
            pong_event.clear();
        }
        join(child).unwrap();
    }
}

#[test]
fn setting_an_event_wakes_every_waiter() {
    let event = Event::new().unwrap();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let e = event.clone();
            std::thread::spawn(move || e.wait_timeout(PROMPT))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50)); // let them fall asleep
    event.set();
    assert!(waiters.into_iter().all(|w| w.join().unwrap()));
}

#[test]
fn an_event_set_then_cleared_still_releases_a_waiter() {
    let event = Event::new().unwrap();
    let waiter = event.clone();
    let thread = std::thread::spawn(move || waiter.wait_timeout(LIMIT));
    std::thread::sleep(Duration::from_millis(20));
    event.set();
    event.clear();
    assert!(thread.join().unwrap());
    assert!(!event.wait_timeout(Duration::from_millis(5)));
}

/// Short enough that a lost wake-up fails the test instead of passing late.
const PROMPT: Duration = Duration::from_secs(5);

fn meet(barrier: Barrier) -> u32 {
    barrier.wait_timeout(PROMPT).unwrap().index()
}

#[test]
fn a_barrier_releases_five_processes_together_and_can_be_reused() {
    let barrier = Barrier::new(5).unwrap();
    for _round in 0..3 {
        let children: Vec<_> =
            (0..4).map(|_| Process::spawn(meet, barrier.clone()).unwrap()).collect();
        let mut indexes = BTreeSet::from([meet(barrier.clone())]);
        indexes.extend(children.into_iter().map(|c| join(c).unwrap()));
        assert_eq!(indexes, (0..5).collect());
    }
    assert_eq!(barrier.parties(), 5);
    assert_eq!(barrier.n_waiting(), 0);
}

fn wait_expecting_broken(barrier: Barrier) -> bool {
    matches!(barrier.wait_timeout(LIMIT), Err(Error::BrokenBarrier))
}

#[test]
fn a_barrier_breaks_on_timeout_and_abort_and_recovers_on_reset() {
    let barrier = Barrier::new(3).unwrap();
    let child = Process::spawn(wait_expecting_broken, barrier.clone()).unwrap();
    common::eventually("the child waits", || barrier.n_waiting() == 1);
    assert!(matches!(barrier.wait_timeout(Duration::from_millis(20)), Err(Error::Timeout)));
    assert!(join(child).unwrap(), "the other waiter sees the barrier broken");
    assert!(barrier.is_broken());
    assert!(matches!(barrier.wait(), Err(Error::BrokenBarrier)));

    barrier.reset();
    assert!(!barrier.is_broken());
    let child = Process::spawn(wait_expecting_broken, barrier.clone()).unwrap();
    common::eventually("the child waits", || barrier.n_waiting() == 1);
    barrier.abort();
    assert!(join(child).unwrap());

    barrier.reset();
    let child = Process::spawn(wait_expecting_broken, barrier.clone()).unwrap();
    common::eventually("the child waits", || barrier.n_waiting() == 1);
    barrier.reset();
    assert!(join(child).unwrap(), "reset breaks the current waiters");
    let solo = Barrier::new(1).unwrap();
    assert!(solo.wait().unwrap().is_leader());
}

/// Takes `lock`, tells the parent, and hangs holding it.
fn hold_lock_forever(args: (Lock, Event)) {
    let (lock, held) = args;
    let _guard = lock.lock().unwrap();
    held.set();
    std::thread::sleep(Duration::from_secs(300));
}

fn hold_rlock_forever(args: (RLock, Event)) {
    let (rlock, held) = args;
    rlock.acquire().unwrap();
    rlock.acquire().unwrap();
    held.set();
    std::thread::sleep(Duration::from_secs(300));
}

fn hold_value_forever(args: (Value<u32>, Event)) {
    let (value, held) = args;
    let mut guard = value.lock().unwrap();
    *guard = 99;
    held.set();
    std::thread::sleep(Duration::from_secs(300));
}

fn kill_after_held<R>(child: Process<R>, held: &Event) {
    assert!(held.wait_timeout(LIMIT), "the child did not take the lock");
    child.kill().unwrap();
    assert_eq!(wait(&child), -9);
}

#[test]
fn a_killed_lock_holder_is_reported_to_the_next_acquirer_within_100ms() {
    for method in METHODS {
        let (lock, held) = (Lock::new().unwrap(), Event::new().unwrap());
        let child =
            common::builder(method).spawn(hold_lock_forever, (lock.clone(), held.clone())).unwrap();
        kill_after_held(child, &held);
        match lock.lock_timeout(Duration::from_millis(100)) {
            Err(LockError::OwnerDied(guard)) => drop(guard),
            other => panic!("{method:?}: expected OwnerDied, got {other:?}"),
        }
        // The lock works normally afterwards.
        assert!(lock.try_lock().is_ok());
    }
}

#[test]
fn a_killed_holder_of_an_rlock_or_a_value_lock_is_reported_too() {
    let (rlock, held) = (RLock::new().unwrap(), Event::new().unwrap());
    let child = Process::spawn(hold_rlock_forever, (rlock.clone(), held.clone())).unwrap();
    kill_after_held(child, &held);
    match rlock.lock_timeout(Duration::from_millis(100)) {
        Err(LockError::OwnerDied(guard)) => assert_eq!(rlock.depth(), 1, "{guard:?}"),
        other => panic!("expected OwnerDied, got {other:?}"),
    }

    let (value, held) = (Value::new(0u32).unwrap(), Event::new().unwrap());
    let child = Process::spawn(hold_value_forever, (value.clone(), held.clone())).unwrap();
    kill_after_held(child, &held);
    match value.lock_timeout(Duration::from_millis(100)) {
        Err(LockError::OwnerDied(mut guard)) => {
            assert_eq!(*guard, 99, "the dead owner's write is visible for repair");
            *guard = 0;
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert_eq!(value.get(), 0);
}

#[test]
fn a_waiter_already_asleep_learns_of_the_death_too() {
    let (lock, held) = (Lock::new().unwrap(), Event::new().unwrap());
    let child = Process::spawn(hold_lock_forever, (lock.clone(), held.clone())).unwrap();
    assert!(held.wait_timeout(LIMIT));
    let waiter = lock.clone();
    let thread = std::thread::spawn(move || {
        matches!(waiter.lock_timeout(LIMIT), Err(LockError::OwnerDied(_)))
    });
    std::thread::sleep(Duration::from_millis(100)); // let it fall asleep
    child.kill().unwrap();
    wait(&child);
    assert!(thread.join().unwrap());
}

fn dev_shm_entries() -> usize {
    std::fs::read_dir("/dev/shm").map(|d| d.count()).unwrap_or(0)
}

#[test]
fn ten_thousand_create_drop_cycles_leak_nothing() {
    // Warm up lazily created descriptors before counting.
    drop((Lock::new(), Event::new()));
    let (fds, shm) = (common::open_fds(), dev_shm_entries());
    for _ in 0..10_000 {
        let lock = Lock::new().unwrap();
        let _g = lock.lock().unwrap();
        drop((RLock::new().unwrap(), Semaphore::new(1).unwrap(), BoundedSemaphore::new(1)));
        drop((Condition::new().unwrap(), Event::new().unwrap(), Barrier::new(2).unwrap()));
        drop((Value::new(1u8).unwrap(), multiproc::Array::<u8>::new(3).unwrap()));
        drop((RawValue::new(1u8).unwrap(), multiproc::RawArray::<u8>::new(3).unwrap()));
    }
    // Other tests of this binary open descriptors too: wait for them.
    common::eventually("no descriptor is left behind", || common::open_fds() <= fds);
    assert!(dev_shm_entries() <= shm, "anonymous segments never appear in /dev/shm");
}

/// Hammers every lock form and a semaphore, checking invariants inside.
fn stress(args: (Lock, RLock, Semaphore, RawValue<u32>, RawValue<u64>, u32)) -> u64 {
    let (lock, rlock, slots, inside, total, rounds) = args;
    let mut mine = 0;
    for i in 0..rounds {
        let guard = match i % 3 {
            0 => lock.lock().ok(),
            1 => lock.try_lock().ok(),
            _ => lock.lock_timeout(Duration::from_millis(1)).ok(),
        };
        if guard.is_some() {
            total.set(total.get() + 1); // protected by `lock` only
            mine += 1;
        }
        drop(guard);
        {
            let _outer = rlock.lock().unwrap();
            let _inner = rlock.lock().unwrap();
            assert_eq!(rlock.depth(), 2);
        }
        if slots.acquire_timeout(LIMIT) {
            let now = inside.fetch_add(1) + 1;
            assert!(now <= 2, "{now} processes inside a semaphore of 2");
            inside.fetch_sub(1);
            slots.release().unwrap();
        }
    }
    mine
}

#[test]
fn eight_processes_stress_the_futex_state_machines() {
    let lock = Lock::new().unwrap();
    let rlock = RLock::new().unwrap();
    let slots = Semaphore::new(2).unwrap();
    let inside = RawValue::new(0u32).unwrap();
    let total = RawValue::new(0u64).unwrap();
    let args = (lock, rlock, slots.clone(), inside.clone(), total.clone(), 20_000);
    let children: Vec<_> = (0..8)
        .map(|i| common::builder(METHODS[i % 3]).spawn(stress, args.clone()).unwrap())
        .collect();
    let counted: u64 = children.into_iter().map(|c| join(c).unwrap()).sum();
    assert!(counted >= 8 * 20_000 / 3, "the blocking form always succeeds: {counted}");
    assert_eq!(total.get(), counted, "every successful acquisition counted exactly once");
    assert_eq!(slots.value(), 2);
    assert_eq!(inside.load(), 0);
}

#[test]
#[should_panic(expected = "guard of another condition")]
fn waiting_with_another_conditions_guard_is_refused() {
    let (a, b) = (Condition::new().unwrap(), Condition::new().unwrap());
    let mut guard = a.lock().unwrap();
    let _ = b.wait_timeout(&mut guard, Duration::from_millis(1));
}

fn wait_at_barrier(barrier: Barrier) -> bool {
    barrier.wait_timeout(LIMIT).is_ok()
}

#[test]
fn a_waiter_killed_at_a_barrier_is_not_counted_as_arrived() {
    let barrier = Barrier::new(3).unwrap();
    let doomed = Process::spawn(wait_at_barrier, barrier.clone()).unwrap();
    common::eventually("the first child waits", || barrier.n_waiting() == 1);
    doomed.kill().unwrap();
    assert_eq!(wait(&doomed), -9);
    let second = Process::spawn(wait_at_barrier, barrier.clone()).unwrap();
    common::eventually("the second child waits", || barrier.n_waiting() == 2);
    // Two live parties of three: nobody may be released as if all arrived.
    let mine = barrier.wait_timeout(LIMIT);
    assert!(matches!(mine, Err(Error::BrokenBarrier)), "{mine:?}");
    assert!(!join(second).unwrap(), "a waiter was released by a dead party's arrival");
    barrier.reset();
}

fn sleep_long(_: ()) {
    std::thread::sleep(Duration::from_secs(300));
}

/// Starts processes until one gets `pid` (the kernel hands out the number
/// after `ns_last_pid`); `None` if this machine does not let us choose.
fn process_with_pid(pid: u32) -> Option<Process<()>> {
    for _ in 0..200 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).ok()?;
        let p = Process::spawn(sleep_long, ()).unwrap();
        if p.pid() == pid {
            return Some(p);
        }
        p.kill().unwrap();
        wait(&p);
    }
    None
}

#[test]
fn a_dead_owners_thread_id_reused_by_another_process_does_not_keep_its_lock() {
    let (lock, held) = (Lock::new().unwrap(), Event::new().unwrap());
    let owner = Process::spawn(hold_lock_forever, (lock.clone(), held.clone())).unwrap();
    let pid = owner.pid();
    kill_after_held(owner, &held);
    // Start times are known to the clock tick (10 ms): a real reuse comes
    // after the whole range of ids has been used, much later than this.
    std::thread::sleep(Duration::from_millis(30));
    // Another process now has the dead owner's thread id (its main thread).
    let Some(reuser) = process_with_pid(pid) else {
        eprintln!("skipped: this machine does not let the test choose process ids");
        return;
    };
    let result = lock.lock_timeout(Duration::from_secs(2));
    reuser.kill().unwrap();
    wait(&reuser);
    match result {
        Err(LockError::OwnerDied(guard)) => drop(guard),
        other => panic!("expected OwnerDied, got {other:?}"),
    }
}

fn receive_a_lock(rx: multiproc::Connection<Lock>) -> String {
    match rx.recv_timeout(LIMIT) {
        Ok(_) => "attached".to_owned(),
        Err(e) => e.to_string(),
    }
}

/// In a (single-threaded) child: moves our next child into a new PID
/// namespace, forks it, and sends it a lock.
fn send_a_lock_into_a_new_pid_namespace(_: ()) -> String {
    // SAFETY: `unshare(CLONE_NEWPID)` changes only which PID namespace this
    // process's next child is born in.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        return "skipped".to_owned();
    }
    let (tx, rx) = multiproc::pipe::<Lock>().unwrap();
    // The pipe's own rings are shared objects too: as an argument, its end
    // would be refused in the new namespace. A forked closure inherits it
    // instead, so that the lock is the first object to cross.
    let child = Process::builder().fork_closure(move || receive_a_lock(rx)).unwrap();
    tx.send(&Lock::new().unwrap()).unwrap();
    join(child).unwrap()
}

#[test]
fn a_lock_refuses_to_cross_into_another_pid_namespace() {
    let outcome = join(Process::spawn(send_a_lock_into_a_new_pid_namespace, ()).unwrap()).unwrap();
    if outcome == "skipped" {
        eprintln!("skipped: this machine does not let the test make a PID namespace");
        return;
    }
    assert!(outcome.contains("another PID or time namespace"), "{outcome}");
}

const NOTIFY_WAIT: Duration = Duration::from_millis(1500);

/// Waits once on `cond`; returns whether it was notified and how long it
/// waited.
fn wait_once(args: (Condition, RawValue<u32>)) -> (bool, Duration) {
    let (cond, waiting) = args;
    let mut guard = cond.lock().unwrap();
    waiting.fetch_add(1);
    let start = Instant::now();
    let notified = cond.wait_timeout(&mut guard, NOTIFY_WAIT).unwrap();
    (notified, start.elapsed())
}

/// Three processes wait on one condition; `notify` wakes them; returns how
/// many report a notification.
fn notified_of_three(notify: impl FnOnce(&Condition)) -> usize {
    let cond = Condition::new().unwrap();
    let waiting = RawValue::new(0u32).unwrap();
    let waiters: Vec<_> = (0..3)
        .map(|_| Process::spawn(wait_once, (cond.clone(), waiting.clone())).unwrap())
        .collect();
    // A waiter counts itself under the lock and releases it only by waiting.
    common::eventually("three waiters", || {
        let _guard = cond.lock().unwrap();
        waiting.load() == 3
    });
    {
        let _guard = cond.lock().unwrap();
        notify(&cond);
    }
    let mut notified = 0;
    for waiter in waiters {
        let (was_notified, waited) = join(waiter).unwrap();
        if was_notified {
            notified += 1;
        } else {
            assert!(waited >= NOTIFY_WAIT, "a waiter gave up after {waited:?}");
        }
    }
    notified
}

#[test]
fn notify_n_wakes_at_most_n_waiting_processes_and_only_they_report_it() {
    assert_eq!(notified_of_three(|c| c.notify(1).unwrap()), 1, "notify(1)");
    assert_eq!(notified_of_three(|c| c.notify(2).unwrap()), 2, "notify(2)");
    assert_eq!(notified_of_three(|c| c.notify_all().unwrap()), 3, "notify_all");
}
