//! The Rust peers, measured the same way as multiproc (feature `peers`):
//! ipc-channel and iceoryx2 (busy polling, and with its blocking listener)
//! between two processes, and crossbeam-channel between two threads (the
//! in-process reference).

use std::time::{Duration, Instant};

use ipc_channel::ipc;
use multiproc::Process;

use crate::Scenario;
use crate::latency::{Latency, timed_loop};

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
    Scenario {
        name: "peer: iceoryx2 one-way 64-byte messages (time per message)",
        samples: 11,
        run: || ice_one_way_64(100_000),
    },
    Scenario {
        name: "peer: iceoryx2 one-way 1 MiB messages, copied out (time per message)",
        samples: 11,
        run: || ice_one_way_big(300),
    },
    Scenario {
        name: "peer: crossbeam-channel bounded(0) Commstime, threads (time per communication)",
        samples: 15,
        run: || crate::csp::commstime_over!(crossbeam_channel::bounded::<u64>(0)),
    },
    Scenario {
        name: "peer: crossbeam-channel bounded(0) any-to-any, 4 writers and 4 readers, threads (time per communication)",
        samples: 9,
        run: crossbeam_any_to_any,
    },
];

/// The peers' latency rows.
pub const PEER_LATENCIES: &[Latency] = &[
    Latency { name: "peer: ipc-channel round trip of a small message", run: ipc_round_trips },
    Latency {
        name: "peer: crossbeam-channel round trip between threads",
        run: crossbeam_round_trips,
    },
    Latency { name: "peer: iceoryx2 round trip, busy polling", run: ice_busy_poll },
    Latency { name: "peer: iceoryx2 round trip, blocking listener", run: ice_blocking },
    Latency {
        name: "peer: ipc-channel awaited round trip (async receiver, tokio, both processes)",
        run: ipc_awaited_round_trips,
    },
    Latency {
        name: "peer: tokio UnixStream awaited round trip (both processes)",
        run: tokio_unix_round_trips,
    },
];

/// Forks a child running `body` (the channels it captures are inherited).
fn fork_with<R>(body: impl FnOnce() -> R) -> Process<R>
where
    R: serde::Serialize + serde::de::DeserializeOwned,
{
    Process::builder().fork_closure(body).expect("fork")
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
    let times = timed_loop(|n| {
        to_child.send(n).expect("send");
        assert_eq!(from_child.recv().expect("recv"), n);
    });
    to_child.send(u64::MAX).expect("send");
    child.join().expect("join");
    times
}

/// ipc-channel's async receiver starts a thread that stays: measured in a
/// child of its own, so that this process can still fork.
fn ipc_awaited_round_trips() -> Vec<Duration> {
    let times: Vec<Duration> = fork_with(ipc_awaited_here).join().expect("join");
    times
}

fn ipc_awaited_here() -> Vec<Duration> {
    use futures::StreamExt;
    let (to_child, from_parent) = ipc::channel::<u64>().expect("channel");
    let (to_parent, from_child) = ipc::channel::<u64>().expect("channel");
    let child = fork_with(move || {
        crate::latency::current_thread().block_on(async move {
            let mut from_parent = from_parent.to_stream();
            while let Some(Ok(n)) = from_parent.next().await {
                if n == u64::MAX {
                    return;
                }
                to_parent.send(n).expect("send");
            }
        });
    });
    let times = crate::latency::current_thread().block_on(async {
        let mut from_child = from_child.to_stream();
        crate::latency::timed_loop_async(async |n| {
            to_child.send(n).expect("send");
            let got = from_child.next().await;
            assert_eq!(got.expect("open").expect("recv"), n);
        })
        .await
    });
    to_child.send(u64::MAX).expect("send");
    child.join().expect("join");
    times
}

