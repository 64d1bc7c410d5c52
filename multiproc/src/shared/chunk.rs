//! `ArrayChunk<T>`: one of the disjoint parts of a [`RawArray`], for one
//! worker to fill without a lock and without copying the whole array.

use std::fmt;
use std::ops::{Deref, DerefMut, Range};

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::RawArray;
use crate::{Error, Result};

/// A part of a [`RawArray`] handed out by [`RawArray::split_chunks`]: the
/// elements `range()` of the array, for one worker.
///
/// An array is split at most once, in any process, so the chunks never
/// overlap: two workers writing their own chunks never contend (there is no
/// lock at all), and no chunk is handed out twice. A chunk is not `Clone`;
/// it travels to a child as a process argument. Reads and writes go through
/// the array's memory directly (atomic copies, so a racing reader of the
/// whole array sees old or new elements, never undefined behaviour).
///
/// # Examples
///
/// ```
/// use multiproc::{ArrayChunk, Process, RawArray};
///
/// fn fill(chunk: ArrayChunk<u32>) {
///     let start = chunk.range().start as u32;
///     let mut g = chunk.edit();
///     for (i, x) in g.iter_mut().enumerate() {
///         *x = (start + i as u32) * 10;
///     }
/// } // the guard writes the chunk back
///
/// let arr = RawArray::<u32>::new(10)?;
/// let workers: Vec<_> = arr
///     .split_chunks(4)?
///     .into_iter()
///     .map(|chunk| Process::spawn(fill, chunk))
///     .collect::<Result<_, _>>()?;
/// for w in workers {
///     w.join()?;
/// }
/// assert_eq!(arr.to_vec(), [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct ArrayChunk<T> {
    array: RawArray<T>,
    start: usize,
    len: usize,
}

/// A working copy of an [`ArrayChunk`]'s elements, made by
/// [`ArrayChunk::edit`]: derefs to `[T]`, and writes the elements back to
/// the array when dropped (or at [`commit`](ChunkGuard::commit)).
///
/// # Examples
///
/// ```
/// let arr = multiproc::RawArray::<f64>::new(4)?;
/// let chunks = arr.split_chunks(2)?;
/// chunks[1].edit().fill(1.5);
/// assert_eq!(arr.to_vec(), [0.0, 0.0, 1.5, 1.5]);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[must_use = "the elements are written back when the guard is dropped"]
pub struct ChunkGuard<'a, T: Pod> {
    chunk: &'a ArrayChunk<T>,
    copy: Vec<T>,
}

impl<T: Pod> RawArray<T> {
    /// Splits the array into chunks of `chunk_len` elements (the last one
    /// shorter if `len()` is not a multiple), each for one worker: see
    /// [`ArrayChunk`]. An array can be split once, in whichever process.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] if the array was already split (here or in
    /// another process holding it).
    ///
    /// # Panics
    ///
    /// If `chunk_len` is 0, as [`slice::chunks`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// let arr = multiproc::RawArray::<u8>::new(5)?;
    /// let chunks = arr.split_chunks(2)?;
    /// let ranges: Vec<_> = chunks.iter().map(|c| c.range()).collect();
    /// assert_eq!(ranges, [0..2, 2..4, 4..5]);
    /// assert!(arr.split_chunks(2).is_err()); // never twice
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn split_chunks(&self, chunk_len: usize) -> Result<Vec<ArrayChunk<T>>> {
        assert!(chunk_len != 0, "chunk size must be non-zero");
        if !self.cells.claim_split() {
            return Err(Error::Unsupported { reason: "this array was already split into chunks" });
        }
        let len = self.len();
        Ok((0..len)
            .step_by(chunk_len)
            .map(|start| ArrayChunk { array: self.clone(), start, len: chunk_len.min(len - start) })
            .collect())
    }
}

