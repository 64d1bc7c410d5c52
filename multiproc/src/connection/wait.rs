//! `wait`: block until some connections have messages or some processes
//! have ended (Python's `multiprocessing.connection.wait`).

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use super::Connection;
use crate::shm::park::deadline_after;
use crate::{Error, Process, Result, os};

/// Something [`wait`] can wait for: a [`Connection`] (ready when a message
/// can be received or its peer is gone) or a [`Process`] (ready once it
/// ended).
pub trait Waitable {
    /// Whether it is ready now.
    fn is_ready(&self) -> bool;
    /// A descriptor that becomes readable when it may be ready, and whether
    /// readiness must also be polled (shared-memory pipes).
    fn source(&self) -> (BorrowedFd<'_>, bool);
}

impl<S, R> Waitable for Connection<S, R> {
    fn is_ready(&self) -> bool {
        self.ready()
    }

    fn source(&self) -> (BorrowedFd<'_>, bool) {
        self.wait_source()
    }
}

impl<R> Waitable for Process<R> {
    fn is_ready(&self) -> bool {
        !self.is_alive()
    }

    fn source(&self) -> (BorrowedFd<'_>, bool) {
        (self.as_fd(), false)
    }
}

/// Waits until at least one of `objects` is ready, or `timeout` passes
/// (`None`: no limit); returns the indices of those ready (empty on timeout).
///
/// # Errors
///
/// [`Error::Os`] if waiting fails.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use multiproc::connection::{Waitable, wait};
///
/// let (a, b) = multiproc::pipe::<u8>()?;
/// let (c, d) = multiproc::pipe::<u8>()?;
/// c.send(&1)?;
/// let ready = wait(&[&b as &dyn Waitable, &d], Some(Duration::from_secs(1)))?;
/// assert_eq!(ready, [1]);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Result<Vec<usize>> {
    let deadline = timeout.and_then(deadline_after);
    // Shared-memory pipes are asked again after a growing pause.
    let mut pause = Duration::from_micros(50);
    loop {
        let ready: Vec<usize> = (0..objects.len()).filter(|&i| objects[i].is_ready()).collect();
        if !ready.is_empty() {
            return Ok(ready);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(Vec::new());
        }
        let sources: Vec<(BorrowedFd<'_>, bool)> = objects.iter().map(|o| o.source()).collect();
        let fds: Vec<BorrowedFd<'_>> = sources.iter().map(|(fd, _)| *fd).collect();
        let until = if sources.iter().any(|(_, poll)| *poll) {
            let slice = deadline_after(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
            match (deadline, slice) {
                (Some(d), Some(s)) => Some(d.min(s)),
                (d, s) => d.or(s),
            }
        } else {
            deadline
        };
        os::wait_readable(&fds, until).map_err(Error::os("wait for connections"))?;
    }
}
