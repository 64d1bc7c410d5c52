//! The worker process: take a task from the shared task queue, say in
//! shared memory which task (and which item of it) it runs, run it, put the
//! outcomes on the result queue.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

use serde::{Deserialize, Serialize};

use super::closures::Known;
use super::wire::{self, TASK_HEADER, Target};
use crate::boot::entry::TaskFn;
use crate::queue::raw::{RawQueue, Wait};
use crate::shm::park::deadline_after;
use crate::{Error, RawArray};

/// A cancel word's states (see `Core::cancel`).
pub(crate) const PENDING: u64 = 1;
pub(crate) const RUNNING: u64 = 2;
pub(crate) const CANCELLED: u64 = 3;

/// Words of the state array per worker slot: the task it runs, the item
/// of it, and padding to a cache line of its own (a worker writes its item
/// word before every item).
pub(crate) const SLOT_WORDS: usize = 8;

/// How often a worker asleep on the bell looks whether the worker waiting
/// on the task queue is still there.
const IDLE_LOOK: std::time::Duration = std::time::Duration::from_millis(100);

/// What a worker is given when it starts.
#[derive(Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    pub(crate) tasks: RawQueue,
    pub(crate) results: RawQueue,
    /// [`SLOT_WORDS`] per worker slot (the task it runs, the item of it),
    /// then the cancel words.
    pub(crate) state: RawArray<u64>,
    pub(crate) slot: u32,
    pub(crate) cancel_base: u64,
    /// The state word that says which worker waits on the task queue now
    /// (its slot + 1; 0: none). Only one idle worker waits there: the
    /// others sleep on `bell` until rung, so that taking a task never
    /// wakes another worker only to wait in its turn.
    pub(crate) waiter: u64,
    /// Rung (a one-byte message) when a task may wait with no worker on
    /// the task queue.
    pub(crate) bell: RawQueue,
    /// The initializer, as a one-item task message.
    pub(crate) init: Option<Vec<u8>>,
    /// The descriptors of the initializer's argument.
    pub(crate) init_fds: Vec<crate::FdHandle>,
    /// Tasks before the worker retires (0: no limit).
    pub(crate) max_tasks: u64,
}

/// The entry of spawned and fork-server workers.
pub(crate) fn worker_main(args: WorkerArgs) {
    run(args, &Known::new());
}

/// Where a task's function is found.
enum Runner<'a> {
    Entry(TaskFn),
    Closure(&'a super::closures::ChunkFn),
}

