//! Parent side of the spawn and fork-server start methods: both give the child
//! a private socket and then send it the same bootstrap message.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

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
    Ok(Started { pid, pidfd, channel: ours, exit, loans: ForkLoans::default() })
}

/// Stops a child we could not start properly, leaving no zombie.
pub(crate) fn abandon(pidfd: OwnedFd, exit: &ExitWatch) {
    let _ = os::send_signal(pidfd.as_fd(), Signal::Kill);
    if let ExitWatch::Direct = exit {
        reaper::adopt(pidfd);
    }
}
