//! TCP: [`TcpListener`] (with [`TcpListenOptions`] for `SO_REUSEPORT` and the
//! backlog) and [`TcpStream`].
//!
//! `accept` survives descriptor exhaustion: on `EMFILE`/`ENFILE` (and
//! `ENOBUFS`/`ENOMEM`) it sleeps with a capped exponential back-off and tries
//! again, leaving the connection in the kernel's backlog, so a server neither
//! spins nor fails while descriptors are short and recovers when they free up.
//! `connect` never hangs on a failure: errors (`ECONNREFUSED`, ...) come back
//! from `SO_ERROR` once the socket reports writable or in error, and the
//! future can be dropped (cancelled, timed out) at any point, which closes the
//! half-open socket.

use super::{impl_as_fd, impl_async_io};
use crate::reactor::io::IoSource;
use crate::reactor::Dir;
use crate::sys;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::task::{Context, Poll};
use std::time::Duration;

/// The first back-off of `accept` when descriptors are exhausted.
pub(super) const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest back-off: how late, at worst, a server notices that
/// descriptors are available again.
pub(super) const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(100);

/// Options for a listening socket: `TcpListener::options().reuse_port(true).bind(addr)`.
///
/// ```
/// use matou_unix::net::TcpListener;
///
/// matou_unix::run(async {
///     // Two listeners on one port (SO_REUSEPORT): the kernel spreads
///     // connections over them, e.g. one per worker.
///     let a = TcpListener::options().reuse_port(true).bind(([127, 0, 0, 1], 0)).unwrap();
///     let port = a.local_addr().unwrap().port();
///     let b = TcpListener::options().reuse_port(true).bind(([127, 0, 0, 1], port)).unwrap();
///     assert_eq!(b.local_addr().unwrap().port(), port);
/// });
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TcpListenOptions {
    cfg: sys::ListenConfig,
}

impl Default for TcpListenOptions {
    fn default() -> Self {
        TcpListenOptions {
            cfg: sys::ListenConfig {
                reuse_addr: true,
                reuse_port: false,
                only_v6: None,
                backlog: 1024,
            },
        }
    }
}

impl TcpListenOptions {
    /// `SO_REUSEADDR` (default on: a restarted server can bind at once).
    pub fn reuse_addr(mut self, on: bool) -> Self {
        self.cfg.reuse_addr = on;
        self
    }

    /// `SO_REUSEPORT` (default off): several listeners on one port; the
    /// kernel spreads the connections among them.
    ///
    /// Risk: any process of the same user may then bind the same port too
    /// and receive a share of the connections (and whatever clients send
    /// on them, passwords included), and a second copy of a server starts
    /// silently instead of failing with `EADDRINUSE`. To spread accepts over
    /// the workers of one process, share one exclusively bound listener
    /// instead ([`TcpListener::try_clone`], which
    /// [`serve_on_every_worker`](super::serve_on_every_worker) uses).
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.cfg.reuse_port = on;
        self
    }

    /// `IPV6_V6ONLY` for an IPv6 address (default: the system's).
    pub fn only_v6(mut self, on: bool) -> Self {
        self.cfg.only_v6 = Some(on);
        self
    }

    /// The `listen` backlog (default 1024; the kernel caps it at `somaxconn`).
    pub fn backlog(mut self, n: u32) -> Self {
        self.cfg.backlog = i32::try_from(n).unwrap_or(i32::MAX);
        self
    }

    /// Creates the socket, applies the options, binds and listens.
    ///
    /// # Errors
    /// The OS's: `EADDRINUSE`, `EACCES`, ...
    pub fn bind(self, addr: impl Into<SocketAddr>) -> io::Result<TcpListener> {
        let l = sys::tcp_listen(addr.into(), self.cfg)?;
        Ok(TcpListener {
            inner: IoSource::new(l),
        })
    }
}

/// A TCP socket listening for connections.
///
/// `accept` is cancel safe (a dropped accept leaves the connection in the
/// backlog), so a server loop can race it against a stop signal:
///
/// ```
/// use matou_core::{race, Orphans};
/// use matou_unix::net::TcpListener;
///
/// matou_unix::builder().extra_workers(0).run(async {
///     let listener = TcpListener::bind(([127, 0, 0, 1], 0)).unwrap();
///     let addr = listener.local_addr().unwrap();
///     let clients = Orphans::new();
///     let _peer = std::net::TcpStream::connect(addr).unwrap();
///     let (winner, conn) = race!(
///         async { Some(listener.accept().await.unwrap()) },
///         std::future::pending(), // e.g. a shutdown signal
///     );
///     assert_eq!(winner, 0);
///     let (stream, _) = conn.unwrap();
///     clients.spawn(async move { stream.write_all(b"hi").await }).unwrap();
///     while let Some(r) = clients.next().await.unwrap() {
///         r.unwrap().unwrap();
///     }
/// });
/// ```
#[derive(Debug)]
pub struct TcpListener {
    inner: IoSource<std::net::TcpListener>,
}

