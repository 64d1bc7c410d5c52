//! `SharedMemory`: named blocks of shared bytes (Python's
//! `multiprocessing.shared_memory.SharedMemory`), removed when nobody uses
//! them, even after `SIGKILL`.
#![allow(unsafe_code)] // byte copies in and out of the mapping: see SAFETY

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::janitor;
use crate::os::{self, Mapping};
use crate::{Error, Result};

const DIR: &str = "/dev/shm";

/// A block of bytes shared between processes under a name, like Python's
/// `shared_memory.SharedMemory`.
///
/// Any process may [`open`](SharedMemory::open) it by name while it exists;
/// a handle can also be passed to a child or sent in a message. The name is
/// removed automatically once no process has the block open any more,
/// *however* those processes ended (a janitor process takes care of it; see
/// the `shared` module), so no entry leaks in /dev/shm. [`unlink`] removes
/// the name earlier, as in Python.
///
/// [`unlink`]: SharedMemory::unlink
///
/// # Examples
///
/// ```
/// use multiproc::{Process, SharedMemory};
///
/// fn greet(name: String) {
///     let block = SharedMemory::open(&name).unwrap();
///     block.write(0, b"hello").unwrap();
/// }
///
/// let block = SharedMemory::new(64)?; // a generated name
/// Process::spawn(greet, block.name().to_owned())?.join()?;
/// let mut text = [0u8; 5];
/// block.read(0, &mut text)?;
/// assert_eq!(&text, b"hello");
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone)]
pub struct SharedMemory {
    block: Arc<Block>,
}

struct Block {
    name: String,
    /// Made by multiproc's `create` (then its janitor watches it too): only
    /// such names are removed early by a last drop; a name made by another
    /// program, which takes no `flock`, is never removed behind its back.
    created_here: bool,
    identity: (u64, u64),
    map: Option<Mapping>,
    /// Holds this process's shared `flock`; `None` only during drop.
    fd: Option<OwnedFd>,
    size: usize,
}

/// True if `path` is one that [`path_of`] can give: a valid name directly
/// inside the shared-memory directory (what the janitor may remove).
pub(crate) fn is_block_path(path: &std::path::Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str());
    path.parent() == Some(std::path::Path::new(DIR))
        && name.is_some_and(|name| path_of(name).is_ok_and(|p| p == path))
}

fn path_of(name: &str) -> Result<PathBuf> {
    let name = name.strip_prefix('/').unwrap_or(name);
    let valid = !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0']);
    if valid {
        Ok(PathBuf::from(DIR).join(name))
    } else {
        Err(Error::InvalidName { name: name.to_owned() })
    }
}

fn generated_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("mp-{}-{n}-{nanos:x}", os::getpid())
}

