//! Parent side of the spawn and fork-server start methods: both give the child
//! a private socket and then send it the same bootstrap message.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::child::Boot;
use super::current::ChildInfo;
use super::forkserver;
use super::handle::{ExitWatch, Started};
use super::reaper;
use crate::boot::{self, Role, entry::EntryRef};
use crate::manager::ForkLoans;
use crate::os::{self, Signal};
use crate::transfer::{codec, frame};
use crate::{Error, Result};

/// Which of the two re-executing start methods to use.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Via {
    /// `posix_spawn` of `/proc/self/exe`.
    Exec,
    /// A fork of the fork server.
    ForkServer,
}

/// Starts a child that will run `f(args)`.
pub(crate) fn start<F, A, R>(via: Via, f: &F, args: &A, info: ChildInfo) -> Result<Started>
where
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned,
    R: Serialize,
{
    let encoded = codec::encode(args)?;
    let exe = os::exe_identity().map_err(Error::os("identify the running executable"))?;
    let boot = Boot { exe, entry: EntryRef::of(f)?, info };
    let boot = postcard::to_allocvec(&boot).map_err(|e| Error::Encode { source: e.into() })?;
    let own = os::own_pidfd().map_err(Error::os("open a pidfd for this process"))?;
    let mut fds: Vec<BorrowedFd<'_>> = Vec::with_capacity(1 + encoded.fds.len());
    fds.push(own.as_fd());
    fds.extend(encoded.fds.iter().map(AsFd::as_fd));
    if fds.len() > os::MAX_FDS_PER_MESSAGE {
        return Err(Error::TooManyFds { count: fds.len(), max: os::MAX_FDS_PER_MESSAGE });
    }

    let (ours, theirs) = os::stream_pair().map_err(Error::os("create a socket pair"))?;
    let (pid, pidfd, exit) = match via {
        Via::Exec => {
            let pid =
                boot::start(Role::Spawn, theirs.as_fd()).map_err(Error::os("start a process"))?;
            drop(theirs);
            let pidfd = os::pidfd_open(pid).map_err(|e| {
                os::kill_and_reap(pid);
                Error::Os { op: "open a pidfd for a child", address: None, source: e }
            })?;
            (pid, pidfd, ExitWatch::Direct)
        }
        Via::ForkServer => {
            let forked = forkserver::request(theirs)?;
            (forked.pid, forked.pidfd, ExitWatch::Server(forked.status))
        }
    };

    let len = (boot.len() as u32).to_le_bytes();
    match frame::send_frame(ours.as_fd(), &[&len, &boot, &encoded.bytes], &fds) {
        // A child that died before reading its bootstrap: its join says how.
        Ok(()) | Err(Error::Disconnected) => {}
        Err(e) => {
            abandon(pidfd, &exit);
            return Err(e);
        }
    }
    note_pending_boot(&ours, &pidfd);
    Ok(Started { pid, pidfd, channel: ours, exit, loans: ForkLoans::default() })
}

/// Children that may not have read their bootstrap yet: a copy of our end
/// of each one's socket, and its pidfd. A child checks, as it starts, that
/// its bootstrap comes from its parent running the same executable, which
/// it cannot once the parent has ended: so a process does not end before
/// its children have read theirs (see [`wait_for_pending_boots`]).
static PENDING_BOOTS: Mutex<Vec<(OwnedFd, OwnedFd)>> = Mutex::new(Vec::new());

/// Whether the child behind `sock` and `pidfd` is past its bootstrap (read
/// it, or ended).
fn booted(sock: &OwnedFd, pidfd: &OwnedFd) -> bool {
    os::unread_by_peer(sock.as_fd()).is_ok_and(|n| n == 0) || os::process_ended_fd(pidfd.as_fd())
}

fn note_pending_boot(sock: &OwnedFd, pidfd: &OwnedFd) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        extern "C" fn at_exit() {
            wait_for_pending_boots();
        }
        os::at_exit(at_exit);
    });
    let (Ok(sock), Ok(pidfd)) = (sock.try_clone(), pidfd.try_clone()) else { return };
    let mut pending = PENDING_BOOTS.lock().unwrap_or_else(PoisonError::into_inner);
    pending.retain(|(sock, pidfd)| !booted(sock, pidfd));
    pending.push((sock, pidfd));
}

/// Forgets the children past their bootstrap (called as a child ends, so
/// that their copies close).
pub(crate) fn forget_booted() {
    let Ok(mut pending) = PENDING_BOOTS.try_lock() else { return };
    pending.retain(|(sock, pidfd)| !booted(sock, pidfd));
}

/// How long an ending process waits for its children to read their
/// bootstraps.
const BOOT_WAIT: Duration = Duration::from_secs(5);

/// Waits (up to [`BOOT_WAIT`]) until every child started by exec or the fork
/// server has read its bootstrap: called as this process ends (`exit`, or a
/// child's target returning), so that a child started just before is not
/// left unable to check where its bootstrap came from.
pub(crate) fn wait_for_pending_boots() {
    // A forked copy of a lock another thread held stays held: then skip.
    let Ok(mut pending) = PENDING_BOOTS.try_lock() else { return };
    let deadline = Instant::now() + BOOT_WAIT;
    for (sock, pidfd) in pending.drain(..) {
        while !booted(&sock, &pidfd) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Stops a child we could not start properly, leaving no zombie.
pub(crate) fn abandon(pidfd: OwnedFd, exit: &ExitWatch) {
    let _ = os::send_signal(pidfd.as_fd(), Signal::Kill);
    if let ExitWatch::Direct = exit {
        reaper::adopt(pidfd);
    }
}
