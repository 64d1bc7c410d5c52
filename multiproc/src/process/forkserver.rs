//! The fork server: a small single-threaded helper that forks children on
//! request.
//!
//! The first `ForkServer` start in a process re-executes the binary as the
//! server (it stops before `main`, so it holds no thread, lock or state of the
//! program). A request carries two descriptors: the socket on which the new
//! child will read its bootstrap straight from the requesting parent (the
//! server never sees arguments), and a socket on which the server reports the
//! child's exit status once it has reaped it. The reply gives the child's pid
//! and a pidfd for it, so the parent can signal and watch it without races.
//! The server exits when its parent closes the control socket, that is when
//! the parent dies.
#![allow(unsafe_code)] // fork: see the SAFETY comments

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::child;
use super::reaper;
use crate::boot::{self, Role};
use crate::os::{self, Forked};
use crate::transfer::frame::{self, FrameReader, Progress};
use crate::{Error, Result};

const REQUEST: &[u8] = b"fork";
const REPLY_OK: u8 = 0;
const REPLY_ERR: u8 = 1;
/// How long a parent waits for the server's reply before giving up on it.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Conn {
    owner: u32,
    control: OwnedFd,
    server: OwnedFd,
}

static SERVER: Mutex<Option<Conn>> = Mutex::new(None);

