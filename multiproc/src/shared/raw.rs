//! `RawValue<T>` and `RawArray<T>`: shared data without a lock.
#![allow(unsafe_code)] // the atomic operations: see the SAFETY comments

use std::fmt;

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Atomic;
use super::cells::Cells;
use crate::Result;
use crate::shm::Kind;

/// One `T` in shared memory without a lock (Python's `RawValue`).
///
/// [`get`](RawValue::get)/[`set`](RawValue::set) copy the whole value; a
/// value wider than 8 bytes may be seen half-written if another process
/// writes it at the same time. Integer values have atomic operations, which
/// need no lock and make no system call.
///
/// # Examples
///
/// ```
/// use multiproc::{Process, RawValue};
///
/// fn count(hits: RawValue<u64>) {
///     for _ in 0..1000 {
///         hits.fetch_add(1);
///     }
/// }
///
/// let hits = RawValue::new(0u64)?;
/// let child = Process::spawn(count, hits.clone())?;
/// count(hits.clone());
/// child.join()?;
/// assert_eq!(hits.load(), 2000);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct RawValue<T> {
    cells: Cells<T>,
}

/// `T`s in shared memory without a lock (Python's `RawArray`).
///
/// # Examples
///
/// ```
/// let a = multiproc::RawArray::from_slice(&[1i32, 2, 3])?;
/// a.fetch_add(0, 10);
/// assert_eq!(a.to_vec(), [11, 2, 3]);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct RawArray<T> {
    pub(super) cells: Cells<T>,
}

impl<T> Clone for RawValue<T> {
    fn clone(&self) -> Self {
        Self { cells: self.cells.clone() }
    }
}

impl<T> Clone for RawArray<T> {
    fn clone(&self) -> Self {
        Self { cells: self.cells.clone() }
    }
}

impl<T: Pod> RawValue<T> {
    /// A shared value holding `value`.
    ///
    /// # Errors
    ///
    /// [`Error::Os`](crate::Error::Os) if the shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiproc::RawValue::new([1u8, 2])?;
    /// assert_eq!(v.get(), [1, 2]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new(value: T) -> Result<Self> {
        let cells = Cells::create(Kind::RawValue, 1, false)?;
        cells.write(0, value);
        Ok(Self { cells })
    }

    /// A copy of the value.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::RawValue::new(2.5f32)?.get(), 2.5);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn get(&self) -> T {
        self.cells.read(0)
    }

    /// Overwrites the value.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiproc::RawValue::new(0u16)?;
    /// v.set(7);
    /// assert_eq!(v.get(), 7);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn set(&self, value: T) {
        self.cells.write(0, value);
    }
}

impl<T: Atomic> RawValue<T> {
    /// Atomic read.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::RawValue::new(5i32)?.load(), 5);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn load(&self) -> T {
        // SAFETY: element 0 exists, is aligned and lives as long as `self`.
        unsafe { T::atomic_load(self.cells.ptr(0)) }
    }

    /// Atomic write.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiproc::RawValue::new(5i32)?;
    /// v.store(6);
    /// assert_eq!(v.load(), 6);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn store(&self, value: T) {
        // SAFETY: as for `load`.
        unsafe { T::atomic_store(self.cells.ptr(0), value) }
    }

    /// Atomic swap; returns the previous value.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiproc::RawValue::new(5i32)?;
    /// assert_eq!(v.swap(1), 5);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn swap(&self, value: T) -> T {
        // SAFETY: as for `load`.
        unsafe { T::atomic_swap(self.cells.ptr(0), value) }
    }

    /// Atomic addition (wrapping for integers, a compare-and-swap loop for
    /// floats); returns the previous value.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiproc::RawValue::new(5u64)?;
    /// assert_eq!(v.fetch_add(2), 5);
    /// assert_eq!(v.load(), 7);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn fetch_add(&self, value: T) -> T {
        // SAFETY: as for `load`.
        unsafe { T::atomic_fetch_add(self.cells.ptr(0), value) }
    }

    /// Atomic subtraction (as [`fetch_add`](Self::fetch_add)); returns the
    /// previous value.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiproc::RawValue::new(5u64)?;
    /// assert_eq!(v.fetch_sub(2), 5);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn fetch_sub(&self, value: T) -> T {
        // SAFETY: as for `load`.
        unsafe { T::atomic_fetch_sub(self.cells.ptr(0), value) }
    }

    /// Stores `new` if the value is `current`; returns the previous value,
    /// `Ok` if it was replaced.
    ///
    /// # Errors
    ///
    /// `Err(actual)` if the value was not `current`.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiproc::RawValue::new(1u32)?;
    /// assert_eq!(v.compare_exchange(1, 2), Ok(1));
    /// assert_eq!(v.compare_exchange(1, 3), Err(2));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        // SAFETY: as for `load`.
        unsafe { T::atomic_compare_exchange(self.cells.ptr(0), current, new) }
    }
}

