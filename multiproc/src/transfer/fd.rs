//! Serde support for file descriptors inside values that travel between
//! processes.
//!
//! Use it on a field with `#[serde(with = "multiproc::transfer::fd")]`; the
//! field may be any type that is `AsFd` and `From<OwnedFd>` (`OwnedFd`,
//! `File`, `UnixStream`, `TcpStream`, ...). See the [module
//! documentation](crate::transfer) for an example.

use std::os::fd::{AsFd, OwnedFd};

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

use super::codec;

/// The name under which a descriptor's index is serialized.
const NEWTYPE: &str = "multiproc::Fd";

/// Serializes `fd` as an index into the message's descriptor table.
///
/// # Errors
///
/// Fails when the serializer is not multiproc's (a descriptor means nothing
/// in a JSON document) or when the descriptor cannot be duplicated.
///
/// # Examples
///
/// ```
/// use std::fs::File;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Log {
///     #[serde(with = "multiproc::transfer::fd")]
///     file: File,
/// }
/// ```
pub fn serialize<F: AsFd, S: Serializer>(fd: &F, serializer: S) -> Result<S::Ok, S::Error> {
    let index = codec::push_fd(fd.as_fd()).map_err(S::Error::custom)?;
    serializer.serialize_newtype_struct(NEWTYPE, &index)
}

/// Deserializes a descriptor from the message's descriptor table.
///
/// # Errors
///
/// Fails when the deserializer is not multiproc's, or the index names a
/// descriptor that did not arrive or was already taken.
///
/// # Examples
///
/// ```
/// use std::os::fd::OwnedFd;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Carrier {
///     #[serde(with = "multiproc::transfer::fd")]
///     fd: OwnedFd,
/// }
/// ```
pub fn deserialize<'de, D: Deserializer<'de>, F: From<OwnedFd>>(
    deserializer: D,
) -> Result<F, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename = "multiproc::Fd")]
    struct Index(u32);
    let Index(index) = Index::deserialize(deserializer)?;
    codec::take_fd(index).map(F::from).map_err(D::Error::custom)
}
