//! `Atomic`: the types with atomic operations in shared memory: integers,
//! and floats (whose additions are compare-and-swap loops).
#![allow(unsafe_code)] // the `from_ptr` calls: see the SAFETY comments

use std::sync::atomic::Ordering;

mod sealed {
    pub trait Sealed {}
}

/// Types whose [`RawValue`](crate::RawValue) and
/// [`RawArray`](crate::RawArray) offer atomic operations, and whose
/// [`Value`](crate::Value) and [`Array`](crate::Array) offer `fetch_add`:
/// `i8` to `i64`, `u8` to `u64`, `isize`, `usize` (additions wrap), and `f32`,
/// `f64` (additions are compare-and-swap loops on the bits; a
/// `compare_exchange` compares bits, so `-0.0` is not `0.0` and a NaN
/// matches itself). Sealed. `AtomicInt` is its former name.
///
/// # Examples
///
/// ```
/// use multiproc::{Atomic, RawValue};
///
/// fn total<T: Atomic>(v: &RawValue<T>, parts: &[T]) -> T {
///     for &p in parts {
///         v.fetch_add(p);
///     }
///     v.load()
/// }
///
/// assert_eq!(total(&RawValue::new(0.0f64)?, &[0.5, 0.25]), 0.75);
/// assert_eq!(total(&RawValue::new(0u32)?, &[2, 3]), 5);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub trait Atomic: bytemuck::Pod + sealed::Sealed {
    #[doc(hidden)]
    /// `self + other` as `atomic_fetch_add` adds (wrapping for integers).
    fn plain_add(self, other: Self) -> Self;
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

        impl Atomic for $int {
            fn plain_add(self, other: Self) -> Self {
                self.wrapping_add(other)
            }
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

macro_rules! atomic_float {
    ($($float:ty => $atomic:ty),* $(,)?) => {$(
        impl sealed::Sealed for $float {}

        impl Atomic for $float {
            fn plain_add(self, other: Self) -> Self {
                self + other
            }
            unsafe fn atomic_load(ptr: *mut Self) -> Self {
                // SAFETY: forwarded from the caller's contract; the float and
                // its bits have the same size and alignment.
                let bits = unsafe { <$atomic>::from_ptr(ptr.cast()) }.load(Ordering::SeqCst);
                <$float>::from_bits(bits)
            }
            unsafe fn atomic_store(ptr: *mut Self, value: Self) {
                // SAFETY: as in `atomic_load`.
                unsafe { <$atomic>::from_ptr(ptr.cast()) }.store(value.to_bits(), Ordering::SeqCst)
            }
            unsafe fn atomic_swap(ptr: *mut Self, value: Self) -> Self {
                // SAFETY: as in `atomic_load`.
                let old = unsafe { <$atomic>::from_ptr(ptr.cast()) }.swap(value.to_bits(), Ordering::SeqCst);
                <$float>::from_bits(old)
            }
            unsafe fn atomic_fetch_add(ptr: *mut Self, value: Self) -> Self {
                // SAFETY: as in `atomic_load`.
                let cell = unsafe { <$atomic>::from_ptr(ptr.cast()) };
                // A compare-and-swap loop: retried only when another
                // process or thread changed the value in between.
                let old = cell.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |bits| {
                    Some((<$float>::from_bits(bits) + value).to_bits())
                });
                <$float>::from_bits(old.unwrap_or_else(|bits| bits))
            }
            unsafe fn atomic_fetch_sub(ptr: *mut Self, value: Self) -> Self {
                // SAFETY: forwarded from the caller's contract.
                unsafe { Self::atomic_fetch_add(ptr, -value) }
            }
            unsafe fn atomic_compare_exchange(ptr: *mut Self, current: Self, new: Self) -> Result<Self, Self> {
                // SAFETY: as in `atomic_load`.
                unsafe { <$atomic>::from_ptr(ptr.cast()) }
                    .compare_exchange(current.to_bits(), new.to_bits(), Ordering::SeqCst, Ordering::SeqCst)
                    .map(<$float>::from_bits)
                    .map_err(<$float>::from_bits)
            }
        }
    )*};
}

atomic_float! { f32 => AtomicU32, f64 => AtomicU64 }
