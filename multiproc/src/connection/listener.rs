//! `Listener`, `Client` and `Address` (Python's `multiprocessing.connection`).

use std::fmt;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixSocketAddr, UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use super::auth;
use super::conn::{Connection, DEFAULT_MAX_FRAME, Transport};
use crate::shm::park::deadline_after;
use crate::{Error, Result};

/// How long a handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a [`Listener`] listens and a [`Client`] connects.
///
/// # Examples
///
/// ```
/// use multiproc::connection::Address;
/// let unix = Address::Unix("/tmp/service.sock".into());
/// let hidden = Address::Abstract("my-service".into());
/// let tcp = Address::Tcp("127.0.0.1:6000".parse().unwrap());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Address {
    /// A Unix socket at a file-system path (removed when the listener goes).
    Unix(PathBuf),
    /// A Linux abstract Unix socket name (no file; gone with the listener).
    Abstract(String),
    /// A TCP address (descriptors cannot travel over it).
    Tcp(SocketAddr),
}

/// `127.0.0.1:6000`, `/tmp/service.sock`, or `@my-service` for an abstract
/// name (as `ss` and `netstat` show them).
///
/// # Examples
///
/// ```
/// use multiproc::connection::Address;
/// assert_eq!(Address::Abstract("svc".into()).to_string(), "@svc");
/// assert_eq!(Address::Tcp("127.0.0.1:6000".parse().unwrap()).to_string(), "127.0.0.1:6000");
/// ```
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "{}", path.display()),
            Self::Abstract(name) => write!(f, "@{name}"),
            Self::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

enum Socket {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// Accepts connections, checking an `authkey` if given (Python's `Listener`).
///
/// A listener that other users' processes can reach (TCP, or a Linux
/// abstract name, which any process in the network namespace may connect to)
/// needs a key: [`bind`](Listener::bind) refuses one without, and
/// [`bind_unauthenticated`](Listener::bind_unauthenticated) is the explicit
/// opt-out. A Unix socket path may go without a key: its file's permissions
/// say who connects.
///
/// # Examples
///
/// ```
/// use multiproc::connection::{Address, Client, Connection, Listener};
///
/// let listener = Listener::bind(Address::Abstract(format!("doc-{}", std::process::id())), Some(b"secret"))?;
/// let address = listener.address().clone();
/// let client = std::thread::spawn(move || -> multiproc::Result<String> {
///     let conn: Connection<String> = Client::connect(&address, Some(b"secret"))?;
///     conn.send(&"hi".to_owned())?;
///     conn.recv()
/// });
/// let conn: Connection<String> = listener.accept()?;
/// let got = conn.recv()?;
/// conn.send(&format!("{got} back"))?;
/// assert_eq!(client.join().unwrap()?, "hi back");
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Listener {
    socket: Socket,
    address: Address,
    authkey: Option<Vec<u8>>,
    handshake_timeout: Duration,
    max_frame: u64,
}

fn unix_addr(address: &Address) -> Result<UnixSocketAddr> {
    match address {
        Address::Unix(path) => {
            UnixSocketAddr::from_pathname(path).map_err(Error::os_at("name a socket", address))
        }
        Address::Abstract(name) => UnixSocketAddr::from_abstract_name(name.as_bytes())
            .map_err(Error::os_at("name a socket", address)),
        Address::Tcp(_) => unreachable!("not a Unix address"),
    }
}

impl Listener {
    /// Listens on `address`; connections must prove they know `authkey`
    /// (and so must we), if one is given.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] without a key on TCP or an abstract name
    /// (see [`bind_unauthenticated`](Self::bind_unauthenticated));
    /// [`Error::Os`] if the address cannot be bound (in use, no permission).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::connection::{Address, Listener};
    /// let tcp = Address::Tcp("127.0.0.1:0".parse().unwrap());
    /// let l = Listener::bind(tcp.clone(), Some(b"key"))?;
    /// assert!(matches!(l.address(), Address::Tcp(a) if a.port() != 0));
    /// assert!(Listener::bind(tcp, None).is_err()); // anyone could connect
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn bind(address: Address, authkey: Option<&[u8]>) -> Result<Self> {
        if authkey.is_none() && !matches!(address, Address::Unix(_)) {
            return Err(Error::Unsupported {
                reason: "a listener on TCP or an abstract name needs an authkey \
                         (Listener::bind_unauthenticated opts out)",
            });
        }
        Self::open(address, authkey)
    }

