//! Data shared between processes: Python's `Value`, `Array`, `RawValue`,
//! `RawArray` (and, in `shared_memory`, named `SharedMemory` blocks).
//!
//! The elements are plain old data, [`bytemuck::Pod`]: integers, floats,
//! and `#[repr(C)]` structs of them (derive `Pod` and `Zeroable`; multiproc
//! re-exports [`bytemuck`]). They live directly in shared memory: a child
//! that writes one is seen by every process holding a handle.
//!
//! `Value` and `Array` come with a robust lock (Python's `lock=True`):
//! [`Value::lock`] gives a guard that derefs to the value. `RawValue` and
//! `RawArray` have none; their integer kinds offer atomic operations instead.

mod array;
mod atomic;
mod cells;
mod chunk;
pub(crate) mod janitor;
mod raw;
mod shared_memory;
mod value;

pub use array::{Array, ArrayGuard};
pub use atomic::{Atomic, Atomic as AtomicInt};
pub use chunk::{ArrayChunk, ChunkGuard};
pub use raw::{RawArray, RawValue};
pub use shared_memory::SharedMemory;
pub use value::{Value, ValueGuard};

use crate::shm::lock::RawLock;
use crate::shm::segment::align_up;

/// Where the data of a locked `Value`/`Array` of `T` starts in its body.
pub(crate) const fn locked_data_offset<T>() -> usize {
    align_up(size_of::<RawLock>(), align_of::<T>())
}
