//! The thin, safe operating-system layer.
//!
//! Every system call multiproc makes goes through this module, so that another
//! Unix can be added later by writing one more `imp` without touching the
//! components above. File descriptors are `OwnedFd`/`BorrowedFd`, never bare
//! integers, except at the one place where a child adopts the descriptor its
//! parent handed it across `exec`.

#[cfg(target_os = "linux")]
#[path = "linux/mod.rs"]
mod imp;

#[cfg(not(target_os = "linux"))]
compile_error!("multiproc supports Linux only for now");

pub(crate) use imp::*;
