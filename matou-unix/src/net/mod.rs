//! Sockets: TCP ([`TcpListener`], [`TcpStream`]), UDP ([`UdpSocket`]) and
//! Unix-domain streams ([`UnixListener`], [`UnixStream`]), IPv4 and IPv6.
//!
//! Each type is a thin wrapper over the matching std socket in non-blocking
//! mode inside an `IoSource` (see the `reactor` module): std provides
//! addresses and socket options, `sys` the non-blocking syscalls, the reactor
//! the waiting. Every type is `Send` and `Sync`: it may be moved to a task on
//! another worker (see `reactor::io` for how the registration follows it),
//! and methods take `&self`, so tasks may share a stream through an `Rc` (or
//! an `Arc`, across workers), one reading while the other writes.
//!
//! **`Send` futures.** The futures of the operations (`accept`, `connect`,
//! `read`, `write`, `readable`, `send_to`, ...) are `Send` when their
//! arguments are, so `Send`-bound code (tower services, hyper connectors,
//! axum-style handlers) may await them. matou never moves a task, but such a
//! future may be moved between two polls, e.g. polled once and then handed
//! to `call`. Polled on another worker than the one it waits on, it wakes
//! once spuriously, forgets the old wait (on its old worker, by a message),
//! retries its syscall and, if that would block, registers the descriptor
//! with the reactor of the worker it is on now. Nothing is lost and nothing
//! leaks; the move costs a re-registration. A socket waited on from two
//! workers at once works too (each wait moves the registration, waking the
//! other side's waiters to retry), but pays that cost at every wait: keep a
//! socket's waits on one worker when you can.
//!
//! Errors are `std::io::Error` carrying the OS errno. Closing happens on drop.

mod every_worker;
mod resolve;
mod tcp;
mod udp;
mod unix;

pub use every_worker::serve_on_every_worker;
pub use resolve::{lookup_host, ToSocketAddrs, CONNECTION_ATTEMPT_DELAY};
pub use tcp::{TcpListenOptions, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixListener, UnixStream};

use crate::reactor::io::IoSource;
use crate::reactor::Dir;
use crate::sys;
use std::io;
use std::os::fd::AsFd;
use std::task::{Context, Poll};

/// The byte-stream operations shared by TCP and Unix streams.
pub(crate) async fn read<T: AsFd>(src: &IoSource<T>, buf: &mut [u8]) -> io::Result<usize> {
    src.io(Dir::Read, |s| sys::recv(s.as_fd(), buf)).await
}

pub(crate) async fn write<T: AsFd>(src: &IoSource<T>, buf: &[u8]) -> io::Result<usize> {
    src.io(Dir::Write, |s| sys::send(s.as_fd(), buf)).await
}

pub(crate) async fn read_exact<T: AsFd>(src: &IoSource<T>, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match read(src, buf).await? {
            0 => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            n => buf = &mut buf[n..],
        }
    }
    Ok(())
}

pub(crate) async fn write_all<T: AsFd>(src: &IoSource<T>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match write(src, buf).await? {
            0 => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            n => buf = &buf[n..],
        }
    }
    Ok(())
}

pub(crate) fn poll_read<T: AsFd>(
    src: &IoSource<T>,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<io::Result<usize>> {
    src.poll_io(Dir::Read, cx, |s| sys::recv(s.as_fd(), buf))
}

pub(crate) fn poll_write<T: AsFd>(
    src: &IoSource<T>,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    src.poll_io(Dir::Write, cx, |s| sys::send(s.as_fd(), buf))
}

pub(crate) fn poll_write_vectored<T: AsFd>(
    src: &IoSource<T>,
    cx: &mut Context<'_>,
    bufs: &[io::IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    src.poll_io(Dir::Write, cx, |s| sys::send_vectored(s.as_fd(), bufs))
}

/// Implements `futures_io::{AsyncRead, AsyncWrite}` for a stream type and for
/// a shared reference to it (so one task can read while another writes).
/// `poll_close` shuts the write half down, like tokio's `poll_shutdown`.
macro_rules! impl_async_io {
    ($ty:ty) => {
        impl futures_io::AsyncRead for &$ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                crate::net::poll_read(&self.inner, cx, buf)
            }
        }

        impl futures_io::AsyncWrite for &$ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                crate::net::poll_write(&self.inner, cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                crate::net::poll_write_vectored(&self.inner, cx, bufs)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                // Sockets have no user-space buffer to flush.
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.shutdown(std::net::Shutdown::Write))
            }
        }

        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                crate::net::poll_read(&self.inner, cx, buf)
            }
        }

        impl futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                crate::net::poll_write(&self.inner, cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                crate::net::poll_write_vectored(&self.inner, cx, bufs)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.shutdown(std::net::Shutdown::Write))
            }
        }
    };
}
pub(crate) use impl_async_io;

/// Implements `AsFd` and `AsRawFd` by delegating to the std socket inside.
macro_rules! impl_as_fd {
    ($ty:ty) => {
        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.inner.get_ref().as_fd()
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(self.inner.get_ref())
            }
        }
    };
}
pub(crate) use impl_as_fd;

/// Implements `into_std` by releasing the reactor registration.
macro_rules! impl_into_std {
    ($ty:ty, $std:ty) => {
        impl $ty {
            /// Releases the reactor registration and gives back the std
            /// socket, still in non-blocking mode (as tokio's `into_std`;
            /// call `set_nonblocking(false)` for blocking use).
            pub fn into_std(self) -> $std {
                self.inner.into_inner()
            }
        }
    };
}
pub(crate) use impl_into_std;
