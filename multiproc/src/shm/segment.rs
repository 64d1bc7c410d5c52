//! A shared-memory segment: a sealed memfd, mapped, with a checked header.
#![allow(unsafe_code)] // `InShm`: see its `# Safety`

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::os::{self, Mapping};
use crate::{Error, Result};

/// What a segment holds; checked when a segment arrives from elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Kind {
    Lock = 1,
    RLock = 2,
    Semaphore = 3,
    Event = 4,
    Condition = 5,
    Barrier = 6,
    Value = 7,
    Array = 8,
    RawValue = 9,
    RawArray = 10,
    Queue = 11,
    Liveness = 12,
    Channel = 13,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Lock => "multiproc-lock",
            Self::RLock => "multiproc-rlock",
            Self::Semaphore => "multiproc-semaphore",
            Self::Event => "multiproc-event",
            Self::Condition => "multiproc-condition",
            Self::Barrier => "multiproc-barrier",
            Self::Value => "multiproc-value",
            Self::Array => "multiproc-array",
            Self::RawValue => "multiproc-rawvalue",
            Self::RawArray => "multiproc-rawarray",
            Self::Queue => "multiproc-queue",
            Self::Liveness => "multiproc-liveness",
            Self::Channel => "multiproc-channel",
        }
    }
}

const MAGIC: u32 = u32::from_le_bytes(*b"mpsg");

/// The first bytes of every segment.
#[repr(C)]
struct Header {
    magic: AtomicU32,
    kind: AtomicU32,
    /// Size of one element (for values and arrays), 0 otherwise.
    elem_size: AtomicU32,
    /// Alignment of one element, 0 otherwise.
    elem_align: AtomicU32,
    /// Number of elements (for arrays), 0 otherwise.
    elem_count: AtomicU64,
    /// Where a ring starts in the file (0: no ring), and its length.
    ring_offset: AtomicU64,
    ring_len: AtomicU64,
    /// The creator's PID and time namespaces (see [`os::namespaces`]).
    pid_ns: AtomicU64,
    time_ns: AtomicU64,
    /// Set once an array was split into chunks (see [`Segment::claim_split`]).
    split: AtomicU64,
}

const _: () = assert!(size_of::<Header>() <= BODY);

/// This process's PID and time namespaces, which shared objects must share.
fn namespaces() -> Result<(u64, u64)> {
    os::namespaces().ok_or(Error::Unsupported {
        reason: "shared objects need /proc to know this process's namespaces",
    })
}

/// Where the body starts: a cache line after the segment's start.
pub(crate) const BODY: usize = 64;

/// Types that may be viewed in shared memory through `&T`.
///
/// # Safety
///
/// The type must be `#[repr(C)]`, made only of atomics (so every bit pattern
/// is valid and concurrent access from any process is defined), and contain
/// no pointer.
pub(crate) unsafe trait InShm: Sync {}

/// One mapped segment. Shared within a process through `Arc`; each clone of
/// a handle points at the same segment, and the segment is freed when the
/// last descriptor and mapping, in every process, are gone.
#[derive(Debug)]
pub(crate) struct Segment {
    fd: OwnedFd,
    map: Mapping,
    kind: Kind,
    elem_count: usize,
    /// (offset in the file, length) of a ring mapped twice, if any.
    ring: Option<(usize, usize)>,
}

/// Element shape recorded in a segment, checked on arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Shape {
    pub(crate) size: usize,
    pub(crate) align: usize,
    pub(crate) count: usize,
}

impl Segment {
    /// A new zero-filled segment with a body of `body_len` bytes.
    pub(crate) fn create(kind: Kind, body_len: usize, shape: Shape) -> Result<Arc<Self>> {
        let len = BODY.checked_add(body_len).ok_or(Error::protocol("segment too large"))?;
        let fd = os::sealed_memfd(kind.name(), len as u64)
            .map_err(Error::os("create a shared-memory segment"))?;
        let map =
            Mapping::new(fd.as_fd(), len).map_err(Error::os("map a shared-memory segment"))?;
        let segment = Self { fd, map, kind, elem_count: shape.count, ring: None };
        let header = segment.header();
        header.kind.store(kind as u32, Ordering::Relaxed);
        header.elem_size.store(shape.size as u32, Ordering::Relaxed);
        header.elem_align.store(shape.align as u32, Ordering::Relaxed);
        header.elem_count.store(shape.count as u64, Ordering::Relaxed);
        let (pid_ns, time_ns) = namespaces()?;
        header.pid_ns.store(pid_ns, Ordering::Relaxed);
        header.time_ns.store(time_ns, Ordering::Relaxed);
        header.magic.store(MAGIC, Ordering::Release);
        Ok(Arc::new(segment))
    }

