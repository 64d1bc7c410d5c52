//! `FdHandle`: an open file that can be handed to a child process.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An open file descriptor that travels to other processes.
///
/// Pass it (or a value holding it) as a process argument, return it from a
/// child, or send it in a message: it arrives open in the other process,
/// referring to the same open file (same offset, same pipe, same socket). It
/// is the simplest library handle and is built on the same mechanism as all
/// the others (see [`transfer`](crate::transfer)).
///
/// # Examples
///
/// A child writes into a pipe whose read end the parent keeps:
///
/// ```
/// use std::io::{Read, Write};
/// use multiproc::{FdHandle, Process};
///
/// fn greet(out: FdHandle) {
///     out.file().write_all(b"hello from the child").unwrap();
/// }
///
/// let (mut reader, writer) = std::io::pipe()?;
/// let child = Process::spawn(greet, FdHandle::new(writer))?;
/// child.join()?;
/// let mut text = String::new();
/// reader.read_to_string(&mut text)?;
/// assert_eq!(text, "hello from the child");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct FdHandle {
    file: File,
}

impl FdHandle {
    /// Wraps any owned descriptor: a `File`, `OwnedFd`, pipe end, socket...
    ///
    /// # Examples
    ///
    /// ```
    /// let (_reader, writer) = std::io::pipe()?;
    /// let handle = multiproc::FdHandle::new(writer);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(fd: impl Into<OwnedFd>) -> Self {
        Self { file: File::from(fd.into()) }
    }

    /// The descriptor as a `File`, for `Read`/`Write`/`Seek` (`&File`
    /// implements all three).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// let (_reader, writer) = std::io::pipe()?;
    /// let handle = multiproc::FdHandle::new(writer);
    /// handle.file().write_all(b"x")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Unwraps the `File`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_reader, writer) = std::io::pipe()?;
    /// let file: std::fs::File = multiproc::FdHandle::new(writer).into_file();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_file(self) -> File {
        self.file
    }

    /// A second handle to the same open file (`dup`).
    ///
    /// # Errors
    ///
    /// [`Error::Os`](crate::Error::Os) when the process is out of descriptors.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_reader, writer) = std::io::pipe()?;
    /// let one = multiproc::FdHandle::new(writer);
    /// let two = one.try_clone()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_clone(&self) -> crate::Result<Self> {
        Ok(Self {
            file: self.file.try_clone().map_err(crate::Error::os("duplicate a descriptor"))?,
        })
    }
}

impl AsFd for FdHandle {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl From<File> for FdHandle {
    fn from(file: File) -> Self {
        Self { file }
    }
}

impl From<OwnedFd> for FdHandle {
    fn from(fd: OwnedFd) -> Self {
        Self::new(fd)
    }
}

impl From<FdHandle> for OwnedFd {
    fn from(handle: FdHandle) -> Self {
        handle.file.into()
    }
}

impl Serialize for FdHandle {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        super::fd::serialize(&self.file, serializer)
    }
}

impl<'de> Deserialize<'de> for FdHandle {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        super::fd::deserialize::<D, File>(deserializer).map(Self::from)
    }
}
