//! `Array<T>`: shared elements with a robust lock (Python's `Array`).
#![allow(unsafe_code)] // the guard's deref: see the SAFETY comments

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::cells::Cells;
use crate::Result;
use crate::shm::Kind;
use crate::shm::lock::RawLock;
use crate::shm::park::deadline_after;
use crate::sync::LockError;
use crate::sync::lock_support::{Miss, lock_result};

/// A fixed number of `T`s in shared memory, with a lock (Python's
/// `Array(typecode, ...)`).
///
/// # Examples
///
/// ```
/// use multiproc::{Array, Process};
///
/// fn negate(a: Array<i32>) {
///     for x in a.lock().unwrap().iter_mut() {
///         *x = -*x;
///     }
/// }
///
/// let arr = Array::from_iter(0..10)?;
/// Process::spawn(negate, arr.clone())?.join()?;
/// assert_eq!(arr.to_vec(), [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Array<T> {
    cells: Cells<T>,
}

impl<T> Clone for Array<T> {
    fn clone(&self) -> Self {
        Self { cells: self.cells.clone() }
    }
}

/// The locked array: derefs to `[T]`; releases the lock on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ArrayGuard<'a, T> {
    lock: &'a RawLock,
    data: *mut T,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

impl<T: Pod> Array<T> {
    /// `len` zeroed elements.
    ///
    /// # Errors
    ///
    /// [`Error::Os`](crate::Error::Os) if the shared memory cannot be
    /// created; [`Error::Unsupported`](crate::Error::Unsupported) for a `T`
    /// aligned to more than 64 bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::Array::<f32>::new(3)?;
    /// assert_eq!(a.to_vec(), [0.0, 0.0, 0.0]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new(len: usize) -> Result<Self> {
        Ok(Self { cells: Cells::create(Kind::Array, len, true)? })
    }

    /// An array holding a copy of `values`.
    ///
    /// # Errors
    ///
    /// As [`new`](Array::new).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::Array::from_slice(&[1u8, 2, 3])?;
    /// assert_eq!(a.len(), 3);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn from_slice(values: &[T]) -> Result<Self> {
        let array = Self::new(values.len())?;
        array
            .lock()
            .unwrap_or_else(|e| e.into_guard().unwrap_or_else(|| array.guard()))
            .copy_from_slice(values);
        Ok(array)
    }

    /// An array holding the items of `iter` (Python's `Array('i', range(10))`).
    ///
    /// # Errors
    ///
    /// As [`new`](Array::new).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::Array::from_iter(0..10)?;
    /// assert_eq!(a.get(9), Some(9));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[allow(clippy::should_implement_trait)] // fallible, so not `FromIterator`
    pub fn from_iter(iter: impl IntoIterator<Item = T>) -> Result<Self> {
        Self::from_slice(&iter.into_iter().collect::<Vec<T>>())
    }

    fn guard(&self) -> ArrayGuard<'_, T> {
        ArrayGuard {
            lock: self.cells.lock(),
            data: self.cells.base(),
            len: self.cells.len(),
            _borrow: PhantomData,
        }
    }

    fn locked(&self) -> ArrayGuard<'_, T> {
        self.lock().unwrap_or_else(|e| e.into_guard().unwrap_or_else(|| self.guard()))
    }

    /// The number of elements.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::Array::<u8>::new(4)?.len(), 4);
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
    /// assert!(multiproc::Array::<u8>::new(0)?.is_empty());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the lock; the guard derefs to `[T]`.
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`] (with the guard) if a process died holding it.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::Array::from_slice(&[3, 1, 2])?;
    /// a.lock()?.sort();
    /// assert_eq!(a.to_vec(), [1, 2, 3]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn lock(&self) -> Result<ArrayGuard<'_, T>, LockError<ArrayGuard<'_, T>>> {
        lock_result(self.cells.lock().lock(None), Miss::Timeout, || self.guard())
    }

    /// Takes the lock if it is free.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`]; [`LockError::OwnerDied`].
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::Array::<u8>::new(1)?;
    /// let _g = a.try_lock()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_lock(&self) -> Result<ArrayGuard<'_, T>, LockError<ArrayGuard<'_, T>>> {
        lock_result(self.cells.lock().try_lock(), Miss::WouldBlock, || self.guard())
    }

    /// Takes the lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`]; [`LockError::OwnerDied`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let a = multiproc::Array::<u8>::new(1)?;
    /// let _g = a.lock_timeout(Duration::from_millis(5))?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ArrayGuard<'_, T>, LockError<ArrayGuard<'_, T>>> {
        let acquired = self.cells.lock().lock(deadline_after(timeout));
        lock_result(acquired, Miss::Timeout, || self.guard())
    }

    /// Element `index` (read under the lock), or `None` past the end.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::Array::from_slice(&[5u8])?;
    /// assert_eq!(a.get(0), Some(5));
    /// assert_eq!(a.get(1), None);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn get(&self, index: usize) -> Option<T> {
        self.locked().get(index).copied()
    }

    /// Sets element `index` under the lock.
    ///
    /// # Panics
    ///
    /// If `index >= len()`, as slice indexing does.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::Array::<u8>::new(2)?;
    /// a.set(1, 9);
    /// assert_eq!(a.to_vec(), [0, 9]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn set(&self, index: usize, value: T) {
        self.locked()[index] = value;
    }

    /// A copy of every element, taken under the lock (Python's `arr[:]`).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::Array::from_iter([1, 2])?;
    /// assert_eq!(a.to_vec(), vec![1, 2]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        self.locked().to_vec()
    }

    /// Copies `out.len()` elements from index `offset` into `out`, under the
    /// lock, without copying the rest (Python's `arr[offset:offset + n]`).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`](crate::Error::OutOfBounds) (in bytes) if they
    /// are not all in the array.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::Array::from_iter(0..10)?;
    /// let mut out = [0; 3];
    /// a.read_into(4, &mut out)?;
    /// assert_eq!(out, [4, 5, 6]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn read_into(&self, offset: usize, out: &mut [T]) -> Result<()> {
        self.cells.check_range(offset, out.len())?;
        out.copy_from_slice(&self.locked()[offset..offset + out.len()]);
        Ok(())
    }

    /// Copies `data` to the elements from index `offset`, under the lock
    /// (Python's `arr[offset:offset + n] = data`).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`](crate::Error::OutOfBounds) (in bytes) if they
    /// do not all fit; nothing is written then.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::Array::<u8>::new(4)?;
    /// a.write_from(2, &[7, 8])?;
    /// assert_eq!(a.to_vec(), [0, 0, 7, 8]);
    /// assert!(a.write_from(3, &[1, 2]).is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn write_from(&self, offset: usize, data: &[T]) -> Result<()> {
        self.cells.check_range(offset, data.len())?;
        self.locked()[offset..offset + data.len()].copy_from_slice(data);
        Ok(())
    }
}

