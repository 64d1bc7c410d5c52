//! Pools on both back-ends through one suite, then what only Redis has:
//! workers on another "host" (a separate process tree), workers killed
//! mid-task with every task accounted for once, and unreachable servers.
#![cfg(feature = "redis")]

mod common;

use std::time::{Duration, Instant};

use multiproc::remote::RedisServer;
use multiproc::{Error, Pool, PoolBuilder};

fn square(x: u64) -> u64 {
    x * x
}

fn slow_identity(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(30)); // a task that takes a while
    x
}

fn boom(x: u64) -> u64 {
    assert!(x != 3, "three is bad");
    x
}

fn both(f: impl Fn(&str, PoolBuilder)) {
    f("local", Pool::builder());
    let server = common::redis_server(RedisServer::builder());
    f("redis", Pool::builder().redis(&server.url(), "suite"));
}

#[test]
fn map_imap_and_apply_give_the_same_results_on_both_backends() {
    both(|backend, builder| {
        let pool = builder.processes(2).build().unwrap();
        assert!(format!("{pool:?}").contains(backend), "{pool:?}");
        let want: Vec<u64> = (0..1000).map(square).collect();
        assert_eq!(pool.map(square, 0..1000).unwrap(), want, "{backend}");
        let got: Vec<u64> = pool.imap(square, 0..50).map(Result::unwrap).collect();
        assert_eq!(got, want[..50], "{backend}");
        assert_eq!(pool.apply(square, 12).unwrap(), 144, "{backend}");
        let r = pool.apply_async(square, 5).unwrap();
        assert_eq!(r.get_timeout(common::LIMIT).unwrap(), 25, "{backend}");
        let err = pool.map(boom, 0..5).unwrap_err();
        assert!(err.to_string().contains("three is bad"), "{backend}: {err}");
        assert_eq!(pool.map(square, [7]).unwrap(), [49], "the pool goes on after a panic");
        pool.close();
        assert!(matches!(pool.apply(square, 1), Err(Error::PoolClosed)), "{backend}");
        assert!(pool.join_timeout(common::LIMIT).unwrap(), "{backend}");
    });
}

/// A network namespace of its own for the other "host", joined to this
/// one by a virtual Ethernet pair (10.231.X.1 here, 10.231.X.2 there): made
/// where the machine allows it (root, the `ip` command), else `None`, and
/// the other host shares this one's loopback (as it does with
/// `MULTIPROC_TEST_NO_NETNS=1`, to test that path). Removed on drop.
struct Netns {
    name: String,
    link: String,
    here: std::net::IpAddr,
}

