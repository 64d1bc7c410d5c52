//! `Process<R>`: the parent's handle on a child.

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::StartMethod;
use super::child;
use super::reaper;
use crate::manager::ForkLoans;
use crate::os::{self, ExitStatus, Signal};
use crate::transfer::frame::{Frame, FrameReader, Progress};
use crate::{Error, Result};

/// How the parent learns that a child ended.
#[derive(Debug)]
pub(crate) enum ExitWatch {
    /// Our own child: `waitid` on its pidfd.
    Direct,
    /// The fork server's child: the server sends the status on this socket.
    Server(OwnedFd),
}

/// A freshly started child, before it gets its handle.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) pid: u32,
    pub(crate) pidfd: OwnedFd,
    pub(crate) channel: OwnedFd,
    pub(crate) exit: ExitWatch,
    /// What a fork lent the child of this process's manager objects.
    pub(crate) loans: ForkLoans,
}

/// What changes while the child runs and ends.
#[derive(Debug)]
struct Life {
    status: Option<ExitStatus>,
    reader: FrameReader,
    channel_open: bool,
    outcome: Option<Result<Frame>>,
    taken: bool,
    /// Repaid once the child has ended (see [`ForkLoans`]).
    loans: ForkLoans,
}

/// A child process running a function, and the way to its result.
///
/// Created by [`Process::spawn`] or a [`Builder`](crate::Builder). `R` is the
/// target's return type; [`join`](Process::join) gives it back, or says
/// exactly what happened instead (a panic and its message, an exit code, a
/// signal).
///
/// Dropping the handle of a running child leaves the child running, like
/// dropping a thread's `JoinHandle` (a daemon child still dies with this
/// process); multiproc reaps it when it ends, so it never lingers as a zombie.
///
/// # Examples
///
/// ```
/// use multiproc::Process;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let child = Process::spawn(square, 7)?;
/// assert!(child.pid() > 0);
/// assert_eq!(child.join()?, 49);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Process<R> {
    pid: u32,
    name: String,
    daemon: bool,
    start_method: StartMethod,
    /// Always `Some` until `drop`, which may hand it to the reaper.
    pidfd: Option<OwnedFd>,
    channel: OwnedFd,
    exit: ExitWatch,
    life: Mutex<Life>,
    _result: PhantomData<fn() -> R>,
}

/// Outcome frames are limited only by memory: the child is ours.
const OUTCOME_MAX: u64 = u64::MAX;

impl<R> Process<R> {
    pub(crate) fn new(started: Started, name: String, daemon: bool, method: StartMethod) -> Self {
        super::related::register(started.pid, &name, daemon, started.pidfd.as_fd());
        log::debug!(
            "started process {name:?} (pid {}, {method:?}{})",
            started.pid,
            if daemon { ", daemon" } else { "" }
        );
        Self {
            pid: started.pid,
            name,
            daemon,
            start_method: method,
            pidfd: Some(started.pidfd),
            channel: started.channel,
            exit: started.exit,
            life: Mutex::new(Life {
                status: None,
                reader: FrameReader::new(OUTCOME_MAX),
                channel_open: true,
                outcome: None,
                taken: false,
                loans: started.loans,
            }),
            _result: PhantomData,
        }
    }

