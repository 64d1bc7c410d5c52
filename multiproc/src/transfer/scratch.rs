//! A per-thread buffer kept between messages, so that encoding and
//! reassembling large messages does not allocate (and fault in) fresh memory
//! for each one.

use std::cell::Cell;

thread_local! {
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The largest buffer kept between messages: a larger one is freed after use.
const KEEP: usize = 16 << 20;

/// Runs `f` with this thread's empty scratch buffer, keeping what it grew to
/// for the next call (up to [`KEEP`]). A nested call gets a fresh buffer.
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut buf = SCRATCH.with(Cell::take);
    buf.clear();
    let result = f(&mut buf);
    if buf.capacity() <= KEEP {
        buf.clear();
        SCRATCH.with(|s| {
            // Keep the larger of ours and one a nested call left.
            let other = s.take();
            s.set(if other.capacity() > buf.capacity() { other } else { buf });
        });
    }
    result
}

#[cfg(test)]
mod tests {
    use super::with_scratch;

    #[test]
    fn the_buffer_is_empty_each_time_and_kept_between_calls() {
        let capacity = with_scratch(|buf| {
            buf.extend_from_slice(&[1; 4096]);
            buf.capacity()
        });
        with_scratch(|buf| {
            assert!(buf.is_empty());
            assert_eq!(buf.capacity(), capacity);
            // Nested: a buffer of its own, not ours.
            with_scratch(|inner| {
                assert!(inner.is_empty());
                assert_eq!(inner.capacity(), 0);
            });
        });
    }

    #[test]
    fn a_huge_buffer_is_not_kept() {
        with_scratch(|buf| buf.reserve(super::KEEP + 1));
        with_scratch(|buf| assert!(buf.capacity() <= super::KEEP));
    }
}