/// Holds the fork-server lock across a fork (see `fork::start`).
pub(crate) fn lock_for_fork() -> impl Sized {
    SERVER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A child the server forked for us.
#[derive(Debug)]
pub(crate) struct ServerChild {
    pub(crate) pid: u32,
    pub(crate) pidfd: OwnedFd,
    /// Becomes readable with 8 bytes of exit status once the child is reaped.
    pub(crate) status: OwnedFd,
}

/// Asks the fork server (started on first use) for a child that will read its
/// bootstrap from `boot`.
pub(crate) fn request(boot: OwnedFd) -> Result<ServerChild> {
    let mut server = SERVER.lock().unwrap_or_else(PoisonError::into_inner);
    let me = os::getpid();
    for attempt in 0..2 {
        let stale = server.as_ref().is_none_or(|conn| conn.owner != me);
        if stale {
            if let Some(old) = server.take() {
                // A forked copy of our parent's connection is not ours to use.
                drop(old);
            }
            *server = Some(start_server()?);
        }
        let Some(conn) = server.as_ref() else { continue };
        match exchange(conn, boot.as_fd()) {
            Ok(child) => return Ok(child),
            Err(e) => {
                // Whatever went wrong (a dead, stuck or confused server), a
                // late reply must never be taken for the next request's:
                // stop this server; the next request starts a new one.
                if let Some(old) = server.take() {
                    let _ = os::send_signal(old.server.as_fd(), os::Signal::Kill);
                    reaper::adopt(old.server);
                }
                if !matches!(e, Error::ForkServerGone) || attempt > 0 {
                    return Err(e);
                }
            }
        }
    }
    Err(Error::ForkServerGone)
}

fn start_server() -> Result<Conn> {
    let (ours, theirs) = os::stream_pair().map_err(Error::os("create a socket pair"))?;
    let pid = boot::start(Role::ForkServer, theirs.as_fd())
        .map_err(Error::os("start the fork server"))?;
    drop(theirs);
    let server = os::pidfd_open(pid).map_err(Error::os("open a pidfd for the fork server"))?;
    Ok(Conn { owner: os::getpid(), control: ours, server })
}

fn exchange(conn: &Conn, boot: BorrowedFd<'_>) -> Result<ServerChild> {
    let (status, status_theirs) = os::stream_pair().map_err(Error::os("create a socket pair"))?;
    match frame::send_frame(conn.control.as_fd(), &[REQUEST], &[boot, status_theirs.as_fd()]) {
        Ok(()) => {}
        Err(Error::Disconnected) => return Err(Error::ForkServerGone),
        Err(e) => return Err(e),
    }
    drop(status_theirs);
    let deadline = Instant::now() + REPLY_TIMEOUT;
    let reply = match frame::recv_frame(conn.control.as_fd(), 4096, Some(deadline)) {
        Ok(Some(reply)) => reply,
        Ok(None) | Err(Error::Disconnected) => return Err(Error::ForkServerGone),
        Err(e) => return Err(e),
    };
    match reply.payload.split_first() {
        Some((&REPLY_OK, pid)) if pid.len() == 4 && reply.fds.len() == 1 => {
            let pid = u32::from_le_bytes([pid[0], pid[1], pid[2], pid[3]]);
            let pidfd = reply.fds.into_iter().next().ok_or(Error::ForkServerGone)?;
            Ok(ServerChild { pid, pidfd, status })
        }
        Some((&REPLY_ERR, message)) => Err(Error::Os {
            op: "fork in the fork server",
            address: None,
            source: std::io::Error::other(String::from_utf8_lossy(message).into_owned()),
        }),
        _ => Err(Error::protocol("malformed reply from the fork server")),
    }
}

/// A child of the server that has not ended yet.
struct Kid {
    pidfd: OwnedFd,
    status: OwnedFd,
}

/// The server's loop. Runs before `main` in a fresh image; never returns.
pub(crate) fn serve(control: OwnedFd) -> ! {
    os::default_sigchld();
    // A forked sibling may hold a copy of the control socket, so also watch
    // the parent itself.
    let parent_pid = os::getppid();
    let Ok(parent) = os::pidfd_open(parent_pid) else { os::exit_now(0) };
    if os::getppid() != parent_pid {
        os::exit_now(0);
    }
    let mut kids: Vec<Kid> = Vec::new();
    let mut reader = FrameReader::new(64);
    loop {
        let mut fds: Vec<BorrowedFd<'_>> = vec![control.as_fd(), parent.as_fd()];
        fds.extend(kids.iter().map(|kid| kid.pidfd.as_fd()));
        let ready = match os::wait_readable(&fds, None) {
            Ok(Some(ready)) => ready,
            Ok(None) => continue,
            Err(_) => os::exit_now(1),
        };
        drop(fds);
        if ready[1] {
            os::exit_now(0);
        }
        let mut request = None;
        if ready[0] {
            match reader.read(control.as_fd(), true) {
                Ok(Progress::Frame(frame)) => request = Some(frame),
                Ok(Progress::Pending) => {}
                // Our parent is gone (or talks nonsense): nothing left to serve.
                Ok(Progress::Closed) | Err(_) => os::exit_now(0),
            }
        }
        for index in (2..ready.len()).rev() {
            if !ready[index] {
                continue;
            }
            let kid = &kids[index - 2];
            match os::try_reap(kid.pidfd.as_fd()) {
                Ok(Some(status)) => {
                    let bytes = status.to_bytes();
                    let slice = [std::io::IoSlice::new(&bytes)];
                    let _ = os::send_with_fds(kid.status.as_fd(), &slice, &[], true);
                    kids.swap_remove(index - 2);
                }
                Ok(None) => {}
                // Not ours to reap any more: forget it rather than spin on it
                // (its parent sees the status socket close).
                Err(_) => {
                    kids.swap_remove(index - 2);
                }
            }
        }
        let Some(frame) = request else { continue };
        if frame.payload != REQUEST || frame.fds.len() != 2 {
            let _ = frame::send_frame(control.as_fd(), &[&[REPLY_ERR], b"malformed request"], &[]);
            continue;
        }
        let mut fds = frame.fds.into_iter();
        let (Some(boot), Some(status)) = (fds.next(), fds.next()) else { continue };
        // SAFETY: the fork server is single-threaded (it never leaves the
        // pre-`main` hook and starts no thread), so the child inherits no lock
        // held by anyone else.
        match unsafe { os::fork() } {
            Ok(Forked::Child) => {
                drop(kids);
                drop(control);
                drop(parent);
                drop(status);
                child::run_spawned(boot)
            }
            Ok(Forked::Parent(pid)) => {
                drop(boot);
                match os::pidfd_open(pid) {
                    Ok(pidfd) => {
                        let reply_ok = frame::send_frame(
                            control.as_fd(),
                            &[&[REPLY_OK], &pid.to_le_bytes()],
                            &[pidfd.as_fd()],
                        );
                        if reply_ok.is_err() {
                            os::exit_now(0);
                        }
                        kids.push(Kid { pidfd, status });
                    }
                    Err(e) => {
                        let message = format!("could not open a pidfd for the child: {e}");
                        let _ = frame::send_frame(
                            control.as_fd(),
                            &[&[REPLY_ERR], message.as_bytes()],
                            &[],
                        );
                    }
                }
            }
            Err(e) => {
                let message = e.to_string();
                let _ =
                    frame::send_frame(control.as_fd(), &[&[REPLY_ERR], message.as_bytes()], &[]);
            }
        }
    }
}
