//! Crash safety: producers and consumers SIGKILLed at random moments.

mod common;

use std::time::{Duration, Instant};

use common::{LIMIT, join, wait};
use multiproc::{Error, Queue, RawArray, RawValue, StartMethod};
use serde::{Deserialize, Serialize};

const MAX_PRODUCERS: u32 = 400;
const PER_PRODUCER: u32 = 400;
const RING: usize = 16 << 10;

#[derive(Serialize, Deserialize)]
struct Msg {
    producer: u32,
    seq: u32,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
    checksum: u64,
}

fn checksum(producer: u32, seq: u32, payload: &[u8]) -> u64 {
    payload.iter().fold(u64::from(producer) << 32 | u64::from(seq), |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn msg(producer: u32, seq: u32) -> Msg {
    // Every 16th message is larger than the ring: it streams in pieces.
    let len = if seq % 16 == 5 { 3 * RING + 123 } else { (seq as usize * 13) % 200 };
    let payload: Vec<u8> = (0..len).map(|i| (i as u32 ^ seq ^ producer) as u8).collect();
    Msg { producer, seq, checksum: checksum(producer, seq, &payload), payload }
}

type Shared = (Queue<Msg>, RawArray<u32>, RawArray<u32>, RawValue<u32>);

fn producer(args: (Shared, u32)) {
    let ((q, acked, _, _), id) = args;
    for seq in 0..PER_PRODUCER {
        q.put(msg(id, seq)).unwrap();
        acked.store(id as usize, seq + 1);
    }
}

fn consumer(shared: Shared) {
    let (q, _, counts, corrupt) = shared;
    loop {
        match q.get_timeout(LIMIT) {
            Ok(m) => {
                let ok = m.producer < MAX_PRODUCERS
                    && m.seq < PER_PRODUCER
                    && m.checksum == checksum(m.producer, m.seq, &m.payload);
                if ok {
                    counts.fetch_add((m.producer * PER_PRODUCER + m.seq) as usize, 1);
                } else {
                    corrupt.fetch_add(1);
                }
            }
            Err(Error::Closed) => return,
            Err(e) => panic!("consumer: {e}"),
        }
    }
}

/// xorshift: reproducible randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn random_kills_of_producers_and_consumers_never_corrupt_or_duplicate() {
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            as u64
            | 1;
    println!("random-kill seed {seed}");
    let mut rng = Rng(seed);
    let q = Queue::builder().ring_bytes(RING).build().unwrap();
    let acked = RawArray::<u32>::new(MAX_PRODUCERS as usize).unwrap();
    let counts = RawArray::<u32>::new((MAX_PRODUCERS * PER_PRODUCER) as usize).unwrap();
    let corrupt = RawValue::new(0u32).unwrap();
    let shared: Shared = (q.clone(), acked.clone(), counts.clone(), corrupt.clone());
    let start =
        |f: fn(Shared), s: &Shared| common::builder(StartMethod::Fork).spawn(f, s.clone()).unwrap();
    let mut next_id = 0u32;
    let mut start_producer = |s: &Shared| {
        let id = next_id;
        next_id += 1;
        common::builder(StartMethod::Fork).spawn(producer, (s.clone(), id)).unwrap()
    };
    let mut producers: Vec<_> = (0..2).map(|_| start_producer(&shared)).collect();
    let mut consumers: Vec<_> = (0..2).map(|_| start(consumer, &shared)).collect();
    let (mut producer_kills, mut consumer_kills) = (0, 0);
    let began = Instant::now();
    while producer_kills + consumer_kills < 220 {
        std::thread::sleep(Duration::from_micros(rng.below(3000)));
        if rng.below(2) == 0 {
            let victim = producers.swap_remove(rng.below(2) as usize);
            victim.kill().unwrap();
            wait(&victim);
            producer_kills += 1;
            producers.push(start_producer(&shared));
        } else {
            let victim = consumers.swap_remove(rng.below(2) as usize);
            victim.kill().unwrap();
            wait(&victim);
            consumer_kills += 1;
            consumers.push(start(consumer, &shared));
        }
        assert!(began.elapsed() < 4 * LIMIT, "the kill loop is stuck");
    }
    // The survivors finish; then everything left is drained.
    for p in producers {
        join(p).unwrap();
    }
    q.close();
    for c in consumers {
        join(c).unwrap();
    }
    assert_eq!(corrupt.load(), 0, "a corrupted or half-written message was delivered");
    let (mut lost, mut duplicated, mut delivered) = (0, 0, 0);
    for id in 0..next_id {
        let acked = acked.load(id as usize);
        for seq in 0..PER_PRODUCER {
            let n = counts.load((id * PER_PRODUCER + seq) as usize);
            delivered += n;
            if n > 1 {
                duplicated += 1;
            }
            if n == 0 && seq < acked {
                lost += 1;
            }
        }
    }
    println!(
        "{producer_kills} producer and {consumer_kills} consumer kills; {delivered} delivered, \
         {lost} acknowledged messages lost"
    );
    assert_eq!(duplicated, 0, "messages delivered twice");
    // Only a consumer killed while taking a message may lose it: one each.
    assert!(lost <= consumer_kills, "{lost} lost with {consumer_kills} consumer kills");
    assert!(delivered > 0);
    // The queue still works.
    let q2 = Queue::new().unwrap();
    q2.put(1u8).unwrap();
    assert_eq!(q2.get().unwrap(), 1);
}
