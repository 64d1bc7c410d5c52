//! Copies in and out of shared memory that other threads may access at the
//! same time: through relaxed atomic loads and stores (plain moves on the
//! hardware), so that concurrent access is a race on values, never undefined
//! behaviour.
#![allow(unsafe_code)] // raw pointers into the mapping: see SAFETY comments

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// Copies `out.len()` bytes from shared memory at `src` into `out`.
///
/// # Safety
///
/// `src..src + out.len()` must lie in a live shared mapping.
pub(crate) unsafe fn copy_out(src: *const u8, out: &mut [u8]) {
    let mut i = 0;
    while i < out.len() {
        let p = src.wrapping_add(i);
        if p.align_offset(8) == 0 && out.len() - i >= 8 {
            // SAFETY: in the mapping (caller), aligned (checked); atomics may
            // alias memory that other processes and threads change.
            let word = unsafe { AtomicU64::from_ptr(p.cast_mut().cast()) }.load(Ordering::Relaxed);
            out[i..i + 8].copy_from_slice(&word.to_ne_bytes());
            i += 8;
        } else {
            // SAFETY: as above, for one byte.
            out[i] = unsafe { AtomicU8::from_ptr(p.cast_mut()) }.load(Ordering::Relaxed);
            i += 1;
        }
    }
}

/// Copies `data` into shared memory at `dst`.
///
/// # Safety
///
/// `dst..dst + data.len()` must lie in a live shared mapping.
pub(crate) unsafe fn copy_in(dst: *mut u8, data: &[u8]) {
    let mut i = 0;
    while i < data.len() {
        let p = dst.wrapping_add(i);
        if p.align_offset(8) == 0 && data.len() - i >= 8 {
            let mut word = [0u8; 8];
            word.copy_from_slice(&data[i..i + 8]);
            // SAFETY: as in `copy_out`.
            unsafe { AtomicU64::from_ptr(p.cast()) }
                .store(u64::from_ne_bytes(word), Ordering::Relaxed);
            i += 8;
        } else {
            // SAFETY: as in `copy_out`, for one byte.
            unsafe { AtomicU8::from_ptr(p) }.store(data[i], Ordering::Relaxed);
            i += 1;
        }
    }
}
