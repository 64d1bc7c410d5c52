//! Waiting for readability on several descriptors with a deadline.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Instant;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;

/// Waits until at least one of `fds` is readable or hung up, or `deadline` passes.
///
/// Returns `None` on timeout, else one flag per descriptor telling which are
/// ready. Interrupted waits are resumed with the time that is left.
pub(crate) fn wait_readable(
    fds: &[BorrowedFd<'_>],
    deadline: Option<Instant>,
) -> io::Result<Option<Vec<bool>>> {
    let fds: Vec<(BorrowedFd<'_>, bool)> = fds.iter().map(|fd| (*fd, false)).collect();
    wait_fds(&fds, deadline)
}

/// Waits until at least one of `fds` is readable (writable, for those
/// paired with `true`), hung up or in error, or `deadline` passes; as
/// [`wait_readable`].
pub(crate) fn wait_fds(
    fds: &[(BorrowedFd<'_>, bool)],
    deadline: Option<Instant>,
) -> io::Result<Option<Vec<bool>>> {
    let mut pollfds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|(fd, write)| {
            PollFd::from_borrowed_fd(*fd, if *write { PollFlags::OUT } else { PollFlags::IN })
        })
        .collect();
    loop {
        let timeout = match deadline {
            None => None,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                Some(Timespec {
                    tv_sec: left.as_secs().try_into().unwrap_or(i64::MAX),
                    tv_nsec: left.subsec_nanos().into(),
                })
            }
        };
        match poll(&mut pollfds, timeout.as_ref()) {
            Ok(0) => return Ok(None),
            Ok(_) => {
                return Ok(Some(pollfds.iter().map(|p| !p.revents().is_empty()).collect()));
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether the peer of socket `fd` has closed or shut down its end.
pub(crate) fn peer_hung_up(fd: BorrowedFd<'_>) -> bool {
    let mut pollfd = [PollFd::from_borrowed_fd(fd, PollFlags::RDHUP)];
    let zero = Timespec { tv_sec: 0, tv_nsec: 0 };
    matches!(poll(&mut pollfd, Some(&zero)), Ok(n) if n > 0)
        && pollfd[0].revents().intersects(PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR)
}
