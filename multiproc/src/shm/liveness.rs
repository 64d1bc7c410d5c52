//! A word in shared memory that tells, without a system call, whether a
//! process still lives.
//!
//! The process holds a robust, process-shared pthread mutex for its whole
//! life. However the process ends (exit, crash, `SIGKILL`), the kernel walks
//! its threads' robust-futex lists and marks the mutex's futex word "owner
//! died", clearing the owner's thread id; anyone who maps the word sees it
//! with one load. (Our own [`RawLock`](super::lock::RawLock) cannot do this:
//! the C library owns each thread's one robust list.)
#![allow(unsafe_code)] // the pthread mutex: see the SAFETY comments

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use super::Kind;
use super::handle::segment_handle_serde;
use super::segment::{InShm, Segment, Shape};
use crate::{Error, Result};

/// `FUTEX_OWNER_DIED` and `FUTEX_TID_MASK` of the kernel's robust futexes.
const OWNER_DIED: i32 = 0x4000_0000;
const TID_MASK: i32 = 0x3fff_ffff;

#[repr(C)]
struct RawLiveness {
    mutex: UnsafeCell<libc::pthread_mutex_t>,
}

// SAFETY: `#[repr(C)]` and no pointer; the mutex is written only by the
// pthread functions (made for a process-shared mutex in shared memory) and
// by the kernel, and otherwise only its futex word is read, atomically. Any
// bit pattern is a valid `pthread_mutex_t` to read.
unsafe impl Sync for RawLiveness {}
// SAFETY: as above.
unsafe impl InShm for RawLiveness {}

/// A handle on a liveness word.
#[derive(Debug, Clone)]
pub(crate) struct Liveness {
    seg: Arc<Segment>,
}

segment_handle_serde!(Liveness, Kind::Liveness, size_of::<RawLiveness>());

impl Liveness {
    /// A new word, held by the calling thread, which must live as long as
    /// its process: the word reads "dead" once either ends.
    pub(crate) fn hold_for_life() -> Result<Self> {
        let seg = Segment::create(Kind::Liveness, size_of::<RawLiveness>(), Shape::default())?;
        let mutex = seg.at::<RawLiveness>(0).mutex.get();
        let failed = |rc: i32| Error::Os {
            op: "hold a liveness mutex",
            address: None,
            source: std::io::Error::from_raw_os_error(rc),
        };
        // SAFETY: `mutex` points into a fresh, zeroed, mapped segment that
        // nobody else has yet; the attribute object lives on our stack and is
        // destroyed after use.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            let mut rc = libc::pthread_mutexattr_init(&mut attr);
            if rc == 0 {
                rc = libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
            }
            if rc == 0 {
                rc = libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
            }
            if rc == 0 {
                rc = libc::pthread_mutex_init(mutex, &attr);
            }
            libc::pthread_mutexattr_destroy(&mut attr);
            if rc == 0 {
                rc = libc::pthread_mutex_lock(mutex);
            }
            if rc != 0 {
                return Err(failed(rc));
            }
        }
        Ok(Self { seg })
    }

    /// Whether the holder still lives: `None` where the C library's mutex
    /// layout is not known (then ask another way).
    pub(crate) fn alive(&self) -> Option<bool> {
        let word = self.word()?.load(Ordering::Acquire);
        Some(word & TID_MASK != 0 && word & OWNER_DIED == 0)
    }

    #[cfg(target_env = "gnu")]
    fn word(&self) -> Option<&AtomicI32> {
        let mutex = self.seg.at::<RawLiveness>(0).mutex.get();
        // SAFETY: glibc's `pthread_mutex_t` begins with its futex word
        // (`__data.__lock`, an `int`) on every Linux architecture; the
        // segment keeps it mapped, aligned, for as long as `self` lives.
        Some(unsafe { AtomicI32::from_ptr(mutex.cast::<i32>()) })
    }

    #[cfg(not(target_env = "gnu"))]
    fn word(&self) -> Option<&AtomicI32> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_reads_dead_once_its_holder_ends() {
        let word = std::thread::spawn(|| {
            let word = Liveness::hold_for_life().unwrap();
            assert_eq!(word.alive(), Some(true));
            word
        })
        .join()
        .unwrap();
        // The thread that held it has ended.
        assert_eq!(word.alive(), Some(false));
    }
}
