//! Capturing closures of fork pools: registered in this process under an
//! id, so that a worker forked afterwards (which has a copy of this
//! process's memory) finds them by that id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A registered closure, ready to run chunks of tasks.
pub(crate) type ChunkFn = Arc<dyn Fn(&[u8], u32, u32, &mut Vec<u8>, &AtomicU64) + Send + Sync>;

/// What a worker knows of the registered closures: those registered before
/// it was forked.
pub(crate) type Known = HashMap<u64, ChunkFn>;

static NEXT: AtomicU64 = AtomicU64::new(1);
static REGISTRY: Mutex<Option<Known>> = Mutex::new(None);

fn registry() -> std::sync::MutexGuard<'static, Option<Known>> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Registers `f`; its id names it in task messages.
pub(crate) fn register(f: ChunkFn) -> u64 {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    registry().get_or_insert_with(HashMap::new).insert(id, f);
    id
}

/// Forgets closure `id` (its job is gone: no task of it is left).
pub(crate) fn unregister(id: u64) {
    if let Some(known) = registry().as_mut() {
        known.remove(&id);
    }
}

/// A copy of the registry, for a worker about to be forked (taken before
/// the fork, so the child never touches the lock).
pub(crate) fn snapshot() -> Known {
    registry().clone().unwrap_or_default()
}
