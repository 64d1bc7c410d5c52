//! The Rust peers, measured the same way as multiproc (feature `peers`):
//! ipc-channel between two processes, and crossbeam-channel between two
//! threads (the in-process reference).

use std::time::{Duration, Instant};

use ipc_channel::ipc;
use multiproc::Process;

use crate::Scenario;
use crate::latency::{Latency, ROUND_TRIPS, WARM_UP};

/// The peers' rows of the table of medians.
pub const PEER_SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "peer: ipc-channel one-way 64-byte messages (time per message)",
        samples: 11,
        run: || ipc_one_way(64, 100_000),
    },
    Scenario {
        name: "peer: ipc-channel one-way 1 MiB messages (time per message)",
        samples: 11,
        run: || ipc_one_way(crate::BIG, 300),
    },
];

/// The peers' latency rows.
pub const PEER_LATENCIES: &[Latency] = &[
    Latency { name: "peer: ipc-channel round trip of a small message", run: ipc_round_trips },
    Latency {
        name: "peer: crossbeam-channel round trip between threads",
        run: crossbeam_round_trips,
    },
];

/// Forks a child running `body` (the channels it captures are inherited).
fn fork_with<R>(body: impl FnOnce() -> R) -> Process<R>
where
    R: serde::Serialize + serde::de::DeserializeOwned,
{
    Process::builder().fork_closure(body).expect("fork")
}

fn timed(mut one: impl FnMut()) -> Vec<Duration> {
    let start = Instant::now();
    while start.elapsed() < WARM_UP {
        one();
    }
    (0..ROUND_TRIPS)
        .map(|_| {
            let t = Instant::now();
            one();
            t.elapsed()
        })
        .collect()
}

fn ipc_round_trips() -> Vec<Duration> {
    let (to_child, from_parent) = ipc::channel::<u64>().expect("channel");
    let (to_parent, from_child) = ipc::channel::<u64>().expect("channel");
    let child = fork_with(move || {
        while let Ok(n) = from_parent.recv() {
            if n == u64::MAX {
                return;
            }
            to_parent.send(n).expect("send");
        }
    });
    let mut n = 0;
    let times = timed(|| {
        to_child.send(n).expect("send");
        assert_eq!(from_child.recv().expect("recv"), n);
        n += 1;
    });
    to_child.send(u64::MAX).expect("send");
    child.join().expect("join");
    times
}

fn crossbeam_round_trips() -> Vec<Duration> {
    let (to_thread, from_main) = crossbeam_channel::bounded::<u64>(1);
    let (to_main, from_thread) = crossbeam_channel::bounded::<u64>(1);
    let thread = std::thread::spawn(move || {
        while let Ok(n) = from_main.recv() {
            to_main.send(n).expect("send");
        }
    });
    let mut n = 0;
    let times = timed(|| {
        to_thread.send(n).expect("send");
        assert_eq!(from_thread.recv().expect("recv"), n);
        n += 1;
    });
    drop(to_thread);
    thread.join().expect("join");
    times
}

/// ipc-channel, one way, `size`-byte messages (its bytes channel):
/// the time per message.
pub fn ipc_one_way(size: usize, messages: usize) -> Duration {
    let (tx, rx) = ipc::bytes_channel().expect("channel");
    let child =
        fork_with(move || (0..messages).map(|_| rx.recv().expect("recv").len()).sum::<usize>());
    let message = vec![7u8; size];
    let start = Instant::now();
    for _ in 0..messages {
        tx.send(&message).expect("send");
    }
    assert_eq!(child.join().expect("join"), messages * size);
    start.elapsed() / messages as u32
}