    /// Listens on `address` without an authkey, even where other users'
    /// processes can connect (TCP, an abstract name): whoever reaches the
    /// address gets a connection, and what it sends is all they need to be
    /// trusted with. Python's `Listener(address)` without `authkey`.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the address cannot be bound (in use, no permission).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::connection::{Address, Listener};
    /// let l = Listener::bind_unauthenticated(Address::Tcp("127.0.0.1:0".parse().unwrap()))?;
    /// assert!(matches!(l.address(), Address::Tcp(a) if a.port() != 0));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn bind_unauthenticated(address: Address) -> Result<Self> {
        Self::open(address, None)
    }

    fn open(address: Address, authkey: Option<&[u8]>) -> Result<Self> {
        let (socket, address) = match &address {
            Address::Tcp(addr) => {
                let listener =
                    TcpListener::bind(addr).map_err(Error::os_at("listen on TCP", &address))?;
                let bound =
                    listener.local_addr().map_err(Error::os_at("listen on TCP", &address))?;
                (Socket::Tcp(listener), Address::Tcp(bound))
            }
            unix => {
                let listener = UnixListener::bind_addr(&unix_addr(unix)?)
                    .map_err(Error::os_at("listen on a Unix socket", unix))?;
                (Socket::Unix(listener), address.clone())
            }
        };
        Ok(Self {
            socket,
            address,
            authkey: authkey.map(<[u8]>::to_vec),
            handshake_timeout: HANDSHAKE_TIMEOUT,
            max_frame: DEFAULT_MAX_FRAME,
        })
    }

    /// The largest message accepted from a peer (default 64 MiB); a larger
    /// length prefix is an error for that connection, without allocating it.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::connection::{Address, Listener};
    /// let l = Listener::bind(Address::Tcp("127.0.0.1:0".parse().unwrap()), Some(b"k"))?
    ///     .max_frame(1 << 20);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[must_use]
    pub fn max_frame(mut self, bytes: u64) -> Self {
        self.max_frame = bytes;
        self
    }