fn tokio_unix_round_trips() -> Vec<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mine, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let child = fork_with(move || {
        crate::latency::current_thread().block_on(async move {
            theirs.set_nonblocking(true).expect("nonblocking");
            let mut sock = tokio::net::UnixStream::from_std(theirs).expect("tokio socket");
            let mut buf = [0u8; 8];
            while sock.read_exact(&mut buf).await.is_ok() && buf != [0xff; 8] {
                sock.write_all(&buf).await.expect("write");
            }
        });
    });
    let times = crate::latency::current_thread().block_on(async {
        mine.set_nonblocking(true).expect("nonblocking");
        let mut sock = tokio::net::UnixStream::from_std(mine).expect("socket");
        let times = crate::latency::timed_loop_async(async |n| {
            sock.write_all(&n.to_le_bytes()).await.expect("write");
            let mut buf = [0u8; 8];
            sock.read_exact(&mut buf).await.expect("read");
            assert_eq!(u64::from_le_bytes(buf), n);
        })
        .await;
        sock.write_all(&[0xff; 8]).await.expect("write");
        times
    });
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
    let times = timed_loop(|n| {
        to_thread.send(n).expect("send");
        assert_eq!(from_thread.recv().expect("recv"), n);
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

/// iceoryx2's two services for one direction of a round trip: samples, and
/// (for the blocking variant) an event that wakes the reader.
mod ice {
    use iceoryx2::prelude::*;

    pub(super) struct Side {
        _node: Node<ipc::Service>,
        publisher: iceoryx2::port::publisher::Publisher<ipc::Service, u64, ()>,
        subscriber: iceoryx2::port::subscriber::Subscriber<ipc::Service, u64, ()>,
        notifier: iceoryx2::port::notifier::Notifier<ipc::Service>,
        listener: iceoryx2::port::listener::Listener<ipc::Service>,
        blocking: bool,
    }

    impl Side {
        /// One end: publishes on `out`, subscribes to `inp`.
        pub(super) fn new(tag: &str, out: &str, inp: &str, blocking: bool) -> Self {
            let node = NodeBuilder::new().create::<ipc::Service>().expect("node");
            let name = |s: &str| -> ServiceName {
                format!("mp-bench/{tag}/{s}").as_str().try_into().expect("name")
            };
            let pubsub = |s: &str| {
                node.service_builder(&name(s))
                    .publish_subscribe::<u64>()
                    .open_or_create()
                    .expect("service")
            };
            let event = |s: &str| {
                node.service_builder(&name(&format!("{s}-event")))
                    .event()
                    .open_or_create()
                    .expect("event")
            };
            let publisher = pubsub(out).publisher_builder().create().expect("publisher");
            let subscriber = pubsub(inp).subscriber_builder().create().expect("subscriber");
            let notifier = event(out).notifier_builder().create().expect("notifier");
            let listener = event(inp).listener_builder().create().expect("listener");
            Self { _node: node, publisher, subscriber, notifier, listener, blocking }
        }

        pub(super) fn send(&self, n: u64) {
            self.publisher.send_copy(n).expect("send");
            if self.blocking {
                self.notifier.notify().expect("notify");
            }
        }

        /// The next sample, waiting by busy polling or on the listener.
        pub(super) fn recv(&self) -> u64 {
            loop {
                if let Some(sample) = self.subscriber.receive().expect("receive") {
                    return *sample;
                }
                if self.blocking {
                    self.listener.blocking_wait(|_| {}).expect("wait");
                } else {
                    std::hint::spin_loop();
                }
            }
        }

        /// Like `recv`, but gives up after a while (`None`).
        pub(super) fn try_recv_for(&self, spins: u32) -> Option<u64> {
            for _ in 0..spins {
                if let Some(sample) = self.subscriber.receive().expect("receive") {
                    return Some(*sample);
                }
                std::thread::yield_now();
            }
            None
        }
    }
}

fn ice_round_trips(blocking: bool) -> Vec<Duration> {
    let tag = format!("{}-{}", std::process::id(), if blocking { "b" } else { "p" });
    let child_tag = tag.clone();
    let child = fork_with(move || {
        let side = ice::Side::new(&child_tag, "pong", "ping", blocking);
        loop {
            let n = side.recv();
            if n == u64::MAX {
                return;
            }
            side.send(n);
        }
    });
    let side = ice::Side::new(&tag, "ping", "pong", blocking);
    // Samples sent before the other side subscribed are lost: probe until
    // one comes back.
    loop {
        side.send(0);
        if side.try_recv_for(10_000).is_some() {
            break;
        }
    }
    while side.try_recv_for(1_000).is_some() {}
    // Trips are numbered from 0, and 0 was the probe: start past it.
    let times = timed_loop(|n| {
        side.send(n + 1);
        assert_eq!(side.recv(), n + 1);
    });
    side.send(u64::MAX);
    child.join().expect("join");
    times
}

fn ice_busy_poll() -> Vec<Duration> {
    ice_round_trips(false)
}

fn ice_blocking() -> Vec<Duration> {
    ice_round_trips(true)
}

/// iceoryx2, one way, 64-byte messages (busy-polling subscriber, publisher
/// retrying while the subscriber's buffer is full): the time per message.
pub fn ice_one_way_64(messages: usize) -> Duration {
    use iceoryx2::port::backpressure_strategy::BackpressureStrategy;
    use iceoryx2::prelude::*;
    let name = format!("mp-bench/{}/one-way", std::process::id());
    let service = |node: &Node<ipc::Service>| {
        node.service_builder(&name.as_str().try_into().expect("name"))
            .publish_subscribe::<[u8; 64]>()
            .enable_safe_overflow(false)
            .subscriber_max_buffer_size(256)
            .open_or_create()
            .expect("service")
    };
    let ready = multiproc::Event::new().expect("event");
    let child_ready = ready.clone();
    let child_service = service;
    let child = fork_with(move || {
        let node = NodeBuilder::new().create::<ipc::Service>().expect("node");
        let subscriber = child_service(&node).subscriber_builder().create().expect("subscriber");
        child_ready.set();
        let (mut got, mut bytes) = (0usize, 0usize);
        // Bounded: a message lost on the way must fail the row, not hang it.
        let mut last = std::time::Instant::now();
        while got < messages {
            if let Some(sample) = subscriber.receive().expect("receive") {
                got += 1;
                bytes += sample.len();
                last = std::time::Instant::now();
            } else {
                assert!(
                    last.elapsed() < Duration::from_secs(10),
                    "iceoryx2 subscriber: no message for 10 s after {got} of {messages}"
                );
                std::hint::spin_loop();
            }
        }
        bytes / 64
    });
    assert!(ready.wait_timeout(Duration::from_secs(30)), "the subscriber did not start");
    let node = NodeBuilder::new().create::<ipc::Service>().expect("node");
    let publisher = service(&node)
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .expect("publisher");
    let message = [7u8; 64];
    let start = Instant::now();
    for _ in 0..messages {
        publisher.send_copy(message).expect("send");
    }
    assert_eq!(child.join().expect("join"), messages);
    start.elapsed() / messages as u32
}

/// iceoryx2, one way, 1 MiB messages written in place into a loaned sample
/// and copied out by the (busy-polling) subscriber, as a user who keeps the
/// data would: the time per message.
pub fn ice_one_way_big(messages: usize) -> Duration {
    use iceoryx2::port::backpressure_strategy::BackpressureStrategy;
    use iceoryx2::prelude::*;
    let size = crate::BIG;
    let name = format!("mp-bench/{}/one-way-big", std::process::id());
    let service = move |node: &Node<ipc::Service>| {
        node.service_builder(&name.as_str().try_into().expect("name"))
            .publish_subscribe::<[u8]>()
            .enable_safe_overflow(false)
            .subscriber_max_buffer_size(4)
            .open_or_create()
            .expect("service")
    };
    let ready = multiproc::Event::new().expect("event");
    let child_ready = ready.clone();
    let child_service = service.clone();
    let child = fork_with(move || {
        let node = NodeBuilder::new().create::<ipc::Service>().expect("node");
        let subscriber = child_service(&node).subscriber_builder().create().expect("subscriber");
        child_ready.set();
        let (mut got, mut bytes) = (0usize, 0usize);
        // Bounded: a message lost on the way must fail the row, not hang it.
        let mut last = std::time::Instant::now();
        while got < messages {
            if let Some(sample) = subscriber.receive().expect("receive") {
                // `black_box`: a copy used only for its length is otherwise
                // optimized away, and the row would copy nothing out.
                let copy = std::hint::black_box(sample.payload().to_vec());
                got += 1;
                bytes += copy.len();
                last = std::time::Instant::now();
            } else {
                assert!(
                    last.elapsed() < Duration::from_secs(10),
                    "iceoryx2 subscriber: no message for 10 s after {got} of {messages}"
                );
                std::hint::spin_loop();
            }
        }
        bytes
    });
    assert!(ready.wait_timeout(Duration::from_secs(30)), "the subscriber did not start");
    let node = NodeBuilder::new().create::<ipc::Service>().expect("node");
    let publisher = service(&node)
        .publisher_builder()
        .initial_max_slice_len(size)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .expect("publisher");
    // `black_box`: the compiler knows every byte of a literal `vec!`, and
    // would write the sample with `memset` instead of copying the message.
    let message = std::hint::black_box(vec![7u8; size]);
    let start = Instant::now();
    for _ in 0..messages {
        let sample = loop {
            match publisher.loan_slice_uninit(size) {
                Ok(sample) => break sample,
                Err(_) => std::hint::spin_loop(),
            }
        };
        sample.write_from_slice(&message).send().expect("send");
    }
    assert_eq!(child.join().expect("join"), messages * size);
    start.elapsed() / messages as u32
}

/// crossbeam-channel `bounded(0)`, 4 writer and 4 reader threads: the time
/// per communication, from the moment all writers are ready.
fn crossbeam_any_to_any() -> Duration {
    const VALUES: u64 = 5_000;
    const WIDTH: usize = 4;
    let (tx, rx) = crossbeam_channel::bounded::<u64>(0);
    let start = std::sync::Arc::new(std::sync::Barrier::new(WIDTH + 1));
    let writers: Vec<_> = (0..WIDTH)
        .map(|_| {
            let (tx, start) = (tx.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for i in 0..VALUES {
                    tx.send(i).expect("send");
                }
            })
        })
        .collect();
    drop(tx);
    let readers: Vec<_> = (0..WIDTH)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || rx.iter().count() as u64)
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for writer in writers {
        writer.join().expect("writer");
    }
    let read: u64 = readers.into_iter().map(|r| r.join().expect("reader")).sum();
    let elapsed = began.elapsed();
    assert_eq!(read, VALUES * WIDTH as u64);
    elapsed / (VALUES as u32 * WIDTH as u32)
}
