//! Unix-domain stream sockets: [`UnixListener`] and [`UnixStream`].
//!
//! Addresses are std's `std::os::unix::net::SocketAddr` (pathname, abstract
//! or unnamed). A listener does not remove its socket file on drop (std does
//! not either): the path belongs to the caller.

use super::{impl_as_fd, impl_async_io};
use crate::reactor::io::IoSource;
use crate::reactor::Dir;
use crate::sys;
use std::io;
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// A Unix-domain socket listening for connections.
///
/// ```
/// use matou_unix::net::{UnixListener, UnixStream};
///
/// let dir = std::env::temp_dir().join(format!("matou-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("sock");
/// let p = path.clone();
/// matou_unix::run(async move {
///     let listener = UnixListener::bind(&path).unwrap();
///     let p = path.clone();
///     let client = matou_core::spawn(async move {
///         UnixStream::connect(&p).await.unwrap().write_all(b"hey").await.unwrap();
///     });
///     let (s, _) = listener.accept().await.unwrap();
///     let mut buf = [0; 3];
///     s.read_exact(&mut buf).await.unwrap();
///     assert_eq!(&buf, b"hey");
///     client.await.unwrap();
/// });
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug)]
pub struct UnixListener {
    inner: IoSource<std::os::unix::net::UnixListener>,
}

impl_as_fd!(UnixListener);
super::impl_into_std!(UnixListener, std::os::unix::net::UnixListener);

impl UnixListener {
    /// Binds to `path` (which must not exist) and listens (backlog 1024).
    ///
    /// # Errors
    /// The OS's, e.g. `EADDRINUSE` when the path exists.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        Ok(UnixListener {
            inner: IoSource::new(sys::unix_listen(path.as_ref(), 1024)?),
        })
    }

    /// Adopts a std listener (switching it to non-blocking mode).
    ///
    /// # Errors
    /// When the mode cannot be changed.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        Ok(UnixListener {
            inner: IoSource::new(listener),
        })
    }

    /// Waits for a connection. Cancel-safe. Like TCP's `accept`, it skips
    /// connections that failed before being accepted and backs off (10 ms
    /// doubling up to 100 ms) while descriptors are exhausted.
    ///
    /// # Errors
    /// The OS's other errors.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let mut backoff = super::tcp::ACCEPT_BACKOFF_MIN;
        loop {
            match self.inner.io(Dir::Read, sys::unix_accept).await {
                Ok((s, addr)) => {
                    return Ok((
                        UnixStream {
                            inner: IoSource::new(s),
                        },
                        addr,
                    ))
                }
                Err(e) if sys::accept_error_is_transient(&e) => {}
                Err(e) if sys::accept_error_is_exhaustion(&e) => {
                    crate::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(super::tcp::ACCEPT_BACKOFF_MAX);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The address it listens on.
    ///
    /// # Errors
    /// The OS's.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }
}

/// A Unix-domain stream connection. Implements `futures_io::AsyncRead` and
/// `AsyncWrite` (also on `&UnixStream`). Cancel safety as for
/// [`TcpStream`](crate::net::TcpStream): `read`/`write` lose nothing when
/// dropped, `read_exact`/`write_all` may have moved part of the buffer.
///
/// ```
/// use matou_unix::net::UnixStream;
///
/// matou_unix::run(async {
///     let (a, b) = UnixStream::pair().unwrap();
///     a.write_all(b"ping").await.unwrap();
///     drop(a); // b then reads the end of the stream
///     let mut buf = [0; 8];
///     assert_eq!(b.read(&mut buf).await.unwrap(), 4);
///     assert_eq!(b.read(&mut buf).await.unwrap(), 0);
/// });
/// ```
#[derive(Debug)]
pub struct UnixStream {
    inner: IoSource<std::os::unix::net::UnixStream>,
}

impl_as_fd!(UnixStream);
super::impl_into_std!(UnixStream, std::os::unix::net::UnixStream);
impl_async_io!(UnixStream);

impl UnixStream {
    /// Connects to the socket at `path`.
    ///
    /// # Errors
    /// The OS's, e.g. `ENOENT`, `ECONNREFUSED`. Dropping the future closes the
    /// socket.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let path = path.as_ref();
        loop {
            match sys::unix_connect(path) {
                Ok((s, done)) => {
                    let stream = UnixStream {
                        inner: IoSource::new(s),
                    };
                    if !done {
                        stream.finish_connect().await?;
                    }
                    return Ok(stream);
                }
                // The listener's backlog is full and the connect did not
                // start (Linux): nothing to wait on but time.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    crate::time::sleep(Duration::from_millis(1)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn finish_connect(&self) -> io::Result<()> {
        loop {
            self.inner.ready(Dir::Write).await?;
            if let Some(e) = sys::take_socket_error(self.inner.get_ref())? {
                return Err(e);
            }
            if sys::is_connected(self.inner.get_ref())? {
                return Ok(());
            }
        }
    }

    /// A connected pair of streams.
    ///
    /// # Errors
    /// The OS's.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// Adopts a std stream (switching it to non-blocking mode).
    ///
    /// # Errors
    /// When the mode cannot be changed.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        Ok(UnixStream {
            inner: IoSource::new(stream),
        })
    }

    /// Reads some bytes; `Ok(0)` is the end of the stream.
    ///
    /// # Errors
    /// The OS's.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        super::read(&self.inner, buf).await
    }

    /// Writes some bytes; returns how many.
    ///
    /// # Errors
    /// The OS's, e.g. `EPIPE`.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        super::write(&self.inner, buf).await
    }

    /// Fills `buf` entirely.
    ///
    /// # Errors
    /// `UnexpectedEof` when the stream ends first, or the OS's.
    pub async fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
        super::read_exact(&self.inner, buf).await
    }

    /// Writes all of `buf`.
    ///
    /// # Errors
    /// The OS's.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        super::write_all(&self.inner, buf).await
    }

    /// Shuts down one half or both.
    ///
    /// # Errors
    /// The OS's.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get_ref().shutdown(how)
    }

    /// The peer's address.
    ///
    /// # Errors
    /// The OS's.
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

    /// Waits until the stream may be readable (spurious wake-ups possible;
    /// wait only after a read reported `WouldBlock`: readiness is
    /// edge-triggered).
    ///
    /// # Errors
    /// When the descriptor cannot be registered.
    pub async fn readable(&self) -> io::Result<()> {
        self.inner.ready(Dir::Read).await
    }

    /// Waits until the stream may be writable (as [`UnixStream::readable`]).
    ///
    /// # Errors
    /// When the descriptor cannot be registered.
    pub async fn writable(&self) -> io::Result<()> {
        self.inner.ready(Dir::Write).await
    }
}