impl<T: Pod> ArrayChunk<T> {
    /// The indices of the array this chunk covers.
    ///
    /// # Examples
    ///
    /// ```
    /// let chunks = multiproc::RawArray::<u8>::new(3)?.split_chunks(2)?;
    /// assert_eq!(chunks[1].range(), 2..3);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn range(&self) -> Range<usize> {
        self.start..self.start + self.len
    }

    /// The number of elements in the chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// let chunks = multiproc::RawArray::<u8>::new(3)?.split_chunks(2)?;
    /// assert_eq!(chunks[0].len(), 2);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the chunk has no element (never, for a split's chunks).
    ///
    /// # Examples
    ///
    /// ```
    /// let chunks = multiproc::RawArray::<u8>::new(3)?.split_chunks(2)?;
    /// assert!(!chunks[0].is_empty());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `out.len()` elements from `offset` (within the chunk) into
    /// `out`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] (in bytes) if they are not all in the chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// let arr = multiproc::RawArray::from_slice(&[1, 2, 3, 4])?;
    /// let chunks = arr.split_chunks(2)?;
    /// let mut out = [0; 2];
    /// chunks[1].read_into(0, &mut out)?;
    /// assert_eq!(out, [3, 4]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn read_into(&self, offset: usize, out: &mut [T]) -> Result<()> {
        self.check(offset, out.len())?;
        self.array.read_into(self.start + offset, out)
    }

    /// Copies `data` to the elements from `offset` (within the chunk).
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] (in bytes) if they are not all in the chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// let arr = multiproc::RawArray::<i32>::new(4)?;
    /// let chunks = arr.split_chunks(2)?;
    /// chunks[1].write_from(1, &[7])?;
    /// assert!(chunks[1].write_from(1, &[7, 8]).is_err()); // past the chunk
    /// assert_eq!(arr.to_vec(), [0, 0, 0, 7]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn write_from(&self, offset: usize, data: &[T]) -> Result<()> {
        self.check(offset, data.len())?;
        self.array.write_from(self.start + offset, data)
    }

    /// A copy of the chunk's elements.
    ///
    /// # Examples
    ///
    /// ```
    /// let arr = multiproc::RawArray::from_slice(&[1, 2, 3])?;
    /// assert_eq!(arr.split_chunks(2)?[0].to_vec(), [1, 2]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        let mut out = vec![T::zeroed(); self.len];
        // In bounds: checked when the chunk was made or arrived.
        let _ = self.array.read_into(self.start, &mut out);
        out
    }

    /// A working copy of the chunk's elements that derefs to `&mut [T]` and
    /// is written back when dropped: the chunk's own guard, taking no lock
    /// (the chunk is this worker's alone).
    ///
    /// # Examples
    ///
    /// ```
    /// let arr = multiproc::RawArray::<u16>::new(4)?;
    /// let chunks = arr.split_chunks(2)?;
    /// {
    ///     let mut g = chunks[0].edit();
    ///     g[0] = 1;
    ///     g[1] = 2;
    /// }
    /// assert_eq!(arr.to_vec(), [1, 2, 0, 0]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn edit(&self) -> ChunkGuard<'_, T> {
        ChunkGuard { chunk: self, copy: self.to_vec() }
    }

    fn check(&self, offset: usize, count: usize) -> Result<()> {
        super::cells::check_range::<T>(self.len, offset, count)
    }
}

impl<T: Pod> ChunkGuard<'_, T> {
    /// Writes the elements back now (dropping the guard does it too).
    ///
    /// # Examples
    ///
    /// ```
    /// let arr = multiproc::RawArray::<u8>::new(2)?;
    /// let chunks = arr.split_chunks(2)?;
    /// let mut g = chunks[0].edit();
    /// g[1] = 5;
    /// g.commit();
    /// assert_eq!(arr.to_vec(), [0, 5]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn commit(&self) {
        // The copy has the chunk's length: always in bounds.
        let _ = self.chunk.write_from(0, &self.copy);
    }
}

impl<T: Pod> Deref for ChunkGuard<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.copy
    }
}

impl<T: Pod> DerefMut for ChunkGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.copy
    }
}

impl<T: Pod> Drop for ChunkGuard<'_, T> {
    fn drop(&mut self) {
        self.commit();
    }
}

#[derive(Serialize)]
#[serde(bound = "")]
struct WireOut<'a, T: Pod> {
    array: &'a RawArray<T>,
    start: u64,
    len: u64,
}

#[derive(Deserialize)]
#[serde(bound = "")]
struct WireIn<T: Pod> {
    array: RawArray<T>,
    start: u64,
    len: u64,
}

impl<T: Pod> Serialize for ArrayChunk<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        WireOut { array: &self.array, start: self.start as u64, len: self.len as u64 }
            .serialize(serializer)
    }
}

impl<'de, T: Pod> Deserialize<'de> for ArrayChunk<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let WireIn { array, start, len } = WireIn::<T>::deserialize(deserializer)?;
        // The range comes from another process: it must lie in the array.
        let range = usize::try_from(start).ok().zip(usize::try_from(len).ok());
        match range {
            Some((start, len)) if array.cells.check_range(start, len).is_ok() => {
                Ok(Self { array, start, len })
            }
            _ => Err(serde::de::Error::custom("an array chunk arrived outside its array")),
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ArrayChunk<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrayChunk").field("range", &self.range()).finish_non_exhaustive()
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ChunkGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkGuard")
            .field("range", &self.chunk.range())
            .field("elements", &self.copy)
            .finish()
    }
}
