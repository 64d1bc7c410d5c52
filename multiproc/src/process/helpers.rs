//! multiproc's own helper threads (the reaper, a daemon's parent watcher).
//!
//! They hold no lock across a fork (`fork::start` takes the reaper's), so the
//! closure form of fork does not count them as threads that make forking
//! hazardous. Each one registers its thread id before `spawn_helper` returns.

use std::sync::{Mutex, PoisonError};

use crate::os;

#[derive(Debug)]
struct Registry {
    owner: u32,
    tids: Vec<u32>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { owner: 0, tids: Vec::new() });

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let me = os::getpid();
    if registry.owner != me {
        // A forked copy: the helper threads did not come along.
        *registry = Registry { owner: me, tids: Vec::new() };
    }
    registry
}

/// Holds the registry's lock across a fork (see `fork::start`).
pub(crate) fn lock_for_fork() -> impl Sized {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts helper thread `name` running `f`, and returns once it is
/// registered.
pub(crate) fn spawn_helper(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        let tid = os::current_tid();
        registry().tids.push(tid);
        let _ = tx.send(());
        f();
        registry().tids.retain(|&t| t != tid);
    })?;
    rx.recv().map_err(|_| std::io::Error::other("helper thread ended before it started"))
}

/// The number of threads in this process that are not multiproc helpers.
pub(crate) fn foreign_thread_count() -> std::io::Result<usize> {
    let tids = os::thread_ids()?;
    let registry = registry();
    Ok(tids.iter().filter(|tid| !registry.tids.contains(tid)).count())
}
