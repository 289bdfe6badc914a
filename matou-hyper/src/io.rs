//! [`MatouIo`]: hyper's `rt::Read` / `rt::Write` over any futures-io stream,
//! such as matou's [`TcpStream`](matou::unix::net::TcpStream) and
//! [`UnixStream`](matou::unix::net::UnixStream).
//!
//! futures-io reads into initialised memory while hyper hands out a cursor
//! over possibly uninitialised bytes, so a read zeroes the cursor's free
//! space first (one `memset` of hyper's read buffer, far cheaper than the
//! syscall) and then advances the cursor by what was read. Invariant: the
//! cursor is advanced by at most the number of bytes the inner read reported,
//! which futures-io bounds by the slice's length.

use futures_io::{AsyncRead, AsyncWrite};
use hyper::rt::{Read, ReadBufCursor, Write};
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A stream made usable by hyper: wrap a matou stream (or any
/// `futures_io::AsyncRead + AsyncWrite`) and give it to hyper's connection
/// builders or return it from a connector.
///
/// Dropping it drops the stream (closing the socket). Every method is as
/// cancel safe as the inner stream's (matou's: a pending read or write that is
/// dropped has transferred nothing).
///
/// ```
/// use matou_hyper::MatouIo;
/// use matou::unix::net::UnixStream;
///
/// matou::run(async {
///     let (a, _b) = UnixStream::pair().unwrap();
///     let io = MatouIo::new(a);
///     let _stream: &UnixStream = io.get_ref();
/// });
/// ```
#[derive(Debug)]
pub struct MatouIo<T> {
    inner: T,
}

impl<T> MatouIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        MatouIo { inner }
    }

    /// The stream inside.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The stream inside, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncRead + Unpin> Read for MatouIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: we only write initialised bytes (zeroes) into the cursor's
        // free space here, never de-initialise anything.
        let free: &mut [MaybeUninit<u8>] = unsafe { buf.as_mut() };
        for b in free.iter_mut() {
            b.write(0);
        }
        // SAFETY: every byte of `free` was initialised just above, and
        // `MaybeUninit<u8>` has the layout of `u8`.
        let bytes: &mut [u8] =
            unsafe { std::slice::from_raw_parts_mut(free.as_mut_ptr().cast::<u8>(), free.len()) };
        let len = bytes.len();
        match Pin::new(&mut self.inner).poll_read(cx, bytes) {
            Poll::Ready(Ok(n)) => {
                // A stream claiming more than it was given is a bug in it;
                // advancing past the slice would be unsound, so refuse.
                if n > len {
                    return Poll::Ready(Err(io::Error::other(
                        "read reported more bytes than the buffer holds",
                    )));
                }
                // SAFETY: the first `n <= len` bytes were initialised (zeroed,
                // then filled by the read).
                unsafe { buf.advance(n) };
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> Write for MatouIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        // matou's sockets write vectors with one `sendmsg`; for another
        // stream futures-io's default falls back to the first slice, which is
        // still correct.
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
