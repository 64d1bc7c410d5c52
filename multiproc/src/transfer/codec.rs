//! Encoding values with their file descriptors, and decoding them back.
//!
//! The codec is postcard (serde, compact, stable wire format). While a value is
//! being encoded, a thread-local *outgoing table* collects duplicates of the
//! descriptors its handles serialize; while bytes are being decoded, a
//! thread-local *incoming table* offers the received descriptors by index.
//! Both tables are stacks, so a handle's serde impl may itself encode.

use std::cell::RefCell;
use std::os::fd::{BorrowedFd, OwnedFd};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::os::MAX_FDS_PER_MESSAGE;
use crate::{Error, Result};

thread_local! {
    static OUTGOING: RefCell<Vec<Vec<OwnedFd>>> = const { RefCell::new(Vec::new()) };
    static INCOMING: RefCell<Vec<Vec<Option<OwnedFd>>>> = const { RefCell::new(Vec::new()) };
    /// Why one of our handles refused to decode: postcard keeps no message
    /// of a `de::Error::custom`, so [`decode`] finds it here.
    static REFUSAL: RefCell<Option<Error>> = const { RefCell::new(None) };
}

/// A deserializer error for one of our handles that refused to decode,
/// keeping `why` for [`decode`] to report (postcard drops custom messages).
pub(crate) fn refuse<E: serde::de::Error>(why: Error) -> E {
    let message = why.to_string();
    REFUSAL.with(|r| *r.borrow_mut() = Some(why));
    E::custom(message)
}

/// A value in its travelling form: bytes plus the descriptors they refer to.
#[derive(Debug, Default)]
pub(crate) struct Encoded {
    pub(crate) bytes: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
}

/// Pops the outgoing table pushed by [`encode_into`], even on panic.
struct OutgoingScope;

impl OutgoingScope {
    fn enter() -> Self {
        OUTGOING.with(|t| t.borrow_mut().push(Vec::new()));
        Self
    }

    fn take(&self) -> Vec<OwnedFd> {
        OUTGOING.with(|t| t.borrow_mut().last_mut().map(std::mem::take).unwrap_or_default())
    }
}

impl Drop for OutgoingScope {
    fn drop(&mut self) {
        OUTGOING.with(|t| t.borrow_mut().pop());
    }
}

/// Pops the incoming table pushed by [`decode`]; unclaimed descriptors close.
struct IncomingScope;

impl Drop for IncomingScope {
    fn drop(&mut self) {
        INCOMING.with(|t| t.borrow_mut().pop());
    }
}

/// A postcard output that appends to a `Vec` by slices (one `memcpy` per
/// byte string, where postcard's `to_extend` pushes byte by byte).
pub(crate) struct Appender(pub(crate) Vec<u8>);

impl postcard::ser_flavors::Flavor for Appender {
    type Output = Vec<u8>;

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

/// Runs `encode` (a postcard encoding) and says whether it carried any
/// file descriptor; the descriptors it collected are closed.
pub(crate) fn carried_fds<R>(encode: impl FnOnce() -> R) -> (R, bool) {
    let scope = OutgoingScope::enter();
    let result = encode();
    (result, !scope.take().is_empty())
}

/// Encodes `value`, appending to `buf`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(value: &T, buf: Vec<u8>) -> Result<Encoded> {
    let scope = OutgoingScope::enter();
    let bytes = postcard::serialize_with_flavor(value, Appender(buf))
        .map_err(|e| Error::Encode { source: e.into() })?;
    let fds = scope.take();
    if fds.len() > MAX_FDS_PER_MESSAGE {
        return Err(Error::TooManyFds { count: fds.len(), max: MAX_FDS_PER_MESSAGE });
    }
    Ok(Encoded { bytes, fds })
}

/// Encodes `value` into a fresh buffer.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Encoded> {
    encode_into(value, Vec::new())
}

/// Decodes a `T` from `bytes`, handing `fds` to the handles inside it.
///
/// The bytes must be exactly one `T`: trailing bytes are a protocol error.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<T> {
    INCOMING.with(|t| t.borrow_mut().push(fds.into_iter().map(Some).collect()));
    let _scope = IncomingScope;
    REFUSAL.with(|r| r.borrow_mut().take());
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| {
        // A handle's own reason says more than the codec's.
        REFUSAL.with(|r| r.borrow_mut().take()).unwrap_or_else(|| Error::decode::<T>(e))
    })?;
    if !rest.is_empty() {
        return Err(Error::decode::<T>(format!("{} bytes left over after the value", rest.len())));
    }
    Ok(value)
}

