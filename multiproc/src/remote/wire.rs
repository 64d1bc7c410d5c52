//! Replies read straight from a plain TCP connection's socket, so that a
//! reply expected within microseconds is waited for the way every other
//! wait of the library is ([`crate::WaitPolicy`]): looked for first, slept
//! for only when it is late. The `redis` crate reads through a buffer of
//! its own, which would hide whether a reply already arrived; here the
//! buffer is ours, and the crate's parser reads each whole frame from it.

#![allow(unsafe_code)] // system calls on the connection's socket: see the SAFETY comments

use std::os::fd::RawFd;
use std::time::Instant;

use redis::{ConnectionAddr, ConnectionInfo, ErrorKind, ProtocolVersion, RedisError, Value};

/// The largest reply accepted: a server that announces more is taken for
/// broken, not waited for while memory fills.
const MAX_REPLY: usize = 1 << 30;

/// How much one read asks the kernel for.
const READ_CHUNK: usize = 64 * 1024;

/// After this many waits in a row that ended in sleep anyway (a server
/// farther away than a poll budget), a connection only probes briefly.
const MISSES_BEFORE_PROBE: u8 = 4;

/// The socket of a connection the `redis` crate made, and the replies
/// read from it that were not taken yet.
pub(crate) struct Wire {
    fd: RawFd,
    /// Room for replies, zeroed once when it grows (never per read).
    buf: Vec<u8>,
    /// Where the unread part of `buf` starts.
    start: usize,
    /// Where it ends: what the kernel gave so far.
    end: usize,
    /// Waits in a row that ended in sleep.
    misses: u8,
    /// How far the next frame was measured.
    scan: Scan,
}

impl Wire {
    /// The wire of `con`, a connection just made to `info`, if it is plain
    /// TCP speaking RESP2 and its socket can be told apart: the server
    /// names both ends of it (`CLIENT INFO`, one round trip), and exactly
    /// one descriptor of this process must be a socket with those ends.
    /// Anything else (TLS, a Unix socket, RESP3, an old server that refuses
    /// `CLIENT INFO`) keeps the crate's own reads. An error means the
    /// connection failed (the caller sets a read timeout first), and must
    /// be dropped: it may be out of step.
    pub(crate) fn find(
        con: &mut redis::Connection,
        info: &ConnectionInfo,
    ) -> redis::RedisResult<Option<Wire>> {
        if !matches!(info.addr(), ConnectionAddr::Tcp(..))
            || info.redis_settings().protocol() != ProtocolVersion::RESP2
        {
            return Ok(None);
        }
        let text: String = match redis::cmd("CLIENT").arg("INFO").query(con) {
            Ok(text) => text,
            // Answered with an error (an old server, an ACL): still in step.
            Err(e) if e.code().is_some() => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Self::socket_of(&text))
    }

    /// The socket whose ends `CLIENT INFO` names, if exactly one
    /// descriptor of this process is it.
    fn socket_of(text: &str) -> Option<Wire> {
        let field = |name: &str| {
            text.split_whitespace().find_map(|kv| kv.strip_prefix(name)).and_then(parse_addr)
        };
        let (ours, theirs) = (field("addr=")?, field("laddr=")?);
        let mut found = None;
        for entry in std::fs::read_dir("/proc/self/fd").ok()? {
            let Some(fd) = entry.ok().and_then(|e| e.file_name().to_str()?.parse::<RawFd>().ok())
            else {
                continue;
            };
            if sock_addr(fd, false) == Some(ours) && sock_addr(fd, true) == Some(theirs) {
                if found.is_some() {
                    return None; // a copy of it: which one the crate uses is unknown
                }
                found = Some(fd);
            }
        }
        Some(Wire { fd: found?, buf: Vec::new(), start: 0, end: 0, misses: 0, scan: Scan::NEW })
    }

    /// The next reply. For a command the server answers at once (`prompt`),
    /// a reply not yet here is first looked for within the process's poll
    /// budget before the read sleeps; the socket's read timeout bounds the
    /// sleep.
    pub(crate) fn recv(&mut self, prompt: bool) -> redis::RedisResult<Value> {
        let mut looked = !prompt;
        loop {
            if let Some(len) = frame_len(&self.buf[self.start..self.end], &mut self.scan)? {
                let frame = &self.buf[self.start..self.start + len];
                let value = redis::parse_redis_value(frame);
                self.start += len;
                self.scan = Scan::NEW;
                if self.start == self.end {
                    (self.start, self.end) = (0, 0);
                    // An idle connection does not keep a large reply's room.
                    if self.buf.len() > 4 * READ_CHUNK {
                        self.buf.truncate(READ_CHUNK);
                        self.buf.shrink_to_fit();
                    }
                }
                return value;
            }
            if !looked {
                looked = true;
                self.look();
            }
            self.fill()?;
        }
    }

