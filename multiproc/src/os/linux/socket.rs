//! Unix stream sockets that carry file descriptors (`SCM_RIGHTS`).
#![allow(unsafe_code)] // SO_PEERCRED, TIOCOUTQ: see their SAFETY comments

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType, recvmsg,
    sendmsg, socketpair,
};

/// The most descriptors Linux passes in one message (`SCM_MAX_FD`).
pub(crate) const MAX_FDS_PER_MESSAGE: usize = 253;

const CMSG_SPACE: usize = rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE));

/// A connected pair of close-on-exec Unix stream sockets.
pub(crate) fn stream_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    super::with_fd_room(|| {
        Ok(socketpair(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)?)
    })
}

/// A connected pair of close-on-exec Unix sequenced-packet sockets: each
/// send is one record, received whole by one receive (with its
/// descriptors), so several processes can share either end.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    super::with_fd_room(|| {
        Ok(socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)?)
    })
}

/// Whether `fd` is a Unix sequenced-packet socket.
pub(crate) fn is_seqpacket(fd: BorrowedFd<'_>) -> bool {
    rustix::net::sockopt::socket_type(fd).is_ok_and(|t| t == SocketType::SEQPACKET)
}

/// Sends `bufs`, attaching `fds` to the first byte; returns how many bytes went.
///
/// Never raises `SIGPIPE`: a closed peer is an `EPIPE` error.
pub(crate) fn send_with_fds(
    sock: BorrowedFd<'_>,
    bufs: &[IoSlice<'_>],
    fds: &[BorrowedFd<'_>],
    nonblocking: bool,
) -> io::Result<usize> {
    if fds.len() > MAX_FDS_PER_MESSAGE {
        return Err(io::Error::from(Errno::TOOMANYREFS));
    }
    let mut space = [MaybeUninit::uninit(); CMSG_SPACE];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::from(Errno::TOOMANYREFS));
    }
    let mut flags = SendFlags::NOSIGNAL;
    if nonblocking {
        flags |= SendFlags::DONTWAIT;
    }
    loop {
        match sendmsg(sock, bufs, &mut control, flags) {
            Err(Errno::INTR) => continue,
            other => return Ok(other?),
        }
    }
}

/// Receives into `buf`, appending any descriptors that came with the bytes to `fds`.
///
/// Returns the number of bytes read, `0` at end of stream. Received
/// descriptors are close-on-exec. If the kernel had to drop descriptors
/// because too many came at once, the ones that did arrive are closed and an
/// error is returned.
pub(crate) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    nonblocking: bool,
) -> io::Result<usize> {
    let mut space = [MaybeUninit::uninit(); CMSG_SPACE];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut flags = RecvFlags::CMSG_CLOEXEC;
    if nonblocking {
        flags |= RecvFlags::DONTWAIT;
    }
    let msg = loop {
        match recvmsg(sock, &mut [IoSliceMut::new(buf)], &mut control, flags) {
            Err(Errno::INTR) => continue,
            other => break other?,
        }
    };
    let mut received = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(incoming) = message {
            received.extend(incoming);
        }
    }
    if let Some(highest) = received.iter().map(std::os::fd::AsRawFd::as_raw_fd).max() {
        super::make_fd_room_after(highest);
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        // Out of descriptors: make room for the next message at least.
        super::raise_fd_limit();
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "file descriptors were dropped by the kernel (control data truncated)",
        ));
    }
    fds.append(&mut received);
    Ok(msg.bytes)
}

/// Who holds the other end of a Unix socket, as the kernel recorded it when
/// the connection (or socket pair) was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerCred {
    /// The peer's process id (0 if it lives in another PID namespace).
    pub(crate) pid: u32,
    /// The peer's effective user id.
    pub(crate) uid: u32,
}

/// How many bytes sent on a Unix stream socket its peer has not read yet.
pub(crate) fn unread_by_peer(sock: BorrowedFd<'_>) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut bytes: libc::c_int = 0;
    // SAFETY: `TIOCOUTQ` (`SIOCOUTQ` for sockets) writes one `int` through
    // the pointer, which points at ours; the descriptor is borrowed, open.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::TIOCOUTQ, &raw mut bytes) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(bytes).unwrap_or(0))
}

/// The credentials of the peer of `sock`, if it is a connected Unix stream
/// socket; an error for anything else (a pipe, a file, a datagram socket).
pub(crate) fn peer_credentials(sock: BorrowedFd<'_>) -> io::Result<PeerCred> {
    use rustix::net::sockopt;
    if sockopt::socket_type(sock)? != SocketType::STREAM
        || sockopt::socket_domain(sock)? != AddressFamily::UNIX
    {
        return Err(io::Error::other("not a Unix stream socket"));
    }
    // rustix's `socket_peercred` reads the pid into a non-zero type, but the
    // kernel reports 0 for a peer in another PID namespace: read it raw.
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED writes at most `len` bytes, a `ucred`, into `cred`,
    // which lives across the call; `sock` is open (borrowed).
    let rc = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != std::mem::size_of::<libc::ucred>() {
        return Err(io::Error::other("short SO_PEERCRED answer"));
    }
    Ok(PeerCred { pid: u32::try_from(cred.pid).unwrap_or(0), uid: cred.uid })
}
