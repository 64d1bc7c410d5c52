//! Reaps children whose handles were dropped while they ran.
//!
//! Dropping a [`Process`](crate::Process) leaves the child running, as
//! dropping a thread's `JoinHandle` does. So that it does not linger as a
//! zombie once it ends, its pidfd goes to one reaper thread, which waits on
//! all such pidfds and exits when none is left (so an idle program has no
//! extra thread).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};

use crate::os::{self, Waker};

#[derive(Debug)]
struct State {
    owner: u32,
    pending: Vec<OwnedFd>,
    waker: Option<Arc<Waker>>,
    running: bool,
}

static STATE: Mutex<State> =
    Mutex::new(State { owner: 0, pending: Vec::new(), waker: None, running: false });

/// Holds the reaper's lock across a fork (see `fork::start`).
pub(crate) fn lock_for_fork() -> impl Sized {
    lock()
}

fn lock() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes sure the child behind `pidfd` (ours, unreaped) is reaped when it ends.
pub(crate) fn adopt(pidfd: OwnedFd) {
    let mut state = lock();
    let me = os::getpid();
    if state.owner != me {
        // We are a forked copy: those children are our parent's, and its
        // reaper thread did not come along.
        *state = State { owner: me, pending: Vec::new(), waker: None, running: false };
    }
    state.pending.push(pidfd);
    if state.running {
        if let Some(waker) = &state.waker {
            waker.wake();
        }
        return;
    }
    if state.waker.is_none() {
        state.waker = Waker::new().ok().map(Arc::new);
    }
    let Some(waker) = state.waker.clone() else { return };
    // If no thread can be started, the pidfds wait for the next adoption.
    // Registering the thread takes the helper registry's lock, which is
    // never taken while holding it: no lock-order problem with ours.
    let started = super::helpers::spawn_helper("multiproc-reaper", move || run(&waker));
    state.running = started.is_ok();
}

fn run(waker: &Waker) {
    let mut watched: Vec<OwnedFd> = Vec::new();
    let mut reaped;
    loop {
        {
            let mut state = lock();
            watched.append(&mut state.pending);
            let before = watched.len();
            watched.retain(|pidfd| matches!(os::try_reap(pidfd.as_fd()), Ok(None)));
            reaped = watched.len() < before;
            if watched.is_empty() {
                state.running = false;
            }
        }
        if reaped {
            // `active_children` lets go of them (and their descriptors).
            super::related::prune();
        }
        if watched.is_empty() {
            return;
        }
        let mut fds: Vec<BorrowedFd<'_>> = vec![waker.as_fd()];
        fds.extend(watched.iter().map(AsFd::as_fd));
        match os::wait_readable(&fds, None) {
            Ok(Some(ready)) if ready[0] => waker.drain(),
            Ok(_) => {}
            // Cannot wait (out of memory?): back off instead of spinning.
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}