impl SharedMemory {
    /// Creates a block of `size` bytes named `name` (zero-filled).
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyExists`]; [`Error::InvalidName`] (empty, `/` inside,
    /// over 200 bytes); [`Error::SizeMismatch`] for a size of 0;
    /// [`Error::Os`].
    ///
    /// # Examples
    ///
    /// ```
    /// let name = format!("doc-create-{}", std::process::id());
    /// let block = multiproc::SharedMemory::create(&name, 4096)?;
    /// assert_eq!(block.size(), 4096);
    /// assert!(multiproc::SharedMemory::create(&name, 1).is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn create(name: &str, size: usize) -> Result<Self> {
        let path = path_of(name)?;
        if size == 0 {
            return Err(Error::SizeMismatch { expected: 1, actual: 0 });
        }
        let fd = os::create_exclusive(&path).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => Error::AlreadyExists { name: name.to_owned() },
            _ => Error::Os { op: "create shared memory", address: None, source: e },
        })?;
        let setup = || -> Result<(u64, u64)> {
            os::set_len(fd.as_fd(), size as u64).map_err(Error::os("size shared memory"))?;
            os::reserve(fd.as_fd(), size as u64)
                .map_err(Error::os("reserve shared memory (is /dev/shm full?)"))?;
            os::flock(fd.as_fd(), true, false).map_err(Error::os("lock shared memory"))?;
            let identity =
                os::file_identity(fd.as_fd()).map_err(Error::os("inspect shared memory"))?;
            janitor::watch(&path, fd.as_fd())?;
            Ok(identity)
        };
        let identity = match setup() {
            Ok(identity) => identity,
            Err(e) => {
                if let Ok(identity) = os::file_identity(fd.as_fd()) {
                    os::unlink_if_same(&path, identity);
                }
                return Err(e);
            }
        };
        Self::map(name, fd, identity, size, true)
    }

    /// Creates a block of `size` bytes with a generated, unique name (Python's
    /// `SharedMemory(create=True, size=size)`).
    ///
    /// # Errors
    ///
    /// As [`create`](SharedMemory::create).
    ///
    /// # Examples
    ///
    /// ```
    /// let block = multiproc::SharedMemory::new(10)?;
    /// assert!(block.name().starts_with("mp-"));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new(size: usize) -> Result<Self> {
        Self::create(&generated_name(), size)
    }

    /// Opens the existing block `name`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; [`Error::InvalidName`]; [`Error::Os`].
    ///
    /// # Examples
    ///
    /// ```
    /// let block = multiproc::SharedMemory::new(10)?;
    /// let again = multiproc::SharedMemory::open(block.name())?;
    /// assert_eq!(again.size(), 10);
    /// assert!(matches!(
    ///     multiproc::SharedMemory::open("no-such-block"),
    ///     Err(multiproc::Error::NotFound { .. })
    /// ));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Self> {
        let path = path_of(name)?;
        let not_found = || Error::NotFound { name: name.to_owned() };
        let fd = os::open_existing(&path, true).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => not_found(),
            _ => Error::Os { op: "open shared memory", address: None, source: e },
        })?;
        os::flock(fd.as_fd(), true, false).map_err(Error::os("lock shared memory"))?;
        let identity = os::file_identity(fd.as_fd()).map_err(Error::os("inspect shared memory"))?;
        // It may have been removed between our open and our lock.
        if os::path_identity(&path).ok() != Some(identity) {
            return Err(not_found());
        }
        // A creator sizes the file right after creating it: wait a moment.
        let mut size = 0;
        for _ in 0..100 {
            size = os::file_size(fd.as_fd()).map_err(Error::os("inspect shared memory"))?;
            if size > 0 {
                break;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        let size = usize::try_from(size).map_err(|_| Error::protocol("shared memory too large"))?;
        if size == 0 {
            return Err(not_found());
        }
        Self::map(name, fd, identity, size, false)
    }

    /// Opens the existing block `name`, which must have exactly `size` bytes.
    ///
    /// # Errors
    ///
    /// [`Error::SizeMismatch`], and as [`open`](SharedMemory::open).
    ///
    /// # Examples
    ///
    /// ```
    /// let block = multiproc::SharedMemory::new(10)?;
    /// assert!(multiproc::SharedMemory::open_with_size(block.name(), 10).is_ok());
    /// assert!(matches!(
    ///     multiproc::SharedMemory::open_with_size(block.name(), 11),
    ///     Err(multiproc::Error::SizeMismatch { expected: 11, actual: 10 })
    /// ));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn open_with_size(name: &str, size: usize) -> Result<Self> {
        let block = Self::open(name)?;
        if block.size() != size {
            return Err(Error::SizeMismatch { expected: size, actual: block.size() });
        }
        Ok(block)
    }

    fn map(
        name: &str,
        fd: OwnedFd,
        identity: (u64, u64),
        size: usize,
        created_here: bool,
    ) -> Result<Self> {
        let map = Mapping::new(fd.as_fd(), size).map_err(Error::os("map shared memory"))?;
        let name = name.strip_prefix('/').unwrap_or(name).to_owned();
        let block = Block { name, created_here, identity, map: Some(map), fd: Some(fd), size };
        Ok(Self { block: Arc::new(block) })
    }

    /// The block's name.
    ///
    /// # Examples
    ///
    /// ```
    /// let block = multiproc::SharedMemory::new(1)?;
    /// assert!(!block.name().is_empty());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.block.name
    }

    /// The block's size in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::SharedMemory::new(3)?.size(), 3);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn size(&self) -> usize {
        self.block.size
    }

    /// The first byte of the mapping, for code that shares it in its own way.
    ///
    /// Anyone able to open a named block's file can shrink it; touching a
    /// mapped byte past the file's new end kills the process with `SIGBUS`.
    /// [`read`](Self::read) and [`write`](Self::write) go through the file
    /// and report that as an error instead; code using this pointer must
    /// trust every process that can open the block.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!multiproc::SharedMemory::new(3)?.as_ptr().is_null());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn as_ptr(&self) -> *mut u8 {
        self.block.map.as_ref().map_or(std::ptr::null_mut(), Mapping::as_ptr)
    }

    fn check(&self, offset: usize, len: usize) -> Result<()> {
        let size = self.size();
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(Error::OutOfBounds { offset, len, size });
        }
        Ok(())
    }

    /// Copies `buf.len()` bytes starting at `offset` into `buf`.
    ///
    /// Other processes may write meanwhile: synchronize with a lock or an
    /// event when that matters.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] past the end.
    ///
    /// # Examples
    ///
    /// ```
    /// let block = multiproc::SharedMemory::new(4)?;
    /// let mut buf = [1u8; 4];
    /// block.read(0, &mut buf)?;
    /// assert_eq!(buf, [0; 4]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check(offset, buf.len())?;
        // Through the file, not the mapping: a named block's file can be
        // shrunk by anyone who can open it, and touching a mapped page past
        // its end would kill this process with `SIGBUS`.
        let got = os::read_at(self.as_fd(), buf, offset as u64)
            .map_err(Error::os("read shared memory"))?;
        if got < buf.len() {
            return Err(self.shrunk(offset, buf.len()));
        }
        Ok(())
    }

    /// The error for an access past the end of a file that another party
    /// shrank.
    fn shrunk(&self, offset: usize, len: usize) -> Error {
        let size = os::file_size(self.as_fd()).map_or(0, |s| usize::try_from(s).unwrap_or(0));
        Error::OutOfBounds { offset, len, size }
    }

    /// Copies `data` into the block at `offset`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] past the end.
    ///
    /// # Examples
    ///
    /// ```
    /// let block = multiproc::SharedMemory::new(4)?;
    /// block.write(1, b"ab")?;
    /// assert_eq!(block.to_vec(), b"\0ab\0");
    /// assert!(block.write(3, b"ab").is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check(offset, data.len())?;
        // Through the file, as for `read`; a write must not grow a file
        // that another party shrank either.
        let size = os::file_size(self.as_fd()).map_err(Error::os("inspect shared memory"))?;
        if ((offset + data.len()) as u64) > size {
            return Err(self.shrunk(offset, data.len()));
        }
        os::write_at(self.as_fd(), data, offset as u64).map_err(Error::os("write shared memory"))
    }

    /// A copy of the whole block (Python's `bytes(shm.buf)`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiproc::SharedMemory::new(2)?.to_vec(), [0, 0]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0; self.size()];
        let _ = self.read(0, &mut out);
        out
    }

    /// Removes the name now (Python's `unlink()`); processes that have the
    /// block open keep using it. Without this call the name goes once the
    /// block is no longer in use anywhere.
    ///
    /// # Examples
    ///
    /// ```
    /// let block = multiproc::SharedMemory::new(2)?;
    /// block.unlink();
    /// assert!(multiproc::SharedMemory::open(block.name()).is_err());
    /// block.write(0, b"ok")?; // still usable
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn unlink(&self) {
        if let Ok(path) = path_of(&self.block.name) {
            os::unlink_if_same(&path, self.block.identity);
        }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        self.map = None;
        // Releases our shared lock, unless another process shares this open
        // file (a forked child, or one we sent the handle to).
        self.fd = None;
        if !self.created_here {
            return;
        }
        // If nobody holds the block any more, remove its name now rather than
        // leave it to the janitor. A fresh open file has its own lock, which
        // conflicts with every holder's, so it is granted only when there is
        // none. (When the janitor wins this race, it removes the name itself
        // a moment later.)
        let Ok(path) = path_of(&self.name) else { return };
        let Ok(fd) = os::open_existing(&path, false) else { return };
        let same = os::file_identity(fd.as_fd()).is_ok_and(|id| id == self.identity);
        if same && os::flock(fd.as_fd(), false, true).unwrap_or(false) {
            os::unlink_if_same(&path, self.identity);
        }
    }
}

impl AsFd for SharedMemory {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.block.fd {
            Some(fd) => fd.as_fd(),
            None => unreachable!("the descriptor is only released in drop"),
        }
    }
}

#[derive(Serialize)]
struct WireOut<'a> {
    name: &'a str,
    #[serde(with = "crate::transfer::fd")]
    fd: BorrowedFd<'a>,
}

#[derive(Deserialize)]
struct WireIn {
    name: String,
    #[serde(with = "crate::transfer::fd")]
    fd: OwnedFd,
}

impl Serialize for SharedMemory {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireOut { name: self.name(), fd: self.as_fd() }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let wire = WireIn::deserialize(deserializer)?;
        path_of(&wire.name).map_err(D::Error::custom)?;
        let size = os::file_size(wire.fd.as_fd()).map_err(D::Error::custom)?;
        let size = usize::try_from(size).map_err(D::Error::custom)?;
        if size == 0 {
            return Err(D::Error::custom("empty shared memory"));
        }
        let identity = os::file_identity(wire.fd.as_fd()).map_err(D::Error::custom)?;
        Self::map(&wire.name, wire.fd, identity, size, false).map_err(D::Error::custom)
    }
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name())
            .field("size", &self.size())
            .finish()
    }
}
