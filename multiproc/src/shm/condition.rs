//! The waiting half of a condition variable: notification tokens and a
//! sequence number to sleep on.
//!
//! The lock is separate (a `RawLock` or `RawRLock` in its own segment).
//! A waiter registers while holding the lock (one more *waiting*), releases
//! the lock and sleeps. `notify(n)` (lock held) turns up to `n` waiting
//! registrations into *tokens*, bumps the sequence and wakes that many
//! sleepers. A waiter reports a notification only if it takes a token, so
//! `notify(n)` lets at most `n` waiters report one (Python's semantics);
//! the others sleep on until their own deadline. A waiter takes tokens only
//! from a notify that came after it registered (the sequence moved since),
//! so a waiter that arrives late never takes a notification meant for those
//! already waiting.
//!
//! `waiting` and `tokens` share one word, so a waiter that gives up (at its
//! deadline) either takes a token that is there for it or removes its
//! registration, atomically: every registered waiter is always either
//! waiting or covered by a token.
//!
//! A waiter killed while it waits leaves its registration (or its token)
//! behind: a later notify may spend a token on it, or a later waiter take
//! its token, so after such a death one notify can wake one waiter fewer
//! or more than asked. (Counting exactly across deaths would need a slot
//! per waiter with its owner, checked for liveness.)
#![allow(unsafe_code)] // `InShm`: see its `# Safety`

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use super::park;
use super::segment::InShm;

/// One registered waiter, in the high half of `counts`.
const ONE_WAITING: u64 = 1 << 32;
/// One notification token, in the low half of `counts`.
const ONE_TOKEN: u64 = 1;

/// A condition variable's sequence and waiter accounting.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RawCondition {
    /// Bumped by every notify that hands out tokens; sleepers wait on it.
    seq: AtomicU32,
    _pad: u32,
    /// Waiters not yet notified (high 32 bits) and tokens not yet taken
    /// (low 32 bits).
    counts: AtomicU64,
}

// SAFETY: atomics (and padding) only, `#[repr(C)]`, no pointer.
unsafe impl InShm for RawCondition {}

fn waiting(counts: u64) -> u64 {
    counts >> 32
}

fn tokens(counts: u64) -> u64 {
    counts & u64::from(u32::MAX)
}

/// A waiter's registration, from [`RawCondition::prepare`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    /// The sequence when the waiter registered.
    seq: u32,
}

impl RawCondition {
    /// Registers a waiter; call with the lock held.
    pub(crate) fn prepare(&self) -> Ticket {
        // Saturate rather than wrap into the token half (the word is
        // shared and may hold anything).
        let _ = self.counts.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
            (waiting(c) < u64::from(u32::MAX)).then(|| c + ONE_WAITING)
        });
        Ticket { seq: self.seq.load(Ordering::SeqCst) }
    }

    /// Takes a token if one is there for this waiter (a notify came after
    /// it registered); with `leaving`, otherwise removes the registration.
    /// Returns whether it took a token.
    fn take(&self, ticket: Ticket, leaving: bool) -> Option<bool> {
        let mut counts = self.counts.load(Ordering::SeqCst);
        loop {
            let eligible = self.seq.load(Ordering::SeqCst) != ticket.seq;
            let (new, notified) = if eligible && tokens(counts) > 0 {
                (counts - ONE_TOKEN, true)
            } else if !leaving {
                return None;
            } else if waiting(counts) > 0 {
                (counts - ONE_WAITING, false)
            } else if tokens(counts) > 0 {
                // Only if the word was tampered with: leave without
                // reporting a notification that was not ours.
                (counts - ONE_TOKEN, false)
            } else {
                return Some(false);
            };
            match self.counts.compare_exchange(counts, new, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Some(notified),
                Err(now) => counts = now,
            }
        }
    }

    /// Sleeps (with the lock released) until notified or `deadline`;
    /// `false` if the deadline passed first. Unregisters the waiter.
    pub(crate) fn sleep(&self, ticket: Ticket, deadline: Option<Instant>) -> bool {
        loop {
            // The sequence is read before the tokens: a notify after this
            // read changes it, so the sleep below returns at once.
            let seq = self.seq.load(Ordering::SeqCst);
            if let Some(notified) = self.take(ticket, false) {
                return notified;
            }
            let Some(timeout) = park::time_left(deadline) else {
                return self.take(ticket, true).unwrap_or(false);
            };
            park::wait(&self.seq, seq, timeout);
        }
    }

    /// Takes a token if one came for `ticket`'s waiter (without waiting):
    /// `Some(true)` if it did.
    pub(crate) fn try_take(&self, ticket: Ticket) -> Option<bool> {
        self.take(ticket, false)
    }

    /// Unregisters `ticket`'s waiter, which stops waiting (taking a token
    /// that came for it, if one did: it is not passed on).
    pub(crate) fn leave(&self, ticket: Ticket) {
        self.take(ticket, true);
    }

    /// The word bumped by every notification (waiters sleep on it; read it
    /// before [`try_take`](Self::try_take)).
    pub(crate) fn seq_word(&self) -> &AtomicU32 {
        &self.seq
    }

    /// Wakes up to `n` waiters; call with the lock held. No system call if
    /// nobody waits.
    pub(crate) fn notify(&self, n: u32) {
        let mut granted = 0;
        let _ = self.counts.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
            let room = u64::from(u32::MAX) - tokens(c);
            granted = waiting(c).min(u64::from(n)).min(room);
            Some(c - granted * ONE_WAITING + granted * ONE_TOKEN)
        });
        if granted > 0 {
            self.seq.fetch_add(1, Ordering::SeqCst);
            park::wake(&self.seq, u32::try_from(granted).unwrap_or(u32::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_registered_after_a_notify_does_not_take_its_token() {
        let cond = RawCondition::default();
        let early = cond.prepare();
        cond.notify(1);
        let late = cond.prepare();
        assert!(!cond.sleep(late, Some(Instant::now())), "the late waiter was not notified");
        assert!(cond.sleep(early, Some(Instant::now())), "the early waiter was");
        assert_eq!(cond.counts.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn notify_hands_out_no_more_tokens_than_waiters() {
        let cond = RawCondition::default();
        cond.notify(5);
        let a = cond.prepare();
        let b = cond.prepare();
        cond.notify(u32::MAX);
        assert_eq!(cond.counts.load(Ordering::SeqCst), 2 * ONE_TOKEN);
        assert!(cond.sleep(a, None));
        assert!(cond.sleep(b, None));
        assert_eq!(cond.counts.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_tampered_word_never_panics_or_reports_a_stranger_notification() {
        let cond = RawCondition::default();
        cond.counts.store(u64::MAX, Ordering::SeqCst);
        let t = cond.prepare();
        cond.notify(u32::MAX);
        cond.counts.store(5 * ONE_TOKEN, Ordering::SeqCst);
        let late = Ticket { seq: cond.seq.load(Ordering::SeqCst) };
        assert!(!cond.sleep(late, Some(Instant::now())));
        let _ = cond.sleep(t, Some(Instant::now()));
    }
}
