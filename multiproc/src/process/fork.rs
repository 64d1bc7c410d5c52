//! Parent side of the fork start method.
#![allow(unsafe_code)] // fork: see the SAFETY comments

use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};

use serde::Serialize;

use super::child;
use super::current::{self, ChildInfo};
use super::handle::{ExitWatch, Started};
use super::{forkserver, helpers, reaper};
use crate::os::{self, Forked};
use crate::{Error, Result};

/// Forks; the child runs `body` and reports its outcome.
///
/// # Safety
///
/// As [`os::fork`]: if other threads exist, `body` must not touch state they
/// may have been holding or changing at the instant of the fork. Standard
/// output and error are flushed and held across the fork, so the child may
/// print.
/// `fresh_fds`: the child runs a function on arguments it decodes, and
/// drops the parent's connections it was not given (see
/// `os::ForkTracked`), as a spawned child never has them; a forked closure
/// keeps them all (it may have captured any).
pub(crate) unsafe fn start<R: Serialize>(
    info: ChildInfo,
    body: impl FnOnce() -> R,
    fresh_fds: bool,
) -> Result<Started> {
    // Now, in the parent: the child must not (see `panic_hook`).
    super::panic_hook::install();
    let (ours, theirs) = os::stream_pair().map_err(Error::os("create a socket pair"))?;
    let parent = if info.daemon {
        Some(os::own_pidfd().map_err(Error::os("open a pidfd for this process"))?)
    } else {
        None
    };
    // What this process holds of managers' objects: lent to the child
    // across the fork (see `manager::client::lock_for_fork`).
    let manager_holds = crate::manager::lock_for_fork();
    let forked = {
        // No other thread may hold a lock the child needs: take them all, in
        // the order every other path takes them (fork server, reaper, child
        // info, stdout, stderr), and release them on both sides.
        let server = forkserver::lock_for_fork();
        let reaper = reaper::lock_for_fork();
        let info_lock = current::lock_for_fork();
        let helpers_lock = helpers::lock_for_fork();
        let janitor_lock = crate::shared::janitor::lock_for_fork();
        let children_lock = super::related::lock_for_fork();
        let tracked = os::lock_tracked_fds_for_fork();
        let stdout = io::stdout();
        let mut out = stdout.lock();
        let _ = out.flush();
        let err = io::stderr().lock();
        // SAFETY: the caller upholds `os::fork`'s contract for `body`; we hold
        // the stdio locks so that no other thread holds them at the fork, and
        // the child touches nothing else of ours before `body` runs.
        let forked = unsafe { os::fork() };
        match forked {
            Ok(Forked::Child) if fresh_fds => tracked.drop_in_child(),
            _ => drop(tracked),
        }
        drop(err);
        drop(out);
        drop(children_lock);
        drop(janitor_lock);
        drop(helpers_lock);
        drop(info_lock);
        drop(reaper);
        drop(server);
        forked
    };
    match forked.map_err(Error::os("fork"))? {
        Forked::Child => {
            drop(ours);
            // Before `enter_child`, which takes the manager key registry
            // that `manager_holds` keeps locked.
            manager_holds.in_child();
            current::enter_child(info);
            if let Some(parent) = parent
                && let Err(message) = child::watch_parent(parent)
            {
                child::fail(&theirs, message);
            }
            child::finish(&theirs, panic::catch_unwind(AssertUnwindSafe(body)))
        }
        Forked::Parent(pid) => {
            let loans = manager_holds.in_parent();
            drop(theirs);
            let pidfd = os::pidfd_open(pid).map_err(|e| {
                os::kill_and_reap(pid);
                Error::Os { op: "open a pidfd for a child", address: None, source: e }
            })?;
            Ok(Started { pid, pidfd, channel: ours, exit: ExitWatch::Direct, loans })
        }
    }
}
