//! `Value<T>`: one shared `T` with a robust lock (Python's `Value`).
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

/// One `T` in shared memory, with a lock (Python's `Value(typecode, v)`).
///
/// # Examples
///
/// ```
/// use multiproc::{Process, Value};
///
/// fn add_ten(counter: Value<i64>) {
///     for _ in 0..10 {
///         *counter.lock().unwrap() += 1;
///     }
/// }
///
/// let counter = Value::new(0i64)?;
/// let child = Process::spawn(add_ten, counter.clone())?;
/// child.join()?;
/// assert_eq!(counter.get(), 10);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Value<T> {
    cells: Cells<T>,
}

impl<T> Clone for Value<T> {
    fn clone(&self) -> Self {
        Self { cells: self.cells.clone() }
    }
}

/// The locked value: derefs to `T`; releases the lock on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T> {
    lock: &'a RawLock,
    data: *mut T,
    _borrow: PhantomData<&'a mut T>,
}

impl<T: Pod> Value<T> {
    /// A shared value holding `value`.
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
    /// let pi = multiproc::Value::new(3.14f64)?;
    /// assert_eq!(pi.get(), 3.14);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new(value: T) -> Result<Self> {
        let cells = Cells::create(Kind::Value, 1, true)?;
        cells.write(0, value);
        Ok(Self { cells })
    }

    fn guard(&self) -> ValueGuard<'_, T> {
        ValueGuard { lock: self.cells.lock(), data: self.cells.ptr(0), _borrow: PhantomData }
    }

    /// Takes the lock (Python's `with v.get_lock():`); the guard derefs to the
    /// value (Python's `v.value` / `get_obj()`).
    ///
    /// # Errors
    ///
    /// [`LockError::OwnerDied`] (with the guard) if a process died holding it.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiproc::Value::new(1u32)?;
    /// *v.lock()? *= 5;
    /// assert_eq!(v.get(), 5);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn lock(&self) -> Result<ValueGuard<'_, T>, LockError<ValueGuard<'_, T>>> {
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
    /// let v = multiproc::Value::new(1u32)?;
    /// let _held = v.lock()?;
    /// assert!(v.try_lock().is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn try_lock(&self) -> Result<ValueGuard<'_, T>, LockError<ValueGuard<'_, T>>> {
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
    /// let v = multiproc::Value::new(1u32)?;
    /// let _guard = v.lock_timeout(Duration::from_millis(5))?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ValueGuard<'_, T>, LockError<ValueGuard<'_, T>>> {
        let acquired = self.cells.lock().lock(deadline_after(timeout));
        lock_result(acquired, Miss::Timeout, || self.guard())
    }

    fn locked(&self) -> ValueGuard<'_, T> {
        // `lock` only fails with `OwnerDied`, which still holds the lock.
        self.lock().unwrap_or_else(|e| e.into_guard().unwrap_or_else(|| self.guard()))
    }

    /// Reads the value under the lock (Python's `v.value`). A dead previous
    /// owner is not reported here; use [`lock`](Value::lock) to learn of it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::Value::new(7u8)?.get(), 7);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn get(&self) -> T {
        *self.locked()
    }

    /// Writes the value under the lock (Python's `v.value = x`).
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiproc::Value::new(0.0f64)?;
    /// v.set(3.1415927);
    /// assert_eq!(v.get(), 3.1415927);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn set(&self, value: T) {
        *self.locked() = value;
    }
}

impl<T: super::Atomic> Value<T> {
    /// Adds `value` under the lock (wrapping for integers) and returns the
    /// previous value: Python's `with v.get_lock(): v.value += x`, in one
    /// call, for integers and floats alike. ([`RawValue::fetch_add`] does it
    /// without a lock.)
    ///
    /// [`RawValue::fetch_add`]: crate::RawValue::fetch_add
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::{Process, Value};
    ///
    /// fn add_halves(v: Value<f64>) {
    ///     for _ in 0..100 {
    ///         v.fetch_add(0.5);
    ///     }
    /// }
    ///
    /// let v = Value::new(0.0f64)?;
    /// let p = Process::spawn(add_halves, v.clone())?;
    /// add_halves(v.clone());
    /// p.join()?;
    /// assert_eq!(v.get(), 100.0);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn fetch_add(&self, value: T) -> T {
        let mut guard = self.locked();
        let old = *guard;
        *guard = old.plain_add(value);
        old
    }
}

impl<T> Deref for ValueGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: `data` points at the value inside a mapping that outlives
        // the guard's borrow of the `Value`; it is aligned and `T: Pod` is
        // valid for any bits. This thread holds the lock, under which every
        // multiproc access to the value happens, so no one writes meanwhile.
        unsafe { &*self.data }
    }
}

impl<T> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`; the guard is borrowed mutably, so this is
        // the only reference made through it.
        unsafe { &mut *self.data }
    }
}

impl<T> Drop for ValueGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: Pod> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.cells.serialize(serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for Value<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let cells = Cells::deserialize(deserializer, Kind::Value, true)?;
        if cells.len() != 1 {
            return Err(serde::de::Error::custom("a shared value holds one element"));
        }
        Ok(Self { cells })
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Value").field(&self.get()).finish()
    }
}

impl<T: fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueGuard").field(&**self).finish()
    }
}