impl<T: super::Atomic> Array<T> {
    /// Adds `value` to element `index` under the lock (wrapping for
    /// integers) and returns its previous value, for integers and floats
    /// alike. ([`RawArray::fetch_add`] does it without a lock.)
    ///
    /// [`RawArray::fetch_add`]: crate::RawArray::fetch_add
    ///
    /// # Panics
    ///
    /// If `index >= len()`, as slice indexing does.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::Array::<f32>::new(2)?;
    /// a.fetch_add(1, 1.5);
    /// assert_eq!(a.to_vec(), [0.0, 1.5]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn fetch_add(&self, index: usize, value: T) -> T {
        let mut guard = self.locked();
        let old = guard[index];
        guard[index] = old.plain_add(value);
        old
    }
}

impl<T> Deref for ArrayGuard<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `data..data+len` lies inside a mapping that outlives the
        // guard's borrow of the `Array`, aligned, `T: Pod` valid for any
        // bits; this thread holds the lock under which every multiproc access
        // to the elements happens.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl<T> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as for `deref`; the guard is borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.data, self.len) }
    }
}

impl<T> Drop for ArrayGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: Pod> Serialize for Array<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.cells.serialize(serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self { cells: Cells::deserialize(deserializer, Kind::Array, true)? })
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Array").field(&self.to_vec()).finish()
    }
}

impl<T: fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ArrayGuard").field(&&**self).finish()
    }
}
