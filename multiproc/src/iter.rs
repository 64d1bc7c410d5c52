//! The one rule every receiving iterator follows (queues, connections).

use crate::{Error, Result};

/// One step of a receiving iterator: the item, or the end.
///
/// `ends` says which errors mean "no more items" (a closed queue, a gone
/// peer, an empty queue for a `try_iter`): they end the iterator without
/// being yielded. Any other error is yielded once, then the iterator ends,
/// so that a failure is never lost and never repeats for ever.
pub(crate) fn step<T>(
    done: &mut bool,
    next: impl FnOnce() -> Result<T>,
    ends: impl FnOnce(&Error) -> bool,
) -> Option<Result<T>> {
    if *done {
        return None;
    }
    match next() {
        Ok(item) => Some(Ok(item)),
        Err(e) => {
            *done = true;
            if ends(&e) { None } else { Some(Err(e)) }
        }
    }
}
