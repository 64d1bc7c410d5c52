//! `AtomicInt`: the integer types with atomic operations in shared memory.
#![allow(unsafe_code)] // the `from_ptr` calls: see the SAFETY comments

use std::sync::atomic::Ordering;

mod sealed {
    pub trait Sealed {}
}

/// Integer types whose [`RawValue`](crate::RawValue) and
/// [`RawArray`](crate::RawArray) offer atomic operations: `i8` to `i64`,
/// `u8` to `u64`, `isize`, `usize`. Sealed.
pub trait AtomicInt: bytemuck::Pod + sealed::Sealed {
    #[doc(hidden)]
    /// # Safety
    /// `ptr` is valid, aligned, and only accessed atomically while in use.
    unsafe fn atomic_load(ptr: *mut Self) -> Self;
    #[doc(hidden)]
    /// # Safety
    /// As `atomic_load`.
    unsafe fn atomic_store(ptr: *mut Self, value: Self);
    #[doc(hidden)]
    /// # Safety
    /// As `atomic_load`.
    unsafe fn atomic_swap(ptr: *mut Self, value: Self) -> Self;
    #[doc(hidden)]
    /// # Safety
    /// As `atomic_load`.
    unsafe fn atomic_fetch_add(ptr: *mut Self, value: Self) -> Self;
    #[doc(hidden)]
    /// # Safety
    /// As `atomic_load`.
    unsafe fn atomic_fetch_sub(ptr: *mut Self, value: Self) -> Self;
    #[doc(hidden)]
    /// # Safety
    /// As `atomic_load`.
    unsafe fn atomic_compare_exchange(
        ptr: *mut Self,
        current: Self,
        new: Self,
    ) -> Result<Self, Self>;
}

macro_rules! atomic_int {
    ($($int:ty => $atomic:ty),* $(,)?) => {$(
        impl sealed::Sealed for $int {}

        impl AtomicInt for $int {
            unsafe fn atomic_load(ptr: *mut Self) -> Self {
                // SAFETY: forwarded from the caller's contract.
                unsafe { <$atomic>::from_ptr(ptr) }.load(Ordering::SeqCst)
            }
            unsafe fn atomic_store(ptr: *mut Self, value: Self) {
                // SAFETY: forwarded from the caller's contract.
                unsafe { <$atomic>::from_ptr(ptr) }.store(value, Ordering::SeqCst)
            }
            unsafe fn atomic_swap(ptr: *mut Self, value: Self) -> Self {
                // SAFETY: forwarded from the caller's contract.
                unsafe { <$atomic>::from_ptr(ptr) }.swap(value, Ordering::SeqCst)
            }
            unsafe fn atomic_fetch_add(ptr: *mut Self, value: Self) -> Self {
                // SAFETY: forwarded from the caller's contract.
                unsafe { <$atomic>::from_ptr(ptr) }.fetch_add(value, Ordering::SeqCst)
            }
            unsafe fn atomic_fetch_sub(ptr: *mut Self, value: Self) -> Self {
                // SAFETY: forwarded from the caller's contract.
                unsafe { <$atomic>::from_ptr(ptr) }.fetch_sub(value, Ordering::SeqCst)
            }
            unsafe fn atomic_compare_exchange(ptr: *mut Self, current: Self, new: Self) -> Result<Self, Self> {
                // SAFETY: forwarded from the caller's contract.
                unsafe { <$atomic>::from_ptr(ptr) }.compare_exchange(current, new, Ordering::SeqCst, Ordering::SeqCst)
            }
        }
    )*};
}

use std::sync::atomic::{
    AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicU8, AtomicU16, AtomicU32,
    AtomicU64, AtomicUsize,
};

atomic_int! {
    i8 => AtomicI8, u8 => AtomicU8, i16 => AtomicI16, u16 => AtomicU16,
    i32 => AtomicI32, u32 => AtomicU32, i64 => AtomicI64, u64 => AtomicU64,
    isize => AtomicIsize, usize => AtomicUsize,
}
