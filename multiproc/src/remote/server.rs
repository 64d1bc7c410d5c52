//! `RedisServer`: a `redis-server` of one's own on a free loopback port.

#![allow(unsafe_code)] // `pre_exec`, to tie the server's life to ours: see SAFETY

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// How long a server may take to answer after it starts (it may be
/// replaying its append-only file).
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A `redis-server` process listening on a free port of 127.0.0.1, started
/// and stopped by this handle: for tests, examples and benchmarks that need
/// a real server and may not touch the machine's own. Its data lives in a
/// fresh directory, removed on drop, when the server is killed too. A
/// server started from the main thread also dies with this process (it gets
/// `SIGKILL` when its parent dies); one started from another thread (a
/// test's) lives until the handle is dropped.
///
/// It runs the `redis-server` found on `PATH` (Debian's package
/// `redis-server`; the project's `.ci/install-redis.sh` installs it), or
/// the program named by the environment variable `MULTIPROC_REDIS_SERVER`.
///
/// # Examples
///
/// ```no_run
/// use multiproc::remote::RedisServer;
///
/// let server = RedisServer::builder().persistent(true).start()?;
/// let q = multiproc::Queue::<u8>::builder().redis(&server.url(), "jobs").build()?;
/// q.put(1)?;
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    settings: RedisServerBuilder,
}

/// Options of a [`RedisServer`]: a password, and whether the data survives
/// a restart.
///
/// # Examples
///
/// ```no_run
/// let server = multiproc::remote::RedisServer::builder().password("s3cret").start()?;
/// assert!(server.url().starts_with("redis://:s3cret@127.0.0.1:"));
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone, Default)]
#[must_use = "a builder does nothing until `start`"]
pub struct RedisServerBuilder {
    password: Option<String>,
    persistent: bool,
    tls: bool,
    also_on: Vec<std::net::IpAddr>,
}

impl std::fmt::Debug for RedisServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServerBuilder")
            .field("password", &self.password.as_ref().map(|_| ".."))
            .field("persistent", &self.persistent)
            .field("tls", &self.tls)
            .field("also_on", &self.also_on)
            .finish()
    }
}

impl RedisServerBuilder {
    /// Clients must authenticate with `password` (Redis's `requirepass`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let server = multiproc::remote::RedisServer::builder().password("pw").start()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// Whether every write is kept on disk before it is acknowledged
    /// (append-only file, `fsync` always), so that a killed and restarted
    /// server still has it. Default false: nothing is kept.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let server = multiproc::remote::RedisServer::builder().persistent(true).start()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    /// Serves TLS only, with a self-signed certificate made at start (by the
    /// `openssl` command): the address is then
    /// `rediss://127.0.0.1:PORT/0#insecure`, whose `#insecure` tells the
    /// client not to check the certificate. For tests of the TLS path only
    /// (needs the `redis-tls` feature).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let server = multiproc::remote::RedisServer::builder().tls(true).start()?;
    /// assert!(server.url().starts_with("rediss://"));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[cfg(feature = "redis-tls")]
    pub fn tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// Listens on `ip` too, besides 127.0.0.1: for a test whose other
    /// "host" runs in a network namespace of its own, joined to this one by
    /// a virtual link, and reaches the server at [`RedisServer::url_on`].
    /// The address must exist when the server starts, and Redis answers
    /// clients from other addresses only if a [`password`] is set (its
    /// "protected mode").
    ///
    /// [`password`]: RedisServerBuilder::password
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let ip = "10.231.0.1".parse().unwrap();
    /// let server = multiproc::remote::RedisServer::builder().also_on(ip).password("pw").start()?;
    /// assert!(server.url_on(ip).starts_with("redis://:pw@10.231.0.1:"));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn also_on(mut self, ip: std::net::IpAddr) -> Self {
        self.also_on.push(ip);
        self
    }

    /// Starts the server and waits until it answers.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] if `redis-server` cannot be run or does not
    /// answer within 20 seconds (with the end of its log).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let server = multiproc::remote::RedisServer::builder().start()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn start(self) -> Result<RedisServer> {
        static SERVERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let mut random = [0u8; 4];
        let _ = rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty());
        let dir = std::env::temp_dir().join(format!(
            "multiproc-redis-{}-{}-{:08x}",
            std::process::id(),
            SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            u32::from_ne_bytes(random)
        ));
        let mut last = None;
        // Another program may take the free port first: try a few (a
        // failed try removes the directory as it goes).
        for _ in 0..5 {
            std::fs::create_dir_all(&dir)
                .map_err(Error::os("create the Redis server's directory"))?;
            let port = free_port()?;
            let mut server =
                RedisServer { child: None, port, dir: dir.clone(), settings: self.clone() };
            match server.run() {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| failure("could not start redis-server", String::new())))
    }
}

