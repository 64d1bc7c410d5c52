//! Frames on a Unix stream socket: a 16-byte header, a payload, and the
//! descriptors that belong to it.
//!
//! ```text
//! magic "mpF1" | descriptor count: u32 LE | payload length: u64 LE | payload
//! ```
//!
//! The descriptors ride on the first byte of the header, so the kernel hands
//! them to the `recvmsg` that reads it and never mixes them with the next
//! frame's. Everything in a header is checked before it is used: a wrong
//! magic, a length over the receiver's limit, a descriptor count that does
//! not match, a stream that ends mid-frame are errors, and the payload buffer
//! grows with the bytes that actually arrive, never to a claimed size.

use std::io::{self, IoSlice};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Instant;

use crate::os::{self, MAX_FDS_PER_MESSAGE};
use crate::{Error, Result};

/// Bytes in a frame header.
pub(crate) const HEADER_LEN: usize = 16;
const MAGIC: [u8; 4] = *b"mpF1";
/// The largest step by which a payload buffer grows ahead of the data.
const GROWTH_STEP: usize = 1 << 20;

/// One received frame.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) payload: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
}

/// What a read made of the stream.
#[derive(Debug)]
pub(crate) enum Progress {
    /// A whole frame arrived.
    Frame(Frame),
    /// No whole frame yet; nothing more to read without blocking.
    Pending,
    /// The peer closed the stream at a frame boundary.
    Closed,
}

fn map_send_error(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => Error::Disconnected,
        _ => Error::Os { op: "send to another process", address: None, source: e },
    }
}

