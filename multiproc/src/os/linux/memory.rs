//! Shared memory: sealed memfds, named files under /dev/shm, mappings.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::{FlockOperation, MemfdFlags, Mode, OFlags, SealFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

/// An anonymous shared-memory file of `size` bytes, sealed so that nobody
/// can shrink or grow it (a peer shrinking a mapped file would crash us with
/// `SIGBUS`). It disappears when the last descriptor and mapping go.
pub(crate) fn sealed_memfd(name: &str, size: u64) -> io::Result<OwnedFd> {
    let fd = super::with_fd_room(|| {
        Ok(rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?)
    })?;
    rustix::fs::ftruncate(&fd, size)?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
    Ok(fd)
}

/// The size of the file behind `fd`.
pub(crate) fn file_size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(rustix::fs::fstat(fd)?.st_size.try_into().unwrap_or(0))
}

/// Whether `fd` is a memfd sealed against shrinking and growing.
pub(crate) fn is_sealed(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fcntl_get_seals(fd)
        .is_ok_and(|seals| seals.contains(SealFlags::SHRINK | SealFlags::GROW))
}

/// (device, inode) of the file behind `fd`.
pub(crate) fn file_identity(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let stat = rustix::fs::fstat(fd)?;
    Ok((stat.st_dev, stat.st_ino))
}

