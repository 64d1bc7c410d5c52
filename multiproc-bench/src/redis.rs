//! The Redis rows (`compare --redis`): a `Queue` and a `Pool` on a real
//! `redis-server` of the command's own, beside the Python anchors on the
//! same server (Celery, RQ, and redis-benchmark's LPUSH/RPOP).

use std::time::{Duration, Instant};

use multiproc::queue::Delivery;
use multiproc::remote::RedisServer;
use multiproc::{Pool, Process, Queue};

/// Round trips of the queue row (timed one by one).
pub const ROUND_TRIPS: usize = 5_000;
/// Messages of the one-way row.
pub const ONE_WAY: usize = 200_000;
/// Tasks of the pool row.
pub const POOL_TASKS: u64 = 10_000;

/// A server for the rows.
pub fn server() -> RedisServer {
    RedisServer::start().expect("start redis-server (bash .ci/install-redis.sh installs it)")
}

/// redis-benchmark's LPUSH and RPOP on the server at `port`, one client,
/// no pipelining: the sum of their median latencies, in seconds (one round
/// trip of a list queue). `None` if redis-benchmark could not run.
pub fn lpush_rpop(port: u16) -> Option<f64> {
    let out = std::process::Command::new("redis-benchmark")
        .args(["-p", &port.to_string(), "-t", "lpush,rpop", "-n", "20000", "-c", "1"])
        .args(["-P", "1", "--csv", "-r", "100"])
        .output()
        .map_err(|e| eprintln!("could not run redis-benchmark: {e}"))
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut total = 0.0;
    let mut found = 0;
    for line in text.lines() {
        // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
        let cells: Vec<&str> = line.split(',').map(|c| c.trim_matches('"')).collect();
        if cells[0].starts_with("LPUSH") || cells[0].starts_with("RPOP") {
            total += cells.get(4)?.parse::<f64>().ok()? / 1000.0;
            found += 1;
        }
    }
    (found == 2).then_some(total)
}

/// `put` then `get` of one small item on a Redis queue, in one process:
/// the time of each pair (two round trips to the server).
pub fn queue_round_trips(url: &str, run: usize, delivery: Delivery) -> Vec<Duration> {
    let name = format!("rt-{run}-{delivery:?}");
    let q: Queue<u64> =
        Queue::builder().redis(url, &name).delivery(delivery).build().expect("queue");
    // Untimed first, for 300 ms: a cold connection, server and caches would
    // otherwise make the first run of three the slowest.
    let warm = Instant::now();
    let mut i = 0;
    while warm.elapsed() < Duration::from_millis(300) {
        q.put(i).expect("put");
        q.get().expect("get");
        i += 1;
    }
    (0..ROUND_TRIPS as u64)
        .map(|i| {
            let start = Instant::now();
            q.put(i).expect("put");
            assert_eq!(q.get().expect("get"), i);
            start.elapsed()
        })
        .collect()
}

fn produce((q, n): (Queue<serde_bytes::ByteBuf>, usize)) {
    let item = serde_bytes::ByteBuf::from(vec![7u8; 64]);
    q.put_many(std::iter::repeat_n(item, n)).expect("put_many");
}

/// 64-byte items from a producer process to this one, `put_many` and
/// `get_many` (pipelined): messages per second.
pub fn one_way_64(url: &str, run: usize) -> f64 {
    let q: Queue<serde_bytes::ByteBuf> =
        Queue::builder().redis(url, &format!("one-way-{run}")).build().expect("queue");
    let start = Instant::now();
    let producer = Process::spawn(produce, (q.clone(), ONE_WAY)).expect("spawn");
    let mut got = 0;
    while got < ONE_WAY {
        got += q.get_many(1024, Duration::from_secs(60)).expect("get_many").len();
    }
    let elapsed = start.elapsed();
    producer.join().expect("producer");
    ONE_WAY as f64 / elapsed.as_secs_f64()
}

/// `map` of 10,000 trivial tasks on a pool on Redis with 2 local workers:
/// time per task.
pub fn pool_map(pool: &Pool) -> Duration {
    let start = Instant::now();
    let v = pool.map(crate::pool::sq, 0..POOL_TASKS).expect("map");
    let elapsed = start.elapsed();
    assert_eq!(v[9_999], 9_999 * 9_999);
    elapsed / POOL_TASKS as u32
}

/// The pool of the pool row.
pub fn pool(url: &str) -> Pool {
    let pool = Pool::builder().redis(url, "bench").processes(2).build().expect("pool");
    pool.map(crate::pool::sq, 0..100).expect("warm up");
    pool
}