    /// How long `accept` waits for a peer's handshake (default 10 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiproc::connection::{Address, Listener};
    /// let l = Listener::bind(Address::Tcp("127.0.0.1:0".parse().unwrap()), Some(b"k"))?
    ///     .handshake_timeout(Duration::from_secs(1));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The address listened on (a TCP port 0 becomes the port chosen).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::connection::{Address, Listener};
    /// let name = Address::Abstract(format!("doc-addr-{}", std::process::id()));
    /// assert_eq!(Listener::bind(name.clone(), Some(b"k"))?.address(), &name);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The listening socket, for a server loop that polls it.
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match &self.socket {
            Socket::Unix(listener) => listener.as_fd(),
            Socket::Tcp(listener) => listener.as_fd(),
        }
    }

    /// Makes [`accept_pending`](Self::accept_pending) fail with
    /// `WouldBlock` instead of waiting (accepted connections still block).
    pub(crate) fn set_nonblocking(&self) -> std::io::Result<()> {
        match &self.socket {
            Socket::Unix(listener) => listener.set_nonblocking(true),
            Socket::Tcp(listener) => listener.set_nonblocking(true),
        }
    }

    /// Waits for the next connection and runs the handshake.
    ///
    /// A peer that fails the handshake (wrong key, garbage, silence past the
    /// handshake timeout) makes this call fail; the listener keeps working.
    ///
    /// # Errors
    ///
    /// [`Error::AuthenticationFailed`], [`Error::Timeout`],
    /// [`Error::Protocol`], [`Error::Disconnected`], [`Error::Os`].
    ///
    /// # Examples
    ///
    /// See [`Listener`].
    pub fn accept<S, R>(&self) -> Result<Connection<S, R>> {
        self.accept_pending()?.handshake()
    }

    /// Awaits the next connection and runs the handshake: [`accept`]
    /// without holding a thread. The handshake runs on a thread of its own
    /// (bounded by the handshake timeout), so a slow client holds up no
    /// task.
    ///
    /// **Cancel-safe** while it awaits a connection; dropped during a
    /// handshake, it closes that client's connection.
    ///
    /// [`accept`]: Listener::accept
    ///
    /// # Errors
    ///
    /// As [`accept`](Listener::accept).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::connection::{Address, Client, Connection, Listener};
    /// # futures::executor::block_on(async {
    /// let listener = Listener::bind(Address::Tcp("127.0.0.1:0".parse().unwrap()), Some(b"k"))?;
    /// let address = listener.address().clone();
    /// let client = Client::connect_async::<u8, u8>(&address, Some(b"k"));
    /// let (conn, server): (_, multiproc::Result<Connection<u8>>) =
    ///     futures::join!(client, listener.accept_async());
    /// conn?.send_async(&7).await?;
    /// assert_eq!(server?.recv_async().await?, 7);
    /// # Ok::<(), multiproc::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn accept_async<S, R>(&self) -> Result<Connection<S, R>>
    where
        S: 'static,
        R: 'static,
    {
        use crate::aio::{Arm, Source, Waiting};
        let mut waiting = Waiting::default();
        let pending = std::future::poll_fn(|cx| {
            waiting.poll(
                cx,
                || {
                    let fd = self.fd();
                    let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
                    let zero = rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 };
                    matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
                        .then(|| self.accept_pending())
                },
                |_| Some(Arm::on(Source::fds(&[(self.fd(), false)]).unwrap_or(Source::Timer))),
            )
        })
        .await?;
        crate::aio::off_thread("handshake", move || pending.handshake::<S, R>())?.await
    }

    /// Waits for the next connection without running the handshake yet: a
    /// server that gives each client its own thread runs
    /// [`PendingConnection::handshake`] there, so that a slow or silent
    /// client holds up nobody else.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if accepting fails (out of descriptors).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::connection::{Address, Client, Connection, Listener};
    /// let listener = Listener::bind(Address::Tcp("127.0.0.1:0".parse().unwrap()), Some(b"k"))?;
    /// let address = listener.address().clone();
    /// let client = std::thread::spawn(move || {
    ///     let conn: Connection<u8> = Client::connect(&address, Some(b"k")).unwrap();
    ///     conn.send(&7).unwrap();
    /// });
    /// let pending = listener.accept_pending()?;
    /// let conn: Connection<u8> = std::thread::spawn(move || pending.handshake()).join().unwrap()?;
    /// assert_eq!(conn.recv()?, 7);
    /// client.join().unwrap();
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn accept_pending(&self) -> Result<PendingConnection> {
        let (sock, fds_allowed): (OwnedFd, bool) = match &self.socket {
            Socket::Unix(listener) => {
                (listener.accept().map_err(Error::os("accept"))?.0.into(), true)
            }
            Socket::Tcp(listener) => {
                let (stream, _) = listener.accept().map_err(Error::os("accept"))?;
                let _ = stream.set_nodelay(true);
                (stream.into(), false)
            }
        };
        Ok(PendingConnection {
            sock,
            fds_allowed,
            authkey: self.authkey.clone(),
            handshake_timeout: self.handshake_timeout,
            max_frame: self.max_frame,
        })
    }
}

/// A connection accepted by [`Listener::accept_pending`] whose handshake has
/// not run yet.
pub struct PendingConnection {
    sock: OwnedFd,
    fds_allowed: bool,
    authkey: Option<Vec<u8>>,
    handshake_timeout: Duration,
    max_frame: u64,
}