    /// Maps a segment that arrived from another process, checking that it is
    /// a sealed segment of `kind` whose body holds `min_body(count)` bytes for
    /// the element shape it records, which must match `shape` (ignoring the
    /// count when `shape.count` is 0).
    pub(crate) fn attach(
        fd: OwnedFd,
        kind: Kind,
        shape: Shape,
        min_body: impl Fn(usize) -> Option<usize>,
    ) -> Result<Arc<Self>> {
        if !os::is_sealed(fd.as_fd()) {
            return Err(Error::protocol("a shared-memory segment arrived unsealed"));
        }
        let len =
            os::file_size(fd.as_fd()).map_err(Error::os("inspect a shared-memory segment"))?;
        let len = usize::try_from(len).map_err(|_| Error::protocol("segment too large"))?;
        if len < BODY {
            return Err(Error::protocol("shared-memory segment too small"));
        }
        let map =
            Mapping::new(fd.as_fd(), len).map_err(Error::os("map a shared-memory segment"))?;
        let mut segment = Self { fd, map, kind, elem_count: 0, ring: None };
        let header = segment.header();
        if header.magic.load(Ordering::Acquire) != MAGIC
            || header.kind.load(Ordering::Relaxed) != kind as u32
        {
            return Err(Error::protocol(format!("segment is not a {}", kind.name())));
        }
        // Lock owners are named by thread ids, which mean something else (or
        // nothing) in another PID namespace: a live owner could look dead
        // there and have its lock taken. Objects stay in the namespace where
        // they were made.
        let theirs =
            (header.pid_ns.load(Ordering::Relaxed), header.time_ns.load(Ordering::Relaxed));
        if theirs != namespaces()? {
            return Err(Error::Unsupported {
                reason: "a shared object cannot be used from another PID or time namespace",
            });
        }
        let size = header.elem_size.load(Ordering::Relaxed) as usize;
        let align = header.elem_align.load(Ordering::Relaxed) as usize;
        let count = usize::try_from(header.elem_count.load(Ordering::Relaxed))
            .map_err(|_| Error::protocol("element count out of range"))?;
        if size != shape.size || align != shape.align {
            return Err(Error::protocol(format!(
                "{} holds elements of {size} bytes (align {align}), expected {} (align {})",
                kind.name(),
                shape.size,
                shape.align
            )));
        }
        let needed = min_body(count).ok_or(Error::protocol("element count out of range"))?;
        if segment.body_len() < needed {
            return Err(Error::protocol(format!("{} is too small for its contents", kind.name())));
        }
        segment.elem_count = count;
        let ring_offset = segment.header().ring_offset.load(Ordering::Relaxed);
        let ring_len = segment.header().ring_len.load(Ordering::Relaxed);
        if ring_offset != 0 {
            let ring_offset =
                usize::try_from(ring_offset).map_err(|_| Error::protocol("bad ring"))?;
            let ring_len = usize::try_from(ring_len).map_err(|_| Error::protocol("bad ring"))?;
            if ring_offset.checked_add(ring_len) != Some(len) || ring_offset < BODY {
                return Err(Error::protocol("ring does not match its segment"));
            }
            segment.map = Mapping::mirrored(segment.fd.as_fd(), ring_offset, ring_len)
                .map_err(Error::os("map a shared-memory ring"))?;
            segment.ring = Some((ring_offset, ring_len));
            if segment.body_len() < needed {
                return Err(Error::protocol(format!(
                    "{} is too small for its contents",
                    kind.name()
                )));
            }
        }
        Ok(Arc::new(segment))
    }

    /// A new zero-filled segment with a body of `body_len` bytes followed by a
    /// ring of `ring_len` bytes (rounded up to whole pages) mapped twice in a
    /// row (see [`Mapping::mirrored`]).
    pub(crate) fn create_ring(kind: Kind, body_len: usize, ring_len: usize) -> Result<Arc<Self>> {
        let page = os::page_size();
        let too_large = || Error::Unsupported { reason: "ring too large" };
        let ring_offset = align_up(BODY.checked_add(body_len).ok_or_else(too_large)?, page);
        let ring_len = align_up(ring_len.max(1), page);
        let len = ring_offset.checked_add(ring_len).ok_or_else(too_large)?;
        let fd = os::sealed_memfd(kind.name(), len as u64)
            .map_err(Error::os("create a shared-memory segment"))?;
        let map = Mapping::mirrored(fd.as_fd(), ring_offset, ring_len)
            .map_err(Error::os("map a shared-memory ring"))?;
        let segment = Self { fd, map, kind, elem_count: 0, ring: Some((ring_offset, ring_len)) };
        let header = segment.header();
        header.kind.store(kind as u32, Ordering::Relaxed);
        header.ring_offset.store(ring_offset as u64, Ordering::Relaxed);
        header.ring_len.store(ring_len as u64, Ordering::Relaxed);
        let (pid_ns, time_ns) = namespaces()?;
        header.pid_ns.store(pid_ns, Ordering::Relaxed);
        header.time_ns.store(time_ns, Ordering::Relaxed);
        header.magic.store(MAGIC, Ordering::Release);
        Ok(Arc::new(segment))
    }