impl_as_fd!(TcpListener);
super::impl_into_std!(TcpListener, std::net::TcpListener);

impl TcpListener {
    /// Binds and listens with the default options (`SO_REUSEADDR`, backlog
    /// 1024). Port 0 picks a free port: see [`TcpListener::local_addr`].
    ///
    /// # Errors
    /// The OS's: `EADDRINUSE`, `EACCES`, ...
    pub fn bind(addr: impl Into<SocketAddr>) -> io::Result<TcpListener> {
        TcpListenOptions::default().bind(addr)
    }

    /// Options for [`TcpListenOptions::bind`].
    pub fn options() -> TcpListenOptions {
        TcpListenOptions::default()
    }

    /// Adopts a std listener (switching it to non-blocking mode).
    ///
    /// # Errors
    /// When the mode cannot be changed.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener {
            inner: IoSource::new(listener),
        })
    }

    /// Another handle on the same listening socket (`dup`): connections
    /// queued on the socket are accepted by whichever handle calls `accept`
    /// first. The new handle is not registered with any reactor yet: it
    /// registers with the reactor of the worker that first waits on it, so
    /// each worker of a process can accept on one shared, exclusively bound
    /// socket through a handle of its own. A handle whose `accept` finds
    /// the queue emptied by another handle just waits again.
    ///
    /// # Errors
    /// The OS's (`EMFILE`, ...).
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        // The duplicate shares the open file description, so it is already
        // non-blocking.
        Ok(TcpListener {
            inner: IoSource::new(self.inner.get_ref().try_clone()?),
        })
    }

    /// The address it listens on.
    ///
    /// # Errors
    /// The OS's.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Waits for a connection.
    ///
    /// Connections that failed before being accepted are skipped; when
    /// descriptors run out the call backs off (10 ms doubling up to 100 ms)
    /// and retries instead of failing. Cancel-safe: dropping the future loses
    /// no connection (it stays in the backlog).
    ///
    /// # Errors
    /// The OS's other errors (e.g. `EINVAL` on a socket that is not
    /// listening).
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let mut backoff = ACCEPT_BACKOFF_MIN;
        loop {
            match self
                .inner
                .io(Dir::Read, |l| sys::tcp_accept(l.as_fd()))
                .await
            {
                Ok((s, addr)) => return Ok((TcpStream::from_nonblocking(s), addr)),
                Err(e) if sys::accept_error_is_transient(&e) => {}
                Err(e) if sys::accept_error_is_exhaustion(&e) => {
                    crate::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The poll form of [`TcpListener::accept`]. It skips failed connections
    /// but reports descriptor exhaustion (`EMFILE`, ...) to the caller, which
    /// has no timer here to back off with.
    ///
    /// # Errors
    /// The OS's.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        loop {
            match self
                .inner
                .poll_io(Dir::Read, cx, |l| sys::tcp_accept(l.as_fd()))
            {
                Poll::Ready(Ok((s, addr))) => {
                    return Poll::Ready(Ok((TcpStream::from_nonblocking(s), addr)))
                }
                Poll::Ready(Err(e)) if sys::accept_error_is_transient(&e) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A TCP connection. Implements `futures_io::AsyncRead` and `AsyncWrite`
/// (also on `&TcpStream`).
///
/// Cancel safety: a dropped `read` or `write` loses nothing (no byte moved
/// unless it returned); a dropped `read_exact` or `write_all` may have moved
/// part of its buffer. So race a `read` against a stop signal, not a
/// `read_exact`:
///
/// ```
/// use matou_core::{race, spawn};
/// use matou_unix::net::{TcpListener, TcpStream};
/// use matou_unix::time::sleep;
/// use std::time::Duration;
///
/// matou_unix::builder().extra_workers(0).run(async {
///     let listener = TcpListener::bind(([127, 0, 0, 1], 0)).unwrap();
///     let addr = listener.local_addr().unwrap();
///     let client = spawn(async move {
///         let c = TcpStream::connect(addr).await.unwrap();
///         sleep(Duration::from_millis(20)).await; // later than the server's patience
///         c.write_all(b"late").await.unwrap();
///     });
///     let (s, _) = listener.accept().await.unwrap();
///     let mut buf = [0; 4];
///     let (winner, _) = race!(
///         async { s.read(&mut buf).await.map(drop) },
///         async { sleep(Duration::from_millis(1)).await; Ok(()) },
///     );
///     assert_eq!(winner, 1); // the read lost, and took no byte with it
///     s.read_exact(&mut buf).await.unwrap();
///     assert_eq!(&buf, b"late");
///     client.await.unwrap();
/// });
/// ```
///
/// As with any poll-based socket, one waker per direction is remembered: two
/// tasks polling reads of one stream at once would steal each other's wake-ups
/// (the `async fn`s have no such limit).
#[derive(Debug)]
pub struct TcpStream {
    inner: IoSource<std::net::TcpStream>,
}

impl_as_fd!(TcpStream);
super::impl_into_std!(TcpStream, std::net::TcpStream);
impl_async_io!(TcpStream);

impl TcpStream {
    fn from_nonblocking(s: std::net::TcpStream) -> TcpStream {
        TcpStream {
            inner: IoSource::new(s),
        }
    }

    /// Adopts a connected std stream (switching it to non-blocking mode).
    ///
    /// # Errors
    /// When the mode cannot be changed.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        Ok(TcpStream::from_nonblocking(stream))
    }

    /// Connects to `addr`: a socket address or anything std's
    /// `ToSocketAddrs` takes (`"localhost:6379"`, `("example.org", 80)`),
    /// resolved off the workers ([`super::lookup_host`]). Several addresses
    /// are raced with Happy Eyeballs (RFC 8305: families interleaved, a new
    /// attempt every 250 ms or at once after a failure, the losers closed).
    ///
    /// # Errors
    /// `InvalidInput` for a malformed address, the resolver's, or the OS's
    /// (of the last attempt), e.g. `ECONNREFUSED`, `ENETUNREACH`,
    /// `ETIMEDOUT` (after the kernel's own SYN retries; wrap in
    /// [`crate::time::timeout`] for a shorter bound). Dropping the future
    /// cancels the lookup's wait and closes every socket it opened.
    pub async fn connect(addr: impl super::ToSocketAddrs) -> io::Result<TcpStream> {
        let addrs = super::lookup_host(addr).await?;
        if let [one] = addrs[..] {
            return TcpStream::connect_addr(one).await;
        }
        super::resolve::happy_eyeballs(super::resolve::interleave(addrs), TcpStream::connect_addr)
            .await
    }

    async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
        let (s, done) = sys::tcp_connect(addr)?;
        let stream = TcpStream::from_nonblocking(s);
        if !done {
            stream.finish_connect().await?;
        }
        Ok(stream)
    }

    async fn finish_connect(&self) -> io::Result<()> {
        loop {
            self.inner.ready(Dir::Write).await?;
            if let Some(e) = sys::take_socket_error(self.inner.get_ref())? {
                return Err(e);
            }
            // Writable without an error means connected, unless the wake-up
            // was spurious.
            if sys::is_connected(self.inner.get_ref())? {
                return Ok(());
            }
        }
    }

    /// Reads some bytes; `Ok(0)` is the end of the stream.
    ///
    /// # Errors
    /// The OS's, e.g. `ECONNRESET`.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        super::read(&self.inner, buf).await
    }

    /// Writes some bytes; returns how many.
    ///
    /// # Errors
    /// The OS's, e.g. `EPIPE`, `ECONNRESET`.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        super::write(&self.inner, buf).await
    }

    /// Fills `buf` entirely (Miou's `really_read`).
    ///
    /// # Errors
    /// `UnexpectedEof` when the stream ends first (what was read is in `buf`),
    /// or the OS's.
    pub async fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
        super::read_exact(&self.inner, buf).await
    }

    /// Writes all of `buf`.
    ///
    /// # Errors
    /// The OS's; some prefix of `buf` may have been sent.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        super::write_all(&self.inner, buf).await
    }

    /// Shuts down the read half, the write half (the peer then reads the
    /// end of the stream), or both.
    ///
    /// # Errors
    /// The OS's, e.g. `ENOTCONN`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get_ref().shutdown(how)
    }

    /// The peer's address.
    ///
    /// # Errors
    /// The OS's, e.g. `ENOTCONN`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// This end's address.
    ///
    /// # Errors
    /// The OS's.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// `TCP_NODELAY`: send small writes at once instead of coalescing them.
    ///
    /// # Errors
    /// The OS's.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.inner.get_ref().set_nodelay(on)
    }

    /// Whether `TCP_NODELAY` is set.
    ///
    /// # Errors
    /// The OS's.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.get_ref().nodelay()
    }

    /// Waits until the stream may be readable (spurious wake-ups possible).
    ///
    /// # Errors
    /// When the descriptor cannot be registered.
    pub async fn readable(&self) -> io::Result<()> {
        self.inner.ready(Dir::Read).await
    }

    /// Waits until the stream may be writable (spurious wake-ups possible).
    ///
    /// # Errors
    /// When the descriptor cannot be registered.
    pub async fn writable(&self) -> io::Result<()> {
        self.inner.ready(Dir::Write).await
    }
}