impl Netns {
    fn new() -> Option<Netns> {
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let x = (pid.wrapping_mul(7).wrapping_add(n) % 250) + 1;
        let ip = |args: &[&str]| {
            std::process::Command::new("ip")
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let name = format!("mp-{pid}-{n}");
        if std::env::var_os("MULTIPROC_TEST_NO_NETNS").is_some() || !ip(&["netns", "add", &name]) {
            return None;
        }
        let ns = Netns {
            link: format!("mp{}", (pid * 16 + n) % 10_000_000),
            here: std::net::Ipv4Addr::new(10, 231, x as u8, 1).into(),
            name,
        };
        let peer = format!("{}p", ns.link);
        let made = ip(&[
            "link", "add", &ns.link, "type", "veth", "peer", "name", &peer, "netns", &ns.name,
        ]) && ip(&["addr", "add", &format!("10.231.{x}.1/30"), "dev", &ns.link])
            && ip(&["link", "set", &ns.link, "up"])
            && ip(&["-n", &ns.name, "addr", "add", &format!("10.231.{x}.2/30"), "dev", &peer])
            && ip(&["-n", &ns.name, "link", "set", &peer, "up"])
            && ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        made.then_some(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for args in [["netns", "del", &self.name], ["link", "del", &self.link]] {
            let _ = std::process::Command::new("ip")
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// A server and, where the machine allows, a network namespace for the
/// other host, which reaches the server through it.
struct Site {
    server: RedisServer,
    net: Option<Netns>,
}

impl Site {
    fn new() -> Site {
        let net = Netns::new();
        // Redis refuses clients from other addresses unless a password is
        // set ("protected mode"); across hosts there should be one anyway.
        let builder = match &net {
            Some(n) => RedisServer::builder().also_on(n.here).password("across-hosts"),
            None => RedisServer::builder(),
        };
        Site { server: common::redis_server(builder), net }
    }

    /// The address for this host.
    fn url(&self) -> String {
        self.server.url()
    }

    /// Starts the other host: in its own network namespace, if there is
    /// one (where 127.0.0.1 is its own, and the server is at 10.231.X.1).
    fn host(&self, name: &str, processes: usize) -> Host {
        match &self.net {
            Some(n) => {
                let url = self.server.url_on(n.here);
                Host::start(&url, name, processes, Some(&n.name))
            }
            None => Host::start(&self.url(), name, processes, None),
        }
    }
}

/// Another "host": this test program started anew as a process tree of
/// its own, with an environment of its own (and a network of its own where
/// the machine allows), serving the pool's tasks (see `remote_host_main`).
/// Killed on drop, workers included (they are its daemons).
struct Host(std::process::Child);

impl Host {
    fn start(url: &str, name: &str, processes: usize, netns: Option<&str>) -> Host {
        let exe = std::env::current_exe().unwrap();
        let mut command = match netns {
            Some(ns) => {
                let mut c = std::process::Command::new("ip");
                c.args(["netns", "exec", ns]).arg(exe);
                c
            }
            None => std::process::Command::new(exe),
        };
        let child = command
            .args(["--exact", "remote_host_main", "--ignored", "--nocapture", "--test-threads=1"])
            .env("MULTIPROC_TEST_HOST", "remote")
            .env("MULTIPROC_TEST_REDIS", format!("{url} {name} {processes}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Host(child)
    }

    /// The pids of its processes: the host and its workers.
    fn pids(&self) -> Vec<u32> {
        let mut all = vec![self.0.id()];
        let mut i = 0;
        while i < all.len() {
            all.extend(children(all[i]));
            i += 1;
        }
        all
    }

    /// SIGKILLs the host and every worker of it (a host lost at once).
    fn kill_all(&mut self) {
        for pid in self.pids().into_iter().rev() {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid as i32).unwrap(),
                rustix::process::Signal::KILL,
            );
        }
        let _ = self.0.wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// The other host's program (run by `Host::start` only).
#[test]
#[ignore = "the other host of the Redis pool tests: started by them"]
fn remote_host_main() {
    let Ok(spec) = std::env::var("MULTIPROC_TEST_REDIS") else { return };
    let mut parts = spec.split(' ');
    let (url, name) = (parts.next().unwrap(), parts.next().unwrap());
    let processes = parts.next().unwrap().parse().unwrap();
    let _ = multiproc::pool::serve_redis(url, name, processes, Duration::from_millis(400));
}

/// Hangs on the remote host (until killed), after leaving a mark; runs at
/// once on the local one.
fn hang_remotely((x, mark): (u64, String)) -> u64 {
    if std::env::var("MULTIPROC_TEST_HOST").is_ok_and(|h| h == "remote") {
        std::fs::write(&mark, b"taken").unwrap();
        std::thread::sleep(common::LIMIT);
    }
    std::thread::sleep(Duration::from_millis(20)); // leave the remote worker time to take one
    x
}

/// `x`, and whether it ran on the remote host.
fn tagged(x: u64) -> (u64, bool) {
    std::thread::sleep(Duration::from_millis(20)); // a task that takes a while
    (x, std::env::var("MULTIPROC_TEST_HOST").is_ok_and(|h| h == "remote"))
}

/// Waits until `n` workers wait for tasks, blocked on the server.
fn wait_for_blocked(url: &str, n: usize) {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_connection().unwrap();
    common::eventually("the remote workers read tasks", || {
        redis::cmd("INFO")
            .arg("clients")
            .query::<String>(&mut con)
            .is_ok_and(|info| info.contains(&format!("blocked_clients:{n}")))
    });
}

#[test]
fn workers_on_another_host_share_the_work_and_results_stay_in_order() {
    let site = Site::new();
    let url = site.url();
    if let Some(net) = &site.net {
        // Its loopback is its own: only the link reaches the server.
        let port = site.server.port();
        let reach = |ip: &str| {
            std::process::Command::new("ip")
                .args(["netns", "exec", &net.name, "bash", "-c"])
                .arg(format!("exec 3<>/dev/tcp/{ip}/{port}"))
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        assert!(!reach("127.0.0.1"), "the other host has a network of its own");
        assert!(reach(&net.here.to_string()), "and reaches the server through the link");
    } else {
        eprintln!("no network namespace here: the other host shares this one's loopback");
    }
    let _host = site.host("shared", 2);
    wait_for_blocked(&url, 2);
    let pool = Pool::builder().redis(&url, "shared").processes(1).build().unwrap();
    let got = pool.map_chunked(tagged, 0..60, 1).unwrap();
    assert_eq!(got.iter().map(|t| t.0).collect::<Vec<u64>>(), (0..60).collect::<Vec<u64>>());
    let remote = got.iter().filter(|t| t.1).count();
    assert!(remote > 0 && remote < 60, "{remote} of 60 ran on the other host");
}

#[test]
fn remote_workers_killed_mid_task_have_their_tasks_run_again_exactly_once() {
    let site = Site::new();
    let url = site.url();
    let mut host = site.host("kills", 3);
    wait_for_blocked(&url, 3);
    let pool = Pool::builder()
        .redis(&url, "kills")
        .processes(1)
        .visibility_timeout(Duration::from_millis(400))
        .retry_on_worker_death(2)
        .build()
        .unwrap();
    let results = pool.map_async(slow_identity, 0..40).unwrap();
    // Kill the whole other host while its workers hold tasks (the one local
    // worker holds at most one).
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut con = client.get_connection().unwrap();
    common::eventually("the other host runs tasks", || {
        redis::cmd("XPENDING")
            .arg(&["mp:{kills}:pool-tasks", "g"])
            .query::<(u64, redis::Value, redis::Value, redis::Value)>(&mut con)
            .is_ok_and(|p| p.0 >= 3)
    });
    host.kill_all();
    let got = results.get_timeout(common::LIMIT).unwrap();
    assert_eq!(got, (0..40).collect::<Vec<u64>>(), "each task once, in order");
}

#[test]
fn a_task_whose_worker_dies_and_no_retry_is_left_fails_with_worker_died() {
    let site = Site::new();
    let url = site.url();
    let mark = std::env::temp_dir().join(format!("multiproc-hang-{}", std::process::id()));
    let _ = std::fs::remove_file(&mark);
    let mark = mark.to_string_lossy().into_owned();
    let mut host = site.host("noretry", 1);
    wait_for_blocked(&url, 1);
    let pool = Pool::builder()
        .redis(&url, "noretry")
        .processes(1)
        .visibility_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let results: Vec<_> =
        (0..20).map(|i| pool.apply_async(hang_remotely, (i, mark.clone())).unwrap()).collect();
    common::eventually("the remote worker takes a task", || std::path::Path::new(&mark).exists());
    host.kill_all();
    let outcomes: Vec<_> = results.iter().map(|r| r.get_timeout(common::LIMIT)).collect();
    let died = outcomes.iter().filter(|o| matches!(o, Err(Error::WorkerDied { .. }))).count();
    let ok = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!((died, ok), (1, 19), "{outcomes:?}");
    let _ = std::fs::remove_file(&mark);
}

#[test]
fn a_pool_on_an_unreachable_server_fails_to_build_cleanly() {
    let mut server = common::redis_server(RedisServer::builder());
    let url = server.url();
    server.kill();
    let start = Instant::now();
    let err = Pool::builder().redis(&url, "gone").processes(1).build().unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn capturing_closures_are_refused_on_redis() {
    let server = common::redis_server(RedisServer::builder());
    let pool = Pool::builder()
        .redis(&server.url(), "closures")
        .processes(1)
        .start_method(multiproc::StartMethod::Fork)
        .build()
        .unwrap();
    let offset = 3;
    assert!(pool.map(move |x: u64| x + offset, [1, 2]).is_err());
    assert_eq!(pool.map(square, [3]).unwrap(), [9]);
}

/// The pids of `pid`'s children.
fn children(pid: u32) -> Vec<u32> {
    let path = format!("/proc/{pid}/task/{pid}/children");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}
