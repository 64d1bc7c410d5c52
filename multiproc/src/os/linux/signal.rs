//! `SIGTERM` and `SIGINT` turned into a readable descriptor (a self-pipe),
//! for a server loop that polls its sockets and wants to stop cleanly.
//!
//! The handler only writes one byte (the signal's number) to a pipe: no
//! lock, no allocation, nothing else that is not async-signal-safe. The pipe
//! is made once per process and never closed, so a handler still running on
//! another thread while the handlers are being restored never writes into a
//! descriptor number that was closed and reused.
#![allow(unsafe_code)] // sigaction and the handler's write: see the SAFETY comments

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The signals that stop a server.
const STOP_SIGNALS: [libc::c_int; 2] = [libc::SIGTERM, libc::SIGINT];

/// The self-pipe: (read end, write end), made on first use.
static PIPE: OnceLock<(OwnedFd, OwnedFd)> = OnceLock::new();
/// The write end's number, for the handler (which must not touch `PIPE`'s
/// lazy initialisation).
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);
/// Whether a [`StopSignals`] exists (there is one self-pipe).
static INSTALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(signal: libc::c_int) {
    // SAFETY: `__errno_location` gives this thread's errno; saving and
    // restoring it keeps the interrupted code's errno intact. `write` is
    // async-signal-safe; `fd` is the never-closed pipe's write end (set
    // before the handler was installed), non-blocking, so a full pipe (a
    // stop is already pending) drops the byte instead of blocking.
    unsafe {
        let errno = *libc::__errno_location();
        let fd = WRITE_FD.load(Ordering::Relaxed);
        let byte = u8::try_from(signal).unwrap_or(u8::MAX);
        if fd >= 0 {
            libc::write(fd, std::ptr::from_ref(&byte).cast(), 1);
        }
        *libc::__errno_location() = errno;
    }
}

/// While it lives, `SIGTERM` and `SIGINT` make [`fd`](Self::fd) readable
/// instead of ending the process; dropping it restores the previous
/// dispositions.
pub(crate) struct StopSignals {
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

impl std::fmt::Debug for StopSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopSignals").finish_non_exhaustive()
    }
}

impl StopSignals {
    /// Installs the handlers. Fails with `AlreadyExists` if another
    /// `StopSignals` lives in this process.
    pub(crate) fn install() -> io::Result<Self> {
        if INSTALLED.swap(true, Ordering::AcqRel) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "another server in this process already watches SIGTERM and SIGINT",
            ));
        }
        let pipe = match PIPE.get() {
            Some(pipe) => pipe,
            None => {
                let flags = rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK;
                match rustix::pipe::pipe_with(flags) {
                    Ok(pair) => PIPE.get_or_init(|| pair),
                    Err(e) => {
                        INSTALLED.store(false, Ordering::Release);
                        return Err(e.into());
                    }
                }
            }
        };
        WRITE_FD.store(pipe.1.as_raw_fd(), Ordering::Release);
        let mut stop = Self { previous: Vec::new() };
        stop.drain();
        for signal in STOP_SIGNALS {
            // SAFETY: a zeroed `sigaction` is a valid empty one; the handler
            // is an `extern "C" fn(c_int)` that does only async-signal-safe
            // work; `previous` receives the old action, restored on drop.
            let result = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_stop_signal as extern "C" fn(libc::c_int) as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut previous: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, &action, &mut previous) == 0 {
                    Ok(previous)
                } else {
                    Err(io::Error::last_os_error())
                }
            };
            // On failure, `stop`'s drop restores what was installed so far.
            stop.previous.push((signal, result?));
        }
        Ok(stop)
    }

    /// Readable once a stop signal arrived.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        PIPE.get().map(|(read, _)| read.as_fd()).expect("installed")
    }

    /// The stop signal that arrived (the first of them), if any.
    pub(crate) fn take(&self) -> Option<i32> {
        let mut buf = [0u8; 16];
        match PIPE.get().map(|(read, _)| rustix::io::read(read, &mut buf)) {
            Some(Ok(n)) if n > 0 => Some(i32::from(buf[0])),
            _ => None,
        }
    }

    fn drain(&mut self) {
        while self.take().is_some() {}
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        for (signal, previous) in self.previous.drain(..) {
            // SAFETY: `previous` is the action `sigaction` gave back for
            // this signal when the handler was installed.
            unsafe {
                libc::sigaction(signal, &previous, std::ptr::null_mut());
            }
        }
        self.drain();
        INSTALLED.store(false, Ordering::Release);
    }
}
