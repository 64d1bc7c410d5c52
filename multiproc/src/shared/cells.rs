//! `Cells<T>`: `len` elements of `T` in a segment, optionally behind a lock.
//! The common part of `Value`, `Array`, `RawValue` and `RawArray`.
#![allow(unsafe_code)] // pointer arithmetic into the mapping: see SAFETY comments

use std::marker::PhantomData;
use std::sync::Arc;

use bytemuck::Pod;
use serde::{Deserializer, Serializer};

use super::locked_data_offset;
use crate::shm::copy;
use crate::shm::lock::RawLock;
use crate::shm::segment::{self, Shape};
use crate::shm::{Kind, Segment};
use crate::{Error, Result};

/// The most alignment an element may need: the body starts 64 bytes into a
/// page-aligned mapping.
const MAX_ALIGN: usize = 64;

pub(crate) struct Cells<T> {
    seg: Arc<Segment>,
    offset: usize,
    len: usize,
    _elements: PhantomData<T>,
}

impl<T> Clone for Cells<T> {
    fn clone(&self) -> Self {
        Self {
            seg: Arc::clone(&self.seg),
            offset: self.offset,
            len: self.len,
            _elements: PhantomData,
        }
    }
}

fn data_offset<T>(locked: bool) -> usize {
    if locked { locked_data_offset::<T>() } else { 0 }
}

fn body_len<T>(locked: bool, len: usize) -> Option<usize> {
    size_of::<T>().checked_mul(len)?.checked_add(data_offset::<T>(locked))?.checked_add(1)
}

impl<T: Pod> Cells<T> {
    /// `len` zeroed elements in a new segment of `kind`.
    pub(crate) fn create(kind: Kind, len: usize, locked: bool) -> Result<Self> {
        if align_of::<T>() > MAX_ALIGN {
            return Err(Error::Unsupported { reason: "elements aligned to more than 64 bytes" });
        }
        let body =
            body_len::<T>(locked, len).ok_or(Error::Unsupported { reason: "array too large" })?;
        let shape = Shape { size: size_of::<T>(), align: align_of::<T>(), count: len };
        let seg = Segment::create(kind, body, shape)?;
        Ok(Self { seg, offset: data_offset::<T>(locked), len, _elements: PhantomData })
    }

    pub(crate) fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        segment::serialize(&self.seg, serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
        kind: Kind,
        locked: bool,
    ) -> Result<Self, D::Error> {
        if align_of::<T>() > MAX_ALIGN {
            return Err(serde::de::Error::custom("elements aligned to more than 64 bytes"));
        }
        let shape = Shape { size: size_of::<T>(), align: align_of::<T>(), count: 0 };
        let seg =
            segment::deserialize(deserializer, kind, shape, |len| body_len::<T>(locked, len))?;
        let len = seg.elem_count();
        Ok(Self { seg, offset: data_offset::<T>(locked), len, _elements: PhantomData })
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The lock of a locked `Value`/`Array`.
    pub(crate) fn lock(&self) -> &RawLock {
        self.seg.at(0)
    }

    /// Element 0; the others follow it.
    pub(crate) fn base(&self) -> *mut T {
        // The segment is at least `offset + len * size` long (checked at
        // creation and on arrival), and `offset` keeps `T`'s alignment.
        self.seg.body_ptr().wrapping_add(self.offset).cast::<T>()
    }

    /// Pointer to element `index`.
    ///
    /// # Panics
    ///
    /// If `index >= len`.
    pub(crate) fn ptr(&self, index: usize) -> *mut T {
        assert!(index < self.len, "index {index} out of range for {} elements", self.len);
        self.base().wrapping_add(index)
    }

    /// Reads element `index` without a lock (it may tear if written now).
    pub(crate) fn read(&self, index: usize) -> T {
        let mut value = T::zeroed();
        // SAFETY: `ptr` is in bounds in a mapping `self` keeps alive; the copy
        // goes through atomics, so concurrent writers make it tear, never UB;
        // `T: Pod` is valid for any bytes.
        unsafe { copy::copy_out(self.ptr(index).cast(), bytemuck::bytes_of_mut(&mut value)) };
        value
    }

    /// Checks that `count` elements from `offset` are in the array.
    pub(crate) fn check_range(&self, offset: usize, count: usize) -> Result<()> {
        check_range::<T>(self.len, offset, count)
    }

    /// Copies `out.len()` elements from `offset` into `out`, without a lock
    /// (an element written now may tear).
    pub(crate) fn read_range(&self, offset: usize, out: &mut [T]) -> Result<()> {
        self.check_range(offset, out.len())?;
        if out.is_empty() {
            return Ok(());
        }
        // SAFETY: `offset..offset + out.len()` is in bounds (checked), in a
        // mapping `self` keeps alive; the copy goes through atomics, so
        // concurrent writers make it tear, never UB; `T: Pod` is valid for
        // any bytes.
        unsafe { copy::copy_out(self.ptr(offset).cast(), bytemuck::cast_slice_mut(out)) };
        Ok(())
    }

    /// Copies `data` to the elements from `offset`, without a lock.
    pub(crate) fn write_range(&self, offset: usize, data: &[T]) -> Result<()> {
        self.check_range(offset, data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        // SAFETY: as for `read_range`.
        unsafe { copy::copy_in(self.ptr(offset).cast(), bytemuck::cast_slice(data)) };
        Ok(())
    }

    /// Marks the array as split into chunks; `false` if it already was.
    pub(crate) fn claim_split(&self) -> bool {
        self.seg.claim_split()
    }

    /// Writes element `index` without a lock.
    pub(crate) fn write(&self, index: usize, value: T) {
        // SAFETY: as for `read`.
        unsafe { copy::copy_in(self.ptr(index).cast(), bytemuck::bytes_of(&value)) }
    }
}

/// Checks that `count` elements of `T` from `offset` lie within `len`
/// elements; the error counts in bytes.
pub(crate) fn check_range<T>(len: usize, offset: usize, count: usize) -> Result<()> {
    if offset.checked_add(count).is_some_and(|end| end <= len) {
        return Ok(());
    }
    let size = size_of::<T>();
    Err(Error::OutOfBounds {
        offset: offset.saturating_mul(size),
        len: count.saturating_mul(size),
        size: len.saturating_mul(size),
    })
}