    /// The child's process id.
    ///
    /// # Examples
    ///
    /// ```
    /// let child = multiproc::Process::spawn(|x: u8| x, 1)?;
    /// assert_ne!(child.pid(), std::process::id());
    /// # child.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The child's name (by default `Process-N`, as in Python).
    ///
    /// # Examples
    ///
    /// ```
    /// let child = multiproc::Process::builder().name("w").spawn(|x: u8| x, 1)?;
    /// assert_eq!(child.name(), "w");
    /// # child.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the child is a daemon (it dies when this process dies).
    ///
    /// # Examples
    ///
    /// ```
    /// let child = multiproc::Process::builder().daemon(true).spawn(|x: u8| x, 1)?;
    /// assert!(child.daemon());
    /// # child.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// How the child was started.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::{Process, StartMethod};
    /// let child = Process::spawn(|x: u8| x, 1)?;
    /// assert_eq!(child.start_method(), StartMethod::Spawn);
    /// # child.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_method(&self) -> StartMethod {
        self.start_method
    }

    /// Whether the child is still running.
    ///
    /// # Examples
    ///
    /// ```
    /// fn nap(ms: u64) {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms));
    /// }
    /// let child = multiproc::Process::spawn(nap, 10_000)?;
    /// assert!(child.is_alive());
    /// child.kill()?;
    /// # let _ = child.join();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_alive(&self) -> bool {
        self.exit_code().is_none()
    }

    /// Python's `exitcode`: `None` while the child runs, then `0` for a normal
    /// end, the exit status, or minus the number of the signal that ended it.
    ///
    /// A target that panicked ends with exit status 1 (as a Python process
    /// whose target raised).
    ///
    /// # Examples
    ///
    /// ```
    /// fn quit(code: i32) -> u8 {
    ///     std::process::exit(code)
    /// }
    /// let child = multiproc::Process::spawn(quit, 3)?;
    /// assert_eq!(child.wait()?, 3);
    /// assert_eq!(child.exit_code(), Some(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn exit_code(&self) -> Option<i32> {
        let mut life = self.lock();
        match self.poll_exit(&mut life) {
            Ok(true) => life.status.map(ExitStatus::code),
            _ => None,
        }
    }

    /// Waits for the child to end and returns its [`exit_code`](Self::exit_code),
    /// keeping the result for a later [`join`](Self::join).
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if waiting fails; [`Error::ForkServerGone`] if the fork
    /// server that started the child died.
    ///
    /// # Examples
    ///
    /// ```
    /// let child = multiproc::Process::spawn(|x: u8| x + 1, 1)?;
    /// assert_eq!(child.wait()?, 0);
    /// assert_eq!(child.join()?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(&self) -> Result<i32> {
        self.wait_until(None)?;
        Ok(self.lock().status.map_or(0, ExitStatus::code))
    }

    /// Like [`wait`](Self::wait), but gives up after `timeout` and returns
    /// `None` (Python's `join(timeout)` followed by reading `exitcode`).
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// fn nap(ms: u64) {
    ///     std::thread::sleep(Duration::from_millis(ms));
    /// }
    /// let child = multiproc::Process::spawn(nap, 10_000)?;
    /// assert_eq!(child.wait_timeout(Duration::from_millis(10))?, None);
    /// child.terminate()?;
    /// assert_eq!(child.wait_timeout(Duration::from_secs(10))?, Some(-15));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Option<i32>> {
        if self.wait_until(crate::shm::park::deadline_after(timeout))? {
            Ok(self.lock().status.map(ExitStatus::code))
        } else {
            Ok(None)
        }
    }

    /// Asks the child to stop with `SIGTERM` (Python's `terminate`).
    ///
    /// A child that already ended is not an error.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the signal cannot be sent.
    ///
    /// # Examples
    ///
    /// ```
    /// fn nap(ms: u64) {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms));
    /// }
    /// let child = multiproc::Process::spawn(nap, 10_000)?;
    /// child.terminate()?;
    /// assert_eq!(child.wait()?, -15);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn terminate(&self) -> Result<()> {
        os::send_signal(self.pidfd(), Signal::Term).map_err(Error::os("signal a child"))
    }

    /// Stops the child at once with `SIGKILL` (Python's `kill`).
    ///
    /// A child that already ended is not an error.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the signal cannot be sent.
    ///
    /// # Examples
    ///
    /// ```
    /// fn nap(ms: u64) {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms));
    /// }
    /// let child = multiproc::Process::spawn(nap, 10_000)?;
    /// child.kill()?;
    /// assert_eq!(child.wait()?, -9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kill(&self) -> Result<()> {
        os::send_signal(self.pidfd(), Signal::Kill).map_err(Error::os("signal a child"))
    }

    fn pidfd(&self) -> BorrowedFd<'_> {
        match &self.pidfd {
            Some(pidfd) => pidfd.as_fd(),
            None => unreachable!("the pidfd is only taken in drop"),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Life> {
        self.life.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Learns, without blocking, whether the child ended; reaps it if so.
    fn poll_exit(&self, life: &mut Life) -> Result<bool> {
        if life.status.is_some() {
            return Ok(true);
        }
        // Drain what the child sent so far: a child blocked writing a large
        // result would otherwise never end for a parent that only polls.
        self.read_channel(life);
        let status = match &self.exit {
            ExitWatch::Direct => {
                os::try_reap(self.pidfd()).map_err(Error::os("wait for a child process"))?
            }
            ExitWatch::Server(sock) => read_server_status(sock.as_fd())?,
        };
        let Some(status) = status else { return Ok(false) };
        match status {
            ExitStatus::Exited(0) => {
                log::debug!("process {:?} (pid {}) exited with code 0", self.name, self.pid);
            }
            ExitStatus::Exited(code) => {
                log::info!("process {:?} (pid {}) exited with code {code}", self.name, self.pid);
            }
            ExitStatus::Signaled(signal) => {
                log::info!(
                    "process {:?} (pid {}) was ended by signal {signal}",
                    self.name,
                    self.pid
                );
            }
        }
        life.status = Some(status);
        life.loans.repay();
        super::spawn::forget_booted();
        // `active_children` lets go of it (and of its descriptor) now.
        super::related::prune();
        // Whatever the child sent before it ended is in the socket by now.
        self.read_channel(life);
        Ok(true)
    }

    /// Reads what the child has sent so far, without blocking.
    fn read_channel(&self, life: &mut Life) {
        if !life.channel_open {
            return;
        }
        match life.reader.read(self.channel.as_fd(), true) {
            Ok(Progress::Frame(frame)) => {
                life.outcome = Some(Ok(frame));
                life.channel_open = false;
            }
            Ok(Progress::Pending) => {}
            // A child killed before it read its bootstrap resets the socket:
            // that is an end without outcome, which the exit status explains.
            Ok(Progress::Closed) | Err(Error::Disconnected) => life.channel_open = false,
            Err(e) => {
                life.outcome = Some(Err(e));
                life.channel_open = false;
            }
        }
    }

    /// Waits until the child ended (`true`) or `deadline` passed (`false`),
    /// reading its outcome meanwhile so that a large one cannot block it.
    fn wait_until(&self, deadline: Option<Instant>) -> Result<bool> {
        loop {
            let channel_open = {
                let mut life = self.lock();
                if self.poll_exit(&mut life)? {
                    return Ok(true);
                }
                self.read_channel(&mut life);
                life.channel_open
            };
            let exit_fd = match &self.exit {
                ExitWatch::Direct => self.pidfd(),
                ExitWatch::Server(sock) => sock.as_fd(),
            };
            let fds = [exit_fd, self.channel.as_fd()];
            let fds = if channel_open { &fds[..] } else { &fds[..1] };
            let ready =
                os::wait_readable(fds, deadline).map_err(Error::os("wait for a child process"))?;
            if ready.is_none() {
                let mut life = self.lock();
                return self.poll_exit(&mut life);
            }
        }
    }

    fn take_result(&self) -> Result<R>
    where
        R: DeserializeOwned,
    {
        let mut life = self.lock();
        if life.taken {
            return Err(Error::ResultTaken);
        }
        life.taken = true;
        match life.outcome.take() {
            Some(Ok(frame)) => child::decode_outcome(frame, &self.name).inspect_err(|e| {
                if let Error::Panicked { message, .. } = e {
                    log::warn!("process {:?} (pid {}) panicked: {message}", self.name, self.pid);
                }
            }),
            Some(Err(e)) => Err(e),
            None => match life.status {
                Some(ExitStatus::Exited(code)) => Err(Error::Exited { code }),
                Some(ExitStatus::Signaled(signal)) => Err(Error::Signaled { signal }),
                None => Err(Error::protocol("the child has not ended")),
            },
        }
    }
}

impl<R: DeserializeOwned> Process<R> {
    /// Waits for the child to end and returns what its target returned.
    ///
    /// # Errors
    ///
    /// - [`Error::Panicked`] with the message, if the target panicked;
    /// - [`Error::Exited`] if the child called `exit` before returning;
    /// - [`Error::Signaled`] if a signal ended it before it returned;
    /// - [`Error::ChildSetup`] if it could not run its target;
    /// - [`Error::Decode`] if the value did not decode;
    /// - [`Error::ResultTaken`] after a [`join_timeout`](Self::join_timeout)
    ///   that already returned it.
    ///
    /// # Examples
    ///
    /// ```
    /// let child = multiproc::Process::spawn(|s: String| s.len(), "four".to_owned())?;
    /// assert_eq!(child.join()?, 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join(self) -> Result<R> {
        self.wait_until(None)?;
        self.take_result()
    }

    /// Waits at most `timeout` for the child; `Ok(None)` if it is still
    /// running, and the handle stays usable for a later join.
    ///
    /// # Errors
    ///
    /// As [`join`](Self::join).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// fn slow(x: u32) -> u32 {
    ///     std::thread::sleep(Duration::from_millis(300));
    ///     x
    /// }
    /// let mut child = multiproc::Process::spawn(slow, 5)?;
    /// assert_eq!(child.join_timeout(Duration::from_millis(1))?, None);
    /// assert_eq!(child.join_timeout(Duration::from_secs(30))?, Some(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<Option<R>> {
        if !self.wait_until(crate::shm::park::deadline_after(timeout))? {
            return Ok(None);
        }
        self.take_result().map(Some)
    }
}