impl RedisServer {
    /// A server with no password that keeps nothing on disk.
    ///
    /// # Errors
    ///
    /// As [`RedisServerBuilder::start`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let server = multiproc::remote::RedisServer::start()?;
    /// println!("{}", server.url());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn start() -> Result<RedisServer> {
        Self::builder().start()
    }

    /// Options for the server.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let server = multiproc::remote::RedisServer::builder().persistent(true).start()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// The address to give the objects: `redis://127.0.0.1:PORT/0`, with
    /// the password if there is one.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let server = multiproc::remote::RedisServer::start()?;
    /// assert!(server.url().starts_with("redis://127.0.0.1:"));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn url(&self) -> String {
        let auth = self.settings.password.as_ref().map(|pw| format!(":{pw}@")).unwrap_or_default();
        if self.settings.tls {
            format!("rediss://{auth}127.0.0.1:{}/0#insecure", self.port)
        } else {
            format!("redis://{auth}127.0.0.1:{}/0", self.port)
        }
    }

    /// The address of the server at `ip`, one of the addresses given to
    /// [`RedisServerBuilder::also_on`] (with the password, if any).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let server = multiproc::remote::RedisServer::start()?;
    /// assert_eq!(server.url_on("127.0.0.1".parse().unwrap()), server.url());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn url_on(&self, ip: std::net::IpAddr) -> String {
        let host = match ip {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        };
        self.url().replacen("127.0.0.1", &host, 1)
    }

    /// The port the server listens on.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let server = multiproc::remote::RedisServer::start()?;
    /// assert!(server.port() > 0);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, while it runs.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let server = multiproc::remote::RedisServer::start()?;
    /// assert!(server.pid().is_some());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with `SIGKILL` (a crash: nothing is flushed beyond
    /// what the append-only file already holds) and waits for it to end.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let mut server = multiproc::remote::RedisServer::start()?;
    /// server.kill();
    /// assert!(server.pid().is_none());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (killing it
    /// first if it runs): a persistent server comes back with its data.
    ///
    /// # Errors
    ///
    /// As [`RedisServerBuilder::start`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let mut server = multiproc::remote::RedisServer::builder().persistent(true).start()?;
    /// server.restart()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.run()
    }

    fn run(&mut self) -> Result<()> {
        let program =
            std::env::var_os("MULTIPROC_REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
        let log = self.dir.join("redis.log");
        let mut command = Command::new(&program);
        if self.settings.tls {
            let (cert, key) = (self.dir.join("cert.pem"), self.dir.join("key.pem"));
            if !cert.exists() {
                let made = Command::new("openssl")
                    .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"])
                    .args(["-subj", "/CN=127.0.0.1", "-keyout"])
                    .arg(&key)
                    .arg("-out")
                    .arg(&cert)
                    .output()
                    .map_err(|e| failure("could not run openssl", e.to_string()))?;
                if !made.status.success() {
                    let why = String::from_utf8_lossy(&made.stderr).into_owned();
                    return Err(failure("openssl could not make a certificate", why));
                }
            }
            command
                .args(["--port", "0", "--tls-port"])
                .arg(self.port.to_string())
                .arg("--tls-cert-file")
                .arg(&cert)
                .arg("--tls-key-file")
                .arg(&key)
                .arg("--tls-ca-cert-file")
                .arg(&cert)
                .args(["--tls-auth-clients", "no"]);
        } else {
            command.arg("--port").arg(self.port.to_string());
        }
        command
            .arg("--bind")
            .arg("127.0.0.1")
            .args(self.settings.also_on.iter().map(ToString::to_string))
            .args(["--save", "", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(["--appendonly", if self.settings.persistent { "yes" } else { "no" }])
            .args(["--appendfsync", "always"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(pw) = &self.settings.password {
            command.arg("--requirepass").arg(pw);
        }
        // Linux sends the death signal when the thread that started the
        // child ends, not the process: only the main thread's children get
        // it (its end is the process's).
        if rustix::thread::gettid() == rustix::process::getpid() {
            // SAFETY: the closure runs in the forked child before exec, and
            // only makes one system call (prctl), which is
            // async-signal-safe; it touches no memory of the parent's.
            unsafe {
                command.pre_exec(|| {
                    rustix::process::set_parent_process_death_signal(Some(
                        rustix::process::Signal::KILL,
                    ))
                    .map_err(std::io::Error::from)
                });
            }
        }
        let child = command.spawn().map_err(|e| {
            failure(
                &format!(
                    "could not run {} (install it: bash .ci/install-redis.sh, \
                     or Debian's package redis-server)",
                    program.to_string_lossy()
                ),
                e.to_string(),
            )
        })?;
        // Killed if anything below fails, or panics, before it answers.
        let mut starting = Starting(Some(child));
        let client =
            redis::Client::open(self.url()).map_err(|e| failure("bad address", e.to_string()))?;
        let start = Instant::now();
        loop {
            let Some(child) = starting.0.as_mut() else { unreachable!("taken only on return") };
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    let _ = stderr.read_to_string(&mut err);
                }
                return Err(failure(
                    &format!("redis-server ended at once ({status})"),
                    format!("{err}{}", tail(&log)),
                ));
            }
            if let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(200))
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                self.child = starting.0.take();
                return Ok(());
            }
            if start.elapsed() > READY_WITHIN {
                return Err(failure("redis-server did not answer within 20 s", tail(&log)));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server being started: killed if dropped before it answered.
struct Starting(Option<Child>);

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(Error::os("find a free port for redis-server"))?;
    Ok(probe.local_addr().map_err(Error::os("find a free port for redis-server"))?.port())
}

fn failure(detail: &str, log: String) -> Error {
    Error::Backend {
        address: "redis-server".to_owned(),
        detail: format!("{detail}{}{log}", if log.is_empty() { "" } else { ": " }),
        source: None,
    }
}

/// The last lines of the server's log.
fn tail(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}
