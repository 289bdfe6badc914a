//! [`TokioCompat`]: tokio's `AsyncRead` / `AsyncWrite` over matou's streams
//! (any futures-io stream), behind the `tokio-io` feature.
//!
//! Crates that only need tokio's I/O *traits* work through it on matou:
//! tokio-util's codecs (`Framed`, `FramedRead`), tokio-rustls, async-compression's
//! tokio adapters, tokio's own `io::copy` and `AsyncReadExt` helpers.
//!
//! Crates that need tokio's *runtime* cannot work on matou, compat layer or
//! not, because they reach for a tokio context that a matou worker does not
//! have, and panic ("there is no reactor running") or never wake:
//! - those that call `tokio::spawn` / `tokio::task::spawn_blocking` (e.g.
//!   hyper-util's `TokioExecutor`, hence reqwest's client, tonic's transport);
//! - those that open `tokio::net` sockets (registered with tokio's reactor,
//!   not matou's epoll);
//! - those that use `tokio::time` (tokio's timer wheel) or `tokio::signal`.
//!
//! For HTTP, use hyper through this crate ([`serve`](crate::serve),
//! [`MatouConnector`](crate::MatouConnector)) instead.
//!
//! Invariant: a read advances tokio's buffer by exactly what the inner read
//! returned, into the part of the buffer it was handed (initialised first).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::ReadBuf;

/// A matou stream (any `futures_io::AsyncRead + AsyncWrite`) seen through
/// tokio's I/O traits. `poll_shutdown` closes the write half, like
/// futures-io's `poll_close`. Dropping it drops the stream.
///
/// ```
/// use matou::unix::net::UnixStream;
/// use matou_hyper::TokioCompat;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// matou::run(async {
///     let (a, b) = UnixStream::pair().unwrap();
///     let (mut a, mut b) = (TokioCompat::new(a), TokioCompat::new(b));
///     a.write_all(b"over tokio's traits").await.unwrap();
///     a.shutdown().await.unwrap();
///     let mut got = String::new();
///     b.read_to_string(&mut got).await.unwrap();
///     assert_eq!(got, "over tokio's traits");
/// });
/// ```
#[derive(Debug)]
pub struct TokioCompat<T> {
    inner: T,
}

impl<T> TokioCompat<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        TokioCompat { inner }
    }

    /// The stream inside.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: futures_io::AsyncRead + Unpin> tokio::io::AsyncRead for TokioCompat<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let free = buf.initialize_unfilled();
        match Pin::new(&mut self.inner).poll_read(cx, free) {
            Poll::Ready(Ok(n)) => {
                // `advance` panics past the initialised part; a stream that
                // over-reports is refused with an error instead.
                if n > buf.remaining() {
                    return Poll::Ready(Err(io::Error::other(
                        "read reported more bytes than the buffer holds",
                    )));
                }
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: futures_io::AsyncWrite + Unpin> tokio::io::AsyncWrite for TokioCompat<T> {
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
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