    /// Backs the whole segment with memory now rather than page by page as
    /// it is first touched: what iceoryx2 does to its shared memory (it
    /// zeroes it at creation). Running out of memory is then an error here,
    /// not a `SIGBUS` in the middle of a put, and no put pays for first
    /// touches: a page fault costs microseconds, several on a virtual
    /// machine whose host hands memory out lazily (here ~4 µs a page, 4 ms
    /// for a 4 MiB ring), and a page of memory in one call costs about as
    /// much as its fault would.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the memory cannot be reserved.
    pub(crate) fn populate(&self) -> Result<()> {
        // The file: a ring's mapping shows its ring twice.
        let len = self.ring.map_or(self.map.len(), |(offset, len)| offset + len);
        os::reserve(self.fd.as_fd(), len as u64)
            .map_err(Error::os("reserve memory for a shared-memory segment"))?;
        self.map.populate();
        Ok(())
    }

    /// The ring's first byte and length; the `length` bytes after any byte
    /// of the ring are mapped (the ring repeats once).
    ///
    /// # Panics
    ///
    /// If the segment has no ring (a bug in multiproc).
    pub(crate) fn ring(&self) -> (*mut u8, usize) {
        let (offset, len) = self.ring.expect("segment without a ring");
        (self.map.as_ptr().wrapping_add(offset), len)
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping is at least `BODY` (64) bytes, page-aligned, and
        // `Header` is 64 bytes of atomics (valid for any bit pattern, fine to
        // share between processes). The reference borrows `self`, which owns
        // the mapping.
        unsafe { &*self.map.as_ptr().cast::<Header>() }
    }

    /// Marks the segment as split into chunks; `false` if it already was
    /// (by any process). A word another process may write: it only decides
    /// whether this call wins, never an index or a length.
    pub(crate) fn claim_split(&self) -> bool {
        self.header().split.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Length of the body in bytes (up to the ring, if there is one).
    pub(crate) fn body_len(&self) -> usize {
        match self.ring {
            Some((offset, _)) => offset - BODY,
            None => self.map.len() - BODY,
        }
    }

    /// The number of elements recorded at creation (arrays).
    pub(crate) fn elem_count(&self) -> usize {
        self.elem_count
    }

    /// The body's first byte (aligned to 64).
    pub(crate) fn body_ptr(&self) -> *mut u8 {
        self.map.as_ptr().wrapping_add(BODY)
    }

    /// The `T` at `offset` in the body.
    ///
    /// # Panics
    ///
    /// If `T` does not fit at `offset` or is misaligned there: offsets are
    /// fixed by the owning handle type, so this is a bug in multiproc.
    pub(crate) fn at<T: InShm>(&self, offset: usize) -> &T {
        let end = offset.checked_add(size_of::<T>());
        assert!(end.is_some_and(|end| end <= self.body_len()), "shared object out of bounds");
        assert!((BODY + offset).is_multiple_of(align_of::<T>()), "misaligned shared object");
        // SAFETY: in bounds and aligned (checked above); `T: InShm` is made of
        // atomics, valid for any bits and for concurrent use by any process;
        // the reference borrows `self`, which keeps the mapping alive.
        unsafe { &*self.body_ptr().add(offset).cast::<T>() }
    }

    /// The `count` values of `T` from `offset` in the body.
    ///
    /// # Panics
    ///
    /// As [`at`](Self::at), if they do not all fit.
    pub(crate) fn slice_at<T: InShm>(&self, offset: usize, count: usize) -> &[T] {
        let end = size_of::<T>().checked_mul(count).and_then(|len| offset.checked_add(len));
        assert!(end.is_some_and(|end| end <= self.body_len()), "shared object out of bounds");
        assert!((BODY + offset).is_multiple_of(align_of::<T>()), "misaligned shared object");
        // SAFETY: as in `at`, for `count` consecutive values.
        unsafe { std::slice::from_raw_parts(self.body_ptr().add(offset).cast::<T>(), count) }
    }

    /// The segment's kind.
    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }
}

impl AsFd for Segment {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Serializes a segment as its descriptor.
pub(crate) fn serialize<S: Serializer>(
    segment: &Segment,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Wire<'a> {
        kind: u32,
        #[serde(with = "crate::transfer::fd")]
        fd: BorrowedFd<'a>,
    }
    Wire { kind: segment.kind() as u32, fd: segment.as_fd() }.serialize(serializer)
}

/// Deserializes and attaches a segment (see [`Segment::attach`]).
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
    kind: Kind,
    shape: Shape,
    min_body: impl Fn(usize) -> Option<usize>,
) -> Result<Arc<Segment>, D::Error> {
    #[derive(Deserialize)]
    struct Wire {
        kind: u32,
        #[serde(with = "crate::transfer::fd")]
        fd: OwnedFd,
    }
    let wire = Wire::deserialize(deserializer)?;
    if wire.kind != kind as u32 {
        return Err(serde::de::Error::custom(format!("expected a {}", kind.name())));
    }
    Segment::attach(wire.fd, kind, shape, min_body).map_err(crate::transfer::codec::refuse)
}

/// `offset` rounded up to a multiple of `align` (a power of two).
pub(crate) const fn align_up(offset: usize, align: usize) -> usize {
    (offset + align - 1) & !(align - 1)
}