/// Takes a shared (`true`) or exclusive `flock` on `fd`, blocking or not.
/// Returns `false` if `nonblocking` and the lock is held elsewhere.
pub(crate) fn flock(fd: BorrowedFd<'_>, shared: bool, nonblocking: bool) -> io::Result<bool> {
    let operation = match (shared, nonblocking) {
        (true, false) => FlockOperation::LockShared,
        (true, true) => FlockOperation::NonBlockingLockShared,
        (false, false) => FlockOperation::LockExclusive,
        (false, true) => FlockOperation::NonBlockingLockExclusive,
    };
    loop {
        match rustix::fs::flock(fd, operation) {
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) if nonblocking => return Ok(false),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Creates `path` (which must not exist), read-write for the owner only.
pub(crate) fn create_exclusive(path: &std::path::Path) -> io::Result<OwnedFd> {
    super::with_fd_room(|| {
        Ok(rustix::fs::open(
            path,
            OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )?)
    })
}

/// Opens an existing `path`, read-write or read-only.
pub(crate) fn open_existing(path: &std::path::Path, write: bool) -> io::Result<OwnedFd> {
    let access = if write { OFlags::RDWR } else { OFlags::RDONLY };
    super::with_fd_room(|| Ok(rustix::fs::open(path, access | OFlags::CLOEXEC, Mode::empty())?))
}

/// Sets the length of the file behind `fd`.
pub(crate) fn set_len(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    Ok(rustix::fs::ftruncate(fd, len)?)
}

/// Reserves the file's first `len` bytes of memory now (`fallocate`), so
/// that a full file system is an error here rather than a `SIGBUS` when a
/// page is first touched.
pub(crate) fn reserve(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    loop {
        match rustix::fs::fallocate(fd, rustix::fs::FallocateFlags::empty(), 0, len) {
            Err(Errno::INTR) => continue,
            // A file system that cannot reserve: nothing to do ahead.
            Err(Errno::OPNOTSUPP) => return Ok(()),
            other => return Ok(other?),
        }
    }
}

/// Reads into `buf` from offset `at` of the file behind `fd`; returns how
/// many bytes there were (fewer at the end of the file).
pub(crate) fn read_at(fd: BorrowedFd<'_>, buf: &mut [u8], at: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::pread(fd, &mut buf[done..], at + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

/// Writes `data` at offset `at` of the file behind `fd`.
pub(crate) fn write_at(fd: BorrowedFd<'_>, data: &[u8], at: u64) -> io::Result<()> {
    let mut done = 0;
    while done < data.len() {
        match rustix::io::pwrite(fd, &data[done..], at + done as u64) {
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// (device, inode) of the file at `path`.
pub(crate) fn path_identity(path: &std::path::Path) -> io::Result<(u64, u64)> {
    let stat = rustix::fs::stat(path)?;
    Ok((stat.st_dev, stat.st_ino))
}

/// Removes `path` if it still names the file with `identity`; true if it
/// did. (Another name created since then is left alone.)
pub(crate) fn unlink_if_same(path: &std::path::Path, identity: (u64, u64)) -> bool {
    path_identity(path).is_ok_and(|now| now == identity) && rustix::fs::unlink(path).is_ok()
}

/// A shared, read-write mapping of a whole file.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a mapping is plain memory shared by design; what is stored in it
// is synchronised by the types built on top (atomics and locks), so the
// pointer may move to and be used from any thread.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`; `Mapping` itself only hands out the base pointer.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` (which must be at least that long).
    pub(crate) fn new(fd: BorrowedFd<'_>, len: usize) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty mapping"));
        }
        // SAFETY: a fresh mapping chosen by the kernel (null hint) overlaps no
        // Rust object; `len` is non-zero; the result is checked.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd.as_fd(),
                0,
            )?
        };
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("null mapping"))?;
        Ok(Self { ptr, len })
    }

    /// Maps `[0, ring_offset + ring_len)` of `fd`, then the ring
    /// `[ring_offset, ring_offset + ring_len)` a second time right after it,
    /// so that any `ring_len` bytes of the ring starting anywhere in it are
    /// contiguous in memory. `ring_offset` and `ring_len` must be multiples of
    /// the page size, and the file exactly `ring_offset + ring_len` long.
    pub(crate) fn mirrored(
        fd: BorrowedFd<'_>,
        ring_offset: usize,
        ring_len: usize,
    ) -> io::Result<Self> {
        let page = page_size();
        if ring_len == 0 || !ring_offset.is_multiple_of(page) || !ring_len.is_multiple_of(page) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "ring not page-aligned"));
        }
        let first = ring_offset.checked_add(ring_len).ok_or(io::ErrorKind::InvalidInput)?;
        let len = first.checked_add(ring_len).ok_or(io::ErrorKind::InvalidInput)?;
        // SAFETY: reserving fresh address space (null hint) overlaps nothing.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::empty(),
                MapFlags::PRIVATE,
            )?
        };
        let mapping = Self {
            ptr: NonNull::new(base.cast::<u8>()).ok_or_else(|| io::Error::other("null mapping"))?,
            len,
        };
        let rw = ProtFlags::READ | ProtFlags::WRITE;
        let fixed = MapFlags::SHARED | MapFlags::FIXED;
        // SAFETY: both fixed mappings replace parts of the reservation made
        // just above, which `mapping` owns and nothing else references; on
        // error `mapping`'s drop unmaps the whole reservation.
        unsafe {
            rustix::mm::mmap(base, first, rw, fixed, fd, 0)?;
            rustix::mm::mmap(
                base.cast::<u8>().add(first).cast(),
                ring_len,
                rw,
                fixed,
                fd,
                ring_offset as u64,
            )?;
        }
        Ok(mapping)
    }

    /// Backs the whole mapping with memory now, writable, in one call
    /// (`MADV_POPULATE_WRITE`), rather than one page fault per page at first
    /// touch (a few microseconds each on a virtual machine). Only a hint: a
    /// kernel without it (before 5.14), or a failure to reserve, leaves the
    /// pages to fault in as they are touched.
    pub(crate) fn populate(&self) {
        // SAFETY: `ptr`/`len` describe this live mapping; populating changes
        // no byte of it (it only faults the pages in, as a touch would).
        let _ = unsafe {
            rustix::mm::madvise(
                self.ptr.as_ptr().cast::<c_void>(),
                self.len,
                rustix::mm::Advice::LinuxPopulateWrite,
            )
        };
    }

    /// The first byte; page-aligned.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The mapped length.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping made by `new` and unmapped
        // only here; every reference into it borrows from an owner of this
        // `Mapping`, so none outlives it.
        unsafe {
            let _ = rustix::mm::munmap(self.ptr.as_ptr().cast::<c_void>(), self.len);
        }
    }
}

/// The size of a memory page.
pub(crate) fn page_size() -> usize {
    rustix::param::page_size()
}