    /// Looks for readable data until it comes or the poll budget is spent.
    fn look(&mut self) {
        let budget = crate::wait_policy::budget();
        let total =
            if self.misses >= MISSES_BEFORE_PROBE { budget.idle_probe } else { budget.total };
        if total.is_zero() {
            return;
        }
        let start = Instant::now();
        loop {
            if readable(self.fd) {
                self.misses = 0;
                return;
            }
            let spent = start.elapsed();
            if spent >= total {
                self.misses = self.misses.saturating_add(1);
                return;
            }
            if spent < budget.spin {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Reads what the kernel has (sleeping until something comes, or the
    /// socket's read timeout passes).
    fn fill(&mut self) -> redis::RedisResult<()> {
        let room = |w: &Wire| w.buf.len() - w.end;
        if self.start > 0 && room(self) < READ_CHUNK / 4 {
            // Move the unread part to the front (what was read is gone).
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if room(self) < READ_CHUNK / 4 {
            let grown = (self.buf.len() * 2).max(self.end + READ_CHUNK);
            self.buf.resize(grown, 0);
        }
        let tail = &mut self.buf[self.end..];
        let n = loop {
            // SAFETY: the pointer and length describe `tail`, the writable
            // end of `buf`, which lives across the call; the kernel writes
            // at most that many bytes. A descriptor number that no longer
            // named this socket could only make the read fail or read the
            // wrong data, never touch memory outside `tail`.
            let n = unsafe { libc::recv(self.fd, tail.as_mut_ptr().cast(), tail.len(), 0) };
            if n >= 0 {
                break n as usize;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        };
        self.end += n;
        if n == 0 {
            return Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
        Ok(())
    }
}

/// Whether the socket has data to read now.
fn readable(fd: RawFd) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid `pollfd`, for a zero timeout; a stale descriptor
    // number only gives POLLNVAL.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0
}

/// The local (or, with `peer`, the remote) address of socket `fd`.
fn sock_addr(fd: RawFd, peer: bool) -> Option<std::net::SocketAddr> {
    // SAFETY: a zeroed `sockaddr_storage` is a valid value of it.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let ptr = (&raw mut storage).cast::<libc::sockaddr>();
    // SAFETY: `ptr` and `len` describe `storage`, which outlives the call;
    // the kernel writes at most `len` bytes. Any descriptor number is
    // acceptable: one that is not a socket gives an error.
    let r = unsafe {
        if peer {
            libc::getpeername(fd, ptr, &mut len)
        } else {
            libc::getsockname(fd, ptr, &mut len)
        }
    };
    if r != 0 {
        return None;
    }
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel filled a `sockaddr_in` (family AF_INET),
            // which fits in and is aligned within `sockaddr_storage`.
            let a = unsafe { &*(&raw const storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some((ip, u16::from_be(a.sin_port)).into())
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for a `sockaddr_in6` (family AF_INET6).
            let a = unsafe { &*(&raw const storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some((ip, u16::from_be(a.sin6_port)).into())
        }
        _ => None,
    }
}

/// An address as `CLIENT INFO` writes it: `127.0.0.1:6379`, `[::1]:6379`
/// or `::1:6379`.
fn parse_addr(text: &str) -> Option<std::net::SocketAddr> {
    if let Ok(a) = text.parse() {
        return Some(a);
    }
    let (ip, port) = text.rsplit_once(':')?;
    let ip: std::net::IpAddr = ip.trim_start_matches('[').trim_end_matches(']').parse().ok()?;
    Some((ip, port.parse().ok()?).into())
}

fn malformed(what: &'static str) -> RedisError {
    RedisError::from((ErrorKind::Parse, "malformed reply from the server", what.to_owned()))
}

/// How far the frame at the start of the unread bytes was measured: a
/// large reply arriving in many reads is scanned once, not once per read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scan {
    /// Where the next element to measure starts.
    pos: usize,
    /// Elements still to measure: an array adds its own.
    pending: u64,
}

impl Scan {
    const NEW: Scan = Scan { pos: 0, pending: 1 };
}

/// The length of the RESP2 frame at the start of `buf`, if it is all
/// there, going on from `scan`; an error if it is not RESP2 or is larger
/// than [`MAX_REPLY`].
fn frame_len(buf: &[u8], scan: &mut Scan) -> redis::RedisResult<Option<usize>> {
    while scan.pending > 0 {
        let pos = scan.pos;
        let Some(line_end) = find_crlf(&buf[pos..]) else {
            return if buf.len() - pos > MAX_REPLY {
                Err(malformed("a line too long"))
            } else {
                Ok(None)
            };
        };
        let line = &buf[pos..pos + line_end];
        let after = pos + line_end + 2;
        let Some((&kind, rest)) = line.split_first() else {
            return Err(malformed("an empty line"));
        };
        let mut added = 0;
        let next = match kind {
            b'+' | b'-' | b':' => after,
            b'$' => match number(rest)? {
                n if n < 0 => after,
                n => {
                    let n = usize::try_from(n).ok().filter(|&n| n <= MAX_REPLY);
                    let n = n.ok_or_else(|| malformed("a string too long"))?;
                    let end = after + n + 2;
                    if buf.len() < end {
                        return Ok(None);
                    }
                    if &buf[after + n..end] != b"\r\n" {
                        return Err(malformed("a string without its line end"));
                    }
                    end
                }
            },
            b'*' => {
                let n = number(rest)?;
                if n > MAX_REPLY as i64 {
                    return Err(malformed("an array too long"));
                }
                added = n.max(0) as u64;
                after
            }
            _ => return Err(malformed("a type this client does not read")),
        };
        if next > MAX_REPLY {
            return Err(malformed("a reply too long"));
        }
        *scan = Scan { pos: next, pending: scan.pending - 1 + added };
    }
    Ok(Some(scan.pos))
}

/// Where the first line of `buf` ends (before its `\r\n`).
fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn number(digits: &[u8]) -> redis::RedisResult<i64> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed("a length that is not a number"))
}

#[cfg(test)]
mod tests {
    use super::{Scan, frame_len};

    fn len(buf: &[u8]) -> redis::RedisResult<Option<usize>> {
        frame_len(buf, &mut Scan::NEW.clone())
    }

    /// Replies large and small, written in uneven pieces to a socket, come
    /// out whole and in order, and the buffer shrinks back when idle.
    #[test]
    fn replies_read_from_a_socket_come_out_whole_and_in_order() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut big = format!("*{}\r\n", 5000).into_bytes();
        for i in 0..5000 {
            let item = format!("item-{i}-{}", "x".repeat(i % 97));
            big.extend_from_slice(format!("${}\r\n{item}\r\n", item.len()).as_bytes());
        }
        let frames: Vec<Vec<u8>> =
            vec![b"+OK\r\n".to_vec(), big, b":42\r\n".to_vec(), b"$-1\r\n".to_vec()];
        let all: Vec<u8> = frames.concat();
        let writer = std::thread::spawn(move || {
            for piece in all.chunks(7919) {
                theirs.write_all(piece).unwrap();
            }
            theirs
        });
        let mut wire = super::Wire {
            fd: ours.as_raw_fd(),
            buf: Vec::new(),
            start: 0,
            end: 0,
            misses: 0,
            scan: Scan::NEW,
        };
        for frame in &frames {
            let want = redis::parse_redis_value(frame).unwrap();
            assert_eq!(wire.recv(false).unwrap(), want);
        }
        assert!(wire.buf.len() <= super::READ_CHUNK, "shrunk back: {}", wire.buf.len());
        drop(writer.join().unwrap());
        assert!(wire.recv(false).is_err(), "the peer hung up");
    }

    #[test]
    fn a_frame_arriving_in_pieces_is_measured_once_whole() {
        let whole = b"*3\r\n$5\r\nhello\r\n:42\r\n*1\r\n+OK\r\n";
        let mut scan = Scan::NEW;
        for cut in 0..whole.len() {
            assert_eq!(frame_len(&whole[..cut], &mut scan).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(frame_len(whole, &mut scan).unwrap(), Some(whole.len()));
    }

    #[test]
    fn frames_are_measured_only_when_whole() {
        assert_eq!(len(b"+OK\r\n").unwrap(), Some(5));
        assert_eq!(len(b"+OK\r\n:1\r\n").unwrap(), Some(5));
        assert_eq!(len(b"+OK\r").unwrap(), None);
        assert_eq!(len(b"$3\r\nabc\r\n").unwrap(), Some(9));
        assert_eq!(len(b"$3\r\nab").unwrap(), None);
        assert_eq!(len(b"$-1\r\n").unwrap(), Some(5));
        assert_eq!(len(b"*2\r\n$1\r\na\r\n:7\r\n").unwrap(), Some(15));
        assert_eq!(len(b"*2\r\n$1\r\na\r\n").unwrap(), None);
        assert_eq!(len(b"*-1\r\n").unwrap(), Some(5));
        assert_eq!(len(b"*1\r\n*1\r\n*0\r\n").unwrap(), Some(12));
        assert_eq!(len(b"-ERR no\r\n").unwrap(), Some(9));
    }

    #[test]
    fn malformed_and_oversized_frames_are_errors() {
        assert!(len(b"$3\r\nabcd\r\n").is_err());
        assert!(len(b"$x\r\n").is_err());
        assert!(len(b"%1\r\n").is_err());
        assert!(len(b"\r\n").is_err());
        assert!(len(b"$99999999999\r\n").is_err());
        assert!(len(b"*99999999999\r\n").is_err());
        assert!(len(b"$9223372036854775807\r\n").is_err());
    }
}