impl<R> Process<R> {
    /// One poll of an awaiting wait for the child's end.
    fn poll_ended(
        &self,
        waiting: &mut crate::aio::Waiting,
        cx: &std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        waiting.poll(
            cx,
            || {
                let mut life = self.lock();
                match self.poll_exit(&mut life) {
                    Ok(true) => Some(Ok(())),
                    Ok(false) => None,
                    Err(e) => Some(Err(e)),
                }
            },
            |_| {
                let channel_open = self.lock().channel_open;
                let exit_fd = match &self.exit {
                    ExitWatch::Direct => self.pidfd(),
                    ExitWatch::Server(sock) => sock.as_fd(),
                };
                let mut fds = vec![(exit_fd, false)];
                if channel_open {
                    fds.push((self.channel.as_fd(), false));
                }
                // Out of descriptors: look again now and then instead.
                let source = crate::aio::Source::fds(&fds).unwrap_or(crate::aio::Source::Timer);
                Some(crate::aio::Arm::with_recheck(source, Duration::from_millis(100)))
            },
        )
    }

    /// Awaits the child's end and returns its [`exit_code`](Self::exit_code),
    /// keeping the result for a later [`join`](Self::join): [`wait`] without
    /// holding a thread. **Cancel-safe**: it only looks.
    ///
    /// [`wait`]: Self::wait
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// let child = multiproc::Process::spawn(|x: u8| x + 1, 1)?;
    /// assert_eq!(futures::executor::block_on(child.wait_async())?, 0);
    /// assert_eq!(child.join()?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn wait_async(&self) -> Result<i32> {
        let mut waiting = crate::aio::Waiting::default();
        std::future::poll_fn(|cx| self.poll_ended(&mut waiting, cx)).await?;
        Ok(self.lock().status.map_or(0, ExitStatus::code))
    }
}

