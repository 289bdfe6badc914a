//! The parent's ends of a child's standard streams, as `futures-io`
//! streams on [`AsyncFd`].

use crate::fd::AsyncFd;
use crate::sys;
use std::io;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{Context, Poll};

macro_rules! pipe_type {
    ($(#[$doc:meta])* $name:ident, $std:ty) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name {
            fd: AsyncFd<$std>,
        }

        impl $name {
            pub(super) fn new(std: $std) -> io::Result<$name> {
                Ok($name {
                    fd: AsyncFd::new_nonblocking(std)?,
                })
            }

            /// Gives back std's handle (still non-blocking).
            pub fn into_std(self) -> $std {
                self.fd.into_inner()
            }
        }

        impl std::os::fd::AsFd for $name {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.fd.as_fd()
            }
        }
    };
}

pipe_type!(
    /// The child's standard input, `AsyncWrite`. Drop it to close the pipe
    /// (the child then reads the end of its input); `poll_close` does not
    /// close it.
    ChildStdin,
    std::process::ChildStdin
);
pipe_type!(
    /// The child's standard output, `AsyncRead`. Cancel-safe reads.
    ChildStdout,
    std::process::ChildStdout
);
pipe_type!(
    /// The child's standard error, `AsyncRead`. Cancel-safe reads.
    ChildStderr,
    std::process::ChildStderr
);

impl futures_io::AsyncWrite for ChildStdin {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.fd
            .poll_write_with(cx, |f| sys::write_fd(f.as_fd(), buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl futures_io::AsyncRead for ChildStdout {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.fd.poll_read_with(cx, |f| sys::read_fd(f.as_fd(), buf))
    }
}

impl futures_io::AsyncRead for ChildStderr {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.fd.poll_read_with(cx, |f| sys::read_fd(f.as_fd(), buf))
    }
}