/// The worker loop. Returns when the task queue is closed, when the worker
/// has run its `max_tasks`, or when it meets a closure it does not know.
pub(crate) fn run(mut args: WorkerArgs, known: &Known) {
    let init_fds: Vec<std::os::fd::OwnedFd> =
        std::mem::take(&mut args.init_fds).into_iter().map(Into::into).collect();
    let args = &args;
    let base = SLOT_WORDS * args.slot as usize;
    let state = &args.state;
    let mut resolved: HashMap<u64, TaskFn> = HashMap::new();
    let mut out = Vec::with_capacity(256);
    if let Some(init) = &args.init {
        let outcome =
            crate::transfer::codec::with_incoming(init_fds, || initialize(init, known, &mut out));
        if let Err(message) = outcome {
            let mut msg = wire::begin_result(wire::INIT_FAILED, args.slot, 0);
            msg.extend_from_slice(message.as_bytes());
            let _ = args.results.put_payload(&msg[..], 0, Wait::Forever);
            return;
        }
    }
    let mut msg: Vec<u8> = Vec::new();
    let mut done = 0u64;
    let waiter = args.waiter as usize;
    let token = u64::from(args.slot) + 1;
    // Once the bell is closed (the pool closes), every worker waits on the
    // task queue itself until it is drained.
    let mut bell_open = true;
    // Whether this worker already is the one to wait on the task queue.
    let mut waiting_turn = false;
    loop {
        let turn = waiting_turn || state.compare_exchange(waiter, 0, token).is_ok();
        waiting_turn = false;
        if bell_open && !turn {
            // Another worker waits on the task queue: sleep until rung (or
            // look again after a while: its worker may have died).
            let rung = args.bell.get_with(Wait::Until(deadline_after(IDLE_LOOK)), |_, _| ());
            bell_open = !matches!(rung, Err(Error::Closed));
            continue;
        }
        let got = args.tasks.get_with(Wait::Forever, |bytes, _| {
            let header = wire::parse_task(bytes)?;
            // Claimed before the message counts as taken: if this worker
            // dies from here on, the pool knows which task it held.
            state.store(base + 1, 0);
            state.store(base, header.id);
            msg.clear();
            msg.extend_from_slice(bytes);
            Some(header)
        });
        if bell_open {
            // Let another worker wait; ring one up if tasks are left now.
            state.store(waiter, 0);
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            if args.tasks.has_data() && !args.bell.has_data() {
                let _ = args.bell.put_payload(&[1u8][..], 0, Wait::Never);
            }
        }
        let header = match got {
            Ok(Some(header)) => header,
            // A malformed message: not ours to run.
            Ok(None) => continue,
            Err(Error::Closed) => return,
            Err(_) => continue,
        };
        let cancel = header.cancel as usize;
        if header.cancel != wire::NO_CANCEL
            && (args.cancel_base as usize + cancel) < state.len()
            && state.compare_exchange(args.cancel_base as usize + cancel, PENDING, RUNNING).is_err()
        {
            state.store(base, 0);
            let note = wire::begin_result(wire::SKIPPED, args.slot, header.id);
            if args.results.put_payload(&note[..], 0, Wait::Forever).is_err() {
                return;
            }
            continue;
        }
        let runner = match header.target {
            Target::Entry(entry) => match resolved.get(&entry.to_bits()) {
                Some(&f) => Ok(Runner::Entry(f)),
                None => match entry.resolve() {
                    Ok(f) => {
                        resolved.insert(entry.to_bits(), f);
                        Ok(Runner::Entry(f))
                    }
                    Err(why) => Err(why),
                },
            },
            Target::Closure(id) => match known.get(&id) {
                Some(f) => Ok(Runner::Closure(f)),
                None => {
                    // Forked before the closure existed: hand the task back
                    // and retire; the replacement knows it.
                    state.store(base, 0);
                    let note = wire::begin_result(wire::BOUNCE, args.slot, header.id);
                    let _ = args.results.put_payload(&note[..], 0, Wait::Forever);
                    return;
                }
            },
        };
        wire::reset_result(&mut out, wire::DONE, args.slot, header.id);
        let input = msg.get(TASK_HEADER..).unwrap_or_default();
        let progress = state.atomic(base + 1);
        match runner {
            Ok(Runner::Entry(f)) => f(input, header.skip, header.count, &mut out, progress),
            Ok(Runner::Closure(f)) => f(input, header.skip, header.count, &mut out, progress),
            Err(why) => {
                let message = format!("the task names no function of this program: {why}");
                wire::push_failures(&mut out, header.count, wire::DECODE_FAILED, &message);
            }
        }
        // Become the worker that waits for the next task before the result
        // goes out: a caller that answers it with a new task finds someone
        // waiting, and rings no one.
        // (Not if this task is its last.)
        let last = args.max_tasks != 0 && done + 1 >= args.max_tasks;
        waiting_turn = bell_open && !last && state.compare_exchange(waiter, 0, token).is_ok();
        if args.results.put_payload(&out[..], 0, Wait::Forever).is_err() {
            if waiting_turn {
                state.store(waiter, 0);
            }
            return;
        }
        state.store(base, 0);
        if out.capacity() > 1 << 20 {
            out = Vec::with_capacity(256);
        }
        done += 1;
        if args.max_tasks != 0 && done >= args.max_tasks {
            return;
        }
    }
}

/// Runs the initializer; the error message if it failed.
fn initialize(init: &[u8], known: &Known, out: &mut Vec<u8>) -> Result<(), String> {
    let header = wire::parse_task(init).ok_or("malformed initializer message")?;
    let input = init.get(TASK_HEADER..).unwrap_or_default();
    out.clear();
    match header.target {
        Target::Entry(entry) => {
            let f =
                entry.resolve().map_err(|why| format!("the initializer is not found: {why}"))?;
            f(input, 0, 1, out, &AtomicU64::new(0));
        }
        Target::Closure(id) => {
            let f = known.get(&id).ok_or("the initializer closure is unknown")?;
            f(input, 0, 1, out, &AtomicU64::new(0));
        }
    }
    wire::init_outcome(out)
}