/// Sends one frame made of the concatenation of `parts`, with `fds`.
///
/// Blocks until the whole frame is in the socket.
pub(crate) fn send_frame(
    sock: BorrowedFd<'_>,
    parts: &[&[u8]],
    fds: &[BorrowedFd<'_>],
) -> Result<()> {
    if fds.len() > MAX_FDS_PER_MESSAGE {
        return Err(Error::TooManyFds { count: fds.len(), max: MAX_FDS_PER_MESSAGE });
    }
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(&MAGIC);
    header[4..8].copy_from_slice(&(fds.len() as u32).to_le_bytes());
    header[8..].copy_from_slice(&(len as u64).to_le_bytes());

    // The usual case, a header and one or two parts sent whole by one
    // `sendmsg`, allocates nothing.
    let mut sent = 0;
    if parts.len() <= 2 {
        let empty: &[u8] = &[];
        let slices = [
            IoSlice::new(&header),
            IoSlice::new(parts.first().copied().unwrap_or(empty)),
            IoSlice::new(parts.get(1).copied().unwrap_or(empty)),
        ];
        sent = os::send_with_fds(sock, &slices, fds, false).map_err(map_send_error)?;
        if sent == HEADER_LEN + len {
            return Ok(());
        }
    }
    let mut chunks: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
    chunks.push(&header);
    chunks.extend(parts.iter().copied().filter(|p| !p.is_empty()));
    // The descriptors went with the first attempt if there was one.
    let mut first = sent == 0;
    advance(&mut chunks, sent);
    while !chunks.is_empty() {
        let slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
        let attach: &[BorrowedFd<'_>] = if first { fds } else { &[] };
        let sent = os::send_with_fds(sock, &slices, attach, false).map_err(map_send_error)?;
        first = false;
        advance(&mut chunks, sent);
    }
    Ok(())
}

/// Drops the first `sent` bytes of `chunks`.
fn advance(chunks: &mut Vec<&[u8]>, mut sent: usize) {
    while sent > 0 {
        if sent >= chunks[0].len() {
            sent -= chunks[0].len();
            chunks.remove(0);
        } else {
            chunks[0] = &chunks[0][sent..];
            sent = 0;
        }
    }
}

/// Reassembles frames from a stream, however the bytes are split.
///
/// An exact reader ([`FrameReader::new`]) never reads a byte past the frame
/// it is assembling, so the stream can be handed on to other code between
/// frames. A read-ahead reader ([`FrameReader::with_read_ahead`]) reads up to
/// its buffer's size at a time, so a small frame costs one `recvmsg`; it must
/// stay the only reader of its stream.
///
/// Descriptors travel with the first byte of their frame; a read ahead may
/// bring the next frame's descriptors early, so they queue here until their
/// frame's header claims them.
#[derive(Debug)]
pub(crate) struct FrameReader {
    max_len: u64,
    ahead: Box<[u8]>,
    ahead_start: usize,
    ahead_end: usize,
    header: [u8; HEADER_LEN],
    header_got: usize,
    want: usize,
    nfds: usize,
    payload: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl FrameReader {
    /// An exact reader that refuses payloads longer than `max_len` bytes.
    pub(crate) fn new(max_len: u64) -> Self {
        Self::with_read_ahead(max_len, 0)
    }

    /// A reader that reads up to `ahead` bytes past the current frame.
    pub(crate) fn with_read_ahead(max_len: u64, ahead: usize) -> Self {
        Self {
            max_len,
            ahead: vec![0; ahead].into_boxed_slice(),
            ahead_start: 0,
            ahead_end: 0,
            header: [0; HEADER_LEN],
            header_got: 0,
            want: 0,
            nfds: 0,
            payload: Vec::new(),
            fds: Vec::new(),
        }
    }

    /// A read-ahead reader whose stream starts with `unread`: the bytes
    /// another reader of the same stream had taken but not used (see
    /// [`FrameReader::unread`]).
    pub(crate) fn resume(max_len: u64, ahead: usize, unread: &[u8]) -> Self {
        let mut reader = Self::with_read_ahead(max_len, ahead.max(unread.len()));
        reader.ahead[..unread.len()].copy_from_slice(unread);
        reader.ahead_end = unread.len();
        reader
    }

    /// The bytes taken from the stream and not yet handed out as frames, so
    /// that another reader can go on where this one stops.
    ///
    /// # Errors
    ///
    /// If descriptors were taken too: they cannot be put back.
    pub(crate) fn unread(&self) -> Result<Vec<u8>> {
        if !self.fds.is_empty() {
            return Err(Error::Unsupported {
                reason: "a connection holding received file descriptors of a message not yet \
                         received cannot be sent on; receive that message first",
            });
        }
        let mut bytes = Vec::with_capacity(
            self.header_got + self.payload.len() + self.ahead_end - self.ahead_start,
        );
        bytes.extend_from_slice(&self.header[..self.header_got]);
        if self.header_got == HEADER_LEN {
            bytes.extend_from_slice(&self.payload);
        }
        bytes.extend_from_slice(&self.ahead[self.ahead_start..self.ahead_end]);
        Ok(bytes)
    }

    /// Whether a whole frame (or a header that the next read refuses) waits
    /// in the read-ahead buffer, so that a read returns without the socket.
    pub(crate) fn has_buffered_frame(&self) -> bool {
        let ahead = &self.ahead[self.ahead_start..self.ahead_end];
        if self.header_got == HEADER_LEN {
            return ahead.len() >= self.want - self.payload.len();
        }
        let need = HEADER_LEN - self.header_got;
        if ahead.len() < need {
            return false;
        }
        let mut header = self.header;
        header[self.header_got..].copy_from_slice(&ahead[..need]);
        let len = u64::from_le_bytes([
            header[8], header[9], header[10], header[11], header[12], header[13], header[14],
            header[15],
        ]);
        header[..4] != MAGIC || len > self.max_len || (ahead.len() - need) as u64 >= len
    }

    /// True if part of a frame has been read.
    pub(crate) fn is_mid_frame(&self) -> bool {
        self.header_got > 0 || self.ahead_start < self.ahead_end
    }

    fn frame_done(&self) -> bool {
        self.header_got == HEADER_LEN && self.payload.len() == self.want
    }

    /// Moves read-ahead bytes into the frame being assembled.
    fn use_ahead(&mut self) -> Result<()> {
        while self.ahead_start < self.ahead_end && !self.frame_done() {
            let available = &self.ahead[self.ahead_start..self.ahead_end];
            if self.header_got < HEADER_LEN {
                let n = available.len().min(HEADER_LEN - self.header_got);
                self.header[self.header_got..self.header_got + n].copy_from_slice(&available[..n]);
                self.header_got += n;
                self.ahead_start += n;
                if self.header_got == HEADER_LEN {
                    self.parse_header()?;
                }
            } else {
                let n = available.len().min(self.want - self.payload.len());
                self.payload.extend_from_slice(&available[..n]);
                self.ahead_start += n;
            }
        }
        Ok(())
    }

    /// Reads as much as is available; blocks only if `nonblocking` is false.
    pub(crate) fn read(&mut self, sock: BorrowedFd<'_>, nonblocking: bool) -> Result<Progress> {
        loop {
            self.use_ahead()?;
            if self.frame_done() {
                return self.finish();
            }
            // Everything read ahead is used: the next bytes come from the
            // socket, into the read-ahead buffer, the header, or (for a
            // payload larger than the buffer) straight into the payload.
            let missing = self.want - self.payload.len();
            let fds_before = self.fds.len();
            let at_boundary = self.header_got == 0;
            let into_ahead = !self.ahead.is_empty()
                && (self.header_got < HEADER_LEN || missing < self.ahead.len());
            let result = if into_ahead
                && (self.header_got < HEADER_LEN || missing < self.ahead.len())
            {
                self.ahead_start = 0;
                self.ahead_end = 0;
                os::recv_with_fds(sock, &mut self.ahead, &mut self.fds, nonblocking).inspect(|&n| {
                    self.ahead_end = n;
                })
            } else if self.header_got < HEADER_LEN {
                let read = os::recv_with_fds(
                    sock,
                    &mut self.header[self.header_got..],
                    &mut self.fds,
                    nonblocking,
                );
                if let Ok(n @ 1..) = read {
                    self.header_got += n;
                    if self.header_got == HEADER_LEN {
                        self.parse_header()?;
                    }
                }
                read
            } else {
                let old = self.payload.len();
                let step = missing.min(GROWTH_STEP.max(old));
                self.payload.resize(old + step, 0);
                let read =
                    os::recv_with_fds(sock, &mut self.payload[old..], &mut self.fds, nonblocking);
                self.payload.truncate(old + *read.as_ref().unwrap_or(&0));
                read
            };
            if self.fds.len() > fds_before {
                self.check_new_fds(into_ahead, at_boundary)?;
            }
            match result {
                Ok(0) => {
                    if self.header_got == 0 && self.fds.is_empty() {
                        return Ok(Progress::Closed);
                    }
                    return Err(self.truncated());
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Progress::Pending),
                Err(e) => return Err(self.recv_error(e)),
            }
        }
    }

    /// Checks descriptors that a read just brought.
    ///
    /// They ride on the first byte of their frame's header, so a read that
    /// does not start at a frame boundary can only bring them for a later
    /// frame, and only one read-ahead past the current frame: that is at most
    /// one frame's worth beyond the current one. Anything else is a peer's
    /// lie, refused before it can make us hold descriptors without bound.
    fn check_new_fds(&mut self, into_ahead: bool, at_boundary: bool) -> Result<()> {
        let lie = if !into_ahead && !at_boundary {
            // Reading exactly within the current frame: no frame starts here.
            true
        } else {
            self.fds.len() > 2 * MAX_FDS_PER_MESSAGE
        };
        if lie {
            let held = self.fds.len();
            self.reset();
            return Err(Error::protocol(format!(
                "{held} file descriptors arrived that no frame announced"
            )));
        }
        Ok(())
    }

    /// Hands out the frame just completed with its descriptors.
    fn finish(&mut self) -> Result<Progress> {
        let nfds = self.nfds;
        let spare = self.fds.len().checked_sub(nfds);
        // Descriptors beyond this frame's belong to a frame read ahead; with
        // nothing read ahead they are a peer's lie.
        let lie = |spare: usize| {
            spare > MAX_FDS_PER_MESSAGE || (spare > 0 && self.ahead_start == self.ahead_end)
        };
        if spare.is_none_or(lie) {
            let arrived = self.fds.len();
            self.reset();
            return Err(Error::protocol(format!(
                "frame announced {nfds} file descriptors but {arrived} arrived"
            )));
        }
        let fds = self.fds.drain(..nfds).collect();
        let payload = std::mem::take(&mut self.payload);
        self.header_got = 0;
        self.want = 0;
        self.nfds = 0;
        Ok(Progress::Frame(Frame { payload, fds }))
    }

    fn parse_header(&mut self) -> Result<()> {
        let h = &self.header;
        if h[..4] != MAGIC {
            self.reset();
            return Err(Error::protocol("bad frame header"));
        }
        let nfds = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
        let len = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
        if nfds > MAX_FDS_PER_MESSAGE {
            self.reset();
            return Err(Error::protocol(format!("frame announces {nfds} file descriptors")));
        }
        if len > self.max_len {
            self.reset();
            return Err(Error::FrameTooLarge { len, max: self.max_len });
        }
        self.nfds = nfds;
        self.want =
            usize::try_from(len).map_err(|_| Error::FrameTooLarge { len, max: self.max_len })?;
        self.payload = Vec::with_capacity(self.want.min(GROWTH_STEP));
        Ok(())
    }

    fn reset(&mut self) {
        self.ahead_start = 0;
        self.ahead_end = 0;
        self.header_got = 0;
        self.want = 0;
        self.nfds = 0;
        self.payload = Vec::new();
        self.fds.clear();
    }

    fn truncated(&mut self) -> Error {
        let got = self.payload.len();
        let want = self.want;
        let in_header = self.header_got < HEADER_LEN;
        self.reset();
        if in_header {
            Error::protocol("stream ended inside a frame header")
        } else {
            Error::protocol(format!("stream ended after {got} of {want} payload bytes"))
        }
    }

    fn recv_error(&mut self, e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::ConnectionReset {
            if self.is_mid_frame() {
                return self.truncated();
            }
            return Error::Disconnected;
        }
        if e.kind() == io::ErrorKind::InvalidData {
            self.reset();
            return Error::protocol(e.to_string());
        }
        Error::Os { op: "receive from another process", address: None, source: e }
    }
}

/// Receives one frame, waiting at most until `deadline`.
///
/// `Ok(None)` means the peer closed the stream cleanly.
pub(crate) fn recv_frame(
    sock: BorrowedFd<'_>,
    max_len: u64,
    deadline: Option<Instant>,
) -> Result<Option<Frame>> {
    let mut reader = FrameReader::new(max_len);
    loop {
        match reader.read(sock, true)? {
            Progress::Frame(frame) => return Ok(Some(frame)),
            Progress::Closed => return Ok(None),
            Progress::Pending => {
                if os::wait_readable(&[sock], deadline)
                    .map_err(Error::os("wait for another process"))?
                    .is_none()
                {
                    return Err(Error::Timeout);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    fn pair() -> (UnixStream, UnixStream) {
        UnixStream::pair().unwrap()
    }

    #[test]
    fn frames_round_trip_with_descriptors() {
        let (a, b) = pair();
        let (x, _y) = crate::os::stream_pair().unwrap();
        send_frame(a.as_fd(), &[b"he", b"llo"], &[x.as_fd()]).unwrap();
        send_frame(a.as_fd(), &[], &[]).unwrap();
        let f = recv_frame(b.as_fd(), 100, None).unwrap().unwrap();
        assert_eq!(f.payload, b"hello");
        assert_eq!(f.fds.len(), 1);
        let mut reader = FrameReader::new(100);
        match reader.read(b.as_fd(), true).unwrap() {
            Progress::Frame(f) => assert!(f.payload.is_empty() && f.fds.is_empty()),
            other => panic!("{other:?}"),
        }
        drop(a);
        assert!(matches!(reader.read(b.as_fd(), true).unwrap(), Progress::Closed));
    }

    #[test]
    fn a_read_ahead_reader_splits_frames_and_keeps_descriptors_with_theirs() {
        let (a, b) = pair();
        let (x, _y) = crate::os::stream_pair().unwrap();
        send_frame(a.as_fd(), &[b"first"], &[]).unwrap();
        send_frame(a.as_fd(), &[b"second"], &[x.as_fd()]).unwrap();
        send_frame(a.as_fd(), &[b"third"], &[]).unwrap();
        let mut reader = FrameReader::with_read_ahead(100, 4096);
        let mut got = Vec::new();
        while got.len() < 3 {
            match reader.read(b.as_fd(), false).unwrap() {
                Progress::Frame(f) => got.push((f.payload, f.fds.len())),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, [(b"first".to_vec(), 0), (b"second".to_vec(), 1), (b"third".to_vec(), 0)]);
        drop(a);
        assert!(matches!(reader.read(b.as_fd(), true).unwrap(), Progress::Closed));
    }

    #[test]
    fn unread_bytes_let_another_reader_go_on() {
        let (a, b) = pair();
        for word in [&b"one"[..], b"two", b"three"] {
            send_frame(a.as_fd(), &[word], &[]).unwrap();
        }
        let mut first = FrameReader::with_read_ahead(100, 4096);
        assert!(
            matches!(first.read(b.as_fd(), false).unwrap(), Progress::Frame(f) if f.payload == b"one")
        );
        assert!(first.is_mid_frame());
        let mut second = FrameReader::resume(100, 16, &first.unread().unwrap());
        for word in [&b"two"[..], b"three"] {
            match second.read(b.as_fd(), true).unwrap() {
                Progress::Frame(f) => assert_eq!(f.payload, word),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(second.read(b.as_fd(), true).unwrap(), Progress::Pending));
    }

    #[test]
    fn a_large_frame_passes_a_small_read_ahead_buffer() {
        let (a, b) = pair();
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let sender = {
            let big = big.clone();
            std::thread::spawn(move || {
                send_frame(a.as_fd(), &[&big], &[]).unwrap();
                send_frame(a.as_fd(), &[b"after"], &[]).unwrap();
            })
        };
        let mut reader = FrameReader::with_read_ahead(1 << 20, 64);
        match reader.read(b.as_fd(), false).unwrap() {
            Progress::Frame(f) => assert!(f.payload == big),
            other => panic!("{other:?}"),
        }
        match reader.read(b.as_fd(), false).unwrap() {
            Progress::Frame(f) => assert_eq!(f.payload, b"after"),
            other => panic!("{other:?}"),
        }
        sender.join().unwrap();
    }

    #[test]
    fn a_frame_split_in_pieces_is_reassembled() {
        let (mut a, b) = pair();
        let (c, d) = pair();
        send_frame(c.as_fd(), &[b"split me please"], &[]).unwrap();
        drop(c);
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut &d, &mut raw).unwrap();
        let mut reader = FrameReader::new(100);
        for byte in raw {
            assert!(matches!(reader.read(b.as_fd(), true).unwrap(), Progress::Pending));
            a.write_all(&[byte]).unwrap();
        }
        match reader.read(b.as_fd(), true).unwrap() {
            Progress::Frame(f) => assert_eq!(f.payload, b"split me please"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_oversized_length_is_refused_without_allocating_it() {
        let (mut a, b) = pair();
        let mut header = Vec::from(MAGIC);
        header.extend(0u32.to_le_bytes());
        header.extend(u64::MAX.to_le_bytes());
        a.write_all(&header).unwrap();
        let err = recv_frame(b.as_fd(), 1 << 20, None).unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { len: u64::MAX, max: 1_048_576 }), "{err:?}");
    }

    #[test]
    fn a_truncated_frame_is_an_error() {
        let (mut a, b) = pair();
        let mut header = Vec::from(MAGIC);
        header.extend(0u32.to_le_bytes());
        header.extend(10u64.to_le_bytes());
        a.write_all(&header).unwrap();
        a.write_all(b"abc").unwrap();
        drop(a);
        let err = recv_frame(b.as_fd(), 100, None).unwrap_err();
        assert!(err.to_string().contains("3 of 10"), "{err}");
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        let (mut a, b) = pair();
        a.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let err = recv_frame(b.as_fd(), 100, None).unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    }

    #[test]
    fn a_peer_cannot_make_a_reader_hoard_descriptors() {
        // Every frame announces none, yet each send carries ten descriptors,
        // and the stream always stops halfway into the next frame, so the
        // read-ahead buffer is never empty when a frame completes.
        let (a, b) = pair();
        let (x, _y) = crate::os::stream_pair().unwrap();
        let fds = vec![x.as_fd(); 10];
        let mut frame = Vec::from(MAGIC);
        frame.extend_from_slice(&0u32.to_le_bytes());
        frame.extend_from_slice(&4u64.to_le_bytes());
        frame.extend_from_slice(b"data");
        let half = frame.len() / 2;
        let mut reader = FrameReader::with_read_ahead(100, 4096);
        let mut refused = false;
        for round in 0..200 {
            let mut chunk = if round == 0 { frame.clone() } else { frame[half..].to_vec() };
            chunk.extend_from_slice(&frame[..half]);
            let sent = os::send_with_fds(a.as_fd(), &[IoSlice::new(&chunk)], &fds, false).unwrap();
            assert_eq!(sent, chunk.len());
            match reader.read(b.as_fd(), true) {
                Ok(_) => {}
                Err(_) => {
                    refused = true;
                    break;
                }
            }
            assert!(
                reader.fds.len() <= 2 * MAX_FDS_PER_MESSAGE,
                "the reader holds {} descriptors",
                reader.fds.len()
            );
        }
        assert!(refused, "descriptors that no frame announced were never refused");
    }

    #[test]
    fn a_wrong_descriptor_count_is_a_protocol_error() {
        let (mut a, b) = pair();
        let mut header = Vec::from(MAGIC);
        header.extend(2u32.to_le_bytes());
        header.extend(0u64.to_le_bytes());
        a.write_all(&header).unwrap();
        let err = recv_frame(b.as_fd(), 100, None).unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    }

    #[test]
    fn a_silent_peer_times_out() {
        let (_a, b) = pair();
        let deadline = Instant::now() + std::time::Duration::from_millis(20);
        assert!(matches!(recv_frame(b.as_fd(), 100, Some(deadline)), Err(Error::Timeout)));
    }
}
