//! A `Pool` across two "hosts" on Redis: one local worker here, and a
//! "remote" host (this same program, started again with
//! `--multiproc-worker`, as it would be on another machine) serving two
//! more; plus a shared dict counting which host ran what, and a queue.
//!
//! ```sh
//! cargo run --release --example cluster                 # starts its own redis-server
//! cargo run --release --example cluster -- redis://10.0.0.5:6379/0   # or uses yours
//! ```
//!
//! On a real second machine, run the same binary there:
//! `./cluster --multiproc-worker redis://10.0.0.5:6379/0 cluster 4`.

use std::time::Duration;

use multiproc::remote::RedisServer;
use multiproc::{Manager, Pool, Queue};

/// The work: squares, and says where it ran.
fn square(x: u64) -> (u64, String) {
    let host = std::env::var("CLUSTER_HOST").unwrap_or_else(|_| "here".to_owned());
    (x * x, host)
}

fn main() -> Result<(), multiproc::Error> {
    // On the "remote" host, this serves the pool's tasks and never returns.
    multiproc::pool::worker_from_args();

    let server; // a redis-server of our own, unless an address was given
    let url = match std::env::args().nth(1) {
        Some(url) => url,
        None => {
            server = RedisServer::start()?;
            server.url()
        }
    };

    // The other host: a separate process tree, with an environment of its own
    // (stopped when `_remote` is dropped; its workers are its daemons).
    let _remote = Host(
        std::process::Command::new(std::env::current_exe().expect("current exe"))
            .args(["--multiproc-worker", &url, "cluster", "2"])
            .env("CLUSTER_HOST", "remote")
            .spawn()
            .expect("start the remote host"),
    );

    let pool = Pool::builder().redis(&url, "cluster").processes(1).build()?;
    println!("{pool:?}");
    let results = pool.map_chunked(square, 0..1_000, 10)?;
    let sum: u64 = results.iter().map(|r| r.0).sum();
    let remote_tasks = results.iter().filter(|r| r.1 == "remote").count();
    println!("sum of squares of 0..1000 = {sum}");
    println!(
        "tasks run here: {}, on the remote host: {remote_tasks}",
        results.len() - remote_tasks
    );

    // Shared objects by name: any host that names them shares them.
    let manager = Manager::connect_redis(&url, "cluster")?;
    let counts = manager.dict::<String, u64>("counts")?;
    for (_, host) in &results {
        counts.update(host.clone(), |n| Some(n.unwrap_or(0) + 1))?;
    }
    let mut items = counts.items()?;
    items.sort();
    println!("counts: {items:?}");

    // A queue across hosts: at-least-once, acknowledged as `get` returns.
    let q: Queue<String> = Queue::builder().redis(&url, "cluster-jobs").build()?;
    q.put("hello from the cluster".to_owned())?;
    println!("{:?}", q.get_timeout(Duration::from_secs(5))?);

    manager.delete("counts")?;
    Ok(())
}

/// The "remote" host's process, killed and reaped on drop.
struct Host(std::process::Child);

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