impl PendingConnection {
    /// Runs the authkey handshake (if the listener has a key) and gives the
    /// connection.
    ///
    /// # Errors
    ///
    /// As [`Listener::accept`].
    ///
    /// # Examples
    ///
    /// See [`Listener::accept_pending`].
    pub fn handshake<S, R>(self) -> Result<Connection<S, R>> {
        let deadline = deadline_after(self.handshake_timeout);
        match &self.authkey {
            Some(key) => auth::server(self.sock.as_fd(), key, deadline)?,
            None => auth::open_server(self.sock.as_fd(), deadline)?,
        }
        Ok(Connection::from_transport(Transport::Socket {
            sock: self.sock,
            fds_allowed: self.fds_allowed,
            max_frame: self.max_frame,
        }))
    }
}

impl fmt::Debug for PendingConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingConnection").finish_non_exhaustive()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Address::Unix(path) = &self.address {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener").field("address", &self.address).finish()
    }
}

/// Connects to a [`Listener`] (Python's `Client`).
///
/// # Examples
///
/// See [`Listener`].
#[derive(Debug)]
pub struct Client;

impl Client {
    /// Connects to `address`, proving (and checking) `authkey` if given.
    ///
    /// Returns once the listener has accepted the connection and greeted
    /// it (with or without a key), so the listener must be accepting on
    /// another thread or process. A key on one side only fails here, and
    /// in the listener's `accept`: neither side goes on without the
    /// handshake the other expected.
    ///
    /// # Errors
    ///
    /// [`Error::AuthenticationFailed`] with a wrong key, without a key for
    /// a listener that has one, or with a key for a listener that has none;
    /// [`Error::Os`] naming the address if nobody listens;
    /// [`Error::Timeout`] if the listener does not answer the handshake.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::connection::{Address, Client, Connection};
    /// let nobody = Address::Abstract("nobody-listens-here".into());
    /// assert!(Client::connect::<u8, u8>(&nobody, None).is_err());
    /// ```
    pub fn connect<S, R>(address: &Address, authkey: Option<&[u8]>) -> Result<Connection<S, R>> {
        Self::connect_blocking(address, authkey)
    }

    /// Connects and runs the handshake, awaited: [`connect`] without
    /// holding a thread of the executor (it runs on a thread of its own).
    /// **Cancel-safe**: dropped before it completes, the connection it
    /// makes is closed.
    ///
    /// [`connect`]: Client::connect
    ///
    /// # Errors
    ///
    /// As [`connect`](Client::connect).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::connection::{Address, Client};
    /// let nobody = Address::Abstract("nobody-listens-here-either".into());
    /// let refused = futures::executor::block_on(Client::connect_async::<u8, u8>(&nobody, None));
    /// assert!(refused.is_err());
    /// ```
    pub async fn connect_async<S: 'static, R: 'static>(
        address: &Address,
        authkey: Option<&[u8]>,
    ) -> Result<Connection<S, R>> {
        let (address, authkey) = (address.clone(), authkey.map(<[u8]>::to_vec));
        crate::aio::off_thread("connect", move || {
            Self::connect_blocking::<S, R>(&address, authkey.as_deref())
        })?
        .await
    }

    fn connect_blocking<S, R>(
        address: &Address,
        authkey: Option<&[u8]>,
    ) -> Result<Connection<S, R>> {
        let (sock, fds_allowed): (OwnedFd, bool) = match address {
            Address::Tcp(addr) => {
                let stream =
                    TcpStream::connect(addr).map_err(Error::os_at("connect over TCP", address))?;
                let _ = stream.set_nodelay(true);
                (stream.into(), false)
            }
            unix => (
                UnixStream::connect_addr(&unix_addr(unix)?)
                    .map_err(Error::os_at("connect to a Unix socket", address))?
                    .into(),
                true,
            ),
        };
        let deadline = deadline_after(HANDSHAKE_TIMEOUT);
        let shaken = match authkey {
            Some(key) => auth::client(sock.as_fd(), key, deadline),
            None => auth::open_client(sock.as_fd(), deadline),
        };
        if let Err(Error::AuthenticationFailed) = &shaken {
            log::warn!("authentication with {address:?} failed (wrong authkey?)");
        }
        shaken?;
        Ok(Connection::from_transport(Transport::Socket {
            sock,
            fds_allowed,
            max_frame: DEFAULT_MAX_FRAME,
        }))
    }
}
