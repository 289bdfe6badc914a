//! [`AsyncFd`]: readiness of any descriptor (pipes, ttys, netlink, inotify,
//! eventfds, ...) on the current worker's reactor, the same registration
//! code the crate's sockets use.
//!
//! Readiness is edge-triggered and not cached: a wait returns after the
//! kernel reported a new edge (or spuriously), so the contract is the one of
//! tokio's `AsyncFd` guards with "clear readiness" implied: **wait only
//! after the operation returned `WouldBlock`**, then retry it. Waiting while
//! unread data is already there may never return. [`AsyncFd::read_with`],
//! [`AsyncFd::write_with`] and the `poll_*_with` forms follow that rule for
//! you and are the recommended way in.
//!
//! Registration is lazy (at the first wait) and managed for the user: it
//! follows the value to another worker and is released before the
//! descriptor is closed or given back by [`AsyncFd::into_inner`].

use crate::reactor::io::IoSource;
use crate::reactor::Dir;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::task::{Context, Poll};

/// A descriptor whose readiness is awaited on the current worker's reactor.
///
/// `Send` when `T` is, `Sync` when `T` is; its futures are `Send` when `T`
/// is `Sync`. Moved to (or waited on from) another worker, its registration
/// follows it, as the [`net`](crate::net) module docs describe for sockets.
///
/// ```
/// use matou_unix::fd::AsyncFd;
/// use std::io::{Read, Write};
///
/// let (mut w, r) = std::os::unix::net::UnixStream::pair().unwrap();
/// r.set_nonblocking(true).unwrap();
/// let got = matou_unix::run(async move {
///     let r = AsyncFd::new(r).unwrap();
///     w.write_all(b"ping").unwrap();
///     let mut buf = [0; 4];
///     let n = r.read_with(|mut s| s.read(&mut buf)).await.unwrap();
///     buf[..n].to_vec()
/// });
/// assert_eq!(got, b"ping");
/// ```
#[derive(Debug)]
pub struct AsyncFd<T: AsFd> {
    inner: IoSource<T>,
}

impl<T: AsFd> AsyncFd<T> {
    /// Wraps `io`. It must already be in non-blocking mode (else an
    /// operation blocks the worker); [`AsyncFd::new_nonblocking`] sets it.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for an eager registration.
    pub fn new(io: T) -> io::Result<AsyncFd<T>> {
        Ok(AsyncFd {
            inner: IoSource::new(io),
        })
    }

    /// Switches `io` to non-blocking mode (`O_NONBLOCK`) and wraps it.
    ///
    /// # Errors
    /// When `fcntl` fails.
    pub fn new_nonblocking(io: T) -> io::Result<AsyncFd<T>> {
        crate::sys::set_nonblocking(io.as_fd())?;
        AsyncFd::new(io)
    }

    /// The wrapped value.
    pub fn get_ref(&self) -> &T {
        self.inner.get_ref()
    }

    /// Releases the registration and gives the value back (still in
    /// non-blocking mode).
    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }

    /// Waits for a read-readiness edge. Call it only after a read reported
    /// `WouldBlock` (see the module docs). Cancel-safe.
    ///
    /// # Errors
    /// When the descriptor cannot be registered (e.g. a regular file:
    /// `EPERM`).
    pub async fn readable(&self) -> io::Result<()> {
        self.inner.ready(Dir::Read).await
    }

    /// Waits for a write-readiness edge; as [`AsyncFd::readable`].
    ///
    /// # Errors
    /// As [`AsyncFd::readable`].
    pub async fn writable(&self) -> io::Result<()> {
        self.inner.ready(Dir::Write).await
    }

    /// The poll form of [`AsyncFd::readable`]: `Ready` means "retry".
    ///
    /// # Errors
    /// As [`AsyncFd::readable`].
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_ready(Dir::Read, cx)
    }

    /// The poll form of [`AsyncFd::writable`].
    ///
    /// # Errors
    /// As [`AsyncFd::readable`].
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_ready(Dir::Write, cx)
    }

    /// Runs the non-blocking `op` until it does not report `WouldBlock`,
    /// waiting for read readiness in between (`EINTR` is retried).
    /// Cancel-safe if `op` is (it is not re-run after the future is dropped).
    ///
    /// # Errors
    /// `op`'s, or a registration failure.
    pub async fn read_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.inner.io(Dir::Read, op).await
    }

    /// As [`AsyncFd::read_with`], for writes.
    ///
    /// # Errors
    /// `op`'s, or a registration failure.
    pub async fn write_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.inner.io(Dir::Write, op).await
    }

    /// The poll form of [`AsyncFd::read_with`], for `AsyncRead` impls.
    ///
    /// # Errors
    /// `op`'s, or a registration failure.
    pub fn poll_read_with<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.inner.poll_io(Dir::Read, cx, op)
    }

    /// The poll form of [`AsyncFd::write_with`], for `AsyncWrite` impls.
    ///
    /// # Errors
    /// `op`'s, or a registration failure.
    pub fn poll_write_with<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.inner.poll_io(Dir::Write, cx, op)
    }
}

impl<T: AsFd> AsFd for AsyncFd<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.get_ref().as_fd()
    }
}

impl<T: AsFd> AsRawFd for AsyncFd<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}