impl<T: Pod> RawArray<T> {
    /// `len` zeroed elements.
    ///
    /// # Errors
    ///
    /// [`Error::Os`](crate::Error::Os) if the shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::RawArray::<u8>::new(2)?.to_vec(), [0, 0]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new(len: usize) -> Result<Self> {
        Ok(Self { cells: Cells::create(Kind::RawArray, len, false)? })
    }

    /// An array holding a copy of `values`.
    ///
    /// # Errors
    ///
    /// As [`new`](RawArray::new).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::RawArray::from_slice(&[4u8])?.get(0), Some(4));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn from_slice(values: &[T]) -> Result<Self> {
        let array = Self::new(values.len())?;
        for (index, value) in values.iter().enumerate() {
            array.cells.write(index, *value);
        }
        Ok(array)
    }

    /// An array holding the items of `iter`.
    ///
    /// # Errors
    ///
    /// As [`new`](RawArray::new).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::RawArray::from_iter(0..3u8)?.to_vec(), [0, 1, 2]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[allow(clippy::should_implement_trait)] // fallible, so not `FromIterator`
    pub fn from_iter(iter: impl IntoIterator<Item = T>) -> Result<Self> {
        Self::from_slice(&iter.into_iter().collect::<Vec<T>>())
    }

    /// The number of elements.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::RawArray::<u8>::new(2)?.len(), 2);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether the array has no element.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(multiproc::RawArray::<u8>::new(0)?.is_empty());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of element `index`, or `None` past the end.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::RawArray::<u8>::new(1)?.get(3), None);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn get(&self, index: usize) -> Option<T> {
        (index < self.len()).then(|| self.cells.read(index))
    }

    /// Overwrites element `index`.
    ///
    /// # Panics
    ///
    /// If `index >= len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::RawArray::<u8>::new(1)?;
    /// a.set(0, 3);
    /// assert_eq!(a.get(0), Some(3));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn set(&self, index: usize, value: T) {
        self.cells.write(index, value);
    }

    /// A copy of every element.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::RawArray::from_slice(&[1, 2])?.to_vec(), [1, 2]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        let mut out = vec![T::zeroed(); self.len()];
        // The whole array: always in bounds.
        let _ = self.cells.read_range(0, &mut out);
        out
    }

    /// Copies `out.len()` elements from index `offset` into `out`, without
    /// copying the rest of the array (Python's `arr[offset:offset + n]`).
    /// No lock is taken: an element another process writes at the same
    /// time may be seen half-written (never undefined behaviour).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`](crate::Error::OutOfBounds) (in bytes) if they
    /// are not all in the array.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::RawArray::from_iter(0..10)?;
    /// let mut out = [0; 3];
    /// a.read_into(4, &mut out)?;
    /// assert_eq!(out, [4, 5, 6]);
    /// assert!(a.read_into(8, &mut out).is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn read_into(&self, offset: usize, out: &mut [T]) -> Result<()> {
        self.cells.read_range(offset, out)
    }

    /// Copies `data` to the elements from index `offset` (Python's
    /// `arr[offset:offset + n] = data`), without a lock.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`](crate::Error::OutOfBounds) (in bytes) if they
    /// do not all fit; nothing is written then.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::RawArray::<u8>::new(4)?;
    /// a.write_from(1, &[7, 8])?;
    /// assert_eq!(a.to_vec(), [0, 7, 8, 0]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn write_from(&self, offset: usize, data: &[T]) -> Result<()> {
        self.cells.write_range(offset, data)
    }
}