/// Runs `f` with `fds` as the descriptors that handles decoded inside it
/// take (as [`decode`] does around its own decoding).
pub(crate) fn with_incoming<R>(fds: Vec<OwnedFd>, f: impl FnOnce() -> R) -> R {
    INCOMING.with(|t| t.borrow_mut().push(fds.into_iter().map(Some).collect()));
    let _scope = IncomingScope;
    f()
}

/// Adds a duplicate of `fd` to the current outgoing table; returns its index.
pub(crate) fn push_fd(fd: BorrowedFd<'_>) -> std::result::Result<u32, String> {
    let dup = fd
        .try_clone_to_owned()
        .map_err(|e| format!("could not duplicate a file descriptor: {e}"))?;
    OUTGOING.with(|t| {
        let mut tables = t.borrow_mut();
        let table = tables.last_mut().ok_or_else(|| {
            "a file descriptor can only be serialized by multiproc (as a process argument, \
             a return value or a message)"
                .to_owned()
        })?;
        let index = u32::try_from(table.len()).map_err(|_| "too many file descriptors")?;
        table.push(dup);
        Ok(index)
    })
}

/// Takes descriptor `index` from the current incoming table.
pub(crate) fn take_fd(index: u32) -> std::result::Result<OwnedFd, String> {
    INCOMING.with(|t| {
        let mut tables = t.borrow_mut();
        let table = tables
            .last_mut()
            .ok_or_else(|| "a file descriptor can only be deserialized by multiproc".to_owned())?;
        let slot = usize::try_from(index)
            .ok()
            .and_then(|i| table.get_mut(i))
            .ok_or_else(|| format!("file descriptor {index} is missing from the message"))?;
        slot.take().ok_or_else(|| format!("file descriptor {index} is claimed twice"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct WithFd {
        tag: u8,
        #[serde(with = "crate::transfer::fd")]
        fd: OwnedFd,
    }

    #[test]
    fn descriptors_round_trip_through_the_side_table() {
        let (a, _b) = crate::os::stream_pair().unwrap();
        let encoded = encode(&WithFd { tag: 5, fd: a }).unwrap();
        assert_eq!(encoded.fds.len(), 1);
        let back: WithFd = decode(&encoded.bytes, encoded.fds).unwrap();
        assert_eq!(back.tag, 5);
        assert!(back.fd.as_fd().try_clone_to_owned().is_ok());
    }

    #[test]
    fn a_missing_descriptor_is_an_error_not_a_panic() {
        let (a, _b) = crate::os::stream_pair().unwrap();
        let encoded = encode(&WithFd { tag: 5, fd: a }).unwrap();
        let err = decode::<WithFd>(&encoded.bytes, Vec::new()).err().unwrap();
        assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    }

    #[test]
    fn a_descriptor_claimed_twice_is_an_error() {
        let (a, _b) = crate::os::stream_pair().unwrap();
        let one = encode(&WithFd { tag: 1, fd: a }).unwrap();
        // Two values that both name descriptor 0.
        let mut bytes = one.bytes.clone();
        bytes.extend_from_slice(&one.bytes);
        let err = decode::<(WithFd, WithFd)>(&bytes, one.fds).err().unwrap();
        assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    }

    #[test]
    fn trailing_bytes_are_a_decode_error_naming_the_type() {
        let mut bytes = encode(&7u32).unwrap().bytes;
        bytes.push(0);
        let err = decode::<u32>(&bytes, Vec::new()).err().unwrap();
        assert!(matches!(err, Error::Decode { expected: "u32", .. }), "{err:?}");
    }

    #[test]
    fn descriptors_cannot_be_serialized_outside_multiproc() {
        let (a, _b) = crate::os::stream_pair().unwrap();
        let err = postcard::to_allocvec(&WithFd { tag: 1, fd: a }).unwrap_err();
        let _ = err; // postcard flattens custom messages; the point is: no panic.
    }
}