impl<R: DeserializeOwned> Process<R> {
    /// Awaits the child's end and returns what its target returned:
    /// [`join`] without holding a thread. **Cancel-safe**: dropped before it
    /// completes, it drops the handle as dropping a `Process` does (the
    /// child goes on; it is reaped when it ends).
    ///
    /// [`join`]: Self::join
    ///
    /// # Errors
    ///
    /// As [`join`](Self::join).
    ///
    /// # Examples
    ///
    /// ```
    /// let child = multiproc::Process::spawn(|s: String| s.len(), "four".to_owned())?;
    /// assert_eq!(futures::executor::block_on(child.join_async())?, 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn join_async(self) -> Result<R> {
        self.wait_async().await?;
        self.take_result()
    }
}

/// Reads the 8-byte status the fork server sends once it reaped a child.
fn read_server_status(sock: BorrowedFd<'_>) -> Result<Option<ExitStatus>> {
    let mut buf = [0u8; 8];
    let mut fds = Vec::new();
    match os::recv_with_fds(sock, &mut buf, &mut fds, true) {
        Ok(8) => ExitStatus::from_bytes(buf)
            .map(Some)
            .ok_or_else(|| Error::protocol("malformed exit status from the fork server")),
        Ok(0) => Err(Error::ForkServerGone),
        Ok(_) => Err(Error::protocol("short exit status from the fork server")),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(Error::Os { op: "read a child's exit status", address: None, source: e }),
    }
}

impl<R> AsFd for Process<R> {
    /// The child's pidfd: readable once the child ended, so a `Process` can
    /// be waited on with `poll` beside sockets. (A child whose return value
    /// is larger than a socket buffer ends only once the parent reads it:
    /// call [`is_alive`](Process::is_alive) or a wait method when the pidfd
    /// stays quiet.)
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pidfd()
    }
}

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid)
            .field("name", &self.name)
            .field("daemon", &self.daemon)
            .field("start_method", &self.start_method)
            .field("exit_code", &self.exit_code())
            .finish()
    }
}

impl<R> Drop for Process<R> {
    fn drop(&mut self) {
        let ended = self.life.get_mut().unwrap_or_else(PoisonError::into_inner).status.is_some();
        if ended {
            return;
        }
        // The fork server reaps its own children; ours we must.
        if let ExitWatch::Direct = self.exit
            && let Some(pidfd) = self.pidfd.take()
        {
            match os::try_reap(pidfd.as_fd()) {
                Ok(None) => reaper::adopt(pidfd),
                _ => self.life.get_mut().unwrap_or_else(PoisonError::into_inner).loans.repay(),
            }
        }
    }
}