impl<T: Atomic> RawArray<T> {
    /// Atomic read of element `index`.
    ///
    /// # Panics
    ///
    /// If `index >= len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::RawArray::from_slice(&[9u32])?.load(0), 9);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn load(&self, index: usize) -> T {
        // SAFETY: `ptr` checks the index; the element is aligned and lives
        // as long as `self`.
        unsafe { T::atomic_load(self.cells.ptr(index)) }
    }

    /// Atomic write of element `index`.
    ///
    /// # Panics
    ///
    /// If `index >= len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::RawArray::<u32>::new(1)?;
    /// a.store(0, 4);
    /// assert_eq!(a.load(0), 4);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn store(&self, index: usize, value: T) {
        // SAFETY: as for `load`.
        unsafe { T::atomic_store(self.cells.ptr(index), value) }
    }

    /// Atomic addition on element `index` (wrapping for integers, a
    /// compare-and-swap loop for floats); returns its previous value.
    ///
    /// # Panics
    ///
    /// If `index >= len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::RawArray::<u32>::new(1)?;
    /// assert_eq!(a.fetch_add(0, 2), 0);
    /// let sums = multiproc::RawArray::<f64>::new(2)?;
    /// sums.fetch_add(1, 0.5);
    /// sums.fetch_add(1, 0.25);
    /// assert_eq!(sums.load(1), 0.75);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn fetch_add(&self, index: usize, value: T) -> T {
        // SAFETY: as for `load`.
        unsafe { T::atomic_fetch_add(self.cells.ptr(index), value) }
    }

    /// Atomic subtraction on element `index` (as
    /// [`fetch_add`](Self::fetch_add)); returns its previous
    /// value.
    ///
    /// # Panics
    ///
    /// If `index >= len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::RawArray::from_slice(&[5i8])?;
    /// assert_eq!(a.fetch_sub(0, 2), 5);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn fetch_sub(&self, index: usize, value: T) -> T {
        // SAFETY: as for `load`.
        unsafe { T::atomic_fetch_sub(self.cells.ptr(index), value) }
    }

    /// Compare-and-swap on element `index`.
    ///
    /// # Errors
    ///
    /// `Err(actual)` if the element was not `current`.
    ///
    /// # Panics
    ///
    /// If `index >= len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::RawArray::from_slice(&[1u8])?;
    /// assert_eq!(a.compare_exchange(0, 1, 2), Ok(1));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn compare_exchange(&self, index: usize, current: T, new: T) -> Result<T, T> {
        // SAFETY: as for `load`.
        unsafe { T::atomic_compare_exchange(self.cells.ptr(index), current, new) }
    }
}

impl RawArray<u64> {
    /// Element `index` as an atomic, for operations with orderings weaker
    /// than the `SeqCst` of the public methods.
    ///
    /// # Panics
    ///
    /// If `index >= len()`.
    pub(crate) fn atomic(&self, index: usize) -> &std::sync::atomic::AtomicU64 {
        // SAFETY: `ptr` checks the index; the element is aligned for a
        // `u64` (so for an `AtomicU64`, of the same size and alignment on
        // the 64-bit targets we build for), lives as long as `self`, and
        // every process only ever accesses it atomically.
        unsafe { std::sync::atomic::AtomicU64::from_ptr(self.cells.ptr(index)) }
    }
}

impl<T: Pod> Serialize for RawValue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.cells.serialize(serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for RawValue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let cells = Cells::deserialize(deserializer, Kind::RawValue, false)?;
        if cells.len() != 1 {
            return Err(serde::de::Error::custom("a shared value holds one element"));
        }
        Ok(Self { cells })
    }
}

impl<T: Pod> Serialize for RawArray<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.cells.serialize(serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for RawArray<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self { cells: Cells::deserialize(deserializer, Kind::RawArray, false)? })
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RawValue").field(&self.get()).finish()
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RawArray").field(&self.to_vec()).finish()
    }
}
